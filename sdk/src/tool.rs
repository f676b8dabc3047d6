use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::ToolError;

/// What a tool may do to the world; the host and operators rely on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// Computes from its arguments only.
    Pure,
    /// Reads stored state or asks the LLM.
    Reads,
    /// Changes stored state.
    Writes,
    /// Reaches outside Warden.
    External,
}

/// Who the tool runs for.
#[derive(Debug, Clone, Default)]
pub struct Context {
    /// Unique per call.
    pub call_id: String,
    /// The end user, when the caller knows one.
    pub user: Option<String>,
    /// The conversation or agent run, when known.
    pub conversation: Option<String>,
}

type Handler = Box<dyn Fn(&Context, &str) -> Result<String, ToolError>>;

/// One tool: name, description, effect, argument schema and handler.
pub struct Tool {
    pub(crate) name: &'static str,
    pub(crate) description: &'static str,
    pub(crate) effect: Effect,
    pub(crate) schema: fn() -> serde_json::Value,
    pub(crate) handler: Handler,
}

impl Tool {
    /// `f` receives the arguments deserialised into `A`; its output is
    /// serialised to JSON. Unknown or missing fields become
    /// `invalid-arguments` errors before `f` runs.
    pub fn new<A, O, F>(name: &'static str, description: &'static str, effect: Effect, f: F) -> Tool
    where
        A: DeserializeOwned + schemars::JsonSchema + 'static,
        O: Serialize,
        F: Fn(&Context, A) -> Result<O, ToolError> + 'static,
    {
        Tool {
            name,
            description,
            effect,
            schema: schema_of::<A>,
            handler: Box::new(move |ctx, raw| {
                let raw = if raw.trim().is_empty() { "{}" } else { raw };
                let args: A = serde_json::from_str(raw)
                    .map_err(|e| ToolError::InvalidArguments(e.to_string()))?;
                let out = f(ctx, args)?;
                serde_json::to_string(&out).map_err(ToolError::from)
            }),
        }
    }

    pub fn name(&self) -> &str {
        self.name
    }
}

fn schema_of<A: schemars::JsonSchema>() -> serde_json::Value {
    let generator = schemars::generate::SchemaSettings::draft2020_12().into_generator();
    generator.into_root_schema_for::<A>().to_value()
}

/// A plugin: an id, a version and its tools.
pub trait Plugin {
    /// Must equal `id` in plugin.toml.
    const ID: &'static str;
    /// Must equal `version` in plugin.toml; usually `env!("CARGO_PKG_VERSION")`.
    const VERSION: &'static str;
    fn tools() -> Vec<Tool>;
}
