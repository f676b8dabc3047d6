//! Running a step's tool calls: each is checked at `tool_call` (and may
//! pause the run for an approver), the allowed ones run concurrently in the
//! sandbox, and each result is checked at `tool_result` before the model,
//! the run record or anyone else sees it.

use sea_orm::DbErr;
use serde_json::{Value, json};

use super::{End, Flow, Run, blocked_message, cut, stops};
use crate::memory::MemoryError;
use crate::planner::Step;
use crate::runs::StepKind;
use crate::state::{LoopState, PendingStep, Resolution};
use crate::tools::ResolvedTool;
use warden_policy::{Action, Stage};

impl Run<'_> {
    /// Checks every requested call, then runs the allowed ones
    /// (concurrently when there are several), and returns what the model
    /// should be told about each. A call needing approval pauses the step
    /// before anything runs, unless `decided` answers it.
    pub(super) async fn call_tools(
        &mut self,
        tools: &[ResolvedTool],
        steps: &[Step],
        decided: &[(usize, Resolution)],
    ) -> Flow<Vec<String>> {
        let mut approved = Vec::new();
        let mut replies: Vec<Option<String>> = Vec::new();
        for (index, step) in steps.iter().enumerate() {
            let Step::Call { tool, arguments } = step else {
                replies.push(Some(
                    "A final answer cannot be mixed with tool calls.".into(),
                ));
                continue;
            };
            let Some(t) = tools.iter().find(|t| &t.name == tool) else {
                let names: Vec<&str> = tools.iter().map(|t| t.name.as_str()).collect();
                self.record(
                    StepKind::ToolCall,
                    json!({"tool": tool, "arguments": arguments, "error": "unknown tool"}),
                    0.0,
                    None,
                )
                .await?;
                replies.push(Some(format!(
                    "There is no tool {tool:?}. Available: {}.",
                    names.join(", ")
                )));
                continue;
            };
            if !arguments.is_object() {
                self.record(
                    StepKind::ToolCall,
                    json!({"tool": tool, "arguments": arguments, "error": "arguments are not an object"}),
                    0.0,
                    None,
                )
                .await?;
                replies.push(Some(format!(
                    "The arguments for {tool} must be a JSON object."
                )));
                continue;
            }
            let this_call = (tool.clone(), arguments.clone());
            let resolution = decided.iter().find(|(i, _)| *i == index).map(|(_, r)| r);
            if let Some(r) = resolution.filter(|r| !r.approved) {
                replies.push(Some(format!(
                    "The call to {tool} was rejected by {}{}.",
                    r.by,
                    r.reason
                        .as_deref()
                        .map(|x| format!(": {x}"))
                        .unwrap_or_default()
                )));
                continue;
            }
            let checked = self
                .govern(Stage::ToolCall, &arguments.to_string(), Some(t))
                .await?;
            match checked.decision.decision {
                Action::Block => {
                    replies.push(Some(format!(
                        "The call to {tool} was blocked by policy: {}",
                        blocked_message(&checked)
                    )));
                    continue;
                }
                Action::RequireApproval if resolution.is_none() => {
                    let waiting = LoopState {
                        pending: Some(PendingStep {
                            text: String::new(),
                            tool_calls: Vec::new(),
                            calls: Vec::new(),
                            waiting: this_call,
                            waiting_index: index,
                            message: String::new(),
                            decided: Vec::new(),
                        }),
                        ..LoopState::default()
                    };
                    return Err(End::Paused(Box::new(waiting), blocked_message(&checked)).into());
                }
                _ => {}
            }
            let arguments: Value = match checked.decision.redacted.as_deref() {
                None => arguments.clone(),
                Some(r) => match serde_json::from_str::<Value>(r) {
                    Ok(v) if v.is_object() => v,
                    // Redacted arguments that no longer parse are not sent
                    // raw instead: the call does not run.
                    _ => {
                        replies.push(Some(format!(
                            "The call to {tool} was stopped: a policy redaction left its arguments unreadable."
                        )));
                        continue;
                    }
                },
            };
            approved.push((replies.len(), t.clone(), arguments));
            replies.push(None);
        }
        let user = self.subject.key.clone();
        let calls = approved
            .iter()
            .map(|(_, t, args)| self.runner.tools.call(t, args, user.as_deref(), &self.id));
        let outcomes = futures::future::join_all(calls).await;
        for ((slot, t, args), outcome) in approved.into_iter().zip(outcomes) {
            let ms = outcome.elapsed.as_secs_f64() * 1000.0;
            let reply = match outcome.result {
                Ok(output) => {
                    self.remember(&t, &args).await?;
                    let text = output.to_string();
                    // Checked before it is stored or shown to anyone.
                    let checked = self.govern(Stage::ToolResult, &text, Some(&t)).await?;
                    let withheld = stops(checked.decision.decision);
                    let stored = if withheld {
                        json!({"withheld": true})
                    } else {
                        let seen = checked.decision.text(&text);
                        serde_json::from_str::<Value>(seen).unwrap_or_else(|_| json!(seen))
                    };
                    self.record(
                        StepKind::ToolCall,
                        json!({"plugin": t.plugin, "plugin_version": t.plugin_version, "tool": t.name, "arguments": args, "output": stored}),
                        ms,
                        None,
                    )
                    .await?;
                    if withheld {
                        format!(
                            "The result of {} was withheld by policy: {}",
                            t.name,
                            blocked_message(&checked)
                        )
                    } else if finds_nothing(&stored) {
                        // Small models restate the question after an empty
                        // result; saying what it means leads to an answer.
                        format!(
                            "Result of {}: {} (nothing found). Do not repeat the call. \
                             If another tool can help, call it; otherwise answer with \
                             {{\"final\": ...}} and say that nothing was found.",
                            t.name,
                            cut(checked.decision.text(&text))
                        )
                    } else {
                        format!(
                            "Result of {}: {}",
                            t.name,
                            cut(checked.decision.text(&text))
                        )
                    }
                }
                Err(e) => {
                    let e = e.to_string();
                    self.record(
                        StepKind::ToolCall,
                        json!({"plugin": t.plugin, "plugin_version": t.plugin_version, "tool": t.name, "arguments": args, "error": e}),
                        ms,
                        None,
                    )
                    .await?;
                    format!(
                        "The tool {} failed: {}. Fix the arguments and call it again if \
                         the error says how; otherwise answer with {{\"final\": ...}} and \
                         tell the user what went wrong.",
                        t.name,
                        cut(&e)
                    )
                }
            };
            replies[slot] = Some(reply);
        }
        Ok(replies.into_iter().flatten().collect())
    }

    /// Preferences the chatbot plugin saved for this user also become the
    /// user's memory, so every agent with memory sees them.
    async fn remember(&self, t: &ResolvedTool, args: &Value) -> Result<(), DbErr> {
        if (t.plugin.as_str(), t.name.as_str()) != crate::memory::REMEMBER_TOOL {
            return Ok(());
        }
        let (Some(user), Some(key), Some(value)) = (
            self.subject.key.as_deref(),
            args.get("key").and_then(Value::as_str),
            args.get("value").and_then(Value::as_str),
        ) else {
            return Ok(());
        };
        if crate::memory::validate(key, value).is_ok() {
            let source = format!("{}/{}", t.plugin, t.name);
            match self.runner.memory.put(user, key, value, &source).await {
                // The plugin kept the preference; a full memory only skips
                // the mirror (the user sees the limit in /api/memory), it
                // does not fail the run.
                Ok(()) | Err(MemoryError::Full) => {}
                Err(MemoryError::Db(e)) => return Err(e),
            }
        }
        Ok(())
    }
}

/// Whether a tool's output holds nothing: `null`, an empty string, list or
/// object, or an object whose only contents are such (`{"matches": []}`).
pub(super) fn finds_nothing(output: &Value) -> bool {
    match output {
        Value::Null => true,
        Value::String(s) => s.trim().is_empty(),
        Value::Array(items) => items.is_empty(),
        Value::Object(fields) => fields.values().all(|v| match v {
            Value::Array(_) | Value::Object(_) | Value::Null => finds_nothing(v),
            // A count of zero says nothing was found too.
            Value::Number(n) => n.as_u64() == Some(0),
            _ => false,
        }),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::finds_nothing;
    use serde_json::json;

    #[test]
    fn empty_results_are_recognised_and_real_ones_are_not() {
        for empty in [
            json!(null),
            json!(""),
            json!([]),
            json!({}),
            json!({"matches": []}),
            json!({"matches": [], "total": 0}),
            json!({"results": {"items": []}}),
        ] {
            assert!(finds_nothing(&empty), "{empty}");
        }
        for found in [
            json!({"matches": [{"id": "faq-1"}]}),
            json!({"id": "doc-1"}),
            json!({"ok": true}),
            json!({"total": 3, "items": []}),
            json!("text"),
            json!(0),
        ] {
            assert!(!finds_nothing(&found), "{found}");
        }
    }
}
