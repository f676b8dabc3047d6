//! The HTTP surface in-process, in axum's testing style: the real router
//! called as a service with `oneshot`, over a scripted backend (a test
//! double), the shipped policies, the real audit log and a SQLite file in a
//! temporary directory. They cover request validation and error shapes in
//! seconds; the integration suite runs the same surface as a process with
//! the real model.

use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{Method, Request, StatusCode, header};
use serde_json::{Value, json};
use tower::ServiceExt as _;
use warden_agents::testing::ScriptedTools;
use warden_agents::{AgentCatalog, AgentService, AgentSpec, Runner};
use warden_governance::Governor;
use warden_governance::audit::AuditLog;
use warden_governance::store::PolicyStore;
use warden_llm::ModelRegistry;
use warden_llm::testing::{Reply, ScriptedBackend};
use warden_plugin_host::kv_store::KvStore;
use warden_plugin_host::{HostServices, PluginManager, PluginsConfig};
use warden_policy::Bundle;

use super::request_log::RequestLogger;
use super::wire::Limits;
use super::{AppState, router};
use crate::keys::{self, Role};

const MODEL: &str = "scripted";
pub(crate) const MAX_BODY: usize = 8192;

struct TestApp {
    router: Router,
    admin: String,
    user: String,
    backend: Arc<ScriptedBackend>,
    _dir: tempfile::TempDir,
}

/// What every in-process test starts from: the state over a scripted
/// backend and a fresh SQLite file in `dir` (the Slack route tests add
/// channels to it).
pub(crate) async fn state(dir: &std::path::Path) -> (AppState, Arc<ScriptedBackend>) {
    let url = format!("sqlite://{}?mode=rwc", dir.join("w.db").display());
    let db = warden_db::connect(&url).await.unwrap();
    let backend = ScriptedBackend::new(MODEL, []);
    let mut registry = ModelRegistry::default();
    registry.insert(backend.clone());
    let metrics = Arc::new(crate::metrics::Metrics::default());
    let registry = Arc::new(crate::models::metered(&registry, &metrics));
    let (audit, _) = AuditLog::spawn(db.clone());
    let store = Arc::new(PolicyStore::fixed(Bundle::defaults().unwrap()));
    let governor = Arc::new(Governor::new(store, audit, None));
    let plugins = PluginManager::start(
        PluginsConfig::default(),
        dir.join("plugins"),
        None,
        db.clone(),
        HostServices {
            kv: KvStore::new(db.clone()),
            llm: None,
        },
    )
    .await
    .unwrap();
    let agents = AgentService {
        catalog: AgentCatalog::new(AgentSpec::defaults(), db.clone()),
        runner: Runner::new(
            registry.clone(),
            Arc::new(ScriptedTools::default()),
            governor.clone(),
            db.clone(),
            MODEL.into(),
        ),
    };
    let (request_log, _) = RequestLogger::spawn(db.clone());
    let mut state = AppState::new(
        registry,
        db,
        Limits {
            default_max_tokens: 64,
            max_tokens_limit: 512,
        },
        request_log,
        governor,
        Arc::new(plugins),
        Arc::new(agents),
    );
    state.metrics = metrics;
    (state, backend)
}

async fn app() -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let (state, backend) = state(dir.path()).await;
    let db = state.db.clone();
    TestApp {
        router: router(state, MAX_BODY),
        admin: keys::create(&db, "root", Role::Admin).await.unwrap(),
        user: keys::create(&db, "alice", Role::User).await.unwrap(),
        backend,
        _dir: dir,
    }
}

impl TestApp {
    async fn send(&self, request: Request<Body>) -> (StatusCode, Bytes) {
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, body)
    }

    /// A request with a JSON (or raw) body; `key` is sent as a bearer token.
    async fn call(
        &self,
        method: Method,
        path: &str,
        key: Option<&str>,
        body: impl Into<Body>,
    ) -> (StatusCode, Value) {
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header(header::CONTENT_TYPE, "application/json");
        if let Some(k) = key {
            request = request.header(header::AUTHORIZATION, format!("Bearer {k}"));
        }
        let (status, bytes) = self.send(request.body(body.into()).unwrap()).await;
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    async fn chat(&self, body: Value) -> (StatusCode, Value) {
        self.call(
            Method::POST,
            "/v1/chat/completions",
            Some(&self.user.clone()),
            body.to_string(),
        )
        .await
    }
}

fn hi() -> Value {
    json!({"model": MODEL, "messages": [{"role": "user", "content": "hi"}]})
}

fn with(patch: Value) -> Value {
    let mut body = hi();
    for (k, v) in patch.as_object().unwrap() {
        body[k] = v.clone();
    }
    body
}

/// Every error is OpenAI's shape: message, type, param and code present.
fn assert_openai_error(body: &Value) {
    let e = &body["error"];
    assert!(
        e["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    assert!(e["type"].is_string(), "{body}");
    assert!(
        e.get("param").is_some() && e.get("code").is_some(),
        "{body}"
    );
}

#[tokio::test]
async fn invalid_chat_requests_name_the_parameter_and_reach_no_model() {
    let app = app().await;
    let cases = [
        (with(json!({"max_tokens": 0})), "max_tokens"),
        (with(json!({"max_tokens": 100_000})), "max_tokens"),
        (with(json!({"temperature": 9})), "temperature"),
        (with(json!({"top_p": 0})), "top_p"),
        (with(json!({"n": 3})), "n"),
        (with(json!({"messages": []})), "messages"),
        (
            with(json!({"messages": [{"role": "robot", "content": "hi"}]})),
            "messages[0].role",
        ),
        (with(json!({"tool_choice": "required"})), "tool_choice"),
        (
            with(json!({"stream_options": {"include_usage": true}})),
            "stream_options",
        ),
        (
            with(json!({"tools": [{"type": "function", "function": {"name": "bad name"}}]})),
            "tools[0].function.name",
        ),
        (with(json!({"model": "nope"})), "model"),
    ];
    for (body, param) in cases {
        let (status, err) = app.chat(body.clone()).await;
        assert!(status.is_client_error(), "{body}: {status} {err}");
        assert_openai_error(&err);
        assert_eq!(err["error"]["param"], param, "{body}: {err}");
    }
    assert!(app.backend.requests().is_empty());
}

#[tokio::test]
async fn malformed_bodies_get_their_own_status_and_code() {
    let app = app().await;
    let big = with(json!({"messages": [{"role": "user", "content": "x".repeat(MAX_BODY)}]}));
    let cases: [(&str, String, &str, StatusCode, Option<&str>); 5] = [
        (
            "malformed json",
            "{\"model\": ".into(),
            "application/json",
            StatusCode::BAD_REQUEST,
            Some("invalid_json"),
        ),
        (
            "not an object",
            "[1,2]".into(),
            "application/json",
            StatusCode::BAD_REQUEST,
            Some("invalid_request_body"),
        ),
        (
            "missing messages",
            json!({"model": MODEL}).to_string(),
            "application/json",
            StatusCode::BAD_REQUEST,
            Some("invalid_request_body"),
        ),
        (
            "wrong content type",
            hi().to_string(),
            "text/plain",
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            None,
        ),
        (
            "oversized",
            big.to_string(),
            "application/json",
            StatusCode::PAYLOAD_TOO_LARGE,
            Some("request_too_large"),
        ),
    ];
    for (name, body, content_type, status, code) in cases {
        let request = Request::post("/v1/chat/completions")
            .header(header::CONTENT_TYPE, content_type)
            .header(header::AUTHORIZATION, format!("Bearer {}", app.user))
            .body(Body::from(body))
            .unwrap();
        let (got, bytes) = app.send(request).await;
        let err: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(got, status, "{name}: {err}");
        assert_openai_error(&err);
        if let Some(code) = code {
            assert_eq!(err["error"]["code"], code, "{name}");
        }
    }
    assert!(app.backend.requests().is_empty());
}

#[tokio::test]
async fn keys_are_required_checked_and_scoped_by_role() {
    let app = app().await;
    let cases = [
        (Method::GET, "/v1/models", None, StatusCode::UNAUTHORIZED),
        (
            Method::GET,
            "/v1/models",
            Some("wdn_not-a-real-key"),
            StatusCode::UNAUTHORIZED,
        ),
        (Method::GET, "/v1/models", Some("user"), StatusCode::OK),
        (
            Method::GET,
            "/api/keys",
            Some("user"),
            StatusCode::FORBIDDEN,
        ),
        (Method::GET, "/api/keys", Some("admin"), StatusCode::OK),
        (
            Method::GET,
            "/api/audit",
            Some("user"),
            StatusCode::FORBIDDEN,
        ),
        (
            Method::POST,
            "/api/policies/reload",
            Some("user"),
            StatusCode::FORBIDDEN,
        ),
    ];
    for (method, path, who, status) in cases {
        let key = match who {
            Some("user") => Some(app.user.clone()),
            Some("admin") => Some(app.admin.clone()),
            other => other.map(str::to_owned),
        };
        let (got, body) = app.call(method.clone(), path, key.as_deref(), "").await;
        assert_eq!(got, status, "{method} {path} as {who:?}: {body}");
        if !got.is_success() {
            assert_openai_error(&body);
        }
    }
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_in_openai_shape() {
    let app = app().await;
    let (status, body) = app
        .call(Method::GET, "/v1/nothing-here", Some(&app.user), "")
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_openai_error(&body);
    let (status, body) = app
        .call(Method::DELETE, "/v1/chat/completions", Some(&app.user), "")
        .await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_openai_error(&body);
    let (status, _) = app.call(Method::GET, "/healthz", None, "").await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn a_completion_is_governed_on_the_way_in_and_out() {
    let app = app().await;
    app.backend
        .push(Reply::text("Your key AKIAIOSFODNN7EXAMPLE is noted."));
    let (status, body) = app
        .chat(with(
            json!({"messages": [{"role": "user", "content": "my key is AKIAIOSFODNN7EXAMPLE"}]}),
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let answer = body["choices"][0]["message"]["content"].as_str().unwrap();
    assert!(!answer.contains("AKIAIOSFODNN7EXAMPLE"), "{answer}");
    assert_eq!(body["usage"]["total_tokens"], 13);
    // The model never saw the key either.
    let seen = app.backend.last_message(0);
    assert!(!seen.contains("AKIAIOSFODNN7EXAMPLE"), "{seen}");
    // Both checks are in the audit log.
    let (status, audit) = app
        .call(Method::GET, "/api/audit?limit=10", Some(&app.admin), "")
        .await;
    assert_eq!(status, StatusCode::OK, "{audit}");
    let stages: Vec<&str> = audit["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["stage"].as_str())
        .collect();
    assert!(
        stages.contains(&"input") && stages.contains(&"output"),
        "{stages:?}"
    );
}

#[tokio::test]
async fn a_streamed_completion_ends_with_finish_usage_and_done() {
    let app = app().await;
    app.backend.push(Reply::text("Hello there, friend."));
    let body = with(json!({"stream": true, "stream_options": {"include_usage": true}}));
    let request = Request::post("/v1/chat/completions")
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::AUTHORIZATION, format!("Bearer {}", app.user))
        .body(Body::from(body.to_string()))
        .unwrap();
    let (status, bytes) = app.send(request).await;
    assert_eq!(status, StatusCode::OK);
    let text = String::from_utf8(bytes.to_vec()).unwrap();
    let events: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .collect();
    assert_eq!(events.last(), Some(&"[DONE]"), "{text}");
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let content: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(content, "Hello there, friend.");
    let finish = &chunks[chunks.len() - 2];
    assert_eq!(finish["choices"][0]["finish_reason"], "stop");
    assert_eq!(chunks[chunks.len() - 1]["usage"]["completion_tokens"], 3);
    // Every chunk carries the completion's id.
    assert!(chunks.iter().all(|c| c["id"] == chunks[0]["id"]));
}

#[tokio::test]
async fn an_agent_answers_as_a_chat_completion() {
    let app = app().await;
    app.backend.push(Reply::text(r#"{"final": "All done."}"#));
    let (status, body) = app
        .chat(with(json!({"model": "agent:document-assistant"})))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["choices"][0]["message"]["content"], "All done.");
    let run_id = body["id"].as_str().unwrap();
    let (status, run) = app
        .call(
            Method::GET,
            &format!("/api/runs/{run_id}"),
            Some(&app.user),
            "",
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{run}");
    assert_eq!(run["status"], "completed");
    let (status, err) = app.chat(with(json!({"model": "agent:nobody"}))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(err["error"]["code"], "model_not_found");
}

#[tokio::test]
async fn bad_filters_and_bodies_on_the_admin_api_are_400s_naming_the_field() {
    let app = app().await;
    let admin = app.admin.clone();
    let cases: [(Method, &str, &str, Option<&str>); 6] = [
        (
            Method::GET,
            "/api/audit?decision=maybe",
            "",
            Some("decision"),
        ),
        (Method::GET, "/api/audit?since=yesterday", "", Some("since")),
        (Method::GET, "/api/audit?limit=0", "", Some("limit")),
        (Method::GET, "/api/runs?limit=0", "", Some("limit")),
        (
            Method::POST,
            "/api/keys",
            r#"{"name": "x", "role": "wizard"}"#,
            Some("role"),
        ),
        (
            Method::POST,
            "/api/agents/document-assistant/runs",
            r#"{"message": ""}"#,
            Some("message"),
        ),
    ];
    for (method, path, body, param) in cases {
        let (status, err) = app.call(method.clone(), path, Some(&admin), body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{method} {path}: {err}");
        assert_openai_error(&err);
        assert_eq!(err["error"]["param"].as_str(), param, "{path}: {err}");
    }
    // A missing run and a configured agent that cannot be deleted.
    let (status, _) = app
        .call(Method::GET, "/api/runs/nope", Some(&admin), "")
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, err) = app
        .call(
            Method::DELETE,
            "/api/agents/document-assistant",
            Some(&admin),
            "",
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{err}");
}

#[tokio::test]
async fn a_full_memory_is_a_409_and_keeps_what_it_has() {
    let app = app().await;
    let user = app.user.clone();
    let put = |key: String, value: &'static str| {
        let (app, user) = (&app, &user);
        async move {
            app.call(
                Method::PUT,
                &format!("/api/memory/{key}"),
                Some(user),
                json!({ "value": value }).to_string(),
            )
            .await
        }
    };
    for i in 0..warden_agents::memory::MAX_ENTRIES {
        let (status, body) = put(format!("k{i}"), "v").await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let (status, err) = put("one-more".into(), "v").await;
    assert_eq!(status, StatusCode::CONFLICT, "{err}");
    assert_openai_error(&err);
    assert!(
        err["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("memory is full")),
        "{err}"
    );
    // An existing key can still be updated.
    let (status, _) = put("k0".into(), "w").await;
    assert_eq!(status, StatusCode::OK);
    let (_, list) = app.call(Method::GET, "/api/memory", Some(&user), "").await;
    assert_eq!(
        list["data"].as_array().map(Vec::len),
        Some(warden_agents::memory::MAX_ENTRIES as usize),
        "{list}"
    );
}
