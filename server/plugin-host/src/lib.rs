//! The plugin host: WebAssembly components run sandboxed in wasmtime.
//!
//! - [`config`]: the `[plugins]` section of `warden.toml`, validated here.
//! - [`manifest`]: `plugin.toml`, what a plugin is and requests (no wasmtime).
//! - [`grant`]: request ∩ operator grant, limits and refusal messages.
//! - [`bindings`]: the single `bindgen!` over `sdk/wit`.
//! - [`engine`], [`runtime`], [`limiter`], [`state`], [`http`], [`host`]:
//!   compiling, linking and running one call under its limits.
//! - [`manager`]: the installed set, backed by the database.
//! - [`kv_store`]: the durable side of the `kv` import.
//!
//! Invariants: plugins reach the host only through the WIT imports; every
//! import checks the effective grant at call time; the model is reached
//! only through [`LlmProvider`] (the binary implements it over its
//! registry), so this crate never links an inference engine.

pub mod bindings;
pub mod config;
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

pub use config::PluginsConfig;
pub use host::{HostServices, LlmProvider};
pub use manager::{ManageError, PluginManager, PluginView, Source};
pub use manifest::Manifest;
pub use runtime::{CallError, CallOutcome, CallRequest, LoadedPlugin};
