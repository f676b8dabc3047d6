//! `POST /v1/chat/completions`, plain and streamed (SSE), governed: every
//! message is checked at the `input` stage before the model sees it, the
//! answer at `output` (streamed answers through a hold-back buffer), and
//! tool calls the model proposes at `tool_call`. Each check is audited.

use std::convert::Infallible;

use axum::Json;
use axum::extract::{Extension, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::{Stream, StreamExt};

use super::AppState;
use super::error::ApiError;
use super::json::ApiJson;
use super::request_log::RequestRecord;
use super::sse::ChunkWriter;
use super::wire::{
    ChatCompletionRequest, ChatCompletionResponse, ResponseMessage, wire_tool_calls,
};
use crate::keys::Principal;
use warden_governance::{Checked, Governor};
use warden_llm::{ChatRequest, EventStream, StreamEvent, ToolCall};
use warden_policy::stream::{Release, StreamGuard};
use warden_policy::{Action, Decision, Stage, Subject};

pub async fn completions(
    State(state): State<AppState>,
    Extension(record): Extension<RequestRecord>,
    Extension(principal): Extension<Principal>,
    ApiJson(body): ApiJson<ChatCompletionRequest>,
) -> Result<Response, ApiError> {
    if let Some(name) = body.model.strip_prefix("agent:") {
        record.set_model(&body.model, body.stream);
        let name = name.to_owned();
        return super::agent_chat::completions(state, principal, body, &name).await;
    }
    let backend = state
        .registry
        .get(&body.model)
        .ok_or_else(|| ApiError::model_not_found(&body.model))?;
    let mut request = body.validate(state.limits)?;
    record.set_model(&body.model, body.stream);
    let id = format!("chatcmpl-{}", uuid::Uuid::new_v4().simple());
    let created = chrono::Utc::now().timestamp();
    let subject = Subject {
        key: Some(principal.name.clone()),
        channel: Some("api".into()),
        ..Subject::default()
    };
    govern_input(&state.governor, &mut request, &subject, &id).await?;

    if !body.stream {
        let mut out = backend.chat(request).await?;
        if let Some(content) = &out.content {
            let checked = check(&state.governor, Stage::Output, content, &subject, &id).await?;
            out.content = Some(checked.decision.text(content).to_owned());
        }
        govern_tool_calls(&state.governor, &mut out.tool_calls, &subject, &id).await?;
        record.set_tokens(out.usage.prompt_tokens, out.usage.completion_tokens);
        return Ok(Json(ChatCompletionResponse::single(
            id,
            created,
            body.model,
            ResponseMessage::assistant(out.content, wire_tool_calls(&out.tool_calls)),
            out.finish_reason,
            out.usage,
        ))
        .into_response());
    }

    let include_usage = body.include_usage();
    let events = backend.chat_stream(request).await?;
    let guard = StreamGuard::new(
        state.governor.store.current(),
        Stage::Output,
        subject.clone(),
        state.stream_hold_back,
    );
    let sse = sse_events(
        SseContext {
            id: id.clone(),
            chunks: ChunkWriter::new(id, created, body.model),
            include_usage,
            record,
            governor: state.governor.clone(),
            guard,
            subject,
        },
        events,
    );
    Ok(Sse::new(sse)
        .keep_alive(KeepAlive::default())
        .into_response())
}

struct SseContext {
    id: String,
    chunks: ChunkWriter,
    include_usage: bool,
    record: RequestRecord,
    governor: std::sync::Arc<Governor>,
    guard: StreamGuard,
    subject: Subject,
}

impl SseContext {
    fn error(&self, err: &ApiError) -> Event {
        self.record.set_status(err.status.as_u16());
        ChunkWriter::error(err)
    }

    /// Audits a decision that stops the stream and turns it into the
    /// error event the client receives.
    async fn stopped(&self, decision: &Decision) -> Event {
        match self
            .governor
            .record(decision, &self.subject, Some(&self.id))
            .await
        {
            Ok(seq) => self.error(&blocked(decision, seq)),
            Err(e) => self.error(&ApiError::from(e)),
        }
    }

    /// Records the decision on what the stream received when it ends early
    /// (upstream error, client gone): text was released, so it is audited.
    async fn record_partial(&self) {
        let bundle = self.guard.bundle().clone();
        let decision = self
            .governor
            .evaluate(&bundle, Stage::Output, self.guard.text(), &self.subject)
            .await;
        if let Err(e) = self
            .governor
            .record(&decision, &self.subject, Some(&self.id))
            .await
        {
            tracing::error!(error = %e, "cannot record the decision on an interrupted stream");
        }
    }

    /// The final check on the whole answer: audited once, then whatever the
    /// guard still holds is released (redacted), or the stream is stopped.
    async fn finish_output(&mut self) -> Result<Option<Event>, Event> {
        let bundle = self.guard.bundle().clone();
        let decision = self
            .governor
            .evaluate(&bundle, Stage::Output, self.guard.text(), &self.subject)
            .await;
        let seq = match self
            .governor
            .record(&decision, &self.subject, Some(&self.id))
            .await
        {
            Ok(seq) => seq,
            Err(e) => return Err(self.error(&ApiError::from(e))),
        };
        match self.guard.finish(&decision) {
            Release::Text(t) if t.is_empty() => Ok(None),
            Release::Text(t) => Ok(Some(self.chunks.content(t))),
            Release::Stopped(d) => Err(self.error(&blocked(&d, seq))),
        }
    }
}

/// Turns backend events into OpenAI chunks: a role chunk, content deltas,
/// tool calls, a finish chunk, an optional usage chunk, then `[DONE]`.
fn sse_events(
    mut ctx: SseContext,
    mut events: EventStream,
) -> impl Stream<Item = Result<Event, Infallible>> {
    let events = warden_llm::task_stream::task_stream(16, move |tx| async move {
        if tx.send(ctx.chunks.role()).await.is_err() {
            return;
        }
        // `events` is kept out of `ctx` (a boxed stream is not `Sync`, and
        // `ctx` is borrowed across awaits); dropping it on return cancels
        // generation.
        while let Some(event) = events.next().await {
            let out = match event {
                Ok(StreamEvent::Content(text)) => match ctx.guard.push(&text) {
                    Release::Text(t) if t.is_empty() => continue,
                    Release::Text(t) => ctx.chunks.content(t),
                    Release::Stopped(d) => {
                        let _ = tx.send(ctx.stopped(&d).await).await;
                        return;
                    }
                },
                Ok(StreamEvent::ToolCalls(mut calls)) => {
                    if let Err(e) =
                        govern_tool_calls(&ctx.governor, &mut calls, &ctx.subject, &ctx.id).await
                    {
                        let _ = tx.send(ctx.error(&e)).await;
                        return;
                    }
                    ctx.chunks.tool_calls(calls)
                }
                Ok(StreamEvent::Done {
                    finish_reason,
                    usage,
                }) => {
                    match ctx.finish_output().await {
                        Ok(Some(rest)) => {
                            if tx.send(rest).await.is_err() {
                                return;
                            }
                        }
                        Ok(None) => {}
                        Err(stop) => {
                            let _ = tx.send(stop).await;
                            return;
                        }
                    }
                    ctx.record
                        .set_tokens(usage.prompt_tokens, usage.completion_tokens);
                    if tx.send(ctx.chunks.finish(finish_reason)).await.is_err() {
                        return;
                    }
                    if ctx.include_usage && tx.send(ctx.chunks.usage(usage)).await.is_err() {
                        return;
                    }
                    break;
                }
                Err(e) => {
                    ctx.record_partial().await;
                    let _ = tx.send(ctx.error(&ApiError::from(e))).await;
                    return;
                }
            };
            if tx.send(out).await.is_err() {
                // Client went away: what was released is still recorded.
                ctx.record_partial().await;
                return;
            }
        }
        let _ = tx.send(ChunkWriter::done()).await;
    });
    events.map(Ok)
}

/// The error a stopping decision becomes. `require_approval` cannot pause a
/// plain completion (there is no run to resume), so it stops it too.
fn blocked(d: &Decision, audit_seq: i64) -> ApiError {
    ApiError::policy_blocked(d, audit_seq)
}

async fn check(
    governor: &Governor,
    stage: Stage,
    text: &str,
    subject: &Subject,
    run_id: &str,
) -> Result<Checked, ApiError> {
    let checked = governor.check(stage, text, subject, Some(run_id)).await?;
    if matches!(
        checked.decision.decision,
        Action::Block | Action::RequireApproval
    ) {
        return Err(blocked(&checked.decision, checked.audit_seq));
    }
    Ok(checked)
}

/// Every message the client sent passes the `input` stage; redactions
/// change what the model sees.
async fn govern_input(
    governor: &Governor,
    request: &mut ChatRequest,
    subject: &Subject,
    run_id: &str,
) -> Result<(), ApiError> {
    for message in &mut request.messages {
        if let Some(content) = message.content.as_mut().filter(|c| !c.is_empty()) {
            let checked = check(governor, Stage::Input, content, subject, run_id).await?;
            if let Some(redacted) = checked.decision.redacted {
                *content = redacted;
            }
        }
        // Tool calls replayed in the history reach the model too.
        for call in &mut message.tool_calls {
            let arguments = canonical_json(&call.arguments);
            let checked = check(governor, Stage::Input, &arguments, subject, run_id).await?;
            call.arguments = checked.decision.text(&arguments).to_owned();
        }
    }
    Ok(())
}

/// JSON text as serde_json writes it: escapes such as `\u004f` or `\/`
/// decoded, so detectors see what the tool will receive. Text that is not
/// JSON is checked as it is.
pub fn canonical_json(text: &str) -> String {
    serde_json::from_str::<serde_json::Value>(text)
        .map_or_else(|_| text.to_owned(), |v| v.to_string())
}

/// Tool calls the model proposes pass the `tool_call` stage (arguments as
/// JSON text, the function name as the subject's tool).
async fn govern_tool_calls(
    governor: &Governor,
    calls: &mut [ToolCall],
    subject: &Subject,
    run_id: &str,
) -> Result<(), ApiError> {
    for call in calls {
        let subject = Subject {
            tool: Some(call.name.clone()),
            ..subject.clone()
        };
        let arguments = canonical_json(&call.arguments);
        let checked = check(governor, Stage::ToolCall, &arguments, &subject, run_id).await?;
        call.arguments = checked.decision.text(&arguments).to_owned();
    }
    Ok(())
}
