//! Errors in OpenAI's shape: `{"error":{"message","type","param","code"}}`.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::llm::LlmError;

#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    pub kind: &'static str,
    pub param: Option<String>,
    pub code: Option<&'static str>,
}

#[derive(Serialize)]
struct Body<'a> {
    error: Inner<'a>,
}

#[derive(Serialize)]
struct Inner<'a> {
    message: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    param: Option<&'a str>,
    code: Option<&'a str>,
}

impl ApiError {
    pub fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            kind,
            param: None,
            code: None,
        }
    }

    pub fn with_code(mut self, code: &'static str) -> Self {
        self.code = Some(code);
        self
    }

    pub fn invalid_param(param: &str, message: &str) -> Self {
        Self {
            param: Some(param.to_owned()),
            ..Self::new(StatusCode::BAD_REQUEST, "invalid_request_error", message)
                .with_code("invalid_value")
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request_error", message)
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "invalid_request_error", message)
            .with_code("invalid_api_key")
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "permission_error", message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "invalid_request_error", message)
    }

    pub fn model_not_found(model: &str) -> Self {
        Self {
            param: Some("model".into()),
            ..Self::not_found(format!("the model {model:?} does not exist"))
                .with_code("model_not_found")
        }
    }

    /// A governance policy stopped the content; the message is the rule's
    /// own, followed by where to find the decision.
    pub fn policy_blocked(d: &crate::governance::Decision, audit_seq: i64) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            d.stop_message(audit_seq),
        )
        .with_code("content_policy_violation")
    }

    /// The audit log cannot record a decision, so nothing is acted on.
    pub fn audit_unavailable(e: &crate::governance::audit::AuditError) -> Self {
        Self::unavailable(format!("governance audit log unavailable: {e}"))
            .with_code("audit_unavailable")
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "server_error", message)
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "server_error", message)
    }

    /// The JSON body, also used for in-stream SSE error events.
    pub fn body(&self) -> serde_json::Value {
        serde_json::to_value(Body {
            error: Inner {
                message: &self.message,
                kind: self.kind,
                param: self.param.as_deref(),
                code: self.code,
            },
        })
        .unwrap_or_default()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body())).into_response()
    }
}

impl From<LlmError> for ApiError {
    fn from(e: LlmError) -> Self {
        match e {
            LlmError::InvalidRequest(m) => ApiError::bad_request(m),
            LlmError::UnknownModel(m) => ApiError::model_not_found(&m),
            LlmError::Upstream(m) => ApiError::new(
                StatusCode::BAD_GATEWAY,
                "server_error",
                format!("upstream error: {m}"),
            ),
            LlmError::Engine(m) => ApiError::internal(format!("engine error: {m}")),
        }
    }
}
