//! Replies over SMTP with `lettre`: STARTTLS, implicit TLS, or plain for a
//! relay on this machine. A 4xx (or a relay that cannot be reached) is
//! retried by the outbox; a 5xx fails the reply with the server's answer.

use std::time::Duration;

use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde_json::Value;

use warden_channels::Delivery;
use warden_email::config::{EmailConfig, SmtpSecurity};
use warden_email::reply;

pub(super) struct Smtp {
    transport: AsyncSmtpTransport<Tokio1Executor>,
}

impl Smtp {
    pub(super) fn new(
        config: &EmailConfig,
        env: &impl Fn(&str) -> Option<String>,
    ) -> anyhow::Result<Self> {
        let s = &config.smtp;
        let builder = match s.security {
            SmtpSecurity::Plain => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&s.host),
            SmtpSecurity::Starttls => {
                AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&s.host)?
            }
            SmtpSecurity::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&s.host)?,
        };
        let mut builder = builder
            .port(s.port)
            .timeout(Some(Duration::from_secs(s.timeout_secs)));
        if let (Some(user), Some(password)) = (&s.username_env, &s.password_env) {
            builder = builder.credentials(Credentials::new(
                config.read_env(user, env)?,
                config.read_env(password, env)?,
            ));
        }
        Ok(Self {
            transport: builder.build(),
        })
    }

    pub(super) async fn send(&self, from: &str, target: &Value, body: &Value) -> Delivery {
        let message = match build(from, target, body) {
            Ok(m) => m,
            Err(e) => return Delivery::Failed(format!("cannot build the reply: {e}")),
        };
        let id = target
            .get("message_id")
            .and_then(Value::as_str)
            .map(str::to_owned);
        match self.transport.send(message).await {
            Ok(_) => Delivery::Sent { external_ref: id },
            Err(e) if e.is_permanent() => Delivery::Failed(format!("SMTP: {e}")),
            Err(e) => Delivery::Retry {
                error: format!("SMTP: {e}"),
                after: None,
            },
        }
    }
}

#[derive(Debug, thiserror::Error)]
enum BuildError {
    #[error("bad address: {0}")]
    Address(#[from] lettre::address::AddressError),
    #[error(transparent)]
    Message(#[from] lettre::error::Error),
    #[error("the reply has no {0}")]
    Missing(&'static str),
}

fn build(from: &str, target: &Value, body: &Value) -> Result<Message, BuildError> {
    let s = |k: &'static str| {
        target
            .get(k)
            .and_then(Value::as_str)
            .ok_or(BuildError::Missing(k))
    };
    let from: Mailbox = from.parse()?;
    let to: Mailbox = s("to")?.parse()?;
    let domain = from.email.domain().to_owned();
    let mut b = Message::builder()
        .from(from)
        .to(to)
        .subject(s("subject")?)
        .message_id(Some(format!("<{}>", s("message_id")?)))
        // RFC 3834: a machine's reply; our own marker survives relays that
        // drop it, so two Warden instances never answer each other.
        .raw_header(HeaderValue::new(
            HeaderName::new_from_ascii_str("Auto-Submitted"),
            "auto-replied".into(),
        ))
        .raw_header(HeaderValue::new(
            HeaderName::new_from_ascii_str("X-Warden-Loop"),
            domain,
        ));
    if let Some(parent) = target.get("in_reply_to").and_then(Value::as_str) {
        b = b.in_reply_to(format!("<{parent}>"));
    }
    let refs: Vec<String> = target
        .get("references")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(|r| format!("<{r}>"))
                .collect()
        })
        .unwrap_or_default();
    if !refs.is_empty() {
        b = b.references(refs.join(" "));
    }
    let text = body.get("text").and_then(Value::as_str).unwrap_or_default();
    Ok(b.multipart(MultiPart::alternative_plain_html(
        text.to_owned(),
        html(text),
    ))?)
}

/// The text as minimal HTML: escaped, preformatted, nothing active.
fn html(text: &str) -> String {
    let escaped = reply::escape_html(text);
    format!(
        "<!doctype html><html><body><pre style=\"white-space: pre-wrap; font-family: sans-serif\">{escaped}</pre></body></html>"
    )
}
