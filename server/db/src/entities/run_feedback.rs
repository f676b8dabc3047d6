//! `run_feedback`: ratings (and corrections) of agent answers.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "run_feedback")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub run_id: String,
    pub subject: String,
    /// 1 (good) or -1 (bad).
    pub rating: i32,
    pub comment: Option<String>,
    /// A better answer, when the rater gave one.
    pub correction: Option<String>,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
