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

/// Between array items and object members in constrained JSON.
pub const JSON_ITEM_SEPARATOR: &str = ", ";
/// Between an object key and its value in constrained JSON.
pub const JSON_KEY_SEPARATOR: &str = ": ";

/// How engines that honour JSON schemas write constrained JSON (the
/// embedded engine gives these options to llguidance as the schema's
/// `x-guidance`): exactly [`JSON_ITEM_SEPARATOR`] and [`JSON_KEY_SEPARATOR`]
/// and no other whitespace between tokens (llguidance's default allows a
/// run of any length there, so output could grow without end), and no
/// `\uXXXX` escapes, so a string character takes at most four bytes. The
/// planner's step bounds count on all three. The separators are the ones
/// models write unconstrained (and the agents' examples use): with none at
/// all, the 135M model's strings rambled.
pub fn compact_json_options() -> serde_json::Value {
    serde_json::json!({
        "whitespace_flexible": false,
        "item_separator": JSON_ITEM_SEPARATOR,
        "key_separator": JSON_KEY_SEPARATOR,
        "json_allowed_escapes": "nrbtf\\\"",
    })
}

/// `schema` with [`compact_json_options`] at its root, unless it sets its own.
pub fn compact_json_schema(mut schema: serde_json::Value) -> serde_json::Value {
    if let Some(root) = schema.as_object_mut() {
        root.entry("x-guidance")
            .or_insert_with(compact_json_options);
    }
    schema
}

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

    /// What the engine tells about its caches, for `/metrics` (engines in
    /// this process only).
    fn engine_stats(&self) -> Option<EngineStats> {
        None
    }
}

/// An in-process engine's prefix cache, since the server started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EngineStats {
    /// Sequences that reused a cached prompt prefix (mistral.rs counts a
    /// prefix of any length, a shared chat-template header included).
    pub prefix_cache_hits: u64,
    /// All sequences looked up.
    pub prefix_cache_lookups: u64,
    /// Finished sequences whose KV cache is kept now.
    pub prefix_cache_sequences: u64,
    /// Times the cache was emptied to keep it bounded.
    pub prefix_cache_renewals: u64,
}
