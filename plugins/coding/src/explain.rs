use serde::{Deserialize, Serialize};
use warden_sdk::{Context, JsonSchema, ToolError, llm};

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExplainArgs {
    source: String,
    /// e.g. "rust", "python"; guessed when absent.
    language: Option<String>,
}

#[derive(Serialize)]
pub struct Explanation {
    explanation: String,
}

pub fn explain(_: &Context, a: ExplainArgs) -> Result<Explanation, ToolError> {
    if a.source.trim().is_empty() {
        return Err(ToolError::invalid("source must not be empty"));
    }
    if a.source.len() > 16_000 {
        return Err(ToolError::invalid(
            "source longer than 16000 bytes; explain a smaller part",
        ));
    }
    let lang = a
        .language
        .as_deref()
        .unwrap_or("the language it is written in");
    let reply = llm::Request::new()
        .system(format!(
            "Explain briefly what this code in {lang} does. Plain sentences, no code."
        ))
        .user(a.source)
        .max_tokens(256)
        .temperature(0.2)
        .send()?;
    Ok(Explanation {
        explanation: reply.text.trim().to_owned(),
    })
}
