//! Evaluation: which rules apply (stage and scope), which match, and the
//! one decision they add up to. Pure and synchronous; LLM judge answers
//! come in through `judgements` and missing ones come back as `pending`.

use std::collections::HashMap;

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::bundle::Bundle;
use super::detectors::{DetectCtx, Outcome, Span};
use super::judge::{JudgeKey, JudgeNote, JudgeSpec};
use super::spec::{Action, Match, Mode, Policy, Rule, Scope, Severity, Stage};

/// Who and what the content belongs to; scopes are matched against it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Subject {
    /// The API key (name) the request came with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plugin: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    /// The declared effect of the tool being called.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effect: Option<String>,
}

#[derive(Debug, Clone, Copy)]
pub struct EvalInput<'a> {
    pub stage: Stage,
    pub text: &'a str,
    pub subject: &'a Subject,
}

/// One rule that matched.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RuleMatch {
    pub policy: String,
    pub version: u32,
    pub rule: String,
    pub action: Action,
    pub mode: Mode,
    pub severity: Severity,
    /// `false` for monitor mode: recorded, not acted on.
    pub enforced: bool,
    pub spans: Vec<Span>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl RuleMatch {
    pub fn qualified(&self) -> String {
        format!("{}/{}", self.policy, self.rule)
    }
}

/// The result of checking one piece of content.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Decision {
    pub stage: Stage,
    /// What happens: the strongest action of the enforced matches.
    pub decision: Action,
    /// What would happen if monitor-mode rules were enforced too.
    pub would_decision: Action,
    /// For block and require_approval: the message of the deciding rule.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The content after enforced redactions, when any applied.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redacted: Option<String>,
    pub matches: Vec<RuleMatch>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub judge: Vec<JudgeNote>,
    pub bundle: String,
    pub content_sha256: String,
}

impl Decision {
    /// `monitor` when every match is a monitor-mode match, else `enforce`.
    pub fn mode(&self) -> Mode {
        if !self.matches.is_empty() && self.matches.iter().all(|m| !m.enforced) {
            Mode::Monitor
        } else {
            Mode::Enforce
        }
    }

    /// The content to pass on (redacted when redactions applied).
    pub fn text<'a>(&'a self, original: &'a str) -> &'a str {
        self.redacted.as_deref().unwrap_or(original)
    }

    /// What a user is told when this decision stops content: the rule's
    /// message, then which rule and which audit record to look up.
    pub fn stop_message(&self, audit_seq: i64) -> String {
        let rule = self
            .deciding()
            .map_or_else(|| "unknown".to_owned(), |m| m.qualified());
        let message = self
            .message
            .as_deref()
            .unwrap_or("This content was stopped by a governance policy.");
        format!("{message} (policy {rule}, audit record {audit_seq})")
    }

    /// The deciding match (the first enforced one with the final action).
    pub fn deciding(&self) -> Option<&RuleMatch> {
        self.matches
            .iter()
            .find(|m| m.enforced && m.action == self.decision)
    }
}

pub struct Evaluation {
    pub decision: Decision,
    /// Judge questions whose answers would change the decision.
    pub pending: Vec<(String, JudgeSpec)>,
}

pub fn content_sha256(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

impl Bundle {
    /// Checks `input` against every rule for its stage and scope. With
    /// `partial`, the text is a stream prefix: whole-content detectors
    /// (language, JSON Schema, LLM judge, minimum lengths) do not decide.
    pub fn evaluate(
        &self,
        input: EvalInput<'_>,
        judgements: &HashMap<JudgeKey, bool>,
        partial: bool,
    ) -> Evaluation {
        let ctx = DetectCtx {
            partial,
            judgements,
        };
        let mut matches = Vec::new();
        let mut pending = Vec::new();
        let mut redactions = Vec::new();
        let mut messages: Vec<(Action, &str)> = Vec::new();
        for (policy, rule) in self.rules_for(input.stage) {
            if !in_scope(&policy.scope, input.subject) {
                continue;
            }
            let mut wanted = Vec::new();
            let (spans, note) = match eval(&rule.matcher, input.text, &ctx, &mut wanted) {
                Tri::Yes(spans, note) => (spans, note),
                Tri::No => continue,
                Tri::Unknown => {
                    let label = format!("{}/{}", policy.id, rule.id);
                    pending.extend(wanted.into_iter().map(|j| (label.clone(), j.clone())));
                    continue;
                }
            };
            let mode = rule.mode.unwrap_or(policy.mode);
            let enforced = mode == Mode::Enforce;
            if enforced {
                if rule.action == Action::Redact {
                    redactions.push((rule, spans.clone()));
                }
                if let Some(m) = &rule.message {
                    messages.push((rule.action, m));
                }
            }
            matches.push(RuleMatch {
                policy: policy.id.to_string(),
                version: policy.version,
                rule: rule.id.to_string(),
                action: rule.action,
                mode,
                severity: rule.severity,
                enforced,
                spans,
                note,
            });
        }
        let decision = matches
            .iter()
            .filter(|m| m.enforced)
            .map(|m| m.action)
            .max()
            .unwrap_or(Action::Allow);
        let would_decision = matches
            .iter()
            .map(|m| m.action)
            .max()
            .unwrap_or(Action::Allow);
        let message = messages
            .iter()
            .find(|(a, _)| *a == decision)
            .map(|(_, m)| (*m).to_owned());
        let redacted = (!redactions.is_empty()).then(|| {
            let pairs: Vec<_> = redactions
                .iter()
                .flat_map(|(rule, spans)| spans.iter().map(move |s| (s, &rule.redact)))
                .collect();
            super::redact::apply(input.text, &pairs)
        });
        Evaluation {
            decision: Decision {
                stage: input.stage,
                decision,
                would_decision,
                message,
                redacted: redacted.filter(|r| r != input.text),
                matches,
                judge: Vec::new(),
                bundle: self.hash.clone(),
                content_sha256: content_sha256(input.text),
            },
            pending,
        }
    }
}

fn in_scope(scope: &Scope, s: &Subject) -> bool {
    fn ok(list: &Option<Vec<super::spec::Pattern>>, value: &Option<String>) -> bool {
        match list {
            None => true,
            Some(patterns) => value
                .as_deref()
                .is_some_and(|v| patterns.iter().any(|p| p.matches(v))),
        }
    }
    ok(&scope.agents, &s.agent)
        && ok(&scope.plugins, &s.plugin)
        && ok(&scope.tools, &s.tool)
        && ok(&scope.channels, &s.channel)
        && ok(&scope.effects, &s.effect)
}

enum Tri {
    Yes(Vec<Span>, Option<String>),
    No,
    Unknown,
}

fn eval<'r>(m: &'r Match, text: &str, ctx: &DetectCtx<'_>, wanted: &mut Vec<&'r JudgeSpec>) -> Tri {
    match m {
        Match::Always => Tri::Yes(vec![Span::whole(text, "content")], None),
        Match::Detect(d) => match d.detect(text, ctx) {
            Outcome::Hit(spans, note) => Tri::Yes(spans, note),
            Outcome::Miss => Tri::No,
            Outcome::Unknown => {
                if let (super::detectors::Detector::LlmJudge(j), false) = (d, ctx.partial) {
                    wanted.push(j);
                }
                Tri::Unknown
            }
        },
        Match::Not(inner) => match eval(inner, text, ctx, wanted) {
            Tri::Yes(..) => Tri::No,
            // A stream prefix lacking something may still get it.
            Tri::No if ctx.partial => Tri::Unknown,
            Tri::No => Tri::Yes(vec![Span::whole(text, "content")], None),
            Tri::Unknown => Tri::Unknown,
        },
        Match::Any(nodes) => {
            let (mut spans, mut notes, mut hit, mut unknown) =
                (Vec::new(), Vec::new(), false, false);
            for n in nodes {
                match eval(n, text, ctx, wanted) {
                    Tri::Yes(s, note) => {
                        hit = true;
                        spans.extend(s);
                        notes.extend(note);
                    }
                    Tri::No => {}
                    Tri::Unknown => unknown = true,
                }
            }
            if hit {
                Tri::Yes(spans, join(notes))
            } else if unknown {
                Tri::Unknown
            } else {
                Tri::No
            }
        }
        Match::All(nodes) => {
            let (mut spans, mut notes, mut unknown) = (Vec::new(), Vec::new(), false);
            for n in nodes {
                match eval(n, text, ctx, wanted) {
                    Tri::Yes(s, note) => {
                        spans.extend(s);
                        notes.extend(note);
                    }
                    Tri::No => return Tri::No,
                    Tri::Unknown => unknown = true,
                }
            }
            if unknown {
                Tri::Unknown
            } else {
                Tri::Yes(spans, join(notes))
            }
        }
    }
}

fn join(notes: Vec<String>) -> Option<String> {
    (!notes.is_empty()).then(|| notes.join("; "))
}

/// The rules of a bundle that check `stage`, with their policies.
pub(super) type StageIndex = HashMap<Stage, Vec<(usize, usize)>>;

pub(super) fn index(policies: &[Policy]) -> StageIndex {
    let mut idx: StageIndex = HashMap::new();
    for (p, policy) in policies.iter().enumerate() {
        for (r, rule) in policy.rules.iter().enumerate() {
            for stage in &rule.stages {
                idx.entry(*stage).or_default().push((p, r));
            }
        }
    }
    idx
}

impl Bundle {
    fn rules_for(&self, stage: Stage) -> impl Iterator<Item = (&Policy, &Rule)> {
        self.index
            .get(&stage)
            .into_iter()
            .flatten()
            .map(|&(p, r)| (&self.policies[p], &self.policies[p].rules[r]))
    }
}
