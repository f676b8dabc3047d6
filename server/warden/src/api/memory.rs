//! `/api/memory` (a user's remembered facts; admins may act for any user
//! with `?subject=`), `POST /api/runs/{id}/feedback` and the preference
//! pair export `GET /api/feedback/export` (JSONL, admin).

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Extension, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::agents::visible_run;
use super::auth::require_admin;
use super::error::ApiError;
use super::json::ApiJson;
use crate::keys::{Principal, Role};
use warden_agents::{feedback, memory};

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct SubjectQuery {
    subject: Option<String>,
}

/// Whose memory: one's own, or (admins only) the named user's.
fn whose(
    p: &Principal,
    q: Result<Query<SubjectQuery>, QueryRejection>,
) -> Result<String, ApiError> {
    let Query(q) = q?;
    match q.subject {
        Some(s) if s != p.name => {
            if p.role != Role::Admin {
                return Err(ApiError::forbidden(
                    "only admins can read or change another user's memory",
                ));
            }
            Ok(s)
        }
        _ => Ok(p.name.clone()),
    }
}

pub async fn list(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    q: Result<Query<SubjectQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let subject = whose(&principal, q)?;
    let entries = state.agents.runner.memory.list(&subject).await?;
    let data: Vec<Value> = entries
        .iter()
        .map(|e| json!({"key": e.key, "value": e.value, "source": e.source, "updated_at": e.updated_at.to_rfc3339()}))
        .collect();
    Ok(Json(json!({"subject": subject, "data": data})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PutMemory {
    value: String,
}

pub async fn put(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(key): Path<String>,
    q: Result<Query<SubjectQuery>, QueryRejection>,
    ApiJson(body): ApiJson<PutMemory>,
) -> Result<Json<Value>, ApiError> {
    let subject = whose(&principal, q)?;
    memory::validate(&key, &body.value)?;
    state
        .agents
        .runner
        .memory
        .put(&subject, &key, &body.value, "api")
        .await?;
    Ok(Json(
        json!({"subject": subject, "key": key, "value": body.value}),
    ))
}

pub async fn delete_one(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(key): Path<String>,
    q: Result<Query<SubjectQuery>, QueryRejection>,
) -> Result<StatusCode, ApiError> {
    let subject = whose(&principal, q)?;
    let n = state
        .agents
        .runner
        .memory
        .delete(&subject, Some(&key))
        .await?;
    if n == 0 {
        return Err(ApiError::not_found(format!("no memory {key:?}")));
    }
    Ok(StatusCode::NO_CONTENT)
}

pub async fn clear(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    q: Result<Query<SubjectQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let subject = whose(&principal, q)?;
    let n = state.agents.runner.memory.delete(&subject, None).await?;
    Ok(Json(json!({"subject": subject, "deleted": n})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Feedback {
    rating: i32,
    #[serde(default)]
    comment: Option<String>,
    #[serde(default)]
    correction: Option<String>,
}

/// Rates a run's answer (the key that started it, or an admin).
pub async fn add_feedback(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<Feedback>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    feedback::validate(
        body.rating,
        body.comment.as_deref(),
        body.correction.as_deref(),
    )?;
    let (run, _) = visible_run(&state, &principal, &id).await?;
    let svc = &state.agents;
    if run.answer.is_none() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "invalid_request_error",
            format!("run {id} has no answer to rate ({})", run.status),
        ));
    }
    let fid = svc
        .runner
        .feedback
        .add(
            &id,
            &principal.name,
            body.rating,
            body.comment,
            body.correction,
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"id": fid, "run_id": id, "rating": body.rating})),
    ))
}

/// Preference pairs, one JSON object per line.
pub async fn export(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
) -> Result<Response, ApiError> {
    require_admin(&principal)?;
    let pairs = state.agents.runner.feedback.pairs().await?;
    let mut body = String::new();
    for p in pairs {
        body.push_str(&serde_json::to_string(&p).unwrap_or_default());
        body.push('\n');
    }
    Ok(([("content-type", "application/x-ndjson")], body).into_response())
}
