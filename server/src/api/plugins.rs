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
use crate::plugins::{CallError, CallRequest, ManageError, PluginManager};

fn manager(state: &AppState) -> Result<&PluginManager, ApiError> {
    state
        .plugins
        .as_deref()
        .ok_or_else(|| ApiError::unavailable("plugins are not enabled on this server"))
}

pub fn manage_error(e: ManageError) -> ApiError {
    match e {
        ManageError::BadRequest(m) => ApiError::bad_request(m).with_code("invalid_plugin"),
        ManageError::NotFound(m) => ApiError::not_found(m).with_code("plugin_not_found"),
        ManageError::Conflict(m) => ApiError::new(StatusCode::CONFLICT, "invalid_request_error", m)
            .with_code("plugin_conflict"),
        ManageError::Rejected(m) => {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request_error", m)
                .with_code("plugin_rejected")
        }
        ManageError::Internal(e) => {
            tracing::error!("plugin management failed: {e:#}");
            ApiError::internal("plugin management failed; see the server log")
        }
    }
}

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
    let plugins = manager(&state)?.list().await;
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
    let m = manager(&state)?;
    let view = m.view(&id).await.map_err(manage_error)?;
    let events: Vec<Value> = m
        .events(&id)
        .await
        .map_err(manage_error)?
        .into_iter()
        .map(|e| json!({"action": e.action, "actor": e.actor, "detail": e.detail, "at": e.created_at}))
        .collect();
    let mut body = serde_json::to_value(view).map_err(|e| ApiError::internal(e.to_string()))?;
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
    let m = manager(&state)?;
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
        .await
        .map_err(manage_error)?;
    Ok((
        StatusCode::CREATED,
        Json(serde_json::to_value(view).map_err(|e| ApiError::internal(e.to_string()))?),
    ))
}

pub async fn accept(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    require_admin(&principal)?;
    let view = manager(&state)?
        .accept(&id, &principal.name)
        .await
        .map_err(manage_error)?;
    Ok(Json(
        serde_json::to_value(view).map_err(|e| ApiError::internal(e.to_string()))?,
    ))
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
    let view = manager(&state)?
        .set_enabled(&id, enabled, &principal.name)
        .await
        .map_err(manage_error)?;
    Ok(Json(
        serde_json::to_value(view).map_err(|e| ApiError::internal(e.to_string()))?,
    ))
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
    manager(&state)?
        .remove(&id, !q.keep_data, &principal.name)
        .await
        .map_err(manage_error)?;
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

pub fn call_error(e: &CallError) -> ApiError {
    let status = match e {
        CallError::InvalidArguments(_) => StatusCode::BAD_REQUEST,
        CallError::UnknownTool(_) | CallError::NotFound(_) => StatusCode::NOT_FOUND,
        CallError::Denied(_) => StatusCode::FORBIDDEN,
        CallError::Busy(_) => StatusCode::TOO_MANY_REQUESTS,
        CallError::LimitExceeded(_)
        | CallError::Timeout(_)
        | CallError::MemoryLimit(_)
        | CallError::FuelExhausted(_)
        | CallError::OutputTooLarge { .. } => StatusCode::UNPROCESSABLE_ENTITY,
        CallError::Failed(_) | CallError::BadOutput(_) | CallError::Trapped(_) => {
            StatusCode::BAD_GATEWAY
        }
        CallError::Host(_) => StatusCode::INTERNAL_SERVER_ERROR,
    };
    ApiError::new(status, "plugin_error", e.to_string()).with_code(e.code())
}

pub async fn call(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path((id, tool)): Path<(String, String)>,
    ApiJson(body): ApiJson<Call>,
) -> Result<Json<Value>, ApiError> {
    require_admin(&principal)?;
    if !body.arguments.is_object() {
        return Err(ApiError::invalid_param(
            "arguments",
            "arguments must be a JSON object",
        ));
    }
    let plugin = manager(&state)?.get(&id).await.map_err(manage_error)?;
    let request = CallRequest {
        user: body.user,
        conversation: body.conversation,
    };
    let outcome = plugin
        .call(&tool, &body.arguments.to_string(), &request)
        .await;
    state.metrics.record_plugin_call(
        &id,
        outcome.result.as_ref().err().map(CallError::code),
        outcome.elapsed.as_secs_f64(),
    );
    match outcome.result {
        Ok(output) => Ok(Json(json!({
            "call_id": outcome.call_id,
            "output": output,
            "elapsed_ms": outcome.elapsed.as_secs_f64() * 1000.0,
            "peak_memory_bytes": outcome.peak_memory_bytes,
            "fuel_consumed": outcome.fuel_consumed,
            "queued": outcome.queued,
        }))),
        Err(e) => Err(call_error(&e)),
    }
}
