//! `[channels.delivery]`: how the outbox sender retries.

use std::time::Duration;

use serde::Deserialize;

/// The longest `Retry-After` honoured.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(900);

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DeliveryConfig {
    /// Tries per message before it is marked `failed`.
    pub max_attempts: u32,
    /// First retry delay; doubled on each further try.
    pub backoff_ms: u64,
    /// Upper bound of Warden's own retry delay.
    pub max_backoff_ms: u64,
    /// Messages delivered at once (different threads; one thread's
    /// messages always go in order).
    pub concurrency: usize,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        Self {
            max_attempts: 6,
            backoff_ms: 500,
            max_backoff_ms: 60_000,
            concurrency: 8,
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("invalid [channels.delivery]: {0}")]
pub struct InvalidDelivery(&'static str);

impl DeliveryConfig {
    pub fn validate(&self) -> Result<(), InvalidDelivery> {
        if self.max_attempts == 0 || self.max_attempts > 100 {
            return Err(InvalidDelivery("max_attempts must be 1..=100"));
        }
        if self.backoff_ms == 0 || self.backoff_ms > self.max_backoff_ms {
            return Err(InvalidDelivery(
                "backoff_ms must be at least 1 and at most max_backoff_ms",
            ));
        }
        if self.concurrency == 0 || self.concurrency > 256 {
            return Err(InvalidDelivery("concurrency must be 1..=256"));
        }
        Ok(())
    }

    /// The delay before try `attempt + 1`, after `attempt` failed tries;
    /// a peer's `Retry-After` wins when it is longer (up to 15 minutes: a
    /// peer asking for more is treated as asking for that).
    pub fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        let exp = self
            .backoff_ms
            .saturating_mul(1u64 << attempt.saturating_sub(1).min(20));
        let own = Duration::from_millis(exp.min(self.max_backoff_ms));
        retry_after.map_or(own, |r| r.min(MAX_RETRY_AFTER).max(own))
    }
}
