//! `[plugins]` in `warden.toml`: where plugins come from, what they are
//! granted, and the limits that bound every call. This crate owns the
//! section and its validation; the binary only places it in the whole
//! configuration.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

use crate::engine::POOL_INSTANCES;
use crate::grant::{LimitPolicy, OperatorGrant};

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct PluginsConfig {
    /// Extra directories scanned at start-up; each subdirectory holding a
    /// `plugin.toml` is one plugin. Plugins installed through the API or
    /// `warden plugin install` live in `<data_dir>/plugins`.
    pub directories: Vec<PathBuf>,
    /// Model that plugins' `llm` calls use; defaults to the first model.
    pub llm_model: Option<String>,
    /// Largest component accepted by `POST /api/plugins`.
    pub max_upload_bytes: Option<usize>,
    pub limits: LimitPolicy,
    /// Operator grants by plugin id. A plugin without one is granted nothing.
    pub grants: BTreeMap<String, OperatorGrant>,
}

/// A `[plugins]` value out of range; the message names the key.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct InvalidPlugins(String);

impl PluginsConfig {
    /// Checks limits and grants; `max_tokens_limit` is the server's ceiling
    /// on any generation, which plugin llm calls may not exceed.
    pub fn validate(&self, max_tokens_limit: u32) -> Result<(), InvalidPlugins> {
        self.limits.validate(max_tokens_limit)?;
        if self.max_upload_bytes.is_some_and(|b| b > 1 << 30) {
            return Err(InvalidPlugins(
                "plugins.max_upload_bytes must be at most 1 GiB".into(),
            ));
        }
        for (id, g) in &self.grants {
            g.validate(max_tokens_limit)
                .map_err(|m| InvalidPlugins(format!("plugins.grants.\"{id}\": {m}")))?;
        }
        Ok(())
    }
}

impl LimitPolicy {
    pub fn validate(&self, max_tokens_limit: u32) -> Result<(), InvalidPlugins> {
        let bad = |m: &str| Err(InvalidPlugins(format!("plugins.limits: {m}")));
        if self.default_memory_mb == 0 || self.default_memory_mb > self.max_memory_mb {
            return bad("default_memory_mb must be between 1 and max_memory_mb");
        }
        if self.max_memory_mb > 4096 {
            return bad("max_memory_mb must be at most 4096");
        }
        if self.default_timeout_ms == 0 || self.default_timeout_ms > self.max_timeout_ms {
            return bad("default_timeout_ms must be between 1 and max_timeout_ms");
        }
        if self.max_timeout_ms > 3_600_000 {
            return bad("max_timeout_ms must be at most 3600000 (one hour)");
        }
        if self.default_max_output_bytes == 0
            || self.default_max_output_bytes > self.max_output_bytes
        {
            return bad("default_max_output_bytes must be between 1 and max_output_bytes");
        }
        if self.default_max_concurrency == 0 || self.default_max_concurrency > self.max_concurrency
        {
            return bad("default_max_concurrency must be between 1 and max_concurrency");
        }
        if self.max_concurrency > POOL_INSTANCES {
            return bad(&format!("max_concurrency must be at most {POOL_INSTANCES}"));
        }
        if self.default_llm_max_tokens == 0 || self.default_llm_max_tokens > max_tokens_limit {
            return bad("default_llm_max_tokens must be between 1 and server.max_tokens_limit");
        }
        Ok(())
    }
}

impl OperatorGrant {
    fn validate(&self, max_tokens_limit: u32) -> Result<(), &'static str> {
        if self.memory_mb.is_some_and(|m| m == 0 || m > 4096) {
            return Err("memory_mb must be between 1 and 4096");
        }
        if self.timeout_ms.is_some_and(|t| t == 0 || t > 3_600_000) {
            return Err("timeout_ms must be between 1 and 3600000");
        }
        if self
            .max_concurrency
            .is_some_and(|c| c == 0 || c > POOL_INSTANCES)
        {
            return Err("max_concurrency is out of range");
        }
        if self
            .llm_max_tokens
            .is_some_and(|t| t == 0 || t > max_tokens_limit)
        {
            return Err("llm_max_tokens must be between 1 and server.max_tokens_limit");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_range_limits_and_grants_are_refused_with_their_key() {
        for (toml, key) in [
            ("[limits]\ndefault_memory_mb = 1024", "plugins.limits"),
            ("[limits]\nmax_timeout_ms = 99999999999", "plugins.limits"),
            (
                "[grants.\"a.b\"]\nllm_max_tokens = 999999",
                "plugins.grants.\"a.b\"",
            ),
            (
                "[grants.\"a.b\"]\nmax_concurrency = 100000",
                "plugins.grants.\"a.b\"",
            ),
            ("max_upload_bytes = 99999999999", "plugins.max_upload_bytes"),
        ] {
            let c: PluginsConfig = toml::from_str(toml).unwrap();
            let err = c.validate(2048).unwrap_err().to_string();
            assert!(err.starts_with(key), "{toml}: {err}");
        }
        PluginsConfig::default().validate(2048).unwrap();
    }
}
