//! Governance policies: the YAML format, the detectors and the evaluation
//! engine.
//!
//! - [`spec`] is the policy file format; parsing it also compiles it, so a
//!   file that parses is a file that can run, and every error has a line.
//! - [`detectors`] are the built-in matchers (regex, keywords, PII, secrets,
//!   length, JSON Schema, URLs, language, LLM judge).
//! - [`engine`] evaluates a [`Bundle`] against one piece of content and
//!   returns a [`Decision`]. LLM judge questions are returned as pending and
//!   answered outside ([`judge`] only describes them).
//! - [`bundle`] loads a directory of policy files, runs their inline tests
//!   ([`testing`]) and refuses bundles whose tests fail.
//! - [`redact`] rewrites matched spans; [`stream`] checks streamed output
//!   with a hold-back buffer.
//!
//! Invariant: **the policy engine never sees the network, the database or a
//! model.** Everything here is synchronous and does no I/O beyond reading
//! a policy directory when asked; the crate graph enforces it (no tokio,
//! sea-orm, mistral.rs, wasmtime or HTTP client among its dependencies).

pub mod bundle;
pub mod detectors;
pub mod engine;
pub mod judge;
pub mod redact;
pub mod spec;
pub mod stream;
pub mod testing;

pub use bundle::Bundle;
pub use engine::{Decision, EvalInput, RuleMatch, Subject};
pub use spec::{Action, Mode, Severity, Stage};

#[cfg(test)]
mod tests;
