//! Warden: a self-hosted plugin and agent platform. See ARCHITECTURE.md.

pub mod api;
pub mod bench;
pub mod cli;
pub mod config;
pub mod db;
pub mod keys;
pub mod llm;
pub mod metrics;
pub mod model;
pub mod server;
pub mod task_stream;
pub mod telemetry;
