//! An index on `agent_runs (created_at, id)`: the runs list (API and
//! console) pages newest first by that keyset, which without it sorts the
//! whole table for every page.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[derive(DeriveIden)]
enum AgentRuns {
    Table,
    CreatedAt,
    Id,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(
                Index::create()
                    .name("idx_agent_runs_created")
                    .table(AgentRuns::Table)
                    .col(AgentRuns::CreatedAt)
                    .col(AgentRuns::Id)
                    .if_not_exists()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(Index::drop().name("idx_agent_runs_created").to_owned())
            .await
    }
}
