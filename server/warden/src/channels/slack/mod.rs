//! One Slack app as a channel connection: how Warden words replies in
//! Slack (escaped mrkdwn, a placeholder updated in place, Block Kit
//! approval buttons) and how it delivers them through the Web API.
//! `routes.rs` receives Slack's requests; `client.rs` calls the Web API.

mod client;
pub mod routes;

use std::sync::{Arc, OnceLock};

use serde_json::{Value, json};

use warden_agents::{StepKind, StepRecord};
use warden_channels::{ApprovalNeeded, Channel, Delivery, Message, Outcome, Outgoing};
use warden_slack::config::SlackConfig;
use warden_slack::events::Filter;
use warden_slack::text::{SECTION_LIMIT, escape, split};

/// Sections per message: Slack allows 50 blocks, and a long answer reads
/// better as a few messages than as one wall.
const SECTIONS_PER_MESSAGE: usize = 10;

pub struct SlackConnection {
    pub config: SlackConfig,
    /// Never logged, never `Debug`-printed.
    signing_secret: String,
    client: client::WebApi,
    bot_user_id: Arc<OnceLock<String>>,
}

impl SlackConnection {
    pub fn new(config: SlackConfig, env: &impl Fn(&str) -> Option<String>) -> anyhow::Result<Self> {
        let (signing_secret, bot_token) = config.secrets(env)?;
        let bot_user_id = Arc::new(OnceLock::new());
        if let Some(id) = &config.bot_user_id {
            let _ = bot_user_id.set(id.clone());
        }
        Ok(Self {
            client: client::WebApi::new(&config, bot_token)?,
            config,
            signing_secret,
            bot_user_id,
        })
    }

    pub(crate) fn signing_secret(&self) -> &[u8] {
        self.signing_secret.as_bytes()
    }

    /// What this app answers: its workspaces and channels, never itself.
    pub fn filter(&self) -> Filter {
        Filter {
            allowed_teams: self.config.allowed_teams.clone(),
            allowed_channels: self.config.allowed_channels.clone(),
            bot_user_id: self.bot_user_id.get().cloned(),
        }
    }

    /// Asks `auth.test` for the bot's user id (in the background, retrying
    /// a few times); until it is known, our own messages are still
    /// recognised by their `bot_id`.
    pub fn learn_bot_user(&self) {
        if self.bot_user_id.get().is_some() {
            return;
        }
        let client = self.client.clone();
        let slot = self.bot_user_id.clone();
        let name = self.config.name.clone();
        tokio::spawn(async move {
            for attempt in 0..5u32 {
                match client.auth_test().await {
                    Ok(id) => {
                        tracing::info!(connection = %name, bot_user_id = %id, "slack: bot user known");
                        let _ = slot.set(id);
                        return;
                    }
                    Err(e) => {
                        tracing::warn!(connection = %name, error = %e, "slack: auth.test failed");
                        tokio::time::sleep(std::time::Duration::from_secs(2u64 << attempt)).await;
                    }
                }
            }
        });
    }

    pub fn is_approver(&self, team: &str, user: &str) -> bool {
        self.config.allowed_teams.iter().any(|t| t == team)
            && self.config.approvers.iter().any(|u| u == user)
    }
}

/// Where a reply goes: a thread (events) or a `response_url` (commands).
fn reply_target(msg: &Message) -> (Option<&str>, Option<&str>, Option<&str>) {
    let r = &msg.reply_to;
    (
        r.get("channel").and_then(Value::as_str),
        r.get("thread_ts").and_then(Value::as_str),
        r.get("response_url").and_then(Value::as_str),
    )
}

fn note(text: &str) -> Value {
    json!({
        "text": text,
        "blocks": [{"type": "context", "elements": [{"type": "mrkdwn", "text": text}]}],
    })
}

/// Escaped model text as messages of sections within Slack's limits.
fn messages(text: &str, footer: &str) -> Vec<Value> {
    let escaped = escape(text);
    let pieces = split(&escaped, SECTION_LIMIT);
    let groups: Vec<&[String]> = pieces.chunks(SECTIONS_PER_MESSAGE).collect();
    let last = groups.len().saturating_sub(1);
    groups
        .iter()
        .enumerate()
        .map(|(i, group)| {
            let mut blocks: Vec<Value> = group
                .iter()
                .map(|p| json!({"type": "section", "text": {"type": "mrkdwn", "text": p}}))
                .collect();
            if i == last {
                blocks.push(
                    json!({"type": "context", "elements": [{"type": "mrkdwn", "text": footer}]}),
                );
            }
            json!({"text": group.first().cloned().unwrap_or_default(), "blocks": blocks})
        })
        .collect()
}

#[async_trait::async_trait]
impl Channel for SlackConnection {
    fn channel(&self) -> &'static str {
        "slack"
    }

    fn connection(&self) -> &str {
        &self.config.name
    }

    fn placeholder(&self, msg: &Message) -> Option<Outgoing> {
        let (channel, thread, _) = reply_target(msg);
        let (channel, thread) = (channel?, thread?);
        Some(Outgoing {
            kind: "post".into(),
            target: json!({"channel": channel, "thread_ts": thread}),
            body: note("_working…_"),
            after_placeholder: false,
            progress: false,
        })
    }

    fn progress(&self, msg: &Message, step: &StepRecord) -> Option<Outgoing> {
        let (channel, _, _) = reply_target(msg);
        let channel = channel?;
        let text = match step.kind {
            StepKind::ToolCall => {
                let tool = step
                    .detail
                    .get("tool")
                    .and_then(Value::as_str)
                    .unwrap_or("a tool");
                format!("_working… used `{}`_", escape(tool).replace('`', "'"))
            }
            StepKind::AwaitingApproval => "_waiting for an approver…_".to_owned(),
            StepKind::Approval => {
                let yes = step.detail.get("approved").and_then(Value::as_bool) == Some(true);
                format!(
                    "_working… the call was {}_",
                    if yes { "approved" } else { "rejected" }
                )
            }
            _ => return None,
        };
        Some(Outgoing {
            kind: "update".into(),
            target: json!({"channel": channel}),
            body: note(&text),
            after_placeholder: true,
            progress: true,
        })
    }

    fn outcome(&self, msg: &Message, run_id: &str, outcome: &Outcome) -> Vec<Outgoing> {
        let footer = if run_id.is_empty() {
            format!("agent `{}`", escape(&msg.agent))
        } else {
            format!("agent `{}` · run `{run_id}`", escape(&msg.agent))
        };
        let text = match outcome {
            Outcome::Answer(a) if !a.trim().is_empty() => a.clone(),
            Outcome::Answer(_) => "(the agent gave an empty answer)".to_owned(),
            Outcome::Stopped { status, message } => {
                format!("I could not answer ({status}): {message}")
            }
        };
        let bodies = messages(&text, &footer);
        let (channel, thread, response_url) = reply_target(msg);
        bodies
            .into_iter()
            .enumerate()
            .map(|(i, body)| match (channel, thread, response_url) {
                (_, _, Some(url)) => Outgoing {
                    kind: "respond".into(),
                    target: json!({"response_url": url}),
                    body: {
                        let mut b = body;
                        b["response_type"] = json!("in_channel");
                        b
                    },
                    after_placeholder: false,
                    progress: false,
                },
                // The first message takes the placeholder's place.
                (Some(c), t, None) => Outgoing {
                    kind: if i == 0 { "update" } else { "post" }.into(),
                    target: json!({"channel": c, "thread_ts": t}),
                    body,
                    after_placeholder: i == 0,
                    progress: false,
                },
                (None, _, None) => Outgoing {
                    kind: "drop".into(),
                    target: Value::Null,
                    body,
                    after_placeholder: false,
                    progress: false,
                },
            })
            .collect()
    }

    fn approval(&self, msg: &Message, needed: &ApprovalNeeded) -> Vec<Outgoing> {
        let request = warden_slack::blocks::approval(&warden_slack::blocks::ApprovalRequest {
            run_id: &needed.run_id,
            pause: needed.pause,
            agent: &needed.agent,
            tool: &needed.tool,
            arguments: &needed.arguments,
            rule: &needed.rule,
        });
        let (channel, thread, response_url) = reply_target(msg);
        let ask = match (&self.config.approval_channel, channel, response_url) {
            (Some(approvers), _, _) => Outgoing {
                kind: "post".into(),
                target: json!({"channel": approvers}),
                body: request,
                after_placeholder: false,
                progress: false,
            },
            (None, Some(c), _) => Outgoing {
                kind: "post".into(),
                target: json!({"channel": c, "thread_ts": thread}),
                body: request,
                after_placeholder: false,
                progress: false,
            },
            (None, None, url) => Outgoing {
                kind: "respond".into(),
                target: json!({"response_url": url}),
                body: {
                    let mut b = request;
                    b["response_type"] = json!("ephemeral");
                    b
                },
                after_placeholder: false,
                progress: false,
            },
        };
        let mut out = vec![ask];
        if let Some(c) = channel {
            out.push(Outgoing {
                kind: "update".into(),
                target: json!({"channel": c}),
                body: note("_waiting for an approver…_"),
                after_placeholder: true,
                progress: true,
            });
        }
        out
    }

    async fn deliver(
        &self,
        kind: &str,
        target: &Value,
        body: &Value,
        placeholder_ref: Option<&str>,
    ) -> Delivery {
        match kind {
            "post" => self.client.post_message(target, body).await,
            // Without a delivered placeholder, the update is a new message.
            "update" => match placeholder_ref {
                Some(ts) => self.client.update_message(target, ts, body).await,
                // An answer still goes to the thread; a progress note
                // (no thread in its target) is not worth a message.
                None if target.get("thread_ts").is_some_and(|t| !t.is_null()) => {
                    self.client.post_message(target, body).await
                }
                None => Delivery::Sent { external_ref: None },
            },
            "respond" => {
                let url = target
                    .get("response_url")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                self.client.respond(url, body).await
            }
            other => Delivery::Failed(format!("nothing to deliver a {other:?} message to")),
        }
    }
}
