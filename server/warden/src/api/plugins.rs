//! `/api/plugins`: list, install, enable, disable, remove and call plugins.
//! Listing is open to every key; changes and direct tool calls need admin.

use axum::extract::{Path, Query, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use base64::Engine as _;
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::auth::require_admin;
use super::error::ApiError;
use super::json::ApiJson;
use crate::keys::Principal;
use warden_plugin_host::{CallError, CallRequest};

/// Refuses non-admin keys before the (large) upload body is read.
pub async fn admin_only(req: Request, next: Next) -> Response {
    match req.extensions().get::<Principal>().map(require_admin) {
        Some(Ok(())) => next.run(req).await,
        Some(Err(e)) => e.into_response(),
        None => ApiError::unauthorized("missing API key").into_response(),
    }
}

/// Admins see everything; other keys see what a plugin offers, not how the
/// operator configured it (grants, paths, config values, event actors).
pub async fn list(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
) -> Result<Json<Value>, ApiError> {
    let plugins = state.plugins.list().await;
    let data: Vec<Value> = if require_admin(&principal).is_ok() {
        plugins.iter().map(|p| json!(p)).collect()
    } else {
        plugins
            .iter()
            .map(|p| {
                json!({
                    "id": p.id, "name": p.name, "version": p.version,
                    "description": p.description, "status": p.status, "tools": p.tools,
                })
            })
            .collect()
    };
    Ok(Json(json!({ "object": "list", "data": data })))
}

pub async fn get_one(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    require_admin(&principal)?;
    let m = state.plugins;
    let view = m.view(&id).await?;
    let events: Vec<Value> = m
        .events(&id)
        .await?
        .into_iter()
        .map(|e| json!({"action": e.action, "actor": e.actor, "detail": e.detail, "at": e.created_at}))
        .collect();
    let mut body = serde_json::to_value(view)?;
    body["events"] = Value::Array(events);
    Ok(Json(body))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Install {
    /// The text of plugin.toml.
    manifest: String,
    /// The component, base64 (standard alphabet).
    component_base64: String,
}

pub async fn install(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    ApiJson(body): ApiJson<Install>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    require_admin(&principal)?;
    let m = state.plugins;
    let component = base64::engine::general_purpose::STANDARD
        .decode(body.component_base64.trim())
        .map_err(|e| {
            ApiError::invalid_param("component_base64", &format!("not valid base64: {e}"))
        })?;
    if component.len() > m.max_upload_bytes() {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_request_error",
            format!(
                "component is {} bytes; the limit is {} (plugins.max_upload_bytes)",
                component.len(),
                m.max_upload_bytes()
            ),
        )
        .with_code("request_too_large"));
    }
    let view = m
        .install(&body.manifest, &component, &principal.name)
        .await?;
    Ok((StatusCode::CREATED, Json(serde_json::to_value(view)?)))
}

pub async fn accept(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    require_admin(&principal)?;
    let view = state.plugins.accept(&id, &principal.name).await?;
    Ok(Json(serde_json::to_value(view)?))
}

pub async fn enable(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    set_enabled(state, principal, id, true).await
}

pub async fn disable(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    set_enabled(state, principal, id, false).await
}

async fn set_enabled(
    state: AppState,
    principal: Principal,
    id: String,
    enabled: bool,
) -> Result<Json<Value>, ApiError> {
    require_admin(&principal)?;
    let view = state
        .plugins
        .set_enabled(&id, enabled, &principal.name)
        .await?;
    Ok(Json(serde_json::to_value(view)?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoveQuery {
    /// Keep the plugin's kv data (default: delete it with the plugin, so a
    /// later plugin claiming the same id cannot inherit it).
    #[serde(default)]
    keep_data: bool,
}

pub async fn remove(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
    Query(q): Query<RemoveQuery>,
) -> Result<StatusCode, ApiError> {
    require_admin(&principal)?;
    state
        .plugins
        .remove(&id, !q.keep_data, &principal.name)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Call {
    #[serde(default = "empty_object")]
    arguments: Value,
    user: Option<String>,
    conversation: Option<String>,
}

fn empty_object() -> Value {
    json!({})
}

pub async fn call(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path((id, tool)): Path<(String, String)>,
    ApiJson(body): ApiJson<Call>,
) -> Result<Json<Value>, ApiError> {
    require_admin(&principal)?;
    let request = CallRequest {
        user: body.user,
        conversation: body.conversation,
    };
    let done = call_tool(&state, &id, &tool, &body.arguments, &request).await?;
    Ok(Json(done.to_json()))
}

/// A direct tool call that succeeded, and what it cost.
pub struct DirectCall {
    pub call_id: String,
    pub output: Value,
    pub elapsed_ms: f64,
    pub peak_memory_bytes: u64,
    pub fuel_consumed: Option<u64>,
    pub queued: bool,
}

impl DirectCall {
    fn to_json(&self) -> Value {
        json!({
            "call_id": self.call_id,
            "output": self.output,
            "elapsed_ms": self.elapsed_ms,
            "peak_memory_bytes": self.peak_memory_bytes,
            "fuel_consumed": self.fuel_consumed,
            "queued": self.queued,
        })
    }
}

/// Calls one tool of one plugin directly (an admin's call, outside any
/// agent run), for the API and the console alike; counted in the metrics.
pub async fn call_tool(
    state: &AppState,
    id: &str,
    tool: &str,
    arguments: &Value,
    request: &CallRequest,
) -> Result<DirectCall, ApiError> {
    if !arguments.is_object() {
        return Err(ApiError::invalid_param(
            "arguments",
            "arguments must be a JSON object",
        ));
    }
    let plugin = state.plugins.get(id).await?;
    let outcome = plugin.call(tool, &arguments.to_string(), request).await;
    state.metrics.record_plugin_call(
        id,
        outcome.result.as_ref().err().map(CallError::code),
        outcome.elapsed.as_secs_f64(),
    );
    let output = outcome.result?;
    Ok(DirectCall {
        call_id: outcome.call_id,
        output,
        elapsed_ms: outcome.elapsed.as_secs_f64() * 1000.0,
        peak_memory_bytes: outcome.peak_memory_bytes,
        fuel_consumed: outcome.fuel_consumed,
        queued: outcome.queued,
    })
}
