//! `warden policy test|eval`: run policy files' inline tests, evaluate content.

use std::collections::HashMap;
use std::io::Read as _;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use warden_governance::governor::evaluate_judged;
use warden_governance::judge::{Judge, JudgeCache};
use warden_governance::store::PolicySource;
use warden_policy::bundle::Bundle;
use warden_policy::{EvalInput, Stage, Subject};

use crate::config::Config;

#[derive(Subcommand)]
pub enum PolicyCommand {
    /// Run every policy file's inline tests; exits non-zero on any failure.
    Test {
        /// Policy directory (default: the configured one, else ./policies).
        dir: Option<PathBuf>,
    },
    /// Evaluate content (a file, or stdin with `-`) and print the decision as JSON.
    Eval(EvalArgs),
}

#[derive(Args)]
pub struct EvalArgs {
    #[arg(long)]
    pub stage: String,
    #[arg(long)]
    pub agent: Option<String>,
    #[arg(long)]
    pub plugin: Option<String>,
    #[arg(long)]
    pub tool: Option<String>,
    #[arg(long)]
    pub channel: Option<String>,
    /// Declared effect of the tool (pure, reads, writes, external).
    #[arg(long)]
    pub effect: Option<String>,
    /// Policy directory (default: the configured one, else ./policies).
    #[arg(long)]
    pub policies: Option<PathBuf>,
    /// Answer `llm_judge` rules with the configured model (loads it).
    /// Without it, judge rules count as failed and follow their `on_error`.
    #[arg(long)]
    pub judge: bool,
    /// File to evaluate; `-` or nothing reads stdin.
    pub file: Option<PathBuf>,
}

pub async fn run(config: Config, cmd: PolicyCommand) -> anyhow::Result<()> {
    match cmd {
        PolicyCommand::Test { dir } => {
            let dir = dir.map_or_else(|| source_dir(&config), Ok)?;
            let bundle = Bundle::parse_dir(&dir)?;
            let report = bundle.run_tests();
            println!("{report}");
            println!(
                "bundle {} ({} policies, {} files)",
                &bundle.hash[..12],
                bundle.policies.len(),
                {
                    let mut f = bundle.policy_files.clone();
                    f.dedup();
                    f.len()
                }
            );
            if !report.failures.is_empty() {
                bail!("{} policy test(s) failed", report.failures.len());
            }
            Ok(())
        }
        PolicyCommand::Eval(args) => eval(config, args).await,
    }
}

fn source_dir(config: &Config) -> anyhow::Result<PathBuf> {
    match config.policies.source() {
        PolicySource::Dir(d) => Ok(d),
        PolicySource::Defaults => {
            bail!("no policy directory: pass one, set policies.dir, or run where ./policies exists")
        }
    }
}

async fn eval(config: Config, args: EvalArgs) -> anyhow::Result<()> {
    let stage = Stage::parse(&args.stage).with_context(|| {
        format!(
            "--stage {:?}: use input, llm_output, tool_call, tool_result or output",
            args.stage
        )
    })?;
    let bundle = match args.policies {
        Some(d) => Bundle::load_dir(&d),
        None => match config.policies.source() {
            PolicySource::Dir(d) => Bundle::load_dir(&d),
            PolicySource::Defaults => Bundle::defaults(),
        },
    }?;
    let mut text = String::new();
    match args.file.as_deref() {
        None => std::io::stdin().read_to_string(&mut text),
        Some(p) if p.as_os_str() == "-" => std::io::stdin().read_to_string(&mut text),
        Some(p) => std::fs::File::open(p)
            .with_context(|| format!("opening {}", p.display()))?
            .read_to_string(&mut text),
    }
    .context("reading the content (it must be UTF-8 text)")?;
    let subject = Subject {
        key: None,
        agent: args.agent,
        plugin: args.plugin,
        tool: args.tool,
        channel: args.channel,
        effect: args.effect,
    };
    let input = EvalInput {
        stage,
        text: &text,
        subject: &subject,
    };
    // The model loads only when asked and when a judge rule is reached.
    let needs_judge = !bundle
        .evaluate(input, &HashMap::new(), false)
        .pending
        .is_empty();
    let judge = if args.judge && needs_judge {
        let registry = Arc::new(crate::models::load(&config).await?);
        Some(crate::adapters::RegistryJudge {
            registry,
            model: config.judge_model(),
        })
    } else {
        None
    };
    let judge_ref = judge.as_ref().map(|j| j as &dyn Judge);
    let decision = evaluate_judged(&bundle, input, judge_ref, &JudgeCache::new(16)).await;
    println!("{}", serde_json::to_string_pretty(&decision)?);
    Ok(())
}
