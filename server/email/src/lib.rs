//! Email's wire formats, with no I/O: parsing an inbound message into what
//! an agent sees ([`inbound`]: the sender, the threading headers, the text
//! with quoted replies and signatures stripped, attachments as context or
//! as a list), deciding which messages must never be answered
//! ([`loops`]: auto-replies, bounces, list mail, our own mail), the
//! providers' webhook formats ([`mailgun`] with its signature,
//! [`postmark`], [`sendgrid`], over a decoded [`form`]), the tokens of
//! approval links ([`approval`]), and the headers of Warden's replies
//! ([`reply`]: `Message-ID`, `In-Reply-To`, `References`,
//! `Auto-Submitted`, header values that cannot inject a line).
//!
//! Invariant: this crate never sees the network, the database or a model
//! (checked by `tests/scripts/layering.sh`); the email channel builds on
//! it as the Slack channel builds on `warden-slack`.

pub mod approval;
pub mod config;
pub mod form;
pub mod inbound;
pub mod loops;
pub mod mailgun;
pub mod postmark;
pub mod quoted;
pub mod reply;
pub mod sendgrid;

#[cfg(test)]
mod provider_tests;
