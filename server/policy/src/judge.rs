//! `llm_judge`: a yes/no question about the content, answered by a model
//! with constrained output. This crate only describes the question and
//! looks answers up by [`JudgeKey`]; asking a model (and caching what it
//! said) is `warden-governance`'s job, outside the engine.

use std::time::Duration;

use serde::Deserialize;
use sha2::{Digest, Sha256};

/// Identifies one question about one content: sha256 of both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct JudgeKey([u8; 32]);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailMode {
    /// A failed judge counts as "no": the content passes.
    Open,
    /// A failed judge counts as "yes": the rule matches.
    Closed,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JudgeSpec {
    /// A yes/no question; "yes" means the rule matches.
    pub question: String,
    /// What a timeout or model error counts as (default `closed`).
    #[serde(default = "closed")]
    pub on_error: FailMode,
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Content beyond this many characters is cut before asking.
    #[serde(default = "default_max_chars")]
    pub max_chars: usize,
}

fn closed() -> FailMode {
    FailMode::Closed
}

fn default_timeout_ms() -> u64 {
    20_000
}

fn default_max_chars() -> usize {
    4000
}

impl JudgeSpec {
    /// Identifies this question, as this rule asks it (excerpt length and
    /// failure mode included), about this content.
    pub fn key(&self, content: &str) -> JudgeKey {
        let mut h = Sha256::new();
        h.update((self.question.len() as u64).to_le_bytes());
        h.update(self.question.as_bytes());
        h.update((self.max_chars as u64).to_le_bytes());
        h.update([u8::from(self.on_error == FailMode::Closed)]);
        h.update(content.as_bytes());
        JudgeKey(h.finalize().into())
    }

    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }

    /// The content as the judge sees it (cut at `max_chars`).
    pub fn excerpt<'a>(&self, content: &'a str) -> &'a str {
        match content.char_indices().nth(self.max_chars) {
            Some((i, _)) => &content[..i],
            None => content,
        }
    }
}

/// The outcome of asking, as recorded on the decision.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct JudgeNote {
    pub rule: String,
    pub answer: bool,
    /// `answered`, `cached`, or the failure that `on_error` turned into the answer.
    pub source: String,
}
