//! Errors in OpenAI's shape: `{"error":{"message","type","param","code"}}`.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use warden_agents::feedback::InvalidFeedback;
use warden_agents::memory::{InvalidMemory, MemoryError};
use warden_agents::{CatalogError, RunError};
use warden_governance::audit::AuditError;
use warden_governance::audit::query::{InvalidFilter, QueryError};
use warden_llm::LlmError;
use warden_plugin_host::{CallError, ManageError};

use crate::keys::KeyError;

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
    pub fn policy_blocked(d: &warden_policy::Decision, audit_seq: i64) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            d.stop_message(audit_seq),
        )
        .with_code("content_policy_violation")
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

// Each library error says what it means for a client here, once; handlers
// use `?`.

/// The audit log cannot record a decision, so nothing is acted on.
impl From<AuditError> for ApiError {
    fn from(e: AuditError) -> Self {
        ApiError::unavailable(format!("governance audit log unavailable: {e}"))
            .with_code("audit_unavailable")
    }
}

impl From<warden_channels::ChannelError> for ApiError {
    fn from(e: warden_channels::ChannelError) -> Self {
        use warden_channels::ChannelError;
        match e {
            ChannelError::Db(e) => e.into(),
            ChannelError::Run(e) => e.into(),
            ChannelError::Catalog(e) => e.into(),
            e => ApiError::internal(e.to_string()),
        }
    }
}

impl From<sea_orm::DbErr> for ApiError {
    fn from(e: sea_orm::DbErr) -> Self {
        tracing::error!(error = %e, "database error");
        ApiError::internal(format!("database error: {e}"))
    }
}

/// A query string that does not parse into the handler's filter.
impl From<axum::extract::rejection::QueryRejection> for ApiError {
    fn from(e: axum::extract::rejection::QueryRejection) -> Self {
        ApiError::bad_request(format!("invalid query: {}", e.body_text()))
            .with_code("invalid_query")
    }
}

/// A spawned task (a run, a reload) panicked or was cancelled.
impl From<tokio::task::JoinError> for ApiError {
    fn from(e: tokio::task::JoinError) -> Self {
        ApiError::internal(format!("task failed: {e}"))
    }
}

/// Serialising a response value failed: a server bug, not the client's.
impl From<serde_json::Error> for ApiError {
    fn from(e: serde_json::Error) -> Self {
        ApiError::internal(format!("cannot serialise the response: {e}"))
    }
}

impl From<CatalogError> for ApiError {
    fn from(e: CatalogError) -> Self {
        match e {
            CatalogError::Invalid(_) | CatalogError::Tools(_) => {
                ApiError::bad_request(e.to_string()).with_code("invalid_agent")
            }
            CatalogError::Encode(_) | CatalogError::Unreadable { .. } => {
                ApiError::internal(e.to_string())
            }
            CatalogError::Configured(_) => {
                ApiError::new(StatusCode::CONFLICT, "invalid_request_error", e.to_string())
            }
            CatalogError::NotFound(_) => ApiError::not_found(e.to_string()),
            CatalogError::Db(e) => e.into(),
        }
    }
}

impl From<RunError> for ApiError {
    fn from(e: RunError) -> Self {
        match e {
            RunError::NotFound(_) => ApiError::not_found(e.to_string()),
            RunError::NotPaused(..) => {
                ApiError::new(StatusCode::CONFLICT, "invalid_request_error", e.to_string())
            }
            RunError::Audit(e) => e.into(),
            RunError::State(_) | RunError::NothingPending => ApiError::internal(e.to_string()),
            RunError::Db(e) => e.into(),
        }
    }
}

impl From<ManageError> for ApiError {
    fn from(e: ManageError) -> Self {
        match e {
            ManageError::BadRequest(m) => ApiError::bad_request(m).with_code("invalid_plugin"),
            ManageError::NotFound(m) => ApiError::not_found(m).with_code("plugin_not_found"),
            ManageError::Conflict(m) => {
                ApiError::new(StatusCode::CONFLICT, "invalid_request_error", m)
                    .with_code("plugin_conflict")
            }
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
}

impl From<CallError> for ApiError {
    fn from(e: CallError) -> Self {
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
}

impl From<KeyError> for ApiError {
    fn from(e: KeyError) -> Self {
        match e {
            KeyError::BadRole(_) => ApiError::invalid_param("role", &e.to_string()),
            KeyError::BadName => ApiError::invalid_param("name", &e.to_string()),
            KeyError::NameTaken(_) => {
                ApiError::new(StatusCode::CONFLICT, "invalid_request_error", e.to_string())
            }
            KeyError::Db(e) => {
                tracing::error!(error = %e, "key store failed");
                ApiError::internal("key store failed")
            }
        }
    }
}

impl From<InvalidMemory> for ApiError {
    fn from(e: InvalidMemory) -> Self {
        ApiError::bad_request(e.to_string())
    }
}

impl From<MemoryError> for ApiError {
    fn from(e: MemoryError) -> Self {
        match e {
            MemoryError::Full => {
                ApiError::new(StatusCode::CONFLICT, "invalid_request_error", e.to_string())
            }
            MemoryError::Db(e) => e.into(),
        }
    }
}

impl From<InvalidFeedback> for ApiError {
    fn from(e: InvalidFeedback) -> Self {
        ApiError::bad_request(e.to_string())
    }
}

impl From<InvalidFilter> for ApiError {
    fn from(e: InvalidFilter) -> Self {
        ApiError::invalid_param(e.field, &e.to_string())
    }
}

impl From<QueryError> for ApiError {
    fn from(e: QueryError) -> Self {
        match e {
            QueryError::Invalid(e) => e.into(),
            QueryError::Db(e) => e.into(),
        }
    }
}
