//! The channel core that Slack and email share: a durable [`inbox`]
//! (every verified event is stored, deduped, before it is acknowledged),
//! [`conversations`] (an external thread is one agent history),
//! [`identities`] (an external user is a Warden user), the [`outbox`] and
//! its sender (replies are rows, delivered with retries and backoff), and
//! the [`dispatch`]er that turns an inbox item into an agent run and its
//! outcome into outbox rows.
//!
//! Invariants: nothing here speaks a channel's protocol or the network; a
//! channel plugs in through [`Channel`] (how to word and where to send
//! replies, and how to deliver one). Processing happens only from the
//! inbox, so a restart between the acknowledgement and the answer still
//! answers, once: every reply is enqueued under a key derived from the
//! item and its run, and retrying a delivery never re-runs the agent.

pub mod config;
pub mod conversations;
pub mod dispatch;
pub mod identities;
pub mod inbox;
pub mod messages;
pub mod nonces;
pub mod outbox;

#[cfg(test)]
mod tests;

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use config::DeliveryConfig;
pub use dispatch::Dispatcher;
pub use inbox::{Accepted, Inbox, InboxStatus, NewItem};
pub use outbox::{Delivery, Outbox, OutboxStatus, Sender};

/// Errors of the channel core. Library callers map them to a status once.
#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    #[error("database error: {0}")]
    Db(#[from] sea_orm::DbErr),
    #[error("stored channel data is unreadable: {0}")]
    Decode(#[source] serde_json::Error),
    #[error(transparent)]
    Run(#[from] warden_agents::RunError),
    #[error(transparent)]
    Catalog(#[from] warden_agents::CatalogError),
    #[error("no configured {channel} connection named {connection:?}")]
    UnknownConnection { channel: String, connection: String },
}

/// One inbound message as the dispatcher needs it, whatever the channel.
/// Stored as the inbox item's payload, so processing after a restart has
/// everything.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// The external thread (Slack `channel:thread_ts`): one conversation.
    pub thread_key: String,
    /// The external user (Slack `team:user`).
    pub external_user: String,
    #[serde(default)]
    pub display_name: Option<String>,
    pub agent: String,
    pub text: String,
    /// Where replies go, in the channel's own shape.
    pub reply_to: Value,
}

/// A message to send, as the channel words it. `kind`, `target` and
/// `body` are the channel's own; the core only stores and orders them.
#[derive(Debug, Clone, PartialEq)]
pub struct Outgoing {
    pub kind: String,
    pub target: Value,
    pub body: Value,
    /// Deliver after the item's placeholder, whose external reference
    /// (Slack `ts`) the transport then receives (to update it in place).
    pub after_placeholder: bool,
    /// A progress note: a later one replaces it if it has not gone yet.
    pub progress: bool,
}

/// The approval a paused run waits for, as the channel shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct ApprovalNeeded {
    pub run_id: String,
    /// Which pause of the run this is (its step count when it paused): a
    /// decision names it, so an old request cannot decide a newer call.
    pub pause: u32,
    pub agent: String,
    pub tool: String,
    /// The arguments as the policies let them through (JSON text).
    pub arguments: String,
    /// The policy message that asked for approval.
    pub rule: String,
}

/// How a run ended, as the channel tells the user.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Answer(String),
    /// Blocked, failed, timed out, cancelled: the status and why.
    Stopped {
        status: String,
        message: String,
    },
}

/// One configured connection of a channel (a Slack app, a mailbox):
/// how replies are worded and where they go, and how one is delivered.
#[async_trait::async_trait]
pub trait Channel: Send + Sync {
    /// `slack`, `email`: the governance scope and audit `channel`.
    fn channel(&self) -> &'static str;
    /// The connection's configured name.
    fn connection(&self) -> &str;
    /// Sent when processing starts ("working…"), if the channel has one.
    fn placeholder(&self, msg: &Message) -> Option<Outgoing>;
    /// A progress note for a step the run just took.
    fn progress(&self, msg: &Message, step: &warden_agents::StepRecord) -> Option<Outgoing>;
    /// The run's outcome, in as many messages as the channel's limits need.
    fn outcome(&self, msg: &Message, run_id: &str, outcome: &Outcome) -> Vec<Outgoing>;
    /// The request to the approvers, and a note in the thread.
    fn approval(&self, msg: &Message, needed: &ApprovalNeeded) -> Vec<Outgoing>;
    /// Delivers one outbox row. `placeholder_ref` is the external
    /// reference of the item's delivered placeholder, for rows that asked
    /// for it.
    async fn deliver(
        &self,
        kind: &str,
        target: &Value,
        body: &Value,
        placeholder_ref: Option<&str>,
    ) -> Delivery;
}
