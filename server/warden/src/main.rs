//! `warden`: the server binary and its command line. See ARCHITECTURE.md.
//!
//! The capabilities live in library crates under `server/` (`warden-llm*`,
//! `warden-db`, `warden-policy`, `warden-governance`, `warden-plugin-host`,
//! `warden-agents`); this crate assembles them: the configuration
//! ([`config`]), the wiring ([`server`], [`models`], [`adapters`]), the HTTP
//! surface ([`api`]), API keys ([`keys`]), metrics and the CLI ([`cli`]).

mod adapters;
mod api;
mod channels;
mod cli;
mod config;
mod console;
mod keys;
mod metrics;
mod models;
mod server;
mod telemetry;

/// See the workspace manifest: freed KV buffers go back to the system.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    telemetry::init();
    match cli::run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // The CLI's one report of failure; everything else returns errors.
            #[allow(clippy::print_stderr)]
            {
                eprintln!("error: {e:#}");
            }
            std::process::ExitCode::FAILURE
        }
    }
}
