//! The glue [`crate::export_plugin!`] expands to. Not for direct use.

use crate::bindings::warden::plugin::types as wit;
use crate::{Context, Effect, Plugin, ToolError};

pub fn describe<P: Plugin>() -> wit::PluginInfo {
    let tools = P::tools()
        .into_iter()
        .map(|t| wit::ToolSpec {
            name: t.name.to_owned(),
            description: t.description.to_owned(),
            arguments_schema: (t.schema)().to_string(),
            effect: match t.effect {
                Effect::Pure => wit::Effect::Pure,
                Effect::Reads => wit::Effect::Reads,
                Effect::Writes => wit::Effect::Writes,
                Effect::External => wit::Effect::External,
            },
        })
        .collect();
    wit::PluginInfo {
        id: P::ID.to_owned(),
        version: P::VERSION.to_owned(),
        tools,
    }
}

pub fn call_tool<P: Plugin>(
    context: wit::CallContext,
    name: &str,
    arguments: &str,
) -> Result<wit::ToolOutput, wit::ToolError> {
    let ctx = Context {
        call_id: context.call_id,
        user: context.user,
        conversation: context.conversation,
    };
    let tools = P::tools();
    let Some(tool) = tools.iter().find(|t| t.name == name) else {
        let known: Vec<_> = tools.iter().map(|t| t.name).collect();
        return Err(wit::ToolError::UnknownTool(format!(
            "no tool {name:?}; this plugin has: {}",
            known.join(", ")
        )));
    };
    (tool.handler)(&ctx, arguments)
        .map(|json| wit::ToolOutput { json })
        .map_err(ToolError::into)
}
