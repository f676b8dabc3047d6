//! `GET /api/channels` (admins): each Slack and email connection's health, what its inbox
//! holds by status, what its outbox has delivered, is retrying or gave up
//! on, and the latest failures with the peer's answer.

use axum::Json;
use axum::extract::{Extension, State};
use serde_json::{Value, json};

use super::AppState;
use super::auth::require_admin;
use super::error::ApiError;
use crate::keys::Principal;
use warden_channels::Channel;

pub async fn status(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
) -> Result<Json<Value>, ApiError> {
    require_admin(&principal)?;
    let Some(channels) = state.channels.clone() else {
        return Ok(Json(json!({ "slack": [], "email": [] })));
    };
    let mut slack = Vec::new();
    for conn in &channels.slack {
        slack.push(health(&channels, conn.as_ref(), &conn.config.agent).await?);
    }
    let mut email = Vec::new();
    for conn in &channels.email {
        let mut h = health(&channels, conn.as_ref(), &conn.config.agent).await?;
        h["provider"] = json!(conn.config.provider.as_str());
        h["approvers"] = json!(conn.config.approvers.len());
        email.push(h);
    }
    Ok(Json(json!({ "slack": slack, "email": email })))
}

async fn health(
    channels: &crate::channels::Channels,
    conn: &dyn Channel,
    agent: &str,
) -> Result<Value, ApiError> {
    let d = &channels.dispatcher;
    let (channel, name) = (conn.channel(), conn.connection());
    let as_map = |counts: Vec<(&str, u64)>| {
        counts
            .into_iter()
            .map(|(k, v)| (k.to_owned(), json!(v)))
            .collect::<serde_json::Map<String, Value>>()
    };
    let failures: Vec<Value> = d
        .sender
        .outbox()
        .failures(channel, name, 20)
        .await?
        .into_iter()
        .map(|r| {
            json!({
                "id": r.id, "kind": r.kind, "inbox_id": r.inbox_id,
                "attempts": r.attempts, "error": r.last_error,
                "at": r.updated_at.to_rfc3339(),
            })
        })
        .collect();
    Ok(json!({
        "name": name,
        "agent": agent,
        "inbox": as_map(d.inbox.counts(channel, name).await?),
        "outbox": as_map(d.sender.outbox().counts(channel, name).await?),
        "recent_failures": failures,
    }))
}
