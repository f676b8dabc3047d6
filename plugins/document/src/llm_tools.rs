//! Tools that ask the host LLM: summaries and schema-constrained extraction.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use warden_sdk::{Context, JsonSchema, ToolError, llm};

use crate::analysis::Source;

/// Longest input sent to the model; longer documents are cut (and the
/// result says so) so that the prompt fits small local models.
const MAX_INPUT_CHARS: usize = 6000;

fn clip(text: &str) -> (String, bool) {
    if text.chars().count() <= MAX_INPUT_CHARS {
        (text.to_owned(), false)
    } else {
        (text.chars().take(MAX_INPUT_CHARS).collect(), true)
    }
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SummarizeArgs {
    /// A stored document's id.
    id: Option<String>,
    /// Markdown text, used when no id is given.
    markdown: Option<String>,
    /// Rough length of the summary in words (default 60).
    max_words: Option<u32>,
}

#[derive(Serialize)]
pub struct Summary {
    summary: String,
    truncated_input: bool,
}

pub fn summarize(_: &Context, a: SummarizeArgs) -> Result<Summary, ToolError> {
    let (text, truncated_input) = clip(&Source::new(a.id.clone(), a.markdown.clone()).text()?);
    let words = a.max_words.unwrap_or(60).clamp(10, 400);
    let reply = llm::Request::new()
        .system(format!(
            "Summarise the user's document in at most {words} words. Reply with the summary only."
        ))
        .user(text)
        .max_tokens(words * 2 + 16)
        .temperature(0.2)
        .send()?;
    Ok(Summary {
        summary: reply.text.trim().to_owned(),
        truncated_input,
    })
}

#[derive(Deserialize, JsonSchema, Clone, Copy, PartialEq, Debug)]
#[serde(rename_all = "lowercase")]
pub enum FieldType {
    String,
    Number,
    Integer,
    Boolean,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Field {
    /// The key in the result, e.g. "invoice_number".
    name: String,
    #[serde(rename = "type", default = "default_type")]
    kind: FieldType,
    /// What the field means, to guide the model.
    #[serde(default)]
    description: String,
}

fn default_type() -> FieldType {
    FieldType::String
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExtractArgs {
    /// A stored document's id.
    id: Option<String>,
    /// Markdown text, used when no id is given.
    markdown: Option<String>,
    /// The fields to extract (1-32).
    fields: Vec<Field>,
}

#[derive(Serialize)]
pub struct Extracted {
    fields: Map<String, Value>,
    truncated_input: bool,
}

/// The JSON Schema the model's output is constrained to.
pub fn schema_for(fields: &[Field]) -> Value {
    let mut props = Map::new();
    for f in fields {
        let kind = match f.kind {
            FieldType::String => json!({"type": "string", "maxLength": 200}),
            FieldType::Number => json!({"type": "number"}),
            FieldType::Integer => json!({"type": "integer"}),
            FieldType::Boolean => json!({"type": "boolean"}),
        };
        props.insert(f.name.clone(), kind);
    }
    let required: Vec<_> = fields.iter().map(|f| f.name.clone()).collect();
    json!({"type": "object", "properties": props, "required": required, "additionalProperties": false})
}

pub fn extract_fields(_: &Context, a: ExtractArgs) -> Result<Extracted, ToolError> {
    if a.fields.is_empty() || a.fields.len() > 32 {
        return Err(ToolError::invalid("give between 1 and 32 fields"));
    }
    for f in &a.fields {
        let ok = !f.name.is_empty()
            && f.name.len() <= 64
            && f.name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !ok {
            return Err(ToolError::invalid(format!(
                "field name {:?} must be 1-64 characters of letters, digits and _",
                f.name
            )));
        }
    }
    let (text, truncated_input) = clip(&Source::new(a.id.clone(), a.markdown.clone()).text()?);
    let wanted: Vec<String> = a
        .fields
        .iter()
        .map(|f| {
            format!(
                "- {} ({:?}){}",
                f.name,
                f.kind,
                if f.description.is_empty() {
                    String::new()
                } else {
                    format!(": {}", f.description)
                }
            )
        })
        .collect();
    let schema = schema_for(&a.fields);
    let reply = llm::Request::new()
        .system(format!(
            "Extract these fields from the user's document and answer with a JSON object:\n{}",
            wanted.join("\n")
        ))
        .user(text)
        .json_schema(&schema)
        .max_tokens(64 + 48 * a.fields.len() as u32)
        .temperature(0.0)
        .send()?;
    let value: Value = serde_json::from_str(&reply.text)
        .map_err(|e| ToolError::failed(format!("the model's output did not parse as JSON: {e}")))?;
    let Value::Object(fields) = value else {
        return Err(ToolError::failed("the model's output is not a JSON object"));
    };
    Ok(Extracted {
        fields,
        truncated_input,
    })
}
