//! `/console`: the admin web console, served by the binary. Pages are
//! server-rendered askama templates (`server/warden/templates/console/`,
//! checked at compile time, HTML auto-escaped) that work as plain forms;
//! `console.js` (ours, no third-party code) adds conveniences. The
//! console reads and acts through the same services as the API: the run
//! store and the one approval path, the audit query and verifier, the key
//! store.
//!
//! Security: a login with an admin key makes a server-side session
//! (`session.rs`); the cookie authorises only `/console`. Every response
//! carries a strict CSP (no inline script, no framing); every state
//! change needs the session's CSRF token and a same-origin request, and
//! is written to the audit log with the admin key's name.

mod agents;
pub mod config;
mod pages;
mod plugins;
mod policies;
pub mod session;
#[cfg(test)]
mod tests;
mod usage;

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};

use crate::api::AppState;
use warden_governance::audit::record::NewRecord;
use warden_policy::Subject;

pub use config::ConsoleConfig;

const CSS: &str = include_str!("../../assets/console.css");
const JS: &str = include_str!("../../assets/console.js");

const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'";

pub fn router(state: AppState) -> Router<AppState> {
    let behind_login = Router::new()
        .route("/", get(|| async { Redirect::to("/console/overview") }))
        .route("/overview", get(pages::overview))
        .route("/overview/live", get(pages::overview_live))
        .route("/approvals", get(pages::approvals))
        .route("/approvals/{run}", post(pages::decide))
        .route("/runs", get(pages::runs))
        .route("/runs/{id}", get(pages::run))
        .route("/runs/{id}/cancel", post(pages::cancel))
        .route("/runs/{id}/events", get(pages::run_events))
        .route("/agents", get(agents::list).post(agents::save))
        .route("/agents/{name}", get(agents::edit))
        .route("/agents/{name}/try", post(agents::try_it))
        .route("/plugins", get(plugins::list).post(plugins::install))
        .route("/plugins/{id}/enabled", post(plugins::switch))
        .route("/plugins/{id}/accept", post(plugins::accept))
        .route("/plugins/{id}/remove", post(plugins::remove))
        .route("/plugins/{id}/tools/{tool}", post(plugins::call))
        .route("/policies", get(policies::show))
        .route("/policies/reload", post(policies::reload))
        .route("/policies/evaluate", post(policies::evaluate))
        .route("/audit", get(pages::audit))
        .route("/audit/verify", post(pages::verify))
        .route("/audit/export", get(pages::export))
        .route("/usage", get(usage::show))
        .route("/runs/{id}/feedback", post(pages::feedback))
        .route("/keys", get(pages::keys).post(pages::create_key))
        .route("/keys/{name}/revoke", post(pages::revoke_key))
        .route("/logout", post(pages::logout))
        .route_layer(middleware::from_fn_with_state(state, session::require));
    Router::new()
        .route("/login", get(pages::login_form).post(pages::login))
        .route(
            "/assets/console.css",
            get(|| async { asset("text/css; charset=utf-8", CSS) }),
        )
        .route(
            "/assets/console.js",
            get(|| async { asset("text/javascript; charset=utf-8", JS) }),
        )
        .merge(behind_login)
        .layer(middleware::from_fn(headers))
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut r = body.into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600"),
    );
    r
}

/// Headers on every console response: the CSP, no framing, no sniffing,
/// no referrer beyond this origin; pages are not cached.
async fn headers(req: Request, next: Next) -> Response {
    let is_asset = req.uri().path().starts_with("/console/assets/");
    let mut r = next.run(req).await;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    if !is_asset && !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    r
}

/// Writes a console action (`key.create`, …) to the audit log, with the
/// admin key's name as the subject. Best effort: the action is done; a
/// failure to record it is logged loudly.
async fn audit_action(state: &AppState, by: &str, action: &str, target: &str) {
    let record = NewRecord {
        run_id: None,
        stage: "console".into(),
        subject: Subject {
            key: Some(by.to_owned()),
            channel: Some("console".into()),
            ..Subject::default()
        },
        decision: "allow".into(),
        mode: "enforce".into(),
        policies: format!(",console/{action},"),
        matches: serde_json::json!({"console": {"action": action, "target": target, "by": by}})
            .to_string(),
        bundle: state.governor.store.current().hash.clone(),
        content_sha256: warden_policy::engine::content_sha256(target),
    };
    if let Err(e) = state.governor.audit.append_one(record).await {
        tracing::error!(error = %e, action, "console: the action could not be written to the audit log");
    }
}
