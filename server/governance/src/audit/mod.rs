//! The audit log: every governance decision, one row each, in a hash chain
//! (each row's hash covers its fields and the previous row's hash).
//!
//! - [`record`] turns a decision into a row and defines the hash;
//! - [`writer`] is the single appender (group commit, head pointer kept in
//!   the same transaction);
//! - [`verify`] walks the chain and names the first broken row;
//! - [`query`] filters and pages for the API and the export.

pub mod query;
pub mod record;
pub mod verify;
pub mod writer;

pub use query::{AuditEntry, AuditFilter};
pub use record::NewRecord;
pub use verify::{Problem, ProblemKind, VerifyReport, verify};
pub use writer::{AuditError, AuditLog};

/// The `prev_hash` of the first row.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";
