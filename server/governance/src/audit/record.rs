//! What one audit row holds and how its hash is computed.

use serde::Serialize;
use sha2::{Digest, Sha256};

use warden_db::entities::audit_log;
use warden_policy::engine::{Decision, Subject};

/// A row before the writer gives it a place in the chain.
#[derive(Debug, Clone)]
pub struct NewRecord {
    pub run_id: Option<String>,
    pub stage: String,
    pub subject: Subject,
    pub decision: String,
    pub mode: String,
    pub policies: String,
    pub matches: String,
    pub bundle: String,
    pub content_sha256: String,
}

/// The match list as stored: offsets and types of spans, never the text.
#[derive(Serialize)]
struct StoredMatches<'a> {
    matches: &'a [warden_policy::RuleMatch],
    would_decision: warden_policy::Action,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    judge: &'a [warden_policy::judge::JudgeNote],
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    redacted: bool,
}

impl NewRecord {
    pub fn from_decision(d: &Decision, subject: &Subject, run_id: Option<&str>) -> Self {
        let stored = StoredMatches {
            matches: &d.matches,
            would_decision: d.would_decision,
            judge: &d.judge,
            redacted: d.redacted.is_some(),
        };
        let policies = if d.matches.is_empty() {
            String::new()
        } else {
            let ids: Vec<String> = d.matches.iter().map(|m| m.qualified()).collect();
            format!(",{},", ids.join(","))
        };
        Self {
            run_id: run_id.map(str::to_owned),
            stage: d.stage.as_str().to_owned(),
            subject: subject.clone(),
            decision: d.decision.as_str().to_owned(),
            mode: d.mode().as_str().to_owned(),
            policies,
            matches: serde_json::to_string(&stored).unwrap_or_else(|_| "{}".into()),
            bundle: d.bundle.clone(),
            content_sha256: d.content_sha256.clone(),
        }
    }

    pub(super) fn into_row(self, seq: i64, at: String, prev_hash: String) -> audit_log::Model {
        let mut row = audit_log::Model {
            seq,
            at,
            run_id: self.run_id,
            stage: self.stage,
            subject: self.subject.key,
            agent: self.subject.agent,
            plugin: self.subject.plugin,
            tool: self.subject.tool,
            channel: self.subject.channel,
            decision: self.decision,
            mode: self.mode,
            policies: self.policies,
            matches: self.matches,
            bundle: self.bundle,
            content_sha256: self.content_sha256,
            prev_hash,
            hash: String::new(),
        };
        row.hash = row_hash(&row);
        row
    }
}

/// The fields covered by the hash, in a fixed order.
#[derive(Serialize)]
struct Canonical<'a> {
    seq: i64,
    at: &'a str,
    run_id: Option<&'a str>,
    stage: &'a str,
    subject: Option<&'a str>,
    agent: Option<&'a str>,
    plugin: Option<&'a str>,
    tool: Option<&'a str>,
    channel: Option<&'a str>,
    decision: &'a str,
    mode: &'a str,
    policies: &'a str,
    matches: &'a str,
    bundle: &'a str,
    content_sha256: &'a str,
    prev_hash: &'a str,
}

/// sha256 (hex) of the row's canonical JSON; `hash` itself is not covered.
pub fn row_hash(r: &audit_log::Model) -> String {
    let c = Canonical {
        seq: r.seq,
        at: &r.at,
        run_id: r.run_id.as_deref(),
        stage: &r.stage,
        subject: r.subject.as_deref(),
        agent: r.agent.as_deref(),
        plugin: r.plugin.as_deref(),
        tool: r.tool.as_deref(),
        channel: r.channel.as_deref(),
        decision: &r.decision,
        mode: &r.mode,
        policies: &r.policies,
        matches: &r.matches,
        bundle: &r.bundle,
        content_sha256: &r.content_sha256,
        prev_hash: &r.prev_hash,
    };
    let bytes = serde_json::to_vec(&c).unwrap_or_default();
    hex::encode(Sha256::digest(bytes))
}

pub fn now_rfc3339() -> String {
    chrono::Utc::now()
        .format("%Y-%m-%dT%H:%M:%S%.6fZ")
        .to_string()
}
