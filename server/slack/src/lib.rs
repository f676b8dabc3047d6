//! Slack's wire protocol, with no I/O: request signing ([`signature`]),
//! Events API envelopes and which events an agent answers ([`events`]),
//! approval-button clicks ([`interactions`]), the `/warden` slash command
//! ([`commands`]), and what Warden posts ([`text`]: escaped so model output
//! cannot ping `<!channel>` or forge links, and split within Slack's
//! limits; [`blocks`]: the approval message with its buttons).
//!
//! Invariant: this crate never sees the network, the database or a model
//! (checked by `tests/scripts/layering.sh`); the channel that receives
//! Slack's requests and posts replies builds on it.

pub mod blocks;
pub mod commands;
pub mod events;
pub mod interactions;
pub mod signature;
pub mod text;
