//! The mistral.rs engine in a renewable slot, so that its prefix cache stays
//! bounded.
//!
//! mistral.rs keeps the KV cache of every finished sequence for prefix
//! reuse, and on the CPU it never evicts one: `evict_caches` only counts
//! caches that live on an accelerator (upstream issue #1961), so resident
//! memory grows with every request (each entry keeps KV buffers rounded up
//! to 512 tokens, ~46 KB per token for SmolLM2-135M in F32, and may keep a
//! whole batch's buffer alive) and lookups scan ever more entries. There is
//! no public call that clears it. The workaround through the public API:
//! after `max_cached` finished sequences, new requests wait, the ones in
//! flight finish, and the engine is rebuilt on the same loaded pipeline
//! (the weights stay; a rebuild takes milliseconds), which drops the old
//! engine and its cache. Runs of the same agent warm the new cache again
//! from their first step.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use mistralrs::Model;
use mistralrs::core::{MistralRsBuilder, Pipeline};
use mistralrs::{DefaultSchedulerMethod, SchedulerConfig};
use tokio::sync::{Mutex, OwnedRwLockReadGuard};
use warden_llm::EngineStats;

/// What a rebuild needs: the loaded pipeline and the engine's settings.
pub(crate) struct Rebuild {
    pub pipeline: Arc<Mutex<dyn Pipeline + Send + Sync>>,
    pub id: String,
    /// Finished sequences kept before the cache is renewed.
    pub max_cached: u64,
}

pub(crate) struct Engine {
    current: RwLock<Arc<Model>>,
    /// Shared by every request while it runs; taken alone to renew.
    gate: Arc<tokio::sync::RwLock<()>>,
    rebuild: Option<Rebuild>,
    /// Finished sequences since the current engine was built: the entries
    /// its prefix cache holds.
    cached: AtomicU64,
    renewing: AtomicBool,
    renewals: AtomicU64,
    /// Prefix-cache counts of the engines renewed away.
    past_hits: AtomicU64,
    past_lookups: AtomicU64,
}

/// A request's hold on the engine: the model to send to, and the gate
/// that keeps a renewal from starting under it. Dropping it counts the
/// sequence as finished, whether it completed, failed or was cancelled
/// (its stream dropped), since the engine caches it either way.
pub(crate) struct Lease {
    pub model: Arc<Model>,
    engine: Arc<Engine>,
    _gate: OwnedRwLockReadGuard<()>,
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.engine.finished();
    }
}

impl Engine {
    pub(crate) fn new(model: Model, rebuild: Option<Rebuild>) -> Arc<Self> {
        Arc::new(Self {
            current: RwLock::new(Arc::new(model)),
            gate: Arc::default(),
            rebuild,
            cached: AtomicU64::new(0),
            renewing: AtomicBool::new(false),
            renewals: AtomicU64::new(0),
            past_hits: AtomicU64::new(0),
            past_lookups: AtomicU64::new(0),
        })
    }

    /// The current model, for work that is not a sequence (tokenizing).
    pub(crate) fn model(&self) -> Arc<Model> {
        // A poisoned lock only means a panic elsewhere; the Arc is intact.
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Waits while a renewal runs, then holds the engine for one request.
    pub(crate) async fn lease(self: &Arc<Self>) -> Lease {
        let gate = self.gate.clone().read_owned().await;
        Lease {
            model: self.model(),
            engine: self.clone(),
            _gate: gate,
        }
    }

    /// Counts a finished sequence; starts a renewal once the cache holds
    /// `max_cached` of them (the renewal waits for the lease being dropped).
    fn finished(self: &Arc<Self>) {
        let cached = self.cached.fetch_add(1, Ordering::Relaxed) + 1;
        let Some(rebuild) = &self.rebuild else {
            return;
        };
        if cached < rebuild.max_cached || self.renewing.swap(true, Ordering::AcqRel) {
            return;
        }
        // No runtime means the server is shutting down: nothing to renew.
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            self.renewing.store(false, Ordering::Release);
            return;
        };
        let engine = self.clone();
        runtime.spawn(async move {
            engine.renew().await;
            engine.renewing.store(false, Ordering::Release);
        });
    }

    async fn renew(&self) {
        let Some(rebuild) = &self.rebuild else {
            return;
        };
        // Writers are served in turn: new requests queue behind this, and
        // it is granted once the requests in flight are done.
        let _alone = self.gate.write().await;
        // The old engine may still be finishing its last step (it answers
        // before it stores the sequence): taking the pipeline waits for it.
        drop(rebuild.pipeline.lock().await);
        let (hits, lookups) = prefix_stats(&self.model());
        let fresh = Arc::new(build(rebuild).await);
        let old = std::mem::replace(
            &mut *self.current.write().unwrap_or_else(|e| e.into_inner()),
            fresh,
        );
        // Dropping the last handle terminates the old engine's thread, and
        // its prefix cache with it.
        drop(old);
        self.past_hits.fetch_add(hits, Ordering::Relaxed);
        self.past_lookups.fetch_add(lookups, Ordering::Relaxed);
        self.cached.store(0, Ordering::Relaxed);
        self.renewals.fetch_add(1, Ordering::Relaxed);
        tracing::info!(model = %rebuild.id, "prefix cache renewed");
    }

    pub(crate) fn stats(&self) -> EngineStats {
        let (hits, lookups) = prefix_stats(&self.model());
        EngineStats {
            prefix_cache_hits: self.past_hits.load(Ordering::Relaxed) + hits,
            prefix_cache_lookups: self.past_lookups.load(Ordering::Relaxed) + lookups,
            prefix_cache_sequences: self.cached.load(Ordering::Relaxed),
            prefix_cache_renewals: self.renewals.load(Ordering::Relaxed),
        }
    }
}

/// mistral.rs's own prefix-cache counts: sequences that reused a cached
/// prefix (of any length, a shared chat-template header included), and all
/// sequences.
fn prefix_stats(model: &Model) -> (u64, u64) {
    match model.inner().get_logger(None) {
        Ok(logger) => {
            let (hits, total) = logger.prefix_cache_stats();
            (hits as u64, total as u64)
        }
        Err(_) => (0, 0),
    }
}

/// An engine over the loaded pipeline.
pub(crate) async fn build(rebuild: &Rebuild) -> Model {
    let scheduler = SchedulerConfig::DefaultScheduler {
        method: DefaultSchedulerMethod::Fixed(
            std::num::NonZeroUsize::new(crate::MAX_BATCH).unwrap_or(std::num::NonZeroUsize::MIN),
        ),
    };
    let engine = MistralRsBuilder::new(rebuild.pipeline.clone(), scheduler, false, None)
        .with_model_id(rebuild.id.clone())
        .with_prefix_cache_n(crate::MAX_BATCH)
        .with_no_prefix_cache(rebuild.max_cached == 0)
        .build()
        .await;
    Model::new(engine)
}
