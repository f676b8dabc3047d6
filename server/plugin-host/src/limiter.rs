//! Per-call memory cap that also records the peak and whether the cap was
//! hit, so a failed grow can be reported as "memory limit" rather than as
//! whatever the guest did next (usually an abort).

use wasmtime::{ResourceLimiter, StoreLimits, StoreLimitsBuilder};

pub struct MemoryLimiter {
    inner: StoreLimits,
    limit: usize,
    /// Sum of all linear memories right now, and its maximum.
    current: usize,
    pub peak: usize,
    pub hit: bool,
}

impl MemoryLimiter {
    pub fn new(limit_bytes: u64) -> Self {
        let limit = usize::try_from(limit_bytes).unwrap_or(usize::MAX);
        Self {
            inner: StoreLimitsBuilder::new()
                .memory_size(limit)
                .instances(64)
                .tables(64)
                .memories(16)
                .table_elements(100_000)
                .trap_on_grow_failure(true)
                .build(),
            limit,
            current: 0,
            peak: 0,
            hit: false,
        }
    }

    pub fn limit(&self) -> usize {
        self.limit
    }
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let total = self.current - current.min(self.current) + desired;
        if total > self.limit {
            self.hit = true;
            return Err(wasmtime::Error::msg(format!(
                "memory limit of {} bytes exceeded",
                self.limit
            )));
        }
        let allowed = self.inner.memory_growing(current, desired, maximum);
        match &allowed {
            Ok(true) => {
                self.current = total;
                self.peak = self.peak.max(total);
            }
            _ => self.hit = true,
        }
        allowed
    }

    fn memory_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.hit = true;
        self.inner.memory_grow_failed(error)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.inner.table_growing(current, desired, maximum)
    }

    fn instances(&self) -> usize {
        self.inner.instances()
    }

    fn tables(&self) -> usize {
        self.inner.tables()
    }

    fn memories(&self) -> usize {
        self.inner.memories()
    }
}
