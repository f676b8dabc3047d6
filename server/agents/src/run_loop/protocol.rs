//! How a run talks to its model about tools: everything in the loop that
//! depends on [`ToolCalling`] lives behind [`Protocol`], so the loop itself
//! reads the same for both.
//!
//! - [`Planner`]: the model writes one JSON step per turn, constrained by a
//!   closed schema (`{"tool", "arguments"}` or `{"final"}`); tool results
//!   come back as a user message.
//! - [`Native`]: the backend's own tool calling (`tools` + `tool_choice`);
//!   results come back as `tool` messages answering each call.

use serde_json::{Value, json};

use crate::planner::{self, BoundError, MalformedStep, Step};
use crate::spec::{AgentSpec, ToolCalling};
use crate::state::{LoopState, SavedMessage};
use crate::tools::ResolvedTool;
use warden_llm::{
    ChatMessage, ChatOutput, ChatRequest, ResponseFormat, Role, ToolCall, ToolChoice, ToolSpec,
};

/// A model output after the `llm_output` check, read back into what the
/// loop acts on.
pub(super) struct Reading {
    /// The text the model wrote (a planner step, or native content).
    pub text: String,
    /// Native tool calls, with the arguments the policies let through.
    pub calls: Vec<ToolCall>,
    /// The model made calls but a redaction left them unreadable: none run.
    pub calls_lost: bool,
}

pub(super) trait Protocol: Sync {
    /// What is appended to the system prompt to explain the tools, if
    /// anything (native tools travel in the request instead).
    fn instructions(&self, tools: &[ResolvedTool]) -> Option<String>;

    /// Offers `tools` on `request`; without `allow_final` the model must
    /// call one of them. Fails when the tools cannot fit a step.
    fn offer(
        &self,
        request: &mut ChatRequest,
        agent: &AgentSpec,
        tools: &[ResolvedTool],
        allow_final: bool,
    ) -> Result<(), BoundError>;

    /// Whether a final answer can be released while the model writes it.
    fn streams_answer(&self) -> bool;

    /// The whole output as one text, for the `llm_output` check.
    fn checked_text(&self, output: &ChatOutput) -> String;

    /// Reads the checked (possibly redacted) text back.
    fn read(&self, checked: String, output: &ChatOutput) -> Reading;

    /// The steps the reading asks for, or why it is not a step.
    fn steps(&self, reading: &Reading) -> Result<Vec<Step>, MalformedStep>;

    /// Adds the model's turn and the replies to its calls to the conversation.
    fn feed_back(
        &self,
        state: &mut LoopState,
        text: &str,
        calls: &[ToolCall],
        replies: Vec<String>,
    );
}

pub(super) fn of(calling: ToolCalling) -> &'static dyn Protocol {
    match calling {
        ToolCalling::Planner => &Planner,
        ToolCalling::Native => &Native,
    }
}

pub(super) struct Planner;

impl Protocol for Planner {
    fn instructions(&self, tools: &[ResolvedTool]) -> Option<String> {
        Some(planner::instructions(&planner::offers(tools)))
    }

    fn offer(
        &self,
        request: &mut ChatRequest,
        agent: &AgentSpec,
        tools: &[ResolvedTool],
        allow_final: bool,
    ) -> Result<(), BoundError> {
        request.response_format = ResponseFormat::JsonSchema {
            name: "agent_step".into(),
            schema: planner::step_schema(&planner::offers(tools), allow_final, agent.max_tokens)?,
        };
        Ok(())
    }

    fn streams_answer(&self) -> bool {
        true
    }

    fn checked_text(&self, output: &ChatOutput) -> String {
        output.content.clone().unwrap_or_default()
    }

    fn read(&self, checked: String, _: &ChatOutput) -> Reading {
        Reading {
            text: checked,
            calls: Vec::new(),
            calls_lost: false,
        }
    }

    fn steps(&self, reading: &Reading) -> Result<Vec<Step>, MalformedStep> {
        planner::parse_step(&reading.text).map(|s| vec![s])
    }

    fn feed_back(&self, state: &mut LoopState, text: &str, _: &[ToolCall], replies: Vec<String>) {
        push(state, Role::Assistant, text.to_owned());
        push(state, Role::User, replies.join("\n"));
    }
}

pub(super) struct Native;

/// A native step as checked at `llm_output`: text and calls together, so a
/// policy sees (and may redact) the arguments before anything runs.
#[derive(serde::Serialize, serde::Deserialize)]
struct NativeStep {
    content: Option<String>,
    tool_calls: Vec<ToolCall>,
}

impl Protocol for Native {
    fn instructions(&self, _: &[ResolvedTool]) -> Option<String> {
        None
    }

    fn offer(
        &self,
        request: &mut ChatRequest,
        _: &AgentSpec,
        tools: &[ResolvedTool],
        allow_final: bool,
    ) -> Result<(), BoundError> {
        request.tools = tools
            .iter()
            .map(|t| ToolSpec {
                name: t.name.clone(),
                description: Some(t.description.clone()),
                parameters: t.schema.clone(),
            })
            .collect();
        request.tool_choice = match (allow_final, tools) {
            (false, [only]) => ToolChoice::Function(only.name.clone()),
            (false, _) => ToolChoice::Required,
            (true, []) => ToolChoice::None,
            (true, _) => ToolChoice::Auto,
        };
        Ok(())
    }

    fn streams_answer(&self) -> bool {
        false
    }

    fn checked_text(&self, output: &ChatOutput) -> String {
        if output.tool_calls.is_empty() {
            output.content.clone().unwrap_or_default()
        } else {
            json!({"content": output.content, "tool_calls": output.tool_calls}).to_string()
        }
    }

    fn read(&self, checked: String, output: &ChatOutput) -> Reading {
        if output.tool_calls.is_empty() {
            return Reading {
                text: checked,
                calls: Vec::new(),
                calls_lost: false,
            };
        }
        match serde_json::from_str::<NativeStep>(&checked) {
            Ok(n) => Reading {
                calls_lost: n.tool_calls.is_empty(),
                text: n.content.unwrap_or_default(),
                calls: n.tool_calls,
            },
            // A redaction that leaves the calls unreadable stops them:
            // nothing runs on unchecked arguments.
            Err(_) => Reading {
                text: String::new(),
                calls: Vec::new(),
                calls_lost: true,
            },
        }
    }

    fn steps(&self, reading: &Reading) -> Result<Vec<Step>, MalformedStep> {
        if reading.calls.is_empty() {
            return Ok(vec![Step::Final(reading.text.clone())]);
        }
        Ok(reading
            .calls
            .iter()
            .map(|c| Step::Call {
                tool: c.name.clone(),
                arguments: serde_json::from_str(&c.arguments).unwrap_or(Value::Null),
            })
            .collect())
    }

    fn feed_back(
        &self,
        state: &mut LoopState,
        text: &str,
        calls: &[ToolCall],
        replies: Vec<String>,
    ) {
        let mut assistant = ChatMessage::new(Role::Assistant, text);
        assistant.tool_calls = calls.to_vec();
        state.messages.push(SavedMessage::from(&assistant));
        for (call, reply) in calls.iter().zip(replies) {
            let mut m = ChatMessage::new(Role::Tool, reply);
            m.tool_call_id = Some(call.id.clone());
            state.messages.push(SavedMessage::from(&m));
        }
    }
}

pub(super) fn push(state: &mut LoopState, role: Role, content: String) {
    state
        .messages
        .push(SavedMessage::from(&ChatMessage::new(role, content)));
}
