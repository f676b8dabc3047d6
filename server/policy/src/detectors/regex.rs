//! `regex`: operator-written patterns, compiled with size limits so a
//! pattern cannot exhaust memory (the engine is linear-time by design).

use crate::spec::Invalid;
use serde::Deserialize;

use super::Span;

const SIZE_LIMIT: usize = 1 << 20;
const NEST_LIMIT: u32 = 64;
const MAX_PATTERNS: usize = 256;

#[derive(Debug)]
pub struct RegexDetector {
    regexes: Vec<::regex::Regex>,
    kind: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RegexRaw {
    #[serde(default)]
    pattern: Option<String>,
    #[serde(default)]
    patterns: Vec<String>,
    #[serde(default)]
    case_insensitive: bool,
    /// Span type reported for matches (default `regex`).
    #[serde(default, rename = "type")]
    kind: Option<String>,
}

impl<'de> Deserialize<'de> for RegexDetector {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = RegexRaw::deserialize(d)?;
        RegexDetector::compile(raw).map_err(serde::de::Error::custom)
    }
}

impl RegexDetector {
    fn compile(raw: RegexRaw) -> Result<Self, Invalid> {
        let mut patterns = raw.patterns;
        patterns.extend(raw.pattern);
        if patterns.is_empty() {
            return Err("regex needs `pattern` or `patterns`".into());
        }
        if patterns.len() > MAX_PATTERNS {
            return Err(Invalid(format!(
                "regex takes at most {MAX_PATTERNS} patterns"
            )));
        }
        let regexes = patterns
            .iter()
            .map(|p| {
                let re = ::regex::RegexBuilder::new(p)
                    .case_insensitive(raw.case_insensitive)
                    .size_limit(SIZE_LIMIT)
                    .dfa_size_limit(SIZE_LIMIT)
                    .nest_limit(NEST_LIMIT)
                    .build()
                    .map_err(|e| format!("invalid regex {p:?}: {e}"))?;
                if re.is_match("") {
                    return Err(Invalid(format!("regex {p:?} matches the empty string")));
                }
                Ok(re)
            })
            .collect::<Result<Vec<_>, Invalid>>()?;
        let kind = raw.kind.unwrap_or_else(|| "regex".into());
        if kind.is_empty() || kind.len() > 64 {
            return Err("regex `type` must have 1 to 64 characters".into());
        }
        Ok(Self { regexes, kind })
    }

    pub fn find(&self, text: &str) -> Vec<Span> {
        let mut spans = Vec::new();
        for re in &self.regexes {
            for m in re.find_iter(text) {
                spans.push(Span::new(m.start(), m.end(), self.kind.clone()));
            }
        }
        spans
    }
}
