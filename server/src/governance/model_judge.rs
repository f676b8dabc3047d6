//! The server's [`Judge`]: one of its models, asked with constrained output.

use std::sync::Arc;

use super::judge::Judge;
use crate::llm::ModelRegistry;

/// `llm_judge` answered by one of the server's models, its output
/// constrained to `{"answer": "yes"|"no"}` so that it always parses.
pub struct RegistryJudge {
    pub registry: Arc<ModelRegistry>,
    pub model: String,
}

#[async_trait::async_trait]
impl Judge for RegistryJudge {
    async fn ask(&self, question: &str, content: &str) -> Result<bool, String> {
        use crate::llm::{ChatMessage, ChatRequest, ResponseFormat, Role};
        let backend = self
            .registry
            .get(&self.model)
            .ok_or_else(|| format!("judge model {:?} is not available", self.model))?;
        let mut request = ChatRequest::new(
            vec![
                ChatMessage::new(
                    Role::System,
                    "You review text for a content policy. Answer the question about the text with yes or no, as JSON.",
                ),
                ChatMessage::new(
                    Role::User,
                    format!(
                        "Question: {question}\n\nText:\n\"\"\"\n{content}\n\"\"\"\n\nAnswer yes or no."
                    ),
                ),
            ],
            16,
        );
        request.temperature = Some(0.0);
        request.seed = Some(0);
        request.response_format = ResponseFormat::JsonSchema {
            name: "verdict".into(),
            schema: serde_json::json!({
                "type": "object",
                "properties": {"answer": {"type": "string", "enum": ["yes", "no"]}},
                "required": ["answer"],
                "additionalProperties": false
            }),
        };
        let out = backend.chat(request).await.map_err(|e| e.to_string())?;
        let text = out.content.unwrap_or_default();
        let v: serde_json::Value = serde_json::from_str(text.trim())
            .map_err(|_| "the judge's answer was not JSON".to_owned())?;
        match v.get("answer").and_then(|a| a.as_str()) {
            Some("yes") => Ok(true),
            Some("no") => Ok(false),
            _ => Err("the judge's answer was neither yes nor no".into()),
        }
    }
}
