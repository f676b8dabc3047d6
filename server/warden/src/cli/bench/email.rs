//! `warden bench email`: how fast mail is taken in, and how long a message
//! takes from its inbound post to its reply's delivery over SMTP.
//!
//! It serves Warden in-process on loopback with one bench mailbox (raw
//! MIME, fresh credentials) whose agent runs on a scripted, instant model
//! (a loopback OpenAI-compatible test double answering `{"final": …}`: the
//! model is not what is measured) and whose replies go to a loopback SMTP
//! receiver that notes when each reply's DATA is accepted. Throughput:
//! `--messages` raw messages of `--size-kb` posted at `--concurrency`,
//! acknowledged only once in the inbox (a real SQLite database). Latency:
//! `--latency-samples` messages sent one at a time, each timed from the
//! post to its reply's delivery (parse, inbox, dispatch, the agent run with
//! its audited policy decisions, the outbox, SMTP).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::Json;
use axum::response::IntoResponse;
use axum::routing::post;
use clap::Args;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use super::{Summary, Table};
use crate::config::{Config, ModelConfig};
use warden_email::config::{EmailConfig, Provider, SmtpConfig, SmtpSecurity};

const MODEL: &str = "bench-scripted";
const AGENT: &str = "bench-mailer";

#[derive(Args)]
pub struct EmailBenchArgs {
    /// Messages posted for the throughput measurement.
    #[arg(long, default_value_t = 200)]
    pub messages: usize,
    /// Posts in flight at once.
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// Size of each message, in KiB (text body padded to it).
    #[arg(long, default_value_t = 20)]
    pub size_kb: usize,
    /// Messages sent one at a time, each timed to its reply's delivery.
    #[arg(long, default_value_t = 20)]
    pub latency_samples: usize,
}

/// A loopback OpenAI-compatible model that answers every request at once.
async fn start_model() -> anyhow::Result<String> {
    async fn complete(Json(body): Json<Value>) -> axum::response::Response {
        let text = json!({"final": "Noted, thank you."}).to_string();
        if body["stream"] == json!(true) {
            let chunk = json!({"id": "b", "object": "chat.completion.chunk", "created": 0, "model": MODEL,
                "choices": [{"index": 0, "delta": {"role": "assistant", "content": text}, "finish_reason": "stop"}]});
            let sse = format!("data: {chunk}\n\ndata: [DONE]\n\n");
            return ([("content-type", "text/event-stream")], sse).into_response();
        }
        Json(json!({
            "id": "b", "object": "chat.completion", "created": 0, "model": MODEL,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
        }))
        .into_response()
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let app = axum::Router::new().route("/v1/chat/completions", post(complete));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(format!("http://{addr}/v1"))
}

/// When each reply (by the message it answers) was accepted.
type Delivered = Arc<Mutex<HashMap<String, Instant>>>;

/// A loopback SMTP receiver: enough of RFC 5321 for lettre's client
/// (EHLO, MAIL, RCPT, DATA, RSET, NOOP, QUIT), no TLS, no auth.
async fn start_smtp(delivered: Delivered) -> anyhow::Result<u16> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let delivered = delivered.clone();
            tokio::spawn(async move {
                let _ = smtp_session(socket, delivered).await;
            });
        }
    });
    Ok(port)
}

async fn smtp_session(socket: tokio::net::TcpStream, delivered: Delivered) -> std::io::Result<()> {
    let (read, mut write) = socket.into_split();
    let mut lines = BufReader::new(read);
    write.write_all(b"220 bench ESMTP\r\n").await?;
    let mut line = String::new();
    loop {
        line.clear();
        if lines.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let verb = line.get(..4).unwrap_or("").to_ascii_uppercase();
        let answer: &[u8] = match verb.as_str() {
            "EHLO" => b"250-bench\r\n250 8BITMIME\r\n",
            "HELO" | "MAIL" | "RCPT" | "RSET" | "NOOP" => b"250 OK\r\n",
            "QUIT" => {
                write.write_all(b"221 bye\r\n").await?;
                return Ok(());
            }
            "DATA" => {
                write.write_all(b"354 go on\r\n").await?;
                let mut parent = None;
                loop {
                    line.clear();
                    if lines.read_line(&mut line).await? == 0 {
                        return Ok(());
                    }
                    if line == ".\r\n" || line == ".\n" {
                        break;
                    }
                    if parent.is_none()
                        && let Some(v) = line
                            .strip_prefix("In-Reply-To:")
                            .map(|v| v.trim().trim_matches(['<', '>']).to_owned())
                    {
                        parent = Some(v);
                    }
                }
                if let (Some(p), Ok(mut d)) = (parent, delivered.lock()) {
                    d.insert(p, Instant::now());
                }
                b"250 OK queued\r\n"
            }
            _ => b"502 not here\r\n",
        };
        write.write_all(answer).await?;
    }
}

fn message(i: usize, size: usize) -> (String, String) {
    let id = format!("bench-{i}@example.com");
    let mut body = format!("Question {i}: what is the status of order {i}?\r\n\r\n");
    let line = "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod.\r\n";
    while body.len() < size {
        body.push_str(line);
    }
    let raw = format!(
        "From: Ann <ann@example.com>\r\nTo: bench@warden.test\r\nSubject: Order {i}\r\nMessage-ID: <{id}>\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}"
    );
    (id, raw)
}

pub async fn run(mut config: Config, args: EmailBenchArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.messages > 0 && args.concurrency > 0 && args.size_kb > 0,
        "--messages, --concurrency and --size-kb must be at least 1"
    );
    let data = tempfile::tempdir()?;
    // A throwaway database: the bench's inbox and runs are not kept.
    config.server.database_url = Some(format!(
        "sqlite://{}?mode=rwc",
        data.path().join("bench.db").display()
    ));
    config.models = vec![ModelConfig::Openai {
        id: MODEL.into(),
        base_url: start_model().await?,
        api_key_env: None,
        upstream_model: None,
        timeout_secs: 30,
    }];
    let delivered: Delivered = Arc::default();
    let smtp_port = start_smtp(delivered.clone()).await?;
    let password = hex::encode(rand::random::<[u8; 16]>());
    config.channels.email = vec![EmailConfig {
        name: "bench".into(),
        agent: AGENT.into(),
        addresses: vec!["bench@warden.test".into()],
        provider: Provider::Raw,
        inbound_user_env: Some("BENCH_USER".into()),
        inbound_password_env: Some("BENCH_PASSWORD".into()),
        signing_key_env: None,
        approvers: Vec::new(),
        approval_secret_env: None,
        public_url: None,
        approval_ttl_secs: 3600,
        allowed_senders: vec!["example.com".into()],
        max_body_bytes: 25 * 1024 * 1024,
        max_text_attachment_bytes: 64 * 1024,
        smtp: SmtpConfig {
            host: "127.0.0.1".into(),
            port: smtp_port,
            security: SmtpSecurity::Plain,
            username_env: None,
            password_env: None,
            timeout_secs: 10,
        },
    }];
    let core = crate::server::start_core(&config).await?;
    let spec = serde_json::from_value(json!({
        "name": AGENT, "model": MODEL, "system_prompt": "You answer mail about orders.",
    }))?;
    core.agents.catalog.put(spec, "bench").await?;
    let env_password = password.clone();
    let (state, _log) = crate::server::app_state(&config, &core, move |var| match var {
        "BENCH_USER" => Some("bench".into()),
        "BENCH_PASSWORD" => Some(env_password.clone()),
        _ => None,
    })?;
    let channels = state.channels.clone().context("the bench mailbox")?;
    let _tasks = channels.start();
    let app = crate::api::router(state, config.server.max_body_bytes);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!(
        "http://{}/channels/email/bench/inbound",
        listener.local_addr()?
    );
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });

    let http = reqwest::Client::new();
    let size = args.size_kb * 1024;
    let send = {
        let http = http.clone();
        let url = url.clone();
        move |raw: String| {
            let http = http.clone();
            let url = url.clone();
            let password = password.clone();
            async move {
                let started = Instant::now();
                let r = http
                    .post(&url)
                    .basic_auth("bench", Some(password))
                    .header("content-type", "message/rfc822")
                    .body(raw)
                    .send()
                    .await
                    .context("posting a message")?;
                let ms = started.elapsed().as_secs_f64() * 1000.0;
                let status = r.status();
                let body: Value = r.json().await.unwrap_or(Value::Null);
                anyhow::ensure!(
                    status.is_success() && body["status"] == "accepted",
                    "a message was answered {status}: {body}"
                );
                Ok::<f64, anyhow::Error>(ms)
            }
        }
    };
    let wait_for = |ids: Vec<String>| {
        let delivered = delivered.clone();
        async move {
            for _ in 0..6000 {
                let done = delivered
                    .lock()
                    .map(|d| ids.iter().all(|i| d.contains_key(i)))
                    .unwrap_or(false);
                if done {
                    return Ok(());
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            anyhow::bail!("replies did not all arrive within a minute")
        }
    };

    // Warm-up: connections, the prepared statements, the policy caches.
    let warm: Vec<(String, String)> = (0..8).map(|i| message(1_000_000 + i, size)).collect();
    for (_, raw) in &warm {
        send(raw.clone()).await?;
    }
    wait_for(warm.iter().map(|(id, _)| id.clone()).collect()).await?;

    // Throughput: posts at --concurrency, each acknowledged once stored.
    let batch: Vec<(String, String)> = (0..args.messages).map(|i| message(i, size)).collect();
    let gate = Arc::new(tokio::sync::Semaphore::new(args.concurrency));
    let posted: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for (id, raw) in batch.iter().cloned() {
        let permit = gate.clone().acquire_owned().await?;
        let f = send(raw);
        let posted = posted.clone();
        tasks.spawn(async move {
            let t = Instant::now();
            let r = f.await;
            if let Ok(mut p) = posted.lock() {
                p.insert(id, t);
            }
            drop(permit);
            r
        });
    }
    let mut acks = Vec::with_capacity(args.messages);
    while let Some(r) = tasks.join_next().await {
        acks.push(r??);
    }
    let wall = started.elapsed().as_secs_f64();
    wait_for(batch.iter().map(|(id, _)| id.clone()).collect()).await?;
    let drained = started.elapsed().as_secs_f64();
    let under_load: Vec<f64> = {
        let d = delivered.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
        let p = posted.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
        batch
            .iter()
            .filter_map(|(id, _)| Some((*d.get(id)? - *p.get(id)?).as_secs_f64() * 1000.0))
            .collect()
    };

    // Latency: one message at a time, from the post to its reply's DATA.
    let mut alone = Vec::with_capacity(args.latency_samples);
    for i in 0..args.latency_samples {
        let (id, raw) = message(2_000_000 + i, size);
        let t = Instant::now();
        send(raw).await?;
        wait_for(vec![id.clone()]).await?;
        let at = delivered
            .lock()
            .ok()
            .and_then(|d| d.get(&id).copied())
            .context("delivery time")?;
        alone.push((at - t).as_secs_f64() * 1000.0);
    }

    let acks = Summary::of(&acks).context("no messages measured")?;
    println!(
        "email inbound: {} raw messages of {} KiB at concurrency {} (scripted instant model, SQLite, loopback SMTP)",
        args.messages, args.size_kb, args.concurrency
    );
    println!(
        "  accepted into the inbox: {:.0} messages/s ({} in {:.2} s); all {} replies delivered after {:.2} s",
        args.messages as f64 / wall,
        args.messages,
        wall,
        args.messages,
        drained
    );
    let mut t = Table::new(["latency, ms", "p50", "p90", "p99", "max"]);
    let mut row = |name: &str, s: Option<Summary>| {
        if let Some(s) = s {
            t.row([
                name.to_owned(),
                format!("{:.1}", s.p50),
                format!("{:.1}", s.p90),
                format!("{:.1}", s.p99),
                format!("{:.1}", s.max),
            ]);
        }
    };
    row("acknowledgement (under load)", Some(acks));
    row("inbound → SMTP (under load)", Summary::of(&under_load));
    row(
        &format!("inbound → SMTP (one at a time, n={})", alone.len()),
        Summary::of(&alone),
    );
    print!("{}", t.render());
    Ok(())
}
