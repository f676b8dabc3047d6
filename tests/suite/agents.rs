//! Agents end to end: the real SmolLM2 planning over the real document and
//! chatbot plugins; approvals across a restart, with the scripted upstream
//! playing the model; the agent API's checks.

use reqwest::Method;
use serde_json::{Value, json};
use warden_tests::upstream::Upstream;
use warden_tests::{
    Options, Server, api, call_tool, copy_plugin, guests_dist, plugins_dist, warden_run,
};

use super::governance_chat::policy_dir_with;

pub(crate) fn plugin_config() -> String {
    format!(
        r#"
        [plugins]
        directories = ["{dist}"]
        [plugins.grants."warden.document"]
        llm = true
        kv_buckets = ["documents"]
        [plugins.grants."warden.chatbot"]
        llm = true
        kv_buckets = ["faq", "tickets", "preferences"]
        "#,
        dist = plugins_dist().display()
    )
}

async fn run(server: &Server, key: &str, agent: &str, message: &str) -> Value {
    let (status, body) = api(
        server,
        Method::POST,
        &format!("/agents/{agent}/runs"),
        key,
        Some(json!({"message": message})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body
}

fn tool_calls(run: &Value) -> Vec<String> {
    run["steps"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|s| s["kind"] == "tool_call" && s["detail"].get("output").is_some())
        .filter_map(|s| s["detail"]["tool"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_real_model_creates_a_document_then_answers_about_it() {
    let server = Server::start_with(Options {
        config: plugin_config(),
        ..Options::default()
    })
    .unwrap();
    let key = server.key().to_owned();

    let created = run(
        &server,
        &key,
        "document-assistant",
        "Save a note titled 'Q3 plan' saying 'Ship the audit log by Friday.'",
    )
    .await;
    assert_eq!(created["status"], "completed", "{created}");
    let used = tool_calls(&created);
    assert_eq!(
        used.iter().filter(|t| *t == "create_document").count(),
        1,
        "{created}"
    );
    let (_, doc) = call_tool(
        &server,
        "warden.document",
        "get_document",
        json!({"id": "doc-1"}),
    )
    .await;
    assert!(
        doc["output"]["content"]
            .as_str()
            .unwrap_or_default()
            .contains("audit log"),
        "{doc}"
    );

    let answered = run(
        &server,
        &key,
        "document-assistant",
        "What do my notes say about the audit log?",
    )
    .await;
    assert_eq!(answered["status"], "completed", "{answered}");
    let used = tool_calls(&answered);
    assert!(
        used.iter()
            .any(|t| t == "search_documents" || t == "get_document"),
        "{answered}"
    );
    let answer = answered["answer"]
        .as_str()
        .unwrap_or_default()
        .to_lowercase();
    assert!(answer.contains("audit log"), "{answered}");

    // Every step is stored and readable; model steps carry token counts.
    let id = answered["id"].as_str().unwrap();
    let (status, stored) = api(&server, Method::GET, &format!("/runs/{id}"), &key, None).await;
    assert_eq!(status, 200);
    let steps = stored["steps"].as_array().unwrap();
    assert_eq!(steps.len(), answered["steps"].as_array().unwrap().len());
    assert!(stored["usage"]["completion_tokens"].as_i64().unwrap() > 0);
    let (_, audit) = api(
        &server,
        Method::GET,
        &format!("/audit?run_id={id}&limit=1000"),
        &key,
        None,
    )
    .await;
    let stages: Vec<&str> = audit["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["stage"].as_str())
        .collect();
    for stage in ["input", "llm_output", "tool_call", "tool_result", "output"] {
        assert!(stages.contains(&stage), "{stage} missing from {stages:?}");
    }

    // The support bot looks the FAQ up first.
    let (s, _) = call_tool(
        &server,
        "warden.chatbot",
        "add_faq",
        json!({"question": "How do I reset my password?", "answer": "Use the Forgot password link on the sign-in page."}),
    )
    .await;
    assert_eq!(s, 200);
    let support = run(&server, &key, "support-bot", "How do I reset my password?").await;
    assert_eq!(
        tool_calls(&support).first().map(String::as_str),
        Some("answer_faq"),
        "{support}"
    );

    // Any OpenAI client can talk to an agent.
    let (status, completion) = {
        let resp = reqwest::Client::new()
            .post(format!("{}/chat/completions", server.v1()))
            .bearer_auth(&key)
            .json(&json!({"model": "agent:document-assistant", "messages": [{"role": "user", "content": "List my documents."}]}))
            .send()
            .await
            .unwrap();
        (resp.status().as_u16(), resp.json::<Value>().await.unwrap())
    };
    assert_eq!(status, 200, "{completion}");
    assert!(completion["id"].as_str().unwrap().starts_with("run_"));
    assert!(
        !completion["choices"][0]["message"]["content"]
            .as_str()
            .unwrap_or_default()
            .is_empty()
    );

    // Streamed, the answer arrives in pieces as the model writes it, and
    // is exactly the run's (checked) answer.
    let body = reqwest::Client::new()
        .post(format!("{}/chat/completions", server.v1()))
        .bearer_auth(&key)
        .json(&json!({"model": "agent:document-assistant", "stream": true,
            "messages": [{"role": "user", "content": "What do my notes say about the audit log?"}]}))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let mut pieces = Vec::new();
    let mut run_id = String::new();
    for data in body.lines().filter_map(|l| l.strip_prefix("data: ")) {
        if data == "[DONE]" {
            continue;
        }
        let v: Value = serde_json::from_str(data).unwrap();
        run_id = v["id"].as_str().unwrap_or_default().to_owned();
        if let Some(c) = v
            .pointer("/choices/0/delta/content")
            .and_then(Value::as_str)
            .filter(|c| !c.is_empty())
        {
            pieces.push(c.to_owned());
        }
    }
    assert!(body.ends_with("data: [DONE]\n\n"), "{body}");
    let (_, streamed_run) = api(&server, Method::GET, &format!("/runs/{run_id}"), &key, None).await;
    assert_eq!(
        Some(pieces.concat().as_str()),
        streamed_run["answer"].as_str(),
        "{body}"
    );

    // Streamed runs report each step as it happens, then the run.
    let body = reqwest::Client::new()
        .post(format!(
            "{}/api/agents/document-assistant/runs",
            server.base
        ))
        .bearer_auth(&key)
        .json(&json!({"message": "List my documents.", "stream": true}))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let events: Vec<&str> = body
        .lines()
        .filter_map(|l| l.strip_prefix("event: "))
        .collect();
    assert!(
        events.iter().filter(|e| **e == "step").count() >= 2,
        "{body}"
    );
    assert_eq!(events.last(), Some(&"run"), "{body}");

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

pub(crate) const TICKET_APPROVAL: &str = r#"
policies:
  - id: tickets
    version: 1
    scope: { tools: [create_ticket] }
    rules:
      - id: human-check
        stages: [tool_call]
        action: require_approval
        message: "Tickets need a human."
tests:
  - name: tickets wait
    stage: tool_call
    input: "{}"
    scope: { tool: create_ticket }
    expect: { decision: require_approval }
"#;

/// The planner bounds every part of a tool's arguments, integers included:
/// over a tool taking a list of objects with `u32`/`u64` fields and no
/// `maximum` (the `orders` test guest), the 135M model used to write digits
/// until each step ran out of tokens. Now every step parses, and a tool set
/// that cannot fit a step is refused when the agent is defined.
#[tokio::test(flavor = "multi_thread")]
async fn the_real_model_fills_arrays_of_objects_with_integers_without_a_malformed_step() {
    let dir = tempfile::tempdir().unwrap();
    copy_plugin(&guests_dist().join("orders"), dir.path(), |m| m).unwrap();
    let server = Server::start_with(Options {
        // A prefix cache of two sequences, so that the run also goes
        // through a renewal of the engine (see llm-embedded's engine.rs).
        config: format!(
            "[[models]]\nbackend = \"embedded\"\nid = \"smollm2-135m-instruct\"\n\
             prefix_cache_sequences = 2\n\
             [plugins]\ndirectories = [\"{}\"]\n",
            dir.path().display()
        ),
        ..Options::default()
    })
    .unwrap();
    let key = server.key().to_owned();
    let agent = |max_tokens: u32| {
        json!({
            "name": "order-desk",
            "system_prompt": "You take orders. Call place_order with the customer number and the \
                              line items, then tell the customer the total from the result.",
            "tools": ["test.orders/place_order"],
            "max_tokens": max_tokens,
            "examples": [{
                "user": "Customer 7 wants 2 of A-1 at 150 cents.",
                "assistant": r#"{"tool": "place_order", "arguments": {"customer_id": 7, "items": [{"sku": "A-1", "quantity": 2, "unit_price_cents": 150}]}}"#
            }]
        })
    };
    // Too small a step for the smallest complete call: refused up front.
    let (status, body) = api(&server, Method::POST, "/agents", &key, Some(agent(48))).await;
    assert_eq!(status, 400, "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("place_order") && message.contains("max_tokens"),
        "{body}"
    );
    let (status, body) = api(&server, Method::POST, "/agents", &key, Some(agent(1024))).await;
    assert_eq!(status, 201, "{body}");

    let ran = run(
        &server,
        &key,
        "order-desk",
        "Customer 42 orders 3 of B-7 at 1200 cents and 1 of C-2 at 99 cents.",
    )
    .await;
    let steps = ran["steps"].as_array().unwrap();
    let malformed = steps.iter().filter(|s| s["kind"] == "malformed").count();
    assert_eq!(malformed, 0, "{ran}");
    assert_eq!(ran["status"], "completed", "{ran}");
    let call = steps
        .iter()
        .find(|s| s["kind"] == "tool_call" && s["detail"]["tool"] == "place_order")
        .unwrap_or_else(|| panic!("no place_order call: {ran}"));
    assert!(call["detail"].get("output").is_some(), "{call}");
    let items = call["detail"]["arguments"]["items"].as_array().unwrap();
    assert!(!items.is_empty(), "{call}");
    for item in items {
        assert!(
            item["quantity"].is_u64() && item["unit_price_cents"].is_u64(),
            "{item}"
        );
    }

    // The engine's prefix cache is visible, and was renewed (bounded)
    // without failing the run. The renewal starts once the last sequence
    // is counted, so it may still be under way: poll.
    let value = |metrics: &str, name: &str| -> Option<f64> {
        let prefix = format!("{name}{{model=\"smollm2-135m-instruct\"}} ");
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(prefix.as_str()))
            .and_then(|v| v.parse().ok())
    };
    let mut metrics = String::new();
    for _ in 0..100 {
        metrics = reqwest::get(format!("{}/metrics", server.base))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if value(&metrics, "warden_prefix_cache_renewals_total") >= Some(1.0) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        value(&metrics, "warden_prefix_cache_renewals_total") >= Some(1.0),
        "{metrics}"
    );
    assert!(
        value(&metrics, "warden_prefix_cache_lookups_total") >= Some(2.0),
        "{metrics}"
    );
    assert!(
        matches!(value(&metrics, "warden_prefix_cache_sequences"), Some(v) if v < 2.0),
        "{metrics}"
    );
}

pub(crate) const STEP: &str = r#"{"tool": "create_ticket", "arguments": {"subject": "Printer", "description": "It is broken"}}"#;

#[tokio::test]
async fn an_approval_pause_survives_a_restart_and_approvers_are_audited() {
    let policies = policy_dir_with(&[("tickets.yaml", TICKET_APPROVAL)]);
    let up = Upstream::start().await;
    let data = tempfile::tempdir().unwrap();
    let options = Options {
        config: format!("{}{}", up.model_config(), plugin_config()),
        env: vec![(
            "WARDEN_POLICIES_DIR".into(),
            policies.path().display().to_string(),
        )],
        data_dir: Some(data.path().to_owned()),
        ..Options::default()
    };
    let server = Server::start_with(options.clone()).unwrap();
    let key = server.key().to_owned();
    let agent = json!({
        "name": "ticketer",
        "model": "scripted",
        "system_prompt": "You open tickets.",
        "tools": ["warden.chatbot/create_ticket"],
    });
    let (status, body) = api(&server, Method::POST, "/agents", &key, Some(agent)).await;
    assert_eq!(status, 201, "{body}");

    let paused = run(&server, &key, "ticketer", STEP).await;
    assert_eq!(paused["status"], "awaiting_approval", "{paused}");
    assert!(
        paused["error"]
            .as_str()
            .unwrap()
            .contains("Tickets need a human.")
    );
    let id = paused["id"].as_str().unwrap().to_owned();
    let rejected_id = run(&server, &key, "ticketer", STEP).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let cancelled_id = run(&server, &key, "ticketer", STEP).await["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // Restart: the paused runs live in the database.
    server.terminate().unwrap();
    let server = Server::start_with(options).unwrap();
    let (_, user) = api(
        &server,
        Method::POST,
        "/keys",
        &key,
        Some(json!({"name": "u", "role": "user"})),
    )
    .await;
    let user_key = user["key"].as_str().unwrap().to_owned();
    let (status, _) = api(
        &server,
        Method::POST,
        &format!("/runs/{id}/approve"),
        &user_key,
        None,
    )
    .await;
    assert_eq!(status, 403);
    let (status, done) = api(
        &server,
        Method::POST,
        &format!("/runs/{id}/approve"),
        &key,
        Some(json!({"reason": "printer tickets are fine"})),
    )
    .await;
    assert_eq!(status, 200, "{done}");
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(tool_calls(&done), ["create_ticket"]);
    let (status, again) = api(
        &server,
        Method::POST,
        &format!("/runs/{id}/approve"),
        &key,
        None,
    )
    .await;
    assert_eq!(status, 409, "{again}");

    let (_, rejected) = api(
        &server,
        Method::POST,
        &format!("/runs/{rejected_id}/reject"),
        &key,
        Some(json!({"reason": "no"})),
    )
    .await;
    assert_eq!(rejected["status"], "completed", "{rejected}");
    assert!(
        tool_calls(&rejected).is_empty(),
        "a rejected call never runs"
    );
    assert!(
        rejected["answer"]
            .as_str()
            .unwrap()
            .contains("rejected by admin: no"),
        "{rejected}"
    );

    let (status, _) = api(
        &server,
        Method::POST,
        &format!("/runs/{cancelled_id}/cancel"),
        &key,
        None,
    )
    .await;
    assert_eq!(status, 200);
    let (_, c) = api(
        &server,
        Method::GET,
        &format!("/runs/{cancelled_id}"),
        &key,
        None,
    )
    .await;
    assert_eq!(c["status"], "cancelled");
    let (status, _) = api(
        &server,
        Method::POST,
        &format!("/runs/{cancelled_id}/cancel"),
        &key,
        None,
    )
    .await;
    assert_eq!(status, 409);

    // Who decided is in the audit chain; the chain holds.
    let (_, audit) = api(&server, Method::GET, "/audit?channel=approval", &key, None).await;
    let verdicts: Vec<(&str, &str)> = audit["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["subject"].as_str().unwrap_or(""),
                r["decision"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(verdicts, [("admin", "block"), ("admin", "allow")]);
    let (_, verify) = api(&server, Method::GET, "/audit/verify", &key, None).await;
    assert_eq!(verify["ok"], true, "{verify}");

    // Users see their own runs only; feedback and memory are theirs.
    let (status, _) = api(
        &server,
        Method::GET,
        &format!("/runs/{id}"),
        &user_key,
        None,
    )
    .await;
    assert_eq!(status, 404);
    let (status, _) = api(
        &server,
        Method::POST,
        &format!("/runs/{id}/feedback"),
        &key,
        Some(json!({"rating": -1, "correction": "Ticket opened for the printer."})),
    )
    .await;
    assert_eq!(status, 201);
    let (status, _) = api(
        &server,
        Method::POST,
        &format!("/runs/{cancelled_id}/feedback"),
        &key,
        Some(json!({"rating": 1})),
    )
    .await;
    assert_eq!(status, 409, "no answer to rate");
    let (status, _) = api(
        &server,
        Method::POST,
        &format!("/runs/{id}/feedback"),
        &key,
        Some(json!({"rating": 5})),
    )
    .await;
    assert_eq!(status, 400);
    let export = reqwest::Client::new()
        .get(format!("{}/api/feedback/export", server.base))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let pair: Value = serde_json::from_str(export.lines().next().unwrap()).unwrap();
    assert_eq!(pair["chosen"], "Ticket opened for the printer.");
    assert_eq!(pair["prompt"], STEP);

    let (status, _) = api(
        &server,
        Method::PUT,
        "/memory/language",
        &user_key,
        Some(json!({"value": "French"})),
    )
    .await;
    assert_eq!(status, 200);
    let (_, mine) = api(&server, Method::GET, "/memory", &user_key, None).await;
    assert_eq!(mine["data"][0]["value"], "French");
    let (status, _) = api(
        &server,
        Method::GET,
        "/memory?subject=admin",
        &user_key,
        None,
    )
    .await;
    assert_eq!(status, 403);
    let (_, theirs) = api(&server, Method::GET, "/memory?subject=u", &key, None).await;
    assert_eq!(theirs["data"][0]["key"], "language");
    let (status, _) = api(&server, Method::DELETE, "/memory/language", &user_key, None).await;
    assert_eq!(status, 204);
    let (status, _) = api(
        &server,
        Method::PUT,
        "/memory/k",
        &user_key,
        Some(json!({"value": ""})),
    )
    .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn agent_definitions_are_checked() {
    let up = Upstream::start().await;
    let server = Server::start_with(Options {
        config: up.model_config(),
        ..Options::default()
    })
    .unwrap();
    let key = server.key().to_owned();
    let (_, list) = api(&server, Method::GET, "/agents", &key, None).await;
    let names: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a["name"].as_str())
        .collect();
    assert_eq!(
        names,
        ["coding-helper", "document-assistant", "support-bot"]
    );

    let good = json!({"name": "helper", "system_prompt": "Be brief.", "tools": []});
    for (body, status, fragment) in [
        (
            json!({"name": "Bad Name", "system_prompt": "x"}),
            400,
            "names use",
        ),
        (
            json!({"name": "x", "system_prompt": "x", "colour": 1}),
            400,
            "unknown field",
        ),
        (
            json!({"name": "x", "system_prompt": "x", "tools": ["noslash"]}),
            400,
            "plugin/tool",
        ),
        (
            json!({"name": "x", "system_prompt": "x", "model": "nope"}),
            400,
            "not configured",
        ),
        (
            json!({"name": "x", "system_prompt": "x", "max_steps": 0}),
            400,
            "max_steps",
        ),
        (
            json!({"name": "support-bot", "system_prompt": "x"}),
            409,
            "warden.toml",
        ),
        (good.clone(), 201, "helper"),
    ] {
        let (s, b) = api(&server, Method::POST, "/agents", &key, Some(body.clone())).await;
        assert_eq!(s, status, "{body} -> {b}");
        assert!(b.to_string().contains(fragment), "{body} -> {b}");
    }
    let (_, user) = api(
        &server,
        Method::POST,
        "/keys",
        &key,
        Some(json!({"name": "u", "role": "user"})),
    )
    .await;
    let (s, _) = api(
        &server,
        Method::POST,
        "/agents",
        user["key"].as_str().unwrap(),
        Some(good),
    )
    .await;
    assert_eq!(s, 403);
    let (s, b) = api(
        &server,
        Method::POST,
        "/agents/helper/runs",
        &key,
        Some(json!({"message": ""})),
    )
    .await;
    assert_eq!(s, 400, "{b}");
    let (s, _) = api(
        &server,
        Method::POST,
        "/agents/nobody/runs",
        &key,
        Some(json!({"message": "hi"})),
    )
    .await;
    assert_eq!(s, 404);
    // An agent without tools still answers through the planner.
    let answered = run(&server, &key, "helper", r#"{"final": "Hi there."}"#).await;
    assert_eq!(answered["answer"], "Hi there.", "{answered}");
    let (s, _) = api(&server, Method::DELETE, "/agents/helper", &key, None).await;
    assert_eq!(s, 204);
    let (s, _) = api(&server, Method::DELETE, "/agents/support-bot", &key, None).await;
    assert_eq!(s, 409);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_agent_cli_prints_steps_and_the_answer() {
    let up = Upstream::start().await;
    let data = tempfile::tempdir().unwrap();
    let config = data.path().join("warden.toml");
    std::fs::write(
        &config,
        format!(
            "{}\n[[agents]]\nname = \"echo\"\nsystem_prompt = \"Answer the user.\"\n",
            up.model_config()
        ),
    )
    .unwrap();
    let run_cli = |args: Vec<&'static str>| {
        let config = config.clone();
        let dir = data.path().to_owned();
        tokio::task::spawn_blocking(move || {
            std::process::Command::new(warden_tests::warden_bin())
                .arg("--config")
                .arg(config)
                .args(args)
                .env("WARDEN_DATA_DIR", dir)
                .env("WARDEN_LOG", "error")
                .env_remove("DATABASE_URL")
                .env_remove("WARDEN_DATABASE_URL")
                .output()
                .unwrap()
        })
    };
    // The scripted model echoes the message, so the message is the step.
    let out = run_cli(vec![
        "agent",
        "run",
        "echo",
        r#"{"final": "Hello from the CLI."}"#,
    ])
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "Hello from the CLI.\n"
    );
    assert!(
        stderr.contains("] model") && stderr.contains("] answer: Hello from the CLI."),
        "{stderr}"
    );
    let out = run_cli(vec!["agent", "run", "nobody", "hi"]).await.unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no agent named \"nobody\""));
    let out = run_cli(vec!["agent", "list"]).await.unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("echo"),
        "{out:?}"
    );
}
