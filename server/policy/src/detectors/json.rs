//! `json_schema`: content (tool arguments, tool results) that is not JSON
//! or does not satisfy a schema.

use serde::Deserialize;

use super::{Outcome, Span};

pub struct JsonSchemaDetector {
    validator: jsonschema::Validator,
}

impl std::fmt::Debug for JsonSchemaDetector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JsonSchemaDetector")
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonSchemaRaw {
    schema: serde_json::Value,
}

impl<'de> Deserialize<'de> for JsonSchemaDetector {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = JsonSchemaRaw::deserialize(d)?;
        if !raw.schema.is_object() && !raw.schema.is_boolean() {
            return Err(serde::de::Error::custom(
                "json_schema `schema` must be a mapping",
            ));
        }
        let validator = jsonschema::validator_for(&raw.schema)
            .map_err(|e| serde::de::Error::custom(format!("invalid JSON Schema: {e}")))?;
        Ok(Self { validator })
    }
}

impl JsonSchemaDetector {
    /// Matches content that is not JSON or that violates the schema; the
    /// note names the first violation's location, not the offending value.
    pub fn check(&self, text: &str) -> Outcome {
        let value: serde_json::Value = match serde_json::from_str(text) {
            Ok(v) => v,
            Err(e) => {
                return Outcome::Hit(
                    vec![Span::whole(text, "json_schema")],
                    Some(format!("not JSON: line {} column {}", e.line(), e.column())),
                );
            }
        };
        match self.validator.iter_errors(&value).next() {
            None => Outcome::Miss,
            // The schema path comes from the policy; the instance path could
            // carry the content's own keys into the audit log.
            Some(e) => Outcome::Hit(
                vec![Span::whole(text, "json_schema")],
                Some(format!(
                    "schema violation: {} ({})",
                    e.schema_path(),
                    e.kind().keyword()
                )),
            ),
        }
    }
}
