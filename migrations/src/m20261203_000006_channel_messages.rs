//! `channel_messages`: the message ids of a conversation (an email thread's
//! `Message-ID`s, inbound and Warden's own) and who took part, so a reply
//! joins its conversation by `In-Reply-To` / `References`, and only if its
//! sender belongs to it (those headers are forgeable).

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[derive(DeriveIden)]
enum ChannelMessages {
    Table,
    Id,
    Channel,
    Connection,
    MessageId,
    ThreadKey,
    Participant,
    CreatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(ChannelMessages::Table)
                    .if_not_exists()
                    .col(big_pk_auto(ChannelMessages::Id))
                    .col(string(ChannelMessages::Channel))
                    .col(string(ChannelMessages::Connection))
                    .col(string(ChannelMessages::MessageId))
                    .col(string(ChannelMessages::ThreadKey))
                    .col(string(ChannelMessages::Participant))
                    .col(timestamp_with_time_zone(ChannelMessages::CreatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_channel_messages_id")
                    .table(ChannelMessages::Table)
                    .col(ChannelMessages::Channel)
                    .col(ChannelMessages::Connection)
                    .col(ChannelMessages::MessageId)
                    .unique()
                    .if_not_exists()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(ChannelMessages::Table).to_owned())
            .await
    }
}
