//! A fake Slack on loopback, because Slack itself cannot be reached from
//! here: the Web API methods Warden calls (`auth.test`,
//! `chat.postMessage`, `chat.update`) and `response_url` hooks. It records
//! every call, gives each posted message a `ts`, and can be told to answer
//! the next calls with a 429 and `Retry-After`, an `ok: false` error, or
//! not at all. Tests play Slack's side of the Events API by signing
//! requests with `warden_slack::signature::sign`.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

pub const BOT_USER: &str = "UWARDENBOT";
pub const BOT_TOKEN: &str = "xoxb-fake-token";

/// What the next Web API call (any method) gets instead of success.
#[derive(Debug, Clone)]
pub enum Trouble {
    RateLimited { retry_after_secs: u64 },
    NotOk(&'static str),
    Hang,
}

/// One recorded call.
#[derive(Debug, Clone)]
pub struct Call {
    /// `chat.postMessage`, `chat.update`, `auth.test` or `hook:<id>`.
    pub method: String,
    pub body: Value,
    /// The bearer token it carried.
    pub token: Option<String>,
    /// Answered with success (not a scripted trouble).
    pub ok: bool,
}

impl Call {
    /// The message text: the top-level `text` and every block's text.
    pub fn text(&self) -> String {
        let mut out = self.body["text"].as_str().unwrap_or_default().to_owned();
        for b in self.body["blocks"].as_array().into_iter().flatten() {
            if let Some(t) = b["text"]["text"].as_str() {
                out.push('\n');
                out.push_str(t);
            }
            for e in b["elements"].as_array().into_iter().flatten() {
                if let Some(t) = e["text"].as_str() {
                    out.push('\n');
                    out.push_str(t);
                }
            }
        }
        out
    }
}

#[derive(Clone, Default)]
pub struct FakeSlack {
    /// `http://127.0.0.1:PORT`
    pub base: String,
    calls: Arc<Mutex<Vec<Call>>>,
    trouble: Arc<Mutex<VecDeque<Trouble>>>,
}

impl FakeSlack {
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let fake = FakeSlack {
            base: format!("http://{addr}"),
            ..FakeSlack::default()
        };
        let app = axum::Router::new()
            .route("/api/{method}", post(web_api))
            .route("/hooks/{id}", post(hook))
            .with_state(fake.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        fake
    }

    pub fn api_base_url(&self) -> String {
        format!("{}/api", self.base)
    }

    /// A `response_url` as Slack would hand one out.
    pub fn response_url(&self, id: &str) -> String {
        format!("{}/hooks/{id}", self.base)
    }

    pub fn trouble(&self, t: Trouble) {
        self.trouble.lock().unwrap().push_back(t);
    }

    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }

    /// Successful message calls (posts, updates, hooks), in order.
    pub fn messages(&self) -> Vec<Call> {
        self.calls()
            .into_iter()
            .filter(|c| c.ok && c.method != "auth.test")
            .collect()
    }

    /// Waits (polling, up to `secs`) until `done` holds over the calls.
    pub async fn until(&self, secs: u64, what: &str, done: impl Fn(&[Call]) -> bool) -> Vec<Call> {
        for _ in 0..secs * 10 {
            let calls = self.messages();
            if done(&calls) {
                return calls;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("fake Slack never saw {what}; it saw: {:#?}", self.calls());
    }

    fn record(&self, method: &str, body: Value, headers: &HeaderMap, ok: bool) -> usize {
        let token = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::to_owned);
        let mut calls = self.calls.lock().unwrap();
        calls.push(Call {
            method: method.to_owned(),
            body,
            token,
            ok,
        });
        calls.len()
    }
}

async fn web_api(
    State(fake): State<FakeSlack>,
    Path(method): Path<String>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    if method != "auth.test" {
        let trouble = fake.trouble.lock().unwrap().pop_front();
        if let Some(t) = trouble {
            fake.record(&method, body, &headers, false);
            return match t {
                Trouble::RateLimited { retry_after_secs } => (
                    StatusCode::TOO_MANY_REQUESTS,
                    [("retry-after", retry_after_secs.to_string())],
                    Json(json!({"ok": false, "error": "ratelimited"})),
                )
                    .into_response(),
                Trouble::NotOk(error) => Json(json!({"ok": false, "error": error})).into_response(),
                Trouble::Hang => {
                    std::future::pending::<()>().await;
                    StatusCode::OK.into_response()
                }
            };
        }
    }
    let n = fake.record(&method, body.clone(), &headers, true);
    match method.as_str() {
        "auth.test" => {
            Json(json!({"ok": true, "user_id": BOT_USER, "team_id": "T0001"})).into_response()
        }
        "chat.postMessage" => Json(json!({
            "ok": true, "channel": body["channel"], "ts": format!("1800000000.{n:06}"),
        }))
        .into_response(),
        "chat.update" => {
            Json(json!({"ok": true, "channel": body["channel"], "ts": body["ts"]})).into_response()
        }
        _ => Json(json!({"ok": false, "error": "unknown_method"})).into_response(),
    }
}

async fn hook(
    State(fake): State<FakeSlack>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    fake.record(&format!("hook:{id}"), body, &headers, true);
    "ok".into_response()
}
