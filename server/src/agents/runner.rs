//! The agent loop: plan with the model, call tools in the sandbox, answer;
//! every model output, tool call, tool result and the final answer pass the
//! policies (and so the audit log) on the way.
//!
//! What the model gets back after a step is always a message, never a
//! crash: malformed steps, unknown tools, invalid arguments, tool errors
//! and policy blocks on tool calls or results are reported to it and the
//! loop goes on until it answers, `max_steps` is reached or the run's
//! timeout expires.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::planner::{self, Offer, Step};
use super::runs::{RunStatus, RunStore, StepRecord};
use super::spec::{AgentSpec, ToolCalling};
use super::tools::{ResolvedTool, ToolHost};
use crate::governance::{Action, Checked, Governor, Stage, Subject};
use crate::llm::{
    Backend, ChatMessage, ChatRequest, ModelRegistry, ResponseFormat, Role, ToolCall, ToolChoice,
    ToolSpec,
};

/// Tool output fed back to the model is cut to this many characters.
const MAX_RESULT_CHARS: usize = 4000;

pub struct Runner {
    pub registry: Arc<ModelRegistry>,
    pub tools: Arc<dyn ToolHost>,
    pub governor: Arc<Governor>,
    pub runs: RunStore,
    /// Model for agents that name none.
    pub default_model: String,
}

pub struct RunRequest {
    pub agent: AgentSpec,
    pub message: String,
    /// The API key name that asked.
    pub subject: Option<String>,
    pub channel: String,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct RunReport {
    pub id: String,
    pub status: RunStatus,
    pub answer: Option<String>,
    pub error: Option<String>,
    pub steps: Vec<StepRecord>,
}

/// State of one run as the loop advances.
struct Run<'a> {
    runner: &'a Runner,
    id: String,
    agent: &'a AgentSpec,
    subject: Subject,
    steps: Vec<StepRecord>,
    events: Option<mpsc::UnboundedSender<StepRecord>>,
    prompt_tokens: u32,
    completion_tokens: u32,
}

enum End {
    Answer(String),
    Stopped(RunStatus, String),
}

impl Runner {
    /// Runs an agent to its end. Steps are stored and sent to `events` as
    /// they happen. Errors are only for the database failing to record.
    pub async fn run(
        &self,
        req: RunRequest,
        events: Option<mpsc::UnboundedSender<StepRecord>>,
    ) -> Result<RunReport, sea_orm::DbErr> {
        let id = format!("run_{}", uuid::Uuid::new_v4().simple());
        self.runs
            .create(
                &id,
                &req.agent.name,
                req.subject.as_deref(),
                Some(&req.channel),
                &req.message,
            )
            .await?;
        let mut run = Run {
            runner: self,
            id: id.clone(),
            agent: &req.agent,
            subject: Subject {
                key: req.subject.clone(),
                agent: Some(req.agent.name.clone()),
                channel: Some(req.channel.clone()),
                ..Subject::default()
            },
            steps: Vec::new(),
            events,
            prompt_tokens: 0,
            completion_tokens: 0,
        };
        let timeout = Duration::from_secs(req.agent.timeout_secs);
        let end = match tokio::time::timeout(timeout, run.drive(&req.message)).await {
            Ok(Ok(end)) => end,
            Ok(Err(e)) => return Err(e),
            Err(_) => End::Stopped(
                RunStatus::TimedOut,
                format!("the run did not finish within {} s", req.agent.timeout_secs),
            ),
        };
        let (status, answer, error) = match end {
            End::Answer(a) => (RunStatus::Completed, Some(a), None),
            End::Stopped(s, e) => (s, None, Some(e)),
        };
        if let Some(e) = &error {
            run.record(
                "error",
                json!({"status": status.as_str(), "message": e}),
                0.0,
                None,
            )
            .await?;
        }
        self.runs
            .finish(
                &id,
                status,
                answer.as_deref(),
                error.as_deref(),
                run.steps.len() as i32,
                run.prompt_tokens,
                run.completion_tokens,
            )
            .await?;
        Ok(RunReport {
            id,
            status,
            answer,
            error,
            steps: run.steps,
        })
    }
}

impl Run<'_> {
    async fn record(
        &mut self,
        kind: &'static str,
        detail: Value,
        duration_ms: f64,
        audit_seq: Option<i64>,
    ) -> Result<(), sea_orm::DbErr> {
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

    /// Checks content at a stage; anything but a plain allow becomes a
    /// `policy` step linked to its audit record. An audit failure stops
    /// the run (nothing acts on an unrecorded decision).
    async fn govern(
        &mut self,
        stage: Stage,
        text: &str,
        tool: Option<&ResolvedTool>,
    ) -> Result<Result<Checked, End>, sea_orm::DbErr> {
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

    async fn drive(&mut self, message: &str) -> Result<End, sea_orm::DbErr> {
        let agent = self.agent;
        let backend = match self.backend() {
            Ok(b) => b,
            Err(e) => return Ok(End::Stopped(RunStatus::Failed, e)),
        };
        let tools = match self.runner.tools.resolve(&agent.tools).await {
            Ok(t) => t,
            Err(e) => {
                return Ok(End::Stopped(
                    RunStatus::Failed,
                    format!("cannot offer tools: {e}"),
                ));
            }
        };
        let input = match self.govern(Stage::Input, message, None).await? {
            Ok(c) => c,
            Err(end) => return Ok(end),
        };
        if stops(input.decision.decision) {
            return Ok(End::Stopped(RunStatus::Blocked, blocked_message(&input)));
        }
        let message = input.decision.text(message).to_owned();
        let mut messages = self.opening(&tools, &message);
        // Small models tend to repeat a call that already succeeded instead
        // of answering; a repeat is not run again, and the next step may
        // only answer.
        let mut done_calls: Vec<(String, Value)> = Vec::new();
        let mut answer_only = false;
        let mut first = match &agent.start_with {
            Some(name) => match tools.iter().find(|t| &t.name == name) {
                Some(t) => Some(t.clone()),
                None => {
                    return Ok(End::Stopped(
                        RunStatus::Failed,
                        format!("start_with names {name:?}, which is not among the agent's tools"),
                    ));
                }
            },
            None => None,
        };
        for _ in 0..agent.max_steps {
            let request = match (answer_only, first.take()) {
                (true, _) => self.request(&[], &messages, true),
                (false, Some(t)) => self.request(std::slice::from_ref(&t), &messages, false),
                (false, None) => self.request(&tools, &messages, true),
            };
            answer_only = false;
            let started = Instant::now();
            let output = match backend.chat(request).await {
                Ok(o) => o,
                Err(e) => return Ok(End::Stopped(RunStatus::Failed, format!("model error: {e}"))),
            };
            self.prompt_tokens += output.usage.prompt_tokens;
            self.completion_tokens += output.usage.completion_tokens;
            let text = output.content.clone().unwrap_or_default();
            self.record(
                "model",
                json!({
                    "output": text,
                    "tool_calls": output.tool_calls.iter().map(|c| json!({"name": c.name, "arguments": c.arguments})).collect::<Vec<_>>(),
                    "prompt_tokens": output.usage.prompt_tokens,
                    "completion_tokens": output.usage.completion_tokens,
                }),
                started.elapsed().as_secs_f64() * 1000.0,
                None,
            )
            .await?;
            let to_check = if output.tool_calls.is_empty() {
                text.clone()
            } else {
                serde_json::to_string(&output.tool_calls).unwrap_or_default()
            };
            let checked = match self.govern(Stage::LlmOutput, &to_check, None).await? {
                Ok(c) => c,
                Err(end) => return Ok(end),
            };
            if stops(checked.decision.decision) {
                return Ok(End::Stopped(RunStatus::Blocked, blocked_message(&checked)));
            }
            let steps = match agent.tool_calling {
                ToolCalling::Planner => match planner::parse_step(checked.decision.text(&text)) {
                    Ok(step) => vec![step],
                    Err(why) => {
                        messages.push(ChatMessage::new(Role::Assistant, text));
                        messages.push(ChatMessage::new(
                            Role::User,
                            format!("{why}. Reply with one JSON object: a tool call or {{\"final\": ...}}."),
                        ));
                        continue;
                    }
                },
                ToolCalling::Native if output.tool_calls.is_empty() => {
                    vec![Step::Final(checked.decision.text(&text).to_owned())]
                }
                ToolCalling::Native => output
                    .tool_calls
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
            let repeats = steps.iter().any(|s| match s {
                Step::Call { tool, arguments } => {
                    done_calls.iter().any(|(t, a)| t == tool && a == arguments)
                }
                Step::Final(_) => false,
            });
            if repeats {
                self.record("repeat", json!({"note": "the model repeated a call it had already made; asking for the answer"}), 0.0, None).await?;
                messages.push(ChatMessage::new(Role::Assistant, text));
                messages.push(ChatMessage::new(
                    Role::User,
                    "You already made that call and have its result above. Now answer the user with {\"final\": ...}.",
                ));
                answer_only = true;
                continue;
            }
            for s in &steps {
                if let Step::Call { tool, arguments } = s {
                    done_calls.push((tool.clone(), arguments.clone()));
                }
            }
            let results = self.call_tools(&tools, &steps).await?;
            let results = match results {
                Ok(r) => r,
                Err(end) => return Ok(end),
            };
            self.feed_back(&mut messages, &text, &output.tool_calls, results);
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

    fn opening(&self, tools: &[ResolvedTool], message: &str) -> Vec<ChatMessage> {
        let mut system = self.agent.system_prompt.clone();
        if self.agent.tool_calling == ToolCalling::Planner {
            system.push_str("\n\n");
            system.push_str(&planner::instructions(&offers(tools)));
        }
        let mut messages = vec![ChatMessage::new(Role::System, system)];
        for ex in &self.agent.examples {
            messages.push(ChatMessage::new(Role::User, ex.user.clone()));
            messages.push(ChatMessage::new(Role::Assistant, ex.assistant.clone()));
        }
        messages.push(ChatMessage::new(Role::User, message));
        messages
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
                    schema: planner::step_schema(&offers(tools), allow_final),
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
        self.record("answer", json!({"text": answer}), 0.0, None)
            .await?;
        Ok(End::Answer(answer))
    }

    /// Runs every requested call (concurrently when there are several) and
    /// returns what the model should be told about each.
    async fn call_tools(
        &mut self,
        tools: &[ResolvedTool],
        steps: &[Step],
    ) -> Result<Result<Vec<String>, End>, sea_orm::DbErr> {
        // Governance first, in order, so its records read like the run.
        let mut approved = Vec::new();
        let mut replies: Vec<Option<String>> = Vec::new();
        for step in steps {
            let Step::Call { tool, arguments } = step else {
                replies.push(Some(
                    "a final answer cannot be mixed with tool calls".into(),
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
                replies.push(Some(format!(
                    "The arguments for {tool} must be a JSON object."
                )));
                continue;
            }
            let args_text = arguments.to_string();
            let checked = match self.govern(Stage::ToolCall, &args_text, Some(t)).await? {
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
                Action::RequireApproval => {
                    return Ok(Err(End::Stopped(
                        RunStatus::Blocked,
                        format!(
                            "the call to {tool} needs approval ({}); pausing runs for approval is not built yet",
                            blocked_message(&checked)
                        ),
                    )));
                }
                _ => {}
            }
            let arguments: Value = match checked.decision.redacted.as_deref() {
                Some(r) => serde_json::from_str(r).unwrap_or_else(|_| arguments.clone()),
                None => arguments.clone(),
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
                    let text = output.to_string();
                    self.record(
                        "tool_call",
                        json!({"plugin": t.plugin, "plugin_version": t.plugin_version, "tool": t.name, "arguments": args, "output": output}),
                        ms,
                        None,
                    )
                    .await?;
                    let checked = match self.govern(Stage::ToolResult, &text, Some(&t)).await? {
                        Ok(c) => c,
                        Err(end) => return Ok(Err(end)),
                    };
                    if stops(checked.decision.decision) {
                        format!(
                            "The result of {} was withheld by policy: {}",
                            t.name,
                            blocked_message(&checked)
                        )
                    } else {
                        format!(
                            "Result of {}: {}\nIf this is enough to answer the user, reply with {{\"final\": ...}}.",
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

    fn feed_back(
        &self,
        messages: &mut Vec<ChatMessage>,
        text: &str,
        calls: &[ToolCall],
        replies: Vec<String>,
    ) {
        match self.agent.tool_calling {
            ToolCalling::Planner => {
                messages.push(ChatMessage::new(Role::Assistant, text));
                messages.push(ChatMessage::new(Role::User, replies.join("\n")));
            }
            ToolCalling::Native => {
                let mut assistant = ChatMessage::new(Role::Assistant, text);
                assistant.tool_calls = calls.to_vec();
                messages.push(assistant);
                for (call, reply) in calls.iter().zip(replies) {
                    let mut m = ChatMessage::new(Role::Tool, reply);
                    m.tool_call_id = Some(call.id.clone());
                    messages.push(m);
                }
            }
        }
    }
}

fn offers(tools: &[ResolvedTool]) -> Vec<Offer> {
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
    let rule = c
        .decision
        .deciding()
        .map_or_else(|| "unknown".to_owned(), |m| m.qualified());
    format!(
        "{} (policy {rule}, audit record {})",
        c.decision
            .message
            .as_deref()
            .unwrap_or("stopped by a governance policy"),
        c.audit_seq
    )
}

fn cut(s: &str) -> &str {
    match s.char_indices().nth(MAX_RESULT_CHARS) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}
