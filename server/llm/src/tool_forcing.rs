//! Tool calls for models without native tool calling.
//!
//! When a request requires a tool call (`tool_choice` "required" or a named
//! function), the engine is constrained to a JSON object
//! `{"name": <one of the tools>, "arguments": <that tool's schema>}` and the
//! tools are described in the system prompt. Constrained decoding makes the
//! output always parse, whatever the model.
//!
//! Argument schemas are closed (`additionalProperties: false` where a schema
//! does not say otherwise): with open objects small models keep inventing
//! keys until `max_tokens` runs out.

use serde_json::{Value, json};

use super::{ChatMessage, ChatRequest, LlmError, Role, ToolCall, ToolChoice, ToolSpec};

pub struct Forced {
    pub schema: Value,
    instructions: String,
}

/// Returns the constraint plan when `request` must produce a tool call.
pub fn plan(request: &ChatRequest) -> Result<Option<Forced>, LlmError> {
    let tools: Vec<&ToolSpec> = match &request.tool_choice {
        ToolChoice::Required => request.tools.iter().collect(),
        ToolChoice::Function(name) => request.tools.iter().filter(|t| &t.name == name).collect(),
        ToolChoice::Auto | ToolChoice::None => return Ok(None),
    };
    if tools.is_empty() {
        return Err(LlmError::InvalidRequest(
            "tool_choice requires at least one matching tool".into(),
        ));
    }
    let variants: Vec<Value> = tools
        .iter()
        .map(|t| {
            json!({
                "type": "object",
                "properties": {
                    "name": {"type": "string", "enum": [t.name]},
                    "arguments": close_schema(t.parameters.clone()),
                },
                "required": ["name", "arguments"],
                "additionalProperties": false,
            })
        })
        .collect();
    let schema = if variants.len() == 1 {
        variants.into_iter().next().unwrap_or_default()
    } else {
        json!({"anyOf": variants})
    };
    let mut instructions = String::from(
        "You must call exactly one of the following tools. Reply only with a JSON object \
         {\"name\": <tool name>, \"arguments\": <arguments object>}.\n\nTools:\n",
    );
    for t in &tools {
        instructions.push_str(&format!(
            "- {}: {}\n  arguments schema: {}\n",
            t.name,
            t.description.as_deref().unwrap_or("(no description)"),
            t.parameters
        ));
    }
    Ok(Some(Forced {
        schema,
        instructions,
    }))
}

impl Forced {
    /// Adds the tool descriptions after the conversation: to the last user
    /// message, or as a new one when the conversation ends otherwise (tool
    /// results). Not in the system prompt, so a forced request shares its
    /// prompt prefix with the unforced requests of the same conversation
    /// (the engine's prefix cache), and not as a trailing system message,
    /// which some chat templates refuse.
    pub fn add_instructions(&self, messages: &mut Vec<ChatMessage>) {
        match messages.last_mut() {
            Some(last) if last.role == Role::User => {
                let text = last.content.get_or_insert_with(String::new);
                text.push_str("\n\n");
                text.push_str(&self.instructions);
            }
            _ => messages.push(ChatMessage::new(Role::User, self.instructions.clone())),
        }
    }

    /// Reads the constrained output back as a tool call.
    pub fn parse_call(&self, text: &str) -> Result<ToolCall, LlmError> {
        let v: Value = serde_json::from_str(text.trim()).map_err(|e| {
            LlmError::Engine(format!(
                "constrained tool call did not parse ({e}); output was cut short, raise max_tokens"
            ))
        })?;
        let name = v
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| LlmError::Engine("constrained tool call has no name".into()))?;
        let arguments = v.get("arguments").cloned().unwrap_or_else(|| json!({}));
        Ok(ToolCall {
            id: format!("call_{}", uuid::Uuid::new_v4().simple()),
            name: name.to_owned(),
            arguments: arguments.to_string(),
        })
    }
}

/// Sets `additionalProperties: false` on every object schema that has
/// `properties` and does not decide for itself.
pub fn close_schema(mut schema: Value) -> Value {
    close_in_place(&mut schema);
    schema
}

fn close_in_place(v: &mut Value) {
    match v {
        Value::Object(map) => {
            if map.contains_key("properties") && !map.contains_key("additionalProperties") {
                map.insert("additionalProperties".into(), Value::Bool(false));
            }
            for (_, child) in map.iter_mut() {
                close_in_place(child);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(close_in_place),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(choice: ToolChoice) -> ChatRequest {
        let mut r = ChatRequest::new(vec![ChatMessage::new(Role::User, "weather in Boston?")], 64);
        r.tools = vec![
            ToolSpec {
                name: "get_weather".into(),
                description: Some("Current weather".into()),
                parameters: json!({"type": "object", "properties": {"place": {"type": "string"}}, "required": ["place"]}),
            },
            ToolSpec {
                name: "get_time".into(),
                description: None,
                parameters: json!({"type": "object", "properties": {}}),
            },
        ];
        r.tool_choice = choice;
        r
    }

    #[test]
    fn auto_and_none_are_not_forced() {
        assert!(plan(&request(ToolChoice::Auto)).unwrap().is_none());
        assert!(plan(&request(ToolChoice::None)).unwrap().is_none());
    }

    #[test]
    fn a_named_function_gives_a_closed_single_schema() {
        let f = plan(&request(ToolChoice::Function("get_weather".into())))
            .unwrap()
            .unwrap();
        assert_eq!(
            f.schema["properties"]["name"]["enum"],
            json!(["get_weather"])
        );
        assert_eq!(
            f.schema["properties"]["arguments"]["additionalProperties"],
            json!(false)
        );
        assert_eq!(f.schema["additionalProperties"], json!(false));
    }

    #[test]
    fn required_offers_every_tool() {
        let f = plan(&request(ToolChoice::Required)).unwrap().unwrap();
        assert_eq!(f.schema["anyOf"].as_array().unwrap().len(), 2);
        let mut msgs = request(ToolChoice::Required).messages;
        f.add_instructions(&mut msgs);
        assert_eq!(msgs.len(), 1);
        let turn = msgs[0].content.as_deref().unwrap();
        assert!(turn.starts_with("weather in Boston?") && turn.contains("get_time"));
        // After a tool result, the instructions are a turn of their own.
        let mut msgs = vec![
            ChatMessage::new(Role::System, "Be brief."),
            ChatMessage::new(Role::Tool, "{}"),
        ];
        f.add_instructions(&mut msgs);
        assert_eq!(msgs[0].content.as_deref(), Some("Be brief."));
        assert_eq!(msgs[2].role, Role::User);
    }

    #[test]
    fn explicit_additional_properties_are_respected() {
        let s =
            close_schema(json!({"type": "object", "properties": {}, "additionalProperties": true}));
        assert_eq!(s["additionalProperties"], json!(true));
    }

    #[test]
    fn parsed_calls_keep_arguments_as_json_text() {
        let f = plan(&request(ToolChoice::Required)).unwrap().unwrap();
        let call = f
            .parse_call(r#"{"name": "get_weather", "arguments": {"place": "Boston"}}"#)
            .unwrap();
        assert_eq!(call.name, "get_weather");
        assert_eq!(
            serde_json::from_str::<Value>(&call.arguments).unwrap(),
            json!({"place": "Boston"})
        );
        assert!(f.parse_call("{\"name\": \"get_we").is_err());
    }
}
