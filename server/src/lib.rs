//! Warden: a self-hosted plugin and agent platform. See ARCHITECTURE.md.

pub mod agent_cli;
pub mod agents;
pub mod api;
pub mod bench;
pub mod bench_agents;
pub mod bench_governance;
pub mod bench_plugins;
pub mod cli;
pub mod config;
pub mod db;
pub mod governance;
pub mod governance_cli;
pub mod keys;
pub mod llm;
pub mod metrics;
pub mod model;
pub mod plugin_cli;
mod plugin_template;
pub mod plugins;
pub mod server;
pub mod task_stream;
pub mod telemetry;
