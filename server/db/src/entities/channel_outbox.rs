//! `channel_outbox`: every message Warden sends on a channel, delivered by
//! the sender with retries; a reply is a row before it is a request.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "channel_outbox")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub channel: String,
    pub connection: String,
    pub inbox_id: Option<String>,
    /// Makes enqueueing idempotent: processing an event twice (after a
    /// restart) cannot queue its reply twice.
    pub dedupe_key: String,
    /// What the transport does with it (Slack: post, update, respond).
    pub kind: String,
    /// Where it goes (JSON, the transport's own shape).
    pub target: String,
    /// What it says (JSON).
    pub body: String,
    /// A row that must be delivered first; its `external_ref` (e.g. the
    /// placeholder's `ts`) is handed to this one.
    pub after_id: Option<i64>,
    /// pending, sending, sent, failed, superseded
    pub status: String,
    pub attempts: i32,
    pub next_attempt_at: DateTimeUtc,
    pub last_error: Option<String>,
    /// What the peer calls the delivered message (Slack `ts`).
    pub external_ref: Option<String>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
