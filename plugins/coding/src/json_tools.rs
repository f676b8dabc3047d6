//! JSON formatting and JSON Schema validation.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use warden_sdk::{Context, JsonSchema, ToolError};

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FormatArgs {
    /// JSON text to format.
    json: String,
    /// Spaces per level (default 2; 0 minifies).
    indent: Option<u8>,
    /// Sort object keys alphabetically (default false: keep their order).
    sort_keys: Option<bool>,
}

#[derive(Serialize)]
pub struct Formatted {
    formatted: String,
}

pub fn format(_: &Context, a: FormatArgs) -> Result<Formatted, ToolError> {
    let value: Value = serde_json::from_str(&a.json)
        .map_err(|e| ToolError::invalid(format!("not valid JSON: {e}")))?;
    let value = if a.sort_keys.unwrap_or(false) {
        sort(value)
    } else {
        value
    };
    let indent = a.indent.unwrap_or(2).min(8) as usize;
    let formatted = if indent == 0 {
        serde_json::to_string(&value)?
    } else {
        let pad = vec![b' '; indent];
        let mut out = Vec::new();
        let mut ser = serde_json::Serializer::with_formatter(
            &mut out,
            serde_json::ser::PrettyFormatter::with_indent(&pad),
        );
        serde::Serialize::serialize(&value, &mut ser)?;
        String::from_utf8(out).map_err(|e| ToolError::failed(e.to_string()))?
    };
    Ok(Formatted { formatted })
}

fn sort(v: Value) -> Value {
    match v {
        Value::Object(map) => {
            let mut entries: Vec<_> = map.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(entries.into_iter().map(|(k, v)| (k, sort(v))).collect())
        }
        Value::Array(items) => Value::Array(items.into_iter().map(sort).collect()),
        other => other,
    }
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ValidateArgs {
    /// The JSON document (a JSON value, or a string holding JSON text).
    instance: Value,
    /// The JSON Schema (draft 2020-12 unless it says otherwise in $schema).
    schema: Value,
}

#[derive(Debug, Serialize)]
pub struct Violation {
    pub path: String,
    pub message: String,
}

#[derive(Debug, Serialize)]
pub struct Validation {
    pub valid: bool,
    pub errors: Vec<Violation>,
}

pub fn validate(_: &Context, a: ValidateArgs) -> Result<Validation, ToolError> {
    let instance = match a.instance {
        Value::String(text) => serde_json::from_str(&text).unwrap_or(Value::String(text)),
        other => other,
    };
    check(&instance, &a.schema)
}

pub fn check(instance: &Value, schema: &Value) -> Result<Validation, ToolError> {
    let validator = jsonschema::validator_for(schema)
        .map_err(|e| ToolError::invalid(format!("the schema is invalid: {e}")))?;
    let errors: Vec<Violation> = validator
        .iter_errors(instance)
        .take(100)
        .map(|e| {
            let path = e.instance_path().as_str();
            Violation {
                path: if path.is_empty() {
                    "/".to_owned()
                } else {
                    path.to_owned()
                },
                message: e.to_string(),
            }
        })
        .collect();
    Ok(Validation {
        valid: errors.is_empty(),
        errors,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn violations_carry_their_paths() {
        let schema = json!({"type": "object", "properties": {"age": {"type": "integer", "minimum": 0}}, "required": ["name"]});
        let v = check(&json!({"age": -1}), &schema).unwrap();
        assert!(!v.valid);
        let paths: Vec<_> = v.errors.iter().map(|e| e.path.as_str()).collect();
        assert!(paths.contains(&"/age") && paths.contains(&"/"), "{v:?}");
        assert!(check(&json!({"name": "x"}), &schema).unwrap().valid);
        assert!(check(&json!(1), &json!({"type": 12})).is_err());
    }

    #[test]
    fn formatting_sorts_and_minifies() {
        let f = format(
            &Context::default(),
            FormatArgs {
                json: "{\"b\":1,\"a\":[1,2]}".into(),
                indent: Some(0),
                sort_keys: Some(true),
            },
        )
        .unwrap();
        assert_eq!(f.formatted, "{\"a\":[1,2],\"b\":1}");
    }
}
