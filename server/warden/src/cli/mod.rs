//! The `warden` command line: one module per verb. Only this module tree
//! prints (`clippy::print_stdout`/`print_stderr` are denied elsewhere); the
//! rest of the binary returns values and errors.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod agent;
mod audit;
mod bench;
mod keys;
mod model;
mod plugin;
mod plugin_template;
mod policy;

use std::io::Write as _;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::config::Config;
use crate::server::Notice;

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
    Model(model::ModelCommand),
    /// Manage API keys (works on the configured database directly).
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    /// Plugins: scaffold, check, call, list, install.
    #[command(subcommand)]
    Plugin(plugin::PluginCommand),
    /// Agents: list them, run one on a message.
    #[command(subcommand)]
    Agent(agent::AgentCommand),
    /// Governance policies: run their tests, evaluate content.
    #[command(subcommand)]
    Policy(policy::PolicyCommand),
    /// The audit log: verify the hash chain, export records.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// Benchmarks: `chat` (any OpenAI-compatible server), `plugins`, `governance`, `agents`.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
}

/// Parses the command line and runs the verb.
pub fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // `bench chat` measures any server and needs no configuration.
    if let Command::Bench(b) = cli.command {
        let config = if b.needs_config() {
            Some(load_config(&cli.config)?)
        } else {
            None
        };
        return runtime()?.block_on(b.run(config));
    }
    let config = load_config(&cli.config)?;
    match cli.command {
        Command::Serve => runtime()?.block_on(crate::server::serve(config, announce)),
        Command::Model(cmd) => model::run(&config, cmd),
        Command::Keys(cmd) => runtime()?.block_on(keys::run(&config, cmd)),
        Command::Plugin(cmd) => runtime()?.block_on(plugin::run(config, cmd)),
        Command::Agent(cmd) => runtime()?.block_on(agent::run(config, cmd)),
        Command::Policy(cmd) => runtime()?.block_on(policy::run(config, cmd)),
        Command::Audit(cmd) => runtime()?.block_on(audit::run(config, cmd)),
        Command::Bench(_) => unreachable!("handled above"),
    }
}

fn load_config(path: &Option<PathBuf>) -> anyhow::Result<Config> {
    Config::load(path.as_deref()).context("loading configuration")
}

/// What `warden serve` says on stdout. The admin key goes to stdout only,
/// never through the log.
fn announce(notice: Notice) {
    match notice {
        Notice::AdminKey(key) => {
            println!("created admin API key (shown once, store it now): {key}");
        }
        Notice::Listening(addr) => {
            println!("warden listening on http://{addr}");
        }
    }
    let _ = std::io::stdout().flush();
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}
