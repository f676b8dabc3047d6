//! The HTTP surface: OpenAI-compatible `/v1`, Warden's own `/api`, and the
//! open `/healthz` and `/metrics`.

mod agent_chat;
pub(crate) mod agents;
mod auth;
mod channels;
mod chat;
pub mod error;
mod governance;
mod json;
mod keys;
mod memory;
mod models;
pub(crate) mod plugins;
pub mod request_log;
#[cfg(test)]
mod slack_tests;
mod sse;
#[cfg(test)]
pub(crate) mod tests;
pub mod wire;

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::handler::Handler as _;
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use sea_orm::DatabaseConnection;

use warden_agents::AgentService;
use warden_governance::Governor;
use warden_llm::ModelRegistry;
use warden_plugin_host::PluginManager;

use crate::metrics::Metrics;
use error::ApiError;
use request_log::RequestLogger;
use wire::Limits;

/// Everything a handler may need, cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub registry: Arc<ModelRegistry>,
    pub db: DatabaseConnection,
    pub metrics: Arc<Metrics>,
    pub limits: Limits,
    pub request_log: RequestLogger,
    pub key_touches: Arc<auth::TouchThrottle>,
    /// Unix time the server started, reported as models' `created`.
    pub started_at: i64,
    pub plugins: Arc<PluginManager>,
    pub governor: Arc<Governor>,
    pub agents: Arc<AgentService>,
    /// Bytes a streamed answer is held back for the output check.
    pub stream_hold_back: usize,
    /// Slack and email connections; `None` when none is configured.
    pub channels: Option<Arc<crate::channels::Channels>>,
    pub console: crate::console::ConsoleConfig,
}

impl AppState {
    pub fn new(
        registry: Arc<ModelRegistry>,
        db: DatabaseConnection,
        limits: Limits,
        request_log: RequestLogger,
        governor: Arc<Governor>,
        plugins: Arc<PluginManager>,
        agents: Arc<AgentService>,
    ) -> Self {
        Self {
            registry,
            db,
            metrics: Arc::new(Metrics::default()),
            limits,
            request_log,
            key_touches: Arc::default(),
            started_at: chrono::Utc::now().timestamp(),
            plugins,
            governor,
            agents,
            stream_hold_back: 64,
            channels: None,
            console: crate::console::ConsoleConfig::default(),
        }
    }
}

pub fn router(state: AppState, max_body_bytes: usize) -> Router {
    // Base64 inflates a component by 4/3; leave room for the manifest.
    let upload_limit = (state.plugins.max_upload_bytes() / 3 * 4 + (256 << 10)).max(max_body_bytes);
    let v1 = Router::new()
        .route("/models", get(models::list))
        .route("/models/{id}", get(models::get_one))
        .route("/chat/completions", post(chat::completions));
    let api = Router::new()
        .route("/keys", get(keys::list).post(keys::create))
        .route("/keys/{name}", axum::routing::delete(keys::revoke))
        .route(
            "/plugins",
            get(plugins::list).post(
                plugins::install
                    .layer(middleware::from_fn(plugins::admin_only))
                    .layer(DefaultBodyLimit::max(upload_limit)),
            ),
        )
        .route(
            "/plugins/{id}",
            get(plugins::get_one).delete(plugins::remove),
        )
        .route("/plugins/{id}/accept", post(plugins::accept))
        .route("/plugins/{id}/enable", post(plugins::enable))
        .route("/plugins/{id}/disable", post(plugins::disable))
        .route("/plugins/{id}/tools/{tool}", post(plugins::call))
        .route("/channels", get(channels::status))
        .route("/policies", get(governance::status))
        .route("/policies/reload", post(governance::reload))
        .route("/policies/evaluate", post(governance::evaluate))
        .route("/audit", get(governance::list_audit))
        .route("/audit/verify", get(governance::verify))
        .route("/agents", get(agents::list).post(agents::put))
        .route(
            "/agents/{name}",
            get(agents::get_one).delete(agents::delete),
        )
        .route("/agents/{name}/runs", post(agents::create_run))
        .route("/runs", get(agents::list_runs))
        .route("/runs/{id}", get(agents::get_run))
        .route("/runs/{id}/approve", post(agents::approve))
        .route("/runs/{id}/reject", post(agents::reject))
        .route("/runs/{id}/cancel", post(agents::cancel))
        .route("/runs/{id}/feedback", post(memory::add_feedback))
        .route("/feedback/export", get(memory::export))
        .route("/memory", get(memory::list).delete(memory::clear))
        .route(
            "/memory/{key}",
            axum::routing::put(memory::put).delete(memory::delete_one),
        );
    let authed = Router::new().nest("/v1", v1).nest("/api", api).route_layer(
        middleware::from_fn_with_state(state.clone(), auth::require_key),
    );

    // Signed by Slack, not by an API key: outside `require_key`.
    let slack = Router::new()
        .route("/events", post(crate::channels::slack::routes::events))
        .route(
            "/interactions",
            post(crate::channels::slack::routes::interactions),
        )
        .route("/commands", post(crate::channels::slack::routes::commands));

    // Mail is larger than API requests: the inbound handler reads the body
    // itself, to each connection's own limit.
    let email = Router::new()
        .route(
            "/{name}/inbound",
            post(crate::channels::email::routes::inbound),
        )
        // A signed link, not an API key, authorises a decision.
        .route(
            "/{name}/approval",
            get(crate::channels::email::approvals::show)
                .post(crate::channels::email::approvals::decide),
        );

    let console_on = state.console.enabled;
    let console = crate::console::router(state.clone());
    let router = Router::new();
    let router = if console_on {
        router.nest("/console", console)
    } else {
        router
    };
    router
        .route("/healthz", get(healthz))
        .nest("/channels/slack", slack)
        .nest("/channels/email", email)
        .route("/metrics", get(metrics))
        .merge(authed)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(state.clone(), record_http))
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .with_state(state)
}

async fn healthz() -> &'static str {
    "ok"
}

async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    for backend in state.registry.iter() {
        if let Some(stats) = backend.engine_stats() {
            state.metrics.record_engine(backend.model_id(), stats);
        }
    }
    (
        [("content-type", "text/plain; version=0.0.4; charset=utf-8")],
        state.metrics.render(),
    )
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such endpoint")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "invalid_request_error",
        "method not allowed on this endpoint",
    )
}

/// Counts every response by route template and status.
async fn record_http(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |p| p.as_str())
        .to_owned();
    let start = Instant::now();
    let response = next.run(req).await;
    state.metrics.record_http(
        &route,
        response.status().as_u16(),
        start.elapsed().as_secs_f64(),
    );
    response
}
