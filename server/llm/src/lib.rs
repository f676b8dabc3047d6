//! What every LLM backend shares: the backend-neutral chat types, the
//! [`Backend`] trait, tool forcing for models without native tool calling,
//! and the registry that maps model ids to backends.
//!
//! Invariant: this crate knows no engine. The in-process mistral.rs engine
//! (`warden-llm-embedded`) and the remote OpenAI-compatible one
//! (`warden-llm-remote`) depend on it, never the other way round, so the
//! crates that only *call* a model (governance, agents, the plugin host)
//! build without either.

mod registry;
pub mod task_stream;
#[cfg(feature = "test-support")]
pub mod testing;
pub mod tool_forcing;
pub mod types;

use futures::stream::BoxStream;
use thiserror::Error;

pub use registry::ModelRegistry;
pub use tool_forcing::close_schema;
pub use types::*;

#[derive(Debug, Error)]
pub enum LlmError {
    /// The request is well-formed but the backend cannot honour it.
    #[error("{0}")]
    InvalidRequest(String),
    #[error("model {0:?} does not exist")]
    UnknownModel(String),
    #[error("upstream error: {0}")]
    Upstream(String),
    #[error("engine error: {0}")]
    Engine(String),
}

/// Sampling temperature when a request gives none. Lower than OpenAI's 1.0
/// because small local models lose coherence quickly at 1.0.
pub const DEFAULT_TEMPERATURE: f64 = 0.7;

pub type EventStream = BoxStream<'static, Result<StreamEvent, LlmError>>;

/// A chat engine serving one model.
///
/// Implementations must accept concurrent calls: callers never serialise
/// requests, so batching is the backend's job.
#[async_trait::async_trait]
pub trait Backend: Send + Sync {
    /// The id this backend is served under on `/v1/models`.
    fn model_id(&self) -> &str;

    /// Who owns the model, for `/v1/models`.
    fn owned_by(&self) -> &str;

    async fn chat(&self, request: ChatRequest) -> Result<ChatOutput, LlmError>;

    /// Streams the completion. Dropping the stream cancels generation.
    async fn chat_stream(&self, request: ChatRequest) -> Result<EventStream, LlmError>;
}
