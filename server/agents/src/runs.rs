//! Runs and their steps in the database. A run row is created before the
//! first step and updated as the run moves; every step is appended as it
//! happens, so a crash leaves the run's history up to that point.

use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Set,
};
use serde::Serialize;
use serde_json::Value;

use warden_db::entities::{agent_run, run_step};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Running,
    Completed,
    /// A policy blocked the input or the answer.
    Blocked,
    /// `max_steps` model calls without a final answer.
    MaxSteps,
    TimedOut,
    Failed,
    /// Paused until an approver approves or rejects a tool call.
    AwaitingApproval,
    Cancelled,
}

impl RunStatus {
    pub const ALL: [RunStatus; 8] = [
        RunStatus::Running,
        RunStatus::Completed,
        RunStatus::Blocked,
        RunStatus::MaxSteps,
        RunStatus::TimedOut,
        RunStatus::Failed,
        RunStatus::AwaitingApproval,
        RunStatus::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Completed => "completed",
            RunStatus::Blocked => "blocked",
            RunStatus::MaxSteps => "max_steps",
            RunStatus::TimedOut => "timed_out",
            RunStatus::Failed => "failed",
            RunStatus::AwaitingApproval => "awaiting_approval",
            RunStatus::Cancelled => "cancelled",
        }
    }
}

/// What a step was. Stored and reported as its snake_case name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StepKind {
    /// A model call (its output as the policies let it through, tokens).
    Model,
    /// A model output that was not a usable step.
    Malformed,
    /// A call the model had already made; not run again.
    Repeat,
    /// A tool call with its input and output (or error).
    ToolCall,
    /// A policy decision other than a plain allow, linked to its audit record.
    Policy,
    /// An approver's decision on a paused call.
    Approval,
    /// The final answer.
    Answer,
    /// The run paused for an approver.
    AwaitingApproval,
    /// The run ended without an answer.
    Error,
}

impl StepKind {
    pub const ALL: [StepKind; 9] = [
        StepKind::Model,
        StepKind::Malformed,
        StepKind::Repeat,
        StepKind::ToolCall,
        StepKind::Policy,
        StepKind::Approval,
        StepKind::Answer,
        StepKind::AwaitingApproval,
        StepKind::Error,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            StepKind::Model => "model",
            StepKind::Malformed => "malformed",
            StepKind::Repeat => "repeat",
            StepKind::ToolCall => "tool_call",
            StepKind::Policy => "policy",
            StepKind::Approval => "approval",
            StepKind::Answer => "answer",
            StepKind::AwaitingApproval => "awaiting_approval",
            StepKind::Error => "error",
        }
    }

    pub fn parse(s: &str) -> Option<StepKind> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// One step as it is stored and reported.
#[derive(Debug, Clone, Serialize)]
pub struct StepRecord {
    pub idx: i32,
    pub kind: StepKind,
    pub detail: Value,
    pub duration_ms: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audit_seq: Option<i64>,
}

impl From<&run_step::Model> for StepRecord {
    fn from(m: &run_step::Model) -> Self {
        Self {
            idx: m.idx,
            // Only this crate writes steps; a kind it does not know means
            // the row was written by a newer Warden, reported as an error step.
            kind: StepKind::parse(&m.kind).unwrap_or(StepKind::Error),
            detail: serde_json::from_str(&m.detail).unwrap_or(Value::Null),
            duration_ms: m.duration_ms,
            audit_seq: m.audit_seq,
        }
    }
}

/// The error of a run that a stopped server left `running` (a channel
/// re-runs such a run's message; anything else failed on its own).
pub const INTERRUPTED: &str = "interrupted: the server stopped during the run";

#[derive(Clone)]
pub struct RunStore {
    db: DatabaseConnection,
}

impl RunStore {
    pub fn new(db: DatabaseConnection) -> Self {
        Self { db }
    }

    pub async fn create(
        &self,
        id: &str,
        agent: &str,
        subject: Option<&str>,
        channel: Option<&str>,
        input: &str,
    ) -> Result<(), DbErr> {
        let now = chrono::Utc::now();
        agent_run::ActiveModel {
            id: Set(id.to_owned()),
            agent: Set(agent.to_owned()),
            status: Set(RunStatus::Running.as_str().to_owned()),
            subject: Set(subject.map(str::to_owned)),
            channel: Set(channel.map(str::to_owned)),
            input: Set(input.to_owned()),
            answer: Set(None),
            error: Set(None),
            state: Set(None),
            steps: Set(0),
            prompt_tokens: Set(0),
            completion_tokens: Set(0),
            created_at: Set(now),
            updated_at: Set(now),
        }
        .insert(&self.db)
        .await
        .map(|_| ())
    }

    pub async fn step(&self, run_id: &str, step: &StepRecord) -> Result<(), DbErr> {
        run_step::ActiveModel {
            run_id: Set(run_id.to_owned()),
            idx: Set(step.idx),
            kind: Set(step.kind.as_str().to_owned()),
            detail: Set(step.detail.to_string()),
            duration_ms: Set(step.duration_ms),
            audit_seq: Set(step.audit_seq),
            created_at: Set(chrono::Utc::now()),
            ..Default::default()
        }
        .insert(&self.db)
        .await
        .map(|_| ())
    }

    #[allow(clippy::too_many_arguments)]
    pub async fn finish(
        &self,
        run_id: &str,
        from: RunStatus,
        status: RunStatus,
        answer: Option<&str>,
        error: Option<&str>,
        state: Option<&str>,
        steps: i32,
        prompt_tokens: u32,
        completion_tokens: u32,
    ) -> Result<bool, DbErr> {
        // Only a running run is concluded by its runner: a cancel that won
        // the race keeps its status. Returns whether this call concluded it.
        let r = agent_run::Entity::update_many()
            .set(agent_run::ActiveModel {
                status: Set(status.as_str().to_owned()),
                answer: Set(answer.map(str::to_owned)),
                error: Set(error.map(str::to_owned)),
                state: Set(state.map(str::to_owned)),
                steps: Set(steps),
                prompt_tokens: Set(i32::try_from(prompt_tokens).unwrap_or(i32::MAX)),
                completion_tokens: Set(i32::try_from(completion_tokens).unwrap_or(i32::MAX)),
                updated_at: Set(chrono::Utc::now()),
                ..Default::default()
            })
            .filter(agent_run::Column::Id.eq(run_id))
            .filter(agent_run::Column::Status.eq(from.as_str()))
            .exec(&self.db)
            .await?;
        Ok(r.rows_affected == 1)
    }

    /// The message as the model saw it (after the input check).
    pub async fn set_input(&self, run_id: &str, input: &str) -> Result<(), DbErr> {
        agent_run::Entity::update_many()
            .col_expr(
                agent_run::Column::Input,
                sea_orm::sea_query::Expr::value(input),
            )
            .filter(agent_run::Column::Id.eq(run_id))
            .exec(&self.db)
            .await
            .map(|_| ())
    }

    /// Moves a run from one status to another if it is still in the first;
    /// false when it was not (someone else moved it).
    pub async fn transition(
        &self,
        run_id: &str,
        from: RunStatus,
        to: RunStatus,
    ) -> Result<bool, DbErr> {
        let r = agent_run::Entity::update_many()
            .col_expr(
                agent_run::Column::Status,
                sea_orm::sea_query::Expr::value(to.as_str()),
            )
            .col_expr(
                agent_run::Column::UpdatedAt,
                sea_orm::sea_query::Expr::value(chrono::Utc::now()),
            )
            .filter(agent_run::Column::Id.eq(run_id))
            .filter(agent_run::Column::Status.eq(from.as_str()))
            .exec(&self.db)
            .await?;
        Ok(r.rows_affected == 1)
    }

    /// Runs left `running` by a process that stopped mid-run are failed.
    pub async fn fail_interrupted(&self) -> Result<u64, DbErr> {
        let r = agent_run::Entity::update_many()
            .col_expr(
                agent_run::Column::Status,
                sea_orm::sea_query::Expr::value(RunStatus::Failed.as_str()),
            )
            .col_expr(
                agent_run::Column::Error,
                sea_orm::sea_query::Expr::value(INTERRUPTED),
            )
            .filter(agent_run::Column::Status.eq(RunStatus::Running.as_str()))
            .exec(&self.db)
            .await?;
        Ok(r.rows_affected)
    }

    pub async fn get(
        &self,
        run_id: &str,
    ) -> Result<Option<(agent_run::Model, Vec<run_step::Model>)>, DbErr> {
        let Some(run) = agent_run::Entity::find_by_id(run_id.to_owned())
            .one(&self.db)
            .await?
        else {
            return Ok(None);
        };
        let steps = run_step::Entity::find()
            .filter(run_step::Column::RunId.eq(run_id))
            .order_by_asc(run_step::Column::Idx)
            .order_by_asc(run_step::Column::Id)
            .all(&self.db)
            .await?;
        Ok(Some((run, steps)))
    }

    pub async fn list(
        &self,
        agent: Option<&str>,
        status: Option<&str>,
        subject: Option<&str>,
        limit: u64,
    ) -> Result<Vec<agent_run::Model>, DbErr> {
        let mut q = agent_run::Entity::find();
        if let Some(a) = agent {
            q = q.filter(agent_run::Column::Agent.eq(a));
        }
        if let Some(s) = status {
            q = q.filter(agent_run::Column::Status.eq(s));
        }
        if let Some(s) = subject {
            q = q.filter(agent_run::Column::Subject.eq(s));
        }
        q.order_by_desc(agent_run::Column::CreatedAt)
            .limit(limit)
            .all(&self.db)
            .await
    }

    /// One page of runs, newest first, older than `before` (a run's
    /// `created_at` and id: a keyset, so a page costs the same however deep).
    pub async fn page(
        &self,
        agent: Option<&str>,
        status: Option<&str>,
        before: Option<(chrono::DateTime<chrono::Utc>, String)>,
        limit: u64,
    ) -> Result<Vec<agent_run::Model>, DbErr> {
        use sea_orm::Condition;
        let mut q = agent_run::Entity::find();
        if let Some(a) = agent {
            q = q.filter(agent_run::Column::Agent.eq(a));
        }
        if let Some(s) = status {
            q = q.filter(agent_run::Column::Status.eq(s));
        }
        if let Some((at, id)) = before {
            q = q.filter(
                Condition::any()
                    .add(agent_run::Column::CreatedAt.lt(at))
                    .add(
                        Condition::all()
                            .add(agent_run::Column::CreatedAt.eq(at))
                            .add(agent_run::Column::Id.lt(id)),
                    ),
            );
        }
        q.order_by_desc(agent_run::Column::CreatedAt)
            .order_by_desc(agent_run::Column::Id)
            .limit(limit)
            .all(&self.db)
            .await
    }

    /// Runs started since `t`, and the tokens they used.
    pub async fn since(&self, t: chrono::DateTime<chrono::Utc>) -> Result<(u64, i64), DbErr> {
        let rows: Vec<(i32, i32)> = agent_run::Entity::find()
            .select_only()
            .column(agent_run::Column::PromptTokens)
            .column(agent_run::Column::CompletionTokens)
            .filter(agent_run::Column::CreatedAt.gte(t))
            .into_tuple()
            .all(&self.db)
            .await?;
        let tokens = rows
            .iter()
            .map(|(p, c)| i64::from(*p) + i64::from(*c))
            .sum();
        Ok((rows.len() as u64, tokens))
    }
}

/// Who made the run's latest approval decision (`by` of its last approval
/// step), for "already decided by …" answers.
pub fn last_approver(steps: &[run_step::Model]) -> Option<String> {
    steps
        .iter()
        .rev()
        .find(|s| s.kind == StepKind::Approval.as_str())
        .and_then(|s| serde_json::from_str::<Value>(&s.detail).ok())
        .and_then(|d| d.get("by").and_then(|b| b.as_str()).map(str::to_owned))
}

/// A run and its steps as the API shows them.
pub fn run_view(run: &agent_run::Model, steps: &[run_step::Model]) -> Value {
    serde_json::json!({
        "id": run.id,
        "agent": run.agent,
        "status": run.status,
        "subject": run.subject,
        "channel": run.channel,
        "input": run.input,
        "answer": run.answer,
        "error": run.error,
        "usage": {"prompt_tokens": run.prompt_tokens, "completion_tokens": run.completion_tokens},
        "created_at": run.created_at.to_rfc3339(),
        "updated_at": run.updated_at.to_rfc3339(),
        "steps": steps.iter().map(|s| serde_json::json!({
            "idx": s.idx,
            "kind": s.kind,
            "detail": serde_json::from_str::<Value>(&s.detail).unwrap_or(Value::Null),
            "duration_ms": s.duration_ms,
            "audit_seq": s.audit_seq,
        })).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod step_kind_tests {
    use super::StepKind;

    #[test]
    fn every_step_kind_round_trips_through_its_stored_name() {
        for kind in StepKind::ALL {
            assert_eq!(StepKind::parse(kind.as_str()), Some(kind));
            assert_eq!(
                serde_json::to_value(kind).unwrap(),
                serde_json::json!(kind.as_str())
            );
        }
        assert_eq!(StepKind::parse("bogus"), None);
    }
}
