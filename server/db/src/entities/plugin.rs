//! `plugins`: the installed set, with the digest recorded at install.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "plugins")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub name: String,
    pub version: String,
    /// `sha256:<hex>` of the component, checked at every load.
    pub digest: String,
    /// `managed` (installed through the API or CLI) or `directory:<path>`.
    pub source: String,
    pub enabled: bool,
    pub installed_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
