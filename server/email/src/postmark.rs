//! Postmark's inbound webhook: one JSON document per message, behind the
//! HTTP basic auth written into the webhook URL. The original header
//! fields are in `Headers`; the addresses, subject and bodies are fields
//! of their own; attachments are base64 in the document.

use base64::Engine as _;
use serde::Deserialize;

use crate::inbound::{self, Inbound, Limits, Parts, RawAttachment};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PostmarkError {
    #[error("not Postmark's inbound JSON: {0}")]
    Json(String),
    #[error("attachment {0:?} is not valid base64")]
    Base64(String),
    #[error(transparent)]
    Parse(#[from] inbound::ParseError),
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Post {
    #[serde(default)]
    from_full: Option<Address>,
    #[serde(default)]
    from: Option<String>,
    #[serde(default)]
    to: Option<String>,
    #[serde(default)]
    cc: Option<String>,
    #[serde(default)]
    subject: Option<String>,
    #[serde(default)]
    text_body: Option<String>,
    #[serde(default)]
    html_body: Option<String>,
    #[serde(default)]
    headers: Vec<Header>,
    #[serde(default)]
    attachments: Vec<Attachment>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Address {
    email: String,
    #[serde(default)]
    name: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Header {
    name: String,
    value: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Attachment {
    #[serde(default)]
    name: String,
    #[serde(default)]
    content: String,
    #[serde(default)]
    content_type: String,
}

/// The header fields Postmark gives as fields of their own; a copy in
/// `Headers` is ignored so the two cannot disagree.
const OWN_FIELDS: &[&str] = &["from", "to", "cc", "subject"];

pub fn message(body: &[u8], limits: &Limits) -> Result<Inbound, PostmarkError> {
    let post: Post =
        serde_json::from_slice(body).map_err(|e| PostmarkError::Json(e.to_string()))?;
    let mut pairs = Vec::new();
    let from = match &post.from_full {
        Some(a) => match a.name.as_deref().filter(|n| !n.is_empty()) {
            Some(n) => format!("\"{}\" <{}>", n.replace(['"', '\\'], ""), a.email),
            None => a.email.clone(),
        },
        None => post.from.clone().unwrap_or_default(),
    };
    // No sender at all is refused (NoSender), not guessed.
    if !from.trim().is_empty() {
        pairs.push(("From".to_owned(), from));
    }
    for (name, value) in [
        ("To", &post.to),
        ("Cc", &post.cc),
        ("Subject", &post.subject),
    ] {
        if let Some(v) = value.as_ref().filter(|v| !v.is_empty()) {
            pairs.push((name.to_owned(), v.clone()));
        }
    }
    pairs.extend(
        post.headers
            .into_iter()
            .filter(|h| !OWN_FIELDS.contains(&h.name.to_ascii_lowercase().as_str()))
            .map(|h| (h.name, h.value)),
    );
    let mut attachments = Vec::with_capacity(post.attachments.len());
    for a in post.attachments {
        let data = base64::engine::general_purpose::STANDARD
            .decode(a.content.trim())
            .map_err(|_| PostmarkError::Base64(inbound::sanitise_name(&a.name)))?;
        attachments.push(RawAttachment {
            name: a.name,
            content_type: a.content_type,
            data,
        });
    }
    let parts = Parts {
        header_block: inbound::header_block(&pairs),
        text: post.text_body,
        html: post.html_body,
        attachments,
    };
    Ok(inbound::from_parts(&parts, limits)?)
}
