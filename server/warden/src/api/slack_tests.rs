//! The Slack routes in-process: what is refused (and that nothing is
//! stored), what is acknowledged, what lands in the inbox and how often.
//! Nothing is processed here (the dispatcher is not started); answering,
//! approvals and delivery run against a fake Slack Web API in the
//! integration suite (`tests/suite/slack.rs`) and in `warden-channels`.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::http::{Request, StatusCode};
use serde_json::{Value, json};
use tower::ServiceExt as _;

use super::router;
use super::tests::{MAX_BODY, state};
use crate::channels::Channels;
use crate::config::ChannelsConfig;
use warden_channels::InboxStatus;
use warden_slack::config::SlackConfig;
use warden_slack::signature::sign;

const SECRET: &str = "test-signing-secret";
const TEAM: &str = "T0001";

struct SlackApp {
    router: axum::Router,
    channels: Arc<Channels>,
    metrics: Arc<crate::metrics::Metrics>,
    _dir: tempfile::TempDir,
}

async fn slack_app() -> SlackApp {
    let dir = tempfile::tempdir().unwrap();
    let (mut state, _) = state(dir.path()).await;
    let config = ChannelsConfig {
        slack: vec![SlackConfig {
            name: "main".into(),
            agent: "document-assistant".into(),
            signing_secret_env: "SECRET".into(),
            bot_token_env: "TOKEN".into(),
            allowed_teams: vec![TEAM.into()],
            allowed_channels: Vec::new(),
            approvers: vec!["UBOSS".into()],
            approval_channel: None,
            bot_user_id: Some("UBOT".into()),
            // Never reached: nothing is delivered in these tests.
            api_base_url: "http://127.0.0.1:9/api".into(),
            response_url_prefix: "http://127.0.0.1:9/".into(),
            timeout_secs: 10,
        }],
        ..ChannelsConfig::default()
    };
    let env = |v: &str| match v {
        "SECRET" => Some(SECRET.to_owned()),
        "TOKEN" => Some("xoxb-test".to_owned()),
        _ => None,
    };
    let channels = Channels::build(&config, state.db.clone(), state.agents.clone(), env)
        .unwrap()
        .unwrap();
    state.channels = Some(channels.clone());
    SlackApp {
        metrics: state.metrics.clone(),
        router: router(state, MAX_BODY),
        channels,
        _dir: dir,
    }
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// A request as Slack sends it, signed with `SECRET` at `ts`.
fn signed(path: &str, body: &[u8], ts: i64, content_type: &str) -> Request<Body> {
    Request::post(path)
        .header("content-type", content_type)
        .header("x-slack-request-timestamp", ts.to_string())
        .header("x-slack-signature", sign(SECRET.as_bytes(), ts, body))
        .body(Body::from(body.to_vec()))
        .unwrap()
}

fn event(path_body: &Value) -> Vec<u8> {
    path_body.to_string().into_bytes()
}

fn mention(event_id: &str, kind: &str, extra: Value) -> Value {
    let mut e = json!({
        "type": kind, "user": "UANN", "channel": "C1", "channel_type": "channel",
        "text": "<@UBOT> summarise this", "ts": "1700000000.000100", "team": TEAM,
    });
    if let (Some(e), Some(x)) = (e.as_object_mut(), extra.as_object()) {
        for (k, v) in x {
            e.insert(k.clone(), v.clone());
        }
    }
    json!({"type": "event_callback", "team_id": TEAM, "event_id": event_id, "event": e})
}

impl SlackApp {
    async fn send(&self, request: Request<Body>) -> (StatusCode, Bytes) {
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, body)
    }

    async fn count(&self, status: InboxStatus) -> u64 {
        self.channels
            .dispatcher
            .inbox
            .count("slack", status)
            .await
            .unwrap()
    }

    async fn stored(&self) -> u64 {
        let mut n = 0;
        for s in [
            InboxStatus::Received,
            InboxStatus::Ignored,
            InboxStatus::Processing,
            InboxStatus::Done,
            InboxStatus::Failed,
        ] {
            n += self.count(s).await;
        }
        n
    }
}

#[tokio::test]
async fn url_verification_echoes_the_challenge_and_ssl_check_answers_200() {
    let app = slack_app().await;
    let body = event(
        &json!({"type": "url_verification", "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"}),
    );
    let (status, answer) = app
        .send(signed(
            "/channels/slack/events",
            &body,
            now(),
            "application/json",
        ))
        .await;
    assert_eq!(status, StatusCode::OK);
    let answer: Value = serde_json::from_slice(&answer).unwrap();
    assert_eq!(
        answer["challenge"],
        "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"
    );
    let (status, _) = app
        .send(signed(
            "/channels/slack/commands",
            b"ssl_check=1&token=x",
            now(),
            "application/x-www-form-urlencoded",
        ))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(app.stored().await, 0);
}

#[tokio::test]
async fn forged_stale_and_malformed_requests_are_refused_and_nothing_is_stored() {
    let app = slack_app().await;
    let body = event(&mention("Ev1", "app_mention", json!({})));
    let ts = now();
    let good_sig = sign(SECRET.as_bytes(), ts, &body);
    let with = |headers: &[(&str, String)], body: &[u8]| {
        let mut r =
            Request::post("/channels/slack/events").header("content-type", "application/json");
        for (k, v) in headers {
            r = r.header(*k, v.as_str());
        }
        r.body(Body::from(body.to_vec())).unwrap()
    };
    let ts_h = ("x-slack-request-timestamp", ts.to_string());
    let sig_h = ("x-slack-signature", good_sig.clone());
    let mut changed = body.clone();
    let at = changed.len() / 2;
    changed[at] ^= 1;
    let cases: Vec<(&str, Request<Body>, &str)> = vec![
        (
            "no headers",
            with(&[], &body),
            "missing x-slack-request-timestamp",
        ),
        (
            "no signature",
            with(std::slice::from_ref(&ts_h), &body),
            "missing x-slack-signature",
        ),
        (
            "two timestamps",
            with(&[ts_h.clone(), ts_h.clone(), sig_h.clone()], &body),
            "more than once",
        ),
        (
            "a timestamp that is not a number",
            with(
                &[("x-slack-request-timestamp", "12e4".into()), sig_h.clone()],
                &body,
            ),
            "not a number",
        ),
        (
            "a signature that is not hex",
            with(
                &[
                    ts_h.clone(),
                    ("x-slack-signature", format!("v0={}", "zz".repeat(32))),
                ],
                &body,
            ),
            "not v0=",
        ),
        (
            "six minutes old",
            signed(
                "/channels/slack/events",
                &body,
                ts - 360,
                "application/json",
            ),
            "away from now",
        ),
        (
            "six minutes ahead",
            signed(
                "/channels/slack/events",
                &body,
                ts + 360,
                "application/json",
            ),
            "away from now",
        ),
        (
            "one changed byte",
            with(&[ts_h.clone(), sig_h.clone()], &changed),
            "does not match",
        ),
        (
            "another app's secret",
            with(
                &[
                    ts_h.clone(),
                    ("x-slack-signature", sign(b"other-secret", ts, &body)),
                ],
                &body,
            ),
            "does not match",
        ),
    ];
    for (case, request, expected) in cases {
        let (status, answer) = app.send(request).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{case}");
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.contains(expected), "{case}: {answer}");
    }
    // Signed but not what Slack sends.
    for (path, body, ct) in [
        (
            "/channels/slack/events",
            &b"{\"type\": "[..],
            "application/json",
        ),
        ("/channels/slack/events", &b"[1, 2]"[..], "application/json"),
        (
            "/channels/slack/interactions",
            &b"payload=%7Bnot-json"[..],
            "application/x-www-form-urlencoded",
        ),
        (
            "/channels/slack/interactions",
            &b"nothing=here"[..],
            "application/x-www-form-urlencoded",
        ),
        (
            "/channels/slack/commands",
            &b"text=hi&team_id=T0001"[..],
            "application/x-www-form-urlencoded",
        ),
    ] {
        let (status, answer) = app.send(signed(path, body, now(), ct)).await;
        assert_eq!(
            status,
            StatusCode::BAD_REQUEST,
            "{path} {}: {}",
            String::from_utf8_lossy(body),
            String::from_utf8_lossy(&answer)
        );
    }
    // Bigger than the body limit: refused before it is read in full.
    let huge = vec![b' '; MAX_BODY + 1];
    let (status, _) = app
        .send(signed(
            "/channels/slack/events",
            &huge,
            now(),
            "application/json",
        ))
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(app.stored().await, 0);
    // And the server still answers a good one.
    let (status, _) = app
        .send(signed(
            "/channels/slack/events",
            &body,
            now(),
            "application/json",
        ))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(app.count(InboxStatus::Received).await, 1);
    let drops = app.metrics.channel_drops("slack", "main");
    assert!(drops.signature > 0, "refusals are counted: {drops:?}");
    assert_eq!(drops.duplicates, 0);
}

#[tokio::test]
async fn a_mention_is_stored_once_whatever_slack_retries_or_doubles() {
    let app = slack_app().await;
    let first = event(&mention("Ev1", "app_mention", json!({})));
    for retry in [None, Some("1"), Some("2")] {
        let mut request = signed("/channels/slack/events", &first, now(), "application/json");
        if let Some(n) = retry {
            request
                .headers_mut()
                .insert("x-slack-retry-num", n.parse().unwrap());
        }
        let (status, _) = app.send(request).await;
        assert_eq!(status, StatusCode::OK);
    }
    // The same message as a direct `message` event (another event id).
    let twin = event(&mention("Ev2", "message", json!({"channel_type": "im"})));
    let (status, _) = app
        .send(signed(
            "/channels/slack/events",
            &twin,
            now(),
            "application/json",
        ))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(app.count(InboxStatus::Received).await, 1);
    assert_eq!(app.stored().await, 1);
    // Two retries and the twin, counted for the console's overview.
    assert_eq!(app.metrics.channel_drops("slack", "main").duplicates, 3);
}

#[tokio::test]
async fn bots_our_own_messages_edits_and_other_workspaces_are_recorded_not_answered() {
    let app = slack_app().await;
    let cases = [
        json!({"bot_id": "B1"}),
        json!({"user": "UBOT"}),
        json!({"subtype": "bot_message"}),
        json!({"subtype": "message_changed"}),
        json!({"subtype": "message_deleted"}),
        json!({"subtype": "thread_broadcast"}),
        json!({"edited": {"user": "UANN", "ts": "1700000001.000000"}}),
        json!({"team": "T0BAD"}),
        json!({"user": "USLACKBOT"}),
    ];
    for (i, extra) in cases.iter().enumerate() {
        let body = event(&mention(&format!("Ev{i}"), "app_mention", extra.clone()));
        let (status, _) = app
            .send(signed(
                "/channels/slack/events",
                &body,
                now(),
                "application/json",
            ))
            .await;
        assert_eq!(status, StatusCode::OK, "{extra}");
    }
    assert_eq!(app.count(InboxStatus::Ignored).await, cases.len() as u64);
    assert_eq!(app.count(InboxStatus::Received).await, 0);
    // An ignored event does not use up the message: the real mention of
    // the same ts still gets in.
    let body = event(&mention("EvReal", "app_mention", json!({})));
    app.send(signed(
        "/channels/slack/events",
        &body,
        now(),
        "application/json",
    ))
    .await;
    assert_eq!(app.count(InboxStatus::Received).await, 1);
}

#[tokio::test]
async fn the_slash_command_answers_at_once_and_queues_the_question() {
    let app = slack_app().await;
    let form = |text: &str| {
        format!(
            "team_id={TEAM}&channel_id=C1&user_id=UANN&command=%2Fwarden&response_url=http%3A%2F%2F127.0.0.1%3A9%2Fhook&text={text}"
        )
        .into_bytes()
    };
    let ct = "application/x-www-form-urlencoded";
    let answer = |b: Bytes| serde_json::from_slice::<Value>(&b).unwrap();

    let (status, body) = app
        .send(signed("/channels/slack/commands", &form("help"), now(), ct))
        .await;
    assert_eq!(status, StatusCode::OK);
    let help = answer(body);
    assert_eq!(help["response_type"], "ephemeral");
    assert!(
        help["text"]
            .as_str()
            .unwrap()
            .contains("document-assistant"),
        "{help}"
    );

    let (_, body) = app
        .send(signed(
            "/channels/slack/commands",
            &form("status+run_nope"),
            now(),
            ct,
        ))
        .await;
    assert_eq!(answer(body)["text"], "No run `run_nope` that you can see.");

    let ask = form("summarise+our+policy");
    let (_, body) = app
        .send(signed("/channels/slack/commands", &ask, now(), ct))
        .await;
    assert!(
        answer(body)["text"]
            .as_str()
            .unwrap()
            .starts_with("Working on it")
    );
    assert_eq!(app.count(InboxStatus::Received).await, 1);
    let item = app
        .channels
        .dispatcher
        .inbox
        .in_status(InboxStatus::Received, 10)
        .await
        .unwrap()
        .remove(0);
    let msg: warden_channels::Message = serde_json::from_str(&item.payload).unwrap();
    assert_eq!(msg.text, "summarise our policy");
    assert_eq!(msg.external_user, "T0001:UANN");
    assert_eq!(msg.agent, "document-assistant");

    // Another workspace is told so, and nothing is queued.
    let foreign = String::from_utf8(ask).unwrap().replace(TEAM, "T0BAD");
    let (_, body) = app
        .send(signed(
            "/channels/slack/commands",
            foreign.as_bytes(),
            now(),
            ct,
        ))
        .await;
    assert!(
        answer(body)["text"]
            .as_str()
            .unwrap()
            .contains("not allowed")
    );
    assert_eq!(app.stored().await, 1);
}

#[tokio::test]
async fn without_a_slack_connection_the_routes_do_not_exist() {
    let dir = tempfile::tempdir().unwrap();
    let (state, _) = state(dir.path()).await;
    let app = router(state, MAX_BODY);
    let body = event(&mention("Ev1", "app_mention", json!({})));
    let response = app
        .oneshot(signed(
            "/channels/slack/events",
            &body,
            now(),
            "application/json",
        ))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
}
