//! Walks the chain from the first row and reports the first row that was
//! altered, deleted or moved, or a tail that was cut off.

use sea_orm::{
    ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
};
use serde::Serialize;

use super::GENESIS;
use super::record::row_hash;
use warden_db::entities::{audit_head, audit_log};

const PAGE: u64 = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemKind {
    /// A row's content no longer matches its hash.
    Altered,
    /// Sequence numbers are missing.
    Deleted,
    /// A row sits at another position than the one it was written at.
    Reordered,
    /// Rows after the last one present were removed (or the head was edited).
    Truncated,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub seq: i64,
    pub kind: ProblemKind,
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    pub ok: bool,
    /// Rows checked before the first problem (all rows when ok).
    pub rows_checked: u64,
    pub head_seq: i64,
    pub head_hash: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<Problem>,
}

pub async fn verify(db: &DatabaseConnection) -> Result<VerifyReport, DbErr> {
    let head = audit_head::Entity::find_by_id(1)
        .one(db)
        .await?
        .ok_or_else(|| DbErr::RecordNotFound("audit_head row 1".into()))?;
    let mut report = VerifyReport {
        ok: true,
        rows_checked: 0,
        head_seq: head.seq,
        head_hash: head.hash.clone(),
        problem: None,
    };
    // Rows numbered below 1 are outside the chain: only forgery puts them there.
    if let Some(forged) = audit_log::Entity::find()
        .filter(audit_log::Column::Seq.lt(1))
        .order_by_asc(audit_log::Column::Seq)
        .one(db)
        .await?
    {
        report.ok = false;
        report.problem = Some(Problem {
            seq: forged.seq,
            kind: ProblemKind::Altered,
            detail: format!(
                "row {} is numbered outside the chain (which starts at 1)",
                forged.seq
            ),
        });
        return Ok(report);
    }
    // The walk stops at the head read above: rows appended while it runs
    // belong to a later head and are checked by a later walk.
    let mut expected_seq = 1i64;
    let mut prev_hash = GENESIS.to_owned();
    loop {
        let page = audit_log::Entity::find()
            .filter(audit_log::Column::Seq.gte(expected_seq))
            .filter(audit_log::Column::Seq.lte(head.seq))
            .order_by_asc(audit_log::Column::Seq)
            .limit(PAGE)
            .all(db)
            .await?;
        let done = (page.len() as u64) < PAGE;
        for row in page {
            if let Some(problem) = check_row(db, &row, expected_seq, &prev_hash).await? {
                report.ok = false;
                report.problem = Some(problem);
                return Ok(report);
            }
            report.rows_checked += 1;
            expected_seq = row.seq + 1;
            prev_hash = row.hash;
        }
        if done {
            break;
        }
    }
    let last_seq = expected_seq - 1;
    // Rows beyond the head that no later head accounts for were not
    // written by the writer.
    let now_head = audit_head::Entity::find_by_id(1)
        .one(db)
        .await?
        .map_or(head.seq, |h| h.seq);
    if let Some(extra) = audit_log::Entity::find()
        .filter(audit_log::Column::Seq.gt(now_head))
        .one(db)
        .await?
    {
        report.ok = false;
        report.problem = Some(Problem {
            seq: extra.seq,
            kind: ProblemKind::Altered,
            detail: format!(
                "row {} lies beyond the chain's head ({now_head})",
                extra.seq
            ),
        });
        return Ok(report);
    }
    if head.seq != last_seq || head.hash != prev_hash {
        report.ok = false;
        report.problem = Some(Problem {
            seq: last_seq + 1,
            kind: ProblemKind::Truncated,
            detail: format!(
                "the chain ends at row {last_seq} but its head records row {} ({})",
                head.seq,
                if head.seq > last_seq {
                    "rows at the end were deleted"
                } else {
                    "the head or the last row was changed"
                }
            ),
        });
    }
    Ok(report)
}

async fn check_row(
    db: &DatabaseConnection,
    row: &audit_log::Model,
    expected_seq: i64,
    prev_hash: &str,
) -> Result<Option<Problem>, DbErr> {
    if row.seq != expected_seq {
        return Ok(Some(Problem {
            seq: expected_seq,
            kind: ProblemKind::Deleted,
            detail: if row.seq == expected_seq + 1 {
                format!("row {expected_seq} is missing")
            } else {
                format!("rows {expected_seq} to {} are missing", row.seq - 1)
            },
        }));
    }
    let self_consistent = row_hash(row) == row.hash;
    let linked = row.prev_hash == prev_hash;
    if self_consistent && linked {
        return Ok(None);
    }
    // A row whose predecessor (by its own prev_hash) sits elsewhere in the
    // table was moved.
    if !linked {
        let predecessor = audit_log::Entity::find()
            .filter(audit_log::Column::Hash.eq(row.prev_hash.clone()))
            .one(db)
            .await?;
        if let Some(p) = predecessor.filter(|p| p.seq != row.seq - 1) {
            return Ok(Some(Problem {
                seq: row.seq,
                kind: ProblemKind::Reordered,
                detail: format!(
                    "row {} was written after row {}, not after row {}",
                    row.seq,
                    p.seq,
                    row.seq - 1
                ),
            }));
        }
    }
    Ok(Some(Problem {
        seq: row.seq,
        kind: ProblemKind::Altered,
        detail: if self_consistent {
            format!(
                "row {} does not follow row {}: one of them was rewritten",
                row.seq,
                row.seq - 1
            )
        } else {
            format!("row {} no longer matches its hash", row.seq)
        },
    }))
}
