//! `plugins` (the installed set), `plugin_events` (every change to it) and
//! `plugin_kv` (the plugins' durable key-value buckets).

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[derive(DeriveIden)]
enum Plugins {
    Table,
    Id,
    Name,
    Version,
    Digest,
    Source,
    Enabled,
    InstalledAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum PluginEvents {
    Table,
    Id,
    PluginId,
    Action,
    Actor,
    Detail,
    CreatedAt,
}

#[derive(DeriveIden)]
enum PluginKv {
    Table,
    PluginId,
    Bucket,
    Key,
    Value,
    UpdatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Plugins::Table)
                    .if_not_exists()
                    .col(string(Plugins::Id).primary_key())
                    .col(string(Plugins::Name))
                    .col(string(Plugins::Version))
                    .col(string(Plugins::Digest))
                    .col(string(Plugins::Source))
                    .col(boolean(Plugins::Enabled).default(true))
                    .col(timestamp_with_time_zone(Plugins::InstalledAt))
                    .col(timestamp_with_time_zone(Plugins::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(PluginEvents::Table)
                    .if_not_exists()
                    .col(big_pk_auto(PluginEvents::Id))
                    .col(string(PluginEvents::PluginId))
                    .col(string(PluginEvents::Action))
                    .col(string_null(PluginEvents::Actor))
                    .col(text_null(PluginEvents::Detail))
                    .col(timestamp_with_time_zone(PluginEvents::CreatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_plugin_events_plugin_id")
                    .table(PluginEvents::Table)
                    .col(PluginEvents::PluginId)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(PluginKv::Table)
                    .if_not_exists()
                    .col(string(PluginKv::PluginId))
                    .col(string(PluginKv::Bucket))
                    .col(string(PluginKv::Key))
                    .col(blob(PluginKv::Value))
                    .col(timestamp_with_time_zone(PluginKv::UpdatedAt))
                    .primary_key(
                        Index::create()
                            .col(PluginKv::PluginId)
                            .col(PluginKv::Bucket)
                            .col(PluginKv::Key),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            PluginKv::Table.into_iden(),
            PluginEvents::Table.into_iden(),
            Plugins::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}
