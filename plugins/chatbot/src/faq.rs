//! FAQ entries in the `faq` bucket, matched by weighted word overlap.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use warden_sdk::{Context, JsonSchema, ToolError, kv};

const BUCKET: &str = "faq";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Entry {
    pub id: String,
    pub question: String,
    pub answer: String,
    #[serde(default)]
    pub tags: Vec<String>,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AddArgs {
    question: String,
    answer: String,
    #[serde(default)]
    tags: Vec<String>,
}

pub fn add(_: &Context, a: AddArgs) -> Result<Entry, ToolError> {
    if a.question.trim().is_empty() || a.answer.trim().is_empty() {
        return Err(ToolError::invalid("question and answer must not be empty"));
    }
    if a.question.len() > 2000 || a.answer.len() > 20_000 {
        return Err(ToolError::invalid(
            "question (2000) or answer (20000 bytes) too long",
        ));
    }
    let n = kv::next_id(BUCKET, "meta:next-id")?;
    let entry = Entry {
        id: format!("faq-{n}"),
        question: a.question.trim().into(),
        answer: a.answer.trim().into(),
        tags: a.tags,
    };
    kv::set_json(BUCKET, &format!("entry:{}", entry.id), &entry)?;
    Ok(entry)
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AnswerArgs {
    /// The customer's question.
    #[schemars(length(min = 1, max = 500))]
    question: String,
    /// At most this many entries (default 3).
    limit: Option<u32>,
}

#[derive(Debug, Serialize)]
pub struct Match {
    pub id: String,
    pub question: String,
    pub answer: String,
    pub score: f64,
}

#[derive(Serialize)]
pub struct Answer {
    matches: Vec<Match>,
    /// True when nothing matched well enough; escalate to a ticket.
    no_good_match: bool,
}

pub fn answer(_: &Context, a: AnswerArgs) -> Result<Answer, ToolError> {
    let keys = kv::list_keys(BUCKET, "entry:", 1000)?;
    let mut entries = Vec::new();
    for k in keys {
        if let Some(e) = kv::get_json::<Entry>(BUCKET, &k)? {
            entries.push(e);
        }
    }
    let matches = best(
        &entries,
        &a.question,
        a.limit.unwrap_or(3).clamp(1, 20) as usize,
    );
    let no_good_match = matches.first().is_none_or(|m| m.score < 0.3);
    Ok(Answer {
        matches,
        no_good_match,
    })
}

fn words(text: &str) -> BTreeSet<String> {
    const STOP: &[&str] = &[
        "a", "an", "and", "are", "can", "do", "does", "for", "how", "i", "is", "it", "my", "of",
        "the", "to", "what", "when", "where", "you", "your",
    ];
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.len() > 1)
        .map(|w| {
            let w = w.to_lowercase();
            // Crude stemming so "refunds" finds "refund".
            w.strip_suffix('s')
                .filter(|s| s.len() > 2)
                .map(str::to_owned)
                .unwrap_or(w)
        })
        .filter(|w| !STOP.contains(&w.as_str()))
        .collect()
}

/// Score = share of the query's words found, with question words counting
/// double against answer words; in [0, 1].
pub fn best(entries: &[Entry], question: &str, limit: usize) -> Vec<Match> {
    let q = words(question);
    if q.is_empty() {
        return Vec::new();
    }
    let mut out: Vec<Match> = entries
        .iter()
        .map(|e| {
            let eq = words(&e.question);
            let ea = words(&e.answer);
            let tags: BTreeSet<String> = e.tags.iter().map(|t| t.to_lowercase()).collect();
            let got: f64 = q
                .iter()
                .map(|w| {
                    if eq.contains(w) || tags.contains(w) {
                        1.0
                    } else if ea.contains(w) {
                        0.5
                    } else {
                        0.0
                    }
                })
                .sum();
            let score = (got / q.len() as f64 * 1000.0).round() / 1000.0;
            Match {
                id: e.id.clone(),
                question: e.question.clone(),
                answer: e.answer.clone(),
                score,
            }
        })
        .filter(|m| m.score > 0.0)
        .collect();
    out.sort_by(|a, b| b.score.total_cmp(&a.score).then_with(|| a.id.cmp(&b.id)));
    out.truncate(limit);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_closest_question_wins() {
        let e = |id: &str, q: &str, a: &str| Entry {
            id: id.into(),
            question: q.into(),
            answer: a.into(),
            tags: vec![],
        };
        let entries = [
            e(
                "1",
                "How do I reset my password?",
                "Use the 'forgot password' link.",
            ),
            e(
                "2",
                "What is your refund policy?",
                "Refunds within 30 days.",
            ),
            e("3", "Do you ship abroad?", "Yes, worldwide shipping."),
        ];
        let m = best(&entries, "I want a refund", 3);
        assert_eq!(m[0].id, "2");
        assert_eq!(m.len(), 1);
        assert!(best(&entries, "the and of", 3).is_empty());
    }
}
