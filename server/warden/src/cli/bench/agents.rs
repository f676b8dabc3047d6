//! `warden bench agents`: what the agent runtime costs besides the model.
//!
//! Overhead: runs of the document assistant against a scripted, instant
//! backend (a test double answering a `create_document` call, then a
//! final answer) with the real document plugin (sandboxed), the shipped
//! policies and a real SQLite database: each run is two model calls, one
//! tool call, six audited policy decisions and the run's rows. The time per
//! run, divided by its model calls, is the overhead per step.
//!
//! End to end (`--e2e`): the document scenario with the embedded model:
//! save a note, then ask about it; model time and the rest reported apart.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use serde_json::json;
use warden_agents::tools::ToolHost;
use warden_agents::{AgentSpec, RunRequest, RunStatus, Runner, StepKind};
use warden_governance::Governor;
use warden_governance::audit::AuditLog;
use warden_governance::store::PolicyStore;
use warden_llm::ModelRegistry;
use warden_llm::testing::{Reply, ScriptedBackend};
use warden_plugin_host::kv_store::KvStore;
use warden_plugin_host::{HostServices, standalone};
use warden_policy::bundle::Bundle;

use super::Summary;
use crate::adapters::PluginTools;
use crate::config::Config;

#[derive(Args)]
pub struct AgentBenchArgs {
    /// The built document plugin directory.
    #[arg(long, default_value = "plugins/dist/document")]
    pub document: PathBuf,
    /// Runs measured (after 10 warm-up runs).
    #[arg(long, default_value_t = 200)]
    pub runs: usize,
    /// Also run the document scenario with the embedded model.
    #[arg(long)]
    pub e2e: bool,
}

pub async fn run(config: Config, args: AgentBenchArgs) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("bench.db").display()
    );
    let db = warden_db::connect(&url).await?;
    let services = HostServices {
        kv: KvStore::new(db.clone()),
        llm: None,
    };
    let plugin = standalone::load(
        &args.document,
        None,
        &config.plugins,
        true,
        None,
        services.clone(),
    )
    .await
    .with_context(|| {
        format!(
            "loading {} (run `make plugins` first)",
            args.document.display()
        )
    })?;
    let tools: Arc<dyn ToolHost> = Arc::new(PluginTools::Fixed(Arc::new(plugin.plugin)));
    let (audit, _writer) = AuditLog::spawn(db.clone());
    let store = Arc::new(PolicyStore::fixed(Bundle::defaults()?));
    let governor = Arc::new(Governor::new(store, audit, None));
    let agent = AgentSpec::defaults().remove(0);

    // A test double that answers at once: a `create_document` call, then a
    // final answer.
    let backend = ScriptedBackend::new("scripted", []);
    let mut registry = ModelRegistry::default();
    registry.insert(backend.clone());
    let runner = Runner::new(
        Arc::new(registry),
        tools.clone(),
        governor.clone(),
        db.clone(),
        "scripted".into(),
    );
    let mut samples = Vec::new();
    let mut model_calls = 0usize;
    for i in 0..args.runs + 10 {
        backend.set_script([
            Reply::text(json!({"tool": "create_document", "arguments": {"title": format!("Bench {i}"), "content": "Numbers."}}).to_string()),
            Reply::text(json!({"final": "Saved."}).to_string()),
        ]);
        let t = Instant::now();
        let report = runner
            .run(
                request(&agent, "Save a note titled 'Bench' saying 'Numbers.'"),
                None,
            )
            .await?;
        let elapsed = t.elapsed();
        anyhow::ensure!(
            report.status == RunStatus::Completed,
            "bench run ended {:?}",
            report.status
        );
        if i >= 10 {
            samples.push(elapsed.as_secs_f64() * 1000.0);
            model_calls += report
                .steps
                .iter()
                .filter(|s| s.kind == StepKind::Model)
                .count();
        }
    }
    let runs = Summary::of(&samples).context("--runs must be at least 1")?;
    let steps_per_run = model_calls as f64 / args.runs as f64;
    println!(
        "agent overhead (scripted instant model, real document plugin, shipped policies, SQLite)"
    );
    println!(
        "  per run ({steps_per_run:.0} model calls, 1 tool call): p50 {:.2} ms, p99 {:.2} ms",
        runs.p50, runs.p99
    );
    println!("  per step: p50 {:.2} ms", runs.p50 / steps_per_run);

    if args.e2e {
        let registry = Arc::new(crate::models::load(&config).await?);
        let runner = Runner::new(registry, tools, governor, db, config.first_model_id());
        println!("document scenario with the embedded model");
        for message in [
            "Save a note titled 'Q3 plan' saying 'Ship the audit log by Friday.'",
            "What do my notes say about the audit log?",
        ] {
            let t = Instant::now();
            let report = runner.run(request(&agent, message), None).await?;
            let total = t.elapsed().as_secs_f64();
            let model: f64 = report
                .steps
                .iter()
                .filter(|s| s.kind == StepKind::Model)
                .map(|s| s.duration_ms)
                .sum::<f64>()
                / 1000.0;
            let steps = report
                .steps
                .iter()
                .filter(|s| s.kind == StepKind::Model)
                .count();
            println!(
                "  {message:?}: {:?}, {total:.2} s total, {model:.2} s in the model, {:.1} ms other, {steps} model calls; answer {:?}",
                report.status,
                (total - model) * 1000.0,
                report.answer.unwrap_or_default()
            );
            // Each model call: time, prompt and completion tokens (a step
            // whose prompt prefix was cached is fast for its prompt size).
            for s in report.steps.iter().filter(|s| s.kind == StepKind::Model) {
                println!(
                    "    model call: {:.0} ms, {} prompt + {} completion tokens",
                    s.duration_ms, s.detail["prompt_tokens"], s.detail["completion_tokens"]
                );
            }
        }
        for backend in runner.registry.iter() {
            if let Some(e) = backend.engine_stats() {
                println!(
                    "  prefix cache of {}: {} of {} sequences reused a prefix, {} held, {} renewals",
                    backend.model_id(),
                    e.prefix_cache_hits,
                    e.prefix_cache_lookups,
                    e.prefix_cache_sequences,
                    e.prefix_cache_renewals
                );
            }
        }
    }
    Ok(())
}

fn request(agent: &AgentSpec, message: &str) -> RunRequest {
    RunRequest {
        agent: agent.clone(),
        message: message.into(),
        subject: Some("bench".into()),
        channel: "bench".into(),
        id: None,
        history: Vec::new(),
        answer_stream: None,
    }
}
