//! Scripted tools: a [`ToolHost`] test double for the loop's edge cases
//! (errors, timeouts, leaks, concurrency, effects) and for in-process API
//! tests. The real plugins run in the integration suite.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::{Value, json};

use crate::tools::{ResolveError, ResolvedTool, ToolFailure, ToolHost, ToolOutcome};

/// Offers, whatever the patterns, these tools of plugin `test.tools`:
/// `lookup` echoes its arguments, `fail` errors, `slow` takes 200 ms,
/// `leak` returns an AWS key, `hang` reports a timeout, `send` has an
/// `external` effect; and `warden.chatbot/remember_preference`, whose
/// calls the loop mirrors into memory.
#[derive(Default)]
pub struct ScriptedTools {
    calls: Mutex<Vec<(String, Value)>>,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
}

impl ScriptedTools {
    /// Every call made so far: `(tool, arguments)`.
    pub fn calls(&self) -> Vec<(String, Value)> {
        self.calls.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The most calls that ran at the same time.
    pub fn max_in_flight(&self) -> usize {
        self.max_in_flight.load(Ordering::SeqCst)
    }
}

#[async_trait::async_trait]
impl ToolHost for ScriptedTools {
    async fn resolve(&self, _: &[String]) -> Result<Vec<ResolvedTool>, ResolveError> {
        let tool = |name: &str, effect: &str| ResolvedTool {
            plugin: "test.tools".into(),
            plugin_version: "1.0.0".into(),
            name: name.into(),
            description: format!("the {name} tool"),
            effect: effect.into(),
            schema: json!({"type": "object", "properties": {"q": {"type": "string"}}}),
        };
        let mut remember = tool("remember_preference", "writes");
        remember.plugin = "warden.chatbot".into();
        Ok(vec![
            remember,
            tool("lookup", "reads"),
            tool("fail", "reads"),
            tool("slow", "reads"),
            tool("leak", "reads"),
            tool("hang", "reads"),
            tool("send", "external"),
        ])
    }

    async fn call(
        &self,
        tool: &ResolvedTool,
        arguments: &Value,
        _: Option<&str>,
        _: &str,
    ) -> ToolOutcome {
        self.calls
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((tool.name.clone(), arguments.clone()));
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_in_flight.fetch_max(now, Ordering::SeqCst);
        let result = match tool.name.as_str() {
            "fail" => Err(ToolFailure::new("failed", "the backend is down")),
            "slow" => {
                tokio::time::sleep(Duration::from_millis(200)).await;
                Ok(json!({"slow": true}))
            }
            "leak" => Ok(json!({"config": "aws key AKIAIOSFODNN7EXAMPLE"})),
            // What the plugin host reports when a call runs past its deadline.
            "hang" => Err(ToolFailure::new(
                "timeout",
                "the call ran past its 10000 ms limit",
            )),
            "send" => Ok(json!({"sent": true})),
            _ => Ok(json!({"found": arguments})),
        };
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        ToolOutcome {
            result,
            elapsed: Duration::from_millis(1),
        }
    }
}
