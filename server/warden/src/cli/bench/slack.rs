//! `warden bench slack`: how fast Slack's events are acknowledged while the
//! model is busy answering earlier ones. It serves the configured Warden
//! in-process on loopback with one bench Slack connection (a fresh signing
//! secret, the agent given by `--agent`, and a stand-in Slack Web API on
//! loopback so replies have somewhere to go), makes the model busy with
//! warm-up mentions, then sends `--events` signed `app_mention`s at
//! `--concurrency` and reports the acknowledgement latency against
//! Slack's 3 s deadline and the events accepted per second.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::Json;
use axum::routing::post;
use clap::Args;
use serde_json::json;

use super::{Summary, Table};
use crate::config::Config;
use warden_channels::InboxStatus;
use warden_slack::config::SlackConfig;

/// Slack retries an event it has not seen acknowledged within this.
const SLACK_DEADLINE_MS: f64 = 3000.0;
const TEAM: &str = "TBENCH";

#[derive(Args)]
pub struct SlackBenchArgs {
    /// Signed events measured.
    #[arg(long, default_value_t = 200)]
    pub events: usize,
    /// Events in flight at once.
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// The agent the events go to (its runs keep the model busy).
    #[arg(long, default_value = "document-assistant")]
    pub agent: String,
    /// Mentions sent first, so the model is busy when measuring starts.
    #[arg(long, default_value_t = 4)]
    pub warm_up: usize,
}

/// A stand-in Slack Web API that accepts every message (Slack itself is
/// not what is measured).
async fn start_sink() -> anyhow::Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let app = axum::Router::new().route(
        "/api/{method}",
        post(|| async {
            Json(json!({"ok": true, "ts": "1800000000.000001", "user_id": "UBENCHBOT"}))
        }),
    );
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(format!("http://{addr}/api"))
}

pub async fn run(mut config: Config, args: SlackBenchArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.events > 0 && args.concurrency > 0,
        "--events and --concurrency must be at least 1"
    );
    let data = tempfile::tempdir()?;
    // A throwaway database: the bench's inbox and runs are not kept.
    config.server.database_url = Some(format!(
        "sqlite://{}?mode=rwc",
        data.path().join("bench.db").display()
    ));
    let secret = hex::encode(rand::random::<[u8; 32]>());
    config.channels.slack = vec![SlackConfig {
        name: "bench".into(),
        agent: args.agent.clone(),
        signing_secret_env: "BENCH_SECRET".into(),
        bot_token_env: "BENCH_TOKEN".into(),
        allowed_teams: vec![TEAM.into()],
        allowed_channels: Vec::new(),
        approvers: Vec::new(),
        approval_channel: None,
        bot_user_id: Some("UBENCHBOT".into()),
        api_base_url: start_sink().await?,
        response_url_prefix: "http://127.0.0.1/".into(),
        timeout_secs: 10,
    }];
    let core = crate::server::start_core(&config).await?;
    let env_secret = secret.clone();
    let (state, _log) = crate::server::app_state(&config, &core, move |var| match var {
        "BENCH_SECRET" => Some(env_secret.clone()),
        "BENCH_TOKEN" => Some("xoxb-bench".into()),
        _ => None,
    })?;
    let channels = state.channels.clone().context("the bench connection")?;
    let _tasks = channels.start();
    let app = crate::api::router(state, config.server.max_body_bytes);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/channels/slack/events", listener.local_addr()?);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });

    let http = reqwest::Client::new();
    let send = {
        let http = http.clone();
        let url = url.clone();
        let secret = secret.clone();
        move |i: usize| {
            let http = http.clone();
            let url = url.clone();
            let secret = secret.clone();
            async move {
                let body = json!({
                    "type": "event_callback", "team_id": TEAM, "event_id": format!("EvBench{i}"),
                    "event": {"type": "app_mention", "user": "UBENCH", "channel": "CBENCH", "team": TEAM,
                              "text": format!("<@UBENCHBOT> List the documents, please ({i})."),
                              "ts": format!("1700000000.{i:06}")},
                })
                .to_string();
                let ts = chrono::Utc::now().timestamp();
                let started = Instant::now();
                let r = http
                    .post(&url)
                    .header("content-type", "application/json")
                    .header("x-slack-request-timestamp", ts.to_string())
                    .header(
                        "x-slack-signature",
                        warden_slack::signature::sign(secret.as_bytes(), ts, body.as_bytes()),
                    )
                    .body(body)
                    .send()
                    .await;
                let ms = started.elapsed().as_secs_f64() * 1000.0;
                match r {
                    Ok(r) if r.status().is_success() => Ok(ms),
                    Ok(r) => Err(anyhow::anyhow!("event {i} answered {}", r.status())),
                    Err(e) => Err(anyhow::anyhow!("event {i}: {e}")),
                }
            }
        }
    };

    // Warm-up: the model is answering before measuring starts.
    for i in 0..args.warm_up {
        send(1_000_000 + i).await?;
    }
    let inbox = channels.dispatcher.inbox.clone();
    for _ in 0..600 {
        if inbox.count("slack", InboxStatus::Processing).await? > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let gate = Arc::new(tokio::sync::Semaphore::new(args.concurrency));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..args.events {
        let permit = gate.clone().acquire_owned().await?;
        let f = send(i);
        tasks.spawn(async move {
            let r = f.await;
            drop(permit);
            r
        });
    }
    let mut samples = Vec::with_capacity(args.events);
    while let Some(r) = tasks.join_next().await {
        samples.push(r??);
    }
    let wall = started.elapsed().as_secs_f64();
    let busy = inbox.count("slack", InboxStatus::Processing).await?;
    let waiting = inbox.count("slack", InboxStatus::Received).await?;
    let acks = Summary::of(&samples).context("no events measured")?;

    println!(
        "slack events: {} signed app_mentions at concurrency {} (agent {}), after {} warm-up mentions",
        args.events, args.concurrency, args.agent, args.warm_up
    );
    println!(
        "  while measuring, the model was answering; at the end {busy} runs were in progress and {waiting} events waited their turn"
    );
    let mut t = Table::new(["ack latency", "ms", "of Slack's 3 s"]);
    for (name, v) in [
        ("p50", acks.p50),
        ("p90", acks.p90),
        ("p99", acks.p99),
        ("max", acks.max),
    ] {
        t.row([
            name.to_owned(),
            format!("{v:.1}"),
            format!("{:.2}%", v / SLACK_DEADLINE_MS * 100.0),
        ]);
    }
    print!("{}", t.render());
    println!(
        "  accepted into the inbox: {:.0} events/s ({} in {:.2} s)",
        args.events as f64 / wall,
        args.events,
        wall
    );
    Ok(())
}
