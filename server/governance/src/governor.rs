//! The server's governance service: evaluate with the active bundle (asking
//! the LLM judge where a rule needs it), then append the decision to the
//! audit log. A decision that cannot be recorded is not acted on: callers
//! get the audit error and fail closed.

use std::collections::HashMap;
use std::sync::Arc;

use crate::audit::{AuditError, AuditLog, NewRecord};
use crate::judge::{Judge, JudgeCache, answer_all};
use crate::store::PolicyStore;
use warden_policy::Stage;
use warden_policy::bundle::Bundle;
use warden_policy::engine::{Decision, EvalInput, Subject};

pub struct Governor {
    pub store: Arc<PolicyStore>,
    pub audit: AuditLog,
    judge: Option<Arc<dyn Judge>>,
    cache: JudgeCache,
}

/// A decision and the sequence number of its audit record.
#[derive(Debug, Clone)]
pub struct Checked {
    pub decision: Decision,
    pub audit_seq: i64,
}

impl Governor {
    pub fn new(store: Arc<PolicyStore>, audit: AuditLog, judge: Option<Arc<dyn Judge>>) -> Self {
        Self {
            store,
            audit,
            judge,
            cache: JudgeCache::new(4096),
        }
    }

    /// Evaluates with the active bundle and records the decision.
    pub async fn check(
        &self,
        stage: Stage,
        text: &str,
        subject: &Subject,
        run_id: Option<&str>,
    ) -> Result<Checked, AuditError> {
        let bundle = self.store.current();
        let decision = self.evaluate(&bundle, stage, text, subject).await;
        let audit_seq = self.record(&decision, subject, run_id).await?;
        Ok(Checked {
            decision,
            audit_seq,
        })
    }

    /// Evaluates without recording (callers record once, e.g. at the end
    /// of a stream).
    pub async fn evaluate(
        &self,
        bundle: &Bundle,
        stage: Stage,
        text: &str,
        subject: &Subject,
    ) -> Decision {
        let input = EvalInput {
            stage,
            text,
            subject,
        };
        evaluate_judged(bundle, input, self.judge.as_deref(), &self.cache).await
    }

    pub async fn record(
        &self,
        decision: &Decision,
        subject: &Subject,
        run_id: Option<&str>,
    ) -> Result<i64, AuditError> {
        self.audit
            .append_one(NewRecord::from_decision(decision, subject, run_id))
            .await
    }
}

/// Evaluates `input`, asking `judge` (through `cache`) the LLM judge
/// questions whose answers would change the decision, then deciding again.
pub async fn evaluate_judged(
    bundle: &Bundle,
    input: EvalInput<'_>,
    judge: Option<&dyn Judge>,
    cache: &JudgeCache,
) -> Decision {
    let mut judgements = HashMap::new();
    let first = bundle.evaluate(input, &judgements, false);
    if first.pending.is_empty() {
        return first.decision;
    }
    let pending = first
        .pending
        .into_iter()
        .map(|(rule, spec)| (rule, spec, input.text.to_owned()))
        .collect();
    let notes = answer_all(judge, cache, pending, &mut judgements).await;
    let mut decision = bundle.evaluate(input, &judgements, false).decision;
    decision.judge = notes;
    decision
}
