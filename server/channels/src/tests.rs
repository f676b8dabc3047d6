//! The channel core over a real SQLite file, the real governor (shipped
//! policies) and run store, with a scripted model, scripted tools and a
//! recording channel (test doubles). Slack on the wire is tested in the
//! binary's API tests and the integration suite.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

use crate::inbox::{Accepted, InboxStatus, NewItem};
use crate::outbox::{Delivery, OutboxStatus, Sender};
use crate::{ApprovalNeeded, Channel, DeliveryConfig, Dispatcher, Message, Outcome, Outgoing};
use warden_agents::testing::ScriptedTools;
use warden_agents::{AgentCatalog, AgentService, AgentSpec, Resolution, Runner, StepRecord};
use warden_governance::Governor;
use warden_governance::audit::AuditLog;
use warden_governance::store::PolicyStore;
use warden_llm::ModelRegistry;
use warden_llm::testing::{Reply, ScriptedBackend};
use warden_policy::bundle::Bundle;

/// Records what it is asked to deliver; answers from a script, then
/// `Sent` with `ts-<n>`.
#[derive(Default)]
struct Recorder {
    script: Mutex<VecDeque<Delivery>>,
    sent: Mutex<Vec<(String, Value, Option<String>)>>,
}

impl Recorder {
    fn sent(&self) -> Vec<(String, Value, Option<String>)> {
        self.sent.lock().unwrap().clone()
    }
    fn texts(&self) -> Vec<String> {
        self.sent()
            .into_iter()
            .map(|(_, b, _)| b["text"].as_str().unwrap_or_default().to_owned())
            .collect()
    }
}

fn out(kind: &str, text: &str, after: bool, progress: bool) -> Outgoing {
    Outgoing {
        kind: kind.into(),
        target: json!({}),
        body: json!({ "text": text }),
        after_placeholder: after,
        progress,
    }
}

#[async_trait::async_trait]
impl Channel for Recorder {
    fn channel(&self) -> &'static str {
        "test"
    }
    fn connection(&self) -> &str {
        "main"
    }
    fn placeholder(&self, _: &Message) -> Option<Outgoing> {
        Some(out("post", "working…", false, false))
    }
    fn progress(&self, _: &Message, step: &StepRecord) -> Option<Outgoing> {
        (step.kind == warden_agents::StepKind::ToolCall)
            .then(|| out("update", "calling a tool…", true, true))
    }
    fn outcome(&self, _: &Message, _: &str, outcome: &Outcome) -> Vec<Outgoing> {
        let text = match outcome {
            Outcome::Answer(a) => a.clone(),
            Outcome::Stopped { status, message } => format!("[{status}] {message}"),
        };
        vec![out("update", &text, true, false)]
    }
    fn approval(&self, _: &Message, n: &ApprovalNeeded) -> Vec<Outgoing> {
        vec![out(
            "post",
            &format!("approve {} {}?", n.tool, n.run_id),
            false,
            false,
        )]
    }
    async fn deliver(&self, kind: &str, _: &Value, body: &Value, r: Option<&str>) -> Delivery {
        let scripted = self.script.lock().unwrap().pop_front();
        if let Some(d) = scripted {
            return d;
        }
        let mut sent = self.sent.lock().unwrap();
        sent.push((kind.to_owned(), body.clone(), r.map(str::to_owned)));
        Delivery::Sent {
            external_ref: Some(format!("ts-{}", sent.len())),
        }
    }
}

struct World {
    _dir: tempfile::TempDir,
    db: sea_orm::DatabaseConnection,
    backend: Arc<ScriptedBackend>,
    tools: Arc<ScriptedTools>,
    channel: Arc<Recorder>,
    dispatcher: Arc<Dispatcher>,
}

fn agent() -> AgentSpec {
    AgentSpec {
        name: "helper".into(),
        tools: vec!["test.tools/*".into()],
        ..AgentSpec::defaults().remove(0)
    }
}

async fn world(delivery: DeliveryConfig) -> World {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("w.db").display());
    let db = warden_db::connect(&url).await.unwrap();
    let (audit, _) = AuditLog::spawn(db.clone());
    let store = Arc::new(PolicyStore::fixed(Bundle::defaults().unwrap()));
    let governor = Arc::new(Governor::new(store, audit, None));
    let backend = ScriptedBackend::new("scripted", Vec::<Reply>::new());
    let mut registry = ModelRegistry::default();
    registry.insert(backend.clone());
    let tools = Arc::new(ScriptedTools::default());
    let agents = Arc::new(AgentService {
        catalog: AgentCatalog::new(vec![agent()], db.clone()),
        runner: Runner::new(
            Arc::new(registry),
            tools.clone(),
            governor,
            db.clone(),
            "scripted".into(),
        ),
    });
    let channel = Arc::new(Recorder::default());
    let channels: Vec<Arc<dyn Channel>> = vec![channel.clone()];
    let sender = Arc::new(Sender::new(db.clone(), &channels, delivery));
    let dispatcher = Arc::new(Dispatcher::new(db.clone(), agents, &channels, sender));
    World {
        _dir: dir,
        db,
        backend,
        tools,
        channel,
        dispatcher,
    }
}

fn message(thread: &str, text: &str) -> Message {
    Message {
        thread_key: thread.into(),
        external_user: "T1:U1".into(),
        display_name: Some("ann".into()),
        agent: "helper".into(),
        text: text.into(),
        reply_to: json!({}),
    }
}

fn item(event: &str, message_key: Option<&str>, msg: &Message) -> NewItem {
    NewItem {
        channel: "test",
        connection: "main".into(),
        event_key: event.into(),
        message_key: message_key.map(str::to_owned),
        ignored: None,
        payload: serde_json::to_string(msg).unwrap(),
    }
}

/// Aborts the dispatcher and sender loops when a test is done with them.
struct Running(Vec<tokio::task::JoinHandle<()>>);

impl Drop for Running {
    fn drop(&mut self) {
        for t in &self.0 {
            t.abort();
        }
    }
}

impl World {
    fn start(&self) -> Running {
        Running(vec![
            self.dispatcher.spawn(),
            self.dispatcher.sender.spawn(),
        ])
    }

    /// Waits until `done` holds, polling (fails the test after 10 s: a
    /// hang, not a timing assertion). The loops must be running.
    async fn until<F: std::future::Future<Output = bool>>(&self, what: &str, done: impl Fn() -> F) {
        for _ in 0..400 {
            if done().await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("never happened: {what}; sent: {:?}", self.channel.sent());
    }

    async fn status(&self, id: &str) -> String {
        self.dispatcher.inbox.get(id).await.unwrap().unwrap().status
    }
}

fn new_id(a: Accepted) -> String {
    match a {
        Accepted::New(id) => id,
        other => panic!("not stored as new: {other:?}"),
    }
}

#[tokio::test]
async fn an_event_is_stored_once_under_either_of_its_keys() {
    let w = world(DeliveryConfig::default()).await;
    let inbox = &w.dispatcher.inbox;
    let m = message("C1:1.0", "hi");
    let first = inbox.accept(item("Ev1", Some("C1:1.0"), &m)).await.unwrap();
    assert!(matches!(first, Accepted::New(_)));
    // Slack's retry of the same event, and the same message as a second
    // event (`message` after `app_mention`).
    for again in [
        item("Ev1", Some("C1:1.0"), &m),
        item("Ev2", Some("C1:1.0"), &m),
    ] {
        assert_eq!(inbox.accept(again).await.unwrap(), Accepted::Duplicate);
    }
    assert_eq!(inbox.count("test", InboxStatus::Received).await.unwrap(), 1);
}

#[tokio::test]
async fn an_ignored_event_does_not_stop_the_same_message_being_answered() {
    let w = world(DeliveryConfig::default()).await;
    let inbox = &w.dispatcher.inbox;
    let m = message("C1:1.0", "hi");
    let ignored = NewItem {
        ignored: Some("message events are not addressed to the bot".into()),
        message_key: None,
        ..item("Ev1", Some("C1:1.0"), &m)
    };
    assert!(matches!(
        inbox.accept(ignored).await.unwrap(),
        Accepted::Ignored(_)
    ));
    assert!(matches!(
        inbox.accept(item("Ev2", Some("C1:1.0"), &m)).await.unwrap(),
        Accepted::New(_)
    ));
    assert_eq!(inbox.count("test", InboxStatus::Ignored).await.unwrap(), 1);
}

#[tokio::test]
async fn a_message_is_answered_in_place_of_its_placeholder_and_the_thread_remembers() {
    let w = world(DeliveryConfig::default()).await;
    w.backend.set_script([
        Reply::text(r#"{"final": "Paris."}"#),
        Reply::text(r#"{"final": "About two million."}"#),
    ]);
    let first = new_id(
        w.dispatcher
            .inbox
            .accept(item(
                "Ev1",
                Some("k1"),
                &message("C1:1.0", "capital of France?"),
            ))
            .await
            .unwrap(),
    );
    let _running = w.start();
    w.until("the first answer", || async { w.channel.sent().len() == 2 })
        .await;
    let sent = w.channel.sent();
    assert_eq!(sent[0].1["text"], "working…");
    // The answer updates the placeholder it names.
    assert_eq!(sent[1].0, "update");
    assert_eq!(sent[1].1["text"], "Paris.");
    assert_eq!(sent[1].2.as_deref(), Some("ts-1"));
    assert_eq!(w.status(&first).await, "done");

    w.dispatcher
        .inbox
        .accept(item(
            "Ev2",
            Some("k2"),
            &message("C1:1.0", "how many people?"),
        ))
        .await
        .unwrap();
    w.until("the second answer", || async {
        w.channel.sent().len() == 4
    })
    .await;
    // The follow-up carried the first question and answer as history.
    let request = w.backend.requests().pop().unwrap();
    let history: Vec<String> = request
        .messages
        .iter()
        .filter_map(|m| m.content.clone())
        .collect();
    assert!(
        history.iter().any(|c| c == "capital of France?")
            && history.iter().any(|c| c.contains("Paris.")),
        "{history:?}"
    );
}

#[tokio::test]
async fn a_rate_limited_reply_is_retried_after_retry_after_and_delivered_once() {
    let w = world(DeliveryConfig {
        backoff_ms: 10,
        ..DeliveryConfig::default()
    })
    .await;
    w.backend.set_script([Reply::text(r#"{"final": "ok"}"#)]);
    // The placeholder meets a 429 first.
    w.channel.script.lock().unwrap().push_back(Delivery::Retry {
        error: "HTTP 429".into(),
        after: Some(Duration::from_millis(200)),
    });
    let id = new_id(
        w.dispatcher
            .inbox
            .accept(item("Ev1", Some("k1"), &message("C1:1.0", "hi")))
            .await
            .unwrap(),
    );
    let _running = w.start();
    w.until("both messages", || async { w.channel.sent().len() == 2 })
        .await;
    assert_eq!(w.channel.texts(), ["working…", "ok"]);
    let rows = w.dispatcher.sender.outbox().for_inbox(&id).await.unwrap();
    assert_eq!(rows[0].attempts, 2, "{rows:?}");
    assert_eq!(rows[0].last_error.as_deref(), Some("HTTP 429"));
    // Waited at least what Retry-After asked (not the 10 ms backoff).
    let waited = rows[0].updated_at - rows[0].created_at;
    assert!(waited >= chrono::Duration::milliseconds(200), "{waited}");
    // The run ran once.
    assert_eq!(w.backend.requests().len(), 1);
}

#[tokio::test]
async fn a_reply_the_peer_refuses_is_failed_with_its_answer_and_the_rest_still_goes() {
    let w = world(DeliveryConfig {
        backoff_ms: 1,
        max_attempts: 2,
        ..DeliveryConfig::default()
    })
    .await;
    w.backend.set_script([Reply::text(r#"{"final": "ok"}"#)]);
    {
        let mut script = w.channel.script.lock().unwrap();
        script.push_back(Delivery::Retry {
            error: "HTTP 503".into(),
            after: None,
        });
        script.push_back(Delivery::Retry {
            error: "HTTP 503".into(),
            after: None,
        });
    }
    let id = new_id(
        w.dispatcher
            .inbox
            .accept(item("Ev1", Some("k1"), &message("C1:1.0", "hi")))
            .await
            .unwrap(),
    );
    let _running = w.start();
    w.until("the answer", || async { w.channel.sent().len() == 1 })
        .await;
    let rows = w.dispatcher.sender.outbox().for_inbox(&id).await.unwrap();
    assert_eq!(rows[0].status, OutboxStatus::Failed.as_str());
    assert_eq!(
        rows[0].last_error.as_deref(),
        Some("HTTP 503 (gave up after 2 tries)")
    );
    // The placeholder never went: the answer is posted, not an update.
    let sent = w.channel.sent();
    assert_eq!(sent[0].1["text"], "ok");
    assert_eq!(sent[0].2, None);

    w.channel
        .script
        .lock()
        .unwrap()
        .push_back(Delivery::Failed("channel_not_found".into()));
    w.dispatcher
        .send(w.channel.as_ref(), "note", &out("post", "x", false, false))
        .await
        .unwrap();
    w.until("the refusal is recorded", || async {
        w.dispatcher
            .sender
            .outbox()
            .count("test", OutboxStatus::Failed)
            .await
            .unwrap()
            == 2
    })
    .await;
}

#[tokio::test]
async fn an_approval_is_asked_once_decided_once_and_the_answer_reaches_the_thread() {
    let w = world(DeliveryConfig::default()).await;
    w.backend.set_script([
        Reply::text(r#"{"tool": "send", "arguments": {"q": "hello"}}"#),
        Reply::text(r#"{"final": "Sent."}"#),
    ]);
    let id = new_id(
        w.dispatcher
            .inbox
            .accept(item("Ev1", Some("k1"), &message("C1:1.0", "send hello")))
            .await
            .unwrap(),
    );
    let _running = w.start();
    w.until("the approval request", || async {
        w.channel
            .texts()
            .iter()
            .any(|t| t.starts_with("approve send"))
    })
    .await;
    assert_eq!(w.status(&id).await, "awaiting_approval");
    assert!(w.tools.calls().is_empty());
    let run_id = w
        .dispatcher
        .inbox
        .get(&id)
        .await
        .unwrap()
        .unwrap()
        .run_id
        .unwrap();
    // Settling again (the periodic pass) does not ask twice.
    w.dispatcher.settle(&id).await.unwrap();
    let rows = w.dispatcher.sender.outbox().for_inbox(&id).await.unwrap();
    let asked = rows
        .iter()
        .filter(|r| r.body.contains("approve send"))
        .count();
    assert_eq!(asked, 1, "{rows:?}");

    let yes = |by: &str| Resolution {
        approved: true,
        by: by.into(),
        reason: None,
    };
    let runs = warden_agents::RunStore::new(w.db.clone());
    let pause = u32::try_from(runs.get(&run_id).await.unwrap().unwrap().0.steps).unwrap();
    // A decision naming another request of the run decides nothing.
    let stale = w
        .dispatcher
        .decide(&run_id, pause + 1, yes("slack:T1:U7"))
        .await
        .unwrap();
    assert!(
        matches!(stale, crate::dispatch::Decided::Stale),
        "{stale:?}"
    );
    let decided = w
        .dispatcher
        .decide(&run_id, pause, yes("slack:T1:U9"))
        .await
        .unwrap();
    assert!(
        matches!(decided, crate::dispatch::Decided::Resumed { .. }),
        "{decided:?}"
    );
    let again = w
        .dispatcher
        .decide(&run_id, pause, yes("slack:T1:U8"))
        .await
        .unwrap();
    match again {
        crate::dispatch::Decided::Already { by, .. } => {
            assert_eq!(by.as_deref(), Some("slack:T1:U9"));
        }
        other => panic!("{other:?}"),
    }
    w.until("the answer", || async {
        w.channel.texts().iter().any(|t| t == "Sent.")
    })
    .await;
    assert_eq!(w.tools.calls().len(), 1, "the tool ran once");
    assert_eq!(w.status(&id).await, "done");
}

#[tokio::test]
async fn an_item_a_stopped_server_was_working_on_is_answered_once_after_the_restart() {
    let w = world(DeliveryConfig::default()).await;
    let id = new_id(
        w.dispatcher
            .inbox
            .accept(item("Ev1", Some("k1"), &message("C1:1.0", "hi")))
            .await
            .unwrap(),
    );
    // What a crash mid-run leaves: the item taken up with a run that the
    // next start marks interrupted.
    let inbox = &w.dispatcher.inbox;
    assert!(
        inbox
            .transition(&id, InboxStatus::Received, InboxStatus::Processing, None)
            .await
            .unwrap()
    );
    let runs = warden_agents::RunStore::new(w.db.clone());
    runs.create("run_lost", "helper", Some("test:T1:U1"), Some("test"), "hi")
        .await
        .unwrap();
    inbox.set_run(&id, "run_lost").await.unwrap();
    assert_eq!(runs.fail_interrupted().await.unwrap(), 1);

    w.backend
        .set_script([Reply::text(r#"{"final": "hello again"}"#)]);
    let _running = w.start();
    w.until("the answer", || async {
        w.channel.texts().iter().any(|t| t == "hello again")
    })
    .await;
    assert_eq!(w.status(&id).await, "done");
    let answers = w
        .channel
        .texts()
        .iter()
        .filter(|t| *t == "hello again")
        .count();
    assert_eq!(answers, 1);
    assert_eq!(w.backend.requests().len(), 1);
}

#[tokio::test]
async fn an_item_that_keeps_being_interrupted_is_given_up_with_a_message() {
    let w = world(DeliveryConfig::default()).await;
    let m = message("C1:1.0", "hi");
    let id = new_id(
        w.dispatcher
            .inbox
            .accept(item("Ev1", Some("k1"), &m))
            .await
            .unwrap(),
    );
    use sea_orm::{ActiveModelTrait, Set};
    warden_db::entities::channel_inbox::ActiveModel {
        id: Set(id.clone()),
        status: Set("processing".into()),
        attempts: Set(crate::dispatch::MAX_ATTEMPTS),
        ..Default::default()
    }
    .update(&w.db)
    .await
    .unwrap();
    let _running = w.start();
    w.until("the apology", || async { !w.channel.texts().is_empty() })
        .await;
    assert!(
        w.channel
            .texts()
            .iter()
            .any(|t| t.contains("could not be answered in 3 attempts")),
        "{:?}",
        w.channel.texts()
    );
    assert_eq!(w.status(&id).await, "failed");
    assert!(w.backend.requests().is_empty());
}

#[test]
fn backoff_doubles_is_capped_and_honours_a_longer_retry_after() {
    let c = DeliveryConfig {
        backoff_ms: 100,
        max_backoff_ms: 1000,
        ..DeliveryConfig::default()
    };
    let ms = |a, r: Option<u64>| c.delay(a, r.map(Duration::from_millis)).as_millis();
    assert_eq!(ms(1, None), 100);
    assert_eq!(ms(2, None), 200);
    assert_eq!(ms(3, None), 400);
    assert_eq!(ms(9, None), 1000);
    assert_eq!(ms(1, Some(700)), 700);
    assert_eq!(ms(1, Some(50)), 100);
    assert_eq!(ms(1, Some(60_000)), 60_000);
    assert_eq!(ms(1, Some(3_600_000)), 900_000);
    assert!(DeliveryConfig::default().validate().is_ok());
    assert!(
        DeliveryConfig {
            max_attempts: 0,
            ..c.clone()
        }
        .validate()
        .is_err()
    );
}

#[tokio::test]
async fn a_reply_joins_a_conversation_only_from_its_participant() {
    let w = world(DeliveryConfig::default()).await;
    let ids = crate::messages::MessageIds::new(w.db.clone());
    ids.record(
        "email",
        "main",
        "w1@warden.test",
        "mail:m0",
        "ann@example.com",
    )
    .await
    .unwrap();
    // Recording again does not move the id to another thread.
    ids.record(
        "email",
        "main",
        "w1@warden.test",
        "mail:other",
        "eve@example.com",
    )
    .await
    .unwrap();
    let refs = vec!["unknown@x.test".to_owned(), "w1@warden.test".to_owned()];
    let found = |sender: &'static str| {
        let ids = ids.clone();
        let refs = refs.clone();
        async move { ids.thread_of("email", "main", &refs, sender).await.unwrap() }
    };
    assert_eq!(found("ann@example.com").await.as_deref(), Some("mail:m0"));
    assert_eq!(found("eve@example.com").await, None, "forged References");
    assert_eq!(
        ids.thread_of("email", "other", &refs, "ann@example.com")
            .await
            .unwrap(),
        None
    );
}
