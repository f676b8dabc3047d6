//! `audit_log`: one governance decision per row, hash-chained.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, serde::Serialize)]
#[sea_orm(table_name = "audit_log")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub seq: i64,
    /// RFC 3339 UTC with microseconds; stored as text so that it hashes
    /// the same on every database.
    pub at: String,
    pub run_id: Option<String>,
    pub stage: String,
    /// The API key name.
    pub subject: Option<String>,
    pub agent: Option<String>,
    pub plugin: Option<String>,
    pub tool: Option<String>,
    pub channel: Option<String>,
    pub decision: String,
    pub mode: String,
    /// `,policy/rule,policy/rule,`: matched rules, for filtering.
    pub policies: String,
    /// JSON: the matches with spans as offsets and types, never values.
    pub matches: String,
    pub bundle: String,
    pub content_sha256: String,
    pub prev_hash: String,
    pub hash: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
