//! The governor: what the server runs around the policy engine.
//!
//! - [`store`] keeps the active policy bundle and hot-reloads its directory;
//! - [`judge`] asks a model the `llm_judge` questions the engine leaves
//!   pending, and caches the answers;
//! - [`audit`] is the append-only, hash-chained record of decisions;
//! - [`governor`] ties evaluation and audit together: nothing acts on a
//!   decision that is not recorded.
//!
//! The policy format and engine themselves are `warden-policy`. Invariants:
//! this crate reaches a model only through the [`judge::Judge`] trait (the
//! binary implements it over its registry) and never the network; the audit
//! tables are written only by [`audit::AuditLog`]'s single writer.

pub mod audit;
pub mod config;
pub mod governor;
pub mod judge;
pub mod store;

pub use config::PoliciesConfig;
pub use governor::{Checked, Governor};
