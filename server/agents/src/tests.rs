//! The loop's edge cases with a scripted backend and scripted tools (test
//! doubles), over the real governor (shipped policies), audit log and run
//! store on a temporary SQLite file. The real model and real plugins are
//! exercised by the integration suite (`tests/suite/agents.rs`).

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use super::runner::{RunRequest, Runner};
use super::runs::{RunStatus, StepKind};
use super::spec::{AgentSpec, ToolCalling};
use super::state::Resolution;
use super::testing::ScriptedTools;
use warden_governance::Governor;
use warden_governance::audit::AuditLog;
use warden_governance::store::PolicyStore;
use warden_llm::testing::{Reply, ScriptedBackend};
use warden_llm::{ModelRegistry, Role};
use warden_policy::bundle::Bundle;

fn scripted(script: Vec<Reply>) -> Arc<ScriptedBackend> {
    ScriptedBackend::new("scripted", script)
}

struct World {
    _dir: tempfile::TempDir,
    db: sea_orm::DatabaseConnection,
    governor: Arc<Governor>,
    tools: Arc<ScriptedTools>,
}

async fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("w.db").display());
    let db = warden_db::connect(&url).await.unwrap();
    let (audit, _) = AuditLog::spawn(db.clone());
    let store = Arc::new(PolicyStore::fixed(Bundle::defaults().unwrap()));
    World {
        _dir: dir,
        db,
        governor: Arc::new(Governor::new(store, audit, None)),
        tools: Arc::default(),
    }
}

fn runner(w: &World, backend: Arc<ScriptedBackend>) -> Runner {
    let mut registry = ModelRegistry::default();
    registry.insert(backend);
    Runner::new(
        Arc::new(registry),
        w.tools.clone(),
        w.governor.clone(),
        w.db.clone(),
        "scripted".into(),
    )
}

fn agent(calling: ToolCalling) -> AgentSpec {
    AgentSpec {
        tool_calling: calling,
        tools: vec!["test.tools/*".into()],
        ..AgentSpec::defaults().remove(0)
    }
}

fn request(a: AgentSpec, message: &str) -> RunRequest {
    RunRequest {
        agent: a,
        message: message.into(),
        subject: Some("tester".into()),
        channel: "test".into(),
        id: None,
        history: Vec::new(),
        answer_stream: None,
    }
}

fn kinds(steps: &[super::StepRecord]) -> Vec<&str> {
    steps.iter().map(|s| s.kind.as_str()).collect()
}

#[tokio::test]
async fn malformed_steps_unknown_tools_and_tool_errors_are_reported_to_the_model() {
    let w = world().await;
    let backend = scripted(vec![
        Reply::text("I think I will look it up"),
        Reply::text(r#"{"tool": "nope", "arguments": {}}"#),
        Reply::text(r#"{"tool": "fail", "arguments": {"q": "x"}}"#),
        Reply::text(r#"{"final": "The backend is down."}"#),
    ]);
    let r = runner(&w, backend.clone());
    let report = r
        .run(request(agent(ToolCalling::Planner), "status?"), None)
        .await
        .unwrap();
    assert_eq!(report.status, RunStatus::Completed);
    assert_eq!(report.answer.as_deref(), Some("The backend is down."));
    assert!(
        backend.last_message(1).contains("not a JSON object"),
        "{}",
        backend.last_message(1)
    );
    assert!(
        backend
            .last_message(2)
            .contains("There is no tool \"nope\"")
    );
    assert!(
        backend
            .last_message(3)
            .contains("The tool fail failed: failed: the backend is down")
    );
    assert_eq!(
        kinds(&report.steps),
        [
            "model",
            "malformed",
            "model",
            "tool_call",
            "model",
            "tool_call",
            "model",
            "answer"
        ]
    );
    // Every step is stored, in order.
    let (row, stored) = r.runs.get(&report.id).await.unwrap().unwrap();
    assert_eq!(row.status, "completed");
    assert_eq!(stored.len(), report.steps.len());
    assert_eq!(row.prompt_tokens, 40);
}

#[tokio::test]
async fn the_step_limit_ends_the_run_with_a_reason() {
    let w = world().await;
    let backend = scripted(vec![
        Reply::text(r#"{"tool": "lookup", "arguments": {"q": "a"}}"#),
        Reply::text(r#"{"tool": "lookup", "arguments": {"q": "b"}}"#),
        Reply::text(r#"{"tool": "lookup", "arguments": {"q": "c"}}"#),
    ]);
    let mut a = agent(ToolCalling::Planner);
    a.max_steps = 3;
    let report = runner(&w, backend)
        .run(request(a, "loop"), None)
        .await
        .unwrap();
    assert_eq!(report.status, RunStatus::MaxSteps);
    assert!(report.error.unwrap().contains("after 3 steps"));
}

#[tokio::test]
async fn a_repeated_call_is_not_run_twice_and_the_model_is_asked_to_answer() {
    let w = world().await;
    let backend = scripted(vec![
        Reply::text(r#"{"tool": "lookup", "arguments": {"q": "a"}}"#),
        // The same call, with an explicit empty value: still a repeat.
        Reply::text(r#"{"tool": "lookup", "arguments": {"q": "a", "tags": []}}"#),
        Reply::text(r#"{"final": "found a"}"#),
    ]);
    let report = runner(&w, backend.clone())
        .run(request(agent(ToolCalling::Planner), "find a"), None)
        .await
        .unwrap();
    assert_eq!(report.status, RunStatus::Completed);
    assert_eq!(w.tools.calls().len(), 1);
    // The step after a repeat may only answer: its schema offers no tool.
    let seen = backend.requests();
    let warden_llm::ResponseFormat::JsonSchema { schema, .. } = &seen[2].response_format else {
        panic!("planner steps are constrained");
    };
    assert!(schema.get("anyOf").is_none() && schema["properties"].get("final").is_some());
}

#[tokio::test]
async fn parallel_native_calls_run_concurrently_and_invalid_arguments_are_reported() {
    let w = world().await;
    let backend = scripted(vec![
        Reply::calls([
            ("slow", r#"{"q": "1"}"#),
            ("slow", r#"{"q": "2"}"#),
            ("lookup", "[1]"),
        ]),
        Reply::text("Both done."),
    ]);
    let report = runner(&w, backend.clone())
        .run(request(agent(ToolCalling::Native), "two at once"), None)
        .await
        .unwrap();
    assert_eq!(report.status, RunStatus::Completed);
    assert_eq!(w.tools.max_in_flight(), 2);
    let seen = backend.requests();
    let tool_msgs: Vec<String> = seen[1]
        .messages
        .iter()
        .filter(|m| m.role == warden_llm::Role::Tool)
        .filter_map(|m| m.content.clone())
        .collect();
    assert_eq!(tool_msgs.len(), 3);
    assert!(
        tool_msgs[2].contains("must be a JSON object"),
        "{tool_msgs:?}"
    );
}

#[tokio::test]
async fn policies_redact_tool_results_and_block_tool_calls_before_the_model_or_tool_sees_them() {
    let w = world().await;
    let backend = scripted(vec![
        Reply::text(r#"{"tool": "leak", "arguments": {"q": "config"}}"#),
        Reply::text(r#"{"tool": "lookup", "arguments": {"q": "rm -rf /"}}"#),
        Reply::text(
            r#"{"tool": "lookup", "arguments": {"q": "ghp_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789"}}"#,
        ),
        Reply::text(r#"{"final": "done"}"#),
    ]);
    let report = runner(&w, backend.clone())
        .run(request(agent(ToolCalling::Planner), "get config"), None)
        .await
        .unwrap();
    assert_eq!(report.status, RunStatus::Completed);
    // The key in the tool's output is redacted before the model reads it.
    let after_leak = backend.last_message(1);
    assert!(
        after_leak.contains("[REDACTED:aws_access_key]") && !after_leak.contains("AKIA"),
        "{after_leak}"
    );
    // A destructive call is blocked, and the model is told why.
    let after_block = backend.last_message(2);
    assert!(
        after_block.contains("blocked by policy")
            && after_block.contains("tool-safety/destructive-commands"),
        "{after_block}"
    );
    // A token the model wrote is redacted at llm_output, so the tool never gets it.
    let calls = w.tools.calls();
    assert_eq!(calls.len(), 2, "the blocked call never ran: {calls:?}");
    assert_eq!(calls[1].1, json!({"q": "[REDACTED:github_token]"}));
    let policy_steps: Vec<_> = report
        .steps
        .iter()
        .filter(|s| s.kind == StepKind::Policy)
        .collect();
    assert!(policy_steps.len() >= 3 && policy_steps.iter().all(|s| s.audit_seq.is_some()));
    assert!(warden_governance::audit::verify(&w.db).await.unwrap().ok);
}

#[tokio::test]
async fn input_redactions_reach_the_model() {
    let w = world().await;
    let mut a = agent(ToolCalling::Planner);
    a.tools.clear();
    let backend = scripted(vec![Reply::text(r#"{"final": "ok"}"#)]);
    let report = runner(&w, backend.clone())
        .run(request(a, "key AKIAIOSFODNN7EXAMPLE"), None)
        .await
        .unwrap();
    assert_eq!(report.status, RunStatus::Completed);
    let sent = backend.last_message(0);
    assert!(
        sent.contains("[REDACTED:aws_access_key]") && !sent.contains("AKIA"),
        "{sent}"
    );
}

#[tokio::test]
async fn approval_pauses_survives_a_restart_and_resumes() {
    let w = world().await;
    let backend = scripted(vec![Reply::text(
        r#"{"tool": "send", "arguments": {"q": "hello"}}"#,
    )]);
    let paused = runner(&w, backend)
        .run(request(agent(ToolCalling::Planner), "send hello"), None)
        .await
        .unwrap();
    assert_eq!(paused.status, RunStatus::AwaitingApproval);
    assert!(
        paused
            .error
            .as_deref()
            .unwrap()
            .contains("needs an approver"),
        "{:?}",
        paused.error
    );
    assert!(w.tools.calls().is_empty(), "nothing ran before approval");

    // A new runner over the same database: what a restarted server has.
    let backend = scripted(vec![Reply::text(r#"{"final": "Sent."}"#)]);
    let after = runner(&w, backend.clone());
    let resolution = Resolution {
        approved: true,
        by: "boss".into(),
        reason: Some("fine".into()),
    };
    let done = after
        .resume(
            &paused.id,
            &agent(ToolCalling::Planner),
            resolution.clone(),
            None,
        )
        .await
        .unwrap();
    assert_eq!(done.status, RunStatus::Completed, "{:?}", done.error);
    assert_eq!(done.answer.as_deref(), Some("Sent."));
    assert_eq!(w.tools.calls().len(), 1);
    assert!(backend.last_message(0).contains("Result of send"));
    assert!(
        done.steps
            .iter()
            .any(|s| s.kind == StepKind::Approval && s.detail["by"] == "boss")
    );
    // Resuming twice is refused.
    let again = after
        .resume(&paused.id, &agent(ToolCalling::Planner), resolution, None)
        .await;
    assert!(again.is_err());
    // The approver is in the audit chain.
    let rows = warden_governance::audit::AuditFilter {
        channel: Some("approval".into()),
        ..Default::default()
    }
    .page(&w.db)
    .await
    .unwrap();
    assert_eq!(rows[0].subject.as_deref(), Some("boss"));
    assert!(warden_governance::audit::verify(&w.db).await.unwrap().ok);
}

#[tokio::test]
async fn a_rejected_call_is_reported_and_never_runs() {
    let w = world().await;
    let backend = scripted(vec![Reply::text(
        r#"{"tool": "send", "arguments": {"q": "hello"}}"#,
    )]);
    let paused = runner(&w, backend)
        .run(request(agent(ToolCalling::Planner), "send hello"), None)
        .await
        .unwrap();
    let backend = scripted(vec![Reply::text(r#"{"final": "I could not send it."}"#)]);
    let r = runner(&w, backend.clone());
    let resolution = Resolution {
        approved: false,
        by: "boss".into(),
        reason: Some("not today".into()),
    };
    let done = r
        .resume(&paused.id, &agent(ToolCalling::Planner), resolution, None)
        .await
        .unwrap();
    assert_eq!(done.status, RunStatus::Completed);
    assert!(
        backend
            .last_message(0)
            .contains("rejected by boss: not today")
    );
    assert!(w.tools.calls().is_empty());
}

#[tokio::test]
async fn runs_time_out_and_can_be_cancelled() {
    let w = world().await;
    let mut a = agent(ToolCalling::Planner);
    a.timeout_secs = 1;
    let backend = scripted(vec![Reply::Slow(
        Duration::from_secs(30),
        r#"{"final": "late"}"#.into(),
    )]);
    let report = runner(&w, backend)
        .run(request(a.clone(), "slow"), None)
        .await
        .unwrap();
    assert_eq!(report.status, RunStatus::TimedOut);

    a.timeout_secs = 60;
    let backend = scripted(vec![Reply::Slow(
        Duration::from_secs(30),
        r#"{"final": "late"}"#.into(),
    )]);
    let r = Arc::new(runner(&w, backend));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let task = {
        let r = r.clone();
        tokio::spawn(async move { r.run(request(a, "slow"), Some(tx)).await })
    };
    // Wait until the run exists (its first record is stored when it starts).
    let id = loop {
        let runs = r.runs.list(None, Some("running"), None, 10).await.unwrap();
        if let Some(run) = runs.first() {
            break run.id.clone();
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert!(r.cancel(&id, "tester").await.unwrap());
    let report = task.await.unwrap().unwrap();
    assert_eq!(report.status, RunStatus::Cancelled);
    // Watchers are told how the run ended.
    let last = std::iter::from_fn(|| rx.try_recv().ok()).last().unwrap();
    assert_eq!(
        (last.kind.as_str(), &last.detail["status"]),
        ("error", &json!("cancelled"))
    );
}

/// A planner that saves a "tone: formal" preference, then answers "Noted.".
/// A planner agent with memory, whose user "tester" is known to prefer French.
async fn remembering_agent(r: &Runner) -> AgentSpec {
    r.memory
        .put("tester", "language", "French", "api")
        .await
        .unwrap();
    AgentSpec {
        memory: true,
        ..agent(ToolCalling::Planner)
    }
}

fn saves_the_tone_then_answers() -> Vec<Reply> {
    vec![
        Reply::text(
            r#"{"tool": "remember_preference", "arguments": {"key": "tone", "value": "formal"}}"#,
        ),
        Reply::text(r#"{"final": "Noted."}"#),
    ]
}

#[tokio::test]
async fn memory_reaches_agents_that_use_it_and_remembered_preferences_join_it() {
    let w = world().await;
    let r = runner(&w, scripted(saves_the_tone_then_answers()));
    let mut a = remembering_agent(&r).await;
    let report = r
        .run(request(a.clone(), "please be formal"), None)
        .await
        .unwrap();
    assert_eq!(report.status, RunStatus::Completed);
    let remembered: Vec<(String, String)> = r
        .memory
        .list("tester")
        .await
        .unwrap()
        .into_iter()
        .map(|m| (m.key, m.source))
        .collect();
    assert_eq!(
        remembered,
        [
            ("language".into(), "api".into()),
            ("tone".into(), "warden.chatbot/remember_preference".into())
        ]
    );

    let backend = scripted(vec![Reply::text(r#"{"final": "Bonjour."}"#)]);
    let r = runner(&w, backend.clone());
    r.run(request(a.clone(), "hello"), None).await.unwrap();
    let sent = &backend.requests()[0].messages;
    let turn = sent
        .last()
        .and_then(|m| m.content.clone())
        .unwrap_or_default();
    assert!(
        turn.contains("- language: \"French\"")
            && turn.contains("- tone: \"formal\"")
            && turn.ends_with("hello"),
        "{turn}"
    );
    // Memory stays out of the system prompt, which every run shares.
    assert!(
        !sent[0]
            .content
            .clone()
            .unwrap_or_default()
            .contains("French")
    );

    a.memory = false;
    let backend = scripted(vec![Reply::text(r#"{"final": "Hello."}"#)]);
    runner(&w, backend.clone())
        .run(request(a, "hello"), None)
        .await
        .unwrap();
    let system = backend.requests()[0].messages[0]
        .content
        .clone()
        .unwrap_or_default();
    assert!(!system.contains("French"));
}

/// Regression: a full memory used to surface as a database error and fail
/// the run whose remember_preference call it mirrored.
#[tokio::test]
async fn a_full_memory_skips_the_mirror_and_the_run_still_answers() {
    let w = world().await;
    let r = runner(&w, scripted(saves_the_tone_then_answers()));
    for i in 0..crate::memory::MAX_ENTRIES {
        r.memory
            .put("tester", &format!("k{i}"), "v", "api")
            .await
            .unwrap();
    }
    assert!(matches!(
        r.memory.put("tester", "one-more", "v", "api").await,
        Err(crate::memory::MemoryError::Full)
    ));
    let report = r
        .run(
            request(agent(ToolCalling::Planner), "please be formal"),
            None,
        )
        .await
        .unwrap();
    assert_eq!(report.status, RunStatus::Completed);
    assert_eq!(report.answer.as_deref(), Some("Noted."));
    let entries = r.memory.list("tester").await.unwrap();
    assert_eq!(entries.len() as u64, crate::memory::MAX_ENTRIES);
    assert!(entries.iter().all(|m| m.key != "tone"));
}

#[tokio::test]
async fn ratings_become_preference_pairs() {
    let w = world().await;
    let mut a = agent(ToolCalling::Planner);
    a.tools.clear();
    let r = runner(
        &w,
        scripted(vec![
            Reply::text(r#"{"final": "Paris."}"#),
            Reply::text(r#"{"final": "Lyon."}"#),
        ]),
    );
    let good = r
        .run(request(a.clone(), "Capital of France?"), None)
        .await
        .unwrap();
    let bad = r.run(request(a, "Capital of France?"), None).await.unwrap();
    r.feedback
        .add(&good.id, "tester", 1, None, None)
        .await
        .unwrap();
    r.feedback
        .add(
            &bad.id,
            "tester",
            -1,
            Some("wrong".into()),
            Some("Paris is the capital.".into()),
        )
        .await
        .unwrap();
    let pairs = r.feedback.pairs().await.unwrap();
    let simple: Vec<(&str, &str)> = pairs
        .iter()
        .map(|p| (p.chosen.as_str(), p.rejected.as_str()))
        .collect();
    assert_eq!(
        simple,
        [("Paris is the capital.", "Lyon."), ("Paris.", "Lyon.")]
    );
    assert!(pairs.iter().all(|p| p.prompt == "Capital of France?"));
    assert!(super::feedback::validate(1, None, Some("x")).is_err());
    assert!(super::feedback::validate(0, None, None).is_err());
}

#[tokio::test]
async fn two_calls_needing_approval_in_one_step_are_decided_one_after_the_other() {
    let w = world().await;
    let backend = scripted(vec![Reply::calls([
        ("send", r#"{"q": "one"}"#),
        ("send", r#"{"q": "two"}"#),
    ])]);
    let a = agent(ToolCalling::Native);
    let first = runner(&w, backend)
        .run(request(a.clone(), "send both"), None)
        .await
        .unwrap();
    assert_eq!(first.status, RunStatus::AwaitingApproval);
    let approve = Resolution {
        approved: true,
        by: "boss".into(),
        reason: None,
    };
    let r = runner(&w, scripted(vec![Reply::text("Both sent.")]));
    let second = r
        .resume(&first.id, &a, approve.clone(), None)
        .await
        .unwrap();
    assert_eq!(
        second.status,
        RunStatus::AwaitingApproval,
        "the second call waits"
    );
    assert!(
        w.tools.calls().is_empty(),
        "nothing runs until both are decided"
    );
    let done = r.resume(&first.id, &a, approve, None).await.unwrap();
    assert_eq!(done.status, RunStatus::Completed, "{:?}", done.error);
    assert_eq!(w.tools.calls().len(), 2);
}

#[tokio::test]
async fn history_passes_the_input_stage_and_a_tool_timeout_is_reported() {
    let w = world().await;
    let backend = scripted(vec![
        Reply::text(r#"{"tool": "hang", "arguments": {"q": "x"}}"#),
        Reply::text(r#"{"final": "The lookup timed out."}"#),
    ]);
    let mut req = request(agent(ToolCalling::Planner), "and now?");
    req.history = vec![
        warden_llm::ChatMessage::new(warden_llm::Role::User, "my key is AKIAIOSFODNN7EXAMPLE"),
        warden_llm::ChatMessage::new(warden_llm::Role::Assistant, "Noted."),
    ];
    let report = runner(&w, backend.clone()).run(req, None).await.unwrap();
    assert_eq!(report.status, RunStatus::Completed);
    let first: Vec<String> = backend.requests()[0]
        .messages
        .iter()
        .filter_map(|m| m.content.clone())
        .collect();
    let n = first.len();
    assert_eq!(
        &first[n - 3..],
        ["my key is [REDACTED:aws_access_key]", "Noted.", "and now?"]
    );
    assert!(
        backend
            .last_message(1)
            .contains("The tool hang failed: timeout")
    );
}

#[tokio::test]
async fn one_approval_covers_one_call_even_when_two_are_identical() {
    let w = world().await;
    let backend = scripted(vec![Reply::calls([
        ("send", r#"{"q": "same"}"#),
        ("send", r#"{"q": "same"}"#),
    ])]);
    let a = agent(ToolCalling::Native);
    let first = runner(&w, backend)
        .run(request(a.clone(), "send twice"), None)
        .await
        .unwrap();
    let approve = Resolution {
        approved: true,
        by: "boss".into(),
        reason: None,
    };
    let r = runner(&w, scripted(vec![Reply::text("Sent twice.")]));
    let second = r
        .resume(&first.id, &a, approve.clone(), None)
        .await
        .unwrap();
    assert_eq!(second.status, RunStatus::AwaitingApproval);
    assert!(w.tools.calls().is_empty());
    let done = r.resume(&first.id, &a, approve, None).await.unwrap();
    assert_eq!(done.status, RunStatus::Completed, "{:?}", done.error);
    assert_eq!(w.tools.calls().len(), 2);
}

#[tokio::test]
async fn the_final_answer_streams_as_it_is_written_and_checked() {
    let w = world().await;
    let backend = scripted(vec![
        Reply::text(r#"{"tool": "lookup", "arguments": {"q": "a"}}"#),
        Reply::text(
            r#"{"final": "The key is AKIAIOSFODNN7EXAMPLE and the answer is \"forty two\", as requested by the user today."}"#,
        ),
    ]);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let mut req = request(agent(ToolCalling::Planner), "what is it?");
    req.answer_stream = Some(tx);
    let report = runner(&w, backend).run(req, None).await.unwrap();
    assert_eq!(report.status, RunStatus::Completed);
    let mut pieces = Vec::new();
    while let Ok(p) = rx.try_recv() {
        pieces.push(p);
    }
    assert!(pieces.len() > 1, "streamed in pieces: {pieces:?}");
    let streamed = pieces.concat();
    assert_eq!(Some(streamed.as_str()), report.answer.as_deref());
    assert!(
        streamed.contains("[REDACTED:aws_access_key]") && !streamed.contains("AKIA"),
        "{streamed}"
    );
    assert!(streamed.contains("\"forty two\""), "{streamed}");
}

/// The layout the engine's prefix cache reuses: a run's later steps only
/// append to its first step's prompt, and another user's run of the same
/// agent shares everything before that user's own turn (their memory
/// included).
#[tokio::test]
async fn prompts_share_their_prefix_across_steps_and_users() {
    let w = world().await;
    let backend = scripted(vec![
        Reply::text(r#"{"tool": "lookup", "arguments": {"q": "x"}}"#),
        Reply::text(r#"{"final": "Found x."}"#),
        Reply::text(r#"{"final": "Found y."}"#),
    ]);
    let r = runner(&w, backend.clone());
    let a = remembering_agent(&r).await;
    r.run(request(a.clone(), "find x"), None).await.unwrap();
    let mut other = request(a, "find y");
    other.subject = Some("someone-else".into());
    r.run(other, None).await.unwrap();

    let sent = backend.requests();
    let prompt = |i: usize| -> Vec<(Role, Option<String>)> {
        sent[i]
            .messages
            .iter()
            .map(|m| (m.role, m.content.clone()))
            .collect()
    };
    let (first, second, other) = (prompt(0), prompt(1), prompt(2));
    assert!(second.len() > first.len());
    assert_eq!(
        second[..first.len()],
        first[..],
        "a later step rewrote the prompt"
    );
    let shared = other.len() - 1;
    assert_eq!(other[..shared], first[..shared]);
    assert_ne!(
        other[shared], first[shared],
        "each user's turn is their own"
    );
}
