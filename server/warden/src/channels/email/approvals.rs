//! Approval links: `GET /channels/email/{name}/approval?token=…` shows what
//! the link would decide and a button; only the button's `POST` decides
//! (mail scanners and link previews follow links, so a GET never changes
//! anything). A token is signed, names one decision on one pause of one
//! run for one approver, expires, and is used once; the decision goes
//! through the channel core's approval path (the run's own approval step
//! and the audit chain, with the approver's address).

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::EmailConnection;
use super::routes::connection;
use crate::api::AppState;
use crate::api::error::ApiError;
use warden_agents::Resolution;
use warden_channels::dispatch::{Decided, Pending};
use warden_channels::nonces::Claim;
use warden_email::approval::{self, Claims, Decision};
use warden_email::reply::escape_html as escape;

/// What approval-link nonces are recorded as.
const LINK: &str = "approval-link";
/// Longest accepted reason.
const MAX_REASON: usize = 2000;

/// The link an approver gets.
pub fn link(base: &str, connection: &str, token: &str) -> String {
    format!(
        "{}/channels/email/{connection}/approval?token={token}",
        base.trim_end_matches('/')
    )
}

#[derive(Deserialize)]
pub struct TokenQuery {
    #[serde(default)]
    token: String,
}

#[derive(Deserialize)]
pub struct DecisionForm {
    #[serde(default)]
    token: String,
    #[serde(default)]
    reason: String,
}

/// A page, never cached, never framed, never sending a referrer (the URL
/// holds the token), running no script.
fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{t}</title><style>body{{font-family:sans-serif;max-width:40rem;margin:2rem auto;padding:0 1rem}}\
         pre{{white-space:pre-wrap;background:#f4f4f4;padding:.5rem}}button{{font-size:1rem;padding:.5rem 1.5rem}}\
         textarea{{width:100%}}</style></head><body><h1>{t}</h1>{body}</body></html>",
        t = escape(title)
    );
    let mut r = (status, html).into_response();
    let h = r.headers_mut();
    for (name, value) in [
        (header::CONTENT_TYPE, "text/html; charset=utf-8"),
        (header::CACHE_CONTROL, "no-store"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'",
        ),
    ] {
        h.insert(name, HeaderValue::from_static(value));
    }
    r
}

/// Why a link decides nothing.
#[derive(Debug, thiserror::Error)]
enum LinkRefused {
    #[error("this mailbox does not take decisions by mail")]
    NoLinks,
    #[error(transparent)]
    Token(#[from] approval::TokenError),
    #[error("the link is not this mailbox's")]
    OtherMailbox,
    #[error("its recipient is no longer an approver of this mailbox")]
    NotApprover,
}

fn refused(why: &LinkRefused) -> Response {
    page(
        StatusCode::FORBIDDEN,
        "This link cannot be used",
        &format!("<p>It cannot be used: {}.</p>", escape(&why.to_string())),
    )
}

/// The token's claims, if it is this mailbox's, signed, unexpired, and its
/// approver is (still) one of the mailbox's approvers.
fn verify(conn: &EmailConnection, name: &str, token: &str) -> Result<Claims, LinkRefused> {
    let secret = conn.link_secret.as_ref().ok_or(LinkRefused::NoLinks)?;
    let claims =
        approval::verify(secret, token, chrono::Utc::now().timestamp()).inspect_err(|e| {
            tracing::warn!(connection = %name, error = %e, "email: an approval link was refused");
        })?;
    if claims.connection != name {
        return Err(LinkRefused::OtherMailbox);
    }
    if !conn.config.is_approver(&claims.approver) {
        return Err(LinkRefused::NotApprover);
    }
    Ok(claims)
}

fn verb(d: Decision) -> &'static str {
    match d {
        Decision::Approve => "Approve",
        Decision::Reject => "Reject",
    }
}

fn already(status: &str, by: Option<&str>) -> Response {
    let who = match by {
        Some(by) => format!("Already decided by {}", escape(by)),
        None => "Nothing to decide".to_owned(),
    };
    page(
        StatusCode::CONFLICT,
        "Already decided",
        &format!("<p>{who}: the run is {}.</p>", escape(status)),
    )
}

pub async fn show(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(q): Query<TokenQuery>,
) -> Result<Response, ApiError> {
    let conn = connection(&state, &name)?;
    let claims = match verify(&conn, &name, &q.token) {
        Ok(c) => c,
        Err(why) => return Ok(refused(&why)),
    };
    let channels = state
        .channels
        .clone()
        .ok_or_else(|| ApiError::not_found("no channel is configured"))?;
    let needed = match channels.dispatcher.pending(&claims.run_id).await? {
        Pending::Waiting(n) if n.pause == claims.pause => n,
        Pending::Waiting(_) => return Ok(already("waiting on a later request", None)),
        Pending::Decided { status, by } => return Ok(already(&status, by.as_deref())),
        Pending::NoRun => {
            return Ok(page(
                StatusCode::NOT_FOUND,
                "No such run",
                "<p>The run this link is about no longer exists.</p>",
            ));
        }
    };
    let v = verb(claims.decision);
    let body = format!(
        "<p>Agent <b>{agent}</b> wants to call <b>{tool}</b> (run <code>{run}</code>).</p>\
         <p>Arguments:</p><pre>{args}</pre><p>Why it asks: {rule}</p>\
         <form method=\"post\" action=\"approval\">\
         <input type=\"hidden\" name=\"token\" value=\"{token}\">\
         <p><label>Reason (optional)<br><textarea name=\"reason\" rows=\"3\" maxlength=\"{MAX_REASON}\"></textarea></label></p>\
         <p><button type=\"submit\">{v}</button> as {approver}</p></form>",
        agent = escape(&needed.agent),
        tool = escape(&needed.tool),
        run = escape(&needed.run_id),
        args = escape(&needed.arguments),
        rule = escape(&needed.rule),
        token = escape(&q.token),
        approver = escape(&claims.approver),
    );
    Ok(page(StatusCode::OK, &format!("{v} this tool call?"), &body))
}

pub async fn decide(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Form(form): Form<DecisionForm>,
) -> Result<Response, ApiError> {
    let conn = connection(&state, &name)?;
    let claims = match verify(&conn, &name, &form.token) {
        Ok(c) => c,
        Err(why) => return Ok(refused(&why)),
    };
    let reason: String = form.reason.trim().chars().take(MAX_REASON).collect();
    let channels = state
        .channels
        .clone()
        .ok_or_else(|| ApiError::not_found("no channel is configured"))?;
    let nonces = &conn.nonces;
    let by = format!("email:{}", claims.approver);
    if let Claim::Used { by: first } = nonces
        .claim("email", &name, LINK, &claims.nonce, Some(&by))
        .await?
    {
        return Ok(page(
            StatusCode::CONFLICT,
            "This link was already used",
            &format!(
                "<p>It decided once{}; a link decides only once.</p>",
                first
                    .map(|b| format!(" (by {})", escape(&b)))
                    .unwrap_or_default()
            ),
        ));
    }
    let resolution = Resolution {
        approved: claims.decision == Decision::Approve,
        by: by.clone(),
        reason: (!reason.is_empty()).then_some(reason),
    };
    let decided = channels
        .dispatcher
        .decide(&claims.run_id, claims.pause, resolution)
        .await;
    Ok(match decided {
        Ok(Decided::Resumed { status }) => {
            tracing::info!(connection = %name, run = %claims.run_id, approver = %claims.approver, decision = claims.decision.as_str(), "email: decided by mail");
            let done = match claims.decision {
                Decision::Approve => "Approved",
                Decision::Reject => "Rejected",
            };
            page(
                StatusCode::OK,
                done,
                &format!(
                    "<p>{done} as {}. The run is {}; the requester gets the answer by mail.</p>",
                    escape(&claims.approver),
                    escape(status.as_str())
                ),
            )
        }
        Ok(Decided::Already { status, by }) => already(&status, by.as_deref()),
        Ok(Decided::Stale) => already("waiting on a later request", None),
        Err(e) => {
            // Nothing was decided: the link must still work.
            let _ = nonces.release("email", &name, LINK, &claims.nonce).await;
            return Err(e.into());
        }
    })
}
