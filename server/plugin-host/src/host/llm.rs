use crate::bindings::llm::{self, Completion, CompletionRequest};
use crate::bindings::types::HostError;
use crate::state::{CallState, MAX_LLM_CALLS_PER_CALL};
use warden_llm::{ChatMessage, ChatRequest, ResponseFormat, Role};

/// Largest prompt (all message contents together) a plugin may send.
const MAX_PROMPT_BYTES: usize = 256 * 1024;
/// `max-tokens` when the plugin gives none.
const DEFAULT_MAX_TOKENS: u32 = 256;

impl llm::Host for CallState {
    async fn complete(&mut self, request: CompletionRequest) -> Result<Completion, HostError> {
        self.require_effect(crate::manifest::Effect::Reads, "llm")
            .map_err(HostError::from)?;
        self.grant.check_llm().map_err(HostError::from)?;
        self.llm_calls += 1;
        if self.llm_calls > MAX_LLM_CALLS_PER_CALL {
            return Err(HostError::LimitExceeded(format!(
                "at most {MAX_LLM_CALLS_PER_CALL} llm calls per tool call"
            )));
        }
        let chat = to_chat_request(request, self.grant.limits.llm_max_tokens)?;
        let Some(provider) = self.services.llm.clone() else {
            return Err(HostError::Unavailable(
                "this host has no model for plugins".into(),
            ));
        };
        let backend = provider
            .backend()
            .await
            .map_err(|e| HostError::Unavailable(e.to_string()))?;
        match backend.chat(chat).await {
            Ok(out) => Ok(Completion {
                text: out.content.unwrap_or_default(),
                prompt_tokens: out.usage.prompt_tokens,
                completion_tokens: out.usage.completion_tokens,
            }),
            Err(warden_llm::LlmError::InvalidRequest(m)) => Err(HostError::Invalid(m)),
            Err(e) => {
                tracing::warn!(plugin = self.grant.plugin_id(), call = %self.call_id, "plugin llm call failed: {e}");
                Err(HostError::Unavailable(
                    "the model failed; see the server log".into(),
                ))
            }
        }
    }
}

fn to_chat_request(r: CompletionRequest, ceiling: u32) -> Result<ChatRequest, HostError> {
    if r.messages.is_empty() {
        return Err(HostError::Invalid("messages must not be empty".into()));
    }
    let size: usize = r.messages.iter().map(|m| m.content.len()).sum();
    if size > MAX_PROMPT_BYTES {
        return Err(HostError::LimitExceeded(format!(
            "prompt is {size} bytes; the limit is {MAX_PROMPT_BYTES}"
        )));
    }
    let messages = r
        .messages
        .into_iter()
        .map(|m| {
            let role = match m.role {
                llm::Role::System => Role::System,
                llm::Role::User => Role::User,
                llm::Role::Assistant => Role::Assistant,
            };
            ChatMessage::new(role, m.content)
        })
        .collect();
    let max_tokens = match r.max_tokens {
        Some(0) => return Err(HostError::Invalid("max-tokens must be at least 1".into())),
        Some(n) => n.min(ceiling),
        None => DEFAULT_MAX_TOKENS.min(ceiling),
    };
    let mut chat = ChatRequest::new(messages, max_tokens);
    if let Some(t) = r.temperature {
        if !(0.0..=2.0).contains(&t) {
            return Err(HostError::Invalid(format!(
                "temperature {t} is outside 0..2"
            )));
        }
        chat.temperature = Some(f64::from(t));
    }
    if let Some(schema) = r.json_schema {
        let schema: serde_json::Value = serde_json::from_str(&schema)
            .map_err(|e| HostError::Invalid(format!("json-schema is not JSON: {e}")))?;
        if !schema.is_object() {
            return Err(HostError::Invalid(
                "json-schema must be a JSON object".into(),
            ));
        }
        chat.response_format = ResponseFormat::JsonSchema {
            name: "output".into(),
            schema,
        };
    }
    Ok(chat)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(max_tokens: Option<u32>, schema: Option<&str>) -> CompletionRequest {
        CompletionRequest {
            messages: vec![llm::Message {
                role: llm::Role::User,
                content: "hi".into(),
            }],
            max_tokens,
            temperature: None,
            json_schema: schema.map(str::to_owned),
        }
    }

    #[test]
    fn max_tokens_is_capped_by_the_grant() {
        assert_eq!(
            to_chat_request(req(Some(5000), None), 512)
                .unwrap()
                .max_tokens,
            512
        );
        assert_eq!(
            to_chat_request(req(None, None), 100).unwrap().max_tokens,
            100
        );
        assert!(matches!(
            to_chat_request(req(Some(0), None), 100),
            Err(HostError::Invalid(_))
        ));
    }

    #[test]
    fn schemas_must_be_json_objects() {
        let ok = to_chat_request(req(None, Some(r#"{"type":"object"}"#)), 100).unwrap();
        assert!(matches!(
            ok.response_format,
            ResponseFormat::JsonSchema { .. }
        ));
        assert!(matches!(
            to_chat_request(req(None, Some("{")), 100),
            Err(HostError::Invalid(_))
        ));
        assert!(matches!(
            to_chat_request(req(None, Some("[1]")), 100),
            Err(HostError::Invalid(_))
        ));
    }
}
