//! `agent_runs`: one row per agent run, updated as it progresses.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "agent_runs")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub agent: String,
    /// running, awaiting_approval, completed, failed, blocked, max_steps,
    /// timed_out, cancelled
    pub status: String,
    /// The API key name that started the run.
    pub subject: Option<String>,
    pub channel: Option<String>,
    pub input: String,
    pub answer: Option<String>,
    pub error: Option<String>,
    /// While awaiting approval: what the run needs to continue (JSON).
    pub state: Option<String>,
    pub steps: i32,
    pub prompt_tokens: i32,
    pub completion_tokens: i32,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
