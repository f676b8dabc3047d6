//! Plugins: WebAssembly components run sandboxed in wasmtime.
//!
//! - [`manifest`]: `plugin.toml`, what a plugin is and requests (no wasmtime).
//! - [`grant`]: request ∩ operator grant, limits and refusal messages.
//! - [`bindings`]: the single `bindgen!` over `sdk/wit`.
//! - [`engine`], [`runtime`], [`limiter`], [`state`], [`http`], [`host`]:
//!   compiling, linking and running one call under its limits.
//! - [`manager`]: the installed set, backed by the database.
//! - [`kv_store`]: the durable side of the `kv` import.

pub mod bindings;
pub mod engine;
pub mod grant;
pub mod host;
pub mod http;
pub mod kv_store;
pub mod limiter;
pub mod manager;
pub mod manifest;
pub mod runtime;
pub mod standalone;
pub mod state;

pub use host::{HostServices, LlmProvider};
pub use manager::{ManageError, PluginManager, PluginView};
pub use manifest::Manifest;
pub use runtime::{CallError, CallOutcome, CallRequest, LoadedPlugin};
