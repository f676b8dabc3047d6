//! Keyword search: BM25 over title and content (title terms count triple),
//! with a snippet around the first match.

use serde::{Deserialize, Serialize};
use warden_sdk::{Context, JsonSchema, ToolError};

use crate::store::{Document, load_all};

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchArgs {
    /// Words to look for; documents matching more of them rank higher.
    #[schemars(length(min = 1, max = 200))]
    query: String,
    /// At most this many results (default 5).
    limit: Option<u32>,
}

#[derive(Debug, Serialize)]
pub struct Hit {
    pub id: String,
    pub title: String,
    pub score: f64,
    pub snippet: String,
}

pub fn search(_: &Context, a: SearchArgs) -> Result<Vec<Hit>, ToolError> {
    let terms = terms(&a.query);
    if terms.is_empty() {
        return Err(ToolError::invalid("query has no searchable words"));
    }
    Ok(rank(
        &load_all()?,
        &terms,
        a.limit.unwrap_or(5).clamp(1, 100) as usize,
    ))
}

pub fn terms(text: &str) -> Vec<String> {
    const STOP: &[&str] = &[
        "a", "an", "and", "are", "as", "at", "be", "by", "for", "from", "how", "in", "is", "it",
        "of", "on", "or", "that", "the", "this", "to", "was", "what", "with",
    ];
    let mut out: Vec<String> = text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .filter(|w| !STOP.contains(&w.as_str()))
        .collect();
    out.dedup();
    out
}

pub fn rank(docs: &[Document], query: &[String], limit: usize) -> Vec<Hit> {
    const K1: f64 = 1.2;
    const B: f64 = 0.75;
    let tokenized: Vec<Vec<String>> = docs
        .iter()
        .map(|d| {
            let mut t = terms(&d.title);
            let title = t.clone();
            t.extend(title.iter().cloned());
            t.extend(title);
            t.extend(terms(&d.content));
            t
        })
        .collect();
    let n = docs.len() as f64;
    let avg_len = tokenized.iter().map(Vec::len).sum::<usize>() as f64 / n.max(1.0);
    let mut hits: Vec<Hit> = Vec::new();
    for (doc, toks) in docs.iter().zip(&tokenized) {
        let mut score = 0.0;
        for term in query {
            let tf = toks.iter().filter(|t| *t == term).count() as f64;
            if tf == 0.0 {
                continue;
            }
            let df = tokenized.iter().filter(|ts| ts.contains(term)).count() as f64;
            let idf = ((n - df + 0.5) / (df + 0.5) + 1.0).ln();
            let norm = 1.0 - B + B * toks.len() as f64 / avg_len.max(1.0);
            score += idf * tf * (K1 + 1.0) / (tf + K1 * norm);
        }
        if score > 0.0 {
            hits.push(Hit {
                id: doc.id.clone(),
                title: doc.title.clone(),
                score: (score * 1000.0).round() / 1000.0,
                snippet: snippet(&doc.content, query),
            });
        }
    }
    hits.sort_by(|a, b| b.score.total_cmp(&a.score).then_with(|| a.id.cmp(&b.id)));
    hits.truncate(limit);
    hits
}

/// About 160 characters of `content` around the first query term.
pub fn snippet(content: &str, query: &[String]) -> String {
    const HALF: usize = 80;
    let lower = content.to_lowercase();
    // Lower-casing can change byte lengths; only trust positions when it didn't.
    let pos = if lower.len() == content.len() {
        query.iter().filter_map(|t| lower.find(t.as_str())).min()
    } else {
        None
    }
    .unwrap_or(0);
    let chars: Vec<(usize, char)> = content.char_indices().collect();
    let at = chars.iter().position(|(i, _)| *i >= pos).unwrap_or(0);
    let start = at.saturating_sub(HALF);
    let end = (at + HALF).min(chars.len());
    let mut s: String = chars[start..end].iter().map(|(_, c)| *c).collect();
    s = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if start > 0 {
        s.insert(0, '…');
    }
    if end < chars.len() {
        s.push('…');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(id: &str, title: &str, content: &str) -> Document {
        Document {
            id: id.into(),
            title: title.into(),
            content: content.into(),
            tags: vec![],
            created_at: 0,
            updated_at: 0,
        }
    }

    #[test]
    fn title_matches_outrank_body_matches_and_misses_are_dropped() {
        let docs = [
            doc(
                "a",
                "Refund policy",
                "Customers may ask for money back within 30 days.",
            ),
            doc(
                "b",
                "Shipping",
                "We ship worldwide. A refund is possible for damaged goods.",
            ),
            doc("c", "Careers", "Join our team."),
        ];
        let hits = rank(&docs, &terms("refund"), 10);
        assert_eq!(
            hits.iter().map(|h| h.id.as_str()).collect::<Vec<_>>(),
            ["a", "b"]
        );
        assert!(hits[1].snippet.contains("refund"), "{:?}", hits[1]);
    }

    #[test]
    fn snippets_are_cut_on_char_boundaries() {
        let text = format!("{} naïve café refund {}", "é".repeat(200), "ü".repeat(200));
        let s = snippet(&text, &["refund".to_string()]);
        assert!(s.starts_with('…') && s.ends_with('…'), "{s}");
    }
}
