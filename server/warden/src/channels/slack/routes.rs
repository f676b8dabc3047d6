//! `POST /channels/slack/{events,interactions,commands}`. Every request is
//! verified on its raw body before anything parses it (401 for missing,
//! duplicated, malformed, stale or wrong signatures, whichever app's
//! secret it was meant for), then answered within Slack's 3 s: events are
//! stored in the inbox and acknowledged, and the agent runs afterwards
//! from there.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use sha2::Digest;

use super::SlackConnection;
use crate::api::AppState;
use crate::api::error::ApiError;
use crate::channels::Channels;
use warden_channels::dispatch::Decided;
use warden_channels::{Accepted, Message, NewItem, Outgoing};
use warden_slack::events::{Envelope, Incoming};
use warden_slack::signature::{self, SignatureError, SignedHeaders};
use warden_slack::{commands, interactions};

fn channels(state: &AppState) -> Result<Arc<Channels>, ApiError> {
    state
        .channels
        .clone()
        .filter(|c| !c.slack.is_empty())
        .ok_or_else(|| ApiError::not_found("no Slack connection is configured"))
}

/// The connection whose signing secret signed this body.
fn verify(
    state: &AppState,
    channels: &Channels,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Arc<SlackConnection>, ApiError> {
    let refuse = |e: SignatureError| {
        tracing::warn!(error = %e, "slack: request refused");
        // No connection's secret matched, so none can be named.
        state
            .metrics
            .record_channel_refusal("slack", "", "signature");
        ApiError::unauthorized(format!("slack signature: {e}")).with_code("invalid_signature")
    };
    let signed = SignedHeaders::from_headers(headers).map_err(refuse)?;
    let now = chrono::Utc::now().timestamp();
    let mut last = SignatureError::Mismatch;
    for c in &channels.slack {
        match signature::verify(c.signing_secret(), signed, body, now) {
            Ok(()) => return Ok(c.clone()),
            Err(e) => last = e,
        }
    }
    Err(refuse(last))
}

fn message_of(conn: &SlackConnection, i: &Incoming) -> Message {
    Message {
        thread_key: format!("{}:{}", i.channel, i.thread_ts),
        external_user: format!("{}:{}", i.team_id, i.user),
        display_name: None,
        agent: conn.config.agent.clone(),
        text: i.text.clone(),
        reply_to: json!({"channel": i.channel, "thread_ts": i.thread_ts}),
    }
}

pub async fn events(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let channels = channels(&state)?;
    let conn = verify(&state, &channels, &headers, &body)?;
    let envelope = Envelope::parse(&body)
        .map_err(|e| ApiError::bad_request(format!("not a Slack event: {e}")))?;
    let callback = match envelope {
        Envelope::UrlVerification { challenge } => {
            return Ok(Json(json!({ "challenge": challenge })).into_response());
        }
        Envelope::Callback(cb) => cb,
        // Rate-limit notices and event types Warden does not use.
        _ => return Ok(StatusCode::OK.into_response()),
    };
    let item = match conn.filter().classify(&callback) {
        Ok(incoming) => NewItem {
            channel: "slack",
            connection: conn.config.name.clone(),
            event_key: callback.event_id.clone(),
            message_key: Some(incoming.message_key()),
            ignored: None,
            payload: serde_json::to_string(&message_of(&conn, &incoming))?,
        },
        // Recorded without its text: only what it was and why it is not
        // answered.
        Err(why) => NewItem {
            channel: "slack",
            connection: conn.config.name.clone(),
            event_key: callback.event_id.clone(),
            message_key: None,
            ignored: Some(why.to_string()),
            payload: json!({"type": callback.event.kind, "subtype": callback.event.subtype})
                .to_string(),
        },
    };
    let retry = headers
        .get("x-slack-retry-num")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    match channels.dispatcher.inbox.accept(item).await? {
        Accepted::New(id) => {
            tracing::debug!(item = %id, "slack: event stored");
            channels.dispatcher.wake();
        }
        Accepted::Ignored(id) => tracing::debug!(item = %id, "slack: event ignored"),
        Accepted::Duplicate => {
            state
                .metrics
                .record_channel_duplicate("slack", &conn.config.name);
            tracing::debug!(event = %callback.event_id, retry = ?retry, "slack: duplicate dropped");
        }
    }
    Ok(StatusCode::OK.into_response())
}

/// A `response_url` message (ephemeral unless `in_channel`).
fn respond(url: &str, text: &str, replace_original: bool) -> Outgoing {
    Outgoing {
        kind: "respond".into(),
        target: json!({"response_url": url}),
        body: json!({
            "text": text,
            "response_type": "ephemeral",
            "replace_original": replace_original,
        }),
        after_placeholder: false,
        progress: false,
    }
}

/// Tells the clicker something through the click's `response_url`
/// (queued in the outbox like every reply).
async fn answer_click(
    dispatcher: &warden_channels::Dispatcher,
    conn: &SlackConnection,
    key: &str,
    url: &str,
    text: &str,
    replace_original: bool,
) {
    if url.is_empty() {
        return;
    }
    if let Err(e) = dispatcher
        .send(conn, key, &respond(url, text, replace_original))
        .await
    {
        tracing::warn!(error = %e, "slack: cannot queue a click's answer");
    }
}

pub async fn interactions(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let channels = channels(&state)?;
    let conn = verify(&state, &channels, &headers, &body)?;
    let click = interactions::parse(&body)
        .map_err(|e| ApiError::bad_request(format!("not a Slack interaction: {e}")))?;
    let Some(click) = click else {
        return Ok(StatusCode::OK.into_response());
    };
    let url = click.response_url.clone().unwrap_or_default();
    let key = format!("click:{}", digest(&headers, &body));
    let dispatcher = channels.dispatcher.clone();
    if !conn.is_approver(&click.team_id, &click.user_id) {
        tracing::warn!(team = %click.team_id, user = %click.user_id, "slack: a non-approver clicked an approval button");
        let text = "Only this channel's approvers can decide on tool calls.";
        answer_click(&dispatcher, &conn, &key, &url, text, false).await;
        return Ok(StatusCode::OK.into_response());
    }
    // Only runs this connection asked about can be decided from it.
    let item = dispatcher.inbox.by_run(&click.run_id).await?;
    if item
        .as_ref()
        .is_none_or(|i| i.channel != "slack" || i.connection != conn.config.name)
    {
        let text = format!("Run {} is not waiting on this channel.", click.run_id);
        answer_click(&dispatcher, &conn, &key, &url, &text, false).await;
        return Ok(StatusCode::OK.into_response());
    }
    let by = match &click.user_name {
        Some(name) => format!("slack:{}:{} ({name})", click.team_id, click.user_id),
        None => format!("slack:{}:{}", click.team_id, click.user_id),
    };
    let resolution = warden_agents::Resolution {
        approved: click.approve,
        by,
        reason: None,
    };
    // Decided after the acknowledgement: the run goes on, and may take
    // longer than Slack waits.
    tokio::spawn(async move {
        let verdict = if click.approve {
            "Approved"
        } else {
            "Rejected"
        };
        let (text, replace) = match dispatcher
            .decide(&click.run_id, click.pause, resolution)
            .await
        {
            Ok(Decided::Resumed { .. }) => (format!("{verdict} by <@{}>.", click.user_id), true),
            Ok(Decided::Already { status, by }) => (
                match by {
                    Some(by) => format!(
                        "Already decided by {} (the run is {status}).",
                        warden_slack::text::escape(&by)
                    ),
                    None => format!("Nothing to decide: the run is {status}."),
                },
                false,
            ),
            Ok(Decided::Stale) => (
                "This request is out of date: the run has moved on. Decide on its latest request."
                    .to_owned(),
                false,
            ),
            Err(e) => {
                tracing::warn!(run = %click.run_id, error = %e, "slack: decision failed");
                (
                    "The decision could not be applied; see the server log.".to_owned(),
                    false,
                )
            }
        };
        answer_click(&dispatcher, &conn, &key, &url, &text, replace).await;
    });
    Ok(StatusCode::OK.into_response())
}

pub async fn commands(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let channels = channels(&state)?;
    let conn = verify(&state, &channels, &headers, &body)?;
    let agents: Vec<String> = state
        .agents
        .catalog
        .list()
        .await?
        .into_iter()
        .map(|(a, _)| a.name)
        .collect();
    let names: Vec<&str> = agents.iter().map(String::as_str).collect();
    let posted = commands::parse(&body, &names)
        .map_err(|e| ApiError::bad_request(format!("not a Slack command: {e}")))?;
    let cmd = match posted {
        commands::Posted::SslCheck => return Ok(StatusCode::OK.into_response()),
        commands::Posted::Command(c) => c,
    };
    let ephemeral = |text: String| Json(json!({"response_type": "ephemeral", "text": text}));
    if !conn.config.allowed_teams.contains(&cmd.team_id) {
        return Ok(
            ephemeral("This workspace is not allowed to use Warden.".into()).into_response(),
        );
    }
    let channels_allowed = &conn.config.allowed_channels;
    if !channels_allowed.is_empty() && !channels_allowed.contains(&cmd.channel_id) {
        return Ok(ephemeral("Warden does not answer in this channel.".into()).into_response());
    }
    let (agent, message) = match cmd.request {
        commands::Request::Help => {
            return Ok(ephemeral(commands::help(&names)).into_response());
        }
        commands::Request::Status { run_id } => {
            let text = status_text(&state, &conn, &cmd.team_id, &cmd.user_id, &run_id).await?;
            return Ok(ephemeral(text).into_response());
        }
        commands::Request::Ask { agent, message } if !message.trim().is_empty() => {
            (agent.unwrap_or_else(|| conn.config.agent.clone()), message)
        }
        commands::Request::Ask { .. } => {
            return Ok(ephemeral(commands::help(&names)).into_response());
        }
    };
    let event_key = format!("command:{}", digest(&headers, &body));
    let msg = Message {
        thread_key: format!("command:{}:{event_key}", cmd.channel_id),
        external_user: format!("{}:{}", cmd.team_id, cmd.user_id),
        display_name: None,
        agent: agent.clone(),
        text: message,
        reply_to: json!({"response_url": cmd.response_url}),
    };
    let item = NewItem {
        channel: "slack",
        connection: conn.config.name.clone(),
        event_key,
        message_key: None,
        ignored: None,
        payload: serde_json::to_string(&msg)?,
    };
    if let Accepted::New(_) = channels.dispatcher.inbox.accept(item).await? {
        channels.dispatcher.wake();
    }
    Ok(ephemeral(format!(
        "Working on it (agent `{}`)…",
        warden_slack::text::escape(&agent)
    ))
    .into_response())
}

/// `/warden status RUN`: only the person who started the run, or an
/// approver, sees it.
async fn status_text(
    state: &AppState,
    conn: &SlackConnection,
    team: &str,
    user: &str,
    run_id: &str,
) -> Result<String, ApiError> {
    let me = format!("slack:{team}:{user}");
    let run = state.agents.runner.runs.get(run_id).await?;
    Ok(match run {
        Some((run, _))
            if run.subject.as_deref() == Some(me.as_str()) || conn.is_approver(team, user) =>
        {
            format!(
                "Run `{}` (agent `{}`) is *{}*{}.",
                run.id,
                warden_slack::text::escape(&run.agent),
                run.status,
                run.error
                    .map(|e| format!(": {}", warden_slack::text::escape(&e)))
                    .unwrap_or_default()
            )
        }
        _ => format!("No run `{run_id}` that you can see."),
    })
}

/// A stable name for one signed request (its signature covers the
/// timestamp and body): Slack does not retry commands or clicks, so a
/// replay within the signature window is dropped as a duplicate.
fn digest(headers: &HeaderMap, body: &[u8]) -> String {
    let mut h = sha2::Sha256::new();
    if let Some(ts) = headers.get(signature::TIMESTAMP_HEADER) {
        h.update(ts.as_bytes());
    }
    h.update(b":");
    h.update(body);
    hex::encode(h.finalize())
}
