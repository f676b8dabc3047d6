//! Console sessions: a login with an admin API key makes a server-side
//! session. The browser holds a random 256-bit id in a cookie scoped to
//! `/console` (`HttpOnly; SameSite=Strict`, `Secure` behind TLS); the
//! database holds only its SHA-256, the key it was made with, a CSRF token
//! and the expiry. Every request re-checks the key, so revoking it ends
//! its sessions at once; every state-changing request must carry the CSRF
//! token and come from this origin (`Origin` / `Sec-Fetch-Site`).

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use base64::Engine as _;
use chrono::{Duration, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, Set,
};
use sha2::{Digest, Sha256};

use crate::api::AppState;
use crate::keys::{Principal, Role};
use warden_db::entities::{api_key, console_session};

pub const COOKIE: &str = "warden_console";

/// The logged-in admin, as pages see them.
#[derive(Debug, Clone)]
pub struct Session {
    pub key_name: String,
    pub csrf: String,
}

#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    #[error("that key is not a valid Warden API key")]
    UnknownKey,
    #[error("only admin keys can use the console")]
    NotAdmin,
    #[error(transparent)]
    Db(#[from] DbErr),
    #[error(transparent)]
    Keys(#[from] crate::keys::KeyError),
}

fn random_token() -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
}

fn hash(id: &str) -> String {
    hex::encode(Sha256::digest(id.as_bytes()))
}

/// Logs in with `key`: a new session (a new id at every login), returned
/// with the cookie value.
pub async fn login(
    db: &DatabaseConnection,
    key: &str,
    ttl: Duration,
) -> Result<(String, Principal), LoginError> {
    let principal = crate::keys::authenticate(db, key.trim())
        .await?
        .ok_or(LoginError::UnknownKey)?;
    if principal.role != Role::Admin {
        return Err(LoginError::NotAdmin);
    }
    let id = random_token();
    let now = Utc::now();
    console_session::ActiveModel {
        id_hash: Set(hash(&id)),
        key_id: Set(principal.key_id),
        key_name: Set(principal.name.clone()),
        csrf: Set(random_token()),
        created_at: Set(now),
        expires_at: Set(now + ttl),
    }
    .insert(db)
    .await?;
    // Expired sessions are of no use to anyone.
    console_session::Entity::delete_many()
        .filter(console_session::Column::ExpiresAt.lt(now))
        .exec(db)
        .await?;
    Ok((id, principal))
}

pub async fn logout(db: &DatabaseConnection, id: &str) -> Result<(), DbErr> {
    console_session::Entity::delete_by_id(hash(id))
        .exec(db)
        .await?;
    Ok(())
}

/// The session `id` names, if it is unexpired and its key is still an
/// unrevoked admin key.
pub async fn find(db: &DatabaseConnection, id: &str) -> Result<Option<Session>, DbErr> {
    if id.is_empty() || id.len() > 100 {
        return Ok(None);
    }
    let Some(row) = console_session::Entity::find_by_id(hash(id))
        .one(db)
        .await?
    else {
        return Ok(None);
    };
    if row.expires_at <= Utc::now() {
        console_session::Entity::delete_by_id(row.id_hash)
            .exec(db)
            .await?;
        return Ok(None);
    }
    let key = api_key::Entity::find_by_id(row.key_id).one(db).await?;
    let live = key.is_some_and(|k| !k.revoked && k.role == Role::Admin.as_str());
    if !live {
        console_session::Entity::delete_by_id(row.id_hash)
            .exec(db)
            .await?;
        return Ok(None);
    }
    Ok(Some(Session {
        key_name: row.key_name,
        csrf: row.csrf,
    }))
}

/// The session cookie's value in `headers`.
pub fn cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_owned())
}

/// `Set-Cookie` for a new session (or, with `None`, one that ends it).
pub fn set_cookie(id: Option<&str>, ttl: Duration, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    match id {
        Some(id) => format!(
            "{COOKIE}={id}; HttpOnly; SameSite=Strict; Path=/console; Max-Age={}{secure}",
            ttl.num_seconds()
        ),
        None => format!("{COOKIE}=; HttpOnly; SameSite=Strict; Path=/console; Max-Age=0{secure}"),
    }
}

/// Whether a state-changing request comes from this origin: `Origin`
/// must name this host, or (without `Origin`) `Sec-Fetch-Site` must be
/// `same-origin`; a request with neither is refused.
pub fn same_origin(headers: &HeaderMap) -> bool {
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    if let Some(origin) = headers.get(header::ORIGIN).and_then(|o| o.to_str().ok()) {
        let authority = origin
            .strip_prefix("https://")
            .or_else(|| origin.strip_prefix("http://"));
        return matches!((authority, host), (Some(a), Some(h)) if a == h);
    }
    headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == "same-origin")
}

/// Constant-time comparison of the CSRF token a form carried.
pub fn csrf_ok(session: &Session, presented: &str) -> bool {
    use subtle::ConstantTimeEq as _;
    session.csrf.as_bytes().ct_eq(presented.as_bytes()).into()
}

/// Pages behind the login: no session (or an ended one) goes to the login
/// page; a state-changing request from another origin is refused before
/// its handler runs (the CSRF token is checked by the handler, which reads
/// the form).
pub async fn require(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let session = match cookie(req.headers()) {
        Some(id) => match find(&state.db, &id).await {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "console: reading a session");
                return super::pages::error_page(
                    axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                    "The database could not be read; try again.",
                );
            }
        },
        None => None,
    };
    let Some(session) = session else {
        let mut r = Redirect::to("/console/login").into_response();
        if cookie(req.headers()).is_some() {
            // An ended session: drop the stale cookie too.
            if let Ok(v) = set_cookie(None, Duration::zero(), false).parse() {
                r.headers_mut().insert(header::SET_COOKIE, v);
            }
        }
        return r;
    };
    if req.method() != Method::GET && req.method() != Method::HEAD && !same_origin(req.headers()) {
        tracing::warn!(key = %session.key_name, "console: a cross-site request was refused");
        return super::pages::error_page(
            axum::http::StatusCode::FORBIDDEN,
            "This request did not come from the console's own pages.",
        );
    }
    req.extensions_mut().insert(session);
    next.run(req).await
}
