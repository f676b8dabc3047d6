//! Starting, resuming and cancelling runs. The loop itself is
//! [`super::run_loop`]; this module owns a run's lifecycle: its row, its
//! timeout, its cancellation, and the pause for an approver.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::feedback::FeedbackStore;
use super::memory::MemoryStore;
use super::planner::{self, BoundError};
use super::run_loop::{End, Run};
use super::runs::{RunStatus, RunStore, StepKind, StepRecord};
use super::spec::{AgentSpec, ToolCalling};
use super::state::{LoopState, Resolution};
use super::tools::ToolHost;
use warden_governance::Governor;
use warden_governance::audit::NewRecord;
use warden_llm::ModelRegistry;
use warden_policy::{Action, Mode, Stage, Subject};

pub struct Runner {
    pub registry: Arc<ModelRegistry>,
    pub tools: Arc<dyn ToolHost>,
    pub governor: Arc<Governor>,
    pub runs: RunStore,
    pub memory: MemoryStore,
    pub feedback: FeedbackStore,
    /// Model for agents that name none.
    pub default_model: String,
    cancels: Mutex<HashMap<String, CancellationToken>>,
}

pub struct RunRequest {
    pub agent: AgentSpec,
    pub message: String,
    /// The API key name that asked.
    pub subject: Option<String>,
    pub channel: String,
    /// A run id chosen by the caller (e.g. to name a stream before the run
    /// ends); a fresh one otherwise.
    pub id: Option<String>,
    /// Earlier turns of the conversation (user and assistant messages).
    pub history: Vec<warden_llm::ChatMessage>,
    /// Receives the final answer as it is written (checked text only).
    pub answer_stream: Option<mpsc::UnboundedSender<String>>,
}

/// A fresh run id.
pub fn new_run_id() -> String {
    format!("run_{}", uuid::Uuid::new_v4().simple())
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct RunReport {
    pub id: String,
    pub status: RunStatus,
    pub answer: Option<String>,
    pub error: Option<String>,
    pub steps: Vec<StepRecord>,
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("no run {0:?}")]
    NotFound(String),
    #[error("run {0} is {1}, not awaiting approval")]
    NotPaused(String, String),
    #[error("the run's saved state is unreadable: {0}")]
    State(#[source] serde_json::Error),
    #[error("the run's saved state has no step waiting for a decision")]
    NothingPending,
    #[error("database error: {0}")]
    Db(#[from] sea_orm::DbErr),
    #[error("governance audit log unavailable: {0}")]
    Audit(#[from] warden_governance::audit::AuditError),
}

impl Runner {
    pub fn new(
        registry: Arc<ModelRegistry>,
        tools: Arc<dyn ToolHost>,
        governor: Arc<Governor>,
        db: sea_orm::DatabaseConnection,
        default_model: String,
    ) -> Self {
        Self {
            registry,
            tools,
            governor,
            runs: RunStore::new(db.clone()),
            memory: MemoryStore::new(db.clone()),
            feedback: FeedbackStore::new(db),
            default_model,
            cancels: Mutex::default(),
        }
    }

    /// Whether `agent`'s tools, as installed now, fit its steps (planner
    /// agents; native tool calling leaves arguments to the model server).
    /// Checked when an agent is defined; a run checks again each step it
    /// offers tools (`Run::request`: a plugin may have changed since), and
    /// fails before calling the model. Patterns that do not resolve yet (a
    /// plugin not installed) are left for the run to report.
    pub async fn check_tools(&self, agent: &AgentSpec) -> Result<(), BoundError> {
        if agent.tool_calling != ToolCalling::Planner {
            return Ok(());
        }
        match self.tools.resolve(&agent.tools).await {
            Ok(tools) => planner::check_offers(&planner::offers(&tools), agent.max_tokens),
            Err(_) => Ok(()),
        }
    }

    /// Runs an agent until it answers, stops or pauses for approval. Steps
    /// are stored and sent to `events` as they happen.
    pub async fn run(
        &self,
        req: RunRequest,
        events: Option<mpsc::UnboundedSender<StepRecord>>,
    ) -> Result<RunReport, RunError> {
        let id = req.id.clone().unwrap_or_else(new_run_id);
        // Cancellable from the moment the run is visible.
        let token = self.register(&id);
        if let Err(e) = self
            .runs
            .create(
                &id,
                &req.agent.name,
                req.subject.as_deref(),
                Some(&req.channel),
                // Stored once it has passed the input check.
                "",
            )
            .await
        {
            self.unregister(&id);
            return Err(e.into());
        }
        let mut run = self.begin(
            &id,
            &req.agent,
            req.subject.clone(),
            &req.channel,
            Vec::new(),
            events,
        );
        run.answer_tx = req.answer_stream.clone();
        let message = req.message.clone();
        let end = self
            .bounded(&id, token, &req.agent, async {
                let tools = match run.runner.tools.resolve(&req.agent.tools).await {
                    Ok(t) => t,
                    Err(e) => {
                        return Ok(End::Stopped(
                            RunStatus::Failed,
                            format!("cannot offer tools: {e}"),
                        ));
                    }
                };
                run.start(&tools, &req.history, &message).await
            })
            .await;
        self.conclude_or_fail(run, end).await
    }

    /// Continues a run paused for approval, after an approver's decision
    /// (recorded in the audit log with who made it). Works after a restart:
    /// everything needed is on the run's row.
    pub async fn resume(
        &self,
        run_id: &str,
        agent: &AgentSpec,
        resolution: Resolution,
        events: Option<mpsc::UnboundedSender<StepRecord>>,
    ) -> Result<RunReport, RunError> {
        // Claim first, then read: two approvers cannot both resume the run,
        // and the state read is the one this claim paused on.
        if !self
            .runs
            .transition(run_id, RunStatus::AwaitingApproval, RunStatus::Running)
            .await?
        {
            let status = self.runs.get(run_id).await?.map(|(r, _)| r.status);
            return Err(match status {
                None => RunError::NotFound(run_id.to_owned()),
                Some(s) => RunError::NotPaused(run_id.to_owned(), s),
            });
        }
        let token = self.register(run_id);
        let prepared = async {
            let (row, steps) = self
                .runs
                .get(run_id)
                .await?
                .ok_or_else(|| RunError::NotFound(run_id.to_owned()))?;
            let state: LoopState = serde_json::from_str(row.state.as_deref().unwrap_or("null"))
                .map_err(RunError::State)?;
            let pending = state.pending.clone().ok_or(RunError::NothingPending)?;
            self.audit_resolution(&row, &pending.waiting, &resolution)
                .await?;
            Ok::<_, RunError>((row, steps, state, pending))
        }
        .await;
        let (row, steps, state, pending) = match prepared {
            Ok(p) => p,
            Err(e) => {
                // Nothing was decided: the run waits again.
                self.unregister(run_id);
                let _ = self
                    .runs
                    .transition(run_id, RunStatus::Running, RunStatus::AwaitingApproval)
                    .await;
                return Err(e);
            }
        };
        let channel = row.channel.clone().unwrap_or_else(|| "api".into());
        let previous = steps.iter().map(StepRecord::from).collect();
        let mut run = self.begin(
            run_id,
            agent,
            row.subject.clone(),
            &channel,
            previous,
            events,
        );
        run.prompt_tokens = u32::try_from(row.prompt_tokens).unwrap_or(0);
        run.completion_tokens = u32::try_from(row.completion_tokens).unwrap_or(0);
        let (tool, _) = &pending.waiting;
        run.record(
            StepKind::Approval,
            json!({"tool": tool, "approved": resolution.approved, "by": resolution.by, "reason": resolution.reason}),
            0.0,
            None,
        )
        .await?;
        let end = self
            .bounded(run_id, token, agent, async {
                let tools = match run.runner.tools.resolve(&agent.tools).await {
                    Ok(t) => t,
                    Err(e) => {
                        return Ok(End::Stopped(
                            RunStatus::Failed,
                            format!("cannot offer tools: {e}"),
                        ));
                    }
                };
                run.drive(&tools, state, Some(resolution)).await
            })
            .await;
        self.conclude_or_fail(run, end).await
    }

    /// Cancels a running or paused run. Returns false when it had already
    /// finished.
    pub async fn cancel(&self, run_id: &str, by: &str) -> Result<bool, RunError> {
        let token = self
            .cancels
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(run_id)
            .cloned();
        if let Some(t) = token {
            t.cancel();
            return Ok(true);
        }
        let (row, steps) = self
            .runs
            .get(run_id)
            .await?
            .ok_or_else(|| RunError::NotFound(run_id.to_owned()))?;
        // A paused run, or a running one no process drives any more.
        let from = match row.status.as_str() {
            s if s == RunStatus::AwaitingApproval.as_str() => RunStatus::AwaitingApproval,
            s if s == RunStatus::Running.as_str() => RunStatus::Running,
            _ => return Ok(false),
        };
        let message = format!("cancelled by {by}");
        let concluded = self
            .runs
            .finish(
                run_id,
                from,
                RunStatus::Cancelled,
                None,
                Some(&message),
                None,
                steps.len() as i32 + 1,
                u32::try_from(row.prompt_tokens).unwrap_or(0),
                u32::try_from(row.completion_tokens).unwrap_or(0),
            )
            .await?;
        if !concluded {
            // A resume took it first.
            return Ok(false);
        }
        let step = StepRecord {
            idx: steps.len() as i32,
            kind: StepKind::Error,
            detail: json!({"status": "cancelled", "message": message}),
            duration_ms: 0.0,
            audit_seq: None,
        };
        self.runs.step(run_id, &step).await?;
        Ok(true)
    }

    fn begin<'a>(
        &'a self,
        id: &str,
        agent: &'a AgentSpec,
        key: Option<String>,
        channel: &str,
        steps: Vec<StepRecord>,
        events: Option<mpsc::UnboundedSender<StepRecord>>,
    ) -> Run<'a> {
        Run::new(
            self,
            id.to_owned(),
            agent,
            Subject {
                key,
                agent: Some(agent.name.clone()),
                channel: Some(channel.to_owned()),
                ..Subject::default()
            },
            steps,
            events,
        )
    }

    fn register(&self, id: &str) -> CancellationToken {
        let token = CancellationToken::new();
        self.cancels
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.to_owned(), token.clone());
        token
    }

    fn unregister(&self, id: &str) {
        self.cancels
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
    }

    /// Runs `work` under the agent's timeout and the run's cancel token.
    async fn bounded(
        &self,
        id: &str,
        token: CancellationToken,
        agent: &AgentSpec,
        work: impl std::future::Future<Output = Result<End, sea_orm::DbErr>>,
    ) -> Result<End, RunError> {
        let timeout = Duration::from_secs(agent.timeout_secs);
        let end = tokio::select! {
            r = tokio::time::timeout(timeout, work) => match r {
                Ok(r) => r.map_err(RunError::from),
                Err(_) => Ok(End::Stopped(
                    RunStatus::TimedOut,
                    format!("the run did not finish within {} s", agent.timeout_secs),
                )),
            },
            () = token.cancelled() => Ok(End::Stopped(RunStatus::Cancelled, "cancelled".into())),
        };
        self.unregister(id);
        end
    }

    /// Concludes the run; when the loop itself failed (the database), the
    /// run is still marked failed so it does not stay `running`.
    async fn conclude_or_fail(
        &self,
        run: Run<'_>,
        end: Result<End, RunError>,
    ) -> Result<RunReport, RunError> {
        match end {
            Ok(end) => self.conclude(run, end).await,
            Err(e) => {
                let _ = self
                    .runs
                    .finish(
                        &run.id,
                        RunStatus::Running,
                        RunStatus::Failed,
                        None,
                        Some(&e.to_string()),
                        None,
                        run.steps.len() as i32,
                        run.prompt_tokens,
                        run.completion_tokens,
                    )
                    .await;
                Err(e)
            }
        }
    }

    async fn conclude(&self, mut run: Run<'_>, end: End) -> Result<RunReport, RunError> {
        let (status, answer, error, state) = match end {
            End::Answer(a) => (RunStatus::Completed, Some(a), None, None),
            End::Stopped(s, e) => (s, None, Some(e), None),
            End::Paused(state, message) => (
                RunStatus::AwaitingApproval,
                None,
                Some(message),
                Some(*state),
            ),
        };
        if let Some(e) = &error {
            let kind = if status == RunStatus::AwaitingApproval {
                StepKind::AwaitingApproval
            } else {
                StepKind::Error
            };
            run.record(
                kind,
                json!({"status": status.as_str(), "message": e}),
                0.0,
                None,
            )
            .await?;
        }
        let state = state.map(|s| serde_json::to_string(&s).unwrap_or_default());
        self.runs
            .finish(
                &run.id,
                RunStatus::Running,
                status,
                answer.as_deref(),
                error.as_deref(),
                state.as_deref(),
                run.steps.len() as i32,
                run.prompt_tokens,
                run.completion_tokens,
            )
            .await?;
        Ok(RunReport {
            id: run.id,
            status,
            answer,
            error,
            steps: run.steps,
        })
    }

    /// Who approved or rejected which call goes into the audit chain.
    async fn audit_resolution(
        &self,
        row: &warden_db::entities::agent_run::Model,
        call: &(String, serde_json::Value),
        r: &Resolution,
    ) -> Result<(), RunError> {
        let verdict = if r.approved { "approve" } else { "reject" };
        let record = NewRecord {
            run_id: Some(row.id.clone()),
            stage: Stage::ToolCall.as_str().into(),
            subject: Subject {
                key: Some(r.by.clone()),
                agent: Some(row.agent.clone()),
                tool: Some(call.0.clone()),
                channel: Some("approval".into()),
                ..Subject::default()
            },
            decision: if r.approved {
                Action::Allow
            } else {
                Action::Block
            }
            .as_str()
            .into(),
            mode: Mode::Enforce.as_str().into(),
            policies: format!(",approval/{verdict},"),
            // The reason stays on the run's step: free text is kept out of
            // the audit log like all content.
            matches:
                json!({"approval": {"verdict": verdict, "by": r.by, "requested_by": row.subject}})
                    .to_string(),
            bundle: self.governor.store.current().hash.clone(),
            content_sha256: warden_policy::engine::content_sha256(&call.1.to_string()),
        };
        self.governor.audit.append_one(record).await?;
        Ok(())
    }
}
