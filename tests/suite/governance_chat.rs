//! Governance on `/v1/chat/completions`: input checked before the model,
//! output before the client, streamed output through the hold-back buffer,
//! proposed tool calls at `tool_call`; every decision audited.
//!
//! The model here is the scripted upstream (`warden_tests::upstream`),
//! because the behaviour under test is what Warden does with a leaked key
//! or an exfiltrating image, which a real small model will not produce on
//! demand. `governance_policies` runs the same path with the real model.

use std::path::Path;

use serde_json::{Value, json};
use warden_tests::upstream::{LEAKED_JWT, LEAKED_KEY, Upstream};
use warden_tests::{Options, Server, api};

/// The shipped policies plus one that blocks a topic on input and output.
pub(crate) fn policy_dir_with(extra: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for entry in
        std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies")).unwrap()
    {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dir.path().join(entry.file_name())).unwrap();
    }
    for (name, text) in extra {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    dir
}

pub(crate) const TOPIC_POLICY: &str = r#"
policies:
  - id: topics
    version: 1
    rules:
      - id: forbidden-topic
        stages: [input, output]
        match: { keywords: { words: [forbidden-topic] } }
        action: block
        message: "We do not discuss that here."
tests:
  - name: the topic is blocked in answers
    stage: output
    input: all about the forbidden-topic
    expect: { decision: block }
"#;

pub(crate) async fn scripted_server(policies: &Path) -> (Upstream, Server) {
    let up = Upstream::start().await;
    let server = Server::start_with(Options {
        config: up.model_config(),
        env: vec![("WARDEN_POLICIES_DIR".into(), policies.display().to_string())],
        ..Options::default()
    })
    .unwrap();
    (up, server)
}

async fn chat(server: &Server, content: &str, stream: bool) -> (u16, String) {
    let resp = reqwest::Client::new()
        .post(format!("{}/chat/completions", server.v1()))
        .bearer_auth(server.key())
        .json(&json!({
            "model": "scripted",
            "messages": [{"role": "user", "content": content}],
            "stream": stream,
        }))
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

/// The content deltas of an SSE body, and the error event if one came.
fn sse_content(body: &str) -> (Vec<String>, Option<Value>, bool) {
    let mut pieces = Vec::new();
    let mut error = None;
    let mut done = false;
    for line in body.lines() {
        let Some(data) = line.strip_prefix("data: ") else {
            continue;
        };
        if data == "[DONE]" {
            done = true;
            continue;
        }
        let v: Value = serde_json::from_str(data).unwrap();
        if v.get("error").is_some() {
            error = Some(v);
        } else if let Some(c) = v
            .pointer("/choices/0/delta/content")
            .and_then(Value::as_str)
        {
            pieces.push(c.to_owned());
        }
    }
    (pieces, error, done)
}

fn assert_no_piece_of(secret: &str, text: &str) {
    let bytes = secret.as_bytes();
    for w in bytes.windows(4) {
        let piece = std::str::from_utf8(w).unwrap();
        assert!(
            !text.contains(piece),
            "{piece:?} of the secret was delivered: {text}"
        );
    }
}

#[tokio::test]
async fn input_and_output_are_governed_and_audited() {
    let policies = policy_dir_with(&[("topics.yaml", TOPIC_POLICY)]);
    let (up, server) = scripted_server(policies.path()).await;

    // A key pasted by the user never reaches the model; the echo shows
    // what the model was sent.
    let (status, body) = chat(&server, &format!("check my key {LEAKED_KEY} please"), false).await;
    assert_eq!(status, 200, "{body}");
    let sent = up.received().last().unwrap()["messages"][0]["content"].clone();
    assert_eq!(sent, "check my key [REDACTED:aws_access_key] please");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        v["choices"][0]["message"]["content"],
        "check my key [REDACTED:aws_access_key] please"
    );

    // Tool calls replayed in the history are input too; JSON escapes do not
    // hide the key (`\u004f` is `O`).
    let resp = reqwest::Client::new()
        .post(format!("{}/chat/completions", server.v1()))
        .bearer_auth(server.key())
        .json(&json!({
            "model": "scripted",
            "messages": [
                {"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function",
                    "function": {"name": "lookup", "arguments": "{\"k\": \"AKIAIOSF\\u004fDNN7EXAMPLE\"}"}}]},
                {"role": "tool", "tool_call_id": "c1", "content": "done"},
                {"role": "user", "content": "thanks"}
            ],
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status().as_u16(),
        200,
        "{}",
        resp.text().await.unwrap()
    );
    let sent =
        up.received().last().unwrap()["messages"][0]["tool_calls"][0]["function"]["arguments"]
            .clone();
    assert_eq!(sent, "{\"k\":\"[REDACTED:aws_access_key]\"}");

    // Secrets and exfiltrating images the model produces are redacted.
    let (_, body) = chat(&server, "leak-key", false).await;
    assert!(
        !body.contains(LEAKED_KEY) && !body.contains("eyJhbGci"),
        "{body}"
    );
    assert!(body.contains("[REDACTED:aws_access_key]") && body.contains("[REDACTED:jwt]"));
    let (_, body) = chat(&server, "leak-image", false).await;
    assert!(!body.contains("collector.evil.test"), "{body}");
    assert!(body.contains("[image removed]"), "{body}");

    // A blocked input never reaches the model and comes back as an
    // OpenAI-style error naming the policy.
    let before = up.received().len();
    let (status, body) = chat(&server, "tell me about the forbidden-topic", false).await;
    assert_eq!(status, 400, "{body}");
    let err: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(err["error"]["code"], "content_policy_violation");
    let message = err["error"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("We do not discuss that here."),
        "{message}"
    );
    assert!(message.contains("topics/forbidden-topic"), "{message}");
    assert_eq!(up.received().len(), before, "the model was called");

    // A blocked output.
    let (status, body) = chat(&server, "say-blocked", false).await;
    assert_eq!(status, 400, "{body}");
    assert!(!body.contains("forbidden-topic now"), "{body}");

    // A proposed tool call carrying a credential is stopped.
    let (status, body) = chat(&server, "call-tool", false).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("secrets/never-in-tool-arguments"), "{body}");
    assert!(!body.contains("ghp_"), "{body}");

    // Every decision is in the audit log, without the content.
    let key = server.key();
    let (status, page) = api(
        &server,
        reqwest::Method::GET,
        "/audit?limit=1000",
        key,
        None,
    )
    .await;
    assert_eq!(status, 200, "{page}");
    let text = page.to_string();
    assert!(!text.contains(LEAKED_KEY) && !text.contains("ghp_aBc") && !text.contains(LEAKED_JWT));
    let rows = page["data"].as_array().unwrap();
    assert!(rows.len() >= 10, "{} rows", rows.len());
    let (_, blocked) = api(
        &server,
        reqwest::Method::GET,
        "/audit?decision=block&stage=input",
        key,
        None,
    )
    .await;
    let blocked = blocked["data"].as_array().unwrap();
    assert_eq!(blocked.len(), 1);
    assert_eq!(blocked[0]["subject"], "admin");
    assert_eq!(blocked[0]["channel"], "api");
    assert_eq!(
        blocked[0]["detail"]["matches"][0]["rule"],
        "forbidden-topic"
    );
    let span = &blocked[0]["detail"]["matches"][0]["spans"][0];
    assert_eq!(
        (span["start"].as_u64(), span["type"].as_str()),
        (Some(18), Some("keyword"))
    );
    let (_, by_policy) = api(
        &server,
        reqwest::Method::GET,
        "/audit?policy=secrets",
        key,
        None,
    )
    .await;
    assert!(
        by_policy["data"].as_array().unwrap().len() >= 3,
        "{by_policy}"
    );
    let (_, tool) = api(
        &server,
        reqwest::Method::GET,
        "/audit?stage=tool_call",
        key,
        None,
    )
    .await;
    assert_eq!(tool["data"][0]["tool"], "send_email");

    // Paging walks back by sequence number.
    let (_, first) = api(&server, reqwest::Method::GET, "/audit?limit=2", key, None).await;
    let next = first["next_before"].as_i64().unwrap();
    let (_, second) = api(
        &server,
        reqwest::Method::GET,
        &format!("/audit?limit=2&before={next}"),
        key,
        None,
    )
    .await;
    assert_eq!(second["data"][0]["seq"].as_i64(), Some(next - 1));

    // Bad filters are named; users cannot read the audit trail.
    for (q, fragment) in [
        ("decision=maybe", "decision"),
        ("stage=everywhere", "stage"),
        ("since=yesterday", "since"),
        ("limit=0", "limit"),
        ("colour=red", "unknown field"),
        ("policy=a%25b", "policy"),
    ] {
        let (status, body) = api(
            &server,
            reqwest::Method::GET,
            &format!("/audit?{q}"),
            key,
            None,
        )
        .await;
        assert_eq!(status, 400, "{q}: {body}");
        assert!(body.to_string().contains(fragment), "{q}: {body}");
    }
    let (_, user) = api(
        &server,
        reqwest::Method::POST,
        "/keys",
        key,
        Some(json!({"name": "u", "role": "user"})),
    )
    .await;
    let user_key = user["key"].as_str().unwrap();
    for path in ["/audit", "/audit/verify", "/policies"] {
        let (status, _) = api(&server, reqwest::Method::GET, path, user_key, None).await;
        assert_eq!(status, 403, "{path}");
    }
    let (status, report) = api(&server, reqwest::Method::GET, "/audit/verify", key, None).await;
    assert_eq!(status, 200);
    assert_eq!(report["ok"], true, "{report}");
}

#[tokio::test]
async fn streamed_secrets_are_never_delivered_in_pieces() {
    let policies = policy_dir_with(&[("topics.yaml", TOPIC_POLICY)]);
    let (_up, server) = scripted_server(policies.path()).await;

    let (status, body) = chat(&server, "leak-key", true).await;
    assert_eq!(status, 200);
    let (pieces, error, done) = sse_content(&body);
    assert!(error.is_none() && done, "{body}");
    assert!(
        pieces.len() > 3,
        "the answer was streamed in pieces: {pieces:?}"
    );
    let text = pieces.concat();
    assert_no_piece_of(LEAKED_KEY, &text);
    assert_no_piece_of(&LEAKED_JWT[40..], &text);
    assert_eq!(
        text,
        "Sure. The key is [REDACTED:aws_access_key] and the token is [REDACTED:jwt] - keep them safe."
    );

    // A block mid-stream ends it with an error event, before the word.
    let (_, body) = chat(&server, "say-blocked", true).await;
    let (pieces, error, done) = sse_content(&body);
    let error = error.expect("an error event");
    assert_eq!(error["error"]["code"], "content_policy_violation");
    assert!(!done);
    assert!(!pieces.concat().contains("forbidden"), "{pieces:?}");

    // Tool calls in a stream are checked before they are sent.
    let (_, body) = chat(&server, "call-tool", true).await;
    let (_, error, _) = sse_content(&body);
    assert!(!body.contains("ghp_"), "{body}");
    assert_eq!(
        error.expect("error event")["error"]["code"],
        "content_policy_violation"
    );
}
