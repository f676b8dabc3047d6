//! Answers to `llm_judge` questions: the [`Judge`] trait (implemented by
//! the binary over its model registry) asks, [`JudgeCache`] remembers
//! answers per question and content, and [`answer_all`] turns failures into
//! answers according to each rule's `on_error`.

use std::collections::HashMap;
use std::sync::Mutex;

use warden_policy::judge::{FailMode, JudgeKey, JudgeNote, JudgeSpec};

/// The judge could not answer; the rule's `on_error` decides what that means.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct JudgeError(pub String);

/// Asks a model a yes/no question about a text.
#[async_trait::async_trait]
pub trait Judge: Send + Sync {
    async fn ask(&self, question: &str, content: &str) -> Result<bool, JudgeError>;
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
            None => Err(JudgeError("no judge model is configured".to_owned())),
            Some(j) => match tokio::time::timeout(
                spec.timeout(),
                j.ask(&spec.question, spec.excerpt(&content)),
            )
            .await
            {
                Ok(r) => r,
                Err(_) => Err(JudgeError(format!(
                    "judge timed out after {} ms",
                    spec.timeout_ms
                ))),
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
