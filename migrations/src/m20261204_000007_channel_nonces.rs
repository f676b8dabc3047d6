//! `channel_nonces`: values a channel accepts once. Mailgun's webhook
//! tokens (a replayed request carries a valid signature, so only
//! remembering the token refuses it) and approval-link tokens (a link
//! decides once; a second click is told it was used).

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[derive(DeriveIden)]
enum ChannelNonces {
    Table,
    Id,
    Channel,
    Connection,
    Kind,
    Value,
    UsedBy,
    CreatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(ChannelNonces::Table)
                    .if_not_exists()
                    .col(big_pk_auto(ChannelNonces::Id))
                    .col(string(ChannelNonces::Channel))
                    .col(string(ChannelNonces::Connection))
                    .col(string(ChannelNonces::Kind))
                    .col(string(ChannelNonces::Value))
                    .col(string_null(ChannelNonces::UsedBy))
                    .col(timestamp_with_time_zone(ChannelNonces::CreatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_channel_nonces_value")
                    .table(ChannelNonces::Table)
                    .col(ChannelNonces::Channel)
                    .col(ChannelNonces::Connection)
                    .col(ChannelNonces::Kind)
                    .col(ChannelNonces::Value)
                    .unique()
                    .if_not_exists()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(ChannelNonces::Table).to_owned())
            .await
    }
}
