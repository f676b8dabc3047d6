//! `request_log`: one row per API request (who, what model, tokens, latency).

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "request_log")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub key_id: Option<i64>,
    pub endpoint: String,
    pub model: Option<String>,
    pub status: i32,
    pub prompt_tokens: i32,
    pub completion_tokens: i32,
    pub latency_ms: i64,
    pub streamed: bool,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
