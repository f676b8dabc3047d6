use serde::{Deserialize, Serialize};
use warden_sdk::{Context, JsonSchema, ToolError, llm};

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TranslateArgs {
    text: String,
    /// e.g. "French", "de", "Japanese"
    target_language: String,
}

#[derive(Serialize)]
pub struct Translation {
    translation: String,
    target_language: String,
}

pub fn translate(_: &Context, a: TranslateArgs) -> Result<Translation, ToolError> {
    if a.text.trim().is_empty() {
        return Err(ToolError::invalid("text must not be empty"));
    }
    if a.text.chars().count() > 4000 {
        return Err(ToolError::invalid(
            "text longer than 4000 characters; split it",
        ));
    }
    let lang = a.target_language.trim();
    if lang.is_empty() || lang.len() > 40 {
        return Err(ToolError::invalid(
            "target_language must be 1-40 characters",
        ));
    }
    let reply = llm::Request::new()
        .system(format!(
            "Translate the user's text into {lang}. Reply with the translation only."
        ))
        .user(a.text.clone())
        .max_tokens((a.text.len() as u32 / 2 + 32).min(1024))
        .temperature(0.1)
        .send()?;
    Ok(Translation {
        translation: reply.text.trim().to_owned(),
        target_language: lang.to_owned(),
    })
}
