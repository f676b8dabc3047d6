//! Logging set-up: `RUST_LOG`-style filtering via `WARDEN_LOG`, to stderr.

use tracing_subscriber::EnvFilter;

pub fn init() {
    let filter = EnvFilter::try_from_env("WARDEN_LOG").unwrap_or_else(|_| {
        EnvFilter::new(
            "info,mistralrs_core=warn,mistralrs_quant=warn,sqlx=warn,sea_orm_migration=warn",
        )
    });
    // A second init (e.g. in tests) keeps the first subscriber.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
