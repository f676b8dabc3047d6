//! A remote OpenAI-compatible engine (vLLM, llama.cpp, mistral.rs, another
//! Warden, hosted APIs) through the `async-openai` client.
//!
//! Requests and responses travel as JSON built here ("bring your own types"),
//! because compatible servers differ in the optional fields they accept and
//! return; only the fields Warden relies on are read.

use std::collections::BTreeMap;
use std::time::Duration;

use async_openai::Client;
use async_openai::config::OpenAIConfig;
use async_openai::error::OpenAIError;
use futures::StreamExt;
use serde_json::{Value, json};

use warden_llm::{
    Backend, ChatOutput, ChatRequest, EventStream, FinishReason, LlmError, ResponseFormat, Role,
    StreamEvent, ToolCall, ToolChoice, Usage,
};

/// The remote backend could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    #[error("building the HTTP client")]
    Client(#[from] reqwest::Error),
}

pub struct RemoteBackend {
    id: String,
    upstream_model: String,
    client: Client<OpenAIConfig>,
}

impl RemoteBackend {
    pub fn new(
        id: &str,
        base_url: &str,
        api_key: Option<String>,
        upstream_model: &str,
        timeout: Duration,
    ) -> Result<Self, RemoteError> {
        let mut config = OpenAIConfig::new().with_api_base(base_url.trim_end_matches('/'));
        if let Some(key) = api_key {
            config = config.with_api_key(key);
        }
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .read_timeout(timeout)
            .build()?;
        Ok(Self {
            id: id.to_owned(),
            upstream_model: upstream_model.to_owned(),
            client: Client::with_config(config).with_http_client(http),
        })
    }

    fn body(&self, r: &ChatRequest, stream: bool) -> Value {
        let messages: Vec<Value> = r.messages.iter().map(message_json).collect();
        let mut body = json!({
            "model": self.upstream_model,
            "messages": messages,
            "max_tokens": r.max_tokens,
            "stream": stream,
        });
        let obj = body.as_object_mut().expect("literal object");
        if stream {
            obj.insert("stream_options".into(), json!({"include_usage": true}));
        }
        let mut put = |k: &str, v: Option<Value>| {
            if let Some(v) = v {
                obj.insert(k.into(), v);
            }
        };
        put("temperature", r.temperature.map(Value::from));
        put("top_p", r.top_p.map(Value::from));
        put("seed", r.seed.map(Value::from));
        put("frequency_penalty", r.frequency_penalty.map(Value::from));
        put("presence_penalty", r.presence_penalty.map(Value::from));
        put("stop", (!r.stop.is_empty()).then(|| json!(r.stop)));
        if !r.tools.is_empty() {
            let tools: Vec<Value> = r
                .tools
                .iter()
                .map(|t| {
                    json!({"type": "function", "function": {
                        "name": t.name, "description": t.description, "parameters": t.parameters}})
                })
                .collect();
            put("tools", Some(Value::Array(tools)));
            put(
                "tool_choice",
                Some(match &r.tool_choice {
                    ToolChoice::Auto => json!("auto"),
                    ToolChoice::None => json!("none"),
                    ToolChoice::Required => json!("required"),
                    ToolChoice::Function(name) => {
                        json!({"type": "function", "function": {"name": name}})
                    }
                }),
            );
        }
        put(
            "response_format",
            match &r.response_format {
                ResponseFormat::Text => None,
                ResponseFormat::JsonObject => Some(json!({"type": "json_object"})),
                ResponseFormat::JsonSchema { name, schema } => Some(json!({
                    "type": "json_schema", "json_schema": {"name": name, "schema": schema, "strict": true}})),
            },
        );
        body
    }
}

fn message_json(m: &warden_llm::ChatMessage) -> Value {
    let role = match m.role {
        Role::System => "system",
        Role::User => "user",
        Role::Assistant => "assistant",
        Role::Tool => "tool",
    };
    let mut v = json!({"role": role, "content": m.content});
    if !m.tool_calls.is_empty() {
        v["tool_calls"] = m
            .tool_calls
            .iter()
            .map(|c| json!({"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}))
            .collect();
    }
    if let Some(id) = &m.tool_call_id {
        v["tool_call_id"] = json!(id);
    }
    v
}

fn upstream_error(e: OpenAIError) -> LlmError {
    match e {
        OpenAIError::ApiError(r) if r.status_code.is_client_error() => {
            // The caller's request was refused upstream: report it as theirs.
            LlmError::InvalidRequest(format!(
                "upstream rejected the request: {}",
                r.api_error.message
            ))
        }
        other => LlmError::Upstream(other.to_string()),
    }
}

fn finish_reason(v: &Value) -> FinishReason {
    match v.as_str() {
        Some("length") => FinishReason::Length,
        Some("tool_calls") | Some("function_call") => FinishReason::ToolCalls,
        Some("content_filter") => FinishReason::ContentFilter,
        _ => FinishReason::Stop,
    }
}

fn usage(v: &Value) -> Usage {
    let n = |k: &str| v.get(k).and_then(Value::as_u64).unwrap_or(0) as u32;
    Usage {
        prompt_tokens: n("prompt_tokens"),
        completion_tokens: n("completion_tokens"),
    }
}

fn tool_calls(v: &Value) -> Vec<ToolCall> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| {
            Some(ToolCall {
                id: c.get("id")?.as_str()?.to_owned(),
                name: c.pointer("/function/name")?.as_str()?.to_owned(),
                arguments: c
                    .pointer("/function/arguments")
                    .and_then(Value::as_str)
                    .unwrap_or("{}")
                    .to_owned(),
            })
        })
        .collect()
}

fn parse_output(v: &Value) -> Result<ChatOutput, LlmError> {
    let choice = v
        .pointer("/choices/0")
        .ok_or_else(|| LlmError::Upstream("response has no choices".into()))?;
    let message = choice.get("message").cloned().unwrap_or(Value::Null);
    Ok(ChatOutput {
        content: message
            .get("content")
            .and_then(Value::as_str)
            .map(str::to_owned),
        tool_calls: tool_calls(message.get("tool_calls").unwrap_or(&Value::Null)),
        finish_reason: finish_reason(choice.get("finish_reason").unwrap_or(&Value::Null)),
        usage: usage(v.get("usage").unwrap_or(&Value::Null)),
    })
}

/// Assembles streamed tool-call fragments, which arrive keyed by index.
#[derive(Default)]
struct ToolCallAssembler {
    calls: BTreeMap<u64, ToolCall>,
}

impl ToolCallAssembler {
    fn push(&mut self, deltas: &Value) {
        for d in deltas.as_array().into_iter().flatten() {
            let index = d.get("index").and_then(Value::as_u64).unwrap_or(0);
            let call = self.calls.entry(index).or_insert_with(|| ToolCall {
                id: String::new(),
                name: String::new(),
                arguments: String::new(),
            });
            if let Some(id) = d.get("id").and_then(Value::as_str) {
                call.id = id.to_owned();
            }
            if let Some(name) = d.pointer("/function/name").and_then(Value::as_str) {
                call.name.push_str(name);
            }
            if let Some(args) = d.pointer("/function/arguments").and_then(Value::as_str) {
                call.arguments.push_str(args);
            }
        }
    }

    fn finish(self) -> Vec<ToolCall> {
        self.calls.into_values().collect()
    }
}

#[async_trait::async_trait]
impl Backend for RemoteBackend {
    fn model_id(&self) -> &str {
        &self.id
    }

    fn owned_by(&self) -> &str {
        "remote"
    }

    async fn chat(&self, request: ChatRequest) -> Result<ChatOutput, LlmError> {
        let response: Value = self
            .client
            .chat()
            .create_byot(self.body(&request, false))
            .await
            .map_err(upstream_error)?;
        parse_output(&response)
    }

    async fn chat_stream(&self, request: ChatRequest) -> Result<EventStream, LlmError> {
        let mut upstream = self
            .client
            .chat()
            .create_stream_byot::<Value, Value>(self.body(&request, true))
            .await
            .map_err(upstream_error)?;
        let stream = warden_llm::task_stream::event_stream(move |tx| async move {
            let mut calls = ToolCallAssembler::default();
            let mut finish = FinishReason::Stop;
            let mut total = Usage::default();
            while let Some(chunk) = upstream.next().await {
                let chunk = match chunk {
                    Ok(c) => c,
                    Err(e) => {
                        let _ = tx.send(Err(upstream_error(e))).await;
                        return;
                    }
                };
                if let Some(u) = chunk.get("usage").filter(|u| !u.is_null()) {
                    total = usage(u);
                }
                let Some(choice) = chunk.pointer("/choices/0") else {
                    continue;
                };
                if let Some(text) = choice.pointer("/delta/content").and_then(Value::as_str)
                    && !text.is_empty()
                    && tx
                        .send(Ok(StreamEvent::Content(text.to_owned())))
                        .await
                        .is_err()
                {
                    return;
                }
                if let Some(d) = choice.pointer("/delta/tool_calls") {
                    calls.push(d);
                }
                if let Some(r) = choice.get("finish_reason").filter(|r| !r.is_null()) {
                    finish = finish_reason(r);
                }
            }
            let calls = calls.finish();
            if !calls.is_empty() && tx.send(Ok(StreamEvent::ToolCalls(calls))).await.is_err() {
                return;
            }
            let _ = tx
                .send(Ok(StreamEvent::Done {
                    finish_reason: finish,
                    usage: total,
                }))
                .await;
        });
        Ok(stream)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streamed_tool_call_fragments_are_assembled_by_index() {
        let mut a = ToolCallAssembler::default();
        a.push(&json!([{"index": 0, "id": "call_1", "function": {"name": "get_", "arguments": "{\"pl"}}]));
        a.push(
            &json!([{"index": 0, "function": {"name": "weather", "arguments": "ace\":1}"}},
                       {"index": 1, "id": "call_2", "function": {"name": "f", "arguments": "{}"}}]),
        );
        let calls = a.finish();
        assert_eq!(calls.len(), 2);
        assert_eq!(calls[0].name, "get_weather");
        assert_eq!(calls[0].arguments, "{\"place\":1}");
        assert_eq!(calls[1].id, "call_2");
    }

    #[test]
    fn responses_parse_with_missing_optional_fields() {
        let out = parse_output(&json!({"choices": [{"message": {"content": "hi"}}]})).unwrap();
        assert_eq!(out.content.as_deref(), Some("hi"));
        assert_eq!(out.finish_reason, FinishReason::Stop);
        assert_eq!(out.usage, Usage::default());
        assert!(parse_output(&json!({"choices": []})).is_err());
    }
}
