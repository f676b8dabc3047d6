//! The constrained planner: each step the model must produce
//! `{"tool": <one of the tool names>, "arguments": <that tool's schema>}` or
//! `{"final": "<answer>"}`. The schema is closed everywhere (no extra keys,
//! bounded strings) so constrained decoding ends as soon as the JSON does;
//! open schemas let small models invent keys until `max_tokens`.

use serde_json::{Value, json};

/// A tool as the model is offered it.
#[derive(Debug, Clone)]
pub struct Offer {
    pub name: String,
    pub description: String,
    pub schema: Value,
}

/// Longest string the planner lets the model write in a field whose schema
/// sets no bound (a tool wanting more says so with `maxLength`). Small
/// models can loop inside a string; this ends the loop early.
pub const MAX_STRING: u64 = 200;
/// Longest string (argument or answer) for a step allowed `max_tokens`
/// tokens: short enough that the JSON closes within the budget whatever
/// the text (a token holds at least one character), so a model that loops
/// inside a string still produces a step that parses. Tools that take
/// longer text need agents with a larger `max_tokens`.
pub fn max_answer(max_tokens: u32) -> u64 {
    u64::from(max_tokens).saturating_sub(16).max(32)
}

#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    Call { tool: String, arguments: Value },
    Final(String),
}

/// The JSON Schema every planner step must satisfy. Each tool's `$defs`
/// move to the root (renamed `<tool>__<name>`, references rewritten), since
/// references resolve from the root of the combined schema.
pub fn step_schema(offers: &[Offer], allow_final: bool, budget: u64) -> Value {
    let mut defs = serde_json::Map::new();
    let mut variants: Vec<Value> = offers
        .iter()
        .map(|o| {
            let mut args = bound(warden_llm::close_schema(o.schema.clone()), budget);
            hoist_defs(&o.name, &mut args, &mut defs);
            json!({
                "type": "object",
                "properties": {
                    "tool": {"type": "string", "enum": [o.name]},
                    "arguments": args,
                },
                "required": ["tool", "arguments"],
                "additionalProperties": false,
            })
        })
        .collect();
    if allow_final || variants.is_empty() {
        variants.push(json!({
            "type": "object",
            "properties": {"final": {"type": "string", "maxLength": budget}},
            "required": ["final"],
            "additionalProperties": false,
        }));
    }
    let mut root = if variants.len() == 1 {
        variants.remove(0)
    } else {
        json!({ "anyOf": variants })
    };
    if !defs.is_empty() {
        root["$defs"] = Value::Object(defs);
    }
    root
}

fn hoist_defs(tool: &str, schema: &mut Value, into: &mut serde_json::Map<String, Value>) {
    let Some(obj) = schema.as_object_mut() else {
        return;
    };
    let mut local = serde_json::Map::new();
    for key in ["$defs", "definitions"] {
        if let Some(Value::Object(d)) = obj.remove(key) {
            local.extend(d);
        }
    }
    fn rewrite(v: &mut Value, tool: &str) {
        match v {
            Value::Object(map) => {
                if let Some(Value::String(r)) = map.get_mut("$ref") {
                    for prefix in ["#/$defs/", "#/definitions/"] {
                        if let Some(name) = r.strip_prefix(prefix) {
                            *r = format!("#/$defs/{tool}__{name}");
                            break;
                        }
                    }
                }
                map.values_mut().for_each(|c| rewrite(c, tool));
            }
            Value::Array(items) => items.iter_mut().for_each(|c| rewrite(c, tool)),
            _ => {}
        }
    }
    rewrite(schema, tool);
    for (name, mut def) in local {
        rewrite(&mut def, tool);
        into.insert(format!("{tool}__{name}"), def);
    }
}

/// Gives every string without a bound a `maxLength`.
/// Also lowers bounds above `budget`: a string longer than the step's
/// token budget cannot close anyway, and the bound is what ends a loop.
fn bound(mut schema: Value, budget: u64) -> Value {
    fn walk(v: &mut Value, budget: u64) {
        match v {
            Value::Object(map) => {
                if map.get("type") == Some(&json!("string")) {
                    let max = map
                        .get("maxLength")
                        .and_then(Value::as_u64)
                        .unwrap_or(MAX_STRING)
                        .min(budget);
                    map.insert("maxLength".into(), json!(max));
                }
                for (_, child) in map.iter_mut() {
                    walk(child, budget);
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|c| walk(c, budget)),
            _ => {}
        }
    }
    walk(&mut schema, budget);
    schema
}

/// The system prompt addition that describes the tools and the reply shape.
pub fn instructions(offers: &[Offer]) -> String {
    let mut s = String::from(
        "Reply with one JSON object per turn. To use a tool: {\"tool\": <name>, \"arguments\": {...}}. \
         When you can answer the user: {\"final\": <answer>}. Tool results come back as the next message.",
    );
    if offers.is_empty() {
        s.push_str("\nNo tools are available: answer with {\"final\": ...}.");
    } else {
        s.push_str("\n\nTools:\n");
        for o in offers {
            s.push_str(&format!(
                "- {}: {}\n  arguments: {}\n",
                o.name, o.description, o.schema
            ));
        }
    }
    s
}

/// Why a planner reply is not a step; told to the model so it can retry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MalformedStep {
    #[error("the reply was not a JSON object ({0})")]
    NotJson(String),
    #[error("the reply was not a JSON object")]
    NotAnObject,
    #[error("`final` must be a string")]
    FinalNotAString,
    #[error("the reply has neither `final` nor `tool`")]
    NeitherFinalNorTool,
    #[error("`arguments` must be an object")]
    ArgumentsNotAnObject,
}

/// Reads a planner step. Constrained decoding makes this succeed for the
/// embedded model; a remote model without constraints may still fail it.
pub fn parse_step(text: &str) -> Result<Step, MalformedStep> {
    let v: Value =
        serde_json::from_str(text.trim()).map_err(|e| MalformedStep::NotJson(e.to_string()))?;
    let Some(obj) = v.as_object() else {
        return Err(MalformedStep::NotAnObject);
    };
    if let Some(answer) = obj.get("final") {
        return answer
            .as_str()
            .map(|a| Step::Final(a.to_owned()))
            .ok_or(MalformedStep::FinalNotAString);
    }
    let tool = obj
        .get("tool")
        .and_then(Value::as_str)
        .ok_or(MalformedStep::NeitherFinalNorTool)?;
    let arguments = obj.get("arguments").cloned().unwrap_or_else(|| json!({}));
    if !arguments.is_object() {
        return Err(MalformedStep::ArgumentsNotAnObject);
    }
    Ok(Step::Call {
        tool: tool.to_owned(),
        arguments,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offers() -> Vec<Offer> {
        vec![Offer {
            name: "get_weather".into(),
            description: "Current weather".into(),
            schema: json!({"type": "object", "properties": {"place": {"type": "string"}}, "required": ["place"]}),
        }]
    }

    #[test]
    fn the_step_schema_is_closed_and_bounded() {
        let s = step_schema(&offers(), true, 500);
        let call = &s["anyOf"][0];
        assert_eq!(call["additionalProperties"], json!(false));
        assert_eq!(
            call["properties"]["arguments"]["additionalProperties"],
            json!(false)
        );
        assert_eq!(
            call["properties"]["arguments"]["properties"]["place"]["maxLength"],
            json!(MAX_STRING)
        );
        assert_eq!(
            s["anyOf"][1]["properties"]["final"]["maxLength"],
            json!(500)
        );
        assert_eq!(max_answer(256), 240);
    }

    #[test]
    fn tool_defs_move_to_the_root_with_their_references() {
        let o = Offer {
            name: "create_ticket".into(),
            description: String::new(),
            schema: json!({
                "type": "object",
                "properties": {"priority": {"$ref": "#/$defs/Priority"}},
                "$defs": {"Priority": {"type": "string", "enum": ["low", "high"]}}
            }),
        };
        let s = step_schema(&[o], true, 500);
        assert_eq!(
            s["$defs"]["create_ticket__Priority"]["enum"],
            json!(["low", "high"])
        );
        assert_eq!(
            s["anyOf"][0]["properties"]["arguments"]["properties"]["priority"]["$ref"],
            json!("#/$defs/create_ticket__Priority")
        );
        assert!(
            s["anyOf"][0]["properties"]["arguments"]
                .get("$defs")
                .is_none()
        );
    }

    #[test]
    fn steps_parse_or_say_why_not() {
        assert_eq!(
            parse_step(r#"{"tool": "get_weather", "arguments": {"place": "Boston"}}"#),
            Ok(Step::Call {
                tool: "get_weather".into(),
                arguments: json!({"place": "Boston"})
            })
        );
        assert_eq!(
            parse_step(r#" {"final": "It is sunny."} "#),
            Ok(Step::Final("It is sunny.".into()))
        );
        for bad in [
            "",
            "{\"tool\": 3}",
            "[1]",
            "{\"final\": 1}",
            "{\"tool\": \"x\", \"arguments\": []}",
            "{}",
        ] {
            assert!(parse_step(bad).is_err(), "{bad}");
        }
    }
}
