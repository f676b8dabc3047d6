//! One mailbox as a channel connection: inbound mail arrives at
//! `routes.rs` (in the provider's format, `providers.rs`), replies leave by
//! SMTP (`smtp.rs`) through the outbox, threaded under the message they
//! answer; a run that needs approval mails the approvers links to a
//! confirmation page (`approvals.rs`).

pub mod approvals;
mod providers;
pub mod routes;
mod smtp;

use anyhow::Context;
use serde_json::{Value, json};

use warden_channels::messages::MessageIds;
use warden_channels::nonces::Nonces;
use warden_channels::{ApprovalNeeded, Channel, Delivery, Message, Outcome, Outgoing};
use warden_email::approval::{self, Claims, Decision};
use warden_email::config::EmailConfig;
use warden_email::reply;

/// Shortest accepted approval-link secret.
const MIN_SECRET_BYTES: usize = 32;

pub struct EmailConnection {
    pub config: EmailConfig,
    /// The inbound webhook's basic-auth credentials; never logged.
    inbound_auth: Option<(String, String)>,
    /// Mailgun's webhook signing key; never logged.
    signing_key: Option<String>,
    /// Signs approval links; never logged.
    link_secret: Option<Vec<u8>>,
    smtp: smtp::Smtp,
    pub ids: MessageIds,
    pub nonces: Nonces,
}

impl EmailConnection {
    pub fn new(
        config: EmailConfig,
        db: sea_orm::DatabaseConnection,
        env: &impl Fn(&str) -> Option<String>,
    ) -> anyhow::Result<Self> {
        let inbound_auth = match (&config.inbound_user_env, &config.inbound_password_env) {
            (Some(u), Some(p)) => Some((config.read_env(u, env)?, config.read_env(p, env)?)),
            _ => None,
        };
        let signing_key = match &config.signing_key_env {
            Some(var) => Some(config.read_env(var, env)?),
            None => None,
        };
        let link_secret = match &config.approval_secret_env {
            Some(var) => {
                let secret = config.read_env(var, env)?;
                anyhow::ensure!(
                    secret.len() >= MIN_SECRET_BYTES,
                    "{var} must hold at least {MIN_SECRET_BYTES} bytes (approval links are signed with it)"
                );
                Some(secret.into_bytes())
            }
            None => None,
        };
        let smtp = smtp::Smtp::new(&config, env).context("setting up SMTP")?;
        Ok(Self {
            config,
            inbound_auth,
            signing_key,
            link_secret,
            smtp,
            ids: MessageIds::new(db.clone()),
            nonces: Nonces::new(db),
        })
    }

    /// The address replies come from.
    pub fn sender_address(&self) -> &str {
        self.config.addresses.first().map_or("", String::as_str)
    }

    fn domain(&self) -> &str {
        self.sender_address()
            .rsplit_once('@')
            .map_or("localhost", |(_, d)| d)
    }

    /// A reply to the message `msg` came in as, saying `text`.
    fn reply(&self, msg: &Message, text: &str) -> Outgoing {
        let r = &msg.reply_to;
        let strings = |k: &str| -> Vec<String> {
            r.get(k)
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default()
        };
        let parent = r.get("parent_id").and_then(Value::as_str);
        let threading = reply::threading(
            reply::message_id(&uuid::Uuid::new_v4().simple().to_string(), self.domain()),
            parent,
            &strings("references"),
            &strings("in_reply_to"),
        );
        Outgoing {
            kind: "mail".into(),
            target: json!({
                "to": r.get("to"),
                "subject": reply::subject(r.get("subject").and_then(Value::as_str).unwrap_or("")),
                "message_id": threading.message_id,
                "in_reply_to": threading.in_reply_to,
                "references": threading.references,
                "thread_key": msg.thread_key,
            }),
            body: json!({ "text": text }),
            after_placeholder: false,
            progress: false,
        }
    }
}

impl EmailConnection {
    /// The mail asking `approver` to decide: what the agent wants to call,
    /// with the arguments as the policies let them through and the rule
    /// that asked, and one link per decision. A link only opens a page; the
    /// page's button decides (mail scanners follow links).
    fn approval_request(
        &self,
        secret: &[u8],
        base: &str,
        approver: &str,
        needed: &ApprovalNeeded,
    ) -> Outgoing {
        let expires = chrono::Utc::now().timestamp()
            + i64::try_from(self.config.approval_ttl_secs).unwrap_or(i64::MAX / 2);
        let link = |decision: Decision| {
            let token = approval::sign(
                secret,
                &Claims {
                    connection: self.config.name.clone(),
                    run_id: needed.run_id.clone(),
                    pause: needed.pause,
                    approver: approver.to_ascii_lowercase(),
                    decision,
                    expires,
                    nonce: uuid::Uuid::new_v4().simple().to_string(),
                },
            );
            approvals::link(base, &self.config.name, &token)
        };
        let text = format!(
            "Agent {agent} wants to call the tool {tool} and needs your decision (run {run}).\n\n\
             Arguments:\n{args}\n\n\
             Why it asks: {rule}\n\n\
             Approve: {approve}\n\n\
             Reject: {reject}\n\n\
             Each link opens a page where you confirm; it works once and expires {when}.",
            agent = needed.agent,
            tool = needed.tool,
            run = needed.run_id,
            args = needed.arguments,
            rule = needed.rule,
            approve = link(Decision::Approve),
            reject = link(Decision::Reject),
            when = chrono::DateTime::from_timestamp(expires, 0)
                .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
                .unwrap_or_default(),
        );
        let message_id =
            reply::message_id(&uuid::Uuid::new_v4().simple().to_string(), self.domain());
        Outgoing {
            kind: "mail".into(),
            target: json!({
                "to": approver,
                "subject": reply::header_safe(&format!(
                    "Approval needed: {} wants to call {}",
                    needed.agent, needed.tool
                )),
                "message_id": message_id,
                // Not a conversation: a reply to it is not a request.
                "thread_key": Value::Null,
            }),
            body: json!({ "text": text }),
            after_placeholder: false,
            progress: false,
        }
    }
}

#[async_trait::async_trait]
impl Channel for EmailConnection {
    fn channel(&self) -> &'static str {
        "email"
    }

    fn connection(&self) -> &str {
        &self.config.name
    }

    fn placeholder(&self, _: &Message) -> Option<Outgoing> {
        // Mail has no message to update in place: one reply per answer.
        None
    }

    fn progress(&self, _: &Message, _: &warden_agents::StepRecord) -> Option<Outgoing> {
        None
    }

    fn outcome(&self, msg: &Message, run_id: &str, outcome: &Outcome) -> Vec<Outgoing> {
        let text = match outcome {
            Outcome::Answer(a) if !a.trim().is_empty() => a.clone(),
            Outcome::Answer(_) => "(the agent gave an empty answer)".to_owned(),
            Outcome::Stopped { status, message } => {
                format!("I could not answer ({status}): {message}")
            }
        };
        let footer = if run_id.is_empty() {
            format!("-- \nagent {}", msg.agent)
        } else {
            format!("-- \nagent {} · run {run_id}", msg.agent)
        };
        vec![self.reply(msg, &format!("{text}\n\n{footer}"))]
    }

    fn approval(&self, msg: &Message, needed: &ApprovalNeeded) -> Vec<Outgoing> {
        let mut out = vec![self.reply(
            msg,
            &format!(
                "Your request needs an approver's decision before the agent may call {} (run {}).\n\
                 You will get the answer by mail once it is decided.",
                needed.tool, needed.run_id
            ),
        )];
        // Without approvers by mail the run waits for the API (or console).
        if let (Some(secret), Some(base)) = (&self.link_secret, self.config.public_url.as_deref()) {
            for approver in &self.config.approvers {
                out.push(self.approval_request(secret, base, approver, needed));
            }
        }
        out
    }

    async fn deliver(&self, kind: &str, target: &Value, body: &Value, _: Option<&str>) -> Delivery {
        if kind != "mail" {
            return Delivery::Failed(format!("nothing to deliver a {kind:?} message to"));
        }
        let (Some(message_id), Some(to)) = (
            target.get("message_id").and_then(Value::as_str),
            target.get("to").and_then(Value::as_str),
        ) else {
            return Delivery::Failed("the reply has no recipient or id".into());
        };
        // Before it is sent: the answer to it must find its thread.
        if let Some(thread) = target.get("thread_key").and_then(Value::as_str)
            && let Err(e) = self
                .ids
                .record("email", &self.config.name, message_id, thread, to)
                .await
        {
            return Delivery::Retry {
                error: format!("recording the reply's id: {e}"),
                after: None,
            };
        }
        self.smtp.send(self.sender_address(), target, body).await
    }
}
