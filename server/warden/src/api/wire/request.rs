//! The chat-completions request as clients send it, and its validation
//! into a [`warden_llm::ChatRequest`].
//!
//! Unknown top-level fields are accepted (clients send many optional ones),
//! but every field Warden reads is checked, and values it cannot honour are
//! rejected with the offending parameter named rather than ignored.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use warden_llm::{ChatMessage, ChatRequest, ResponseFormat, Role, ToolCall, ToolChoice, ToolSpec};

use crate::api::error::ApiError;

#[derive(Debug, Deserialize)]
pub struct ChatCompletionRequest {
    pub model: String,
    pub messages: Vec<WireMessage>,
    #[serde(default)]
    pub stream: bool,
    pub stream_options: Option<StreamOptions>,
    pub max_tokens: Option<i64>,
    pub max_completion_tokens: Option<i64>,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub stop: Option<StopField>,
    pub seed: Option<i64>,
    pub n: Option<i64>,
    pub frequency_penalty: Option<f64>,
    pub presence_penalty: Option<f64>,
    pub logprobs: Option<bool>,
    pub tools: Option<Vec<WireTool>>,
    pub tool_choice: Option<Value>,
    pub response_format: Option<WireResponseFormat>,
    // Accepted (and type-checked) so OpenAI clients that send them work
    // unchanged; Warden does not act on them.
    #[expect(dead_code, reason = "accepted for OpenAI compatibility")]
    pub parallel_tool_calls: Option<bool>,
    #[expect(dead_code, reason = "accepted for OpenAI compatibility")]
    pub user: Option<String>,
}

impl ChatCompletionRequest {
    /// Whether a streamed answer ends with a usage chunk.
    pub fn include_usage(&self) -> bool {
        self.stream_options
            .as_ref()
            .is_some_and(|o| o.include_usage)
    }
}

#[derive(Debug, Deserialize)]
pub struct StreamOptions {
    #[serde(default)]
    pub include_usage: bool,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum StopField {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Deserialize)]
pub struct WireMessage {
    pub role: String,
    #[serde(default)]
    pub content: Option<WireContent>,
    #[serde(default)]
    pub tool_calls: Option<Vec<WireToolCall>>,
    pub tool_call_id: Option<String>,
    #[expect(dead_code, reason = "accepted for OpenAI compatibility")]
    pub name: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum WireContent {
    Text(String),
    Parts(Vec<WireContentPart>),
}

#[derive(Debug, Deserialize)]
pub struct WireContentPart {
    #[serde(rename = "type")]
    pub kind: String,
    pub text: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WireToolCall {
    pub id: String,
    #[serde(rename = "type", default = "function_type")]
    pub kind: String,
    pub function: WireFunctionCall,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WireFunctionCall {
    pub name: String,
    pub arguments: String,
}

fn function_type() -> String {
    "function".into()
}

#[derive(Debug, Deserialize)]
pub struct WireTool {
    #[serde(rename = "type")]
    pub kind: String,
    pub function: WireFunction,
}

#[derive(Debug, Deserialize)]
pub struct WireFunction {
    pub name: String,
    pub description: Option<String>,
    pub parameters: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum WireResponseFormat {
    Text,
    JsonObject,
    JsonSchema { json_schema: WireJsonSchema },
}

#[derive(Debug, Deserialize)]
pub struct WireJsonSchema {
    pub name: String,
    pub schema: Option<Value>,
    #[serde(default)]
    #[expect(dead_code, reason = "accepted for OpenAI compatibility")]
    pub strict: Option<bool>,
}

/// Limits applied while validating a request.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub default_max_tokens: u32,
    pub max_tokens_limit: u32,
}

const MAX_STOP_SEQUENCES: usize = 4;
const MAX_TOOLS: usize = 128;

impl ChatCompletionRequest {
    /// Checks every parameter and builds the backend request.
    pub fn validate(&self, limits: Limits) -> Result<ChatRequest, ApiError> {
        if self.messages.is_empty() {
            return Err(ApiError::invalid_param(
                "messages",
                "messages must not be empty",
            ));
        }
        let messages = self
            .messages
            .iter()
            .enumerate()
            .map(|(i, m)| m.validate(i))
            .collect::<Result<Vec<_>, _>>()?;

        let max_tokens = match (self.max_completion_tokens, self.max_tokens) {
            (Some(v), _) => check_max_tokens("max_completion_tokens", v, limits)?,
            (None, Some(v)) => check_max_tokens("max_tokens", v, limits)?,
            (None, None) => limits.default_max_tokens,
        };
        if let Some(t) = self.temperature
            && !(0.0..=2.0).contains(&t)
        {
            return Err(ApiError::invalid_param(
                "temperature",
                "temperature must be between 0 and 2",
            ));
        }
        if let Some(p) = self.top_p
            && !(p > 0.0 && p <= 1.0)
        {
            return Err(ApiError::invalid_param(
                "top_p",
                "top_p must be greater than 0 and at most 1",
            ));
        }
        for (name, v) in [
            ("frequency_penalty", self.frequency_penalty),
            ("presence_penalty", self.presence_penalty),
        ] {
            if let Some(v) = v
                && !(-2.0..=2.0).contains(&v)
            {
                return Err(ApiError::invalid_param(
                    name,
                    &format!("{name} must be between -2 and 2"),
                ));
            }
        }
        if let Some(n) = self.n
            && n != 1
        {
            return Err(ApiError::invalid_param("n", "only n = 1 is supported"));
        }
        if self.logprobs == Some(true) {
            return Err(ApiError::invalid_param(
                "logprobs",
                "logprobs are not supported",
            ));
        }
        if self.stream_options.is_some() && !self.stream {
            return Err(ApiError::invalid_param(
                "stream_options",
                "stream_options is only allowed when stream is true",
            ));
        }
        let stop = match &self.stop {
            None => Vec::new(),
            Some(StopField::One(s)) => vec![s.clone()],
            Some(StopField::Many(v)) => v.clone(),
        };
        if stop.len() > MAX_STOP_SEQUENCES {
            return Err(ApiError::invalid_param(
                "stop",
                "at most 4 stop sequences are allowed",
            ));
        }
        if stop.iter().any(String::is_empty) {
            return Err(ApiError::invalid_param(
                "stop",
                "stop sequences must not be empty",
            ));
        }
        let seed = match self.seed {
            Some(s) if s < 0 => {
                return Err(ApiError::invalid_param("seed", "seed must be non-negative"));
            }
            Some(s) => Some(s as u64),
            None => None,
        };

        let tools = self.validate_tools()?;
        let tool_choice = self.validate_tool_choice(&tools)?;
        let response_format = match &self.response_format {
            None | Some(WireResponseFormat::Text) => ResponseFormat::Text,
            Some(WireResponseFormat::JsonObject) => ResponseFormat::JsonObject,
            Some(WireResponseFormat::JsonSchema { json_schema }) => {
                let schema = json_schema
                    .schema
                    .clone()
                    .unwrap_or_else(|| serde_json::json!({}));
                if !schema.is_object() {
                    return Err(ApiError::invalid_param(
                        "response_format.json_schema.schema",
                        "schema must be a JSON object",
                    ));
                }
                ResponseFormat::JsonSchema {
                    name: json_schema.name.clone(),
                    schema,
                }
            }
        };
        if response_format != ResponseFormat::Text
            && !tools.is_empty()
            && tool_choice != ToolChoice::None
        {
            return Err(ApiError::invalid_param(
                "response_format",
                "response_format cannot be combined with tools unless tool_choice is \"none\"",
            ));
        }

        Ok(ChatRequest {
            messages,
            max_tokens,
            temperature: self.temperature,
            top_p: self.top_p,
            stop,
            seed,
            frequency_penalty: self.frequency_penalty.map(|v| v as f32),
            presence_penalty: self.presence_penalty.map(|v| v as f32),
            tools,
            tool_choice,
            response_format,
        })
    }

    fn validate_tools(&self) -> Result<Vec<ToolSpec>, ApiError> {
        let Some(tools) = &self.tools else {
            return Ok(Vec::new());
        };
        if tools.len() > MAX_TOOLS {
            return Err(ApiError::invalid_param(
                "tools",
                "at most 128 tools are allowed",
            ));
        }
        let mut out = Vec::with_capacity(tools.len());
        for (i, t) in tools.iter().enumerate() {
            if t.kind != "function" {
                return Err(ApiError::invalid_param(
                    &format!("tools[{i}].type"),
                    "only tools of type \"function\" are supported",
                ));
            }
            let name = &t.function.name;
            let valid = !name.is_empty()
                && name.len() <= 64
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
            if !valid {
                return Err(ApiError::invalid_param(
                    &format!("tools[{i}].function.name"),
                    "function names must be 1-64 characters of a-z, A-Z, 0-9, _ or -",
                ));
            }
            if out.iter().any(|s: &ToolSpec| &s.name == name) {
                return Err(ApiError::invalid_param(
                    &format!("tools[{i}].function.name"),
                    &format!("function {name:?} is declared twice"),
                ));
            }
            let parameters = t
                .function
                .parameters
                .clone()
                .unwrap_or_else(|| serde_json::json!({"type": "object", "properties": {}}));
            if !parameters.is_object() {
                return Err(ApiError::invalid_param(
                    &format!("tools[{i}].function.parameters"),
                    "parameters must be a JSON Schema object",
                ));
            }
            out.push(ToolSpec {
                name: name.clone(),
                description: t.function.description.clone(),
                parameters,
            });
        }
        Ok(out)
    }

    fn validate_tool_choice(&self, tools: &[ToolSpec]) -> Result<ToolChoice, ApiError> {
        let bad = |msg: &str| ApiError::invalid_param("tool_choice", msg);
        let choice = match &self.tool_choice {
            None => {
                return Ok(if tools.is_empty() {
                    ToolChoice::None
                } else {
                    ToolChoice::Auto
                });
            }
            Some(Value::String(s)) => match s.as_str() {
                "auto" => ToolChoice::Auto,
                "none" => ToolChoice::None,
                "required" => ToolChoice::Required,
                _ => {
                    return Err(bad(
                        "tool_choice must be \"auto\", \"none\", \"required\" or a function",
                    ));
                }
            },
            Some(Value::Object(o)) => {
                let name = o
                    .get("function")
                    .and_then(|f| f.get("name"))
                    .and_then(Value::as_str)
                    .ok_or_else(|| bad("tool_choice object must be {\"type\":\"function\",\"function\":{\"name\":...}}"))?;
                if !tools.iter().any(|t| t.name == name) {
                    return Err(bad(&format!(
                        "tool_choice names function {name:?}, which is not in tools"
                    )));
                }
                ToolChoice::Function(name.to_owned())
            }
            Some(_) => return Err(bad("tool_choice must be a string or an object")),
        };
        if tools.is_empty() && matches!(choice, ToolChoice::Required | ToolChoice::Function(_)) {
            return Err(bad("tool_choice requires tools"));
        }
        Ok(choice)
    }
}

fn check_max_tokens(param: &str, v: i64, limits: Limits) -> Result<u32, ApiError> {
    if v < 1 || v > i64::from(limits.max_tokens_limit) {
        return Err(ApiError::invalid_param(
            param,
            &format!("{param} must be between 1 and {}", limits.max_tokens_limit),
        ));
    }
    Ok(v as u32)
}

impl WireMessage {
    fn validate(&self, index: usize) -> Result<ChatMessage, ApiError> {
        let param = |field: &str| format!("messages[{index}].{field}");
        let role = match self.role.as_str() {
            "system" | "developer" => Role::System,
            "user" => Role::User,
            "assistant" => Role::Assistant,
            "tool" => Role::Tool,
            other => {
                return Err(ApiError::invalid_param(
                    &param("role"),
                    &format!(
                        "unknown role {other:?}; expected system, developer, user, assistant or tool"
                    ),
                ));
            }
        };
        let content = match &self.content {
            None => None,
            Some(WireContent::Text(t)) => Some(t.clone()),
            Some(WireContent::Parts(parts)) => {
                let mut text = String::new();
                for (j, part) in parts.iter().enumerate() {
                    match (part.kind.as_str(), &part.text) {
                        ("text", Some(t)) => text.push_str(t),
                        _ => {
                            return Err(ApiError::invalid_param(
                                &param(&format!("content[{j}]")),
                                "only text content parts are supported",
                            ));
                        }
                    }
                }
                Some(text)
            }
        };
        let tool_calls: Vec<ToolCall> = self
            .tool_calls
            .iter()
            .flatten()
            .map(|c| ToolCall {
                id: c.id.clone(),
                name: c.function.name.clone(),
                arguments: c.function.arguments.clone(),
            })
            .collect();
        if !tool_calls.is_empty() && role != Role::Assistant {
            return Err(ApiError::invalid_param(
                &param("tool_calls"),
                "only assistant messages may carry tool_calls",
            ));
        }
        match role {
            Role::Tool if self.tool_call_id.is_none() => {
                return Err(ApiError::invalid_param(
                    &param("tool_call_id"),
                    "tool messages need tool_call_id",
                ));
            }
            Role::Assistant if content.is_none() && tool_calls.is_empty() => {
                return Err(ApiError::invalid_param(
                    &param("content"),
                    "assistant messages need content or tool_calls",
                ));
            }
            Role::System | Role::User | Role::Tool if content.is_none() => {
                return Err(ApiError::invalid_param(
                    &param("content"),
                    "content is required",
                ));
            }
            _ => {}
        }
        Ok(ChatMessage {
            role,
            content,
            tool_calls,
            tool_call_id: self.tool_call_id.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        default_max_tokens: 64,
        max_tokens_limit: 512,
    };

    fn parse(v: Value) -> ChatCompletionRequest {
        serde_json::from_value(v).unwrap()
    }

    fn base() -> Value {
        serde_json::json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]})
    }

    fn with(patch: Value) -> ChatCompletionRequest {
        let mut v = base();
        for (k, val) in patch.as_object().unwrap() {
            v[k] = val.clone();
        }
        parse(v)
    }

    #[test]
    fn minimal_request_gets_the_default_max_tokens() {
        let r = parse(base()).validate(LIMITS).unwrap();
        assert_eq!(r.max_tokens, 64);
        assert_eq!(r.tool_choice, ToolChoice::None);
        assert_eq!(r.messages[0].content.as_deref(), Some("hi"));
    }

    #[test]
    fn max_completion_tokens_wins_over_max_tokens() {
        let r = with(serde_json::json!({"max_tokens": 10, "max_completion_tokens": 20}))
            .validate(LIMITS)
            .unwrap();
        assert_eq!(r.max_tokens, 20);
    }

    #[test]
    fn invalid_parameters_are_named() {
        let cases = [
            (serde_json::json!({"max_tokens": 0}), "max_tokens"),
            (serde_json::json!({"max_tokens": 100000}), "max_tokens"),
            (serde_json::json!({"temperature": 3.5}), "temperature"),
            (serde_json::json!({"top_p": 0}), "top_p"),
            (serde_json::json!({"n": 2}), "n"),
            (serde_json::json!({"seed": -1}), "seed"),
            (
                serde_json::json!({"stop": ["a", "b", "c", "d", "e"]}),
                "stop",
            ),
            (serde_json::json!({"messages": []}), "messages"),
            (
                serde_json::json!({"messages": [{"role": "wizard", "content": "x"}]}),
                "messages[0].role",
            ),
            (
                serde_json::json!({"messages": [{"role": "tool", "content": "x"}]}),
                "messages[0].tool_call_id",
            ),
            (
                serde_json::json!({"messages": [{"role": "user", "content": [{"type": "image_url"}]}]}),
                "messages[0].content[0]",
            ),
            (
                serde_json::json!({"tool_choice": "required"}),
                "tool_choice",
            ),
            (
                serde_json::json!({"stream_options": {"include_usage": true}}),
                "stream_options",
            ),
            (
                serde_json::json!({"tools": [{"type": "function", "function": {"name": "bad name"}}]}),
                "tools[0].function.name",
            ),
            (
                serde_json::json!({"tools": [{"type": "function", "function": {"name": "f"}}],
                                   "tool_choice": {"type": "function", "function": {"name": "g"}}}),
                "tool_choice",
            ),
        ];
        for (patch, param) in cases {
            let err = with(patch.clone()).validate(LIMITS).unwrap_err();
            assert_eq!(err.param.as_deref(), Some(param), "{patch}: {err:?}");
            assert_eq!(err.status, axum::http::StatusCode::BAD_REQUEST);
        }
    }

    #[test]
    fn tools_and_tool_choice_translate() {
        let r = with(serde_json::json!({
            "tools": [{"type": "function", "function": {"name": "get_weather",
                "parameters": {"type": "object", "properties": {"place": {"type": "string"}}}}}],
            "tool_choice": {"type": "function", "function": {"name": "get_weather"}}
        }))
        .validate(LIMITS)
        .unwrap();
        assert_eq!(r.tools[0].name, "get_weather");
        assert_eq!(r.tool_choice, ToolChoice::Function("get_weather".into()));
    }

    #[test]
    fn text_parts_are_joined_and_developer_is_a_system_message() {
        let r = with(serde_json::json!({"messages": [
            {"role": "developer", "content": "be brief"},
            {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}
        ]}))
        .validate(LIMITS)
        .unwrap();
        assert_eq!(r.messages[0].role, Role::System);
        assert_eq!(r.messages[1].content.as_deref(), Some("ab"));
    }
}
