//! Built-in detectors. Each finds spans (byte offsets into the checked
//! text, with a type such as `email`) or judges the content as a whole.
//! None does I/O; the LLM judge's answers are looked up, not asked for.

mod json;
mod keywords;
mod length;
mod pii;
mod regex;
mod secrets;
mod url;
mod whole;

use std::borrow::Cow;
use std::collections::HashMap;

use serde::Serialize;

pub use self::json::JsonSchemaDetector;
pub use self::keywords::KeywordsDetector;
pub use self::length::LengthDetector;
pub use self::pii::{PiiDetector, PiiType};
pub use self::regex::RegexDetector;
pub use self::secrets::{SecretType, SecretsDetector, shannon_entropy};
pub use self::url::UrlDetector;
pub use self::whole::LanguageDetector;
use super::judge::{JudgeKey, JudgeSpec};

/// A matched region: `text[start..end]`, of type `kind`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Span {
    pub start: usize,
    pub end: usize,
    #[serde(rename = "type")]
    pub kind: Cow<'static, str>,
}

impl Span {
    pub fn new(start: usize, end: usize, kind: impl Into<Cow<'static, str>>) -> Self {
        Self {
            start,
            end,
            kind: kind.into(),
        }
    }

    pub fn whole(text: &str, kind: &'static str) -> Self {
        Self::new(0, text.len(), kind)
    }
}

/// What a detector found.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Matched: the spans (never empty) and an optional explanation that
    /// never quotes the content (e.g. "language fra").
    Hit(Vec<Span>, Option<String>),
    Miss,
    /// Cannot tell yet: an LLM judge answer not yet known, or a whole-content
    /// detector asked about a partial stream.
    Unknown,
}

/// Evaluation context shared by all detectors of one evaluation.
pub struct DetectCtx<'a> {
    /// The text is a prefix of a stream that is still growing.
    pub partial: bool,
    /// LLM judge answers known so far (`true` = the judge said yes).
    pub judgements: &'a HashMap<JudgeKey, bool>,
}

#[derive(Debug)]
pub enum Detector {
    Regex(RegexDetector),
    Keywords(KeywordsDetector),
    Pii(PiiDetector),
    Secrets(SecretsDetector),
    Length(LengthDetector),
    JsonSchema(Box<JsonSchemaDetector>),
    Url(UrlDetector),
    Language(LanguageDetector),
    LlmJudge(JudgeSpec),
}

impl Detector {
    pub fn name(&self) -> &'static str {
        match self {
            Detector::Regex(_) => "regex",
            Detector::Keywords(_) => "keywords",
            Detector::Pii(_) => "pii",
            Detector::Secrets(_) => "secrets",
            Detector::Length(_) => "length",
            Detector::JsonSchema(_) => "json_schema",
            Detector::Url(_) => "url",
            Detector::Language(_) => "language",
            Detector::LlmJudge(_) => "llm_judge",
        }
    }

    pub fn detect(&self, text: &str, ctx: &DetectCtx<'_>) -> Outcome {
        let spans = match self {
            Detector::Regex(d) => d.find(text),
            Detector::Keywords(d) => d.find(text),
            Detector::Pii(d) => d.find(text),
            Detector::Secrets(d) => d.find(text),
            Detector::Url(d) => d.find(text),
            Detector::Length(d) => return d.check(text, ctx.partial),
            Detector::JsonSchema(d) if !ctx.partial => return d.check(text),
            Detector::Language(d) if !ctx.partial => return d.check(text),
            Detector::LlmJudge(j) if !ctx.partial => {
                return match ctx.judgements.get(&j.key(text)) {
                    Some(true) => Outcome::Hit(
                        vec![Span::whole(text, "llm_judge")],
                        Some("judge answered yes".into()),
                    ),
                    Some(false) => Outcome::Miss,
                    None => Outcome::Unknown,
                };
            }
            Detector::JsonSchema(_) | Detector::Language(_) | Detector::LlmJudge(_) => {
                return Outcome::Unknown;
            }
        };
        if spans.is_empty() {
            Outcome::Miss
        } else {
            Outcome::Hit(spans, None)
        }
    }
}

/// `true` when `text[start..end]` is not glued to word characters on
/// either side.
pub(crate) fn at_word_boundaries(text: &str, start: usize, end: usize) -> bool {
    let before = text[..start].chars().next_back();
    let after = text[end..].chars().next();
    !before.is_some_and(is_word_char) && !after.is_some_and(is_word_char)
}

pub(crate) fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Builds a regex for built-in patterns (known good at compile time).
pub(crate) fn builtin_regex(pattern: &str) -> ::regex::Regex {
    ::regex::Regex::new(pattern).expect("built-in pattern compiles")
}

#[cfg(test)]
mod corpus_tests;
