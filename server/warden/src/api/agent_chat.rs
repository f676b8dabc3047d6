//! `POST /v1/chat/completions` with `model: "agent:<name>"`: the last user
//! message runs the agent, and its answer comes back as a chat completion,
//! so any OpenAI client can talk to agents. The run's steps are in the
//! native API (`GET /api/runs/{id}`; the completion id is the run id).

use std::convert::Infallible;

use axum::Json;
use axum::http::StatusCode;
use axum::response::sse::{KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;

use super::AppState;
use super::error::ApiError;
use super::sse::ChunkWriter;
use super::wire::{ChatCompletionRequest, ChatCompletionResponse, ResponseMessage};
use crate::keys::Principal;
use warden_agents::{CatalogError, RunReport, RunRequest, RunStatus};
use warden_llm::{FinishReason, Role, Usage};

pub async fn completions(
    state: AppState,
    principal: Principal,
    body: ChatCompletionRequest,
    name: &str,
) -> Result<Response, ApiError> {
    let model = body.model.clone();
    let agents = state.agents.clone();
    let agent = agents.catalog.get(name).await.map_err(|e| match e {
        // On /v1 an unknown agent is an unknown model, in OpenAI's shape.
        CatalogError::NotFound(_) => ApiError::model_not_found(&model),
        e => e.into(),
    })?;
    let request = body.validate(state.limits)?;
    if request
        .messages
        .iter()
        .filter_map(|m| m.content.as_deref())
        .map(str::len)
        .sum::<usize>()
        > 256 * 1024
    {
        return Err(ApiError::invalid_param(
            "messages",
            "an agent conversation is limited to 256 KiB of text",
        ));
    }
    let last_user = request
        .messages
        .iter()
        .rposition(|m| m.role == Role::User)
        .ok_or_else(|| ApiError::invalid_param("messages", "an agent needs a user message"))?;
    let message = request.messages[last_user]
        .content
        .clone()
        .filter(|c| !c.trim().is_empty())
        .ok_or_else(|| ApiError::invalid_param("messages", "the last user message is empty"))?;
    // Earlier user and assistant turns are the conversation so far; system
    // messages are the agent's own to set, tool messages belong to runs.
    let history: Vec<_> = request.messages[..last_user]
        .iter()
        .filter(|m| matches!(m.role, Role::User | Role::Assistant))
        .cloned()
        .collect();
    let run = RunRequest {
        agent,
        message,
        subject: Some(principal.name.clone()),
        channel: "api".into(),
        id: Some(warden_agents::runner::new_run_id()),
        history,
        answer_stream: None,
    };
    let run_id = run.id.clone().unwrap_or_default();
    let created = chrono::Utc::now().timestamp();
    if !body.stream {
        // Spawned: a client that goes away does not cut the run short.
        let runner = agents.clone();
        let report = tokio::spawn(async move { runner.runner.run(run, None).await }).await??;
        let answer = outcome(&report)?;
        return Ok(Json(ChatCompletionResponse::single(
            report.id.clone(),
            created,
            model,
            ResponseMessage::assistant(Some(answer), Vec::new()),
            FinishReason::Stop,
            usage(&report),
        ))
        .into_response());
    }
    let include_usage = body.include_usage();
    let chunks = ChunkWriter::new(run_id, created, model);
    let events = warden_llm::task_stream::task_stream(8, move |tx| async move {
        // The role first, so clients see the stream open while the agent works.
        if tx.send(chunks.role()).await.is_err() {
            return;
        }
        // The run is its own task: the stream ending early does not stop it.
        // A planner's final answer arrives on `answers` as it is written
        // (already checked); anything else is sent when the run ends.
        let (answer_tx, mut answers) = tokio::sync::mpsc::unbounded_channel::<String>();
        let mut run = run;
        run.answer_stream = Some(answer_tx);
        let mut task = tokio::spawn(async move { agents.runner.run(run, None).await });
        let mut streamed = String::new();
        let finished = loop {
            tokio::select! {
                piece = answers.recv() => match piece {
                    Some(p) => {
                        if tx.send(chunks.content(p.clone())).await.is_err() {
                            return;
                        }
                        streamed.push_str(&p);
                    }
                    None => break (&mut task).await,
                },
                r = &mut task => break r,
            }
        };
        while let Ok(p) = answers.try_recv() {
            if tx.send(chunks.content(p.clone())).await.is_err() {
                return;
            }
            streamed.push_str(&p);
        }
        let report = match finished {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => {
                let _ = tx.send(ChunkWriter::error(&e.into())).await;
                return;
            }
            // The run task panicked or was aborted.
            Err(e) => {
                let _ = tx.send(ChunkWriter::error(&e.into())).await;
                return;
            }
        };
        let answer = match outcome(&report) {
            Ok(a) => a,
            Err(e) => {
                let _ = tx.send(ChunkWriter::error(&e)).await;
                return;
            }
        };
        // What was not streamed (native agents, or a final that was not
        // streamed) is sent now, in word-sized pieces.
        let rest = answer
            .strip_prefix(streamed.as_str())
            .unwrap_or(if streamed.is_empty() { &answer } else { "" });
        for piece in rest.split_inclusive(' ') {
            if tx.send(chunks.content(piece.to_owned())).await.is_err() {
                return;
            }
        }
        if tx.send(chunks.finish(FinishReason::Stop)).await.is_err() {
            return;
        }
        if include_usage {
            let _ = tx.send(chunks.usage(usage(&report))).await;
        }
        let _ = tx.send(ChunkWriter::done()).await;
    });
    Ok(Sse::new(events.map(Ok::<_, Infallible>))
        .keep_alive(KeepAlive::default())
        .into_response())
}

/// The answer, or the error an OpenAI client should see.
fn outcome(report: &RunReport) -> Result<String, ApiError> {
    let why = report.error.as_deref().unwrap_or("no answer");
    match report.status {
        RunStatus::Completed => Ok(report.answer.clone().unwrap_or_default()),
        RunStatus::Blocked => Err(ApiError::bad_request(format!("{why} (run {})", report.id))
            .with_code("content_policy_violation")),
        RunStatus::AwaitingApproval => Err(ApiError::new(
            StatusCode::ACCEPTED,
            "approval_required",
            format!(
                "run {} is waiting for approval: {why}; approve it with POST /api/runs/{}/approve",
                report.id, report.id
            ),
        )
        .with_code("approval_required")),
        _ => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "agent_error",
            format!(
                "the agent run {} ended {}: {why}",
                report.id,
                report.status.as_str()
            ),
        )
        .with_code("agent_run_failed")),
    }
}

fn usage(report: &RunReport) -> Usage {
    let mut u = Usage::default();
    for s in report
        .steps
        .iter()
        .filter(|s| s.kind == warden_agents::StepKind::Model)
    {
        u.prompt_tokens += s.detail["prompt_tokens"].as_u64().unwrap_or(0) as u32;
        u.completion_tokens += s.detail["completion_tokens"].as_u64().unwrap_or(0) as u32;
    }
    u
}
