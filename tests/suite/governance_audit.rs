//! The audit chain against tampering, on SQLite and PostgreSQL: rows are
//! edited, deleted, reordered and cut off directly in the database, and
//! `warden audit verify` names the first broken row each time.

use reqwest::Method;
use sea_orm::{ConnectionTrait, Database, DatabaseConnection, DbBackend};
use serde_json::{Value, json};
use warden_tests::{Options, PgDatabase, Server, api, warden_run};

use super::governance_chat::policy_dir_with;

async fn fill(database_url: Option<&str>) -> Server {
    let policies = policy_dir_with(&[]);
    let up = warden_tests::upstream::Upstream::start().await;
    let server = Server::start_with(Options {
        config: up.model_config(),
        database_url: database_url.map(str::to_owned),
        env: vec![(
            "WARDEN_POLICIES_DIR".into(),
            policies.path().display().to_string(),
        )],
        ..Options::default()
    })
    .unwrap();
    let texts = [
        "hello",
        "a@example.com",
        "4111 1111 1111 1111",
        "AKIAIOSFODNN7EXAMPLE",
        "fine",
        "also fine",
    ];
    for t in texts {
        let (s, b) = api(
            &server,
            Method::POST,
            "/policies/evaluate",
            server.key(),
            Some(json!({"stage": "output", "text": t})),
        )
        .await;
        assert_eq!(s, 200, "{b}");
    }
    server
}

fn verify(server_dir: &std::path::Path, url: Option<&str>) -> (bool, Value, String) {
    let out = warden_run(server_dir, url, &["audit", "verify"], None);
    let report = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (
        out.status.success(),
        report,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The first problem `audit verify` reported: row and kind.
fn problem(report: &Value) -> (Option<i64>, Option<&str>) {
    (
        report["problem"]["seq"].as_i64(),
        report["problem"]["kind"].as_str(),
    )
}

/// Swaps the sequence numbers of two rows (through a free one).
async fn swap(db: &DatabaseConnection, a: i64, b: i64) {
    // Through a free number above the chain (the table refuses seq < 1).
    for (from, to) in [(a, 1_000_000), (b, a), (1_000_000, b)] {
        sql(
            db,
            &format!("UPDATE audit_log SET seq = {to} WHERE seq = {from}"),
        )
        .await
        .unwrap();
    }
}

async fn sql(db: &DatabaseConnection, q: &str) -> Result<(), sea_orm::DbErr> {
    db.execute_unprepared(q).await.map(|_| ())
}

async fn tamper_suite(url: String) {
    let server = fill(Some(&url)).await;
    let dir = server.data_dir.clone();
    server.terminate().unwrap();
    let cli_url = Some(url.as_str());
    let (ok, report, _) = verify(&dir, cli_url);
    assert!(ok, "{report}");
    assert_eq!(report["rows_checked"], 6);

    let db = Database::connect(&url).await.unwrap();
    // The table refuses UPDATE and DELETE outright...
    let refused = sql(&db, "UPDATE audit_log SET decision = 'allow' WHERE seq = 3").await;
    assert!(refused.unwrap_err().to_string().contains("append-only"));
    assert!(
        sql(&db, "DELETE FROM audit_log WHERE seq = 3")
            .await
            .is_err()
    );
    // ...so an attacker with database access removes the guard first.
    if db.get_database_backend() == DbBackend::Postgres {
        sql(&db, "DROP TRIGGER audit_log_append_only ON audit_log")
            .await
            .unwrap();
    } else {
        sql(&db, "DROP TRIGGER audit_log_no_update").await.unwrap();
        sql(&db, "DROP TRIGGER audit_log_no_delete").await.unwrap();
    }

    // Edited: row 3's decision.
    sql(&db, "UPDATE audit_log SET decision = 'allow' WHERE seq = 3")
        .await
        .unwrap();
    let (ok, report, stderr) = verify(&dir, cli_url);
    assert!(!ok);
    assert_eq!(problem(&report), (Some(3), Some("altered")), "{report}");
    assert!(stderr.contains("row 3"), "{stderr}");
    sql(
        &db,
        "UPDATE audit_log SET decision = 'redact' WHERE seq = 3",
    )
    .await
    .unwrap();
    assert!(
        verify(&dir, cli_url).0,
        "restoring the value restores the chain"
    );

    // Deleted: row 4 (kept aside and put back afterwards).
    sql(
        &db,
        "CREATE TABLE audit_keep AS SELECT * FROM audit_log WHERE seq = 4",
    )
    .await
    .unwrap();
    sql(&db, "DELETE FROM audit_log WHERE seq = 4")
        .await
        .unwrap();
    let (ok, report, _) = verify(&dir, cli_url);
    assert!(!ok);
    assert_eq!(problem(&report), (Some(4), Some("deleted")), "{report}");
    sql(&db, "INSERT INTO audit_log SELECT * FROM audit_keep")
        .await
        .unwrap();
    assert!(verify(&dir, cli_url).0);

    // Reordered: rows 2 and 5 swap places.
    swap(&db, 2, 5).await;
    let (ok, report, _) = verify(&dir, cli_url);
    assert!(!ok);
    assert_eq!(problem(&report), (Some(2), Some("reordered")), "{report}");
    swap(&db, 2, 5).await;
    assert!(verify(&dir, cli_url).0);

    // Forged: a row slipped in beyond the head.
    sql(
        &db,
        "INSERT INTO audit_log SELECT 100, at, run_id, stage, subject, agent, plugin, tool, channel, decision, mode, policies, matches, bundle, content_sha256, prev_hash, hash FROM audit_log WHERE seq = 1",
    )
    .await
    .unwrap();
    let (ok, report, _) = verify(&dir, cli_url);
    assert!(!ok);
    assert_eq!(problem(&report), (Some(100), Some("altered")), "{report}");
    sql(&db, "DELETE FROM audit_log WHERE seq = 100")
        .await
        .unwrap();
    assert!(sql(&db, "INSERT INTO audit_log SELECT 0, at, run_id, stage, subject, agent, plugin, tool, channel, decision, mode, policies, matches, bundle, content_sha256, prev_hash, hash FROM audit_log WHERE seq = 1").await.is_err(), "rows below 1 are refused");

    // Truncated: the newest row disappears.
    sql(&db, "DELETE FROM audit_log WHERE seq = 6")
        .await
        .unwrap();
    let (ok, report, _) = verify(&dir, cli_url);
    assert!(!ok);
    assert_eq!(report["problem"]["kind"], "truncated", "{report}");

    // The export carries everything needed to re-check the chain elsewhere.
    let out = warden_run(
        &dir,
        cli_url,
        &["audit", "export", "--since", "2000-01-01"],
        None,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 5);
    assert_eq!(lines[1]["prev_hash"], lines[0]["hash"]);
    let out = warden_run(&dir, cli_url, &["audit", "export", "--format", "csv"], None);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("only jsonl"));
}

#[tokio::test]
async fn sqlite_audit_tampering_is_detected() {
    let data = tempfile::tempdir().unwrap();
    let url = format!(
        "sqlite://{}?mode=rwc",
        data.path().join("audit.db").display()
    );
    tamper_suite(url).await;
}

#[tokio::test]
async fn postgres_audit_tampering_is_detected() {
    let pg = PgDatabase::create().await.unwrap();
    tamper_suite(pg.url.clone()).await;
}
