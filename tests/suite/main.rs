//! Integration suite: real `warden` servers, the real SmolLM2 model, real
//! wasm plugins, real SQLite and PostgreSQL databases, driven by real
//! OpenAI clients.

mod agents;
mod api_bad_input;
mod api_chat;
mod console;
mod email;
mod governance_audit;
mod governance_chat;
mod governance_policies;
mod persistence;
mod plugin_cli;
mod plugin_registry;
mod plugin_sandbox;
mod plugins_first_party;
mod python_client;
mod remote_backend;
mod shutdown;
mod slack;
