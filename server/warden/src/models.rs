//! The configured models: `[[models]]` turned into a [`ModelRegistry`] of
//! embedded (mistral.rs) and remote (OpenAI-compatible) backends, and the
//! default model fetched when one needs it.

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use futures::StreamExt as _;
use warden_llm::{
    Backend, ChatOutput, ChatRequest, EventStream, LlmError, ModelRegistry, StreamEvent,
};
use warden_llm_embedded::model::{default_model_path, ensure_default_model};
use warden_llm_embedded::{EmbeddedBackend, EngineOptions};
use warden_llm_remote::RemoteBackend;

use crate::config::{Config, ModelConfig};
use crate::metrics::Metrics;

/// Starts every configured backend. Embedded models load here, which takes
/// a few seconds each.
pub async fn load(config: &Config) -> anyhow::Result<ModelRegistry> {
    let mut registry = ModelRegistry::default();
    for model in config.effective_models() {
        let backend: Arc<dyn Backend> = match &model {
            ModelConfig::Embedded {
                id,
                path,
                dtype,
                prefix_cache_sequences,
            } => {
                let path = match path {
                    Some(p) => p.clone(),
                    None => default_model_path(&config.models_dir()).with_context(|| {
                        format!(
                            "model {id:?}: no path given and the default model is not installed; run `warden model fetch`"
                        )
                    })?,
                };
                Arc::new(
                    EmbeddedBackend::load(
                        id,
                        &path,
                        EngineOptions {
                            dtype: *dtype,
                            prefix_cache_sequences: *prefix_cache_sequences,
                        },
                    )
                    .await
                    .with_context(|| format!("loading model {id:?} from {}", path.display()))?,
                )
            }
            ModelConfig::Openai {
                id,
                base_url,
                api_key_env,
                upstream_model,
                timeout_secs,
            } => {
                let key = match api_key_env {
                    Some(var) => Some(std::env::var(var).with_context(|| {
                        format!("model {id:?}: environment variable {var} is not set")
                    })?),
                    None => None,
                };
                Arc::new(
                    RemoteBackend::new(
                        id,
                        base_url,
                        key,
                        upstream_model.as_deref().unwrap_or(id),
                        std::time::Duration::from_secs(*timeout_secs),
                    )
                    .with_context(|| format!("model {id:?}"))?,
                )
            }
        };
        registry.insert(backend);
    }
    Ok(registry)
}

/// Fetches (and converts) the default model when an embedded model names
/// no file and it is not installed yet.
pub async fn fetch_default_if_needed(config: &Config) -> anyhow::Result<()> {
    let needs_default_model = config
        .effective_models()
        .iter()
        .any(|m| matches!(m, ModelConfig::Embedded { path: None, .. }));
    if needs_default_model {
        let dir = config.models_dir();
        tokio::task::spawn_blocking(move || ensure_default_model(&dir))
            .await
            .context("model fetch task")??;
    }
    Ok(())
}

/// Every backend of `registry`, counted in `metrics`: requests in flight
/// (the queue depth the console shows), tokens and generation speed, for
/// every caller alike (the API, agent runs, plugins' `llm` calls, the
/// policy judge).
pub fn metered(registry: &ModelRegistry, metrics: &Arc<Metrics>) -> ModelRegistry {
    let mut out = ModelRegistry::default();
    for backend in registry.iter() {
        out.insert(Arc::new(Metered {
            inner: backend.clone(),
            metrics: metrics.clone(),
        }));
    }
    out
}

struct Metered {
    inner: Arc<dyn Backend>,
    metrics: Arc<Metrics>,
}

#[async_trait::async_trait]
impl Backend for Metered {
    fn model_id(&self) -> &str {
        self.inner.model_id()
    }

    fn owned_by(&self) -> &str {
        self.inner.owned_by()
    }

    fn engine_stats(&self) -> Option<warden_llm::EngineStats> {
        self.inner.engine_stats()
    }

    async fn chat(&self, request: ChatRequest) -> Result<ChatOutput, LlmError> {
        let _counted = self.metrics.in_flight(self.model_id());
        let start = Instant::now();
        let out = self.inner.chat(request).await?;
        self.metrics.record_tokens(
            self.model_id(),
            out.usage.prompt_tokens,
            out.usage.completion_tokens,
            start.elapsed().as_secs_f64(),
        );
        Ok(out)
    }

    async fn chat_stream(&self, request: ChatRequest) -> Result<EventStream, LlmError> {
        let counted = self.metrics.in_flight(self.model_id());
        let start = Instant::now();
        let stream = self.inner.chat_stream(request).await?;
        let metrics = self.metrics.clone();
        let model = self.model_id().to_owned();
        // The guard lives in the closure, so the request counts as in
        // flight until the stream ends or its reader drops it.
        Ok(stream
            .inspect(move |event| {
                let _counted = &counted;
                if let Ok(StreamEvent::Done { usage, .. }) = event {
                    metrics.record_tokens(
                        &model,
                        usage.prompt_tokens,
                        usage.completion_tokens,
                        start.elapsed().as_secs_f64(),
                    );
                }
            })
            .boxed())
    }
}
