//! `language`: content in a language outside an allow-list.

use serde::Deserialize;
use whatlang::Lang;

use super::{Outcome, Span};

#[derive(Debug)]
pub struct LanguageDetector {
    allow: Vec<Lang>,
    min_confidence: f64,
    min_chars: usize,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LanguageRaw {
    /// ISO 639-3 codes, e.g. `eng`, `fra`, `deu`.
    allow: Vec<String>,
    /// Detection confidence (0..1) below which nothing matches (default 0.5).
    #[serde(default = "default_confidence")]
    min_confidence: f64,
    /// Shorter content is never judged (default 20 characters).
    #[serde(default = "default_min_chars")]
    min_chars: usize,
}

fn default_confidence() -> f64 {
    0.5
}

fn default_min_chars() -> usize {
    20
}

impl<'de> Deserialize<'de> for LanguageDetector {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let raw = LanguageRaw::deserialize(d)?;
        if raw.allow.is_empty() {
            return Err(D::Error::custom(
                "language `allow` must list at least one language",
            ));
        }
        let allow = raw
            .allow
            .iter()
            .map(|c| {
                Lang::from_code(c.to_ascii_lowercase()).ok_or_else(|| {
                    D::Error::custom(format!(
                        "language: unknown code {c:?} (use ISO 639-3, e.g. eng, fra, deu, spa)"
                    ))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        if !(0.0..=1.0).contains(&raw.min_confidence) {
            return Err(D::Error::custom(
                "language `min_confidence` must be within 0..1",
            ));
        }
        Ok(LanguageDetector {
            allow,
            min_confidence: raw.min_confidence,
            min_chars: raw.min_chars,
        })
    }
}

impl LanguageDetector {
    pub fn check(&self, text: &str) -> Outcome {
        if text.chars().count() < self.min_chars {
            return Outcome::Miss;
        }
        match whatlang::detect(text) {
            Some(info)
                if info.confidence() >= self.min_confidence
                    && !self.allow.contains(&info.lang()) =>
            {
                Outcome::Hit(
                    vec![Span::whole(text, "language")],
                    Some(format!("language {}", info.lang().code())),
                )
            }
            _ => Outcome::Miss,
        }
    }
}
