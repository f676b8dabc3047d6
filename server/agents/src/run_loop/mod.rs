//! One run's loop: plan with the model, call tools in the sandbox, answer;
//! every model output, tool call, tool result and the final answer pass the
//! policies (and so the audit log) on the way.
//!
//! What the model gets back after a step is always a message, never a
//! crash: malformed steps, unknown tools, invalid arguments, tool errors
//! and policy blocks on tool calls or results are reported to it, and the
//! loop goes on until it answers, pauses for an approver, reaches
//! `max_steps`, or the run's timeout expires.

mod calls;
mod protocol;

use std::sync::Arc;
use std::time::Instant;

use sea_orm::DbErr;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::Runner;
use super::answer_stream::AnswerStream;
use super::planner::Step;
use super::runs::{RunStatus, StepKind, StepRecord};
use super::spec::AgentSpec;
use super::state::{LoopState, PendingStep, Resolution};
use super::tools::ResolvedTool;
use protocol::{Protocol, Reading, push};
use warden_governance::Checked;
use warden_llm::{Backend, ChatMessage, ChatOutput, ChatRequest, LlmError, Role, StreamEvent};
use warden_policy::{Action, Stage, Subject};

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

/// Why the loop leaves a step early: the run ends (an answer, a stop, a
/// pause), or the run store failed. `?` carries both out of any step.
pub(super) enum Halt {
    End(End),
    Db(DbErr),
}

impl From<DbErr> for Halt {
    fn from(e: DbErr) -> Self {
        Halt::Db(e)
    }
}

impl From<End> for Halt {
    fn from(e: End) -> Self {
        Halt::End(e)
    }
}

/// A step of the loop: its value, or why the run stops here.
type Flow<T> = Result<T, Halt>;

/// The end of a run as its lifecycle sees it: how it ended, or a store failure.
fn settle(flow: Flow<End>) -> Result<End, DbErr> {
    match flow {
        Ok(end) | Err(Halt::End(end)) => Ok(end),
        Err(Halt::Db(e)) => Err(e),
    }
}

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
    pub(crate) fn new(
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
    pub(crate) async fn record(
        &mut self,
        kind: StepKind,
        detail: Value,
        duration_ms: f64,
        audit_seq: Option<i64>,
    ) -> Result<(), DbErr> {
        let step = StepRecord {
            idx: self.steps.len() as i32,
            kind,
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

    fn protocol(&self) -> &'static dyn Protocol {
        protocol::of(self.agent.tool_calling)
    }

    /// Checks content at a stage; anything but a plain allow becomes a
    /// `policy` step linked to its audit record. An audit failure stops
    /// the run (nothing acts on an unrecorded decision).
    async fn govern(
        &mut self,
        stage: Stage,
        text: &str,
        tool: Option<&ResolvedTool>,
    ) -> Flow<Checked> {
        let subject = match tool {
            Some(t) => Subject {
                plugin: Some(t.plugin.clone()),
                tool: Some(t.name.clone()),
                effect: Some(t.effect.clone()),
                ..self.subject.clone()
            },
            None => self.subject.clone(),
        };
        let checked = self
            .runner
            .governor
            .check(stage, text, &subject, Some(&self.id))
            .await
            .map_err(|e| {
                End::Stopped(
                    RunStatus::Failed,
                    format!("governance audit log unavailable: {e}"),
                )
            })?;
        let d = &checked.decision;
        if d.decision != Action::Allow || !d.matches.is_empty() {
            let rules: Vec<String> = d.matches.iter().map(|m| m.qualified()).collect();
            self.record(
                StepKind::Policy,
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
        Ok(checked)
    }

    /// Checks content that must pass for the run to go on: a stopping
    /// decision ends the run as blocked.
    async fn admit(&mut self, stage: Stage, text: &str) -> Flow<Checked> {
        let checked = self.govern(stage, text, None).await?;
        if stops(checked.decision.decision) {
            return Err(End::Stopped(RunStatus::Blocked, blocked_message(&checked)).into());
        }
        Ok(checked)
    }

    /// A new run: the input check, the opening messages, then the loop.
    /// `history` is earlier turns of the conversation (user and assistant
    /// messages); each passes the input stage like the new message.
    pub(crate) async fn start(
        &mut self,
        tools: &[ResolvedTool],
        history: &[ChatMessage],
        message: &str,
    ) -> Result<End, DbErr> {
        let state = match self.open(tools, history, message).await {
            Ok(state) => state,
            Err(halt) => return settle(Err(halt)),
        };
        self.drive(tools, state, None).await
    }

    async fn open(
        &mut self,
        tools: &[ResolvedTool],
        history: &[ChatMessage],
        message: &str,
    ) -> Flow<LoopState> {
        let input = self.admit(Stage::Input, message).await?;
        let message = input.decision.text(message);
        // The run keeps the message as the model saw it.
        self.runner.runs.set_input(&self.id, message).await?;
        // The prompt is laid out for the engine's prefix cache: what is the
        // same for every run of the agent comes first (system prompt, tool
        // instructions, examples), what is the user's after (history, their
        // memory, the message), and later steps only append. So consecutive
        // steps of a run, and runs of the same agent, share the longest
        // prefix; memory in the system prompt would end the shared part at
        // its first line.
        let mut system = self.agent.system_prompt.clone();
        if let Some(instructions) = self.protocol().instructions(tools) {
            system.push_str("\n\n");
            system.push_str(&instructions);
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
            let checked = self.admit(Stage::Input, text).await?;
            messages.push(ChatMessage::new(turn.role, checked.decision.text(text)));
        }
        let mut turn = String::new();
        if let (true, Some(key)) = (self.agent.memory, self.subject.key.clone())
            && let Some(known) = self.runner.memory.prompt(&key).await?
        {
            // Memory is content too: it passes the input stage, and is
            // left out (not fatal) when a policy stops it.
            let checked = self.govern(Stage::Input, &known, None).await?;
            if !stops(checked.decision.decision) {
                turn.push_str(checked.decision.text(&known));
                turn.push('\n');
            }
        }
        turn.push_str(message);
        messages.push(ChatMessage::new(Role::User, turn));
        Ok(LoopState {
            messages: messages.iter().map(Into::into).collect(),
            question: message.to_owned(),
            ..LoopState::default()
        })
    }

    /// Runs the loop from `state`; `resolution` answers its pending step.
    pub(crate) async fn drive(
        &mut self,
        tools: &[ResolvedTool],
        state: LoopState,
        resolution: Option<Resolution>,
    ) -> Result<End, DbErr> {
        settle(self.drive_flow(tools, state, resolution).await)
    }

    async fn drive_flow(
        &mut self,
        tools: &[ResolvedTool],
        mut state: LoopState,
        resolution: Option<Resolution>,
    ) -> Flow<End> {
        let agent = self.agent;
        let backend = self.backend()?;
        let mut first = match (&agent.start_with, state.started) {
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
        if let (Some(pending), Some(resolution)) = (state.pending.take(), resolution) {
            self.continue_pending(tools, &mut state, pending, resolution)
                .await?;
        }
        while state.model_calls < agent.max_steps {
            state.model_calls += 1;
            let messages: Vec<ChatMessage> = state.messages.iter().map(ChatMessage::from).collect();
            let request = match (state.answer_only, first.take()) {
                (true, _) => self.request(&[], &messages, true)?,
                (false, Some(t)) => self.request(std::slice::from_ref(&t), &messages, false)?,
                (false, None) => self.request(tools, &messages, true)?,
            };
            state.answer_only = false;
            state.started = true;
            let started = Instant::now();
            let output = self
                .call_model(backend.as_ref(), request)
                .await
                .map_err(|e| End::Stopped(RunStatus::Failed, format!("model error: {e}")))?;
            self.prompt_tokens += output.usage.prompt_tokens;
            self.completion_tokens += output.usage.completion_tokens;
            let model_ms = started.elapsed().as_secs_f64() * 1000.0;
            // Checked before anything uses it, the step's record included:
            // redactions change what is stored, streamed and parsed.
            let protocol = self.protocol();
            let raw = protocol.checked_text(&output);
            let checked = self.govern(Stage::LlmOutput, &raw, None).await?;
            let reading = protocol.read(checked.decision.text(&raw).to_owned(), &output);
            let stopped = stops(checked.decision.decision);
            self.record(
                StepKind::Model,
                json!({
                    "output": if stopped { Value::Null } else { json!(reading.text) },
                    "tool_calls": reading.calls.iter().map(|c| json!({"name": c.name, "arguments": c.arguments})).collect::<Vec<_>>(),
                    "redacted": checked.decision.redacted.is_some(),
                    "prompt_tokens": output.usage.prompt_tokens,
                    "completion_tokens": output.usage.completion_tokens,
                }),
                model_ms,
                None,
            )
            .await?;
            if stopped {
                return Ok(End::Stopped(RunStatus::Blocked, blocked_message(&checked)));
            }
            if let Some(refusal) = self.refuse_calls(&reading).await? {
                push(&mut state, Role::User, refusal);
                continue;
            }
            let steps = match protocol.steps(&reading) {
                Ok(steps) => steps,
                Err(why) => {
                    self.record(
                        StepKind::Malformed,
                        json!({"error": why.to_string()}),
                        0.0,
                        None,
                    )
                    .await?;
                    push(&mut state, Role::Assistant, reading.text);
                    push(
                        &mut state,
                        Role::User,
                        format!(
                            "{why}. Reply with one JSON object: a tool call or {{\"final\": ...}}."
                        ),
                    );
                    continue;
                }
            };
            if let [Step::Final(answer)] = steps.as_slice() {
                return self.answer(answer).await;
            }
            // Small models tend to repeat a call that already succeeded
            // instead of answering; a repeat is not run again, and the next
            // step may only answer.
            if repeats(&steps, &state.done_calls) {
                self.record(
                    StepKind::Repeat,
                    json!({"note": "the model repeated a call it had already made; asking for the answer"}),
                    0.0,
                    None,
                )
                .await?;
                push(&mut state, Role::Assistant, reading.text);
                let nudge = format!(
                    "You already made that call; its result is above. The user asked: {}\nAnswer from that result with {{\"final\": ...}}.",
                    state.question
                );
                push(&mut state, Role::User, nudge);
                state.answer_only = true;
                continue;
            }
            match self.call_tools(tools, &steps, &[]).await {
                Ok(replies) => {
                    state.done_calls.extend(calls_of(&steps));
                    protocol.feed_back(&mut state, &reading.text, &reading.calls, replies);
                }
                Err(Halt::End(End::Paused(waiting, message))) => {
                    let Some((waiting, waiting_index)) =
                        waiting.pending.map(|p| (p.waiting, p.waiting_index))
                    else {
                        return Ok(End::Stopped(
                            RunStatus::Failed,
                            "pause without a waiting call".into(),
                        ));
                    };
                    state.pending = Some(PendingStep {
                        text: reading.text,
                        tool_calls: reading.calls,
                        calls: calls_of(&steps),
                        waiting,
                        waiting_index,
                        message: message.clone(),
                        decided: Vec::new(),
                    });
                    return Ok(End::Paused(Box::new(state), message));
                }
                Err(halt) => return Err(halt),
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

    /// Runs the calls of a paused step now that one of them is decided. If
    /// another call of the same step needs its own approval, the run
    /// pauses again with every decision taken so far kept.
    async fn continue_pending(
        &mut self,
        tools: &[ResolvedTool],
        state: &mut LoopState,
        pending: PendingStep,
        resolution: Resolution,
    ) -> Flow<()> {
        let steps: Vec<Step> = pending
            .calls
            .iter()
            .map(|(tool, arguments)| Step::Call {
                tool: tool.clone(),
                arguments: arguments.clone(),
            })
            .collect();
        // Every decision taken on this step so far, this one included: a
        // step with two calls needing approval pauses twice, and the first
        // decision must hold when the second comes.
        let mut decisions = pending.decided.clone();
        decisions.push((pending.waiting_index, resolution));
        let replies = match self.call_tools(tools, &steps, &decisions).await {
            Ok(r) => r,
            Err(Halt::End(End::Paused(next, message))) => {
                let (waiting, waiting_index) = next.pending.map_or_else(
                    || (pending.waiting.clone(), pending.waiting_index),
                    |p| (p.waiting, p.waiting_index),
                );
                let mut paused = std::mem::take(state);
                paused.pending = Some(PendingStep {
                    message: message.clone(),
                    waiting,
                    waiting_index,
                    decided: decisions,
                    ..pending
                });
                return Err(End::Paused(Box::new(paused), message).into());
            }
            Err(halt) => return Err(halt),
        };
        state.done_calls.extend(pending.calls.iter().cloned());
        self.protocol()
            .feed_back(state, &pending.text, &pending.tool_calls, replies);
        Ok(())
    }

    /// A step whose calls cannot run at all: too many at once, or left
    /// unreadable by a redaction. Returns what the model is told.
    async fn refuse_calls(&mut self, reading: &Reading) -> Flow<Option<String>> {
        let (error, told) = if reading.calls.len() > MAX_CALLS_PER_STEP {
            (
                format!("{} tool calls in one step", reading.calls.len()),
                format!("Make at most {MAX_CALLS_PER_STEP} tool calls at once; none of these ran."),
            )
        } else if reading.calls_lost {
            (
                "a policy redaction left the tool calls unreadable".to_owned(),
                "Your tool calls were changed by a policy and could not be run.".to_owned(),
            )
        } else {
            return Ok(None);
        };
        self.record(StepKind::Malformed, json!({"error": error}), 0.0, None)
            .await?;
        Ok(Some(told))
    }

    fn backend(&self) -> Flow<Arc<dyn Backend>> {
        let model = self
            .agent
            .model
            .as_deref()
            .unwrap_or(&self.runner.default_model);
        self.runner.registry.get(model).ok_or_else(|| {
            End::Stopped(
                RunStatus::Failed,
                format!("model {model:?} is not configured"),
            )
            .into()
        })
    }

    /// One model call offering `tools`; without `allow_final` the model
    /// must call one of them.
    fn request(
        &self,
        tools: &[ResolvedTool],
        messages: &[ChatMessage],
        allow_final: bool,
    ) -> Flow<ChatRequest> {
        let mut r = ChatRequest::new(messages.to_vec(), self.agent.max_tokens);
        r.temperature = Some(self.agent.temperature);
        r.seed = Some(0);
        self.protocol()
            .offer(&mut r, self.agent, tools, allow_final)
            .map_err(|e| End::Stopped(RunStatus::Failed, format!("cannot offer tools: {e}")))?;
        Ok(r)
    }

    async fn answer(&mut self, answer: &str) -> Flow<End> {
        let checked = self.admit(Stage::Output, answer).await?;
        let answer = checked.decision.text(answer).to_owned();
        self.finish_live().await;
        self.record(StepKind::Answer, json!({"text": answer}), 0.0, None)
            .await?;
        Ok(End::Answer(answer))
    }

    /// One model call; when the protocol allows it, the step is streamed so
    /// that a final answer can be released (through the guards) while it is
    /// written.
    async fn call_model(
        &mut self,
        backend: &dyn Backend,
        request: ChatRequest,
    ) -> Result<ChatOutput, LlmError> {
        self.live = None;
        let (Some(tx), true) = (self.answer_tx.clone(), self.protocol().streams_answer()) else {
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
                StreamEvent::Content(t) => {
                    live.push(&t);
                    content.push_str(&t);
                }
                StreamEvent::ToolCalls(c) => tool_calls = c,
                StreamEvent::Done {
                    finish_reason,
                    usage,
                } => {
                    self.live = Some(live);
                    return Ok(ChatOutput {
                        content: Some(content),
                        tool_calls,
                        finish_reason,
                        usage,
                    });
                }
            }
        }
        Err(LlmError::Engine("the model stream ended early".into()))
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

/// Whether any call of the step repeats one already made (judged on the
/// arguments' essential values).
fn repeats(steps: &[Step], done: &[(String, Value)]) -> bool {
    steps.iter().any(|s| match s {
        Step::Call { tool, arguments } => {
            let arguments = essential(arguments);
            done.iter()
                .any(|(t, a)| t == tool && essential(a) == arguments)
        }
        Step::Final(_) => false,
    })
}

/// The `(tool, arguments)` of a step's calls, in order.
fn calls_of(steps: &[Step]) -> Vec<(String, Value)> {
    steps
        .iter()
        .filter_map(|s| match s {
            Step::Call { tool, arguments } => Some((tool.clone(), arguments.clone())),
            Step::Final(_) => None,
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
