//! One chat completion streamed as server-sent events in OpenAI's chunk
//! format: a role chunk, content deltas, tool calls, a finish chunk, an
//! optional usage chunk, then `[DONE]`. Shared by plain completions and
//! `agent:` completions, so both streams look the same to a client.

use axum::response::sse::Event;
use warden_llm::{FinishReason, ToolCall, Usage};

use super::error::ApiError;
use super::wire::{ChatCompletionChunk, ChunkChoice, ChunkToolCall, Delta, WireFunctionCall};

/// Writes the chunks of one completion (its id, creation time and model).
#[derive(Debug, Clone)]
pub struct ChunkWriter {
    id: String,
    created: i64,
    model: String,
}

impl ChunkWriter {
    pub fn new(id: impl Into<String>, created: i64, model: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            created,
            model: model.into(),
        }
    }

    /// The first chunk: the assistant role with empty content, so clients
    /// see the stream open before the first token.
    pub fn role(&self) -> Event {
        self.delta(
            Delta {
                role: Some("assistant"),
                content: Some(String::new()),
                tool_calls: None,
            },
            None,
        )
    }

    pub fn content(&self, text: String) -> Event {
        self.delta(
            Delta {
                content: Some(text),
                ..Delta::default()
            },
            None,
        )
    }

    pub fn tool_calls(&self, calls: Vec<ToolCall>) -> Event {
        let calls = calls
            .into_iter()
            .enumerate()
            .map(|(i, c)| ChunkToolCall {
                index: i as u32,
                id: c.id,
                kind: "function",
                function: WireFunctionCall {
                    name: c.name,
                    arguments: c.arguments,
                },
            })
            .collect();
        self.delta(
            Delta {
                tool_calls: Some(calls),
                ..Delta::default()
            },
            None,
        )
    }

    pub fn finish(&self, reason: FinishReason) -> Event {
        self.delta(Delta::default(), Some(reason))
    }

    /// The usage chunk (`stream_options.include_usage`): no choices.
    pub fn usage(&self, usage: Usage) -> Event {
        self.event(ChatCompletionChunk {
            id: self.id.clone(),
            object: "chat.completion.chunk",
            created: self.created,
            model: self.model.clone(),
            choices: Vec::new(),
            usage: Some(usage.into()),
        })
    }

    /// An error inside a stream: the OpenAI error body as the event's data.
    pub fn error(err: &ApiError) -> Event {
        Event::default().data(err.body().to_string())
    }

    pub fn done() -> Event {
        Event::default().data("[DONE]")
    }

    fn delta(&self, delta: Delta, finish: Option<FinishReason>) -> Event {
        self.event(ChatCompletionChunk {
            id: self.id.clone(),
            object: "chat.completion.chunk",
            created: self.created,
            model: self.model.clone(),
            choices: vec![ChunkChoice {
                index: 0,
                delta,
                finish_reason: finish,
                logprobs: None,
            }],
            usage: None,
        })
    }

    fn event(&self, chunk: ChatCompletionChunk) -> Event {
        Event::default().data(serde_json::to_string(&chunk).unwrap_or_default())
    }
}
