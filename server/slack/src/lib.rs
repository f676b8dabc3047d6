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
pub mod config;
pub mod events;
pub mod interactions;
pub mod signature;
pub mod text;

/// Run ids as Warden makes them: 1-64 ASCII letters, digits, `-`, `_`.
/// Ids arriving from Slack (button values, `/warden status`) must look like
/// one before they go anywhere near the run store or back into a message.
pub fn is_run_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}
