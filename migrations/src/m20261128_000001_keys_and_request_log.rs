//! `api_keys` and `request_log`.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[derive(DeriveIden)]
enum ApiKeys {
    Table,
    Id,
    Name,
    Role,
    KeyHash,
    Prefix,
    CreatedAt,
    LastUsedAt,
    Revoked,
}

#[derive(DeriveIden)]
enum RequestLog {
    Table,
    Id,
    KeyId,
    Endpoint,
    Model,
    Status,
    PromptTokens,
    CompletionTokens,
    LatencyMs,
    Streamed,
    CreatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(ApiKeys::Table)
                    .if_not_exists()
                    .col(big_pk_auto(ApiKeys::Id))
                    .col(string_uniq(ApiKeys::Name))
                    .col(string(ApiKeys::Role))
                    .col(string_uniq(ApiKeys::KeyHash))
                    .col(string(ApiKeys::Prefix))
                    .col(timestamp_with_time_zone(ApiKeys::CreatedAt))
                    .col(timestamp_with_time_zone_null(ApiKeys::LastUsedAt))
                    .col(boolean(ApiKeys::Revoked).default(false))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(RequestLog::Table)
                    .if_not_exists()
                    .col(big_pk_auto(RequestLog::Id))
                    .col(big_integer_null(RequestLog::KeyId))
                    .col(string(RequestLog::Endpoint))
                    .col(string_null(RequestLog::Model))
                    .col(integer(RequestLog::Status))
                    .col(integer(RequestLog::PromptTokens).default(0))
                    .col(integer(RequestLog::CompletionTokens).default(0))
                    .col(big_integer(RequestLog::LatencyMs))
                    .col(boolean(RequestLog::Streamed).default(false))
                    .col(timestamp_with_time_zone(RequestLog::CreatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(RequestLog::Table, RequestLog::KeyId)
                            .to(ApiKeys::Table, ApiKeys::Id)
                            .on_delete(ForeignKeyAction::SetNull),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_request_log_created_at")
                    .table(RequestLog::Table)
                    .col(RequestLog::CreatedAt)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_request_log_key_id")
                    .table(RequestLog::Table)
                    .col(RequestLog::KeyId)
                    .if_not_exists()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(RequestLog::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(ApiKeys::Table).to_owned())
            .await
    }
}
