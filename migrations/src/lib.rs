//! Database schema for Warden, as ordered sea-orm migrations.
//!
//! Migrations only ever add: a released migration is never edited, so every
//! database (SQLite or PostgreSQL) converges on the same schema.

pub use sea_orm_migration::prelude::*;

mod m20261128_000001_keys_and_request_log;
mod m20261129_000002_plugins;
mod m20261130_000003_audit;
mod m20261130_000004_agents;
mod m20261203_000005_channels;
mod m20261203_000006_channel_messages;
mod m20261204_000007_channel_nonces;
mod m20261204_000008_console_sessions;
mod m20261204_000009_agent_runs_created_index;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261128_000001_keys_and_request_log::Migration),
            Box::new(m20261129_000002_plugins::Migration),
            Box::new(m20261130_000003_audit::Migration),
            Box::new(m20261130_000004_agents::Migration),
            Box::new(m20261203_000005_channels::Migration),
            Box::new(m20261203_000006_channel_messages::Migration),
            Box::new(m20261204_000007_channel_nonces::Migration),
            Box::new(m20261204_000008_console_sessions::Migration),
            Box::new(m20261204_000009_agent_runs_created_index::Migration),
        ]
    }
}
