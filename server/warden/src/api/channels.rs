//! `GET /api/channels` (admins): each connection's health, what its inbox
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
        return Ok(Json(json!({ "slack": [] })));
    };
    let d = &channels.dispatcher;
    let mut slack = Vec::new();
    for conn in &channels.slack {
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
        slack.push(json!({
            "name": name,
            "agent": conn.config.agent,
            "inbox": as_map(d.inbox.counts(channel, name).await?),
            "outbox": as_map(d.sender.outbox().counts(channel, name).await?),
            "recent_failures": failures,
        }));
    }
    Ok(Json(json!({ "slack": slack })))
}
