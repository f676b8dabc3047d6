//! The channel core shared by Slack and email: `channel_inbox` (every
//! verified inbound event, stored before it is acknowledged, deduped by two
//! keys), `channel_conversations` and `channel_turns` (an external thread
//! and the agent history it carries), `channel_identities` (external users
//! as Warden users) and `channel_outbox` (replies, delivered with retries).

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[derive(DeriveIden)]
enum ChannelInbox {
    Table,
    Id,
    Channel,
    Connection,
    EventKey,
    MessageKey,
    Status,
    Note,
    Payload,
    RunId,
    Attempts,
    ReceivedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum ChannelConversations {
    Table,
    Id,
    Channel,
    Connection,
    ThreadKey,
    Agent,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum ChannelTurns {
    Table,
    Id,
    ConversationId,
    Role,
    Content,
    RunId,
    CreatedAt,
}

#[derive(DeriveIden)]
enum ChannelIdentities {
    Table,
    Id,
    Channel,
    ExternalId,
    User,
    DisplayName,
    CreatedAt,
    LastSeenAt,
}

#[derive(DeriveIden)]
enum ChannelOutbox {
    Table,
    Id,
    Channel,
    Connection,
    InboxId,
    DedupeKey,
    Kind,
    Target,
    Body,
    AfterId,
    Status,
    Attempts,
    NextAttemptAt,
    LastError,
    ExternalRef,
    CreatedAt,
    UpdatedAt,
}

async fn index(
    manager: &SchemaManager<'_>,
    name: &str,
    table: impl IntoIden,
    cols: Vec<DynIden>,
    unique: bool,
) -> Result<(), DbErr> {
    let mut index = Index::create();
    index.name(name).table(table).if_not_exists();
    for c in cols {
        index.col(c);
    }
    if unique {
        index.unique();
    }
    manager.create_index(index.to_owned()).await
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(ChannelInbox::Table)
                    .if_not_exists()
                    .col(string(ChannelInbox::Id).primary_key())
                    .col(string(ChannelInbox::Channel))
                    .col(string(ChannelInbox::Connection))
                    .col(string(ChannelInbox::EventKey))
                    .col(string_null(ChannelInbox::MessageKey))
                    .col(string(ChannelInbox::Status))
                    .col(text_null(ChannelInbox::Note))
                    .col(text(ChannelInbox::Payload))
                    .col(string_null(ChannelInbox::RunId))
                    .col(integer(ChannelInbox::Attempts).default(0))
                    .col(timestamp_with_time_zone(ChannelInbox::ReceivedAt))
                    .col(timestamp_with_time_zone(ChannelInbox::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        // NULL message keys (ignored events) never collide.
        index(
            manager,
            "idx_channel_inbox_event_key",
            ChannelInbox::Table,
            vec![
                ChannelInbox::Channel.into_iden(),
                ChannelInbox::Connection.into_iden(),
                ChannelInbox::EventKey.into_iden(),
            ],
            true,
        )
        .await?;
        index(
            manager,
            "idx_channel_inbox_message_key",
            ChannelInbox::Table,
            vec![
                ChannelInbox::Channel.into_iden(),
                ChannelInbox::Connection.into_iden(),
                ChannelInbox::MessageKey.into_iden(),
            ],
            true,
        )
        .await?;
        index(
            manager,
            "idx_channel_inbox_status",
            ChannelInbox::Table,
            vec![ChannelInbox::Status.into_iden()],
            false,
        )
        .await?;
        index(
            manager,
            "idx_channel_inbox_run",
            ChannelInbox::Table,
            vec![ChannelInbox::RunId.into_iden()],
            false,
        )
        .await?;

        manager
            .create_table(
                Table::create()
                    .table(ChannelConversations::Table)
                    .if_not_exists()
                    .col(string(ChannelConversations::Id).primary_key())
                    .col(string(ChannelConversations::Channel))
                    .col(string(ChannelConversations::Connection))
                    .col(string(ChannelConversations::ThreadKey))
                    .col(string(ChannelConversations::Agent))
                    .col(timestamp_with_time_zone(ChannelConversations::CreatedAt))
                    .col(timestamp_with_time_zone(ChannelConversations::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        index(
            manager,
            "idx_channel_conversations_thread",
            ChannelConversations::Table,
            vec![
                ChannelConversations::Channel.into_iden(),
                ChannelConversations::Connection.into_iden(),
                ChannelConversations::ThreadKey.into_iden(),
            ],
            true,
        )
        .await?;

        manager
            .create_table(
                Table::create()
                    .table(ChannelTurns::Table)
                    .if_not_exists()
                    .col(big_pk_auto(ChannelTurns::Id))
                    .col(string(ChannelTurns::ConversationId))
                    .col(string(ChannelTurns::Role))
                    .col(text(ChannelTurns::Content))
                    .col(string_null(ChannelTurns::RunId))
                    .col(timestamp_with_time_zone(ChannelTurns::CreatedAt))
                    .to_owned(),
            )
            .await?;
        index(
            manager,
            "idx_channel_turns_conversation",
            ChannelTurns::Table,
            vec![
                ChannelTurns::ConversationId.into_iden(),
                ChannelTurns::Id.into_iden(),
            ],
            false,
        )
        .await?;

        manager
            .create_table(
                Table::create()
                    .table(ChannelIdentities::Table)
                    .if_not_exists()
                    .col(big_pk_auto(ChannelIdentities::Id))
                    .col(string(ChannelIdentities::Channel))
                    .col(string(ChannelIdentities::ExternalId))
                    .col(string(ChannelIdentities::User))
                    .col(string_null(ChannelIdentities::DisplayName))
                    .col(timestamp_with_time_zone(ChannelIdentities::CreatedAt))
                    .col(timestamp_with_time_zone(ChannelIdentities::LastSeenAt))
                    .to_owned(),
            )
            .await?;
        index(
            manager,
            "idx_channel_identities_external",
            ChannelIdentities::Table,
            vec![
                ChannelIdentities::Channel.into_iden(),
                ChannelIdentities::ExternalId.into_iden(),
            ],
            true,
        )
        .await?;

        manager
            .create_table(
                Table::create()
                    .table(ChannelOutbox::Table)
                    .if_not_exists()
                    .col(big_pk_auto(ChannelOutbox::Id))
                    .col(string(ChannelOutbox::Channel))
                    .col(string(ChannelOutbox::Connection))
                    .col(string_null(ChannelOutbox::InboxId))
                    .col(string(ChannelOutbox::DedupeKey))
                    .col(string(ChannelOutbox::Kind))
                    .col(text(ChannelOutbox::Target))
                    .col(text(ChannelOutbox::Body))
                    .col(big_integer_null(ChannelOutbox::AfterId))
                    .col(string(ChannelOutbox::Status))
                    .col(integer(ChannelOutbox::Attempts).default(0))
                    .col(timestamp_with_time_zone(ChannelOutbox::NextAttemptAt))
                    .col(text_null(ChannelOutbox::LastError))
                    .col(string_null(ChannelOutbox::ExternalRef))
                    .col(timestamp_with_time_zone(ChannelOutbox::CreatedAt))
                    .col(timestamp_with_time_zone(ChannelOutbox::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        index(
            manager,
            "idx_channel_outbox_dedupe",
            ChannelOutbox::Table,
            vec![
                ChannelOutbox::Channel.into_iden(),
                ChannelOutbox::Connection.into_iden(),
                ChannelOutbox::DedupeKey.into_iden(),
            ],
            true,
        )
        .await?;
        index(
            manager,
            "idx_channel_outbox_inbox",
            ChannelOutbox::Table,
            vec![
                ChannelOutbox::InboxId.into_iden(),
                ChannelOutbox::Id.into_iden(),
            ],
            false,
        )
        .await?;
        index(
            manager,
            "idx_channel_outbox_due",
            ChannelOutbox::Table,
            vec![
                ChannelOutbox::Status.into_iden(),
                ChannelOutbox::NextAttemptAt.into_iden(),
            ],
            false,
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for t in [
            ChannelOutbox::Table.into_iden(),
            ChannelIdentities::Table.into_iden(),
            ChannelTurns::Table.into_iden(),
            ChannelConversations::Table.into_iden(),
            ChannelInbox::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(t).to_owned())
                .await?;
        }
        Ok(())
    }
}
