//! `POST /channels/email/{name}/inbound`: one message per request, in the
//! mailbox's provider format (`providers.rs`), behind HTTP basic auth or
//! Mailgun's signature. Parsed before anything is stored; acknowledged
//! (200) only once it is in the inbox. Mail that is not answered (a sender
//! outside `allowed_senders`, an auto-reply, a bounce, list mail, our own
//! mail) is stored as ignored, with why, and acknowledged so the provider
//! does not retry it; a post that can never be taken is answered with the
//! provider's "do not retry" status.

use std::sync::Arc;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde_json::json;
use subtle::ConstantTimeEq as _;

use super::EmailConnection;
use super::providers::{self, Refusal};
use crate::api::AppState;
use crate::api::error::ApiError;
use warden_channels::nonces::Claim;
use warden_channels::{Accepted, Message, NewItem};
use warden_email::inbound::Inbound;
use warden_email::loops;

/// What Mailgun tokens are recorded as (for as long as their timestamp
/// could still verify).
const MAILGUN_TOKEN: &str = "mailgun-token";

pub(super) fn connection(state: &AppState, name: &str) -> Result<Arc<EmailConnection>, ApiError> {
    state
        .channels
        .as_ref()
        .and_then(|c| c.email.iter().find(|e| e.config.name == name).cloned())
        .ok_or_else(|| ApiError::not_found(format!("no email connection named {name:?}")))
}

/// Whether the request carries the mailbox's basic-auth credentials (true
/// when it has none configured: Mailgun's signature is then the proof).
pub(super) fn authorised(conn: &EmailConnection, headers: &HeaderMap) -> bool {
    let Some((user, password)) = &conn.inbound_auth else {
        return true;
    };
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
    let (u, p) = (&decoded[..colon], &decoded[colon + 1..]);
    // Both compared, whatever the first says.
    let u = u.ct_eq(user.as_bytes());
    let p = p.ct_eq(password.as_bytes());
    (u & p).into()
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
    body: Body,
) -> Result<Response, ApiError> {
    let conn = connection(&state, &name)?;
    let provider = conn.config.provider;
    if !authorised(&conn, &headers) {
        state
            .metrics
            .record_channel_refusal("email", &conn.config.name, "signature");
        let mut r =
            ApiError::unauthorized("wrong or missing credentials for this mailbox").into_response();
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Basic realm=\"warden\""),
        );
        return Ok(r);
    }
    let body = read_limited(body, conn.config.max_body_bytes)
        .await
        .map_err(|r| r.into_error(provider))?;
    let now = chrono::Utc::now().timestamp();
    let decoded = providers::decode(&conn, &headers, body, now)
        .await
        .map_err(|r| {
            if matches!(r, Refusal::Unauthorized(_)) {
                state
                    .metrics
                    .record_channel_refusal("email", &conn.config.name, "signature");
            }
            r.into_error(provider)
        })?;
    // A signed post is taken once: a replay carries a valid signature.
    if let Some(token) = &decoded.mailgun_token {
        let window = chrono::Duration::seconds(2 * warden_email::mailgun::MAX_SKEW_SECS);
        conn.nonces
            .prune(MAILGUN_TOKEN, chrono::Utc::now() - window)
            .await?;
        if let Claim::Used { .. } = conn
            .nonces
            .claim("email", &conn.config.name, MAILGUN_TOKEN, token, None)
            .await?
        {
            tracing::warn!(connection = %conn.config.name, "email: a Mailgun token was used again");
            state
                .metrics
                .record_channel_refusal("email", &conn.config.name, "replayed");
            return Err(
                Refusal::Unauthorized("this Mailgun token was already used".into())
                    .into_error(provider),
            );
        }
    }
    match store(&state, &conn, &decoded.inbound).await {
        Ok(status) => Ok(Json(json!({ "status": status })).into_response()),
        Err(e) => {
            // Not stored: the provider's retry (with this token, if it
            // resends one) must be taken.
            if let Some(token) = &decoded.mailgun_token {
                let _ = conn
                    .nonces
                    .release("email", &conn.config.name, MAILGUN_TOKEN, token)
                    .await;
            }
            Err(e)
        }
    }
}

/// A body over the limit is still read to its end (up to this many times
/// the limit) and dropped, so the sender reads the refusal instead of a
/// reset connection: a provider that never sees its "do not retry" status
/// retries for days.
const DRAIN_FACTOR: usize = 2;

/// The request body, if it is at most `limit` bytes.
async fn read_limited(body: Body, limit: usize) -> Result<Bytes, Refusal> {
    use futures::StreamExt as _;
    let too_large = || {
        Refusal::Rejected(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("a message is limited to {limit} bytes"),
        )
    };
    let mut stream = body.into_data_stream();
    let mut kept = Vec::new();
    let mut seen = 0usize;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| {
            Refusal::Rejected(StatusCode::BAD_REQUEST, format!("reading the body: {e}"))
        })?;
        seen = seen.saturating_add(chunk.len());
        if seen <= limit {
            kept.extend_from_slice(&chunk);
        } else if seen > limit.saturating_mul(DRAIN_FACTOR) {
            // Past any reasonable size: answer now.
            return Err(too_large());
        }
    }
    if seen > limit {
        return Err(too_large());
    }
    Ok(Bytes::from(kept))
}

/// Stores the message in the inbox (answered, or ignored with why).
async fn store(
    state: &AppState,
    conn: &EmailConnection,
    m: &Inbound,
) -> Result<&'static str, ApiError> {
    let channels = state
        .channels
        .clone()
        .ok_or_else(|| ApiError::not_found("no channel is configured"))?;
    let skip = if conn.config.allows(&m.from) {
        loops::check(m, &conn.config.addresses)
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
            // Recorded before the item (a reply may arrive as soon as it
            // is answered); idempotent, so a retry after a failed insert
            // records the same.
            if let Some(id) = &m.message_id {
                ids.record("email", &conn.config.name, id, &thread, &m.from)
                    .await?;
            }
            let msg = Message {
                thread_key: thread,
                external_user: m.from.clone(),
                display_name: m.from_name.clone(),
                agent: conn.config.agent.clone(),
                text: agent_text(m),
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
    Ok(match channels.dispatcher.inbox.accept(item).await? {
        Accepted::New(_) => {
            channels.dispatcher.wake();
            "accepted"
        }
        Accepted::Ignored(_) => "ignored",
        Accepted::Duplicate => {
            state
                .metrics
                .record_channel_duplicate("email", &conn.config.name);
            "duplicate"
        }
    })
}
