//! Malformed, oversized and unauthorised requests get OpenAI-style errors
//! with the right status, and the server keeps serving.

use async_openai::error::OpenAIError;
use async_openai::types::chat::{
    ChatCompletionRequestUserMessageArgs, CreateChatCompletionRequestArgs,
};
use reqwest::StatusCode;
use serde_json::{Value, json};
use warden_tests::{MODEL, Options, Server};

async fn post(
    server: &Server,
    key: Option<&str>,
    body: reqwest::Body,
    content_type: &str,
) -> (StatusCode, Value) {
    let mut req = reqwest::Client::new()
        .post(format!("{}/chat/completions", server.v1()))
        .header("content-type", content_type)
        .body(body);
    if let Some(k) = key {
        req = req.bearer_auth(k);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    (status, body)
}

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
async fn bad_requests_are_rejected_precisely_and_the_server_keeps_serving() {
    let server = Server::start_with(Options {
        config: "[server]\nmax_body_bytes = 4096\n".into(),
        ..Options::default()
    })
    .unwrap();
    let key = server.key().to_owned();
    let ok =
        json!({"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2});
    let cases: Vec<(&str, reqwest::Body, &str, StatusCode, Option<&str>)> = vec![
        ("malformed json", "{\"model\": ".into(), "application/json", StatusCode::BAD_REQUEST, None),
        ("not an object", "[1,2]".into(), "application/json", StatusCode::BAD_REQUEST, None),
        ("missing messages", json!({"model": MODEL}).to_string().into(), "application/json", StatusCode::BAD_REQUEST, None),
        ("wrong content type", ok.to_string().into(), "text/plain", StatusCode::UNSUPPORTED_MEDIA_TYPE, None),
        ("oversized body", json!({"model": MODEL, "messages": [{"role": "user", "content": "x".repeat(10_000)}]}).to_string().into(),
            "application/json", StatusCode::PAYLOAD_TOO_LARGE, None),
        ("unknown model", json!({"model": "nope", "messages": [{"role": "user", "content": "hi"}]}).to_string().into(),
            "application/json", StatusCode::NOT_FOUND, Some("model")),
        ("temperature out of range", json!({"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "temperature": 9}).to_string().into(),
            "application/json", StatusCode::BAD_REQUEST, Some("temperature")),
        ("max_tokens zero", json!({"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 0}).to_string().into(),
            "application/json", StatusCode::BAD_REQUEST, Some("max_tokens")),
        ("bad role", json!({"model": MODEL, "messages": [{"role": "robot", "content": "hi"}]}).to_string().into(),
            "application/json", StatusCode::BAD_REQUEST, Some("messages[0].role")),
        ("tool_choice without tools", json!({"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "tool_choice": "required"}).to_string().into(),
            "application/json", StatusCode::BAD_REQUEST, Some("tool_choice")),
    ];
    for (name, body, ct, status, param) in cases {
        let (got, body) = post(&server, Some(&key), body, ct).await;
        assert_eq!(got, status, "{name}: {body}");
        assert_openai_error(&body);
        if let Some(p) = param {
            assert_eq!(body["error"]["param"], p, "{name}");
        }
        // Still serving after every bad request.
        let (s, b) = post(
            &server,
            Some(&key),
            ok.to_string().into(),
            "application/json",
        )
        .await;
        assert_eq!(s, StatusCode::OK, "after {name}: {b}");
    }
}

#[tokio::test]
async fn missing_and_invalid_keys_get_401_in_openai_shape() {
    let server = Server::start().unwrap();
    let ok = json!({"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}).to_string();
    for key in [None, Some("wdn_not-a-real-key"), Some("garbage")] {
        let (status, body) = post(&server, key, ok.clone().into(), "application/json").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{key:?}");
        assert_openai_error(&body);
        assert_eq!(body["error"]["code"], "invalid_api_key");
    }
    let models = reqwest::get(format!("{}/models", server.v1()))
        .await
        .unwrap();
    assert_eq!(models.status(), StatusCode::UNAUTHORIZED);
    let keys = reqwest::get(format!("{}/api/keys", server.base))
        .await
        .unwrap();
    assert_eq!(keys.status(), StatusCode::UNAUTHORIZED);
    // Open endpoints stay open.
    let health = reqwest::get(format!("{}/healthz", server.base))
        .await
        .unwrap();
    assert_eq!(health.status(), StatusCode::OK);

    // The async-openai client sees the same error as a typed ApiError.
    let client = async_openai::Client::with_config(
        async_openai::config::OpenAIConfig::new()
            .with_api_base(server.v1())
            .with_api_key("wdn_wrong"),
    );
    let request = CreateChatCompletionRequestArgs::default()
        .model(MODEL)
        .messages(vec![
            ChatCompletionRequestUserMessageArgs::default()
                .content("hi")
                .build()
                .unwrap()
                .into(),
        ])
        .build()
        .unwrap();
    match client.chat().create(request).await {
        Err(OpenAIError::ApiError(e)) => {
            assert_eq!(e.status_code.as_u16(), 401);
            assert_eq!(e.api_error.code.as_deref(), Some("invalid_api_key"));
        }
        other => panic!("expected a 401 ApiError, got {other:?}"),
    }
}

#[tokio::test]
async fn user_keys_cannot_manage_keys_and_revoked_keys_stop_working() {
    let server = Server::start().unwrap();
    let http = reqwest::Client::new();
    let created: Value = http
        .post(format!("{}/api/keys", server.base))
        .bearer_auth(server.key())
        .json(&json!({"name": "ci-bot", "role": "user"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let user_key = created["key"].as_str().unwrap().to_owned();
    let models = http
        .get(format!("{}/models", server.v1()))
        .bearer_auth(&user_key)
        .send()
        .await
        .unwrap();
    assert_eq!(models.status(), StatusCode::OK);
    let forbidden = http
        .get(format!("{}/api/keys", server.base))
        .bearer_auth(&user_key)
        .send()
        .await
        .unwrap();
    assert_eq!(forbidden.status(), StatusCode::FORBIDDEN);
    let dup = http
        .post(format!("{}/api/keys", server.base))
        .bearer_auth(server.key())
        .json(&json!({"name": "ci-bot"}))
        .send()
        .await
        .unwrap();
    assert_eq!(dup.status(), StatusCode::CONFLICT);
    let listed: Value = http
        .get(format!("{}/api/keys", server.base))
        .bearer_auth(server.key())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        !listed.to_string().contains(&user_key),
        "key values are never listed"
    );
    let revoked = http
        .delete(format!("{}/api/keys/ci-bot", server.base))
        .bearer_auth(server.key())
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), StatusCode::NO_CONTENT);
    let after = http
        .get(format!("{}/models", server.v1()))
        .bearer_auth(&user_key)
        .send()
        .await
        .unwrap();
    assert_eq!(after.status(), StatusCode::UNAUTHORIZED);
}
