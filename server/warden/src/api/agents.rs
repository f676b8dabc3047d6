//! `/api/agents` (definitions; changes need an admin key) and `/api/runs`
//! (runs; users see their own).

use std::convert::Infallible;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Extension, Path, Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::auth::require_admin;
use super::error::ApiError;
use super::json::ApiJson;
use crate::keys::{Principal, Role};
use warden_agents::{
    AgentSpec, Resolution, RunError, RunReport, RunRequest, RunStatus, runs::run_view,
};
use warden_db::entities::{agent_run, run_step};

const MAX_MESSAGE_BYTES: usize = 64 * 1024;

pub async fn list(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let agents = state.agents.catalog.list().await?;
    let data: Vec<Value> = agents
        .into_iter()
        .map(|(a, source)| {
            let mut v = serde_json::to_value(&a).unwrap_or(Value::Null);
            v["source"] = json!(source);
            v
        })
        .collect();
    Ok(Json(json!({ "data": data })))
}

pub async fn get_one(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let a = state.agents.catalog.get(&name).await?;
    Ok(Json(serde_json::to_value(a)?))
}

pub async fn put(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    ApiJson(spec): ApiJson<AgentSpec>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    require_admin(&principal)?;
    let svc = &state.agents;
    if let Some(m) = &spec.model
        && state.registry.get(m).is_none()
    {
        return Err(ApiError::invalid_param(
            "model",
            &format!("model {m:?} is not configured"),
        ));
    }
    let name = spec.name.clone();
    svc.define(spec, &principal.name).await?;
    let stored = svc.catalog.get(&name).await?;
    Ok((
        StatusCode::CREATED,
        Json(serde_json::to_value(stored).unwrap_or(Value::Null)),
    ))
}

pub async fn delete(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    require_admin(&principal)?;
    state.agents.catalog.delete(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateRun {
    message: String,
    #[serde(default)]
    stream: bool,
    /// Where the message came from (default `api`).
    #[serde(default)]
    channel: Option<String>,
}

/// Runs an agent; with `stream: true` the steps arrive as server-sent
/// events (`step`) as they happen, then the run (`run`).
pub async fn create_run(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(name): Path<String>,
    ApiJson(body): ApiJson<CreateRun>,
) -> Result<Response, ApiError> {
    let svc = &state.agents;
    if body.message.trim().is_empty() || body.message.len() > MAX_MESSAGE_BYTES {
        return Err(ApiError::invalid_param(
            "message",
            "message must have 1 byte to 64 KiB of text",
        ));
    }
    // The channel scopes policies, so callers do not pick it freely: only
    // admin keys (the channel integrations) may name one.
    let channel = match body.channel {
        None => "api".to_owned(),
        Some(c) => {
            require_admin(&principal)?;
            let ok = !c.is_empty()
                && c.len() <= 32
                && c.chars().all(|ch| {
                    ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '-' || ch == '_'
                });
            if !ok {
                return Err(ApiError::invalid_param(
                    "channel",
                    "channel names have 1-32 lower-case letters, digits, - or _",
                ));
            }
            c
        }
    };
    let agent = svc.catalog.get(&name).await?;
    let request = RunRequest {
        agent,
        message: body.message,
        subject: Some(principal.name.clone()),
        channel,
        id: None,
        history: Vec::new(),
        answer_stream: None,
    };
    let agents = state.agents.clone();
    if !body.stream {
        // Spawned: a client that goes away does not cut the run short.
        let report = tokio::spawn(async move { agents.runner.run(request, None).await }).await??;
        return Ok(Json(report_view(&report)).into_response());
    }
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let events = warden_llm::task_stream::task_stream(16, move |out| async move {
        let run = tokio::spawn(async move { agents.runner.run(request, Some(tx)).await });
        let mut rx = tokio_stream::wrappers::UnboundedReceiverStream::new(rx);
        while let Some(step) = rx.next().await {
            let e = Event::default()
                .event("step")
                .data(serde_json::to_string(&step).unwrap_or_default());
            if out.send(e).await.is_err() {
                break;
            }
        }
        let last = match run.await {
            Ok(Ok(report)) => Event::default()
                .event("run")
                .data(report_view(&report).to_string()),
            Ok(Err(e)) => Event::default()
                .event("error")
                .data(ApiError::from(e).body().to_string()),
            Err(e) => Event::default()
                .event("error")
                .data(ApiError::from(e).body().to_string()),
        };
        let _ = out.send(last).await;
    });
    Ok(Sse::new(events.map(Ok::<_, Infallible>))
        .keep_alive(KeepAlive::default())
        .into_response())
}

fn report_view(r: &RunReport) -> Value {
    json!({
        "id": r.id,
        "status": r.status,
        "answer": r.answer,
        "error": r.error,
        "steps": r.steps,
    })
}

pub async fn get_run(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let (run, steps) = visible_run(&state, &principal, &id).await?;
    Ok(Json(run_view(&run, &steps)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunFilter {
    agent: Option<String>,
    status: Option<String>,
    limit: Option<u64>,
}

pub async fn list_runs(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    query: Result<Query<RunFilter>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(f) = query?;
    let limit = f.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::invalid_param(
            "limit",
            "limit must be within 1..500",
        ));
    }
    let subject = (principal.role != Role::Admin).then_some(principal.name.as_str());
    let runs = state
        .agents
        .runner
        .runs
        .list(f.agent.as_deref(), f.status.as_deref(), subject, limit)
        .await?;
    let data: Vec<Value> = runs.iter().map(|r| run_view(r, &[])).collect();
    Ok(Json(json!({ "data": data })))
}

/// Admins see every run; users their own.
pub(super) fn visible(p: &Principal, subject: Option<&str>) -> bool {
    p.role == Role::Admin || subject == Some(p.name.as_str())
}

/// The run and its steps, if `principal` may see it; someone else's run is
/// "not found", like a missing one.
pub(super) async fn visible_run(
    state: &AppState,
    principal: &Principal,
    id: &str,
) -> Result<(agent_run::Model, Vec<run_step::Model>), ApiError> {
    Ok(state
        .agents
        .runner
        .runs
        .get(id)
        .await?
        .filter(|(run, _)| visible(principal, run.subject.as_deref()))
        .ok_or_else(|| RunError::NotFound(id.to_owned()))?)
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Decide {
    #[serde(default)]
    reason: Option<String>,
}

/// Approves the tool call a paused run waits for, and lets the run go on;
/// the answer is the run as it then ends (or pauses again).
pub async fn approve(
    state: State<AppState>,
    principal: Extension<Principal>,
    id: Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    decide(state, principal, id, body, true).await
}

pub async fn reject(
    state: State<AppState>,
    principal: Extension<Principal>,
    id: Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    decide(state, principal, id, body, false).await
}

async fn decide(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
    approved: bool,
) -> Result<Json<Value>, ApiError> {
    require_admin(&principal)?;
    // The body is optional: `{"reason": "..."}` or nothing.
    let decide: Decide = if body.iter().all(u8::is_ascii_whitespace) {
        Decide::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            ApiError::bad_request(format!("invalid request body: {e}"))
                .with_code("invalid_request_body")
        })?
    };
    let reason = decide.reason;
    if reason.as_deref().is_some_and(|r| r.len() > 2000) {
        return Err(ApiError::invalid_param(
            "reason",
            "reason must be at most 2000 bytes",
        ));
    }
    let report = run_decision(&state, &id, approved, &principal.name, reason).await?;
    Ok(Json(report_view(&report)))
}

/// Decides a paused run's pending call: the API's and the console's one
/// way in (the run's approval step and its audit record name `by`).
pub(crate) async fn run_decision(
    state: &AppState,
    id: &str,
    approved: bool,
    by: &str,
    reason: Option<String>,
) -> Result<warden_agents::RunReport, ApiError> {
    let svc = &state.agents;
    let (run, _) = svc
        .runner
        .runs
        .get(id)
        .await?
        .ok_or_else(|| RunError::NotFound(id.to_owned()))?;
    let agent = svc.catalog.get(&run.agent).await?;
    let resolution = Resolution {
        approved,
        by: by.to_owned(),
        reason,
    };
    let agents = state.agents.clone();
    let id = id.to_owned();
    // Detached: a client that goes away does not stop the run half-way.
    Ok(
        tokio::spawn(async move { agents.runner.resume(&id, &agent, resolution, None).await })
            .await??,
    )
}

/// How a decision from the console came out.
pub(crate) enum DecideError {
    /// Not waiting (any more): its status and who decided last.
    Already {
        status: String,
        by: Option<String>,
    },
    Api(ApiError),
}

/// [`run_decision`], telling "someone got there first" apart.
pub(crate) async fn decide_run(
    state: &AppState,
    id: &str,
    approved: bool,
    by: &str,
    reason: Option<String>,
) -> Result<String, DecideError> {
    match run_decision(state, id, approved, by, reason).await {
        Ok(report) => Ok(report.status.as_str().to_owned()),
        Err(e) => {
            let Ok(Some((run, steps))) = state.agents.runner.runs.get(id).await else {
                return Err(DecideError::Api(e));
            };
            if run.status == RunStatus::AwaitingApproval.as_str() {
                return Err(DecideError::Api(e));
            }
            Err(DecideError::Already {
                by: warden_agents::runs::last_approver(&steps),
                status: run.status,
            })
        }
    }
}

/// Cancels a running or paused run (admins, or the key that started it).
pub async fn cancel(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let (run, _) = visible_run(&state, &principal, &id).await?;
    let svc = &state.agents;
    let cancelled = svc.runner.cancel(&id, &principal.name).await?;
    if !cancelled {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "invalid_request_error",
            format!("run {id} already ended ({})", run.status),
        ));
    }
    Ok(Json(json!({"id": id, "cancelled": true})))
}
