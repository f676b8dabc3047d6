//! What an agent is: `[[agents]]` in `warden.toml` or a row made through
//! `/api/agents`, both the same [`AgentSpec`].

use serde::{Deserialize, Serialize};
use thiserror::Error;

#[derive(Debug, Error, PartialEq)]
pub enum SpecError {
    #[error("agent {name:?}: {message}")]
    Invalid { name: String, message: String },
    #[error("agent {0:?} is declared twice")]
    Duplicate(String),
}

/// How the model is asked for tool calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ToolCalling {
    /// Each step the model must produce JSON matching a schema built from
    /// the tools (`{"tool", "arguments"}` or `{"final"}`), enforced by
    /// constrained decoding: works with any model, the embedded one included.
    #[default]
    Planner,
    /// OpenAI-style `tools`, for models trained to call them.
    Native,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Example {
    pub user: String,
    /// The step the model should produce, as the JSON the planner expects.
    pub assistant: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentSpec {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Model id (default: the first configured model).
    #[serde(default)]
    pub model: Option<String>,
    pub system_prompt: String,
    #[serde(default)]
    pub examples: Vec<Example>,
    /// `plugin/tool`, or `plugin/*` for all of a plugin's tools.
    #[serde(default)]
    pub tools: Vec<String>,
    #[serde(default = "default_max_steps")]
    pub max_steps: u32,
    /// Per model call.
    #[serde(default = "default_max_tokens")]
    pub max_tokens: u32,
    #[serde(default)]
    pub temperature: f64,
    /// Include the user's remembered preferences in the prompt.
    #[serde(default)]
    pub memory: bool,
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
    #[serde(default)]
    pub tool_calling: ToolCalling,
    /// A tool the first step must call (like OpenAI's `tool_choice` naming
    /// a function, for the first turn only), e.g. an FAQ lookup.
    #[serde(default)]
    pub start_with: Option<String>,
}

fn default_max_steps() -> u32 {
    6
}

/// Enough for a final answer of ~250 characters and tool arguments of
/// ~100 characters each under the planner's worst-case bound (four tokens
/// per character, see `planner::bounds`); a step stops as soon as its JSON
/// closes, so a large budget costs nothing unless used.
fn default_max_tokens() -> u32 {
    1024
}

fn default_timeout() -> u64 {
    300
}

impl AgentSpec {
    /// Checks each of `[[agents]]` and that no name is declared twice.
    pub fn validate_all(specs: &[AgentSpec]) -> Result<(), SpecError> {
        let mut names = std::collections::HashSet::new();
        for a in specs {
            a.validate()?;
            if !names.insert(a.name.as_str()) {
                return Err(SpecError::Duplicate(a.name.clone()));
            }
        }
        Ok(())
    }

    pub fn validate(&self) -> Result<(), SpecError> {
        let bad = |message: String| {
            Err(SpecError::Invalid {
                name: self.name.clone(),
                message,
            })
        };
        let name_ok = !self.name.is_empty()
            && self.name.len() <= 64
            && self
                .name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
        if !name_ok {
            return bad("names use 1-64 lower-case letters, digits, '-' or '_'".into());
        }
        if self.system_prompt.trim().is_empty() || self.system_prompt.len() > 20_000 {
            return bad("system_prompt must have 1 to 20000 bytes".into());
        }
        if !(1..=50).contains(&self.max_steps) {
            return bad("max_steps must be within 1..50".into());
        }
        if !(16..=8192).contains(&self.max_tokens) {
            return bad("max_tokens must be within 16..8192".into());
        }
        if !(0.0..=2.0).contains(&self.temperature) {
            return bad("temperature must be within 0..2".into());
        }
        if !(1..=3600).contains(&self.timeout_secs) {
            return bad("timeout_secs must be within 1..3600".into());
        }
        if self.description.len() > 1000 {
            return bad("description is limited to 1000 bytes".into());
        }
        if self.examples.len() > 20
            || self
                .examples
                .iter()
                .any(|e| e.user.len() > 4000 || e.assistant.len() > 4000)
        {
            return bad("at most 20 examples of at most 4000 bytes each".into());
        }
        if self.tools.len() > 64 {
            return bad("at most 64 tool patterns".into());
        }
        if self
            .start_with
            .as_ref()
            .is_some_and(|t| t.is_empty() || t.len() > 64)
        {
            return bad("start_with names a tool (1-64 characters)".into());
        }
        for t in &self.tools {
            match t.split_once('/') {
                Some((p, tool)) if !p.is_empty() && !tool.is_empty() && !tool.contains('/') => {}
                _ => {
                    return bad(format!(
                        "tool {t:?} must be written plugin/tool or plugin/*"
                    ));
                }
            }
        }
        Ok(())
    }

    /// The three agents shipped with Warden, over the first-party plugins.
    pub fn defaults() -> Vec<AgentSpec> {
        let base = |name: &str, description: &str, prompt: &str, tools: &[&str]| AgentSpec {
            name: name.into(),
            description: description.into(),
            model: None,
            system_prompt: prompt.into(),
            examples: Vec::new(),
            tools: tools.iter().map(|t| (*t).to_owned()).collect(),
            max_steps: default_max_steps(),
            max_tokens: default_max_tokens(),
            temperature: 0.0,
            memory: false,
            timeout_secs: default_timeout(),
            tool_calling: ToolCalling::Planner,
            start_with: None,
        };
        let ex = |user: &str, assistant: &str| Example {
            user: user.into(),
            assistant: assistant.into(),
        };
        vec![
            AgentSpec {
                // Notes of a few hundred characters, with tags.
                max_tokens: 4096,
                examples: vec![
                    ex(
                        "Save a note titled 'Budget' saying 'Travel is capped at 2000 EUR.'",
                        r#"{"tool": "create_document", "arguments": {"title": "Budget", "content": "Travel is capped at 2000 EUR."}}"#,
                    ),
                    ex(
                        "What do my notes say about the hiring freeze?",
                        r#"{"tool": "search_documents", "arguments": {"query": "hiring freeze"}}"#,
                    ),
                ],
                ..base(
                    "document-assistant",
                    "Writes and finds documents, and answers from them.",
                    "You are a document assistant. To answer questions, call search_documents with the \
                     key words of the question, then answer from the results. To save something, call \
                     create_document.",
                    &[
                        "warden.document/create_document",
                        "warden.document/search_documents",
                        "warden.document/get_document",
                    ],
                )
            },
            AgentSpec {
                // Ticket descriptions of a couple of hundred characters.
                max_tokens: 2048,
                memory: true,
                start_with: Some("answer_faq".into()),
                examples: vec![ex(
                    "What are your opening hours?",
                    r#"{"tool": "answer_faq", "arguments": {"question": "What are your opening hours?"}}"#,
                )],
                ..base(
                    "support-bot",
                    "Answers customer questions from the FAQ and opens tickets.",
                    "You are a customer support assistant. For every question, first call answer_faq \
                     with the customer's question. Only if it finds nothing, call create_ticket. \
                     Be short and polite.",
                    &[
                        "warden.chatbot/answer_faq",
                        "warden.chatbot/create_ticket",
                        "warden.chatbot/get_ticket",
                        "warden.chatbot/remember_preference",
                    ],
                )
            },
            AgentSpec {
                // Scripts and code to review take room.
                max_tokens: 2048,
                ..base(
                    "coding-helper",
                    "Runs small scripts, reviews and explains code, formats JSON.",
                    "You are a coding helper. Use the tools to run scripts, review code and work with JSON. \
                 Report results exactly as the tools gave them.",
                    &["warden.coding/*"],
                )
            },
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_agents_are_valid() {
        AgentSpec::validate_all(&AgentSpec::defaults()).unwrap();
    }

    #[test]
    fn a_name_declared_twice_is_refused() {
        let mut specs = AgentSpec::defaults();
        specs.push(specs[0].clone());
        assert_eq!(
            AgentSpec::validate_all(&specs),
            Err(SpecError::Duplicate(specs[0].name.clone()))
        );
    }

    #[test]
    fn invalid_specs_name_the_problem() {
        let mut a = AgentSpec::defaults().remove(0);
        a.tools = vec!["no-slash".into()];
        let err = a.validate().unwrap_err().to_string();
        assert!(err.contains("plugin/tool"), "{err}");
        a.tools.clear();
        a.max_steps = 0;
        assert!(a.validate().unwrap_err().to_string().contains("max_steps"));
    }
}
