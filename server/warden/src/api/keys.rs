//! `/api/keys`: admin management of API keys.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::auth::require_admin;
use super::error::ApiError;
use super::json::ApiJson;
use crate::keys::{self, Principal, Role};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateKey {
    name: String,
    #[serde(default = "default_role")]
    role: String,
}

fn default_role() -> String {
    "user".into()
}

pub async fn list(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
) -> Result<Json<Value>, ApiError> {
    require_admin(&principal)?;
    let rows = keys::list(&state.db).await?;
    let data: Vec<Value> = rows
        .into_iter()
        .map(|k| {
            json!({
                "name": k.name, "role": k.role, "prefix": k.prefix,
                "created_at": k.created_at, "last_used_at": k.last_used_at, "revoked": k.revoked,
            })
        })
        .collect();
    Ok(Json(json!({ "object": "list", "data": data })))
}

pub async fn create(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    ApiJson(body): ApiJson<CreateKey>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    require_admin(&principal)?;
    let role: Role = body.role.parse()?;
    let key = keys::create(&state.db, &body.name, role).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "name": body.name, "role": role.as_str(), "key": key })),
    ))
}

pub async fn revoke(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    require_admin(&principal)?;
    if keys::revoke(&state.db, &name).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("no key named {name:?}")))
    }
}
