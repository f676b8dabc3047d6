//! The shared wasmtime [`Engine`]: component model, epoch interruption with
//! a 10 ms ticker thread, and compiled code cached on disk (wasmtime's
//! cache keys entries by a hash of the component bytes and the engine
//! settings, so a changed component or a new wasmtime never reuses stale
//! code).

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use wasmtime::{
    Cache, CacheConfig, Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig,
};

/// How often the epoch advances: the granularity of call deadlines.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Instances (and so memories and fiber stacks) the pooling allocator
/// keeps slots for: the most calls that can run at once across plugins.
pub const POOL_INSTANCES: u32 = 256;

/// Builds an engine. `cache_dir` must be absolute (wasmtime's rule); `None`
/// disables the on-disk cache. `fuel` builds the metered variant used for
/// plugins with a fuel budget. `max_memory_bytes` is the largest linear
/// memory any plugin may be granted; it sizes the pooling allocator's slots.
///
/// Instances come from a pool of pre-reserved slots (memories, tables,
/// fiber stacks) so a call does not pay for `mmap`/`munmap`; where the
/// address space cannot hold the pool, the engine falls back to allocating
/// on demand.
pub fn build(
    cache_dir: Option<&Path>,
    fuel: bool,
    max_memory_bytes: u64,
) -> anyhow::Result<Engine> {
    let mut config = base_config(cache_dir, fuel)?;
    let mut pool = PoolingAllocationConfig::new();
    let slot = usize::try_from(max_memory_bytes.next_multiple_of(64 << 10)).unwrap_or(usize::MAX);
    pool.total_component_instances(POOL_INSTANCES)
        .total_core_instances(POOL_INSTANCES * 8)
        .total_memories(POOL_INSTANCES * 2)
        .total_tables(POOL_INSTANCES * 4)
        .total_stacks(POOL_INSTANCES)
        .max_core_instances_per_component(32)
        .max_memories_per_component(4)
        .max_tables_per_component(16)
        .max_memory_size(slot)
        .linear_memory_keep_resident(0)
        .table_keep_resident(64 << 10)
        .decommit_batch_size(16);
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    let engine = match Engine::new(&config) {
        Ok(engine) => engine,
        Err(e) => {
            tracing::warn!("pooling allocator unavailable ({e}); allocating instances on demand");
            Engine::new(&base_config(cache_dir, fuel)?)
                .map_err(anyhow::Error::from)
                .context("creating the wasmtime engine")?
        }
    };
    start_ticker(&engine);
    Ok(engine)
}

fn base_config(cache_dir: Option<&Path>, fuel: bool) -> anyhow::Result<Config> {
    let mut config = Config::new();
    config
        .wasm_component_model(true)
        .epoch_interruption(true)
        .consume_fuel(fuel)
        .memory_init_cow(true)
        // Plugins use WASI 0.2 (no component-model async); skipping the
        // concurrent-execution machinery takes a large share off each call.
        .concurrency_support(false);
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
    Ok(config)
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
