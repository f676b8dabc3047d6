//! One run's loop: plan with the model, call tools in the sandbox, answer;
//! every model output, tool call, tool result and the final answer pass the
//! policies (and so the audit log) on the way.
//!
//! What the model gets back after a step is always a message, never a
//! crash: malformed steps, unknown tools, invalid arguments, tool errors
//! and policy blocks on tool calls or results are reported to it, and the
//! loop goes on until it answers, pauses for an approver, reaches
//! `max_steps`, or the run's timeout expires.

use std::sync::Arc;
use std::time::Instant;

use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::Runner;
use super::answer_stream::AnswerStream;
use super::planner::{self, Offer, Step};
use super::runs::{RunStatus, StepRecord};
use super::spec::{AgentSpec, ToolCalling};
use super::state::{LoopState, PendingStep, Resolution, SavedMessage};
use super::tools::ResolvedTool;
use crate::governance::{Action, Checked, Stage, Subject};
use crate::llm::{
    Backend, ChatMessage, ChatRequest, ResponseFormat, Role, ToolCall, ToolChoice, ToolSpec,
};

/// Tool output fed back to the model is cut to this many characters.
const MAX_RESULT_CHARS: usize = 4000;
/// Native steps with more calls than this run none of them.
const MAX_CALLS_PER_STEP: usize = 8;

pub(super) enum End {
    Answer(String),
    Stopped(RunStatus, String),
    /// Waiting for an approver; the state to continue from.
    Paused(Box<LoopState>, String),
}

type Step2<T> = Result<Result<T, End>, sea_orm::DbErr>;

pub(super) struct Run<'a> {
    pub runner: &'a Runner,
    pub id: String,
    pub agent: &'a AgentSpec,
    pub subject: Subject,
    pub steps: Vec<StepRecord>,
    pub events: Option<mpsc::UnboundedSender<StepRecord>>,
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
    /// Where the final answer goes as the model writes it (planner agents).
    pub answer_tx: Option<mpsc::UnboundedSender<String>>,
    /// The answer stream of the model call in progress.
    live: Option<AnswerStream>,
}

impl<'a> Run<'a> {
    pub fn new(
        runner: &'a Runner,
        id: String,
        agent: &'a AgentSpec,
        subject: Subject,
        steps: Vec<StepRecord>,
        events: Option<mpsc::UnboundedSender<StepRecord>>,
    ) -> Self {
        Self {
            runner,
            id,
            agent,
            subject,
            steps,
            events,
            prompt_tokens: 0,
            completion_tokens: 0,
            answer_tx: None,
            live: None,
        }
    }
}

impl Run<'_> {
    pub async fn record(
        &mut self,
        kind: &str,
        detail: Value,
        duration_ms: f64,
        audit_seq: Option<i64>,
    ) -> Result<(), sea_orm::DbErr> {
        let step = StepRecord {
            idx: self.steps.len() as i32,
            kind: kind.to_owned(),
            detail,
            duration_ms,
            audit_seq,
        };
        self.runner.runs.step(&self.id, &step).await?;
        if let Some(tx) = &self.events {
            let _ = tx.send(step.clone());
        }
        self.steps.push(step);
        Ok(())
    }

    /// Checks content at a stage; anything but a plain allow becomes a
    /// `policy` step linked to its audit record. An audit failure stops
    /// the run (nothing acts on an unrecorded decision).
    async fn govern(
        &mut self,
        stage: Stage,
        text: &str,
        tool: Option<&ResolvedTool>,
    ) -> Step2<Checked> {
        let subject = match tool {
            Some(t) => Subject {
                plugin: Some(t.plugin.clone()),
                tool: Some(t.name.clone()),
                effect: Some(t.effect.clone()),
                ..self.subject.clone()
            },
            None => self.subject.clone(),
        };
        let checked = match self
            .runner
            .governor
            .check(stage, text, &subject, Some(&self.id))
            .await
        {
            Ok(c) => c,
            Err(e) => {
                return Ok(Err(End::Stopped(
                    RunStatus::Failed,
                    format!("governance audit log unavailable: {e}"),
                )));
            }
        };
        let d = &checked.decision;
        if d.decision != Action::Allow || !d.matches.is_empty() {
            let rules: Vec<String> = d.matches.iter().map(|m| m.qualified()).collect();
            self.record(
                "policy",
                json!({
                    "stage": stage.as_str(),
                    "decision": d.decision.as_str(),
                    "rules": rules,
                    "message": d.message,
                    "tool": tool.map(|t| &t.name),
                }),
                0.0,
                Some(checked.audit_seq),
            )
            .await?;
        }
        Ok(Ok(checked))
    }

    /// The start of a run: the input check and the opening messages.
    /// `history` is earlier turns of the conversation (user and assistant
    /// messages); each passes the input stage like the new message.
    pub async fn open(
        &mut self,
        tools: &[ResolvedTool],
        history: &[ChatMessage],
        message: &str,
    ) -> Step2<LoopState> {
        let input = match self.govern(Stage::Input, message, None).await? {
            Ok(c) => c,
            Err(end) => return Ok(Err(end)),
        };
        if stops(input.decision.decision) {
            return Ok(Err(End::Stopped(
                RunStatus::Blocked,
                blocked_message(&input),
            )));
        }
        let message = input.decision.text(message);
        // The run keeps the message as the model saw it.
        self.runner.runs.set_input(&self.id, message).await?;
        let mut system = self.agent.system_prompt.clone();
        if let (true, Some(key)) = (self.agent.memory, self.subject.key.clone())
            && let Some(known) = self.runner.memory.prompt(&key).await?
        {
            // Memory is content too: it passes the input stage.
            let checked = match self.govern(Stage::Input, &known, None).await? {
                Ok(c) => c,
                Err(end) => return Ok(Err(end)),
            };
            if !stops(checked.decision.decision) {
                system.push_str("\n\n");
                system.push_str(checked.decision.text(&known));
            }
        }
        if self.agent.tool_calling == ToolCalling::Planner {
            system.push_str("\n\n");
            system.push_str(&planner::instructions(&offers(tools)));
        }
        let mut messages = vec![ChatMessage::new(Role::System, system)];
        for ex in &self.agent.examples {
            messages.push(ChatMessage::new(Role::User, ex.user.clone()));
            messages.push(ChatMessage::new(Role::Assistant, ex.assistant.clone()));
        }
        for turn in history {
            let Some(text) = turn.content.as_deref().filter(|t| !t.is_empty()) else {
                continue;
            };
            let checked = match self.govern(Stage::Input, text, None).await? {
                Ok(c) => c,
                Err(end) => return Ok(Err(end)),
            };
            if stops(checked.decision.decision) {
                return Ok(Err(End::Stopped(
                    RunStatus::Blocked,
                    blocked_message(&checked),
                )));
            }
            messages.push(ChatMessage::new(turn.role, checked.decision.text(text)));
        }
        messages.push(ChatMessage::new(Role::User, message));
        Ok(Ok(LoopState {
            messages: messages.iter().map(SavedMessage::from).collect(),
            question: message.to_owned(),
            ..LoopState::default()
        }))
    }

    /// Runs the loop from `state`; `resolution` answers its pending step.
    pub async fn drive(
        &mut self,
        tools: &[ResolvedTool],
        mut state: LoopState,
        resolution: Option<Resolution>,
    ) -> Result<End, sea_orm::DbErr> {
        let agent = self.agent;
        let backend = match self.backend() {
            Ok(b) => b,
            Err(e) => return Ok(End::Stopped(RunStatus::Failed, e)),
        };
        let first = match (&agent.start_with, state.started) {
            (Some(name), false) => match tools.iter().find(|t| &t.name == name) {
                Some(t) => Some(t.clone()),
                None => {
                    return Ok(End::Stopped(
                        RunStatus::Failed,
                        format!("start_with names {name:?}, which is not among the agent's tools"),
                    ));
                }
            },
            _ => None,
        };
        let mut first = first;
        if let (Some(pending), Some(resolution)) = (state.pending.take(), resolution) {
            let steps: Vec<Step> = pending
                .calls
                .iter()
                .map(|(tool, arguments)| Step::Call {
                    tool: tool.clone(),
                    arguments: arguments.clone(),
                })
                .collect();
            // Every decision taken on this step so far, this one included:
            // a step with two calls needing approval pauses twice, and the
            // first decision must hold when the second comes.
            let mut decisions = pending.decided.clone();
            decisions.push((pending.waiting_index, resolution));
            let replies = match self.call_tools(tools, &steps, &decisions).await? {
                Ok(r) => r,
                // Another call of the same step needs its own approval.
                Err(End::Paused(next, message)) => {
                    let (waiting, waiting_index) = next.pending.map_or_else(
                        || (pending.waiting.clone(), pending.waiting_index),
                        |p| (p.waiting, p.waiting_index),
                    );
                    state.pending = Some(PendingStep {
                        message: message.clone(),
                        waiting,
                        waiting_index,
                        decided: decisions,
                        ..pending
                    });
                    return Ok(End::Paused(Box::new(state), message));
                }
                Err(end) => return Ok(end),
            };
            state.done_calls.extend(pending.calls.iter().cloned());
            self.feed_back(&mut state, &pending.text, &pending.tool_calls, replies);
        }
        while state.model_calls < agent.max_steps {
            state.model_calls += 1;
            let messages: Vec<ChatMessage> = state.messages.iter().map(ChatMessage::from).collect();
            let request = match (state.answer_only, first.take()) {
                (true, _) => self.request(&[], &messages, true),
                (false, Some(t)) => self.request(std::slice::from_ref(&t), &messages, false),
                (false, None) => self.request(tools, &messages, true),
            };
            state.answer_only = false;
            state.started = true;
            let started = Instant::now();
            let output = match self.call_model(backend.as_ref(), request).await {
                Ok(o) => o,
                Err(e) => return Ok(End::Stopped(RunStatus::Failed, format!("model error: {e}"))),
            };
            self.prompt_tokens += output.usage.prompt_tokens;
            self.completion_tokens += output.usage.completion_tokens;
            let model_ms = started.elapsed().as_secs_f64() * 1000.0;
            // Checked before anything uses it, the step's record included:
            // redactions change what is stored, streamed and parsed.
            let raw = if agent.tool_calling == ToolCalling::Native && !output.tool_calls.is_empty()
            {
                json!({"content": output.content, "tool_calls": output.tool_calls}).to_string()
            } else {
                output.content.clone().unwrap_or_default()
            };
            let checked = match self.govern(Stage::LlmOutput, &raw, None).await? {
                Ok(c) => c,
                Err(end) => return Ok(end),
            };
            let seen = checked.decision.text(&raw).to_owned();
            let (text, calls): (String, Vec<ToolCall>) =
                if agent.tool_calling == ToolCalling::Native && !output.tool_calls.is_empty() {
                    match serde_json::from_str::<NativeStep>(&seen) {
                        Ok(n) => (n.content.unwrap_or_default(), n.tool_calls),
                        // A redaction that leaves the calls unreadable stops
                        // them: nothing runs on unchecked arguments.
                        Err(_) => (String::new(), Vec::new()),
                    }
                } else {
                    (seen, Vec::new())
                };
            let calls_lost = calls.is_empty() && !output.tool_calls.is_empty();
            self.record(
                "model",
                json!({
                    "output": if stops(checked.decision.decision) { Value::Null } else { json!(text) },
                    "tool_calls": calls.iter().map(|c| json!({"name": c.name, "arguments": c.arguments})).collect::<Vec<_>>(),
                    "redacted": checked.decision.redacted.is_some(),
                    "prompt_tokens": output.usage.prompt_tokens,
                    "completion_tokens": output.usage.completion_tokens,
                }),
                model_ms,
                None,
            )
            .await?;
            if stops(checked.decision.decision) {
                return Ok(End::Stopped(RunStatus::Blocked, blocked_message(&checked)));
            }
            if calls.len() > MAX_CALLS_PER_STEP {
                self.record(
                    "malformed",
                    json!({"error": format!("{} tool calls in one step", calls.len())}),
                    0.0,
                    None,
                )
                .await?;
                push(
                    &mut state,
                    Role::User,
                    format!(
                        "Make at most {MAX_CALLS_PER_STEP} tool calls at once; none of these ran."
                    ),
                );
                continue;
            }
            if calls_lost {
                self.record(
                    "malformed",
                    json!({"error": "a policy redaction left the tool calls unreadable"}),
                    0.0,
                    None,
                )
                .await?;
                push(
                    &mut state,
                    Role::User,
                    "Your tool calls were changed by a policy and could not be run.".into(),
                );
                continue;
            }
            let steps = match agent.tool_calling {
                ToolCalling::Planner => match planner::parse_step(&text) {
                    Ok(step) => vec![step],
                    Err(why) => {
                        self.record("malformed", json!({"error": why}), 0.0, None)
                            .await?;
                        push(&mut state, Role::Assistant, text);
                        push(
                            &mut state,
                            Role::User,
                            format!(
                                "{why}. Reply with one JSON object: a tool call or {{\"final\": ...}}."
                            ),
                        );
                        continue;
                    }
                },
                ToolCalling::Native if calls.is_empty() => vec![Step::Final(text.clone())],
                ToolCalling::Native => calls
                    .iter()
                    .map(|c| Step::Call {
                        tool: c.name.clone(),
                        arguments: serde_json::from_str(&c.arguments).unwrap_or(Value::Null),
                    })
                    .collect(),
            };
            if let [Step::Final(answer)] = steps.as_slice() {
                return self.answer(answer).await;
            }
            // Small models tend to repeat a call that already succeeded
            // instead of answering; a repeat is not run again, and the next
            // step may only answer.
            let repeats = steps.iter().any(|s| match s {
                Step::Call { tool, arguments } => {
                    let arguments = essential(arguments);
                    state
                        .done_calls
                        .iter()
                        .any(|(t, a)| t == tool && essential(a) == arguments)
                }
                Step::Final(_) => false,
            });
            if repeats {
                self.record("repeat", json!({"note": "the model repeated a call it had already made; asking for the answer"}), 0.0, None).await?;
                push(&mut state, Role::Assistant, text);
                let nudge = format!(
                    "You already made that call; its result is above. The user asked: {}\nAnswer from that result with {{\"final\": ...}}.",
                    state.question
                );
                push(&mut state, Role::User, nudge);
                state.answer_only = true;
                continue;
            }
            match self.call_tools(tools, &steps, &[]).await? {
                Ok(replies) => {
                    for s in &steps {
                        if let Step::Call { tool, arguments } = s {
                            state.done_calls.push((tool.clone(), arguments.clone()));
                        }
                    }
                    self.feed_back(&mut state, &text, &calls, replies);
                }
                Err(End::Paused(waiting, message)) => {
                    let Some((waiting, waiting_index)) =
                        waiting.pending.map(|p| (p.waiting, p.waiting_index))
                    else {
                        return Ok(End::Stopped(
                            RunStatus::Failed,
                            "pause without a waiting call".into(),
                        ));
                    };
                    state.pending = Some(PendingStep {
                        text,
                        tool_calls: calls.clone(),
                        calls: steps
                            .iter()
                            .filter_map(|s| match s {
                                Step::Call { tool, arguments } => {
                                    Some((tool.clone(), arguments.clone()))
                                }
                                Step::Final(_) => None,
                            })
                            .collect(),
                        waiting,
                        waiting_index,
                        message: message.clone(),
                        decided: Vec::new(),
                    });
                    return Ok(End::Paused(Box::new(state), message));
                }
                Err(end) => return Ok(end),
            }
        }
        Ok(End::Stopped(
            RunStatus::MaxSteps,
            format!(
                "stopped after {} steps without a final answer",
                agent.max_steps
            ),
        ))
    }

    fn backend(&self) -> Result<Arc<dyn Backend>, String> {
        let model = self
            .agent
            .model
            .as_deref()
            .unwrap_or(&self.runner.default_model);
        self.runner
            .registry
            .get(model)
            .ok_or_else(|| format!("model {model:?} is not configured"))
    }

    /// One model call offering `tools`; without `allow_final` the model
    /// must call one of them.
    fn request(
        &self,
        tools: &[ResolvedTool],
        messages: &[ChatMessage],
        allow_final: bool,
    ) -> ChatRequest {
        let mut r = ChatRequest::new(messages.to_vec(), self.agent.max_tokens);
        r.temperature = Some(self.agent.temperature);
        r.seed = Some(0);
        match self.agent.tool_calling {
            ToolCalling::Planner => {
                r.response_format = ResponseFormat::JsonSchema {
                    name: "agent_step".into(),
                    schema: planner::step_schema(
                        &offers(tools),
                        allow_final,
                        planner::max_answer(self.agent.max_tokens),
                    ),
                };
            }
            ToolCalling::Native => {
                r.tools = tools
                    .iter()
                    .map(|t| ToolSpec {
                        name: t.name.clone(),
                        description: Some(t.description.clone()),
                        parameters: t.schema.clone(),
                    })
                    .collect();
                r.tool_choice = match (allow_final, tools) {
                    (false, [only]) => ToolChoice::Function(only.name.clone()),
                    (false, _) => ToolChoice::Required,
                    (true, []) => ToolChoice::None,
                    (true, _) => ToolChoice::Auto,
                };
            }
        }
        r
    }

    async fn answer(&mut self, answer: &str) -> Result<End, sea_orm::DbErr> {
        let checked = match self.govern(Stage::Output, answer, None).await? {
            Ok(c) => c,
            Err(end) => return Ok(end),
        };
        if stops(checked.decision.decision) {
            return Ok(End::Stopped(RunStatus::Blocked, blocked_message(&checked)));
        }
        let answer = checked.decision.text(answer).to_owned();
        self.finish_live().await;
        self.record("answer", json!({"text": answer}), 0.0, None)
            .await?;
        Ok(End::Answer(answer))
    }

    /// One model call; planner steps are streamed so that a final answer
    /// can be released (through the guards) while it is written.
    async fn call_model(
        &mut self,
        backend: &dyn Backend,
        request: ChatRequest,
    ) -> Result<crate::llm::ChatOutput, crate::llm::LlmError> {
        self.live = None;
        let (Some(tx), ToolCalling::Planner) = (self.answer_tx.clone(), self.agent.tool_calling)
        else {
            return backend.chat(request).await;
        };
        use futures::StreamExt;
        let mut events = backend.chat_stream(request).await?;
        let mut live = AnswerStream::new(
            self.runner.governor.store.current(),
            self.subject.clone(),
            tx,
        );
        let mut content = String::new();
        let mut tool_calls = Vec::new();
        while let Some(event) = events.next().await {
            match event? {
                crate::llm::StreamEvent::Content(t) => {
                    live.push(&t);
                    content.push_str(&t);
                }
                crate::llm::StreamEvent::ToolCalls(c) => tool_calls = c,
                crate::llm::StreamEvent::Done {
                    finish_reason,
                    usage,
                } => {
                    self.live = Some(live);
                    return Ok(crate::llm::ChatOutput {
                        content: Some(content),
                        tool_calls,
                        finish_reason,
                        usage,
                    });
                }
            }
        }
        Err(crate::llm::LlmError::Engine(
            "the model stream ended early".into(),
        ))
    }

    /// Releases what the answer stream still holds, after the whole
    /// answer's checks (re-taken here on the text the guards saw).
    async fn finish_live(&mut self) {
        let Some(mut live) = self.live.take() else {
            return;
        };
        if !live.streaming() {
            return;
        }
        let bundle = self.runner.governor.store.current();
        let gov = &self.runner.governor;
        let llm = gov
            .evaluate(&bundle, Stage::LlmOutput, live.llm_text(), &self.subject)
            .await;
        live.finish_llm(&llm);
        let out = gov
            .evaluate(&bundle, Stage::Output, live.out_text(), &self.subject)
            .await;
        live.finish_out(&out);
        // Later finals are not streamed again: the client has this one.
        self.answer_tx = None;
    }

    /// Checks every requested call, then runs the allowed ones
    /// (concurrently when there are several), and returns what the model
    /// should be told about each. A call needing approval pauses the step
    /// before anything runs, unless `decided` answers it.
    async fn call_tools(
        &mut self,
        tools: &[ResolvedTool],
        steps: &[Step],
        decided: &[(usize, Resolution)],
    ) -> Step2<Vec<String>> {
        let mut approved = Vec::new();
        let mut replies: Vec<Option<String>> = Vec::new();
        for (index, step) in steps.iter().enumerate() {
            let Step::Call { tool, arguments } = step else {
                replies.push(Some(
                    "A final answer cannot be mixed with tool calls.".into(),
                ));
                continue;
            };
            let Some(t) = tools.iter().find(|t| &t.name == tool) else {
                let names: Vec<&str> = tools.iter().map(|t| t.name.as_str()).collect();
                self.record(
                    "tool_call",
                    json!({"tool": tool, "arguments": arguments, "error": "unknown tool"}),
                    0.0,
                    None,
                )
                .await?;
                replies.push(Some(format!(
                    "There is no tool {tool:?}. Available: {}.",
                    names.join(", ")
                )));
                continue;
            };
            if !arguments.is_object() {
                self.record("tool_call", json!({"tool": tool, "arguments": arguments, "error": "arguments are not an object"}), 0.0, None)
                    .await?;
                replies.push(Some(format!(
                    "The arguments for {tool} must be a JSON object."
                )));
                continue;
            }
            let this_call = (tool.clone(), arguments.clone());
            let resolution = decided.iter().find(|(i, _)| *i == index).map(|(_, r)| r);
            if let Some(r) = resolution.filter(|r| !r.approved) {
                replies.push(Some(format!(
                    "The call to {tool} was rejected by {}{}.",
                    r.by,
                    r.reason
                        .as_deref()
                        .map(|x| format!(": {x}"))
                        .unwrap_or_default()
                )));
                continue;
            }
            let checked = match self
                .govern(Stage::ToolCall, &arguments.to_string(), Some(t))
                .await?
            {
                Ok(c) => c,
                Err(end) => return Ok(Err(end)),
            };
            match checked.decision.decision {
                Action::Block => {
                    replies.push(Some(format!(
                        "The call to {tool} was blocked by policy: {}",
                        blocked_message(&checked)
                    )));
                    continue;
                }
                Action::RequireApproval if resolution.is_none() => {
                    let waiting = LoopState {
                        pending: Some(PendingStep {
                            text: String::new(),
                            tool_calls: Vec::new(),
                            calls: Vec::new(),
                            waiting: this_call,
                            waiting_index: index,
                            message: String::new(),
                            decided: Vec::new(),
                        }),
                        ..LoopState::default()
                    };
                    return Ok(Err(End::Paused(
                        Box::new(waiting),
                        blocked_message(&checked),
                    )));
                }
                _ => {}
            }
            let arguments: Value = match checked.decision.redacted.as_deref() {
                None => arguments.clone(),
                Some(r) => match serde_json::from_str::<Value>(r) {
                    Ok(v) if v.is_object() => v,
                    // Redacted arguments that no longer parse are not sent
                    // raw instead: the call does not run.
                    _ => {
                        replies.push(Some(format!(
                            "The call to {tool} was stopped: a policy redaction left its arguments unreadable."
                        )));
                        continue;
                    }
                },
            };
            approved.push((replies.len(), t.clone(), arguments));
            replies.push(None);
        }
        let user = self.subject.key.clone();
        let calls = approved
            .iter()
            .map(|(_, t, args)| self.runner.tools.call(t, args, user.as_deref(), &self.id));
        let outcomes = futures::future::join_all(calls).await;
        for ((slot, t, args), outcome) in approved.into_iter().zip(outcomes) {
            let ms = outcome.elapsed.as_secs_f64() * 1000.0;
            let reply = match outcome.result {
                Ok(output) => {
                    self.remember(&t, &args).await?;
                    let text = output.to_string();
                    // Checked before it is stored or shown to anyone.
                    let checked = match self.govern(Stage::ToolResult, &text, Some(&t)).await? {
                        Ok(c) => c,
                        Err(end) => return Ok(Err(end)),
                    };
                    let withheld = stops(checked.decision.decision);
                    let stored = if withheld {
                        json!({"withheld": true})
                    } else {
                        let seen = checked.decision.text(&text);
                        serde_json::from_str::<Value>(seen).unwrap_or_else(|_| json!(seen))
                    };
                    self.record(
                        "tool_call",
                        json!({"plugin": t.plugin, "plugin_version": t.plugin_version, "tool": t.name, "arguments": args, "output": stored}),
                        ms,
                        None,
                    )
                    .await?;
                    if withheld {
                        format!(
                            "The result of {} was withheld by policy: {}",
                            t.name,
                            blocked_message(&checked)
                        )
                    } else {
                        format!(
                            "Result of {}: {}",
                            t.name,
                            cut(checked.decision.text(&text))
                        )
                    }
                }
                Err(e) => {
                    self.record(
                        "tool_call",
                        json!({"plugin": t.plugin, "plugin_version": t.plugin_version, "tool": t.name, "arguments": args, "error": e}),
                        ms,
                        None,
                    )
                    .await?;
                    format!("The tool {} failed: {}", t.name, cut(&e))
                }
            };
            replies[slot] = Some(reply);
        }
        Ok(Ok(replies.into_iter().flatten().collect()))
    }

    /// Preferences the chatbot plugin saved for this user also become the
    /// user's memory, so every agent with memory sees them.
    async fn remember(&self, t: &ResolvedTool, args: &Value) -> Result<(), sea_orm::DbErr> {
        if (t.plugin.as_str(), t.name.as_str()) != super::memory::REMEMBER_TOOL {
            return Ok(());
        }
        let (Some(user), Some(key), Some(value)) = (
            self.subject.key.as_deref(),
            args.get("key").and_then(Value::as_str),
            args.get("value").and_then(Value::as_str),
        ) else {
            return Ok(());
        };
        if super::memory::validate(key, value).is_ok() {
            let source = format!("{}/{}", t.plugin, t.name);
            self.runner.memory.put(user, key, value, &source).await?;
        }
        Ok(())
    }

    fn feed_back(
        &self,
        state: &mut LoopState,
        text: &str,
        calls: &[ToolCall],
        replies: Vec<String>,
    ) {
        match self.agent.tool_calling {
            ToolCalling::Planner => {
                push(state, Role::Assistant, text.to_owned());
                push(state, Role::User, replies.join("\n"));
            }
            ToolCalling::Native => {
                let mut assistant = ChatMessage::new(Role::Assistant, text);
                assistant.tool_calls = calls.to_vec();
                state.messages.push(SavedMessage::from(&assistant));
                for (call, reply) in calls.iter().zip(replies) {
                    let mut m = ChatMessage::new(Role::Tool, reply);
                    m.tool_call_id = Some(call.id.clone());
                    state.messages.push(SavedMessage::from(&m));
                }
            }
        }
    }
}

/// Arguments without their empty values (`null`, `""`, `[]`, `{}`), so a
/// call repeated with an explicit default counts as the same call.
fn essential(v: &Value) -> Value {
    match v {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), essential(v)))
                .filter(|(_, v)| !is_empty(v))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(essential).collect()),
        other => other.clone(),
    }
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        _ => false,
    }
}

/// A native step as checked at `llm_output`: text and calls together.
#[derive(serde::Serialize, serde::Deserialize)]
struct NativeStep {
    content: Option<String>,
    tool_calls: Vec<ToolCall>,
}

fn push(state: &mut LoopState, role: Role, content: String) {
    state
        .messages
        .push(SavedMessage::from(&ChatMessage::new(role, content)));
}

pub(super) fn offers(tools: &[ResolvedTool]) -> Vec<Offer> {
    tools
        .iter()
        .map(|t| Offer {
            name: t.name.clone(),
            description: t.description.clone(),
            schema: t.schema.clone(),
        })
        .collect()
}

fn stops(action: Action) -> bool {
    matches!(action, Action::Block | Action::RequireApproval)
}

fn blocked_message(c: &Checked) -> String {
    c.decision.stop_message(c.audit_seq)
}

fn cut(s: &str) -> &str {
    match s.char_indices().nth(MAX_RESULT_CHARS) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}
