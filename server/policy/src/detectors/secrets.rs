//! `secrets`: credentials by their published formats, plus high-entropy
//! tokens for formats nobody published.

use std::sync::LazyLock;

use base64::Engine as _;
use regex::Regex;
use serde::Deserialize;

use super::{Span, builtin_regex};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SecretType {
    AwsAccessKey,
    AwsSecretKey,
    GithubToken,
    SlackToken,
    StripeKey,
    LlmApiKey,
    GoogleApiKey,
    Jwt,
    PrivateKey,
    HighEntropy,
}

impl SecretType {
    pub const ALL: [SecretType; 10] = [
        SecretType::AwsAccessKey,
        SecretType::AwsSecretKey,
        SecretType::GithubToken,
        SecretType::SlackToken,
        SecretType::StripeKey,
        SecretType::LlmApiKey,
        SecretType::GoogleApiKey,
        SecretType::Jwt,
        SecretType::PrivateKey,
        SecretType::HighEntropy,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SecretType::AwsAccessKey => "aws_access_key",
            SecretType::AwsSecretKey => "aws_secret_key",
            SecretType::GithubToken => "github_token",
            SecretType::SlackToken => "slack_token",
            SecretType::StripeKey => "stripe_key",
            SecretType::LlmApiKey => "llm_api_key",
            SecretType::GoogleApiKey => "google_api_key",
            SecretType::Jwt => "jwt",
            SecretType::PrivateKey => "private_key",
            SecretType::HighEntropy => "high_entropy",
        }
    }
}

static AWS_ACCESS: LazyLock<Regex> =
    LazyLock::new(|| builtin_regex(r"\b(?:AKIA|ASIA|ABIA|ACCA|AIDA|AROA)[A-Z2-7]{16}\b"));
static AWS_SECRET: LazyLock<Regex> = LazyLock::new(|| {
    builtin_regex(
        r#"(?i)aws.{0,24}?(?:secret|private)?.{0,12}?(?:key|token).{0,8}?["'=:\s]\s*["']?([A-Za-z0-9/+]{40})(?:[^A-Za-z0-9/+=]|$)"#,
    )
});
static GITHUB: LazyLock<Regex> = LazyLock::new(|| {
    builtin_regex(r"\b(?:gh[pousr]_[A-Za-z0-9]{36,251}|github_pat_[A-Za-z0-9_]{22,255})\b")
});
static SLACK: LazyLock<Regex> = LazyLock::new(|| {
    builtin_regex(
        r"\bxox[abposr]-[0-9A-Za-z-]{10,250}|https://hooks\.slack\.com/services/T[A-Z0-9]{6,}/B[A-Z0-9]{6,}/[A-Za-z0-9]{16,}",
    )
});
static STRIPE: LazyLock<Regex> =
    LazyLock::new(|| builtin_regex(r"\b(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{16,247}\b"));
static LLM_KEY: LazyLock<Regex> = LazyLock::new(|| {
    builtin_regex(r"\bsk-(?:proj-|ant-(?:api\d{2}-)?|svcacct-)?[A-Za-z0-9_-]{32,}")
});
static GOOGLE: LazyLock<Regex> =
    LazyLock::new(|| builtin_regex(r"\bAIza[0-9A-Za-z_-]{35}(?:[^0-9A-Za-z_-]|$)"));
static JWT: LazyLock<Regex> = LazyLock::new(|| {
    builtin_regex(r"\beyJ[A-Za-z0-9_-]{4,}={0,2}\.eyJ[A-Za-z0-9_-]{4,}={0,2}\.[A-Za-z0-9_-]{8,}")
});
static PEM_BEGIN: LazyLock<Regex> =
    LazyLock::new(|| builtin_regex(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----"));
static PEM_END: LazyLock<Regex> =
    LazyLock::new(|| builtin_regex(r"-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----"));
static TOKEN: LazyLock<Regex> = LazyLock::new(|| builtin_regex(r"[A-Za-z0-9+/_=-]{20,}"));

#[derive(Debug)]
pub struct SecretsDetector {
    types: Vec<SecretType>,
    min_entropy: f64,
    min_length: usize,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SecretsRaw {
    #[serde(default)]
    types: Option<Vec<SecretType>>,
    /// `high_entropy`: bits per character a token needs (default 4.0).
    #[serde(default = "default_entropy")]
    min_entropy: f64,
    /// `high_entropy`: shortest token considered (default 24).
    #[serde(default = "default_min_length")]
    min_length: usize,
}

fn default_entropy() -> f64 {
    4.0
}

fn default_min_length() -> usize {
    24
}

impl<'de> Deserialize<'de> for SecretsDetector {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let raw = SecretsRaw::deserialize(d)?;
        let types = match raw.types {
            Some(t) if t.is_empty() => {
                return Err(D::Error::custom(
                    "secrets `types` must name at least one type (or be left out for all)",
                ));
            }
            Some(t) => t,
            None => SecretType::ALL.to_vec(),
        };
        if !(1.0..=8.0).contains(&raw.min_entropy) {
            return Err(D::Error::custom(
                "secrets `min_entropy` must be within 1..8",
            ));
        }
        if !(20..=1000).contains(&raw.min_length) {
            return Err(D::Error::custom(
                "secrets `min_length` must be within 20..1000",
            ));
        }
        Ok(SecretsDetector {
            types,
            min_entropy: raw.min_entropy,
            min_length: raw.min_length,
        })
    }
}

impl SecretsDetector {
    pub fn new(types: Vec<SecretType>) -> Self {
        Self {
            types,
            min_entropy: default_entropy(),
            min_length: default_min_length(),
        }
    }

    pub fn find(&self, text: &str) -> Vec<Span> {
        let mut out: Vec<Span> = Vec::new();
        let mut high_entropy = false;
        for &t in &self.types {
            let kind = t.as_str();
            let re: &Regex = match t {
                SecretType::AwsAccessKey => &AWS_ACCESS,
                SecretType::GithubToken => &GITHUB,
                SecretType::SlackToken => &SLACK,
                SecretType::StripeKey => &STRIPE,
                SecretType::LlmApiKey => &LLM_KEY,
                SecretType::AwsSecretKey => {
                    for c in AWS_SECRET.captures_iter(text) {
                        if let Some(m) = c.get(1) {
                            out.push(Span::new(m.start(), m.end(), kind));
                        }
                    }
                    continue;
                }
                SecretType::GoogleApiKey => {
                    for m in GOOGLE.find_iter(text) {
                        let key = &m.as_str()[..39];
                        out.push(Span::new(m.start(), m.start() + key.len(), kind));
                    }
                    continue;
                }
                SecretType::Jwt => {
                    for m in JWT.find_iter(text) {
                        if jwt_header_is_json(m.as_str()) {
                            out.push(Span::new(m.start(), m.end(), kind));
                        }
                    }
                    continue;
                }
                SecretType::PrivateKey => {
                    find_private_keys(text, &mut out);
                    continue;
                }
                SecretType::HighEntropy => {
                    high_entropy = true;
                    continue;
                }
            };
            for m in re.find_iter(text) {
                out.push(Span::new(m.start(), m.end(), kind));
            }
        }
        if high_entropy {
            let known = out.clone();
            for m in TOKEN.find_iter(text) {
                let covered = known.iter().any(|s| s.start < m.end() && m.start() < s.end);
                if !covered && self.looks_random(m.as_str()) {
                    out.push(Span::new(m.start(), m.end(), "high_entropy"));
                }
            }
        }
        out
    }

    /// Long, mixing letters and digits, not plain hex (hashes and ids),
    /// and close to random in its character distribution.
    fn looks_random(&self, token: &str) -> bool {
        let token = token.trim_end_matches('=');
        if token.len() < self.min_length {
            return false;
        }
        let has_digit = token.bytes().any(|b| b.is_ascii_digit());
        let has_lower = token.bytes().any(|b| b.is_ascii_lowercase());
        let has_upper = token.bytes().any(|b| b.is_ascii_uppercase());
        let hex = token.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-');
        has_digit && has_lower && has_upper && !hex && shannon_entropy(token) >= self.min_entropy
    }
}

/// Bits per character of the string's own character distribution.
pub fn shannon_entropy(s: &str) -> f64 {
    let mut counts = [0u32; 256];
    for b in s.bytes() {
        counts[usize::from(b)] += 1;
    }
    let n = s.len() as f64;
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = f64::from(c) / n;
            -p * p.log2()
        })
        .sum()
}

fn jwt_header_is_json(token: &str) -> bool {
    let header = token
        .split('.')
        .next()
        .unwrap_or_default()
        .trim_end_matches('=');
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header)
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .is_some_and(|v| v.get("alg").is_some() || v.get("typ").is_some())
}

/// A PEM private key block runs to its END line, or to the end of the text
/// when the END line has not arrived (a stream still being written).
fn find_private_keys(text: &str, out: &mut Vec<Span>) {
    let mut from = 0;
    while let Some(begin) = PEM_BEGIN.find_at(text, from) {
        let end = PEM_END
            .find_at(text, begin.end())
            .map_or(text.len(), |m| m.end());
        out.push(Span::new(begin.start(), end, "private_key"));
        from = end;
        if from >= text.len() {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(text: &str) -> Vec<String> {
        SecretsDetector::new(SecretType::ALL.to_vec())
            .find(text)
            .into_iter()
            .map(|s| format!("{}={}", s.kind, &text[s.start..s.end]))
            .collect()
    }

    #[test]
    fn an_unterminated_private_key_runs_to_the_end() {
        let text = "key: -----BEGIN RSA PRIVATE KEY-----\nMIIEow";
        assert_eq!(kinds(text), [format!("private_key={}", &text[5..])]);
    }

    #[test]
    fn hashes_and_uuids_are_not_secrets() {
        assert!(kinds("commit 9fceb02d0ae598e95dc970b74767f19372d61af8").is_empty());
        assert!(kinds("id 550e8400-e29b-41d4-a716-446655440000").is_empty());
        assert!(kinds("see the_quick_brown_fox_jumps_over_the_lazy_dog").is_empty());
    }
}
