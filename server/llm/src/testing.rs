//! A scripted backend: a test double for the loop edge cases and the
//! benchmarks that must not measure a model. It answers from a script and
//! remembers every request, so tests can assert what a model was shown.
//!
//! It sits *beside* the real-model tests, never instead of them: the
//! integration suite runs the same paths on the embedded model.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures::StreamExt as _;

use crate::{
    Backend, ChatOutput, ChatRequest, EventStream, FinishReason, LlmError, StreamEvent, ToolCall,
    Usage,
};

/// One scripted model answer.
#[derive(Debug, Clone)]
pub enum Reply {
    /// Plain content (a planner step is JSON content).
    Text(String),
    /// Native tool calls: `(name, arguments JSON)`.
    Calls(Vec<(String, String)>),
    /// Waits, then answers with the text (timeouts and cancels).
    Slow(Duration, String),
    /// The engine fails with this message.
    Fail(String),
}

impl Reply {
    pub fn text(t: impl Into<String>) -> Self {
        Reply::Text(t.into())
    }

    pub fn calls<'a>(calls: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        Reply::Calls(
            calls
                .into_iter()
                .map(|(n, a)| (n.to_owned(), a.to_owned()))
                .collect(),
        )
    }
}

/// Answers from a script, in order; an exhausted script is an engine error.
pub struct ScriptedBackend {
    id: String,
    script: Mutex<VecDeque<Reply>>,
    seen: Mutex<Vec<ChatRequest>>,
}

/// Usage reported for every scripted answer, so token accounting is visible.
pub const SCRIPTED_USAGE: Usage = Usage {
    prompt_tokens: 10,
    completion_tokens: 3,
};

impl ScriptedBackend {
    pub fn new(id: impl Into<String>, script: impl IntoIterator<Item = Reply>) -> Arc<Self> {
        Arc::new(Self {
            id: id.into(),
            script: Mutex::new(script.into_iter().collect()),
            seen: Mutex::default(),
        })
    }

    /// Replaces what is left of the script.
    pub fn set_script(&self, script: impl IntoIterator<Item = Reply>) {
        *lock(&self.script) = script.into_iter().collect();
    }

    /// Appends to the script.
    pub fn push(&self, reply: Reply) {
        lock(&self.script).push_back(reply);
    }

    /// Every request received so far, oldest first.
    pub fn requests(&self) -> Vec<ChatRequest> {
        lock(&self.seen).clone()
    }

    /// The content of the last message of the `n`th request.
    pub fn last_message(&self, n: usize) -> String {
        lock(&self.seen)
            .get(n)
            .and_then(|r| r.messages.last())
            .and_then(|m| m.content.clone())
            .unwrap_or_default()
    }

    fn next(&self, request: ChatRequest) -> Option<Reply> {
        lock(&self.seen).push(request);
        lock(&self.script).pop_front()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn text_output(t: String) -> ChatOutput {
    ChatOutput {
        content: Some(t),
        tool_calls: Vec::new(),
        finish_reason: FinishReason::Stop,
        usage: SCRIPTED_USAGE,
    }
}

#[async_trait::async_trait]
impl Backend for ScriptedBackend {
    fn model_id(&self) -> &str {
        &self.id
    }

    fn owned_by(&self) -> &str {
        "scripted"
    }

    async fn chat(&self, request: ChatRequest) -> Result<ChatOutput, LlmError> {
        match self.next(request) {
            Some(Reply::Text(t)) => Ok(text_output(t)),
            Some(Reply::Calls(calls)) => Ok(ChatOutput {
                content: None,
                tool_calls: calls
                    .into_iter()
                    .enumerate()
                    .map(|(i, (name, arguments))| ToolCall {
                        id: format!("call_{i}"),
                        name,
                        arguments,
                    })
                    .collect(),
                finish_reason: FinishReason::ToolCalls,
                usage: SCRIPTED_USAGE,
            }),
            Some(Reply::Slow(d, t)) => {
                tokio::time::sleep(d).await;
                Ok(text_output(t))
            }
            Some(Reply::Fail(m)) => Err(LlmError::Engine(m)),
            None => Err(LlmError::Engine("script exhausted".into())),
        }
    }

    /// The scripted answer in 3-character pieces, so stream handling is
    /// exercised at awkward boundaries.
    async fn chat_stream(&self, request: ChatRequest) -> Result<EventStream, LlmError> {
        let out = self.chat(request).await?;
        let chars: Vec<char> = out.content.clone().unwrap_or_default().chars().collect();
        let mut events: Vec<Result<StreamEvent, LlmError>> = chars
            .chunks(3)
            .map(|piece| Ok(StreamEvent::Content(piece.iter().collect())))
            .collect();
        if !out.tool_calls.is_empty() {
            events.push(Ok(StreamEvent::ToolCalls(out.tool_calls)));
        }
        events.push(Ok(StreamEvent::Done {
            finish_reason: out.finish_reason,
            usage: out.usage,
        }));
        Ok(futures::stream::iter(events).boxed())
    }
}
