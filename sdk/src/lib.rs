//! Write Warden plugins in plain Rust.
//!
//! A plugin is a set of tools; a tool is a function from a `serde`
//! argument type (whose JSON Schema is generated with `schemars`) to any
//! `Serialize` output. [`export_plugin!`] turns a type implementing
//! [`Plugin`] into a WebAssembly component that Warden's host can run:
//!
//! ```ignore
//! use warden_sdk::{Context, Effect, JsonSchema, Plugin, Tool, ToolError};
//! use serde::Deserialize;
//!
//! #[derive(Deserialize, JsonSchema)]
//! struct Greet { name: String }
//!
//! fn greet(_: &Context, a: Greet) -> Result<String, ToolError> {
//!     Ok(format!("hello, {}", a.name))
//! }
//!
//! struct Hello;
//! impl Plugin for Hello {
//!     const ID: &'static str = "acme.hello";
//!     const VERSION: &'static str = env!("CARGO_PKG_VERSION");
//!     fn tools() -> Vec<Tool> {
//!         vec![Tool::new("greet", "Greets someone by name", Effect::Pure, greet)]
//!     }
//! }
//! warden_sdk::export_plugin!(Hello);
//! ```
//!
//! Host capabilities live in [`kv`], [`llm`], [`config`], [`log`] and
//! [`http`]; each returns a [`HostError`] when the capability is not
//! granted, which converts into a [`ToolError`] with `?`.
//! See sdk/README.md for the whole author guide.

#[doc(hidden)]
#[allow(clippy::too_many_arguments)] // generated import shims
pub mod bindings {
    wit_bindgen::generate!({
        path: "wit/v0.1.0",
        world: "warden:plugin/plugin",
        pub_export_macro: true,
        default_bindings_module: "warden_sdk::bindings",
        export_macro_name: "export",
    });
}

pub mod config;
mod errors;
pub mod http;
pub mod kv;
pub mod llm;
pub mod log;
mod tool;

#[doc(hidden)]
pub mod runtime;

pub use errors::{HostError, ToolError};
pub use schemars::{self, JsonSchema};
pub use serde_json;
pub use tool::{Context, Effect, Plugin, Tool};

/// Seconds since the Unix epoch (0 if the clock is before it).
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Exports `$plugin` (a type implementing [`Plugin`]) as the component's
/// `describe` and `call-tool`. Use it once, at the crate root.
#[macro_export]
macro_rules! export_plugin {
    ($plugin:ty) => {
        #[doc(hidden)]
        pub struct __WardenExport;

        impl $crate::bindings::Guest for __WardenExport {
            fn describe() -> $crate::bindings::PluginInfo {
                $crate::runtime::describe::<$plugin>()
            }

            fn call_tool(
                context: $crate::bindings::CallContext,
                name: ::std::string::String,
                arguments: ::std::string::String,
            ) -> ::std::result::Result<$crate::bindings::ToolOutput, $crate::bindings::ToolError> {
                $crate::runtime::call_tool::<$plugin>(context, &name, &arguments)
            }
        }

        $crate::bindings::export!(__WardenExport with_types_in $crate::bindings);
    };
}
