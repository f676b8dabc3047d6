//! The OpenAI-compatible surface, driven with the async-openai crate.

use async_openai::types::chat::{
    ChatCompletionMessageToolCalls, ChatCompletionStreamOptions, ChatCompletionTool,
    ChatCompletionToolChoiceOption, ChatCompletionTools, CreateChatCompletionRequestArgs,
    FinishReason, FunctionObjectArgs, ResponseFormat, ResponseFormatJsonSchema, ToolChoiceOptions,
};
use futures::StreamExt;
use serde_json::{Value, json};
use warden_tests::{MODEL, Server, greedy, user};

#[tokio::test]
async fn models_are_listed_and_fetchable() {
    let server = Server::start().unwrap();
    let client = server.openai();
    let list = client.models().list().await.unwrap();
    assert_eq!(list.data.len(), 1);
    assert_eq!(list.data[0].id, MODEL);
    let one = client.models().retrieve(MODEL).await.unwrap();
    assert_eq!(one.owned_by, "warden");
}

#[tokio::test]
async fn chat_completion_returns_text_usage_and_respects_max_tokens() {
    let server = Server::start().unwrap();
    let request = greedy(MODEL, "Write one sentence about the sea.", 12)
        .build()
        .unwrap();
    let response = server.openai().chat().create(request).await.unwrap();
    let choice = &response.choices[0];
    let text = choice.message.content.clone().unwrap_or_default();
    assert!(!text.trim().is_empty(), "empty answer");
    let usage = response.usage.unwrap();
    assert!(usage.prompt_tokens > 5);
    assert!(
        usage.completion_tokens >= 1 && usage.completion_tokens <= 12,
        "{usage:?}"
    );
    assert_eq!(
        usage.total_tokens,
        usage.prompt_tokens + usage.completion_tokens
    );
    if usage.completion_tokens == 12 {
        assert_eq!(choice.finish_reason, Some(FinishReason::Length));
    }
}

#[tokio::test]
async fn greedy_and_seeded_sampling_are_reproducible() {
    let server = Server::start().unwrap();
    let client = server.openai();
    for (temperature, seed) in [(0.0f32, None), (0.9f32, Some(1234i64))] {
        let mut answers = Vec::new();
        for _ in 0..2 {
            let mut args = CreateChatCompletionRequestArgs::default();
            args.model(MODEL)
                .messages(vec![user("Name three colours.")])
                .max_completion_tokens(16u32)
                .temperature(temperature);
            if let Some(seed) = seed {
                #[allow(deprecated)]
                args.seed(seed);
            }
            let r = client.chat().create(args.build().unwrap()).await.unwrap();
            answers.push(r.choices[0].message.content.clone());
        }
        assert_eq!(
            answers[0], answers[1],
            "temperature {temperature} seed {seed:?}"
        );
    }
}

#[tokio::test]
async fn streaming_sends_chunks_then_usage_then_done() {
    let server = Server::start().unwrap();
    let request = greedy(MODEL, "Count from one to five.", 20)
        .stream(true)
        .stream_options(ChatCompletionStreamOptions {
            include_usage: Some(true),
            include_obfuscation: None,
        })
        .build()
        .unwrap();
    let mut stream = server.openai().chat().create_stream(request).await.unwrap();
    let mut text = String::new();
    let mut content_chunks = 0;
    let mut finish = None;
    let mut usage = None;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.unwrap();
        if let Some(u) = chunk.usage {
            assert!(chunk.choices.is_empty(), "usage chunk has no choices");
            usage = Some(u);
        }
        for c in chunk.choices {
            if let Some(t) = c.delta.content.filter(|t| !t.is_empty()) {
                text.push_str(&t);
                content_chunks += 1;
            }
            if c.finish_reason.is_some() {
                finish = c.finish_reason;
            }
        }
    }
    assert!(
        content_chunks > 1,
        "expected several chunks, got {content_chunks}: {text:?}"
    );
    assert!(finish.is_some());
    let usage = usage.expect("include_usage sends a usage chunk");
    assert!(usage.completion_tokens as usize >= content_chunks.min(20) / 2);

    // The same request without include_usage sends no usage chunk.
    let plain = CreateChatCompletionRequestArgs::default()
        .model(MODEL)
        .messages(vec![user("Hi")])
        .max_completion_tokens(4u32)
        .stream(true)
        .build()
        .unwrap();
    let chunks: Vec<_> = server
        .openai()
        .chat()
        .create_stream(plain)
        .await
        .unwrap()
        .collect()
        .await;
    assert!(chunks.iter().all(|c| c.as_ref().unwrap().usage.is_none()));
}

#[tokio::test]
async fn json_schema_output_always_parses_and_matches_the_schema() {
    let server = Server::start().unwrap();
    let schema = json!({
        "type": "object",
        "properties": {
            "name": {"type": "string", "maxLength": 30},
            "age": {"type": "integer", "minimum": 0, "maximum": 150},
            "city": {"type": "string", "maxLength": 30}
        },
        "required": ["name", "age", "city"],
        "additionalProperties": false
    });
    for prompt in [
        "Invent a person who lives in Paris.",
        "Describe Bob, 42, from Oslo.",
        "Tell me a joke.",
    ] {
        let request = greedy(MODEL, prompt, 80)
            .response_format(ResponseFormat::JsonSchema {
                json_schema: ResponseFormatJsonSchema {
                    name: "person".into(),
                    description: None,
                    schema: schema.clone(),
                    strict: Some(true),
                },
            })
            .build()
            .unwrap();
        let response = server.openai().chat().create(request).await.unwrap();
        let text = response.choices[0].message.content.clone().unwrap();
        let v: Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{prompt}: {e}: {text}"));
        let obj = v.as_object().unwrap();
        assert_eq!(obj.len(), 3, "{text}");
        assert!(obj["name"].is_string() && obj["city"].is_string());
        assert!((0..=150).contains(&obj["age"].as_i64().unwrap()));
        // Generation stops when the JSON closes instead of running to max_tokens.
        let usage = response.usage.unwrap();
        assert!(usage.completion_tokens < 80, "ran to max_tokens: {usage:?}");
        assert_eq!(response.choices[0].finish_reason, Some(FinishReason::Stop));
    }
}

#[tokio::test]
async fn required_tool_choice_returns_a_tool_call_in_openai_shape() {
    let server = Server::start().unwrap();
    let tool = ChatCompletionTools::Function(ChatCompletionTool {
        function: FunctionObjectArgs::default()
            .name("get_weather")
            .description("Current weather for a place")
            .parameters(json!({"type": "object", "properties": {"place": {"type": "string", "maxLength": 40}}, "required": ["place"]}))
            .build()
            .unwrap(),
    });
    let request = greedy(MODEL, "What is the weather in Boston?", 64)
        .tools(vec![tool])
        .tool_choice(ChatCompletionToolChoiceOption::Mode(
            ToolChoiceOptions::Required,
        ))
        .build()
        .unwrap();
    let response = server.openai().chat().create(request).await.unwrap();
    let choice = &response.choices[0];
    assert_eq!(choice.finish_reason, Some(FinishReason::ToolCalls));
    let calls = choice.message.tool_calls.as_ref().expect("tool_calls");
    let ChatCompletionMessageToolCalls::Function(call) = &calls[0] else {
        panic!("expected a function call");
    };
    assert_eq!(call.function.name, "get_weather");
    assert!(call.id.starts_with("call_"));
    let args: Value = serde_json::from_str(&call.function.arguments).unwrap();
    assert!(args["place"].as_str().unwrap().contains("Boston"), "{args}");
    assert!(response.usage.unwrap().completion_tokens < 64);
}

#[tokio::test]
async fn metrics_move_after_requests() {
    let server = Server::start().unwrap();
    let http = reqwest::Client::new();
    let before = http
        .get(format!("{}/metrics", server.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!before.contains("warden_completion_tokens_total{"));
    let request = CreateChatCompletionRequestArgs::default()
        .model(MODEL)
        .messages(vec![user("Hello")])
        .max_completion_tokens(5u32)
        .build()
        .unwrap();
    server.openai().chat().create(request).await.unwrap();
    let after = http
        .get(format!("{}/metrics", server.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        after.contains(
            "warden_http_requests_total{route=\"/v1/chat/completions\",status=\"200\"} 1"
        ),
        "{after}"
    );
    assert!(after.contains(&format!(
        "warden_completion_tokens_total{{model=\"{MODEL}\"}}"
    )));
    assert!(after.contains("warden_completion_tokens_per_second_count"));
    assert!(after.contains(
        "warden_http_request_duration_seconds_bucket{route=\"/v1/chat/completions\",le=\"+Inf\"} 1"
    ));
}

#[tokio::test]
async fn concurrent_requests_all_complete() {
    let server = Server::start().unwrap();
    let client = server.openai();
    let requests = (0..6).map(|i| {
        let client = client.clone();
        async move {
            let request = CreateChatCompletionRequestArgs::default()
                .model(MODEL)
                .messages(vec![user(&format!("Say the number {i}."))])
                .max_completion_tokens(8u32)
                .build()
                .unwrap();
            client.chat().create(request).await
        }
    });
    let results = futures::future::join_all(requests).await;
    for r in results {
        assert!(r.unwrap().usage.unwrap().completion_tokens >= 1);
    }
}
