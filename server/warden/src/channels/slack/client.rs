//! The few Web API methods Warden calls (`chat.postMessage`,
//! `chat.update`, `auth.test`) and `response_url` posts, each mapped to a
//! [`Delivery`]: 429 and Slack's transient errors are retried (honouring
//! `Retry-After`), other `ok: false` errors are recorded as failures.
//! Messages never set `link_names` or `parse: full`, and unfurling is off:
//! model text cannot ping or preview anything.

use std::time::Duration;

use serde_json::{Value, json};

use warden_channels::Delivery;
use warden_slack::config::SlackConfig;

#[derive(Clone)]
pub(super) struct WebApi {
    http: reqwest::Client,
    base: String,
    response_url_prefix: String,
    /// The bot token; never logged.
    token: String,
}

#[derive(Debug, thiserror::Error)]
pub(super) enum AuthTestError {
    #[error("HTTP error: {0}")]
    Http(#[from] reqwest::Error),
    #[error("Slack answered {0}")]
    Slack(String),
}

impl WebApi {
    pub(super) fn new(config: &SlackConfig, token: String) -> anyhow::Result<Self> {
        use anyhow::Context;
        Ok(Self {
            // Never follow a redirect: the token or a response_url must
            // not be carried somewhere else.
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(config.timeout_secs))
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .context("building the Slack HTTP client")?,
            base: config.api_base_url.trim_end_matches('/').to_owned(),
            response_url_prefix: config.response_url_prefix.clone(),
            token,
        })
    }

    pub(super) async fn auth_test(&self) -> Result<String, AuthTestError> {
        let v: Value = self
            .http
            .post(format!("{}/auth.test", self.base))
            .bearer_auth(&self.token)
            .json(&json!({}))
            .send()
            .await?
            .json()
            .await?;
        match v.get("user_id").and_then(Value::as_str) {
            Some(id) if v["ok"] == true => Ok(id.to_owned()),
            _ => Err(AuthTestError::Slack(
                v.get("error")
                    .and_then(Value::as_str)
                    .unwrap_or("no user_id")
                    .to_owned(),
            )),
        }
    }

    pub(super) async fn post_message(&self, target: &Value, body: &Value) -> Delivery {
        let mut m = message(body);
        m["channel"] = target["channel"].clone();
        if let Some(t) = target.get("thread_ts").filter(|t| !t.is_null()) {
            m["thread_ts"] = t.clone();
        }
        m["unfurl_links"] = json!(false);
        m["unfurl_media"] = json!(false);
        self.call("chat.postMessage", &m).await
    }

    pub(super) async fn update_message(&self, target: &Value, ts: &str, body: &Value) -> Delivery {
        let mut m = message(body);
        m["channel"] = target["channel"].clone();
        m["ts"] = json!(ts);
        self.call("chat.update", &m).await
    }

    /// Posts to a `response_url` Slack gave in a signed request; URLs
    /// outside the configured prefix are refused, never fetched.
    pub(super) async fn respond(&self, url: &str, body: &Value) -> Delivery {
        if !url.starts_with(&self.response_url_prefix) {
            return Delivery::Failed(format!(
                "response_url outside {}: not posted",
                self.response_url_prefix
            ));
        }
        let result = self.http.post(url).json(&message(body)).send().await;
        match result {
            Err(e) => retry(format!("response_url: {}", without_url(&e))),
            Ok(r) if r.status().as_u16() == 429 || r.status().is_server_error() => {
                let after = retry_after(&r);
                Delivery::Retry {
                    error: format!("response_url: HTTP {}", r.status().as_u16()),
                    after,
                }
            }
            // Expired (404) or used up: retrying cannot help.
            Ok(r) if !r.status().is_success() => {
                Delivery::Failed(format!("response_url: HTTP {}", r.status().as_u16()))
            }
            Ok(_) => Delivery::Sent { external_ref: None },
        }
    }

    async fn call(&self, method: &str, payload: &Value) -> Delivery {
        let result = self
            .http
            .post(format!("{}/{method}", self.base))
            .bearer_auth(&self.token)
            .json(payload)
            .send()
            .await;
        let response = match result {
            Ok(r) => r,
            Err(e) => return retry(format!("{method}: {}", without_url(&e))),
        };
        let status = response.status().as_u16();
        if status == 429 || response.status().is_server_error() {
            let after = retry_after(&response);
            return Delivery::Retry {
                error: format!("{method}: HTTP {status}"),
                after,
            };
        }
        let v: Value = match response.json().await {
            Ok(v) => v,
            Err(e) => return retry(format!("{method}: unreadable answer: {}", without_url(&e))),
        };
        if v["ok"] == true {
            return Delivery::Sent {
                external_ref: v.get("ts").and_then(Value::as_str).map(str::to_owned),
            };
        }
        let error = v
            .get("error")
            .and_then(Value::as_str)
            .unwrap_or("ok: false");
        match error {
            "ratelimited"
            | "internal_error"
            | "fatal_error"
            | "service_unavailable"
            | "request_timeout" => retry(format!("{method}: {error}")),
            _ => Delivery::Failed(format!("{method}: {error}")),
        }
    }
}

/// The fields Warden sends; anything else a body carries stays out.
fn message(body: &Value) -> Value {
    let mut m = json!({});
    for k in ["text", "blocks", "response_type", "replace_original"] {
        if let Some(v) = body.get(k) {
            m[k] = v.clone();
        }
    }
    m
}

fn retry(error: String) -> Delivery {
    Delivery::Retry { error, after: None }
}

fn retry_after(r: &reqwest::Response) -> Option<Duration> {
    r.headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
}

/// reqwest errors name the URL, and a `response_url` is a credential.
fn without_url(e: &reqwest::Error) -> String {
    let mut s = e.to_string();
    if let Some(url) = e.url() {
        s = s.replace(url.as_str(), "<url>");
    }
    s
}
