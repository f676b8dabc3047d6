//! The `warden` command line.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

use crate::config::Config;

#[derive(Parser)]
#[command(
    name = "warden",
    version,
    about = "Self-hosted plugin and agent platform with governed LLM output"
)]
pub struct Cli {
    /// Configuration file (default: ./warden.toml if present).
    #[arg(long, global = true, env = "WARDEN_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run the server (fetches the default model first if it is missing).
    Serve,
    /// Manage local models.
    #[command(subcommand)]
    Model(ModelCommand),
    /// Manage API keys (works on the configured database directly).
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Plugins: scaffold, check, call, list, install.
    #[command(subcommand)]
    Plugin(crate::plugin_cli::PluginCommand),
    /// Agents: list them, run one on a message.
    #[command(subcommand)]
    Agent(crate::agent_cli::AgentCommand),
    /// Governance policies: run their tests, evaluate content.
    #[command(subcommand)]
    Policy(crate::governance_cli::PolicyCommand),
    /// The audit log: verify the hash chain, export records.
    #[command(subcommand)]
    Audit(crate::governance_cli::AuditCommand),
    /// Benchmarks: `chat` (any OpenAI-compatible server), `plugins`, `governance`, `agents`.
    #[command(subcommand)]
    Bench(BenchCommand),
}

#[derive(Subcommand)]
pub enum BenchCommand {
    /// Measure chat completions on any OpenAI-compatible server.
    Chat(crate::bench::BenchArgs),
    /// Measure plugin call latency and load time in-process.
    Plugins(crate::bench_plugins::PluginBenchArgs),
    /// Measure policy evaluation latency and audit write throughput.
    Governance(crate::bench_governance::GovernanceBenchArgs),
    /// Measure agent overhead per step (and, with --e2e, the document scenario).
    Agents(crate::bench_agents::AgentBenchArgs),
}

#[derive(Subcommand)]
pub enum ModelCommand {
    /// Download, verify and install the default model.
    Fetch,
    /// Print the path of the installed default model.
    Path,
    /// Re-quantise a GGUF file (e.g. to q8_0 or q4_0).
    Convert(ConvertArgs),
}

#[derive(Args)]
pub struct ConvertArgs {
    pub input: PathBuf,
    pub output: PathBuf,
    /// Target type: q8_0 or q4_0.
    #[arg(long, default_value = "q8_0")]
    pub dtype: String,
}

#[derive(Subcommand)]
pub enum KeysCommand {
    /// Create a key and print it once.
    Create {
        #[arg(long)]
        name: String,
        #[arg(long, default_value = "user")]
        role: String,
    },
    /// List keys (never their values).
    List,
    /// Revoke a key by name.
    Revoke { name: String },
}

pub fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Command::Bench(BenchCommand::Chat(args)) = cli.command {
        return runtime()?.block_on(crate::bench::run(args));
    }
    let config = Config::load(cli.config.as_deref()).context("loading configuration")?;
    match cli.command {
        Command::Serve => runtime()?.block_on(crate::server::serve(config)),
        Command::Model(ModelCommand::Fetch) => {
            let path = crate::model::ensure_default_model(&config)?;
            println!("{}", path.display());
            Ok(())
        }
        Command::Model(ModelCommand::Path) => {
            let path = crate::model::default_model_path(&config)?;
            println!("{}", path.display());
            Ok(())
        }
        Command::Model(ModelCommand::Convert(a)) => {
            let dtype = crate::model::convert::TargetType::parse(&a.dtype)?;
            crate::model::convert::requantize(&a.input, &a.output, dtype)
                .with_context(|| format!("converting {}", a.input.display()))?;
            println!("{}", a.output.display());
            Ok(())
        }
        Command::Keys(cmd) => runtime()?.block_on(keys_command(&config, cmd)),
        Command::Plugin(cmd) => runtime()?.block_on(crate::plugin_cli::run(config, cmd)),
        Command::Agent(cmd) => runtime()?.block_on(crate::agent_cli::run(config, cmd)),
        Command::Policy(cmd) => runtime()?.block_on(crate::governance_cli::policy(config, cmd)),
        Command::Audit(cmd) => runtime()?.block_on(crate::governance_cli::audit(config, cmd)),
        Command::Bench(BenchCommand::Agents(args)) => {
            runtime()?.block_on(crate::bench_agents::run(config, args))
        }
        Command::Bench(BenchCommand::Governance(args)) => {
            runtime()?.block_on(crate::bench_governance::run(config, args))
        }
        Command::Bench(BenchCommand::Plugins(args)) => {
            runtime()?.block_on(crate::bench_plugins::run(config, args))
        }
        Command::Bench(BenchCommand::Chat(_)) => unreachable!("handled above"),
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

async fn keys_command(config: &Config, cmd: KeysCommand) -> anyhow::Result<()> {
    let db = crate::db::connect(&config.database_url())
        .await
        .context("opening the database")?;
    match cmd {
        KeysCommand::Create { name, role } => {
            let role = role.parse()?;
            let key = crate::keys::create(&db, &name, role).await?;
            println!("{key}");
        }
        KeysCommand::List => {
            println!(
                "{:<24} {:<6} {:<10} {:<25} STATE",
                "NAME", "ROLE", "PREFIX", "CREATED"
            );
            for k in crate::keys::list(&db).await? {
                println!(
                    "{:<24} {:<6} {:<10} {:<25} {}",
                    k.name,
                    k.role,
                    k.prefix,
                    k.created_at.to_rfc3339(),
                    if k.revoked { "revoked" } else { "active" }
                );
            }
        }
        KeysCommand::Revoke { name } => {
            if !crate::keys::revoke(&db, &name).await? {
                anyhow::bail!("no key named {name:?}");
            }
            println!("revoked {name}");
        }
    }
    Ok(())
}
