//! The console's pages: each handler reads through the same services as
//! the API (runs, approvals, audit, keys) and renders an askama template
//! (compile-time checked, HTML auto-escaped). Every page works as plain
//! HTML forms; `console.js` only adds conveniences.

use askama::Template;
use axum::Extension;
use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use futures::StreamExt as _;
use serde::Deserialize;

use super::session::{self, Session};
use crate::api::AppState;
use warden_agents::state::LoopState;
use warden_governance::audit::query::{AuditEntry, AuditFilter};

/// What every page's frame shows.
pub(super) struct Nav {
    pub key_name: String,
    pub csrf: String,
    pub active: &'static str,
}

impl Nav {
    pub(super) fn of(s: &Session, active: &'static str) -> Self {
        Self {
            key_name: s.key_name.clone(),
            csrf: s.csrf.clone(),
            active,
        }
    }
}

/// A rendered page, or the error page if rendering failed.
pub(super) fn html(status: StatusCode, page: &impl Template) -> Response {
    match page.render() {
        Ok(body) => (
            status,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            body,
        )
            .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "console: rendering a page");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the page could not be rendered",
            )
                .into_response()
        }
    }
}

#[derive(Template)]
#[template(path = "console/error.html")]
struct ErrorPage<'a> {
    message: &'a str,
}

pub fn error_page(status: StatusCode, message: &str) -> Response {
    html(status, &ErrorPage { message })
}

pub(super) fn internal(e: impl std::fmt::Display) -> Response {
    tracing::error!(error = %e, "console");
    error_page(
        StatusCode::INTERNAL_SERVER_ERROR,
        "Something failed on the server; the log says what.",
    )
}

pub(super) fn refused_csrf() -> Response {
    error_page(
        StatusCode::FORBIDDEN,
        "This form is out of date or did not come from the console (CSRF token). Reload the page and try again.",
    )
}

// ----- login -----

#[derive(Template)]
#[template(path = "console/login.html")]
struct LoginPage<'a> {
    error: &'a str,
}

pub async fn login_form() -> Response {
    html(StatusCode::OK, &LoginPage { error: "" })
}

#[derive(Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    key: String,
}

pub async fn login(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    // Login CSRF: a cross-site form must not log the browser in as
    // someone else.
    if !session::same_origin(&headers) {
        return error_page(StatusCode::FORBIDDEN, "Log in from the console's own page.");
    }
    let ttl = state.console.session_ttl();
    match session::login(&state.db, &form.key, ttl).await {
        Ok((id, principal)) => {
            tracing::info!(key = %principal.name, "console: logged in");
            super::audit_action(&state, &principal.name, "login", &principal.name).await;
            let mut r = Redirect::to("/console").into_response();
            if let Ok(v) = session::set_cookie(Some(&id), ttl, state.console.secure_cookie).parse()
            {
                r.headers_mut().insert(header::SET_COOKIE, v);
            }
            r
        }
        Err(e @ (session::LoginError::UnknownKey | session::LoginError::NotAdmin)) => {
            let message = e.to_string();
            html(StatusCode::UNAUTHORIZED, &LoginPage { error: &message })
        }
        Err(e) => internal(e),
    }
}

#[derive(Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    pub(super) csrf: String,
}

pub async fn logout(
    State(state): State<AppState>,
    Extension(s): Extension<Session>,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Response {
    if !session::csrf_ok(&s, &form.csrf) {
        return refused_csrf();
    }
    if let Some(id) = session::cookie(&headers)
        && let Err(e) = session::logout(&state.db, &id).await
    {
        return internal(e);
    }
    let mut r = Redirect::to("/console/login").into_response();
    if let Ok(v) =
        session::set_cookie(None, chrono::Duration::zero(), state.console.secure_cookie).parse()
    {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

// ----- overview -----

/// A configured model and its load right now (from the metrics).
struct ModelRow {
    id: String,
    owned_by: String,
    in_flight: i64,
    tokens_per_second: String,
}

fn model_rows(state: &AppState) -> Vec<ModelRow> {
    let load = state.metrics.load();
    state
        .registry
        .iter()
        .map(|b| {
            let l = load.iter().find(|l| l.model == b.model_id());
            ModelRow {
                id: b.model_id().to_owned(),
                owned_by: b.owned_by().to_owned(),
                in_flight: l.map_or(0, |l| l.in_flight),
                tokens_per_second: format!("{:.2}", l.map_or(0.0, |l| l.tokens_per_second)),
            }
        })
        .collect()
}

/// `GET /console/overview/live`: each model's load, polled by the
/// overview page to keep its numbers current.
pub async fn overview_live(State(state): State<AppState>) -> Response {
    let models: Vec<serde_json::Value> = model_rows(&state)
        .into_iter()
        .map(|m| {
            serde_json::json!({
                "model": m.id,
                "in_flight": m.in_flight,
                "tokens_per_second": m.tokens_per_second,
            })
        })
        .collect();
    axum::Json(serde_json::json!({ "models": models })).into_response()
}

#[derive(Template)]
#[template(path = "console/overview.html")]
struct OverviewPage {
    nav: Nav,
    serving_since: String,
    models: Vec<ModelRow>,
    plugins: Vec<(String, String, String)>,
    bundle: String,
    reload_error: String,
    audit_head: String,
    awaiting: usize,
    runs_today: u64,
    tokens_today: i64,
    channels: Vec<(String, String)>,
}

pub async fn overview(State(state): State<AppState>, Extension(s): Extension<Session>) -> Response {
    let models = model_rows(&state);
    let plugins = state
        .plugins
        .list()
        .await
        .into_iter()
        .map(|p| {
            let status = serde_json::to_value(&p.status)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            (p.id, p.version.unwrap_or_default(), status)
        })
        .collect();
    let status = state.governor.store.status();
    use sea_orm::EntityTrait;
    let head = match warden_db::entities::audit_head::Entity::find()
        .one(&state.db)
        .await
    {
        Ok(h) => h
            .map(|h| format!("#{} {}", h.seq, h.hash))
            .unwrap_or_else(|| "empty".into()),
        Err(e) => return internal(e),
    };
    let runs = &state.agents.runner.runs;
    let awaiting = match runs.list(None, Some("awaiting_approval"), None, 500).await {
        Ok(r) => r.len(),
        Err(e) => return internal(e),
    };
    let (runs_today, tokens_today) = match runs
        .since(chrono::Utc::now() - chrono::Duration::days(1))
        .await
    {
        Ok(v) => v,
        Err(e) => return internal(e),
    };
    let mut channels = Vec::new();
    if let Some(c) = &state.channels {
        for (kind, name) in c
            .slack
            .iter()
            .map(|s| ("slack", s.config.name.clone()))
            .chain(c.email.iter().map(|e| ("email", e.config.name.clone())))
        {
            let inbox = c
                .dispatcher
                .inbox
                .counts(kind, &name)
                .await
                .unwrap_or_default();
            let outbox = c
                .dispatcher
                .sender
                .outbox()
                .counts(kind, &name)
                .await
                .unwrap_or_default();
            let show = |v: Vec<(&str, u64)>| {
                v.iter()
                    .filter(|(_, n)| *n > 0)
                    .map(|(k, n)| format!("{k} {n}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let drops = state.metrics.channel_drops(kind, &name);
            channels.push((
                format!("{kind} {name}"),
                format!(
                    "inbox: {}; outbox: {}; since start: {} refused (bad signature or credentials), {} replays refused, {} duplicates dropped",
                    show(inbox),
                    show(outbox),
                    drops.signature,
                    drops.replayed,
                    drops.duplicates
                ),
            ));
        }
    }
    html(
        StatusCode::OK,
        &OverviewPage {
            nav: Nav::of(&s, "overview"),
            serving_since: chrono::DateTime::from_timestamp(state.started_at, 0)
                .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
                .unwrap_or_default(),
            models,
            plugins,
            bundle: status.bundle.clone(),
            reload_error: status
                .last_reload_error
                .as_ref()
                .map(|e| format!("{} (at {})", e.message, e.at))
                .unwrap_or_default(),
            audit_head: head,
            awaiting,
            runs_today,
            tokens_today,
            channels,
        },
    )
}

// ----- approvals -----

struct Waiting {
    run_id: String,
    agent: String,
    tool: String,
    arguments: String,
    rule: String,
    requested_by: String,
    age: String,
}

#[derive(Template)]
#[template(path = "console/approvals.html")]
struct ApprovalsPage {
    nav: Nav,
    waiting: Vec<Waiting>,
    notice: String,
}

fn age(since: chrono::DateTime<chrono::Utc>) -> String {
    let s = (chrono::Utc::now() - since).num_seconds().max(0);
    match s {
        0..=59 => format!("{s} s"),
        60..=3599 => format!("{} min", s / 60),
        3600..=86399 => format!("{} h", s / 3600),
        _ => format!("{} d", s / 86400),
    }
}

#[derive(Deserialize, Default)]
pub struct Notice {
    #[serde(default)]
    notice: String,
}

pub async fn approvals(
    State(state): State<AppState>,
    Extension(s): Extension<Session>,
    Query(n): Query<Notice>,
) -> Response {
    let mut runs = match state
        .agents
        .runner
        .runs
        .list(None, Some("awaiting_approval"), None, 500)
        .await
    {
        Ok(r) => r,
        Err(e) => return internal(e),
    };
    // Oldest first: who has waited longest is decided first.
    runs.reverse();
    let waiting = runs
        .iter()
        .map(|r| {
            let pending = r
                .state
                .as_deref()
                .and_then(|s| serde_json::from_str::<LoopState>(s).ok())
                .and_then(|s| s.pending);
            Waiting {
                run_id: r.id.clone(),
                agent: r.agent.clone(),
                tool: pending
                    .as_ref()
                    .map(|p| p.waiting.0.clone())
                    .unwrap_or_default(),
                arguments: pending
                    .as_ref()
                    .map(|p| p.waiting.1.to_string())
                    .unwrap_or_default(),
                rule: pending.map(|p| p.message).unwrap_or_default(),
                requested_by: r.subject.clone().unwrap_or_default(),
                age: age(r.updated_at),
            }
        })
        .collect();
    html(
        StatusCode::OK,
        &ApprovalsPage {
            nav: Nav::of(&s, "approvals"),
            waiting,
            notice: n.notice.chars().take(300).collect(),
        },
    )
}

#[derive(Deserialize)]
pub struct DecideForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    decision: String,
    #[serde(default)]
    reason: String,
}

pub async fn decide(
    State(state): State<AppState>,
    Extension(s): Extension<Session>,
    Path(run_id): Path<String>,
    Form(form): Form<DecideForm>,
) -> Response {
    if !session::csrf_ok(&s, &form.csrf) {
        return refused_csrf();
    }
    let approved = match form.decision.as_str() {
        "approve" => true,
        "reject" => false,
        _ => return error_page(StatusCode::BAD_REQUEST, "Choose approve or reject."),
    };
    let reason = form.reason.trim();
    if reason.len() > 2000 {
        return error_page(StatusCode::BAD_REQUEST, "A reason is at most 2000 bytes.");
    }
    let reason = (!reason.is_empty()).then(|| reason.to_owned());
    let notice = match crate::api::agents::decide_run(
        &state,
        &run_id,
        approved,
        &s.key_name,
        reason,
    )
    .await
    {
        Ok(status) => format!(
            "{} run {run_id}; it is {status}.",
            if approved { "Approved" } else { "Rejected" }
        ),
        Err(crate::api::agents::DecideError::Already { status, by }) => match by {
            Some(by) => format!("Run {run_id} was already decided by {by} (it is {status})."),
            None => format!("Run {run_id} is not waiting for a decision (it is {status})."),
        },
        Err(crate::api::agents::DecideError::Api(e)) => {
            return error_page(e.status, &e.message);
        }
    };
    let q = form_urlencoded::Serializer::new(String::new())
        .append_pair("notice", &notice)
        .finish();
    Redirect::to(&format!("/console/approvals?{q}")).into_response()
}

// ----- runs -----

struct RunRow {
    id: String,
    agent: String,
    status: String,
    subject: String,
    created: String,
    tokens: i32,
}

#[derive(Template)]
#[template(path = "console/runs.html")]
struct RunsPage {
    nav: Nav,
    agent: String,
    status: String,
    rows: Vec<RunRow>,
    next: String,
    error: String,
}

#[derive(Deserialize, Default)]
pub struct RunQuery {
    #[serde(default)]
    agent: String,
    #[serde(default)]
    status: String,
    /// Older than this run (its `created_at`, RFC 3339, then id).
    #[serde(default)]
    before: String,
}

const RUN_PAGE: u64 = 50;

pub async fn runs(
    State(state): State<AppState>,
    Extension(s): Extension<Session>,
    query: Result<Query<RunQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let q = query.map(|Query(q)| q).unwrap_or_default();
    let mut page = RunsPage {
        nav: Nav::of(&s, "runs"),
        agent: q.agent.clone(),
        status: q.status.clone(),
        rows: Vec::new(),
        next: String::new(),
        error: String::new(),
    };
    if !q.status.is_empty()
        && !warden_agents::RunStatus::ALL
            .iter()
            .any(|st| st.as_str() == q.status)
    {
        page.error = format!("{:?} is not a run status.", q.status);
        return html(StatusCode::BAD_REQUEST, &page);
    }
    let before = if q.before.is_empty() {
        None
    } else {
        match q.before.split_once('|').and_then(|(t, id)| {
            chrono::DateTime::parse_from_rfc3339(t)
                .ok()
                .map(|t| (t.with_timezone(&chrono::Utc), id.to_owned()))
        }) {
            Some(b) => Some(b),
            None => {
                page.error = "That page link is not valid; start from the first page.".into();
                return html(StatusCode::BAD_REQUEST, &page);
            }
        }
    };
    let nonempty = |v: &str| (!v.is_empty()).then(|| v.to_owned());
    let rows = match state
        .agents
        .runner
        .runs
        .page(
            nonempty(&q.agent).as_deref(),
            nonempty(&q.status).as_deref(),
            before,
            RUN_PAGE,
        )
        .await
    {
        Ok(r) => r,
        Err(e) => return internal(e),
    };
    if rows.len() as u64 == RUN_PAGE
        && let Some(last) = rows.last()
    {
        page.next = form_urlencoded::Serializer::new(String::new())
            .append_pair("agent", &q.agent)
            .append_pair("status", &q.status)
            .append_pair(
                "before",
                &format!("{}|{}", last.created_at.to_rfc3339(), last.id),
            )
            .finish();
    }
    page.rows = rows
        .into_iter()
        .map(|r| RunRow {
            tokens: r.prompt_tokens + r.completion_tokens,
            created: r.created_at.format("%Y-%m-%d %H:%M:%S").to_string(),
            subject: r.subject.unwrap_or_default(),
            id: r.id,
            agent: r.agent,
            status: r.status,
        })
        .collect();
    html(StatusCode::OK, &page)
}

struct StepRow {
    idx: i32,
    kind: String,
    detail: String,
    ms: String,
    /// The step's audit record, and the audit page's cursor that shows it
    /// first.
    audit: String,
    audit_before: String,
}

#[derive(Template)]
#[template(path = "console/run.html")]
struct RunPage {
    nav: Nav,
    id: String,
    agent: String,
    status: String,
    subject: String,
    input: String,
    answer: String,
    error: String,
    tokens: String,
    steps: Vec<StepRow>,
    cancellable: bool,
    /// While the run goes on: where its timeline's next steps stream from.
    live: String,
    /// A finished run with an answer can be rated.
    rateable: bool,
    notice: String,
}

pub async fn run(
    State(state): State<AppState>,
    Extension(s): Extension<Session>,
    Path(id): Path<String>,
    Query(n): Query<Notice>,
) -> Response {
    let (run, steps) = match state.agents.runner.runs.get(&id).await {
        Ok(Some(r)) => r,
        Ok(None) => return error_page(StatusCode::NOT_FOUND, "No such run."),
        Err(e) => return internal(e),
    };
    let cancellable = run.status == "running" || run.status == "awaiting_approval";
    let rateable = run.answer.is_some();
    let live = if run.status == "running" {
        let after = steps.last().map_or(-1, |s| s.idx);
        format!("/console/runs/{}/events?after={after}", urlencode(&run.id))
    } else {
        String::new()
    };
    html(
        StatusCode::OK,
        &RunPage {
            nav: Nav::of(&s, "runs"),
            tokens: format!(
                "{} prompt + {} completion",
                run.prompt_tokens, run.completion_tokens
            ),
            steps: steps
                .into_iter()
                .map(|st| StepRow {
                    idx: st.idx,
                    kind: st.kind,
                    detail: st.detail,
                    ms: format!("{:.1}", st.duration_ms),
                    audit: st.audit_seq.map(|s| s.to_string()).unwrap_or_default(),
                    audit_before: st
                        .audit_seq
                        .map(|s| (s + 1).to_string())
                        .unwrap_or_default(),
                })
                .collect(),
            id: run.id,
            agent: run.agent,
            status: run.status,
            subject: run.subject.unwrap_or_default(),
            input: run.input,
            answer: run.answer.unwrap_or_default(),
            error: run.error.unwrap_or_default(),
            cancellable,
            live,
            rateable,
            notice: n.notice.chars().take(300).collect(),
        },
    )
}

#[derive(Deserialize)]
pub struct FeedbackForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    rating: i32,
    #[serde(default)]
    comment: String,
    #[serde(default)]
    correction: String,
}

/// Rates a run's answer through the same feedback store as
/// `POST /api/runs/{id}/feedback`.
pub async fn feedback(
    State(state): State<AppState>,
    Extension(s): Extension<Session>,
    Path(id): Path<String>,
    Form(form): Form<FeedbackForm>,
) -> Response {
    if !session::csrf_ok(&s, &form.csrf) {
        return refused_csrf();
    }
    let opt = |v: &str| (!v.trim().is_empty()).then(|| v.trim().to_owned());
    let (comment, correction) = (opt(&form.comment), opt(&form.correction));
    if let Err(e) =
        warden_agents::feedback::validate(form.rating, comment.as_deref(), correction.as_deref())
    {
        return error_page(StatusCode::BAD_REQUEST, &e.to_string());
    }
    match state.agents.runner.runs.get(&id).await {
        Ok(Some((run, _))) if run.answer.is_some() => {}
        Ok(_) => return error_page(StatusCode::CONFLICT, "That run has no answer to rate."),
        Err(e) => return internal(e),
    }
    if let Err(e) = state
        .agents
        .runner
        .feedback
        .add(&id, &s.key_name, form.rating, comment, correction)
        .await
    {
        return internal(e);
    }
    super::audit_action(&state, &s.key_name, "run.feedback", &id).await;
    let q = form_urlencoded::Serializer::new(String::new())
        .append_pair("notice", "Thank you: the feedback is recorded.")
        .finish();
    Redirect::to(&format!("/console/runs/{}?{q}", urlencode(&id))).into_response()
}

#[derive(Deserialize)]
pub struct After {
    #[serde(default = "minus_one")]
    after: i32,
}

fn minus_one() -> i32 {
    -1
}

/// The run's steps after `after` as server-sent events (`step`, then one
/// `end` with the status once the run stops running), read from the run
/// store: it follows a run wherever it was started (API, channel, here).
pub async fn run_events(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<After>,
) -> Response {
    use axum::response::sse::{Event, KeepAlive, Sse};
    let runs = state.agents.runner.runs.clone();
    let stream = futures::stream::unfold((q.after, false, 0u32), move |(after, ended, ticks)| {
        let runs = runs.clone();
        let id = id.clone();
        async move {
            // A run page left open is followed for at most 30 minutes.
            if ended || ticks > 6000 {
                return None;
            }
            if ticks > 0 {
                tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            }
            let Ok(Some((run, steps))) = runs.get(&id).await else {
                let e = Event::default().event("end").data("gone");
                return Some((vec![e], (after, true, ticks + 1)));
            };
            let mut events = Vec::new();
            let mut last = after;
            for st in steps.iter().filter(|s| s.idx > after) {
                last = st.idx;
                let data = serde_json::json!({
                    "idx": st.idx, "kind": st.kind, "ms": format!("{:.1}", st.duration_ms),
                    "detail": st.detail, "audit": st.audit_seq,
                });
                events.push(Event::default().event("step").data(data.to_string()));
            }
            let done = run.status != "running";
            if done {
                events.push(Event::default().event("end").data(run.status));
            }
            Some((events, (last, done, ticks + 1)))
        }
    })
    .flat_map(|events| {
        futures::stream::iter(events.into_iter().map(Ok::<_, std::convert::Infallible>))
    });
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}

pub async fn cancel(
    State(state): State<AppState>,
    Extension(s): Extension<Session>,
    Path(id): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Response {
    if !session::csrf_ok(&s, &form.csrf) {
        return refused_csrf();
    }
    match state.agents.runner.cancel(&id, &s.key_name).await {
        Ok(true) => super::audit_action(&state, &s.key_name, "run.cancel", &id).await,
        Ok(false) => {}
        Err(e) => return internal(e),
    }
    Redirect::to(&format!("/console/runs/{}", urlencode(&id))).into_response()
}

pub(super) fn urlencode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

// ----- audit -----

#[derive(Template)]
#[template(path = "console/audit.html")]
struct AuditPage {
    nav: Nav,
    f: AuditForm,
    rows: Vec<AuditEntry>,
    next: String,
    error: String,
    verified: String,
    /// The export link for the current filter.
    export: String,
}

/// The audit filter as the form holds it (empty fields are no filter).
#[derive(Deserialize, Default, Clone)]
pub struct AuditForm {
    #[serde(default)]
    since: String,
    #[serde(default)]
    until: String,
    #[serde(default)]
    decision: String,
    #[serde(default)]
    policy: String,
    #[serde(default)]
    stage: String,
    #[serde(default)]
    subject: String,
    #[serde(default)]
    channel: String,
    #[serde(default)]
    before: String,
}

const AUDIT_PAGE: u64 = 100;

impl AuditForm {
    fn filter(&self) -> Result<AuditFilter, String> {
        let opt = |v: &str| (!v.trim().is_empty()).then(|| v.trim().to_owned());
        let before = match opt(&self.before) {
            Some(b) => Some(
                b.parse::<i64>()
                    .map_err(|_| "That page link is not valid.".to_owned())?,
            ),
            None => None,
        };
        let f = AuditFilter {
            since: opt(&self.since),
            until: opt(&self.until),
            decision: opt(&self.decision),
            policy: opt(&self.policy),
            stage: opt(&self.stage),
            subject: opt(&self.subject),
            channel: opt(&self.channel),
            before,
            limit: Some(AUDIT_PAGE),
            ..AuditFilter::default()
        };
        f.validate().map_err(|e| e.to_string())?;
        Ok(f)
    }
}

pub async fn audit(
    State(state): State<AppState>,
    Extension(s): Extension<Session>,
    query: Result<Query<AuditForm>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let f = query.map(|Query(q)| q).unwrap_or_default();
    let mut page = AuditPage {
        nav: Nav::of(&s, "audit"),
        f: f.clone(),
        rows: Vec::new(),
        next: String::new(),
        error: String::new(),
        verified: String::new(),
        export: form_urlencoded::Serializer::new(String::new())
            .extend_pairs([
                ("since", &f.since),
                ("until", &f.until),
                ("decision", &f.decision),
                ("policy", &f.policy),
                ("stage", &f.stage),
                ("subject", &f.subject),
                ("channel", &f.channel),
            ])
            .finish(),
    };
    let filter = match f.filter() {
        Ok(filter) => filter,
        Err(e) => {
            // The form is kept, with what is wrong.
            page.error = e;
            return html(StatusCode::BAD_REQUEST, &page);
        }
    };
    let rows = match filter.page(&state.db).await {
        Ok(r) => r,
        Err(e) => return internal(e),
    };
    if rows.len() as u64 == AUDIT_PAGE
        && let Some(last) = rows.last()
    {
        let mut next = f.clone();
        next.before = last.seq.to_string();
        page.next = form_urlencoded::Serializer::new(String::new())
            .extend_pairs([
                ("since", &next.since),
                ("until", &next.until),
                ("decision", &next.decision),
                ("policy", &next.policy),
                ("stage", &next.stage),
                ("subject", &next.subject),
                ("channel", &next.channel),
                ("before", &next.before),
            ])
            .finish();
    }
    page.rows = rows.into_iter().map(AuditEntry::from).collect();
    html(StatusCode::OK, &page)
}

/// The records the current filter matches (every page of them), oldest
/// first, one JSON object per line, streamed a thousand rows at a time.
pub async fn export(
    State(state): State<AppState>,
    Extension(s): Extension<Session>,
    query: Result<Query<AuditForm>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let f = query.map(|Query(q)| q).unwrap_or_default();
    let mut filter = match f.filter() {
        Ok(filter) => filter,
        Err(e) => return error_page(StatusCode::BAD_REQUEST, &e),
    };
    // The export is the whole match, not the page being looked at.
    filter.before = None;
    super::audit_action(&state, &s.key_name, "audit.export", "").await;
    let db = state.db.clone();
    let stream = futures::stream::unfold(Some(0i64), move |after| {
        let (db, filter) = (db.clone(), filter.clone());
        async move {
            let after = after?;
            match filter.export_page(&db, after, 1000).await {
                Ok(rows) if rows.is_empty() => None,
                Ok(rows) => {
                    let next = rows.last().map(|r| r.seq);
                    let mut chunk = String::new();
                    for r in rows {
                        chunk.push_str(
                            &serde_json::to_string(&AuditEntry::from(r)).unwrap_or_default(),
                        );
                        chunk.push('\n');
                    }
                    Some((Ok::<_, std::io::Error>(chunk), next))
                }
                Err(e) => {
                    tracing::error!(error = %e, "console: exporting the audit log");
                    Some((Err(std::io::Error::other(e.to_string())), None))
                }
            }
        }
    });
    (
        [
            (header::CONTENT_TYPE, "application/x-ndjson"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"warden-audit.jsonl\"",
            ),
        ],
        axum::body::Body::from_stream(stream),
    )
        .into_response()
}

pub async fn verify(
    State(state): State<AppState>,
    Extension(s): Extension<Session>,
    Form(form): Form<CsrfForm>,
) -> Response {
    if !session::csrf_ok(&s, &form.csrf) {
        return refused_csrf();
    }
    let report = match warden_governance::audit::verify(&state.db).await {
        Ok(r) => r,
        Err(e) => return internal(e),
    };
    let verified = if report.ok {
        format!(
            "The chain verifies: {} records, head #{} {}.",
            report.rows_checked, report.head_seq, report.head_hash
        )
    } else {
        format!(
            "The chain does NOT verify after {} records: {}",
            report.rows_checked,
            report
                .problem
                .as_ref()
                .map(|p| serde_json::to_string(p).unwrap_or_default())
                .unwrap_or_default()
        )
    };
    html(
        if report.ok {
            StatusCode::OK
        } else {
            StatusCode::CONFLICT
        },
        &AuditPage {
            nav: Nav::of(&s, "audit"),
            f: AuditForm::default(),
            rows: Vec::new(),
            next: String::new(),
            error: String::new(),
            verified,
            export: String::new(),
        },
    )
}

// ----- keys -----

struct KeyRow {
    name: String,
    role: String,
    prefix: String,
    created: String,
    last_used: String,
    revoked: bool,
}

#[derive(Template)]
#[template(path = "console/keys.html")]
struct KeysPage {
    nav: Nav,
    keys: Vec<KeyRow>,
    created_key: String,
    created_name: String,
    error: String,
}

async fn keys_page(
    state: &AppState,
    s: &Session,
    created: Option<(String, String)>,
    error: String,
) -> Response {
    let rows = match crate::keys::list(&state.db).await {
        Ok(r) => r,
        Err(e) => return internal(e),
    };
    let (created_name, created_key) = created.unwrap_or_default();
    let status = if error.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::BAD_REQUEST
    };
    let page = KeysPage {
        nav: Nav::of(s, "keys"),
        keys: rows
            .into_iter()
            .map(|k| KeyRow {
                name: k.name,
                role: k.role,
                prefix: k.prefix,
                created: k.created_at.format("%Y-%m-%d %H:%M").to_string(),
                last_used: k
                    .last_used_at
                    .map(|t| t.format("%Y-%m-%d %H:%M").to_string())
                    .unwrap_or_default(),
                revoked: k.revoked,
            })
            .collect(),
        created_key,
        created_name,
        error,
    };
    let mut r = html(status, &page);
    // A page showing a new key is never cached.
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    r
}

pub async fn keys(State(state): State<AppState>, Extension(s): Extension<Session>) -> Response {
    keys_page(&state, &s, None, String::new()).await
}

#[derive(Deserialize)]
pub struct NewKeyForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    role: String,
}

pub async fn create_key(
    State(state): State<AppState>,
    Extension(s): Extension<Session>,
    Form(form): Form<NewKeyForm>,
) -> Response {
    if !session::csrf_ok(&s, &form.csrf) {
        return refused_csrf();
    }
    let role = match form.role.parse::<crate::keys::Role>() {
        Ok(r) => r,
        Err(_) => {
            return keys_page(&state, &s, None, "Choose the admin or user role.".into()).await;
        }
    };
    let name = form.name.trim();
    match crate::keys::create(&state.db, name, role).await {
        Ok(key) => {
            super::audit_action(&state, &s.key_name, "key.create", name).await;
            keys_page(&state, &s, Some((name.to_owned(), key)), String::new()).await
        }
        Err(e @ (crate::keys::KeyError::NameTaken(_) | crate::keys::KeyError::BadName)) => {
            keys_page(&state, &s, None, e.to_string()).await
        }
        Err(e) => internal(e),
    }
}

pub async fn revoke_key(
    State(state): State<AppState>,
    Extension(s): Extension<Session>,
    Path(name): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Response {
    if !session::csrf_ok(&s, &form.csrf) {
        return refused_csrf();
    }
    match crate::keys::revoke(&state.db, &name).await {
        Ok(true) => {
            super::audit_action(&state, &s.key_name, "key.revoke", &name).await;
            Redirect::to("/console/keys").into_response()
        }
        Ok(false) => error_page(StatusCode::NOT_FOUND, "No such key."),
        Err(e) => internal(e),
    }
}
