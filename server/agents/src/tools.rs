//! The tools an agent can call, behind the [`ToolHost`] seam: the binary
//! implements it over the plugin host (wasmtime), so this crate never links
//! a wasm runtime, and the loop's edge cases can be tested with scripted
//! tools ([`crate::testing::ScriptedTools`]) beside the real plugin tests.

use std::time::Duration;

use serde_json::Value;

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
    /// The tool's JSON output, or why there is none.
    pub result: Result<Value, ToolFailure>,
    pub elapsed: Duration,
}

/// A call that produced no output, as the model and the run record see it:
/// a stable code (`timeout`, `denied`, `not_found`, ...) and a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ToolFailure {
    pub code: String,
    pub message: String,
}

impl ToolFailure {
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            code: code.into(),
            message: message.into(),
        }
    }
}

/// Why `plugin/tool` patterns do not name a usable set of tools.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error("tool {0:?} must be written plugin/tool")]
    Pattern(String),
    #[error("tool {pattern:?}: {reason}")]
    Plugin { pattern: String, reason: String },
    #[error("plugin {plugin} has no tool {tool:?}")]
    NoSuchTool { plugin: String, tool: String },
    #[error("tool name {tool} is offered by both {first} and {second}")]
    Ambiguous {
        tool: String,
        first: String,
        second: String,
    },
}

#[async_trait::async_trait]
pub trait ToolHost: Send + Sync {
    /// The tools matching `patterns` (`plugin/tool` or `plugin/*`).
    async fn resolve(&self, patterns: &[String]) -> Result<Vec<ResolvedTool>, ResolveError>;
    async fn call(
        &self,
        tool: &ResolvedTool,
        arguments: &Value,
        user: Option<&str>,
        run_id: &str,
    ) -> ToolOutcome;
}
