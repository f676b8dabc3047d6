//! Chat completion on the model the operator assigned. Requires
//! `llm = true` in plugin.toml and in the operator's grant.

use crate::HostError;
use crate::bindings::warden::plugin::llm as wit;

pub use wit::Role;

/// A chat request; build it with [`Request::new`] and the setters.
#[derive(Debug, Clone)]
pub struct Request {
    messages: Vec<wit::Message>,
    max_tokens: Option<u32>,
    temperature: Option<f32>,
    json_schema: Option<String>,
}

/// The model's reply.
#[derive(Debug, Clone)]
pub struct Completion {
    pub text: String,
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
}

impl Request {
    pub fn new() -> Self {
        Request {
            messages: Vec::new(),
            max_tokens: None,
            temperature: None,
            json_schema: None,
        }
    }

    pub fn system(mut self, content: impl Into<String>) -> Self {
        self.messages.push(wit::Message {
            role: Role::System,
            content: content.into(),
        });
        self
    }

    pub fn user(mut self, content: impl Into<String>) -> Self {
        self.messages.push(wit::Message {
            role: Role::User,
            content: content.into(),
        });
        self
    }

    pub fn assistant(mut self, content: impl Into<String>) -> Self {
        self.messages.push(wit::Message {
            role: Role::Assistant,
            content: content.into(),
        });
        self
    }

    pub fn max_tokens(mut self, n: u32) -> Self {
        self.max_tokens = Some(n);
        self
    }

    pub fn temperature(mut self, t: f32) -> Self {
        self.temperature = Some(t);
        self
    }

    /// Constrains the output to this JSON Schema: it always parses.
    pub fn json_schema(mut self, schema: &serde_json::Value) -> Self {
        self.json_schema = Some(schema.to_string());
        self
    }

    pub fn send(self) -> Result<Completion, HostError> {
        let request = wit::CompletionRequest {
            messages: self.messages,
            max_tokens: self.max_tokens,
            temperature: self.temperature,
            json_schema: self.json_schema,
        };
        let c = wit::complete(&request)?;
        Ok(Completion {
            text: c.text,
            prompt_tokens: c.prompt_tokens,
            completion_tokens: c.completion_tokens,
        })
    }
}

impl Default for Request {
    fn default() -> Self {
        Self::new()
    }
}
