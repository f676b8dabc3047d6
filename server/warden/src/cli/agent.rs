//! `warden agent list|run`: agents in-process, against the configured
//! database, models, plugins and policies (the same as `warden serve`).

use anyhow::{Context, bail};
use clap::Subcommand;

use crate::config::Config;
use warden_agents::{RunRequest, RunStatus, StepKind, StepRecord};

#[derive(Subcommand)]
pub enum AgentCommand {
    /// List the agents (configured and created through the API).
    List,
    /// Run an agent on one message, printing steps as they happen.
    Run {
        name: String,
        message: String,
        /// Print the run (steps included) as JSON at the end.
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(config: Config, cmd: AgentCommand) -> anyhow::Result<()> {
    let core = crate::server::start_core(&config).await?;
    match cmd {
        AgentCommand::List => {
            for (a, source) in core.agents.catalog.list().await? {
                println!("{:<24} {:<7} {}", a.name, source, a.description);
            }
            Ok(())
        }
        AgentCommand::Run {
            name,
            message,
            json,
        } => {
            let agent = core.agents.catalog.get(&name).await?;
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<StepRecord>();
            let printer = tokio::spawn(async move {
                while let Some(step) = rx.recv().await {
                    eprintln!("{}", describe(&step));
                }
            });
            let report = core
                .agents
                .runner
                .run(
                    RunRequest {
                        agent,
                        message,
                        // Not a possible key name, so no API key owns these runs.
                        subject: Some("@cli".into()),
                        channel: "cli".into(),
                        id: None,
                        history: Vec::new(),
                        answer_stream: None,
                    },
                    Some(tx),
                )
                .await
                .context("recording the run")?;
            let _ = printer.await;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else if let Some(answer) = &report.answer {
                println!("{answer}");
            }
            if report.status != RunStatus::Completed {
                bail!(
                    "run {} ended {}: {}",
                    report.id,
                    report.status.as_str(),
                    report.error.as_deref().unwrap_or("")
                );
            }
            Ok(())
        }
    }
}

/// One line per step, for people watching a run.
fn describe(step: &StepRecord) -> String {
    let d = &step.detail;
    let what = match step.kind {
        StepKind::Model => format!(
            "model ({} + {} tokens): {}",
            d["prompt_tokens"],
            d["completion_tokens"],
            d["output"].as_str().unwrap_or_default()
        ),
        StepKind::ToolCall => match d.get("error") {
            Some(e) => format!("tool {} failed: {}", d["tool"].as_str().unwrap_or("?"), e),
            None => format!(
                "tool {} {} -> {}",
                d["tool"].as_str().unwrap_or("?"),
                d["arguments"],
                d["output"]
            ),
        },
        StepKind::Policy => format!(
            "policy at {}: {} ({})",
            d["stage"].as_str().unwrap_or("?"),
            d["decision"].as_str().unwrap_or("?"),
            d["rules"]
        ),
        StepKind::Answer => format!("answer: {}", d["text"].as_str().unwrap_or_default()),
        other => format!("{}: {}", other.as_str(), d),
    };
    format!("[{} {:>7.1} ms] {what}", step.idx, step.duration_ms)
}
