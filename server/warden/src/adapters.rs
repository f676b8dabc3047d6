//! Where the capability crates meet: each seam a library crate defines
//! (the governor's [`Judge`], the plugin host's [`LlmProvider`], the
//! agents' [`ToolHost`]) implemented over another crate's service. They
//! live in the binary so that no library crate depends on another just to
//! reach it through a seam.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::OnceCell;
use warden_agents::tools::{ResolveError, ResolvedTool, ToolFailure, ToolHost, ToolOutcome};
use warden_governance::judge::{Judge, JudgeError};
use warden_llm::{
    Backend, ChatMessage, ChatRequest, LlmError, ModelRegistry, ResponseFormat, Role,
};
use warden_plugin_host::runtime::ToolInfo;

use crate::config::Config;
use warden_plugin_host::{CallRequest, LlmProvider, LoadedPlugin, ManageError, PluginManager};

/// `llm_judge` answered by one of the server's models, its output
/// constrained to `{"answer": "yes"|"no"}` so that it always parses.
pub struct RegistryJudge {
    pub registry: Arc<ModelRegistry>,
    pub model: String,
}

#[async_trait::async_trait]
impl Judge for RegistryJudge {
    async fn ask(&self, question: &str, content: &str) -> Result<bool, JudgeError> {
        let backend = self
            .registry
            .get(&self.model)
            .ok_or_else(|| JudgeError(format!("judge model {:?} is not available", self.model)))?;
        let mut request = ChatRequest::new(
            vec![
                ChatMessage::new(
                    Role::System,
                    "You review text for a content policy. Answer the question about the text with yes or no, as JSON.",
                ),
                ChatMessage::new(
                    Role::User,
                    format!(
                        "Question: {question}\n\nText:\n\"\"\"\n{content}\n\"\"\"\n\nAnswer yes or no."
                    ),
                ),
            ],
            16,
        );
        request.temperature = Some(0.0);
        request.seed = Some(0);
        request.response_format = ResponseFormat::JsonSchema {
            name: "verdict".into(),
            schema: serde_json::json!({
                "type": "object",
                "properties": {"answer": {"type": "string", "enum": ["yes", "no"]}},
                "required": ["answer"],
                "additionalProperties": false
            }),
        };
        let out = backend
            .chat(request)
            .await
            .map_err(|e| JudgeError(e.to_string()))?;
        let text = out.content.unwrap_or_default();
        let v: Value = serde_json::from_str(text.trim())
            .map_err(|_| JudgeError("the judge's answer was not JSON".to_owned()))?;
        match v.get("answer").and_then(Value::as_str) {
            Some("yes") => Ok(true),
            Some("no") => Ok(false),
            _ => Err(JudgeError(
                "the judge's answer was neither yes nor no".into(),
            )),
        }
    }
}

/// Plugins' `llm` import served by one of the server's models.
pub struct RegistryLlm {
    pub registry: Arc<ModelRegistry>,
    pub model: String,
}

#[async_trait::async_trait]
impl LlmProvider for RegistryLlm {
    async fn backend(&self) -> Result<Arc<dyn Backend>, LlmError> {
        self.registry
            .get(&self.model)
            .ok_or_else(|| LlmError::UnknownModel(self.model.clone()))
    }
}

/// Plugins' `llm` import for CLI verbs (`warden plugin call`): the
/// configured models are loaded on the first `llm` call only, so a plugin
/// that never asks for the model runs without loading it.
pub struct LazyRegistryLlm {
    pub config: Config,
    pub backend: OnceCell<Arc<dyn Backend>>,
}

#[async_trait::async_trait]
impl LlmProvider for LazyRegistryLlm {
    async fn backend(&self) -> Result<Arc<dyn Backend>, LlmError> {
        self.backend
            .get_or_try_init(|| async {
                let registry = crate::models::load(&self.config)
                    .await
                    .map_err(|e| LlmError::Engine(format!("loading the model: {e:#}")))?;
                let model = self.config.plugin_model();
                registry.get(&model).ok_or(LlmError::UnknownModel(model))
            })
            .await
            .cloned()
    }
}

/// Agents' tools served by the plugin host: every installed plugin, or (for
/// `warden bench agents`) one loaded plugin.
pub enum PluginTools {
    Installed(Arc<PluginManager>),
    Fixed(Arc<LoadedPlugin>),
}

impl PluginTools {
    async fn plugin(&self, id: &str) -> Result<Arc<LoadedPlugin>, ManageError> {
        match self {
            PluginTools::Installed(m) => m.get(id).await,
            PluginTools::Fixed(p) if p.id() == id => Ok(p.clone()),
            PluginTools::Fixed(_) => {
                Err(ManageError::NotFound(format!("plugin {id} is not loaded")))
            }
        }
    }
}

fn resolved(plugin: &LoadedPlugin, t: &ToolInfo) -> ResolvedTool {
    ResolvedTool {
        plugin: plugin.id().to_owned(),
        plugin_version: plugin.manifest.version.clone(),
        name: t.name.clone(),
        description: t.description.clone(),
        effect: t.effect.as_str().to_owned(),
        schema: t.arguments_schema.clone(),
    }
}

#[async_trait::async_trait]
impl ToolHost for PluginTools {
    async fn resolve(&self, patterns: &[String]) -> Result<Vec<ResolvedTool>, ResolveError> {
        let mut out: Vec<ResolvedTool> = Vec::new();
        for pattern in patterns {
            let (plugin_id, tool) = pattern
                .split_once('/')
                .ok_or_else(|| ResolveError::Pattern(pattern.clone()))?;
            let plugin = self
                .plugin(plugin_id)
                .await
                .map_err(|e| ResolveError::Plugin {
                    pattern: pattern.clone(),
                    reason: e.to_string(),
                })?;
            let matching: Vec<_> = plugin
                .tools
                .iter()
                .filter(|t| tool == "*" || t.name == tool)
                .collect();
            if matching.is_empty() {
                return Err(ResolveError::NoSuchTool {
                    plugin: plugin_id.to_owned(),
                    tool: tool.to_owned(),
                });
            }
            for t in matching {
                if let Some(other) = out.iter().find(|o| o.name == t.name) {
                    if other.plugin == plugin_id {
                        continue;
                    }
                    return Err(ResolveError::Ambiguous {
                        tool: t.name.clone(),
                        first: other.plugin.clone(),
                        second: plugin_id.to_owned(),
                    });
                }
                out.push(resolved(&plugin, t));
            }
        }
        Ok(out)
    }

    async fn call(
        &self,
        tool: &ResolvedTool,
        arguments: &Value,
        user: Option<&str>,
        run_id: &str,
    ) -> ToolOutcome {
        let plugin = match self.plugin(&tool.plugin).await {
            Ok(p) => p,
            Err(e) => {
                return ToolOutcome {
                    result: Err(ToolFailure::new("not_found", e.to_string())),
                    elapsed: Duration::ZERO,
                };
            }
        };
        let request = CallRequest {
            user: user.map(str::to_owned),
            conversation: Some(run_id.to_owned()),
        };
        let outcome = plugin
            .call(&tool.name, &arguments.to_string(), &request)
            .await;
        ToolOutcome {
            result: outcome
                .result
                .map_err(|e| ToolFailure::new(e.code(), e.to_string())),
            elapsed: outcome.elapsed,
        }
    }
}
