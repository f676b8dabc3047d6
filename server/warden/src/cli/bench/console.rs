//! `warden bench console`: how long the console's heaviest pages take to
//! render on a large database, server side. It fills a throwaway SQLite
//! database with `--runs` agent runs and `--audit` audit records (written
//! directly, in batches: the pages read them, the chain is not what is
//! measured), logs in through the console's own login form, then renders,
//! `--samples` times each, the runs list (first page, a page deep in the
//! list, a filtered page) and the audit log (first page, a page deep in
//! it, a filtered page) through the router in-process, timing each request
//! from the handler's call to the last byte of the page. Every page is one
//! keyset page: nothing loads everything.

use std::time::Instant;

use anyhow::Context;
use axum::body::Body;
use axum::http::{Request, header};
use clap::Args;
use sea_orm::{EntityTrait, Set};
use tower::ServiceExt as _;

use super::{Summary, Table};
use crate::config::{Config, ModelConfig};
use warden_db::entities::{agent_run, audit_log};

#[derive(Args)]
pub struct ConsoleBenchArgs {
    /// Agent runs in the database.
    #[arg(long, default_value_t = 10_000)]
    pub runs: usize,
    /// Audit records in the database.
    #[arg(long, default_value_t = 100_000)]
    pub audit: usize,
    /// Renders measured per page.
    #[arg(long, default_value_t = 50)]
    pub samples: usize,
}

/// Fills the database; returns the runs page's cursor half-way down.
async fn fill(
    db: &sea_orm::DatabaseConnection,
    runs: usize,
    audit: usize,
) -> anyhow::Result<String> {
    let start = chrono::Utc::now() - chrono::Duration::days(30);
    let mid = runs / 2;
    let cursor = format!(
        "{}|run_bench{mid:08}",
        (start + chrono::Duration::seconds(mid as i64 * 60)).to_rfc3339()
    );
    let statuses = ["completed", "completed", "completed", "failed", "blocked"];
    for chunk in (0..runs).collect::<Vec<_>>().chunks(500) {
        let rows = chunk.iter().map(|&i| {
            let at = start + chrono::Duration::seconds(i as i64 * 60);
            agent_run::ActiveModel {
                id: Set(format!("run_bench{i:08}")),
                agent: Set(["document-assistant", "support-bot", "coder"][i % 3].into()),
                status: Set(statuses[i % statuses.len()].into()),
                subject: Set(Some(format!("key-{}", i % 7))),
                channel: Set(Some("api".into())),
                input: Set(format!("Question {i}: what is the status of order {i}?")),
                answer: Set(Some(format!("Order {i} shipped."))),
                error: Set(None),
                state: Set(None),
                steps: Set(3),
                prompt_tokens: Set(120),
                completion_tokens: Set(30),
                created_at: Set(at),
                updated_at: Set(at),
            }
        });
        agent_run::Entity::insert_many(rows).exec(db).await?;
    }
    let decisions = ["allow", "allow", "allow", "redact", "block"];
    for chunk in (0..audit).collect::<Vec<_>>().chunks(500) {
        let rows = chunk.iter().map(|&i| {
            let at = start + chrono::Duration::seconds(i as i64 * 6);
            audit_log::ActiveModel {
                seq: Set(i as i64 + 1),
                at: Set(at.to_rfc3339()),
                run_id: Set(Some(format!("run_bench{:08}", i / 10))),
                stage: Set(["input", "llm_output", "tool_call", "output"][i % 4].into()),
                subject: Set(Some(format!("key-{}", i % 7))),
                agent: Set(Some("document-assistant".into())),
                plugin: Set(None),
                tool: Set(None),
                channel: Set(Some("api".into())),
                decision: Set(decisions[i % decisions.len()].into()),
                mode: Set("enforce".into()),
                policies: Set(",secrets/redact-before-the-model,".into()),
                matches: Set("{\"matches\":[],\"would_decision\":\"allow\"}".into()),
                bundle: Set("bench".into()),
                content_sha256: Set(format!("{i:064x}")),
                prev_hash: Set(format!("{:064x}", i)),
                hash: Set(format!("{:064x}", i + 1)),
            }
        });
        audit_log::Entity::insert_many(rows).exec(db).await?;
    }
    // The writer goes on from the head: later records (the console's own)
    // follow the filled ones.
    use sea_orm::ActiveModelTrait;
    warden_db::entities::audit_head::ActiveModel {
        id: Set(1),
        seq: Set(audit as i64),
        hash: Set(format!("{:064x}", audit)),
    }
    .update(db)
    .await?;
    Ok(form_urlencoded::byte_serialize(cursor.as_bytes()).collect())
}

pub async fn run(mut config: Config, args: ConsoleBenchArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.samples > 0, "--samples must be at least 1");
    let data = tempfile::tempdir()?;
    config.server.database_url = Some(format!(
        "sqlite://{}?mode=rwc",
        data.path().join("bench.db").display()
    ));
    // No model is called: a remote one that is never reached keeps the
    // embedded model out of memory.
    config.models = vec![ModelConfig::Openai {
        id: "bench-unused".into(),
        base_url: "http://127.0.0.1:9/v1".into(),
        api_key_env: None,
        upstream_model: None,
        timeout_secs: 5,
    }];
    config.channels = Default::default();
    let core = crate::server::start_core(&config).await?;
    let filled = Instant::now();
    let mid_run = fill(&core.db, args.runs, args.audit).await?;
    let fill_s = filled.elapsed().as_secs_f64();
    let key = crate::keys::create(&core.db, "bench-admin", crate::keys::Role::Admin).await?;
    let (state, _log) = crate::server::app_state(&config, &core, |_| None)?;
    let app = crate::api::router(state, config.server.max_body_bytes);
    let login = Request::post("/console/login")
        .header(header::HOST, "bench.local")
        .header(header::ORIGIN, "http://bench.local")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(format!("key={key}")))?;
    let r = app.clone().oneshot(login).await?;
    let cookie = r
        .headers()
        .get(header::SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .context("the console login gave no session")?
        .to_owned();

    let pages = [
        ("runs: first page", "/console/runs".to_owned()),
        (
            "runs: half-way down",
            format!("/console/runs?before={mid_run}"),
        ),
        (
            "runs: agent + status filter",
            "/console/runs?agent=support-bot&status=failed".to_owned(),
        ),
        ("audit: first page", "/console/audit".to_owned()),
        (
            "audit: half-way down",
            format!("/console/audit?before={}", args.audit / 2),
        ),
        (
            "audit: decision filter",
            "/console/audit?decision=block".to_owned(),
        ),
    ];
    let mut t = Table::new(["page", "p50 ms", "p99 ms", "bytes"]);
    for (name, path) in pages {
        let mut samples = Vec::with_capacity(args.samples);
        let mut size = 0;
        for _ in 0..args.samples + 3 {
            let req = Request::get(path.as_str())
                .header(header::HOST, "bench.local")
                .header(header::COOKIE, &cookie)
                .body(Body::empty())?;
            let started = Instant::now();
            let r = app.clone().oneshot(req).await?;
            anyhow::ensure!(r.status().is_success(), "{path} answered {}", r.status());
            let body = axum::body::to_bytes(r.into_body(), 64 << 20).await?;
            samples.push(started.elapsed().as_secs_f64() * 1000.0);
            size = body.len();
        }
        // The first renders warm the caches; they are not measured.
        let s = Summary::of(&samples[3..]).context("no samples")?;
        t.row([
            name.to_owned(),
            format!("{:.2}", s.p50),
            format!("{:.2}", s.p99),
            size.to_string(),
        ]);
    }
    println!(
        "console page renders (server side, in-process, SQLite): {} runs, {} audit records (filled in {fill_s:.1} s), {} samples per page",
        args.runs, args.audit, args.samples
    );
    print!("{}", t.render());
    Ok(())
}
