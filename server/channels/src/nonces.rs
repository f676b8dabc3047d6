//! Values a channel accepts once: a webhook token that must not be
//! replayed, an approval link that decides once. Claiming is one insert
//! under a unique index, so two racing requests cannot both win.

use chrono::{DateTime, Utc};
use sea_orm::{
    ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, Set, TryInsertResult,
};

use warden_db::entities::channel_nonce::{self, Column};

#[derive(Clone)]
pub struct Nonces {
    db: DatabaseConnection,
}

/// Who used a value first, for the answer to a second use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    First,
    Used { by: Option<String> },
}

impl Nonces {
    pub fn new(db: DatabaseConnection) -> Self {
        Self { db }
    }

    /// Claims `value`: [`Claim::First`] exactly once per
    /// (channel, connection, kind, value).
    pub async fn claim(
        &self,
        channel: &str,
        connection: &str,
        kind: &str,
        value: &str,
        by: Option<&str>,
    ) -> Result<Claim, DbErr> {
        let row = channel_nonce::ActiveModel {
            channel: Set(channel.to_owned()),
            connection: Set(connection.to_owned()),
            kind: Set(kind.to_owned()),
            value: Set(value.to_owned()),
            used_by: Set(by.map(str::to_owned)),
            created_at: Set(Utc::now()),
            ..Default::default()
        };
        let inserted = channel_nonce::Entity::insert(row)
            .on_conflict_do_nothing_on([
                Column::Channel,
                Column::Connection,
                Column::Kind,
                Column::Value,
            ])
            .exec_without_returning(&self.db)
            .await?;
        if let TryInsertResult::Inserted(1) = inserted {
            return Ok(Claim::First);
        }
        let by = self
            .find(channel, connection, kind, value)
            .await?
            .and_then(|n| n.used_by);
        Ok(Claim::Used { by })
    }

    /// Gives a claimed value back (what it was claimed for did not
    /// happen), so it can be used again.
    pub async fn release(
        &self,
        channel: &str,
        connection: &str,
        kind: &str,
        value: &str,
    ) -> Result<(), DbErr> {
        channel_nonce::Entity::delete_many()
            .filter(Column::Channel.eq(channel))
            .filter(Column::Connection.eq(connection))
            .filter(Column::Kind.eq(kind))
            .filter(Column::Value.eq(value))
            .exec(&self.db)
            .await?;
        Ok(())
    }

    /// Forgets values of `kind` claimed before `before` (a webhook token
    /// outside the accepted timestamp window can never verify again).
    pub async fn prune(&self, kind: &str, before: DateTime<Utc>) -> Result<u64, DbErr> {
        Ok(channel_nonce::Entity::delete_many()
            .filter(Column::Kind.eq(kind))
            .filter(Column::CreatedAt.lt(before))
            .exec(&self.db)
            .await?
            .rows_affected)
    }

    async fn find(
        &self,
        channel: &str,
        connection: &str,
        kind: &str,
        value: &str,
    ) -> Result<Option<channel_nonce::Model>, DbErr> {
        channel_nonce::Entity::find()
            .filter(Column::Channel.eq(channel))
            .filter(Column::Connection.eq(connection))
            .filter(Column::Kind.eq(kind))
            .filter(Column::Value.eq(value))
            .one(&self.db)
            .await
    }
}
