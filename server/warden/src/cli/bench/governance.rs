//! `warden bench governance`: policy evaluation latency and audit write
//! throughput, in-process.
//!
//! Evaluation: the active bundle (default: the shipped policies) on
//! generated business prose of 1, 4 and 64 KiB at the `output` stage (the
//! stage with the most detectors), clean and with findings (an email, a
//! card number, a key and a markdown image per KiB). LLM judge rules are
//! not exercised: their cost is the model's.
//!
//! Audit: records appended to a fresh SQLite file (or `--database-url`),
//! one caller awaiting each commit, then many callers at once (group commit).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use serde::Serialize;

use crate::config::Config;
use warden_governance::audit::{AuditLog, NewRecord};
use warden_policy::bundle::Bundle;
use warden_policy::{EvalInput, Stage, Subject};

use super::{Summary, Table};

#[derive(Args)]
pub struct GovernanceBenchArgs {
    /// Policy directory (default: the built-in policies).
    #[arg(long)]
    pub policies: Option<PathBuf>,
    /// Evaluations measured per case.
    #[arg(long, default_value_t = 2000)]
    pub iterations: usize,
    /// Audit records written per audit case.
    #[arg(long, default_value_t = 5000)]
    pub records: usize,
    /// Concurrent writers in the group-commit case.
    #[arg(long, default_value_t = 64)]
    pub writers: usize,
    /// Database for the audit cases (default: a temporary SQLite file).
    #[arg(long)]
    pub database_url: Option<String>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Serialize)]
pub struct EvalStats {
    pub case: String,
    pub bytes: usize,
    pub p50_us: f64,
    pub p99_us: f64,
    pub mean_us: f64,
    pub decision: String,
}

#[derive(Debug, Serialize)]
pub struct AuditStats {
    pub case: String,
    pub records: usize,
    pub records_per_sec: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

pub async fn run(_config: Config, args: GovernanceBenchArgs) -> anyhow::Result<()> {
    let bundle = match &args.policies {
        Some(d) => Bundle::load_dir(d),
        None => Bundle::defaults(),
    }?;
    let mut evals = Vec::new();
    for kib in [1usize, 4, 64] {
        for dirty in [false, true] {
            let text = prose(kib * 1024, dirty);
            let iterations = if kib == 64 {
                args.iterations / 10
            } else {
                args.iterations
            }
            .max(10);
            evals.push(measure_eval(&bundle, &text, kib, dirty, iterations)?);
        }
    }
    let audits = measure_audit(&args).await?;
    if args.json {
        println!(
            "{}",
            serde_json::json!({ "evaluation": evals, "audit": audits })
        );
    } else {
        println!(
            "bundle {} ({} policies)",
            &bundle.hash[..12],
            bundle.policies.len()
        );
        let mut table = Table::new(["case", "bytes", "p50 µs", "p99 µs", "mean µs", "decision"]);
        for e in &evals {
            table.row([
                e.case.clone(),
                e.bytes.to_string(),
                format!("{:.1}", e.p50_us),
                format!("{:.1}", e.p99_us),
                format!("{:.1}", e.mean_us),
                e.decision.clone(),
            ]);
        }
        let mut audit = Table::new(["audit case", "records", "records/s", "p50 ms", "p99 ms"]);
        for a in &audits {
            audit.row([
                a.case.clone(),
                a.records.to_string(),
                format!("{:.0}", a.records_per_sec),
                format!("{:.2}", a.p50_ms),
                format!("{:.2}", a.p99_ms),
            ]);
        }
        print!("{}{}", table.render(), audit.render());
    }
    Ok(())
}

fn measure_eval(
    bundle: &Bundle,
    text: &str,
    kib: usize,
    dirty: bool,
    iterations: usize,
) -> anyhow::Result<EvalStats> {
    let subject = Subject::default();
    let input = EvalInput {
        stage: Stage::Output,
        text,
        subject: &subject,
    };
    let judgements = HashMap::new();
    for _ in 0..iterations.min(50) {
        std::hint::black_box(bundle.evaluate(input, &judgements, false));
    }
    let mut samples = Vec::with_capacity(iterations);
    let mut decision = String::new();
    for _ in 0..iterations {
        let t = Instant::now();
        let e = bundle.evaluate(input, &judgements, false);
        samples.push(t.elapsed().as_secs_f64() * 1e6);
        decision = e.decision.decision.as_str().to_owned();
    }
    let (p50, p99, mean) = percentiles(&samples)?;
    Ok(EvalStats {
        case: format!(
            "output {kib} KiB {}",
            if dirty { "with findings" } else { "clean" }
        ),
        bytes: text.len(),
        p50_us: p50,
        p99_us: p99,
        mean_us: mean,
        decision,
    })
}

async fn measure_audit(args: &GovernanceBenchArgs) -> anyhow::Result<Vec<AuditStats>> {
    let dir = tempfile::tempdir()?;
    let url = args.database_url.clone().unwrap_or_else(|| {
        format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("bench.db").display()
        )
    });
    let db = warden_db::connect(&url)
        .await
        .context("opening the audit database")?;
    let (log, _writer) = AuditLog::spawn(db);
    let bundle = Bundle::defaults()?;
    let subject = Subject {
        key: Some("bench".into()),
        channel: Some("bench".into()),
        ..Subject::default()
    };
    let text = prose(1024, true);
    let decision = bundle
        .evaluate(
            EvalInput {
                stage: Stage::Output,
                text: &text,
                subject: &subject,
            },
            &HashMap::new(),
            false,
        )
        .decision;
    let record = NewRecord::from_decision(&decision, &subject, Some("bench-run"));
    let mut out = Vec::new();

    // One caller, each append awaited: the latency a request pays.
    let n = (args.records / 5).max(100);
    let mut samples = Vec::with_capacity(n);
    let start = Instant::now();
    for _ in 0..n {
        let t = Instant::now();
        log.append_one(record.clone()).await?;
        samples.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let elapsed = start.elapsed().as_secs_f64();
    let (p50, p99, _) = percentiles(&samples)?;
    out.push(AuditStats {
        case: "1 writer, awaited".into(),
        records: n,
        records_per_sec: n as f64 / elapsed,
        p50_ms: p50,
        p99_ms: p99,
    });

    // Many callers at once: the writer batches them into shared commits.
    let writers = args.writers.max(1);
    let per = (args.records / writers).max(1);
    let log = Arc::new(log);
    let start = Instant::now();
    let tasks: Vec<_> = (0..writers)
        .map(|_| {
            let log = log.clone();
            let record = record.clone();
            tokio::spawn(async move {
                let mut lat = Vec::with_capacity(per);
                for _ in 0..per {
                    let t = Instant::now();
                    log.append_one(record.clone()).await?;
                    lat.push(t.elapsed().as_secs_f64() * 1e3);
                }
                Ok::<_, warden_governance::audit::AuditError>(lat)
            })
        })
        .collect();
    let mut samples = Vec::new();
    for t in tasks {
        samples.extend(t.await??);
    }
    let elapsed = start.elapsed().as_secs_f64();
    let (p50, p99, _) = percentiles(&samples)?;
    out.push(AuditStats {
        case: format!("{writers} writers, group commit"),
        records: samples.len(),
        records_per_sec: samples.len() as f64 / elapsed,
        p50_ms: p50,
        p99_ms: p99,
    });
    Ok(out)
}

/// p50, p99 and mean; a case that took no samples is an error, not a row
/// of zeros.
fn percentiles(samples: &[f64]) -> anyhow::Result<(f64, f64, f64)> {
    let s = Summary::of(samples).context("the case took no samples")?;
    Ok((s.p50, s.p99, s.mean))
}

/// Deterministic business prose of about `bytes` bytes; with `dirty`, each
/// KiB carries an email, a card number, an AWS key and a remote image.
pub fn prose(bytes: usize, dirty: bool) -> String {
    const WORDS: &[&str] = &[
        "the",
        "quarterly",
        "report",
        "shows",
        "revenue",
        "growth",
        "in",
        "our",
        "northern",
        "region",
        "while",
        "costs",
        "for",
        "shipping",
        "and",
        "support",
        "remained",
        "stable",
        "customers",
        "asked",
        "about",
        "delivery",
        "times",
        "invoice",
        "numbers",
        "contract",
        "renewal",
        "schedule",
        "meeting",
        "notes",
        "team",
        "review",
        "please",
        "confirm",
        "by",
        "Friday",
        "with",
        "updated",
        "figures",
        "2026",
        "plan",
        "budget",
        "12",
        "percent",
    ];
    const FINDINGS: &[&str] = &[
        "Contact jane.doe@example.com for details.",
        "The card on file is 4111 1111 1111 1111.",
        "Use key AKIAIOSFODNN7EXAMPLE for the export.",
        "![chart](https://collector.example.net/c.png?d=x)",
    ];
    let mut out = String::with_capacity(bytes + 64);
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next_finding = 256;
    let mut f = 0;
    while out.len() < bytes {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let word = WORDS[(state % WORDS.len() as u64) as usize];
        out.push_str(word);
        let sentence_end = state.is_multiple_of(11);
        out.push(if sentence_end { '.' } else { ' ' });
        if sentence_end {
            out.push(' ');
        }
        if dirty && out.len() >= next_finding {
            out.push_str(FINDINGS[f % FINDINGS.len()]);
            out.push(' ');
            f += 1;
            next_finding += 256;
        }
    }
    out.truncate(out.floor_char_boundary(bytes));
    out
}
