//! Governance: YAML policies that check every output, and the hash-chained
//! audit log that records every decision.
//!
//! - [`spec`] is the policy file format; parsing it also compiles it, so a
//!   file that parses is a file that can run, and every error has a line.
//! - [`detectors`] are the built-in matchers (regex, keywords, PII, secrets,
//!   length, JSON Schema, URLs, language, LLM judge).
//! - [`engine`] evaluates a [`bundle::Bundle`] against one piece of content
//!   and returns a [`Decision`]; it is synchronous and never does I/O. LLM
//!   judge answers are supplied by [`judge`], outside the engine.
//! - [`bundle`] loads a directory of policy files, runs their inline tests
//!   ([`testing`]) and refuses bundles whose tests fail; [`store`] keeps the
//!   active bundle and hot-reloads it.
//! - [`stream`] checks streamed output with a hold-back buffer.
//! - [`audit`] is the append-only, hash-chained record of decisions;
//!   [`governor`] ties evaluation and audit together for the server.

pub mod audit;
pub mod bundle;
pub mod detectors;
pub mod engine;
pub mod governor;
pub mod judge;
pub mod model_judge;
pub mod redact;
pub mod spec;
pub mod store;
pub mod stream;
pub mod testing;

pub use bundle::Bundle;
pub use engine::{Decision, EvalInput, RuleMatch, Subject};
pub use governor::{Checked, Governor};
pub use spec::{Action, Mode, Severity, Stage};

#[cfg(test)]
mod tests;
