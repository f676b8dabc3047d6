//! The files `warden plugin new` writes: a small but real plugin with a
//! pure tool and a tool that uses a kv bucket, so authors see both shapes.

use std::path::Path;

use warden_plugin_host::bindings::API_VERSION;

pub fn cargo_toml(name: &str, sdk: &Path) -> String {
    format!(
        r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2024"

[lib]
crate-type = ["cdylib"]

[dependencies]
warden-sdk = {{ path = "{sdk}" }}
serde = {{ version = "1", features = ["derive"] }}
schemars = "1"

[profile.release]
opt-level = "s"
lto = true
strip = true

# A standalone crate, not part of any surrounding workspace.
[workspace]
"#,
        sdk = sdk.display()
    )
}

pub fn plugin_toml(id: &str, name: &str, crate_file: &str) -> String {
    format!(
        r#"id = "{id}"
name = "{name}"
version = "0.1.0"
api_version = "{API_VERSION}"
description = "Greets people and counts greetings."
# Built by `cargo build --target wasm32-wasip2 --release`.
component = "target/wasm32-wasip2/release/{crate_file}.wasm"

[capabilities]
kv_buckets = ["greetings"]

[limits]
memory_mb = 32
timeout_ms = 2000

[[tools]]
name = "greet"
effect = "pure"

[[tools]]
name = "count_greeting"
effect = "writes"
"#
    )
}

pub fn lib_rs(id: &str) -> String {
    format!(
        r#"//! A Warden plugin. Build with `cargo build --target wasm32-wasip2 --release`,
//! then `warden plugin check .` and `warden plugin call . greet '{{"name":"Ada"}}'`.

use serde::{{Deserialize, Serialize}};
use warden_sdk::{{Context, Effect, JsonSchema, Plugin, Tool, ToolError, kv}};

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct GreetArgs {{
    /// Who to greet.
    name: String,
}}

#[derive(Serialize)]
struct Greeting {{
    message: String,
}}

fn greet(_: &Context, args: GreetArgs) -> Result<Greeting, ToolError> {{
    if args.name.trim().is_empty() {{
        return Err(ToolError::invalid("name must not be empty"));
    }}
    Ok(Greeting {{ message: format!("Hello, {{}}!", args.name.trim()) }})
}}

#[derive(Serialize)]
struct Count {{
    name: String,
    greetings: u64,
}}

/// Counts greetings per name in the plugin's `greetings` bucket.
fn count_greeting(_: &Context, args: GreetArgs) -> Result<Count, ToolError> {{
    let n: u64 = kv::get_json("greetings", &args.name)?.unwrap_or(0) + 1;
    kv::set_json("greetings", &args.name, &n)?;
    Ok(Count {{ name: args.name, greetings: n }})
}}

struct Hello;

impl Plugin for Hello {{
    const ID: &'static str = "{id}";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");

    fn tools() -> Vec<Tool> {{
        vec![
            Tool::new("greet", "Greet someone by name.", Effect::Pure, greet),
            Tool::new("count_greeting", "Count how often a name was greeted.", Effect::Writes, count_greeting),
        ]
    }}
}}

warden_sdk::export_plugin!(Hello);
"#
    )
}
