//! `POST /v1/chat/completions`, plain and streamed (SSE).

use std::convert::Infallible;
use std::time::Instant;

use axum::Json;
use axum::extract::{Extension, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::{Stream, StreamExt};

use super::AppState;
use super::error::ApiError;
use super::json::ApiJson;
use super::request_log::RequestRecord;
use super::wire::{
    ChatCompletionChunk, ChatCompletionRequest, ChatCompletionResponse, Choice, ChunkChoice,
    ChunkToolCall, Delta, ResponseMessage, WireFunctionCall, WireUsage, wire_tool_calls,
};
use crate::llm::{EventStream, StreamEvent, Usage};
use crate::metrics::Metrics;

pub async fn completions(
    State(state): State<AppState>,
    Extension(record): Extension<RequestRecord>,
    ApiJson(body): ApiJson<ChatCompletionRequest>,
) -> Result<Response, ApiError> {
    let backend = state
        .registry
        .get(&body.model)
        .ok_or_else(|| ApiError::model_not_found(&body.model))?;
    let request = body.validate(state.limits)?;
    record.set_model(&body.model, body.stream);
    let id = format!("chatcmpl-{}", uuid::Uuid::new_v4().simple());
    let created = chrono::Utc::now().timestamp();
    let start = Instant::now();

    if !body.stream {
        let out = backend.chat(request).await?;
        let elapsed = start.elapsed().as_secs_f64();
        state.metrics.record_tokens(
            &body.model,
            out.usage.prompt_tokens,
            out.usage.completion_tokens,
            elapsed,
        );
        record.set_tokens(out.usage.prompt_tokens, out.usage.completion_tokens);
        return Ok(Json(ChatCompletionResponse {
            id,
            object: "chat.completion",
            created,
            model: body.model,
            choices: vec![Choice {
                index: 0,
                message: ResponseMessage {
                    role: "assistant",
                    content: out.content,
                    tool_calls: wire_tool_calls(&out.tool_calls),
                },
                finish_reason: out.finish_reason,
                logprobs: None,
            }],
            usage: out.usage.into(),
            system_fingerprint: None,
        })
        .into_response());
    }

    let include_usage = body
        .stream_options
        .as_ref()
        .is_some_and(|o| o.include_usage);
    let events = backend.chat_stream(request).await?;
    let sse = sse_events(SseContext {
        id,
        created,
        model: body.model,
        include_usage,
        events,
        record,
        metrics: state.metrics.clone(),
        start,
    });
    Ok(Sse::new(sse)
        .keep_alive(KeepAlive::default())
        .into_response())
}

struct SseContext {
    id: String,
    created: i64,
    model: String,
    include_usage: bool,
    events: EventStream,
    record: RequestRecord,
    metrics: std::sync::Arc<Metrics>,
    start: Instant,
}

impl SseContext {
    fn chunk(&self, delta: Delta, finish: Option<crate::llm::FinishReason>) -> Event {
        self.event(ChatCompletionChunk {
            id: self.id.clone(),
            object: "chat.completion.chunk",
            created: self.created,
            model: self.model.clone(),
            choices: vec![ChunkChoice {
                index: 0,
                delta,
                finish_reason: finish,
                logprobs: None,
            }],
            usage: None,
        })
    }

    fn usage_chunk(&self, usage: Usage) -> Event {
        self.event(ChatCompletionChunk {
            id: self.id.clone(),
            object: "chat.completion.chunk",
            created: self.created,
            model: self.model.clone(),
            choices: Vec::new(),
            usage: Some(WireUsage::from(usage)),
        })
    }

    fn event(&self, chunk: ChatCompletionChunk) -> Event {
        Event::default().data(serde_json::to_string(&chunk).unwrap_or_default())
    }
}

/// Turns backend events into OpenAI chunks: a role chunk, content deltas,
/// tool calls, a finish chunk, an optional usage chunk, then `[DONE]`.
fn sse_events(mut ctx: SseContext) -> impl Stream<Item = Result<Event, Infallible>> {
    let events = crate::task_stream::task_stream(16, move |tx| async move {
        let first = Delta {
            role: Some("assistant"),
            content: Some(String::new()),
            tool_calls: None,
        };
        if tx.send(ctx.chunk(first, None)).await.is_err() {
            return;
        }
        while let Some(event) = ctx.events.next().await {
            let out = match event {
                Ok(StreamEvent::Content(text)) => ctx.chunk(
                    Delta {
                        content: Some(text),
                        ..Delta::default()
                    },
                    None,
                ),
                Ok(StreamEvent::ToolCalls(calls)) => {
                    let calls = calls
                        .into_iter()
                        .enumerate()
                        .map(|(i, c)| ChunkToolCall {
                            index: i as u32,
                            id: c.id,
                            kind: "function",
                            function: WireFunctionCall {
                                name: c.name,
                                arguments: c.arguments,
                            },
                        })
                        .collect();
                    ctx.chunk(
                        Delta {
                            tool_calls: Some(calls),
                            ..Delta::default()
                        },
                        None,
                    )
                }
                Ok(StreamEvent::Done {
                    finish_reason,
                    usage,
                }) => {
                    let elapsed = ctx.start.elapsed().as_secs_f64();
                    ctx.metrics.record_tokens(
                        &ctx.model,
                        usage.prompt_tokens,
                        usage.completion_tokens,
                        elapsed,
                    );
                    ctx.record
                        .set_tokens(usage.prompt_tokens, usage.completion_tokens);
                    if tx
                        .send(ctx.chunk(Delta::default(), Some(finish_reason)))
                        .await
                        .is_err()
                    {
                        return;
                    }
                    if ctx.include_usage && tx.send(ctx.usage_chunk(usage)).await.is_err() {
                        return;
                    }
                    break;
                }
                Err(e) => {
                    let err = ApiError::from(e);
                    ctx.record.set_status(err.status.as_u16());
                    let _ = tx.send(Event::default().data(err.body().to_string())).await;
                    return;
                }
            };
            if tx.send(out).await.is_err() {
                // Client went away: dropping `ctx.events` cancels generation.
                return;
            }
        }
        let _ = tx.send(Event::default().data("[DONE]")).await;
    });
    events.map(Ok)
}
