//! SIGTERM lets in-flight requests finish, then refuses new connections.

use serde_json::json;
use warden_tests::{MODEL, Server};

#[tokio::test]
async fn sigterm_finishes_in_flight_requests_then_refuses_new_ones() {
    let server = Server::start().unwrap();
    let url = format!("{}/chat/completions", server.v1());
    let key = server.key().to_owned();
    let in_flight = tokio::spawn(async move {
        reqwest::Client::new()
            .post(url)
            .bearer_auth(key)
            .json(&json!({"model": MODEL, "messages": [{"role": "user", "content": "Tell me a long story."}],
                          "max_tokens": 120, "temperature": 0}))
            .send()
            .await
            .unwrap()
            .json::<serde_json::Value>()
            .await
            .unwrap()
    });
    // Let the request reach the engine before the signal.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let base = server.base.clone();
    let status = tokio::task::spawn_blocking(move || server.terminate())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "exit status {status}");
    let body = in_flight.await.unwrap();
    assert!(
        body["choices"][0]["message"]["content"].is_string(),
        "{body}"
    );
    let refused = reqwest::get(format!("{base}/healthz")).await;
    assert!(refused.is_err(), "a stopped server must refuse connections");
}

/// Regression: the SIGTERM handler was registered only once the server
/// ran, after it announced that it listened, so a stop sent right after
/// readiness (a supervisor, a test harness) killed it by the signal's
/// default action. Each start here is stopped the moment it listens.
#[tokio::test(flavor = "multi_thread")]
async fn a_sigterm_right_after_listening_stops_cleanly() {
    let up = warden_tests::upstream::Upstream::start().await;
    for _ in 0..3 {
        let server = Server::start_with(warden_tests::Options {
            config: up.model_config(),
            ..warden_tests::Options::default()
        })
        .unwrap();
        let status = server.terminate().unwrap();
        assert!(status.success(), "{status}");
    }
}
