//! External users as Warden users. The first message from a Slack user
//! (`team:user`) or a mail address creates its identity; its Warden user
//! (`slack:T…:U…`) is the subject of its runs, so memory and quotas are
//! per person, not per channel.

use chrono::Utc;
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, Set};

use warden_db::entities::channel_identity::{self, Column};

#[derive(Clone)]
pub struct Identities {
    db: DatabaseConnection,
}

impl Identities {
    pub fn new(db: DatabaseConnection) -> Self {
        Self { db }
    }

    /// The Warden user of `external_id` on `channel`, created on first
    /// sight as `{channel}:{external_id}`.
    pub async fn resolve(
        &self,
        channel: &str,
        external_id: &str,
        display_name: Option<&str>,
    ) -> Result<String, DbErr> {
        let now = Utc::now();
        let row = channel_identity::ActiveModel {
            channel: Set(channel.to_owned()),
            external_id: Set(external_id.to_owned()),
            user: Set(format!("{channel}:{external_id}")),
            display_name: Set(display_name.map(str::to_owned)),
            created_at: Set(now),
            last_seen_at: Set(now),
            ..Default::default()
        };
        // Concurrent first messages from one person create one identity.
        channel_identity::Entity::insert(row)
            .on_conflict_do_nothing_on([Column::Channel, Column::ExternalId])
            .exec(&self.db)
            .await?;
        let mut touch = channel_identity::Entity::update_many()
            .col_expr(Column::LastSeenAt, Expr::value(now))
            .filter(Column::Channel.eq(channel))
            .filter(Column::ExternalId.eq(external_id));
        if let Some(d) = display_name {
            touch = touch.col_expr(Column::DisplayName, Expr::value(d));
        }
        touch.exec(&self.db).await?;
        let row = channel_identity::Entity::find()
            .filter(Column::Channel.eq(channel))
            .filter(Column::ExternalId.eq(external_id))
            .one(&self.db)
            .await?
            .ok_or_else(|| DbErr::RecordNotFound(format!("identity {channel}:{external_id}")))?;
        Ok(row.user)
    }
}
