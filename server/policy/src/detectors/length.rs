//! `length`: bounds on characters and (estimated) tokens.

use crate::spec::Invalid;
use std::sync::LazyLock;

use regex::Regex;
use serde::Deserialize;

use super::{Outcome, Span, builtin_regex};

#[derive(Debug, Deserialize)]
#[serde(try_from = "LengthRaw")]
pub struct LengthDetector {
    max_chars: Option<usize>,
    min_chars: Option<usize>,
    max_tokens: Option<usize>,
    min_tokens: Option<usize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LengthRaw {
    #[serde(default)]
    max_chars: Option<usize>,
    #[serde(default)]
    min_chars: Option<usize>,
    #[serde(default)]
    max_tokens: Option<usize>,
    #[serde(default)]
    min_tokens: Option<usize>,
}

impl TryFrom<LengthRaw> for LengthDetector {
    type Error = Invalid;
    fn try_from(r: LengthRaw) -> Result<Self, Invalid> {
        if r.max_chars.is_none()
            && r.min_chars.is_none()
            && r.max_tokens.is_none()
            && r.min_tokens.is_none()
        {
            return Err("length needs max_chars, min_chars, max_tokens or min_tokens".into());
        }
        Ok(Self {
            max_chars: r.max_chars,
            min_chars: r.min_chars,
            max_tokens: r.max_tokens,
            min_tokens: r.min_tokens,
        })
    }
}

static TOKEN: LazyLock<Regex> = LazyLock::new(|| builtin_regex(r"\w+|[^\w\s]"));

/// Words and punctuation marks: a tokenizer-free estimate that stays close
/// to BPE counts for prose (within about a third).
pub(super) fn estimate_tokens(text: &str) -> usize {
    TOKEN.find_iter(text).count()
}

impl LengthDetector {
    /// Matches when the content is outside the bounds. While a stream is
    /// still growing only the maxima can be decided.
    pub fn check(&self, text: &str, partial: bool) -> Outcome {
        let chars = text.chars().count();
        let too_long = self.max_chars.is_some_and(|m| chars > m);
        let too_short = !partial && self.min_chars.is_some_and(|m| chars < m);
        let tokens = if self.max_tokens.is_some() || self.min_tokens.is_some() {
            estimate_tokens(text)
        } else {
            0
        };
        let too_many = self.max_tokens.is_some_and(|m| tokens > m);
        let too_few = !partial && self.min_tokens.is_some_and(|m| tokens < m);
        let note = if too_long || too_short {
            Some(format!("{chars} characters"))
        } else if too_many || too_few {
            Some(format!("about {tokens} tokens"))
        } else {
            None
        };
        match note {
            Some(n) => Outcome::Hit(vec![Span::whole(text, "length")], Some(n)),
            None if partial && (self.min_chars.is_some() || self.min_tokens.is_some()) => {
                Outcome::Unknown
            }
            None => Outcome::Miss,
        }
    }
}
