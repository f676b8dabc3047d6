//! Integration suite: real `warden` servers, the real SmolLM2 model, real
//! SQLite and PostgreSQL databases, driven by real OpenAI clients.

mod api_bad_input;
mod api_chat;
mod persistence;
mod python_client;
mod remote_backend;
mod shutdown;
