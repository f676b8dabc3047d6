//! The shared wasmtime [`Engine`]: component model, epoch interruption with
//! a 10 ms ticker thread, and compiled code cached on disk (wasmtime's
//! cache keys entries by a hash of the component bytes and the engine
//! settings, so a changed component or a new wasmtime never reuses stale
//! code).

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use wasmtime::{Cache, CacheConfig, Config, Engine};

/// How often the epoch advances: the granularity of call deadlines.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Builds an engine. `cache_dir` must be absolute (wasmtime's rule); `None`
/// disables the on-disk cache. `fuel` builds the metered variant used for
/// plugins with a fuel budget.
pub fn build(cache_dir: Option<&Path>, fuel: bool) -> anyhow::Result<Engine> {
    let mut config = Config::new();
    config
        .wasm_component_model(true)
        .epoch_interruption(true)
        .consume_fuel(fuel)
        .memory_init_cow(true);
    if let Some(dir) = cache_dir {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating plugin cache {}", dir.display()))?;
        let dir = std::fs::canonicalize(dir)
            .with_context(|| format!("resolving plugin cache {}", dir.display()))?;
        let mut cache = CacheConfig::new();
        cache.with_directory(dir);
        config.cache(Some(
            Cache::new(cache)
                .map_err(anyhow::Error::from)
                .context("opening the compiled-plugin cache")?,
        ));
    }
    let engine = Engine::new(&config)
        .map_err(anyhow::Error::from)
        .context("creating the wasmtime engine")?;
    start_ticker(&engine);
    Ok(engine)
}

/// Advances the epoch every [`EPOCH_TICK`] until the engine is dropped.
fn start_ticker(engine: &Engine) {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("wasm-epoch".into())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(EPOCH_TICK);
            }
        })
        .expect("spawning the epoch ticker thread");
}
