//! What a paused run needs to continue: its conversation so far and the
//! step waiting for an approver. Stored as JSON on the run row, so a run
//! survives a restart while it waits.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use warden_llm::{ChatMessage, Role, ToolCall};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LoopState {
    pub messages: Vec<SavedMessage>,
    /// The user's message (after the input check), restated when the model
    /// is pressed for an answer.
    #[serde(default)]
    pub question: String,
    /// Calls already made, so repeats are caught.
    pub done_calls: Vec<(String, Value)>,
    /// Model calls made so far (counted against `max_steps`).
    pub model_calls: u32,
    /// The next model call may only answer.
    pub answer_only: bool,
    /// `start_with` has been honoured.
    pub started: bool,
    pub pending: Option<PendingStep>,
}

/// A model step whose calls wait for a decision on one of them.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PendingStep {
    /// The model's text and (native) tool calls, to feed back afterwards.
    pub text: String,
    pub tool_calls: Vec<ToolCall>,
    /// The step's calls, in order.
    pub calls: Vec<(String, Value)>,
    /// The call that needs approval, and its place among `calls` (two
    /// identical calls in one step are two decisions).
    pub waiting: (String, Value),
    #[serde(default)]
    pub waiting_index: usize,
    /// The policy message shown to approvers.
    pub message: String,
    /// Decisions already taken on other calls of this step, by place.
    #[serde(default)]
    pub decided: Vec<(usize, Resolution)>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SavedMessage {
    pub role: Role,
    pub content: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
}

impl From<&ChatMessage> for SavedMessage {
    fn from(m: &ChatMessage) -> Self {
        Self {
            role: m.role,
            content: m.content.clone(),
            tool_calls: m.tool_calls.clone(),
            tool_call_id: m.tool_call_id.clone(),
        }
    }
}

impl From<&SavedMessage> for ChatMessage {
    fn from(m: &SavedMessage) -> Self {
        Self {
            role: m.role,
            content: m.content.clone(),
            tool_calls: m.tool_calls.clone(),
            tool_call_id: m.tool_call_id.clone(),
        }
    }
}

/// An approver's answer to a paused step.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Resolution {
    pub approved: bool,
    pub by: String,
    pub reason: Option<String>,
}
