//! `[policies]` in `warden.toml`: where governance policies come from and
//! how they run. This crate owns the section and its validation; the binary
//! only places it in the whole configuration.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::store::PolicySource;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PoliciesConfig {
    /// Directory of `*.yaml` policy files, watched for changes. Default:
    /// `./policies` when it exists, else the policies built into the binary.
    pub dir: Option<PathBuf>,
    /// How often the directory is checked for changes.
    pub reload_interval_ms: u64,
    /// Model that answers `llm_judge` rules; defaults to the first model.
    pub judge_model: Option<String>,
    /// How far back (bytes) a streamed answer's trailing spaced number is
    /// held for the output check.
    pub stream_hold_back_bytes: usize,
}

impl Default for PoliciesConfig {
    fn default() -> Self {
        Self {
            dir: None,
            reload_interval_ms: 1000,
            judge_model: None,
            stream_hold_back_bytes: 64,
        }
    }
}

/// A `[policies]` value out of range; the message names the key.
#[derive(Debug, thiserror::Error)]
#[error("policies.{0}")]
pub struct InvalidPolicies(&'static str);

impl PoliciesConfig {
    pub fn validate(&self) -> Result<(), InvalidPolicies> {
        if !(50..=3_600_000).contains(&self.reload_interval_ms) {
            return Err(InvalidPolicies(
                "reload_interval_ms must be between 50 and 3600000",
            ));
        }
        if !(48..=65_536).contains(&self.stream_hold_back_bytes) {
            return Err(InvalidPolicies(
                "stream_hold_back_bytes must be between 48 (a spaced IBAN) and 65536",
            ));
        }
        Ok(())
    }

    /// The policy source: the configured directory, else `./policies` if
    /// present, else the built-in defaults.
    pub fn source(&self) -> PolicySource {
        match &self.dir {
            Some(d) => PolicySource::Dir(d.clone()),
            None if Path::new("policies").is_dir() => PolicySource::Dir(PathBuf::from("policies")),
            None => PolicySource::Defaults,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_range_settings_name_their_key() {
        for (config, key) in [
            (
                PoliciesConfig {
                    reload_interval_ms: 10,
                    ..Default::default()
                },
                "reload_interval_ms",
            ),
            (
                PoliciesConfig {
                    stream_hold_back_bytes: 8,
                    ..Default::default()
                },
                "stream_hold_back_bytes",
            ),
        ] {
            let err = config.validate().unwrap_err().to_string();
            assert!(err.starts_with(&format!("policies.{key}")), "{err}");
        }
        PoliciesConfig::default().validate().unwrap();
    }
}
