//! The one place that runs `bindgen!` over the plugin WIT: everything the
//! host knows about the plugin boundary comes from here.
//!
//! The WIT lives under a versioned path (`sdk/wit/v<API_VERSION>/`); a new
//! version of the boundary is a new directory, and [`API_VERSION`] names
//! the one this host implements. Manifests declare the `api_version` they
//! were built against, and `warden plugin new` writes this one.

/// The `warden:plugin` package version this host implements.
pub const API_VERSION: &str = "0.1.0";

wasmtime::component::bindgen!({
    path: "../../sdk/wit/v0.1.0",
    world: "plugin",
    imports: { default: async },
    exports: { default: async },
});

pub use self::warden::plugin::{config, kv, llm, log, types};

#[cfg(test)]
mod tests {
    use super::API_VERSION;

    const WIT: &str = include_str!("../../../sdk/wit/v0.1.0/plugin.wit");

    #[test]
    fn api_version_is_the_wit_package_version_and_its_directory() {
        let package = WIT
            .lines()
            .find_map(|l| l.trim().strip_prefix("package "))
            .expect("the WIT has a package line");
        assert_eq!(package, format!("warden:plugin@{API_VERSION};"));
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../sdk/wit")
            .join(format!("v{API_VERSION}"));
        assert!(dir.join("plugin.wit").is_file(), "{}", dir.display());
    }
}
