//! The `warden:plugin` imports, implemented on [`CallState`]. Each checks
//! the effective grant at call time and answers refusals with a
//! `host-error` the guest can read; none of them traps.

mod config;
mod kv;
mod llm;
mod log;

use std::sync::Arc;

use warden_llm::{Backend, LlmError};

use super::bindings::types;
use super::kv_store::KvStore;
use super::state::CallState;

/// Finds the model plugins use, lazily: a CLI run that never calls the
/// LLM never loads one.
#[async_trait::async_trait]
pub trait LlmProvider: Send + Sync {
    async fn backend(&self) -> Result<Arc<dyn Backend>, LlmError>;
}

/// Services shared by every call.
#[derive(Clone)]
pub struct HostServices {
    pub kv: KvStore,
    pub llm: Option<Arc<dyn LlmProvider>>,
}

impl types::Host for CallState {}

/// A refused capability reaches the guest as `host-error::denied`, with the
/// message saying what to declare or grant.
impl From<crate::grant::Denied> for types::HostError {
    fn from(d: crate::grant::Denied) -> Self {
        types::HostError::Denied(d.0)
    }
}
