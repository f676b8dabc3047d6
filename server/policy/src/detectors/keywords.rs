//! `keywords`: word lists matched with one Aho-Corasick automaton.

use crate::spec::Invalid;
use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use serde::Deserialize;

use super::{Span, at_word_boundaries};

const MAX_WORDS: usize = 10_000;

#[derive(Debug)]
pub struct KeywordsDetector {
    automaton: AhoCorasick,
    whole_words: bool,
    kind: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeywordsRaw {
    words: Vec<String>,
    #[serde(default)]
    case_sensitive: bool,
    /// Only match where the keyword is not part of a longer word.
    #[serde(default = "yes")]
    whole_words: bool,
    #[serde(default, rename = "type")]
    kind: Option<String>,
}

fn yes() -> bool {
    true
}

impl<'de> Deserialize<'de> for KeywordsDetector {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = KeywordsRaw::deserialize(d)?;
        KeywordsDetector::compile(raw).map_err(serde::de::Error::custom)
    }
}

impl KeywordsDetector {
    fn compile(raw: KeywordsRaw) -> Result<Self, Invalid> {
        if raw.words.is_empty() || raw.words.len() > MAX_WORDS {
            return Err(Invalid(format!("keywords needs 1 to {MAX_WORDS} words")));
        }
        if let Some(w) = raw.words.iter().find(|w| w.trim().is_empty()) {
            return Err(Invalid(format!("keywords: empty word {w:?}")));
        }
        // Case-insensitivity covers ASCII letters: folding other scripts
        // would change byte lengths and so the reported offsets.
        let automaton = AhoCorasickBuilder::new()
            .match_kind(MatchKind::LeftmostLongest)
            .ascii_case_insensitive(!raw.case_sensitive)
            .build(&raw.words)
            .map_err(|e| format!("keywords: {e}"))?;
        Ok(Self {
            automaton,
            whole_words: raw.whole_words,
            kind: raw.kind.unwrap_or_else(|| "keyword".into()),
        })
    }

    pub fn find(&self, text: &str) -> Vec<Span> {
        let mut spans = Vec::new();
        for m in self.automaton.find_iter(text) {
            if self.whole_words && !at_word_boundaries(text, m.start(), m.end()) {
                continue;
            }
            spans.push(Span::new(m.start(), m.end(), self.kind.clone()));
        }
        spans
    }
}
