//! The constrained planner: each step the model must produce
//! `{"tool": <one of the tool names>, "arguments": <that tool's schema>}` or
//! `{"final": "<answer>"}`. The schema is closed everywhere (no extra keys)
//! and bounded everywhere ([`bounds`]: strings, numbers, arrays, unions,
//! references) so that the longest step it accepts fits the agent's
//! `max_tokens`: constrained decoding then always reaches the end of the
//! JSON, whatever the model writes. Open or unbounded schemas let small
//! models invent keys or write digits until `max_tokens` cuts the step.

pub mod bounds;

use serde_json::{Value, json};

pub use bounds::{FitError, Unbounded, worst_case_bytes};

/// A tool as the model is offered it.
#[derive(Debug, Clone)]
pub struct Offer {
    pub name: String,
    pub description: String,
    pub schema: Value,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    Call { tool: String, arguments: Value },
    Final(String),
}

/// The offers for resolved tools.
pub fn offers(tools: &[crate::tools::ResolvedTool]) -> Vec<Offer> {
    tools
        .iter()
        .map(|t| Offer {
            name: t.name.clone(),
            description: t.description.clone(),
            schema: t.schema.clone(),
        })
        .collect()
}

/// Why a set of tools cannot be offered within a step's token budget.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "tool {tool} cannot be offered in a step of {max_tokens} tokens: {source} \
     (raise the agent's max_tokens, or bound the tool's schema)"
)]
pub struct BoundError {
    pub tool: String,
    pub max_tokens: u32,
    #[source]
    pub source: FitError,
}

/// Bytes a step may take: one token is kept for the end of sequence.
fn step_bytes(max_tokens: u32) -> u64 {
    u64::from(max_tokens).saturating_sub(1)
}

/// Longest final answer, in characters, for a step of `max_tokens` tokens:
/// `{"final":"..."}` must close within the budget whatever the text, so a
/// model that loops inside its answer still produces a step that parses.
pub fn max_answer(max_tokens: u32) -> u64 {
    let overhead = 13; // {"final": ""}
    (step_bytes(max_tokens).saturating_sub(overhead) / bounds::CHAR_BYTES).max(1)
}

/// The JSON Schema every planner step must satisfy: `{"tool": <name>,
/// "arguments": <that tool's arguments>}` for each tool, or `{"final":
/// <answer>}`. Each tool's arguments are bounded ([`bounds::fit`]) so that
/// the longest step the schema accepts takes at most `max_tokens` tokens;
/// a tool whose smallest complete call cannot fit is refused.
pub fn step_schema(
    offers: &[Offer],
    allow_final: bool,
    max_tokens: u32,
) -> Result<Value, BoundError> {
    let budget = step_bytes(max_tokens);
    let mut variants = Vec::new();
    for o in offers {
        let refused = |source: FitError| BoundError {
            tool: o.name.clone(),
            max_tokens,
            source,
        };
        let variant = |args: Value| {
            json!({
                "type": "object",
                "properties": {
                    "tool": {"type": "string", "enum": [o.name]},
                    "arguments": args,
                },
                "required": ["tool", "arguments"],
                "additionalProperties": false,
            })
        };
        let empty = json!({"type": "object", "properties": {}, "additionalProperties": false});
        let overhead = worst_case_bytes(&variant(empty))
            .map_err(|e| refused(e.into()))?
            .saturating_sub(2);
        let fitted = bounds::fit(
            &warden_llm::close_schema(o.schema.clone()),
            budget.saturating_sub(overhead),
        )
        .map_err(refused)?;
        variants.push(variant(fitted.schema));
    }
    if allow_final || variants.is_empty() {
        variants.push(json!({
            "type": "object",
            "properties": {"final": {"type": "string", "maxLength": max_answer(max_tokens)}},
            "required": ["final"],
            "additionalProperties": false,
        }));
    }
    Ok(if variants.len() == 1 {
        variants.remove(0)
    } else {
        json!({ "anyOf": variants })
    })
}

/// Whether an agent of `max_tokens` tokens per step can be offered these
/// tools: the check made when an agent is defined (each step's
/// [`step_schema`] makes it again for what that step offers).
pub fn check_offers(offers: &[Offer], max_tokens: u32) -> Result<(), BoundError> {
    step_schema(offers, true, max_tokens).map(|_| ())
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
        let s = step_schema(&offers(), true, 1024).unwrap();
        let call = &s["anyOf"][0];
        assert_eq!(call["additionalProperties"], json!(false));
        assert_eq!(
            call["properties"]["arguments"]["additionalProperties"],
            json!(false)
        );
        assert_eq!(
            call["properties"]["arguments"]["properties"]["place"]["maxLength"],
            json!(bounds::MAX_STRING)
        );
        assert_eq!(
            s["anyOf"][1]["properties"]["final"]["maxLength"],
            json!(max_answer(1024))
        );
        assert!(worst_case_bytes(&s).unwrap() <= 1023);
    }

    #[test]
    fn a_small_budget_shrinks_strings_until_the_step_fits() {
        let s = step_schema(&offers(), true, 128).unwrap();
        let place = &s["anyOf"][0]["properties"]["arguments"]["properties"]["place"];
        let max = place["maxLength"].as_u64().unwrap();
        assert!(max < bounds::MAX_STRING && max > 10, "{place}");
        assert!(worst_case_bytes(&s).unwrap() <= 127);
    }

    #[test]
    fn a_tool_that_cannot_fit_is_refused_with_the_reason() {
        let o = Offer {
            name: "bulk_import".into(),
            description: String::new(),
            schema: json!({
                "type": "object",
                "properties": {"rows": {"type": "array", "minItems": 50, "items": {"type": "integer", "format": "uint64", "minimum": 0}}},
                "required": ["rows"]
            }),
        };
        let err = step_schema(&[o], true, 256).unwrap_err();
        assert_eq!(err.tool, "bulk_import");
        let text = err.to_string();
        assert!(
            text.contains("max_tokens") && text.contains("smallest complete call"),
            "{text}"
        );
    }

    #[test]
    fn tool_references_are_expanded_in_place() {
        let o = Offer {
            name: "create_ticket".into(),
            description: String::new(),
            schema: json!({
                "type": "object",
                "properties": {"priority": {"$ref": "#/$defs/Priority"}},
                "$defs": {"Priority": {"type": "string", "enum": ["low", "high"]}}
            }),
        };
        let s = step_schema(&[o], true, 512).unwrap();
        assert_eq!(
            s["anyOf"][0]["properties"]["arguments"]["properties"]["priority"]["enum"],
            json!(["low", "high"])
        );
        assert!(s.get("$defs").is_none());
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
