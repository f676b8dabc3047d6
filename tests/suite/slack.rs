//! Slack end to end: a real `warden` process, signed requests as Slack
//! sends them, and a fake Slack Web API on loopback (Slack itself cannot be
//! reached from here) that records what Warden posts. The real model and
//! the real document plugin answer a mention in its thread; the scripted
//! upstream plays the model for the approval round trip and for a server
//! killed mid-run (on PostgreSQL).

use reqwest::Method;
use serde_json::json;
use warden_slack::signature::sign;
use warden_tests::fake_slack::{BOT_TOKEN, BOT_USER, Call, FakeSlack, Trouble};
use warden_tests::upstream::Upstream;
use warden_tests::{Options, PgDatabase, Server, api};

use super::agents::{STEP, TICKET_APPROVAL, plugin_config};
use super::governance_chat::policy_dir_with;

const SECRET: &str = "integration-signing-secret";
const TEAM: &str = "T0001";

fn slack_config(fake: &FakeSlack, agent: &str) -> String {
    format!(
        r#"
        [[channels.slack]]
        name = "main"
        agent = "{agent}"
        signing_secret_env = "TEST_SLACK_SIGNING_SECRET"
        bot_token_env = "TEST_SLACK_BOT_TOKEN"
        allowed_teams = ["{TEAM}"]
        approvers = ["UBOSS"]
        api_base_url = "{api}"
        response_url_prefix = "{base}/hooks/"
        timeout_secs = 2
        [channels.delivery]
        backoff_ms = 200
        "#,
        api = fake.api_base_url(),
        base = fake.base,
    )
}

fn slack_env() -> Vec<(String, String)> {
    vec![
        ("TEST_SLACK_SIGNING_SECRET".into(), SECRET.into()),
        ("TEST_SLACK_BOT_TOKEN".into(), BOT_TOKEN.into()),
    ]
}

/// POSTs `body` to a Slack route, signed now; returns the status and body.
async fn post_signed(
    server: &Server,
    route: &str,
    body: &[u8],
    content_type: &str,
    retry: Option<&str>,
) -> (u16, String) {
    let ts = chrono_now();
    let mut req = reqwest::Client::new()
        .post(format!("{}/channels/slack/{route}", server.base))
        .header("content-type", content_type)
        .header("x-slack-request-timestamp", ts.to_string())
        .header("x-slack-signature", sign(SECRET.as_bytes(), ts, body))
        .body(body.to_vec());
    if let Some(n) = retry {
        req = req.header("x-slack-retry-num", n);
    }
    let resp = req.send().await.expect("slack request");
    (
        resp.status().as_u16(),
        resp.text().await.unwrap_or_default(),
    )
}

fn chrono_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

/// An `app_mention` of the bot in channel C1.
fn mention(event_id: &str, text: &str, ts: &str, thread_ts: Option<&str>) -> Vec<u8> {
    let mut event = json!({
        "type": "app_mention", "user": "UANN", "channel": "C1", "team": TEAM,
        "text": format!("<@{BOT_USER}> {text}"), "ts": ts,
    });
    if let Some(t) = thread_ts {
        event["thread_ts"] = json!(t);
    }
    json!({"type": "event_callback", "team_id": TEAM, "event_id": event_id, "event": event})
        .to_string()
        .into_bytes()
}

/// The outcome messages (they carry the run footer).
fn outcomes(calls: &[Call]) -> Vec<Call> {
    calls
        .iter()
        .filter(|c| c.text().contains("· run `run_"))
        .cloned()
        .collect()
}

fn placeholders(calls: &[Call]) -> Vec<Call> {
    calls
        .iter()
        .filter(|c| c.method == "chat.postMessage" && c.text().contains("working…"))
        .cloned()
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_mention_is_answered_in_its_thread_by_the_real_document_agent_and_the_thread_remembers() {
    let fake = FakeSlack::start().await;
    let server = Server::start_with(Options {
        config: format!(
            "{}{}",
            plugin_config(),
            slack_config(&fake, "document-assistant")
        ),
        env: slack_env(),
        ..Options::default()
    })
    .unwrap();
    let key = server.key().to_owned();
    // Slack rate-limits the first post: it is retried after Retry-After.
    fake.trouble(Trouble::RateLimited {
        retry_after_secs: 1,
    });

    let question = mention(
        "Ev1",
        "Save a note titled 'Q3 plan' saying 'Ship the audit log by Friday.'",
        "1700000000.000100",
        None,
    );
    let (status, _) = post_signed(&server, "events", &question, "application/json", None).await;
    assert_eq!(status, 200);
    let calls = fake
        .until(300, "the first answer", |c| outcomes(c).len() == 1)
        .await;
    let placeholder = placeholders(&calls);
    assert_eq!(
        placeholder.len(),
        1,
        "one placeholder after the 429: {calls:#?}"
    );
    assert_eq!(placeholder[0].body["thread_ts"], "1700000000.000100");
    let rate_limited = fake.calls().iter().filter(|c| !c.ok).count();
    assert_eq!(rate_limited, 1);
    // The answer replaces the placeholder in place.
    let answer = &outcomes(&calls)[0];
    assert_eq!(answer.method, "chat.update", "{answer:?}");
    assert_eq!(answer.body["channel"], "C1");
    assert!(
        answer.body["ts"]
            .as_str()
            .unwrap()
            .starts_with("1800000000.")
    );
    for c in fake.calls() {
        assert_eq!(c.token.as_deref(), Some(BOT_TOKEN), "{c:?}");
        assert!(
            c.body.get("link_names").is_none() && c.body.get("parse").is_none(),
            "{c:?}"
        );
    }
    // The document tool really ran in the sandbox.
    let (_, doc) = warden_tests::call_tool(
        &server,
        "warden.document",
        "get_document",
        json!({"id": "doc-1"}),
    )
    .await;
    assert!(doc.to_string().contains("Q3 plan"), "{doc}");

    // A follow-up in the thread is the same conversation.
    let follow_up = mention(
        "Ev2",
        "What was the title of the note you saved?",
        "1700000000.000200",
        Some("1700000000.000100"),
    );
    let (status, _) = post_signed(&server, "events", &follow_up, "application/json", None).await;
    assert_eq!(status, 200);
    fake.until(300, "the second answer", |c| outcomes(c).len() == 2)
        .await;
    let (_, runs) = api(
        &server,
        Method::GET,
        "/runs?agent=document-assistant",
        &key,
        None,
    )
    .await;
    let runs = runs["data"].as_array().cloned().unwrap_or_default();
    assert_eq!(runs.len(), 2, "{runs:?}");
    assert!(
        runs.iter()
            .all(|r| r["channel"] == "slack" && r["subject"] == "slack:T0001:UANN"),
        "{runs:?}"
    );
    // Each answered question is a question and an answer in the thread's
    // one conversation: the history the next run in the thread is given
    // (that it reaches the model is checked with a scripted model in
    // warden-channels).
    let completed = runs.iter().filter(|r| r["status"] == "completed").count();
    assert!(completed >= 1, "{runs:?}");
    let turns = server
        .sqlite_query("SELECT conversation_id, role, content FROM channel_turns ORDER BY id")
        .await;
    assert_eq!(turns.len(), 2 * completed);
    let conversations: std::collections::HashSet<String> = turns
        .iter()
        .map(|r| r.try_get::<String>("", "conversation_id").unwrap())
        .collect();
    assert_eq!(conversations.len(), 1);
    let roles: Vec<String> = turns
        .iter()
        .map(|r| r.try_get::<String>("", "role").unwrap())
        .collect();
    assert!(
        roles.chunks(2).all(|p| p == ["user", "assistant"]),
        "{roles:?}"
    );

    // Our own answer echoed back as an event, and Slack retrying the first
    // event: recorded, not answered.
    let own = json!({"type": "event_callback", "team_id": TEAM, "event_id": "Ev3", "event": {
        "type": "message", "subtype": "bot_message", "bot_id": "B1", "user": BOT_USER,
        "channel": "C1", "text": "Saved.", "ts": "1800000000.000009", "thread_ts": "1700000000.000100"}});
    let (status, _) = post_signed(
        &server,
        "events",
        own.to_string().as_bytes(),
        "application/json",
        None,
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) =
        post_signed(&server, "events", &question, "application/json", Some("1")).await;
    assert_eq!(status, 200);
    let inbox = server
        .sqlite_query("SELECT status FROM channel_inbox ORDER BY received_at")
        .await;
    let statuses: Vec<String> = inbox
        .iter()
        .map(|r| r.try_get::<String>("", "status").unwrap())
        .collect();
    assert_eq!(statuses, ["done", "done", "ignored"]);

    // Every step of a Slack run was checked in the `slack` scope.
    let (_, audit) = api(&server, Method::GET, "/audit?channel=slack", &key, None).await;
    assert!(
        !audit["data"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .is_empty(),
        "{audit}"
    );
    assert_eq!(
        outcomes(&fake.messages()).len(),
        2,
        "no loop, no second answer"
    );
}

/// The Approve or Reject button's value in an approval message.
fn button(calls: &[Call], action: &str) -> Option<String> {
    calls.iter().find_map(|c| {
        c.body["blocks"].as_array()?.iter().find_map(|b| {
            b["elements"].as_array()?.iter().find_map(|e| {
                (e["action_id"] == action).then(|| e["value"].as_str().map(str::to_owned))?
            })
        })
    })
}

fn click(fake: &FakeSlack, user: &str, value: &str, hook: &str) -> Vec<u8> {
    let payload = json!({
        "type": "block_actions",
        "team": {"id": TEAM},
        "user": {"id": user, "username": user.to_lowercase()},
        "response_url": fake.response_url(hook),
        "actions": [{"action_id": "warden_approve", "value": value}],
    });
    format!(
        "payload={}",
        form_urlencoded::byte_serialize(payload.to_string().as_bytes()).collect::<String>()
    )
    .into_bytes()
}

/// The texts posted to the `response_url` named `id`.
fn hooks(calls: &[Call], id: &str) -> Vec<String> {
    calls
        .iter()
        .filter(|c| c.method == format!("hook:{id}"))
        .map(|c| c.body["text"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_approval_is_asked_in_slack_refused_to_others_and_decided_once_by_an_approver() {
    approval_round_trip(None).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_approval_round_trip_on_postgres() {
    let pg = PgDatabase::create().await.unwrap();
    approval_round_trip(Some(pg.url.clone())).await;
}

async fn approval_round_trip(database_url: Option<String>) {
    let policies = policy_dir_with(&[("tickets.yaml", TICKET_APPROVAL)]);
    let up = Upstream::start().await;
    let fake = FakeSlack::start().await;
    let mut env = slack_env();
    env.push((
        "WARDEN_POLICIES_DIR".into(),
        policies.path().display().to_string(),
    ));
    let server = Server::start_with(Options {
        config: format!(
            "{}{}{}",
            up.model_config(),
            plugin_config(),
            slack_config(&fake, "ticketer")
        ),
        env,
        database_url,
        ..Options::default()
    })
    .unwrap();
    let key = server.key().to_owned();
    let agent = json!({
        "name": "ticketer", "model": "scripted", "system_prompt": "You open tickets.",
        "tools": ["warden.chatbot/create_ticket"],
    });
    let (status, body) = api(&server, Method::POST, "/agents", &key, Some(agent)).await;
    assert_eq!(status, 201, "{body}");
    // Slack refuses the placeholder for good: the rest still arrives, as
    // new messages in the thread, and the refusal is on record.
    fake.trouble(Trouble::NotOk("not_in_channel"));

    let (status, _) = post_signed(
        &server,
        "events",
        &mention("Ev1", STEP, "1700000000.000100", None),
        "application/json",
        None,
    )
    .await;
    assert_eq!(status, 200);
    let calls = fake
        .until(60, "the approval request", |c| {
            button(c, "warden_approve").is_some()
        })
        .await;
    let approve = button(&calls, "warden_approve").unwrap();
    // approve:<run>:<pause>
    let run_id = approve
        .strip_prefix("approve:")
        .and_then(|r| r.rsplit_once(':'))
        .map(|(run, _)| run.to_owned())
        .unwrap();
    let request = calls
        .iter()
        .find(|c| button(std::slice::from_ref(c), "warden_approve").is_some())
        .unwrap();
    assert_eq!(request.body["thread_ts"], "1700000000.000100");
    assert!(request.text().contains("create"), "{request:?}");

    // A colleague who is not an approver is told so; nothing is decided.
    let (status, _) = post_signed(
        &server,
        "interactions",
        &click(&fake, "UANN", &approve, "h1"),
        "application/x-www-form-urlencoded",
        None,
    )
    .await;
    assert_eq!(status, 200);
    fake.until(30, "the refusal", |c| {
        hooks(c, "h1")
            .iter()
            .any(|t| t.contains("Only this channel's approvers"))
    })
    .await;
    let (_, run) = api(&server, Method::GET, &format!("/runs/{run_id}"), &key, None).await;
    assert_eq!(run["status"], "awaiting_approval", "{run}");

    // The approver decides; the run goes on and answers in the thread.
    let (status, _) = post_signed(
        &server,
        "interactions",
        &click(&fake, "UBOSS", &approve, "h2"),
        "application/x-www-form-urlencoded",
        None,
    )
    .await;
    assert_eq!(status, 200);
    let calls = fake
        .until(60, "the answer", |c| !outcomes(c).is_empty())
        .await;
    let answer = &outcomes(&calls)[0];
    assert_eq!(
        answer.method, "chat.postMessage",
        "no placeholder to update"
    );
    assert_eq!(answer.body["thread_ts"], "1700000000.000100");
    assert!(answer.text().contains("Done:"), "{answer:?}");
    fake.until(30, "the decision shown", |c| {
        hooks(c, "h2").iter().any(|t| t == "Approved by <@UBOSS>.")
    })
    .await;

    // A second click is told who decided.
    post_signed(
        &server,
        "interactions",
        &click(&fake, "UBOSS", &approve, "h3"),
        "application/x-www-form-urlencoded",
        None,
    )
    .await;
    fake.until(30, "already decided", |c| {
        hooks(c, "h3")
            .iter()
            .any(|t| t.contains("Already decided by slack:T0001:UBOSS (uboss)"))
    })
    .await;
    let (_, run) = api(&server, Method::GET, &format!("/runs/{run_id}"), &key, None).await;
    assert_eq!(run["status"], "completed", "{run}");
    let (_, audit) = api(&server, Method::GET, "/audit?channel=approval", &key, None).await;
    assert!(audit.to_string().contains("slack:T0001:UBOSS"), "{audit}");
    // The refused placeholder is visible with Slack's answer.
    let (_, health) = api(&server, Method::GET, "/channels", &key, None).await;
    assert_eq!(health["slack"][0]["outbox"]["failed"], 1, "{health}");
    assert!(health.to_string().contains("not_in_channel"), "{health}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_killed_mid_run_answers_exactly_once_after_the_restart_on_postgres() {
    let pg = PgDatabase::create().await.unwrap();
    killed_mid_run(Some(pg.url.clone())).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_killed_mid_run_answers_exactly_once_after_the_restart_on_sqlite() {
    killed_mid_run(None).await;
}

async fn killed_mid_run(database_url: Option<String>) {
    let up = Upstream::start().await;
    let fake = FakeSlack::start().await;
    let data = tempfile::tempdir().unwrap();
    let options = Options {
        config: format!("{}{}", up.model_config(), slack_config(&fake, "waiter")),
        env: slack_env(),
        database_url,
        data_dir: Some(data.path().to_owned()),
    };
    let server = Server::start_with(options.clone()).unwrap();
    let key = server.key().to_owned();
    let agent = json!({"name": "waiter", "model": "scripted", "system_prompt": "You answer."});
    let (status, body) = api(&server, Method::POST, "/agents", &key, Some(agent)).await;
    assert_eq!(status, 201, "{body}");

    let question = mention("Ev1", "hang-once", "1700000000.000100", None);
    let (status, _) = post_signed(&server, "events", &question, "application/json", None).await;
    assert_eq!(status, 200);
    // Acknowledged and taken up (the placeholder is out), the model stuck:
    // the process dies.
    fake.until(30, "the placeholder", |c| placeholders(c).len() == 1)
        .await;
    // ... and recorded as sent (else it is sent again after the restart:
    // delivery is at least once for a message in flight at a crash).
    for _ in 0..100 {
        let (_, health) = api(&server, Method::GET, "/channels", &key, None).await;
        if health["slack"][0]["outbox"]["sent"] == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    server.kill();

    let server = Server::start_with(options).unwrap();
    // Slack, having seen no answer, retries the event.
    let (status, _) =
        post_signed(&server, "events", &question, "application/json", Some("1")).await;
    assert_eq!(status, 200);
    let calls = fake
        .until(60, "the answer after the restart", |c| {
            outcomes(c).len() == 1
        })
        .await;
    assert!(
        outcomes(&calls)[0]
            .text()
            .contains("Answered after the restart.")
    );
    assert_eq!(
        outcomes(&calls)[0].method,
        "chat.update",
        "the same placeholder"
    );
    assert_eq!(placeholders(&calls).len(), 1);
    // Nothing else is on its way.
    let (_, health) = api(&server, Method::GET, "/channels", &key, None).await;
    assert_eq!(health["slack"][0]["inbox"]["done"], 1, "{health}");
    assert_eq!(health["slack"][0]["outbox"]["pending"], 0, "{health}");
    assert_eq!(outcomes(&fake.messages()).len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hung_slack_costs_a_retry_and_the_slash_command_answers_in_the_channel() {
    let up = Upstream::start().await;
    let fake = FakeSlack::start().await;
    let server = Server::start_with(Options {
        config: format!("{}{}", up.model_config(), slack_config(&fake, "waiter")),
        env: slack_env(),
        ..Options::default()
    })
    .unwrap();
    let key = server.key().to_owned();
    let agent = json!({"name": "waiter", "model": "scripted", "system_prompt": "You answer."});
    let (status, body) = api(&server, Method::POST, "/agents", &key, Some(agent)).await;
    assert_eq!(status, 201, "{body}");

    // The first Web API call never gets an answer: it times out (2 s) and
    // is tried again; the answer still arrives, once.
    fake.trouble(Trouble::Hang);
    let question = mention("Ev1", r#"{"final": "pong"}"#, "1700000000.000100", None);
    let (status, _) = post_signed(&server, "events", &question, "application/json", None).await;
    assert_eq!(status, 200);
    let calls = fake
        .until(60, "the answer", |c| outcomes(c).len() == 1)
        .await;
    assert!(outcomes(&calls)[0].text().contains("pong"));
    assert_eq!(placeholders(&calls).len(), 1);
    assert_eq!(
        fake.calls().iter().filter(|c| !c.ok).count(),
        1,
        "one hung call"
    );

    // `/warden waiter …`: "working on it" to the asker at once, the answer
    // in the channel through the response_url when done.
    let form = form_urlencoded::Serializer::new(String::new())
        .append_pair("team_id", TEAM)
        .append_pair("channel_id", "C1")
        .append_pair("user_id", "UANN")
        .append_pair("command", "/warden")
        .append_pair("response_url", &fake.response_url("cmd1"))
        .append_pair("text", r#"waiter {"final": "from the command"}"#)
        .finish();
    let (status, body) = post_signed(
        &server,
        "commands",
        form.as_bytes(),
        "application/x-www-form-urlencoded",
        None,
    )
    .await;
    assert_eq!(status, 200);
    let ack: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(ack["response_type"], "ephemeral");
    assert!(
        ack["text"].as_str().unwrap().starts_with("Working on it"),
        "{ack}"
    );
    let calls = fake
        .until(60, "the command's answer", |c| {
            c.iter().any(|c| c.method == "hook:cmd1")
        })
        .await;
    let answer = calls.iter().find(|c| c.method == "hook:cmd1").unwrap();
    assert_eq!(answer.body["response_type"], "in_channel");
    assert!(answer.text().contains("from the command"), "{answer:?}");
}
