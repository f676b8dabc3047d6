//! The one appender of the audit chain. Callers hand records over a
//! channel and wait for the commit; the writer drains whatever has queued
//! up into one transaction (group commit), which reads the head, links and
//! inserts the rows and moves the head. On PostgreSQL the head row is
//! locked, so several servers sharing a database still form one chain.

use sea_orm::{
    ActiveModelTrait, ConnectionTrait, DatabaseConnection, DbBackend, EntityTrait, QuerySelect, Set,
};
use thiserror::Error;
use tokio::sync::{mpsc, oneshot};

use super::record::{NewRecord, now_rfc3339};
use warden_db::entities::{audit_head, audit_log};

const MAX_BATCH: usize = 512;

#[derive(Debug, Error, Clone)]
pub enum AuditError {
    #[error("the audit log is not accepting records (server shutting down)")]
    Closed,
    /// The batch's transaction failed; every caller in the batch gets the
    /// same database error, hence the `Arc`.
    #[error("audit write failed: {0}")]
    Write(#[source] std::sync::Arc<sea_orm::DbErr>),
}

struct Job {
    records: Vec<NewRecord>,
    done: oneshot::Sender<Result<Vec<i64>, AuditError>>,
}

#[derive(Clone)]
pub struct AuditLog {
    tx: mpsc::Sender<Job>,
}

impl AuditLog {
    pub fn spawn(db: DatabaseConnection) -> (Self, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(1024);
        let task = tokio::spawn(run(db, rx));
        (Self { tx }, task)
    }

    /// Appends the records (in order) and returns their sequence numbers
    /// once they are committed.
    pub async fn append(&self, records: Vec<NewRecord>) -> Result<Vec<i64>, AuditError> {
        if records.is_empty() {
            return Ok(Vec::new());
        }
        let (done, wait) = oneshot::channel();
        self.tx
            .send(Job { records, done })
            .await
            .map_err(|_| AuditError::Closed)?;
        wait.await.map_err(|_| AuditError::Closed)?
    }

    pub async fn append_one(&self, record: NewRecord) -> Result<i64, AuditError> {
        let seqs = self.append(vec![record]).await?;
        seqs.first().copied().ok_or(AuditError::Closed)
    }
}

async fn run(db: DatabaseConnection, mut rx: mpsc::Receiver<Job>) {
    while let Some(first) = rx.recv().await {
        let mut jobs = vec![first];
        let mut count = jobs[0].records.len();
        while count < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => {
                    count += job.records.len();
                    jobs.push(job);
                }
                Err(_) => break,
            }
        }
        let batch: Vec<NewRecord> = jobs
            .iter()
            .flat_map(|j| j.records.iter().cloned())
            .collect();
        match write_batch(&db, batch).await {
            Ok(seqs) => {
                let mut seqs = seqs.into_iter();
                for job in jobs {
                    let mine: Vec<i64> = seqs.by_ref().take(job.records.len()).collect();
                    let _ = job.done.send(Ok(mine));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, records = count, "audit write failed");
                let err = AuditError::Write(std::sync::Arc::new(e));
                for job in jobs {
                    let _ = job.done.send(Err(err.clone()));
                }
            }
        }
    }
}

async fn write_batch(
    db: &DatabaseConnection,
    batch: Vec<NewRecord>,
) -> Result<Vec<i64>, sea_orm::DbErr> {
    // Reads the head, then writes: see `begin_write` and the regression
    // test below.
    let txn = warden_db::begin_write(db).await?;
    let mut head_query = audit_head::Entity::find_by_id(1);
    if txn.get_database_backend() == DbBackend::Postgres {
        head_query = head_query.lock_exclusive();
    }
    let head = head_query
        .one(&txn)
        .await?
        .ok_or_else(|| sea_orm::DbErr::RecordNotFound("audit_head row 1".into()))?;
    let mut seq = head.seq;
    let mut prev = head.hash;
    let mut rows = Vec::with_capacity(batch.len());
    let mut seqs = Vec::with_capacity(batch.len());
    for record in batch {
        seq += 1;
        let row = record.into_row(seq, now_rfc3339(), prev);
        prev = row.hash.clone();
        seqs.push(seq);
        rows.push(audit_log::ActiveModel::from(row));
    }
    // A sequence number already taken (a second writer on the same SQLite
    // file) fails the primary key and rolls the whole batch back.
    for chunk in rows.chunks(64) {
        audit_log::Entity::insert_many(chunk.to_vec())
            .exec_without_returning(&txn)
            .await?;
    }
    audit_head::ActiveModel {
        id: Set(1),
        seq: Set(seq),
        hash: Set(prev),
    }
    .update(&txn)
    .await?;
    txn.commit().await?;
    Ok(seqs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use warden_policy::engine::Subject;

    fn record(i: usize) -> NewRecord {
        NewRecord {
            run_id: Some(format!("run-{i}")),
            stage: "output".into(),
            subject: Subject::default(),
            decision: "allow".into(),
            mode: "enforce".into(),
            policies: String::new(),
            matches: "{}".into(),
            bundle: "b".into(),
            content_sha256: "c".into(),
        }
    }

    /// Regression: appends failed with "database is locked" (SQLITE_BUSY_SNAPSHOT)
    /// when another connection wrote between the head read and the insert.
    #[tokio::test]
    async fn appends_survive_other_writers_on_the_same_sqlite_file() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("a.db").display());
        let db = warden_db::connect(&url).await.unwrap();
        let (log, _task) = AuditLog::spawn(db.clone());
        let other = tokio::spawn(async move {
            for i in 0..1000 {
                db.execute_unprepared(&format!(
                    "INSERT INTO plugin_events (plugin_id, action, created_at) VALUES ('p{i}', 'x', '2026-01-01T00:00:00Z')"
                ))
                .await
                .unwrap();
            }
        });
        let appends: Vec<_> = (0..1000)
            .map(|i| {
                let log = log.clone();
                tokio::spawn(async move { log.append_one(record(i)).await })
            })
            .collect();
        let mut seqs = Vec::new();
        for a in appends {
            seqs.push(a.await.unwrap().unwrap());
        }
        other.await.unwrap();
        seqs.sort_unstable();
        assert_eq!(seqs, (1..=1000).collect::<Vec<i64>>());
    }
}
