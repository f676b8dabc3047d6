//! `/api/policies` and `/api/audit`: the active bundle, ad-hoc evaluation,
//! the audit trail and its verification. Admin keys only.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Extension, Query, State};
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::auth::require_admin;
use super::error::ApiError;
use super::json::ApiJson;
use crate::keys::Principal;
use warden_governance::audit::{self, AuditEntry, AuditFilter};
use warden_policy::{Stage, Subject};

/// Largest text `POST /api/policies/evaluate` takes (the body limit applies too).
const MAX_EVAL_BYTES: usize = 1 << 20;

pub async fn status(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
) -> Result<Json<Value>, ApiError> {
    require_admin(&principal)?;
    to_json(&state.governor.store.status())
}

pub async fn reload(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
) -> Result<Json<Value>, ApiError> {
    require_admin(&principal)?;
    let store = state.governor.store.clone();
    let result = tokio::task::spawn_blocking(move || store.reload(true)).await?;
    match result {
        Ok(changed) => Ok(Json(json!({
            "activated": changed.is_some(),
            "bundle": state.governor.store.current().hash,
        }))),
        Err(error) => Err(ApiError::new(
            axum::http::StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request_error",
            format!("the policy directory was not activated: {error}"),
        )
        .with_code("invalid_policies")),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvaluateBody {
    stage: String,
    text: String,
    #[serde(default)]
    agent: Option<String>,
    #[serde(default)]
    plugin: Option<String>,
    #[serde(default)]
    tool: Option<String>,
    #[serde(default)]
    channel: Option<String>,
    #[serde(default)]
    effect: Option<String>,
}

/// Evaluates like the CLI's `warden policy eval`, with the server's judge,
/// and records the decision (channel `evaluate` unless one is given).
pub async fn evaluate(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    ApiJson(body): ApiJson<EvaluateBody>,
) -> Result<Json<Value>, ApiError> {
    require_admin(&principal)?;
    let stage = Stage::parse(&body.stage).ok_or_else(|| {
        ApiError::invalid_param(
            "stage",
            "stage must be one of input, llm_output, tool_call, tool_result, output",
        )
    })?;
    if body.text.len() > MAX_EVAL_BYTES {
        return Err(ApiError::invalid_param("text", "text is larger than 1 MiB"));
    }
    let subject = Subject {
        key: Some(principal.name.clone()),
        agent: body.agent,
        plugin: body.plugin,
        tool: body.tool,
        channel: Some(body.channel.unwrap_or_else(|| "evaluate".into())),
        effect: body.effect,
    };
    let checked = state
        .governor
        .check(stage, &body.text, &subject, None)
        .await?;
    let mut out = serde_json::to_value(&checked.decision)?;
    out["audit_seq"] = json!(checked.audit_seq);
    Ok(Json(out))
}

pub async fn list_audit(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    query: Result<Query<AuditFilter>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    require_admin(&principal)?;
    let Query(filter) = query?;
    filter.validate()?;
    let rows = filter.page(&state.db).await?;
    let limit = filter.limit.unwrap_or(100) as usize;
    let next_before = (rows.len() == limit)
        .then(|| rows.last().map(|r| r.seq))
        .flatten();
    let entries: Vec<AuditEntry> = rows.into_iter().map(AuditEntry::from).collect();
    Ok(Json(json!({ "data": entries, "next_before": next_before })))
}

pub async fn verify(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
) -> Result<Json<Value>, ApiError> {
    require_admin(&principal)?;
    let report = audit::verify(&state.db).await?;
    to_json(&report)
}

fn to_json<T: serde::Serialize>(v: &T) -> Result<Json<Value>, ApiError> {
    Ok(Json(serde_json::to_value(v)?))
}
