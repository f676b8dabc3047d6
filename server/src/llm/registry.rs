//! Model id → backend.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::Context;

use super::{Backend, EmbeddedBackend, RemoteBackend};
use crate::config::{Config, ModelConfig};

#[derive(Clone, Default)]
pub struct ModelRegistry {
    backends: BTreeMap<String, Arc<dyn Backend>>,
}

impl ModelRegistry {
    /// Starts every configured backend. Embedded models load here, which
    /// takes a few seconds each.
    pub async fn from_config(config: &Config) -> anyhow::Result<Self> {
        let mut registry = Self::default();
        for model in config.effective_models() {
            let backend: Arc<dyn Backend> = match &model {
                ModelConfig::Embedded { id, path, dtype } => {
                    let path = match path {
                        Some(p) => p.clone(),
                        None => crate::model::default_model_path(config)
                            .with_context(|| format!("model {id:?}: no path given and the default model is not installed; run `warden model fetch`"))?,
                    };
                    Arc::new(
                        EmbeddedBackend::load(id, &path, *dtype)
                            .await
                            .with_context(|| {
                                format!("loading model {id:?} from {}", path.display())
                            })?,
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
                    Arc::new(RemoteBackend::new(
                        id,
                        base_url,
                        key,
                        upstream_model.as_deref().unwrap_or(id),
                        std::time::Duration::from_secs(*timeout_secs),
                    )?)
                }
            };
            registry.insert(backend);
        }
        Ok(registry)
    }

    pub fn insert(&mut self, backend: Arc<dyn Backend>) {
        self.backends.insert(backend.model_id().to_owned(), backend);
    }

    pub fn get(&self, id: &str) -> Option<Arc<dyn Backend>> {
        self.backends.get(id).cloned()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<dyn Backend>> {
        self.backends.values()
    }
}
