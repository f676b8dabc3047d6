//! The policy file format (`policies/*.yaml`).
//!
//! Every struct rejects unknown keys, and every value that needs compiling
//! (regexes, keyword automata, JSON Schemas) is compiled while it is
//! deserialized, so serde_yaml attaches the line and column of the offending
//! value to the error.

use serde::{Deserialize, Serialize};

use super::detectors::{
    Detector, JsonSchemaDetector, KeywordsDetector, LanguageDetector, LengthDetector, PiiDetector,
    RegexDetector, SecretsDetector, UrlDetector,
};
use super::judge::JudgeSpec;
use super::testing::PolicyTest;

/// A policy value that does not compile (a bad pattern, an empty list, a
/// rule that contradicts itself). serde reports it with the file's line,
/// column and YAML path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

impl From<String> for Invalid {
    fn from(message: String) -> Self {
        Invalid(message)
    }
}

impl From<&str> for Invalid {
    fn from(message: &str) -> Self {
        Invalid(message.to_owned())
    }
}

/// Where in an exchange content is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// What a user (or client) sends.
    Input,
    /// Each model reply inside an agent run, before anything acts on it.
    LlmOutput,
    /// A tool call's arguments (JSON), before the tool runs.
    ToolCall,
    /// A tool's output, before the model sees it.
    ToolResult,
    /// The final answer, before the user sees it.
    Output,
}

impl Stage {
    pub const ALL: [Stage; 5] = [
        Stage::Input,
        Stage::LlmOutput,
        Stage::ToolCall,
        Stage::ToolResult,
        Stage::Output,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Input => "input",
            Stage::LlmOutput => "llm_output",
            Stage::ToolCall => "tool_call",
            Stage::ToolResult => "tool_result",
            Stage::Output => "output",
        }
    }

    pub fn parse(s: &str) -> Option<Stage> {
        Stage::ALL.into_iter().find(|st| st.as_str() == s)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Matches act.
    #[default]
    Enforce,
    /// Matches are recorded with what would have happened; nothing acts.
    Monitor,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Enforce => "enforce",
            Mode::Monitor => "monitor",
        }
    }
}

/// What a matching rule does. The order is the precedence: when several
/// rules match, the greatest wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Allow,
    Flag,
    Redact,
    RequireApproval,
    Block,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Allow => "allow",
            Action::Flag => "flag",
            Action::Redact => "redact",
            Action::RequireApproval => "require_approval",
            Action::Block => "block",
        }
    }

    pub fn parse(s: &str) -> Option<Action> {
        [
            Action::Allow,
            Action::Flag,
            Action::Redact,
            Action::RequireApproval,
            Action::Block,
        ]
        .into_iter()
        .find(|a| a.as_str() == s)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Info,
    Low,
    #[default]
    Medium,
    High,
    Critical,
}

/// How a redacted span is rewritten.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedactSpec {
    #[serde(default)]
    pub style: RedactStyle,
    /// `replace`: the text put in place of the span; `{type}` becomes the
    /// span's type (e.g. `email`). Default `[REDACTED:{type}]`.
    #[serde(default)]
    pub with: Option<String>,
    /// `mask`: characters left visible at the end (e.g. 4 for card numbers).
    #[serde(default)]
    pub keep_last: usize,
}

impl Default for RedactSpec {
    fn default() -> Self {
        Self {
            style: RedactStyle::Replace,
            with: None,
            keep_last: 0,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RedactStyle {
    /// Every letter and digit becomes `*`; separators stay.
    Mask,
    /// The span becomes a fixed text.
    #[default]
    Replace,
    /// The span becomes `[sha256:<12 hex>]`: linkable, not reversible for
    /// high-entropy values (use `replace` for short ones such as SSNs).
    Hash,
}

/// One policy file: policies and the tests that must pass before it runs.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyFile {
    pub policies: Vec<Policy>,
    #[serde(default)]
    pub tests: Vec<PolicyTest>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    pub id: Ident,
    pub version: u32,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub mode: Mode,
    #[serde(default)]
    pub scope: Scope,
    pub rules: Vec<Rule>,
}

/// Which subjects a policy applies to. An absent list means "all"; a listed
/// pattern may end in `*`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Scope {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agents: Option<Vec<Pattern>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plugins: Option<Vec<Pattern>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<Pattern>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channels: Option<Vec<Pattern>>,
    /// Declared effects of the tool being called: pure, reads, writes, external.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effects: Option<Vec<Pattern>>,
}

/// A scope pattern: an exact name, or a prefix followed by `*`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Pattern(String);

impl TryFrom<String> for Pattern {
    type Error = Invalid;
    fn try_from(s: String) -> Result<Self, Invalid> {
        let body = s.strip_suffix('*').unwrap_or(&s);
        if body.contains('*') {
            return Err(Invalid(format!(
                "scope pattern {s:?}: `*` is only allowed at the end"
            )));
        }
        if s.is_empty() || s.len() > 128 {
            return Err("scope patterns must have 1 to 128 characters".into());
        }
        Ok(Pattern(s))
    }
}

impl From<Pattern> for String {
    fn from(p: Pattern) -> String {
        p.0
    }
}

impl Pattern {
    pub fn matches(&self, value: &str) -> bool {
        match self.0.strip_suffix('*') {
            Some(prefix) => value.starts_with(prefix),
            None => self.0 == value,
        }
    }
}

/// Policy and rule ids: lower-case letters, digits, `-`, `_`, `.`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Ident(String);

impl TryFrom<String> for Ident {
    type Error = Invalid;
    fn try_from(s: String) -> Result<Self, Invalid> {
        let ok = !s.is_empty()
            && s.len() <= 64
            && s.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c));
        if ok {
            Ok(Ident(s))
        } else {
            Err(Invalid(format!(
                "invalid id {s:?}: use 1-64 lower-case letters, digits, '-', '_' or '.', starting with a letter or digit"
            )))
        }
    }
}

impl From<Ident> for String {
    fn from(i: Ident) -> String {
        i.0
    }
}

impl Ident {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Ident {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug)]
pub struct Rule {
    pub id: Ident,
    pub stages: Vec<Stage>,
    pub matcher: Match,
    pub action: Action,
    /// For `block` and `require_approval`: what the user is told.
    pub message: Option<String>,
    pub redact: RedactSpec,
    pub severity: Severity,
    /// Overrides the policy's mode for this rule.
    pub mode: Option<Mode>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleRaw {
    id: Ident,
    stages: Vec<Stage>,
    #[serde(default, rename = "match")]
    matcher: Option<Match>,
    action: Action,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    redact: Option<RedactSpec>,
    #[serde(default)]
    severity: Severity,
    #[serde(default)]
    mode: Option<Mode>,
}

impl<'de> Deserialize<'de> for Rule {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = RuleRaw::deserialize(d)?;
        Rule::try_from(raw).map_err(serde::de::Error::custom)
    }
}

impl TryFrom<RuleRaw> for Rule {
    type Error = Invalid;
    fn try_from(r: RuleRaw) -> Result<Self, Invalid> {
        let id = &r.id;
        if r.stages.is_empty() {
            return Err(Invalid(format!(
                "rule {id}: `stages` must name at least one stage"
            )));
        }
        let needs_message = matches!(r.action, Action::Block | Action::RequireApproval);
        match (&r.message, needs_message) {
            (None, true) => {
                return Err(Invalid(format!(
                    "rule {id}: action {} needs a `message` to show the user",
                    r.action.as_str()
                )));
            }
            (Some(m), true) if m.trim().is_empty() || m.len() > 1000 => {
                return Err(Invalid(format!(
                    "rule {id}: `message` must have 1 to 1000 characters"
                )));
            }
            (Some(_), false) => {
                return Err(Invalid(format!(
                    "rule {id}: `message` is only used with block or require_approval"
                )));
            }
            _ => {}
        }
        if r.redact.is_some() && r.action != Action::Redact {
            return Err(Invalid(format!(
                "rule {id}: `redact` is only used with action redact"
            )));
        }
        let redact = r.redact.unwrap_or_default();
        if redact.style != RedactStyle::Replace && redact.with.is_some() {
            return Err(Invalid(format!(
                "rule {id}: `with` is only used with style replace"
            )));
        }
        if redact.style != RedactStyle::Mask && redact.keep_last != 0 {
            return Err(Invalid(format!(
                "rule {id}: `keep_last` is only used with style mask"
            )));
        }
        let mut stages = r.stages;
        stages.sort();
        stages.dedup();
        Ok(Rule {
            id: r.id,
            stages,
            matcher: r.matcher.unwrap_or(Match::Always),
            action: r.action,
            message: r.message,
            redact,
            severity: r.severity,
            mode: r.mode,
        })
    }
}

/// A tree of `any` / `all` / `not` over detectors. Absent `match` means the
/// rule applies to everything in its scope and stages.
#[derive(Debug)]
pub enum Match {
    Always,
    Any(Vec<Match>),
    All(Vec<Match>),
    Not(Box<Match>),
    Detect(Detector),
}

/// Each node is a map with exactly one key.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MatchRaw {
    #[serde(default)]
    any: Option<Vec<Match>>,
    #[serde(default)]
    all: Option<Vec<Match>>,
    #[serde(default)]
    not: Option<Box<Match>>,
    #[serde(default)]
    regex: Option<RegexDetector>,
    #[serde(default)]
    keywords: Option<KeywordsDetector>,
    #[serde(default)]
    pii: Option<PiiDetector>,
    #[serde(default)]
    secrets: Option<SecretsDetector>,
    #[serde(default)]
    length: Option<LengthDetector>,
    #[serde(default)]
    json_schema: Option<JsonSchemaDetector>,
    #[serde(default)]
    url: Option<UrlDetector>,
    #[serde(default)]
    language: Option<LanguageDetector>,
    #[serde(default)]
    llm_judge: Option<JudgeSpec>,
}

const MATCH_KEYS: &str =
    "any, all, not, regex, keywords, pii, secrets, length, json_schema, url, language, llm_judge";

impl<'de> Deserialize<'de> for Match {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = MatchRaw::deserialize(d)?;
        Match::try_from(raw).map_err(serde::de::Error::custom)
    }
}

impl TryFrom<MatchRaw> for Match {
    type Error = Invalid;
    fn try_from(raw: MatchRaw) -> Result<Self, Invalid> {
        let mut nodes = Vec::new();
        if let Some(v) = raw.any {
            if v.is_empty() {
                return Err("`any` needs at least one node".into());
            }
            nodes.push(Match::Any(v));
        }
        if let Some(v) = raw.all {
            if v.is_empty() {
                return Err("`all` needs at least one node".into());
            }
            nodes.push(Match::All(v));
        }
        if let Some(v) = raw.not {
            nodes.push(Match::Not(v));
        }
        let detectors = [
            raw.regex.map(Detector::Regex),
            raw.keywords.map(Detector::Keywords),
            raw.pii.map(Detector::Pii),
            raw.secrets.map(Detector::Secrets),
            raw.length.map(Detector::Length),
            raw.json_schema.map(|d| Detector::JsonSchema(Box::new(d))),
            raw.url.map(Detector::Url),
            raw.language.map(Detector::Language),
            raw.llm_judge.map(Detector::LlmJudge),
        ];
        nodes.extend(detectors.into_iter().flatten().map(Match::Detect));
        match nodes.len() {
            1 => Ok(nodes.remove(0)),
            0 => Err(Invalid(format!("a match node needs one of: {MATCH_KEYS}"))),
            _ => {
                Err("a match node has exactly one key; combine several with `any` or `all`".into())
            }
        }
    }
}

impl Match {
    /// Visits every detector in the tree.
    pub fn detectors(&self) -> Vec<&Detector> {
        let mut out = Vec::new();
        fn walk<'a>(m: &'a Match, out: &mut Vec<&'a Detector>) {
            match m {
                Match::Always => {}
                Match::Any(v) | Match::All(v) => v.iter().for_each(|m| walk(m, out)),
                Match::Not(m) => walk(m, out),
                Match::Detect(d) => out.push(d),
            }
        }
        walk(self, &mut out);
        out
    }
}
