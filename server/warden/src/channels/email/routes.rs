//! `POST /channels/email/{name}/inbound`: one raw message
//! (`message/rfc822`) per request, behind HTTP basic auth. Parsed before
//! anything is stored; acknowledged (200) only once it is in the inbox.
//! Mail that is not answered (a sender outside `allowed_senders`, an
//! auto-reply, a bounce, list mail, our own mail) is stored as ignored,
//! with why, and acknowledged so the provider does not retry it.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde_json::json;

use super::EmailConnection;
use crate::api::AppState;
use crate::api::error::ApiError;
use warden_channels::{Accepted, Message, NewItem};
use warden_email::inbound::{self, Inbound, Limits};
use warden_email::loops;

fn connection(state: &AppState, name: &str) -> Result<Arc<EmailConnection>, ApiError> {
    state
        .channels
        .as_ref()
        .and_then(|c| c.email.iter().find(|e| e.config.name == name).cloned())
        .ok_or_else(|| ApiError::not_found(format!("no email connection named {name:?}")))
}

/// Both halves compared in full, in constant time per byte.
fn same(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for (i, x) in a.iter().enumerate() {
        diff |= usize::from(x ^ b.get(i).copied().unwrap_or(0));
    }
    diff == 0
}

fn authorised(conn: &EmailConnection, headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
    else {
        return false;
    };
    let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(value.trim()) else {
        return false;
    };
    let Some(colon) = decoded.iter().position(|b| *b == b':') else {
        return false;
    };
    let (user, password) = (&decoded[..colon], &decoded[colon + 1..]);
    // Both compared, whatever the first says.
    let u = same(user, conn.inbound_user.as_bytes());
    let p = same(password, conn.inbound_password.as_bytes());
    u & p
}

/// What the agent is given: the new text of the message, then its text
/// attachments, then the names of the others.
fn agent_text(m: &Inbound) -> String {
    let mut text = m.text.clone();
    for a in &m.attachments {
        match &a.text {
            Some(t) => text.push_str(&format!(
                "\n\n[Attachment {} ({})]\n{t}",
                a.name, a.content_type
            )),
            None => text.push_str(&format!(
                "\n\n[Attachment {} ({}, {} bytes) not shown]",
                a.name, a.content_type, a.size
            )),
        }
    }
    text
}

pub async fn inbound(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let conn = connection(&state, &name)?;
    if !authorised(&conn, &headers) {
        let mut r =
            ApiError::unauthorized("wrong or missing credentials for this mailbox").into_response();
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Basic realm=\"warden\""),
        );
        return Ok(r);
    }
    if body.len() > conn.config.max_body_bytes {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_request_error",
            format!(
                "a message is limited to {} bytes",
                conn.config.max_body_bytes
            ),
        ));
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !content_type
        .split(';')
        .next()
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("message/rfc822"))
    {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "invalid_request_error",
            "send the raw message as message/rfc822",
        ));
    }
    let limits = Limits {
        max_text_attachment_bytes: conn.config.max_text_attachment_bytes,
        ..Limits::default()
    };
    let m = inbound::parse(&body, &limits)
        .map_err(|e| ApiError::bad_request(format!("not a message Warden can read: {e}")))?;
    let channels = state
        .channels
        .clone()
        .ok_or_else(|| ApiError::not_found("no channel is configured"))?;
    let skip = if conn.config.allows(&m.from) {
        loops::check(&m, &conn.config.addresses)
            .err()
            .map(|s| s.to_string())
    } else {
        Some(format!("sender {} is not allowed", m.from))
    };
    let item = match skip {
        Some(why) => NewItem {
            channel: "email",
            connection: conn.config.name.clone(),
            event_key: m.key.clone(),
            message_key: None,
            ignored: Some(why),
            payload: json!({"from": m.from, "message_id": m.message_id}).to_string(),
        },
        None => {
            // The conversation named by In-Reply-To, then References
            // (newest first), if this sender is its participant.
            let mut named = m.in_reply_to.clone();
            named.extend(m.references.iter().rev().cloned());
            let ids = &conn.ids;
            let thread = match ids
                .thread_of("email", &conn.config.name, &named, &m.from)
                .await?
            {
                Some(t) => t,
                None => format!("mail:{}", m.key),
            };
            if let Some(id) = &m.message_id {
                ids.record("email", &conn.config.name, id, &thread, &m.from)
                    .await?;
            }
            let msg = Message {
                thread_key: thread,
                external_user: m.from.clone(),
                display_name: m.from_name.clone(),
                agent: conn.config.agent.clone(),
                text: agent_text(&m),
                reply_to: json!({
                    "to": m.from,
                    "subject": m.subject,
                    "parent_id": m.message_id,
                    "references": m.references,
                    "in_reply_to": m.in_reply_to,
                }),
            };
            NewItem {
                channel: "email",
                connection: conn.config.name.clone(),
                event_key: m.key.clone(),
                message_key: None,
                ignored: None,
                payload: serde_json::to_string(&msg)?,
            }
        }
    };
    let status = match channels.dispatcher.inbox.accept(item).await? {
        Accepted::New(_) => {
            channels.dispatcher.wake();
            "accepted"
        }
        Accepted::Ignored(_) => "ignored",
        Accepted::Duplicate => "duplicate",
    };
    Ok(Json(json!({ "status": status })).into_response())
}
