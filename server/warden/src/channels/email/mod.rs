//! One mailbox as a channel connection: inbound mail arrives at
//! `routes.rs`, replies leave by SMTP (`smtp.rs`) through the outbox,
//! threaded under the message they answer.

pub mod routes;
mod smtp;

use serde_json::{Value, json};

use warden_channels::messages::MessageIds;
use warden_channels::{ApprovalNeeded, Channel, Delivery, Message, Outcome, Outgoing};
use warden_email::config::EmailConfig;
use warden_email::reply;

pub struct EmailConnection {
    pub config: EmailConfig,
    /// The inbound webhook's basic-auth credentials; never logged.
    inbound_user: String,
    inbound_password: String,
    smtp: smtp::Smtp,
    pub ids: MessageIds,
}

impl EmailConnection {
    pub fn new(
        config: EmailConfig,
        db: sea_orm::DatabaseConnection,
        env: &impl Fn(&str) -> Option<String>,
    ) -> anyhow::Result<Self> {
        let inbound_user = config.read_env(&config.inbound_user_env, env)?;
        let inbound_password = config.read_env(&config.inbound_password_env, env)?;
        let smtp = smtp::Smtp::new(&config, env)?;
        Ok(Self {
            config,
            inbound_user,
            inbound_password,
            smtp,
            ids: MessageIds::new(db),
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
        // Approval links by mail are not built yet: the asker learns that
        // the run waits; approvers decide through the API.
        vec![self.reply(
            msg,
            &format!(
                "Your request needs an approver's decision before the agent may call {} (run {}).\n\
                 You will get the answer by mail once it is decided.",
                needed.tool, needed.run_id
            ),
        )]
    }

    async fn deliver(&self, kind: &str, target: &Value, body: &Value, _: Option<&str>) -> Delivery {
        if kind != "mail" {
            return Delivery::Failed(format!("nothing to deliver a {kind:?} message to"));
        }
        let (Some(message_id), Some(thread), Some(to)) = (
            target.get("message_id").and_then(Value::as_str),
            target.get("thread_key").and_then(Value::as_str),
            target.get("to").and_then(Value::as_str),
        ) else {
            return Delivery::Failed("the reply has no recipient or id".into());
        };
        // Before it is sent: the answer to it must find its thread.
        if let Err(e) = self
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
