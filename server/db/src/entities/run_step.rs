//! `run_steps`: what happened in a run, in order.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "run_steps")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub run_id: String,
    pub idx: i32,
    /// model, tool_call, tool_result, policy, answer, error
    pub kind: String,
    /// JSON; see `warden_agents::StepRecord`.
    pub detail: String,
    pub duration_ms: f64,
    /// The audit record of a policy decision.
    pub audit_seq: Option<i64>,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
