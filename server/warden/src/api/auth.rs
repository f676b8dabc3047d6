//! `Authorization: Bearer <key>` on every `/v1` and `/api` route.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::error::ApiError;
use crate::keys::{self, Principal, Role};

/// `last_used_at` is written at most once a minute per key, so the database
/// sees no write per request.
#[derive(Default)]
pub struct TouchThrottle {
    last: Mutex<HashMap<i64, Instant>>,
}

impl TouchThrottle {
    fn should_touch(&self, key_id: i64) -> bool {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        match last.get(&key_id) {
            Some(t) if now.duration_since(*t) < Duration::from_secs(60) => false,
            _ => {
                last.insert(key_id, now);
                true
            }
        }
    }
}

pub async fn require_key(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let presented = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim);
    let Some(presented) = presented else {
        return ApiError::unauthorized("missing API key: send it as 'Authorization: Bearer <key>'")
            .into_response();
    };
    let principal = match keys::authenticate(&state.db, presented).await {
        Ok(Some(p)) => p,
        Ok(None) => return ApiError::unauthorized("invalid API key").into_response(),
        Err(e) => {
            tracing::error!(error = %e, "key lookup failed");
            return ApiError::unavailable("cannot verify the API key right now").into_response();
        }
    };
    if state.key_touches.should_touch(principal.key_id) {
        let db = state.db.clone();
        let id = principal.key_id;
        tokio::spawn(async move {
            if let Err(e) = keys::touch(&db, id).await {
                tracing::warn!(error = %e, "cannot record key use");
            }
        });
    }
    let endpoint = req.uri().path().to_owned();
    let record = state.request_log.start(principal.key_id, endpoint);
    req.extensions_mut().insert(principal);
    req.extensions_mut().insert(record.clone());
    let response = next.run(req).await;
    record.set_status(response.status().as_u16());
    response
}

/// Rejects non-admin principals.
pub fn require_admin(principal: &Principal) -> Result<(), ApiError> {
    if principal.role == Role::Admin {
        Ok(())
    } else {
        Err(ApiError::forbidden("this endpoint needs an admin key"))
    }
}
