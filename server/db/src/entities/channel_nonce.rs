//! `channel_nonces`: values a channel accepts once (webhook tokens,
//! approval-link tokens).

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "channel_nonces")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub channel: String,
    pub connection: String,
    /// What the value is (`mailgun-token`, `approval-link`).
    pub kind: String,
    pub value: String,
    /// Who used it, where that is known (an approver's address).
    pub used_by: Option<String>,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
