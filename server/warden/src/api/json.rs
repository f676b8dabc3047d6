//! A JSON body extractor whose rejections are OpenAI-style errors.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use super::error::ApiError;

pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(ApiJson(v)),
            Err(rejection) => Err(rejection_to_error(rejection)),
        }
    }
}

fn rejection_to_error(rejection: JsonRejection) -> ApiError {
    let status = rejection.status();
    let text = rejection.body_text();
    match &rejection {
        _ if status == StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_request_error",
            "request body is larger than the configured limit (server.max_body_bytes)",
        )
        .with_code("request_too_large"),
        JsonRejection::MissingJsonContentType(_) => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "invalid_request_error",
            "expected a request with Content-Type: application/json",
        ),
        JsonRejection::JsonSyntaxError(_) => ApiError::bad_request(format!(
            "malformed JSON in request body: {}",
            strip_prefix(&text)
        ))
        .with_code("invalid_json"),
        JsonRejection::JsonDataError(_) => {
            ApiError::bad_request(format!("invalid request body: {}", strip_prefix(&text)))
                .with_code("invalid_request_body")
        }
        _ => ApiError::new(status, "invalid_request_error", text),
    }
}

/// axum prefixes serde's message with a generic sentence; keep serde's part.
fn strip_prefix(text: &str) -> &str {
    text.split_once(": ").map_or(text, |(_, rest)| rest)
}
