//! Message ids of conversations (email's `Message-ID`s, inbound and
//! Warden's own) and who took part. A reply names its parent in headers
//! anyone can write, so it joins the parent's conversation only if its
//! sender is that conversation's participant.

use chrono::Utc;
use sea_orm::{ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder, Set};

use warden_db::entities::channel_message::{self, Column};

#[derive(Clone)]
pub struct MessageIds {
    db: DatabaseConnection,
}

impl MessageIds {
    pub fn new(db: DatabaseConnection) -> Self {
        Self { db }
    }

    /// Records that `message_id` belongs to `thread_key` with `participant`
    /// (idempotent: the first record of an id stands).
    pub async fn record(
        &self,
        channel: &str,
        connection: &str,
        message_id: &str,
        thread_key: &str,
        participant: &str,
    ) -> Result<(), DbErr> {
        let row = channel_message::ActiveModel {
            channel: Set(channel.to_owned()),
            connection: Set(connection.to_owned()),
            message_id: Set(message_id.to_owned()),
            thread_key: Set(thread_key.to_owned()),
            participant: Set(participant.to_owned()),
            created_at: Set(Utc::now()),
            ..Default::default()
        };
        channel_message::Entity::insert(row)
            .on_conflict_do_nothing_on([Column::Channel, Column::Connection, Column::MessageId])
            .exec(&self.db)
            .await?;
        Ok(())
    }

    /// The conversation of the first of `ids` that is known and whose
    /// participant is `sender`.
    pub async fn thread_of(
        &self,
        channel: &str,
        connection: &str,
        ids: &[String],
        sender: &str,
    ) -> Result<Option<String>, DbErr> {
        for id in ids {
            let found = channel_message::Entity::find()
                .filter(Column::Channel.eq(channel))
                .filter(Column::Connection.eq(connection))
                .filter(Column::MessageId.eq(id.as_str()))
                .order_by_asc(Column::Id)
                .one(&self.db)
                .await?;
            if let Some(m) = found
                && m.participant == sender
            {
                return Ok(Some(m.thread_key));
            }
        }
        Ok(None)
    }
}
