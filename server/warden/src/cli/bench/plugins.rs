//! `warden bench plugins`: in-process plugin host latency.
//!
//! Measures, on first-party components built by `make plugins`:
//! cold load (compile, no cache), cached load (compiled code from the
//! on-disk cache), and warm call latency (p50/p99, calls/s) for trivial
//! tools on a small plugin (`warden.document` `document_stats` on "hi") and
//! on the largest (`warden.coding`, 4.8 MB with Rhai and a JSON Schema
//! validator: `format_json` on `{}`), and for `warden.document`
//! `render_html` on a ~20 KB Markdown document.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use serde::Serialize;

use super::{Summary, Table};
use crate::config::Config;
use warden_plugin_host::kv_store::KvStore;
use warden_plugin_host::{CallRequest, HostServices, LoadedPlugin, standalone};

#[derive(Args)]
pub struct PluginBenchArgs {
    /// The built coding plugin directory (plugin.toml + component).
    #[arg(long, default_value = "plugins/dist/coding")]
    pub coding: PathBuf,
    /// The built document plugin directory.
    #[arg(long, default_value = "plugins/dist/document")]
    pub document: PathBuf,
    /// Calls measured per case (after 50 warm-up calls).
    #[arg(long, default_value_t = 2000)]
    pub calls: usize,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Serialize)]
pub struct CallStats {
    pub case: String,
    pub calls: usize,
    pub p50_us: f64,
    pub p99_us: f64,
    pub mean_us: f64,
    pub calls_per_sec: f64,
    pub peak_memory_kib: u64,
}

#[derive(Debug, Serialize)]
pub struct LoadStats {
    pub plugin: String,
    pub component_bytes: usize,
    pub cold_load_ms: f64,
    pub cached_load_ms: f64,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub loads: Vec<LoadStats>,
    pub calls: Vec<CallStats>,
}

pub async fn run(config: Config, args: PluginBenchArgs) -> anyhow::Result<()> {
    let db = warden_db::connect("sqlite::memory:").await?;
    let services = HostServices {
        kv: KvStore::new(db),
        llm: None,
    };
    let cache = tempfile::tempdir()?;
    let mut loads = Vec::new();
    let mut plugins = Vec::new();
    for dir in [&args.coding, &args.document] {
        let load = |cache_dir: Option<PathBuf>| {
            let services = services.clone();
            let config = &config;
            async move {
                let t = Instant::now();
                let s = standalone::load(
                    dir,
                    None,
                    &config.plugins,
                    true,
                    cache_dir.as_deref(),
                    services,
                )
                .await
                .with_context(|| format!("loading {} (run `make plugins` first)", dir.display()))?;
                anyhow::Ok((t.elapsed(), s))
            }
        };
        let (cold, _) = load(None).await?;
        // First load fills the cache; the second is what a restart costs.
        load(Some(cache.path().to_owned())).await?;
        let (cached, s) = load(Some(cache.path().to_owned())).await?;
        loads.push(LoadStats {
            plugin: s.plugin.manifest.id.clone(),
            component_bytes: s.component_bytes,
            cold_load_ms: ms(cold),
            cached_load_ms: ms(cached),
        });
        plugins.push(Arc::new(s.plugin));
    }
    let document = "# Quarterly report\n\n".to_owned()
        + &"Revenue grew **12%** with [details](https://example.com) and `code`.\n\n- item one\n- item two\n\n".repeat(200);
    let cases = [
        (
            "format_json (trivial)",
            plugins[0].clone(),
            "format_json",
            serde_json::json!({"json": "{}"}),
        ),
        (
            "document_stats (trivial)",
            plugins[1].clone(),
            "document_stats",
            serde_json::json!({"markdown": "hi"}),
        ),
        (
            "render_html (20 KB)",
            plugins[1].clone(),
            "render_html",
            serde_json::json!({"markdown": &document[..document.len().min(20_480)]}),
        ),
    ];
    let mut calls = Vec::new();
    for (name, plugin, tool, arguments) in cases {
        calls.push(measure(name, &plugin, tool, &arguments.to_string(), args.calls).await?);
    }
    let report = Report { loads, calls };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_table(&report);
    }
    Ok(())
}

async fn measure(
    name: &str,
    plugin: &LoadedPlugin,
    tool: &str,
    arguments: &str,
    n: usize,
) -> anyhow::Result<CallStats> {
    let req = CallRequest::default();
    for _ in 0..50 {
        if let Err(e) = plugin.call(tool, arguments, &req).await.result {
            bail!("{name}: {e}");
        }
    }
    let mut times = Vec::with_capacity(n);
    let mut peak = 0;
    let started = Instant::now();
    for _ in 0..n.max(1) {
        let t = Instant::now();
        let outcome = plugin.call(tool, arguments, &req).await;
        times.push(t.elapsed().as_secs_f64() * 1e6);
        if let Err(e) = outcome.result {
            bail!("{name}: {e}");
        }
        peak = peak.max(outcome.peak_memory_bytes);
    }
    let total = started.elapsed().as_secs_f64();
    let summary = Summary::of(&times).with_context(|| format!("{name}: no calls measured"))?;
    Ok(CallStats {
        case: name.to_owned(),
        calls: summary.count,
        p50_us: summary.p50,
        p99_us: summary.p99,
        mean_us: summary.mean,
        calls_per_sec: times.len() as f64 / total,
        peak_memory_kib: peak / 1024,
    })
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn print_table(r: &Report) {
    let mut loads = Table::new(["plugin", "bytes", "cold load ms", "cached load ms"]);
    for l in &r.loads {
        loads.row([
            l.plugin.clone(),
            l.component_bytes.to_string(),
            format!("{:.1}", l.cold_load_ms),
            format!("{:.1}", l.cached_load_ms),
        ]);
    }
    let mut calls = Table::new([
        "case", "calls", "p50 µs", "p99 µs", "mean µs", "calls/s", "peak KiB",
    ]);
    for c in &r.calls {
        calls.row([
            c.case.clone(),
            c.calls.to_string(),
            format!("{:.1}", c.p50_us),
            format!("{:.1}", c.p99_us),
            format!("{:.1}", c.mean_us),
            format!("{:.0}", c.calls_per_sec),
            c.peak_memory_kib.to_string(),
        ]);
    }
    println!("{}\n{}", loads.render(), calls.render());
}
