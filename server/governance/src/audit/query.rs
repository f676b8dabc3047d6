//! Reading the audit log: filters, paging (newest first, by sequence
//! number) and the export order (oldest first).

use sea_orm::{
    ColumnTrait, Condition, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};
use serde::{Deserialize, Serialize};

use warden_db::entities::audit_log;

pub const MAX_PAGE: u64 = 1000;

/// Every field is optional; all given ones must hold.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditFilter {
    /// RFC 3339 times (inclusive / exclusive).
    pub since: Option<String>,
    pub until: Option<String>,
    pub decision: Option<String>,
    /// A policy id, or `policy/rule`.
    pub policy: Option<String>,
    pub stage: Option<String>,
    /// The API key name.
    pub subject: Option<String>,
    pub run_id: Option<String>,
    pub agent: Option<String>,
    pub plugin: Option<String>,
    pub tool: Option<String>,
    pub channel: Option<String>,
    /// Page before this sequence number (newest-first paging).
    pub before: Option<i64>,
    pub limit: Option<u64>,
}

/// The API's view of a row: matches parsed back into JSON.
#[derive(Debug, Serialize)]
pub struct AuditEntry {
    pub seq: i64,
    pub at: String,
    pub run_id: Option<String>,
    pub stage: String,
    pub subject: Option<String>,
    pub agent: Option<String>,
    pub plugin: Option<String>,
    pub tool: Option<String>,
    pub channel: Option<String>,
    pub decision: String,
    pub mode: String,
    pub detail: serde_json::Value,
    pub bundle: String,
    pub content_sha256: String,
    pub prev_hash: String,
    pub hash: String,
}

impl From<audit_log::Model> for AuditEntry {
    fn from(r: audit_log::Model) -> Self {
        Self {
            detail: serde_json::from_str(&r.matches).unwrap_or(serde_json::Value::Null),
            seq: r.seq,
            at: r.at,
            run_id: r.run_id,
            stage: r.stage,
            subject: r.subject,
            agent: r.agent,
            plugin: r.plugin,
            tool: r.tool,
            channel: r.channel,
            decision: r.decision,
            mode: r.mode,
            bundle: r.bundle,
            content_sha256: r.content_sha256,
            prev_hash: r.prev_hash,
            hash: r.hash,
        }
    }
}

/// Normalises an RFC 3339 time (or a date) to the stored format, so that
/// text comparison orders like time.
pub fn parse_time(s: &str, field: &'static str) -> Result<String, InvalidFilter> {
    let t = chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&chrono::Utc))
        .or_else(|_| {
            chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
                .map(|d| d.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc())
        })
        .map_err(|_| InvalidFilter {
            field,
            message: format!("{s:?} is not an RFC 3339 time or a YYYY-MM-DD date"),
        })?;
    Ok(t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string())
}

impl AuditFilter {
    /// Checks values before any query runs.
    pub fn validate(&self) -> Result<(), InvalidFilter> {
        let invalid = |field, message| Err(InvalidFilter { field, message });
        if let Some(d) = &self.decision
            && warden_policy::Action::parse(d).is_none()
        {
            return invalid(
                "decision",
                format!("{d:?} is not one of allow, flag, redact, require_approval, block"),
            );
        }
        if let Some(s) = &self.stage
            && warden_policy::Stage::parse(s).is_none()
        {
            return invalid(
                "stage",
                format!("{s:?} is not one of input, llm_output, tool_call, tool_result, output"),
            );
        }
        for (name, v) in [("since", &self.since), ("until", &self.until)] {
            if let Some(v) = v {
                parse_time(v, name)?;
            }
        }
        if let Some(l) = self.limit
            && !(1..=MAX_PAGE).contains(&l)
        {
            return invalid("limit", format!("must be within 1..{MAX_PAGE}"));
        }
        let id_ok = |s: &str| {
            !s.is_empty()
                && s.len() <= 64
                && s.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c))
        };
        if let Some(p) = &self.policy
            && (!p.split('/').all(id_ok) || p.matches('/').count() > 1)
        {
            return invalid("policy", format!("{p:?} is not a policy or rule id"));
        }
        Ok(())
    }

    fn condition(&self) -> Result<Condition, InvalidFilter> {
        let mut c = Condition::all();
        if let Some(v) = &self.since {
            c = c.add(audit_log::Column::At.gte(parse_time(v, "since")?));
        }
        if let Some(v) = &self.until {
            c = c.add(audit_log::Column::At.lt(parse_time(v, "until")?));
        }
        let eq = [
            (audit_log::Column::Decision, &self.decision),
            (audit_log::Column::Stage, &self.stage),
            (audit_log::Column::Subject, &self.subject),
            (audit_log::Column::RunId, &self.run_id),
            (audit_log::Column::Agent, &self.agent),
            (audit_log::Column::Plugin, &self.plugin),
            (audit_log::Column::Tool, &self.tool),
            (audit_log::Column::Channel, &self.channel),
        ];
        for (col, v) in eq {
            if let Some(v) = v {
                c = c.add(col.eq(v.clone()));
            }
        }
        if let Some(p) = &self.policy {
            // `,policy/rule,` entries: a policy id matches any of its rules.
            let pattern = if p.contains('/') {
                format!("%,{},%", escape_like(p))
            } else {
                format!("%,{}/%", escape_like(p))
            };
            c = c.add(
                audit_log::Column::Policies
                    .like(sea_orm::sea_query::LikeExpr::new(pattern).escape('\\')),
            );
        }
        if let Some(b) = self.before {
            c = c.add(audit_log::Column::Seq.lt(b));
        }
        Ok(c)
    }

    /// Newest first.
    pub async fn page(&self, db: &DatabaseConnection) -> Result<Vec<audit_log::Model>, QueryError> {
        let cond = self.condition()?;
        Ok(audit_log::Entity::find()
            .filter(cond)
            .order_by_desc(audit_log::Column::Seq)
            .limit(self.limit.unwrap_or(100).min(MAX_PAGE))
            .all(db)
            .await?)
    }

    /// Oldest first, from sequence number `after` on, `limit` rows.
    pub async fn export_page(
        &self,
        db: &DatabaseConnection,
        after: i64,
        limit: u64,
    ) -> Result<Vec<audit_log::Model>, QueryError> {
        let cond = self.condition()?.add(audit_log::Column::Seq.gt(after));
        Ok(audit_log::Entity::find()
            .filter(cond)
            .order_by_asc(audit_log::Column::Seq)
            .limit(limit)
            .all(db)
            .await?)
    }
}

fn escape_like(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

/// A filter value that cannot be queried; `field` names the parameter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct InvalidFilter {
    pub field: &'static str,
    pub message: String,
}

#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error(transparent)]
    Invalid(#[from] InvalidFilter),
    #[error("database error: {0}")]
    Db(#[from] DbErr),
}
