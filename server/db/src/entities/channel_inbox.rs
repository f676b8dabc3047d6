//! `channel_inbox`: every verified inbound channel event, stored before it
//! is acknowledged and processed from here after the acknowledgement.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "channel_inbox")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// `slack`, `email`.
    pub channel: String,
    /// The configured connection's name (`[[channels.slack]] name`).
    pub connection: String,
    /// The event's own id (Slack `event_id`, a `Message-ID`).
    pub event_key: String,
    /// A second key for the same message arriving as another event (Slack
    /// `channel:ts`); NULL for ignored events, which never block an answer.
    pub message_key: Option<String>,
    /// received, ignored, processing, awaiting_approval, done, failed
    pub status: String,
    /// Why it was ignored, or how processing failed.
    pub note: Option<String>,
    /// The channel's normalised message (JSON).
    pub payload: String,
    pub run_id: Option<String>,
    pub attempts: i32,
    pub received_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
