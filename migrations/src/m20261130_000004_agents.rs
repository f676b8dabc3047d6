//! `agents` (definitions managed through the API), `agent_runs` and
//! `run_steps` (every model call, tool call, policy decision and answer),
//! `user_memory` (what agents know about a user) and `run_feedback`.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[derive(DeriveIden)]
enum Agents {
    Table,
    Name,
    Definition,
    CreatedBy,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum AgentRuns {
    Table,
    Id,
    Agent,
    Status,
    Subject,
    Channel,
    Input,
    Answer,
    Error,
    State,
    Steps,
    PromptTokens,
    CompletionTokens,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum RunSteps {
    Table,
    Id,
    RunId,
    Idx,
    Kind,
    Detail,
    DurationMs,
    AuditSeq,
    CreatedAt,
}

#[derive(DeriveIden)]
enum UserMemory {
    Table,
    Id,
    Subject,
    Key,
    Value,
    Source,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum RunFeedback {
    Table,
    Id,
    RunId,
    Subject,
    Rating,
    Comment,
    Correction,
    CreatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Agents::Table)
                    .if_not_exists()
                    .col(string(Agents::Name).primary_key())
                    .col(text(Agents::Definition))
                    .col(string_null(Agents::CreatedBy))
                    .col(timestamp_with_time_zone(Agents::CreatedAt))
                    .col(timestamp_with_time_zone(Agents::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(AgentRuns::Table)
                    .if_not_exists()
                    .col(string(AgentRuns::Id).primary_key())
                    .col(string(AgentRuns::Agent))
                    .col(string(AgentRuns::Status))
                    .col(string_null(AgentRuns::Subject))
                    .col(string_null(AgentRuns::Channel))
                    .col(text(AgentRuns::Input))
                    .col(text_null(AgentRuns::Answer))
                    .col(text_null(AgentRuns::Error))
                    .col(text_null(AgentRuns::State))
                    .col(integer(AgentRuns::Steps).default(0))
                    .col(integer(AgentRuns::PromptTokens).default(0))
                    .col(integer(AgentRuns::CompletionTokens).default(0))
                    .col(timestamp_with_time_zone(AgentRuns::CreatedAt))
                    .col(timestamp_with_time_zone(AgentRuns::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_agent_runs_agent")
                    .table(AgentRuns::Table)
                    .col(AgentRuns::Agent)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(RunSteps::Table)
                    .if_not_exists()
                    .col(big_pk_auto(RunSteps::Id))
                    .col(string(RunSteps::RunId))
                    .col(integer(RunSteps::Idx))
                    .col(string(RunSteps::Kind))
                    .col(text(RunSteps::Detail))
                    .col(double(RunSteps::DurationMs).default(0.0))
                    .col(big_integer_null(RunSteps::AuditSeq))
                    .col(timestamp_with_time_zone(RunSteps::CreatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_run_steps_run")
                    .table(RunSteps::Table)
                    .col(RunSteps::RunId)
                    .col(RunSteps::Idx)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(UserMemory::Table)
                    .if_not_exists()
                    .col(big_pk_auto(UserMemory::Id))
                    .col(string(UserMemory::Subject))
                    .col(string(UserMemory::Key))
                    .col(text(UserMemory::Value))
                    .col(string(UserMemory::Source))
                    .col(timestamp_with_time_zone(UserMemory::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_user_memory_subject_key")
                    .table(UserMemory::Table)
                    .col(UserMemory::Subject)
                    .col(UserMemory::Key)
                    .unique()
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(RunFeedback::Table)
                    .if_not_exists()
                    .col(big_pk_auto(RunFeedback::Id))
                    .col(string(RunFeedback::RunId))
                    .col(string(RunFeedback::Subject))
                    .col(integer(RunFeedback::Rating))
                    .col(text_null(RunFeedback::Comment))
                    .col(text_null(RunFeedback::Correction))
                    .col(timestamp_with_time_zone(RunFeedback::CreatedAt))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for t in [
            RunFeedback::Table.into_iden(),
            UserMemory::Table.into_iden(),
            RunSteps::Table.into_iden(),
            AgentRuns::Table.into_iden(),
            Agents::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(t).to_owned())
                .await?;
        }
        Ok(())
    }
}
