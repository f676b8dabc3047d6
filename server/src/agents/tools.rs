//! The tools an agent can call: resolved from `plugin/tool` patterns to
//! the installed plugins, and called in their sandbox. Behind a trait so the
//! loop's edge cases can be tested with scripted tools beside the real
//! plugin tests.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::plugins::runtime::ToolInfo;
use crate::plugins::{CallRequest, LoadedPlugin, PluginManager};

#[derive(Debug, Clone)]
pub struct ResolvedTool {
    pub plugin: String,
    pub plugin_version: String,
    pub name: String,
    pub description: String,
    /// pure, reads, writes or external.
    pub effect: String,
    pub schema: Value,
}

pub struct ToolOutcome {
    /// The tool's JSON output, or `code: message`.
    pub result: Result<Value, String>,
    pub elapsed: Duration,
}

#[async_trait::async_trait]
pub trait ToolHost: Send + Sync {
    /// The tools matching `patterns` (`plugin/tool` or `plugin/*`).
    async fn resolve(&self, patterns: &[String]) -> Result<Vec<ResolvedTool>, String>;
    async fn call(
        &self,
        tool: &ResolvedTool,
        arguments: &Value,
        user: Option<&str>,
        run_id: &str,
    ) -> ToolOutcome;
}

impl ResolvedTool {
    pub fn of(plugin: &LoadedPlugin, t: &ToolInfo) -> Self {
        Self {
            plugin: plugin.id().to_owned(),
            plugin_version: plugin.manifest.version.clone(),
            name: t.name.clone(),
            description: t.description.clone(),
            effect: t.effect.as_str().to_owned(),
            schema: t.arguments_schema.clone(),
        }
    }
}

/// One call of a loaded plugin's tool on behalf of a run.
pub async fn call_loaded(
    plugin: &LoadedPlugin,
    tool: &ResolvedTool,
    arguments: &Value,
    user: Option<&str>,
    run_id: &str,
) -> ToolOutcome {
    let request = CallRequest {
        user: user.map(str::to_owned),
        conversation: Some(run_id.to_owned()),
    };
    let outcome = plugin
        .call(&tool.name, &arguments.to_string(), &request)
        .await;
    ToolOutcome {
        result: outcome.result.map_err(|e| format!("{}: {e}", e.code())),
        elapsed: outcome.elapsed,
    }
}

/// The installed plugins, as the server runs them.
pub struct PluginTools(pub Arc<PluginManager>);

#[async_trait::async_trait]
impl ToolHost for PluginTools {
    async fn resolve(&self, patterns: &[String]) -> Result<Vec<ResolvedTool>, String> {
        let mut out: Vec<ResolvedTool> = Vec::new();
        for pattern in patterns {
            let (plugin_id, tool) = pattern
                .split_once('/')
                .ok_or_else(|| format!("tool {pattern:?} must be written plugin/tool"))?;
            let plugin = self
                .0
                .get(plugin_id)
                .await
                .map_err(|e| format!("tool {pattern:?}: {e}"))?;
            let matching: Vec<_> = plugin
                .tools
                .iter()
                .filter(|t| tool == "*" || t.name == tool)
                .collect();
            if matching.is_empty() {
                return Err(format!("plugin {plugin_id} has no tool {tool:?}"));
            }
            for t in matching {
                if let Some(other) = out.iter().find(|o| o.name == t.name) {
                    if other.plugin == plugin_id {
                        continue;
                    }
                    return Err(format!(
                        "tool name {} is offered by both {} and {plugin_id}",
                        t.name, other.plugin
                    ));
                }
                out.push(ResolvedTool::of(&plugin, t));
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
        let plugin = match self.0.get(&tool.plugin).await {
            Ok(p) => p,
            Err(e) => {
                return ToolOutcome {
                    result: Err(format!("not_found: {e}")),
                    elapsed: Duration::ZERO,
                };
            }
        };
        call_loaded(&plugin, tool, arguments, user, run_id).await
    }
}
