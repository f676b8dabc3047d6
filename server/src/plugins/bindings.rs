//! The one place that runs `bindgen!` over `sdk/wit`: everything the host
//! knows about the plugin boundary comes from here.

wasmtime::component::bindgen!({
    path: "../sdk/wit",
    world: "plugin",
    imports: { default: async },
    exports: { default: async },
});

pub use self::warden::plugin::{config, kv, llm, log, types};
