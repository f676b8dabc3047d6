//! `llm_judge`: a yes/no question about the content, answered by a model
//! with constrained output. The engine only looks answers up; the
//! [`Judge`] trait (implemented by the server over its model registry)
//! asks, and [`JudgeCache`] remembers answers per question and content.

use std::collections::HashMap;
use std::sync::Mutex;
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

/// Asks a model a yes/no question about a text.
#[async_trait::async_trait]
pub trait Judge: Send + Sync {
    async fn ask(&self, question: &str, content: &str) -> Result<bool, String>;
}

/// Bounded memory of answers; cleared wholesale when full, which keeps it
/// simple and its worst case known.
pub struct JudgeCache {
    answers: Mutex<HashMap<JudgeKey, bool>>,
    capacity: usize,
}

impl JudgeCache {
    pub fn new(capacity: usize) -> Self {
        Self {
            answers: Mutex::new(HashMap::new()),
            capacity,
        }
    }

    pub fn get(&self, key: &JudgeKey) -> Option<bool> {
        self.lock().get(key).copied()
    }

    pub fn put(&self, key: JudgeKey, answer: bool) {
        let mut map = self.lock();
        if map.len() >= self.capacity {
            map.clear();
        }
        map.insert(key, answer);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<JudgeKey, bool>> {
        self.answers.lock().unwrap_or_else(|e| e.into_inner())
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

/// Asks every pending question (concurrently), consulting and filling the
/// cache. Failures become answers according to each rule's `on_error`.
pub async fn answer_all(
    judge: Option<&dyn Judge>,
    cache: &JudgeCache,
    pending: Vec<(String, JudgeSpec, String)>,
    into: &mut HashMap<JudgeKey, bool>,
) -> Vec<JudgeNote> {
    let asks = pending.into_iter().map(|(rule, spec, content)| async move {
        let key = spec.key(&content);
        if let Some(a) = cache.get(&key) {
            return (
                key,
                JudgeNote {
                    rule,
                    answer: a,
                    source: "cached".into(),
                },
                false,
            );
        }
        let result = match judge {
            None => Err("no judge model is configured".to_owned()),
            Some(j) => match tokio::time::timeout(
                spec.timeout(),
                j.ask(&spec.question, spec.excerpt(&content)),
            )
            .await
            {
                Ok(r) => r,
                Err(_) => Err(format!("judge timed out after {} ms", spec.timeout_ms)),
            },
        };
        match result {
            Ok(a) => (
                key,
                JudgeNote {
                    rule,
                    answer: a,
                    source: "answered".into(),
                },
                true,
            ),
            Err(e) => {
                let answer = spec.on_error == FailMode::Closed;
                let how = if answer { "fail-closed" } else { "fail-open" };
                (
                    key,
                    JudgeNote {
                        rule,
                        answer,
                        source: format!("{how}: {e}"),
                    },
                    false,
                )
            }
        }
    });
    let results = futures::future::join_all(asks).await;
    let mut notes = Vec::new();
    for (key, note, cacheable) in results {
        if cacheable {
            cache.put(key, note.answer);
        }
        into.insert(key, note.answer);
        notes.push(note);
    }
    notes
}
