//! A second Warden uses the first one's `/v1` as its remote backend.

use async_openai::types::chat::ChatCompletionStreamOptions;
use futures::StreamExt;
use warden_tests::{MODEL, Options, Server, greedy};

#[tokio::test]
async fn instance_b_serves_instance_a_through_the_remote_backend() {
    let a = Server::start().unwrap();
    let b = Server::start_with(Options {
        config: format!(
            "[[models]]\nbackend = \"openai\"\nid = \"via-a\"\nbase_url = \"{0}\"\napi_key_env = \"UPSTREAM_KEY\"\nupstream_model = \"{MODEL}\"\n\
             [[models]]\nbackend = \"openai\"\nid = \"missing-upstream\"\nbase_url = \"{0}\"\napi_key_env = \"UPSTREAM_KEY\"\nupstream_model = \"nope\"\n\
             [[models]]\nbackend = \"openai\"\nid = \"down\"\nbase_url = \"http://127.0.0.1:9/v1\"\n",
            a.v1()
        ),
        env: vec![("UPSTREAM_KEY".into(), a.key().to_owned())],
        ..Options::default()
    })
    .unwrap();
    let client = b.openai();
    let models = client.models().list().await.unwrap();
    let ids: Vec<&str> = models.data.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(ids, ["down", "missing-upstream", "via-a"]);

    let direct = a
        .openai()
        .chat()
        .create(greedy(MODEL, "Name a fruit.", 8).build().unwrap())
        .await
        .unwrap();
    let relayed = client
        .chat()
        .create(greedy("via-a", "Name a fruit.", 8).build().unwrap())
        .await
        .unwrap();
    assert_eq!(relayed.model, "via-a");
    assert_eq!(
        relayed.choices[0].message.content, direct.choices[0].message.content,
        "greedy output is the same through B"
    );
    assert_eq!(
        relayed.usage.unwrap().completion_tokens,
        direct.usage.unwrap().completion_tokens
    );

    let mut stream = client
        .chat()
        .create_stream(
            greedy("via-a", "Name a fruit.", 8)
                .stream(true)
                .stream_options(ChatCompletionStreamOptions {
                    include_usage: Some(true),
                    include_obfuscation: None,
                })
                .build()
                .unwrap(),
        )
        .await
        .unwrap();
    let mut text = String::new();
    let mut usage = None;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.unwrap();
        usage = usage.or(chunk.usage);
        for c in chunk.choices {
            text.push_str(c.delta.content.as_deref().unwrap_or(""));
        }
    }
    assert_eq!(Some(text), direct.choices[0].message.content);
    assert!(usage.unwrap().completion_tokens >= 1);

    // An upstream rejection reaches B's client as a 400 naming the upstream
    // reason; an unreachable upstream is a 502. B keeps serving after both.
    let http = reqwest::Client::new();
    for (model, status, needle) in [
        ("missing-upstream", 400, "upstream rejected the request"),
        ("down", 502, "upstream error"),
    ] {
        let resp = http
            .post(format!("{}/chat/completions", b.v1()))
            .bearer_auth(b.key())
            .json(&serde_json::json!({"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), status, "{model}");
        let body: serde_json::Value = resp.json().await.unwrap();
        assert!(
            body["error"]["message"].as_str().unwrap().contains(needle),
            "{body}"
        );
    }
    let still = client
        .chat()
        .create(greedy("via-a", "Hi", 2).build().unwrap())
        .await;
    assert!(still.is_ok());
}
