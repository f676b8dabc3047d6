//! `warden bench chat`: load-tests any OpenAI-compatible chat endpoint.
//!
//! Each request streams, so time to first token is observed directly; token
//! counts come from the server's usage report (`stream_options.include_usage`)
//! and fall back to counting content chunks when a server does not send one.

use std::time::{Duration, Instant};

use anyhow::Context;
use async_openai::Client;
use async_openai::config::OpenAIConfig;
use clap::Args;
use futures::StreamExt;
use serde::Serialize;
use serde_json::{Value, json};

use super::{Summary, Table};

#[derive(Args, Debug, Clone)]
pub struct BenchArgs {
    /// Base URL of the API, e.g. http://127.0.0.1:8080/v1
    #[arg(long)]
    pub url: String,
    /// Model id to request.
    #[arg(long)]
    pub model: String,
    /// API key (or set WARDEN_API_KEY).
    #[arg(long, env = "WARDEN_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// Concurrency levels to measure.
    #[arg(long, value_delimiter = ',', default_values_t = vec![1, 4, 16])]
    pub concurrency: Vec<usize>,
    /// Requests per concurrency level (at least the concurrency).
    #[arg(long, default_value_t = 16)]
    pub requests: usize,
    /// Tokens to generate per request.
    #[arg(long, default_value_t = 64)]
    pub max_tokens: u32,
    /// Approximate prompt length in words.
    #[arg(long, default_value_t = 120)]
    pub prompt_words: usize,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Serialize)]
pub struct LevelResult {
    pub concurrency: usize,
    pub requests: usize,
    pub failed: usize,
    pub prompt_tokens_per_s: f64,
    pub generated_tokens_per_s: f64,
    pub ttft_p50_ms: f64,
    pub ttft_p90_ms: f64,
    pub aggregate_generated_tokens_per_s: f64,
    pub wall_s: f64,
}

#[derive(Debug, Default, Clone)]
struct Sample {
    ttft: Duration,
    total: Duration,
    prompt_tokens: u32,
    completion_tokens: u32,
}

fn prompt(words: usize, salt: usize) -> String {
    // Varies per request so a prefix cache cannot skip the prompt entirely.
    let text = "Warden checks every model output against governance policies and records each decision in a tamper evident audit log";
    let body: Vec<&str> = text.split(' ').cycle().take(words).collect();
    format!(
        "Request {salt}. Summarise the following in one sentence: {}",
        body.join(" ")
    )
}

async fn one_request(
    client: &Client<OpenAIConfig>,
    args: &BenchArgs,
    salt: usize,
) -> anyhow::Result<Sample> {
    let body = json!({
        "model": args.model,
        "messages": [{"role": "user", "content": prompt(args.prompt_words, salt)}],
        "max_tokens": args.max_tokens,
        "temperature": 0.0,
        "stream": true,
        "stream_options": {"include_usage": true},
    });
    let start = Instant::now();
    let mut stream = client
        .chat()
        .create_stream_byot::<Value, Value>(body)
        .await
        .context("starting the request")?;
    let mut sample = Sample::default();
    let mut chunks = 0u32;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.context("reading the stream")?;
        if let Some(u) = chunk.get("usage").filter(|u| !u.is_null()) {
            sample.prompt_tokens = u["prompt_tokens"].as_u64().unwrap_or(0) as u32;
            sample.completion_tokens = u["completion_tokens"].as_u64().unwrap_or(0) as u32;
        }
        let has_text = chunk
            .pointer("/choices/0/delta/content")
            .and_then(Value::as_str)
            .is_some_and(|s| !s.is_empty());
        if has_text {
            if chunks == 0 {
                sample.ttft = start.elapsed();
            }
            chunks += 1;
        }
    }
    sample.total = start.elapsed();
    if sample.completion_tokens == 0 {
        sample.completion_tokens = chunks;
    }
    if chunks == 0 {
        sample.ttft = sample.total;
    }
    Ok(sample)
}

async fn run_level(
    client: &Client<OpenAIConfig>,
    args: &BenchArgs,
    concurrency: usize,
) -> LevelResult {
    let total = args.requests.max(concurrency);
    let start = Instant::now();
    let results: Vec<anyhow::Result<Sample>> = futures::stream::iter(0..total)
        .map(|i| one_request(client, args, concurrency * 1000 + i))
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let wall = start.elapsed().as_secs_f64();
    let mut failed = 0;
    let mut samples = Vec::new();
    for r in results {
        match r {
            Ok(s) => samples.push(s),
            Err(e) => {
                failed += 1;
                eprintln!("request failed: {e:#}");
            }
        }
    }
    let ttfts: Vec<f64> = samples
        .iter()
        .map(|s| s.ttft.as_secs_f64() * 1000.0)
        .collect();
    let ttft = Summary::of(&ttfts);
    let mean = |f: &dyn Fn(&Sample) -> Option<f64>| {
        let v: Vec<f64> = samples.iter().filter_map(f).collect();
        if v.is_empty() {
            0.0
        } else {
            v.iter().sum::<f64>() / v.len() as f64
        }
    };
    let generated: u64 = samples.iter().map(|s| u64::from(s.completion_tokens)).sum();
    LevelResult {
        concurrency,
        requests: total,
        failed,
        prompt_tokens_per_s: mean(&|s| {
            (s.prompt_tokens > 0 && !s.ttft.is_zero())
                .then(|| f64::from(s.prompt_tokens) / s.ttft.as_secs_f64())
        }),
        generated_tokens_per_s: mean(&|s| {
            let decode = (s.total - s.ttft).as_secs_f64();
            (s.completion_tokens > 1 && decode > 0.0)
                .then(|| f64::from(s.completion_tokens - 1) / decode)
        }),
        ttft_p50_ms: ttft.map_or(0.0, |t| t.p50),
        ttft_p90_ms: ttft.map_or(0.0, |t| t.p90),
        aggregate_generated_tokens_per_s: if wall > 0.0 {
            generated as f64 / wall
        } else {
            0.0
        },
        wall_s: wall,
    }
}

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        !args.concurrency.is_empty(),
        "--concurrency needs at least one level"
    );
    anyhow::ensure!(
        args.concurrency.iter().all(|c| *c > 0),
        "concurrency levels must be positive"
    );
    let mut config = OpenAIConfig::new().with_api_base(args.url.trim_end_matches('/'));
    if let Some(key) = &args.api_key {
        config = config.with_api_key(key);
    }
    let client = Client::with_config(config);
    // One warm-up request so model loading and caches do not count.
    one_request(&client, &args, 0)
        .await
        .context("warm-up request failed")?;
    let mut results = Vec::new();
    for &c in &args.concurrency {
        results.push(run_level(&client, &args, c).await);
    }
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "url": args.url, "model": args.model, "max_tokens": args.max_tokens,
                "prompt_words": args.prompt_words, "levels": results,
            }))?
        );
    } else {
        let mut table = Table::new([
            "concurrency",
            "requests",
            "failed",
            "prompt tok/s",
            "gen tok/s",
            "ttft p50",
            "ttft p90",
            "aggregate t/s",
        ]);
        for r in &results {
            table.row([
                r.concurrency.to_string(),
                r.requests.to_string(),
                r.failed.to_string(),
                format!("{:.1}", r.prompt_tokens_per_s),
                format!("{:.1}", r.generated_tokens_per_s),
                format!("{:.0}ms", r.ttft_p50_ms),
                format!("{:.0}ms", r.ttft_p90_ms),
                format!("{:.1}", r.aggregate_generated_tokens_per_s),
            ]);
        }
        print!("{}", table.render());
    }
    anyhow::ensure!(
        results.iter().all(|r| r.failed == 0),
        "some requests failed"
    );
    Ok(())
}
