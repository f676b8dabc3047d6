//! `GET /v1/models` and `GET /v1/models/{id}`.

use axum::Json;
use axum::extract::{Path, State};

use super::AppState;
use super::error::ApiError;
use super::wire::{ModelEntry, ModelList};
use warden_llm::Backend;

fn entry(backend: &dyn Backend, created: i64) -> ModelEntry {
    ModelEntry {
        id: backend.model_id().to_owned(),
        object: "model",
        created,
        owned_by: backend.owned_by().to_owned(),
    }
}

pub async fn list(State(state): State<AppState>) -> Json<ModelList> {
    Json(ModelList {
        object: "list",
        data: state
            .registry
            .iter()
            .map(|b| entry(b.as_ref(), state.started_at))
            .collect(),
    })
}

pub async fn get_one(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<ModelEntry>, ApiError> {
    let backend = state
        .registry
        .get(&id)
        .ok_or_else(|| ApiError::model_not_found(&id))?;
    Ok(Json(entry(backend.as_ref(), state.started_at)))
}
