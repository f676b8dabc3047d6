//! `console_sessions`: admin console logins. The session id a browser holds
//! is stored only as its SHA-256; the row names the API key it was made
//! with (a revoked key ends its sessions at once) and carries the
//! session's CSRF token and expiry.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[derive(DeriveIden)]
enum ConsoleSessions {
    Table,
    IdHash,
    KeyId,
    KeyName,
    Csrf,
    CreatedAt,
    ExpiresAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(ConsoleSessions::Table)
                    .if_not_exists()
                    .col(string(ConsoleSessions::IdHash).primary_key())
                    .col(big_integer(ConsoleSessions::KeyId))
                    .col(string(ConsoleSessions::KeyName))
                    .col(string(ConsoleSessions::Csrf))
                    .col(timestamp_with_time_zone(ConsoleSessions::CreatedAt))
                    .col(timestamp_with_time_zone(ConsoleSessions::ExpiresAt))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(ConsoleSessions::Table).to_owned())
            .await
    }
}
