//! Policies with the real model (LLM judge included), hot reload, the
//! policy API and the `warden policy` CLI.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use warden_tests::{MODEL, Options, Server, api, greedy, warden_run};

use super::governance_chat::{policy_dir_with, scripted_server};

const JUDGE_POLICY: &str = r#"
policies:
  - id: judged
    version: 1
    rules:
      - id: about-weather
        stages: [output]
        match:
          all:
            - keywords: { words: [weather] }
            - llm_judge: { question: "Is this text about the weather?", on_error: open }
        action: flag
tests:
  - name: the judge decides
    stage: output
    input: the weather is nice
    judge: { judged/about-weather: true }
    expect: { decision: flag }
"#;

#[tokio::test]
async fn the_real_model_is_governed_and_judges_with_constrained_output() {
    let policies = policy_dir_with(&[("judge.yaml", JUDGE_POLICY)]);
    let server = Server::start_with(Options {
        env: vec![(
            "WARDEN_POLICIES_DIR".into(),
            policies.path().display().to_string(),
        )],
        ..Options::default()
    })
    .unwrap();
    let key = server.key().to_owned();

    // A card number in the prompt is masked before SmolLM2 sees it.
    let request = greedy(MODEL, "My card is 4111 1111 1111 1111. Say thanks.", 8)
        .build()
        .unwrap();
    let answer = server.openai().chat().create(request).await.unwrap();
    assert!(answer.choices[0].message.content.is_some());
    let (_, page) = api(&server, Method::GET, "/audit?stage=input", &key, None).await;
    let row = &page["data"][0];
    assert_eq!(row["decision"], "redact", "{page}");
    assert_eq!(
        row["detail"]["matches"][0]["spans"][0]["type"],
        "credit_card"
    );
    assert_eq!(row["content_sha256"].as_str().map(str::len), Some(64));
    let (_, page) = api(&server, Method::GET, "/audit?stage=output", &key, None).await;
    assert_eq!(page["data"].as_array().map(Vec::len), Some(1), "{page}");

    // The judge is the real model; its constrained answer always parses.
    let body = json!({"stage": "output", "text": "The weather today is sunny and warm, with a light breeze."});
    let (status, first) = api(
        &server,
        Method::POST,
        "/policies/evaluate",
        &key,
        Some(body.clone()),
    )
    .await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["judge"][0]["rule"], "judged/about-weather", "{first}");
    assert_eq!(first["judge"][0]["source"], "answered", "{first}");
    let (_, second) = api(
        &server,
        Method::POST,
        "/policies/evaluate",
        &key,
        Some(body),
    )
    .await;
    assert_eq!(second["judge"][0]["source"], "cached");
    assert_eq!(second["judge"][0]["answer"], first["judge"][0]["answer"]);
    assert!(second["audit_seq"].as_i64() > first["audit_seq"].as_i64());

    // Evaluation input is checked like any other.
    for (body, status) in [
        (json!({"stage": "everywhere", "text": "x"}), 400),
        (json!({"stage": "output"}), 400),
        (json!({"stage": "output", "text": "x", "colour": 1}), 400),
    ] {
        let (s, b) = api(
            &server,
            Method::POST,
            "/policies/evaluate",
            &key,
            Some(body),
        )
        .await;
        assert_eq!(s, status, "{b}");
    }

    let (_, status) = api(&server, Method::GET, "/policies", &key, None).await;
    let ids: Vec<&str> = status["policies"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["id"].as_str())
        .collect();
    assert!(
        ids.contains(&"secrets") && ids.contains(&"judged"),
        "{ids:?}"
    );
    assert!(status["last_reload_error"].is_null());
    let (_, verify) = api(&server, Method::GET, "/audit/verify", &key, None).await;
    assert_eq!(verify["ok"], true, "{verify}");
    let data_dir = server.data_dir.clone();
    server.terminate().unwrap();
    let out = warden_run(&data_dir, None, &["audit", "verify"], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

async fn wait_for(server: &Server, key: &str, what: &str, ok: impl Fn(&Value) -> bool) -> Value {
    for _ in 0..100 {
        let (_, s) = api(server, Method::GET, "/policies", key, None).await;
        if ok(&s) {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test]
async fn edits_reload_atomically_and_bad_edits_keep_the_last_good_bundle() {
    let policies = policy_dir_with(&[]);
    let (_up, server) = scripted_server(policies.path()).await;
    let key = server.key().to_owned();
    let (_, initial) = api(&server, Method::GET, "/policies", &key, None).await;
    let h0 = initial["bundle"].as_str().unwrap().to_owned();

    // A valid new file is picked up.
    std::fs::write(
        policies.path().join("extra.yaml"),
        super::governance_chat::TOPIC_POLICY,
    )
    .unwrap();
    let s = wait_for(&server, &key, "activation", |s| s["bundle"] != h0.as_str()).await;
    let h1 = s["bundle"].as_str().unwrap().to_owned();
    let eval = json!({"stage": "input", "text": "the forbidden-topic"});
    let (_, d) = api(
        &server,
        Method::POST,
        "/policies/evaluate",
        &key,
        Some(eval.clone()),
    )
    .await;
    assert_eq!(d["decision"], "block");
    assert_eq!(d["bundle"], h1.as_str());

    // Broken YAML: reported with file and line, the last good bundle stays.
    std::fs::write(
        policies.path().join("broken.yaml"),
        "policies:\n  - id: x\n    version: one\n",
    )
    .unwrap();
    let s = wait_for(&server, &key, "the reload error", |s| {
        !s["last_reload_error"].is_null()
    })
    .await;
    let message = s["last_reload_error"]["message"].as_str().unwrap();
    assert!(message.starts_with("broken.yaml:3:"), "{message}");
    assert_eq!(s["last_reload_error"]["location"]["file"], "broken.yaml");
    assert_eq!(s["last_reload_error"]["location"]["line"], 3);
    assert_eq!(s["bundle"], h1.as_str());
    let (_, d) = api(
        &server,
        Method::POST,
        "/policies/evaluate",
        &key,
        Some(eval.clone()),
    )
    .await;
    assert_eq!(d["decision"], "block");

    // A file whose own tests fail is not activated either.
    std::fs::write(
        policies.path().join("broken.yaml"),
        "policies:\n  - id: x\n    version: 1\n    rules: []\ntests:\n  - name: wrong\n    stage: output\n    input: hi\n    expect: { decision: block }\n",
    )
    .unwrap();
    let s = wait_for(&server, &key, "the test failure", |s| {
        s["last_reload_error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("FAIL broken.yaml: wrong"))
    })
    .await;
    assert_eq!(s["bundle"], h1.as_str());
    let failed = &s["last_reload_error"]["failed_tests"];
    assert_eq!(failed[0]["file"], "broken.yaml", "{s}");
    assert_eq!(failed[0]["name"], "wrong", "{s}");
    assert!(
        s["tests_by_file"].as_array().is_some_and(|f| !f.is_empty()),
        "{s}"
    );
    let (status, body) = api(&server, Method::POST, "/policies/reload", &key, None).await;
    assert_eq!(status, 422, "{body}");

    // Fixing it clears the error.
    std::fs::remove_file(policies.path().join("broken.yaml")).unwrap();
    let s = wait_for(&server, &key, "recovery", |s| {
        s["last_reload_error"].is_null()
    })
    .await;
    assert_eq!(s["bundle"], h1.as_str());
}

#[test]
fn the_policy_cli_tests_evaluates_and_points_at_errors() {
    let data = tempfile::tempdir().unwrap();
    let shipped = concat!(env!("CARGO_MANIFEST_DIR"), "/../policies");
    let out = warden_run(data.path(), None, &["policy", "test", shipped], None);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains(" passed, 0 failed"), "{stdout}");

    let bad = tempfile::tempdir().unwrap();
    std::fs::write(
        bad.path().join("p.yaml"),
        "policies:\n  - id: p\n    version: 1\n    rules:\n      - id: r\n        stages: [output]\n        match: { keywords: { words: [hello] } }\n        action: redact\ntests:\n  - name: greeting is masked\n    stage: output\n    input: hello world\n    expect: { decision: redact, text: \"[GREETING] world\" }\n",
    )
    .unwrap();
    let out = warden_run(
        data.path(),
        None,
        &["policy", "test", &bad.path().display().to_string()],
        None,
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success());
    assert!(
        stdout.contains("FAIL p.yaml: greeting is masked"),
        "{stdout}"
    );
    assert!(stdout.contains("- [GREETING] world"), "{stdout}");
    assert!(stdout.contains("+ [REDACTED:keyword] world"), "{stdout}");

    std::fs::write(bad.path().join("p.yaml"), "policies:\n  - id: p\n    version: 1\n    rules:\n      - id: r\n        stages: [output]\n        match: { regex: { pattern: \"(\" } }\n        action: flag\n").unwrap();
    let out = warden_run(
        data.path(),
        None,
        &["policy", "test", &bad.path().display().to_string()],
        None,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("p.yaml:7:"), "{stderr}");

    let out = warden_run(
        data.path(),
        None,
        &[
            "policy",
            "eval",
            "--stage",
            "output",
            "--policies",
            shipped,
            "-",
        ],
        Some("Card 4111 1111 1111 1111 please"),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let d: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(d["decision"], "redact");
    assert_eq!(d["redacted"], "Card **** **** **** 1111 please");
    let out = warden_run(
        data.path(),
        None,
        &[
            "policy",
            "eval",
            "--stage",
            "nowhere",
            "--policies",
            shipped,
        ],
        Some("x"),
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--stage"));
}
