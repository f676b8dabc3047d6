//! `warden.toml` and its `WARDEN_*` environment overrides.
//!
//! Configuration is read once at start-up into [`Config`]; everything else
//! receives the parts it needs. Unknown keys are errors so that a typo never
//! silently falls back to a default.
//!
//! Each capability crate owns its section and validates it (`[plugins]` is
//! `warden_plugin_host::PluginsConfig`, `[policies]` is
//! `warden_governance::PoliciesConfig`, `[[agents]]` are
//! `warden_agents::AgentSpec`, `[[channels.slack]]` is
//! `warden_slack::config::SlackConfig`, `[channels.delivery]` is
//! `warden_channels::DeliveryConfig`); this module assembles them and owns only
//! `[server]` and `[[models]]`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use thiserror::Error;
use warden_agents::AgentSpec;
use warden_governance::PoliciesConfig;
use warden_llm_embedded::EngineDType;
use warden_plugin_host::PluginsConfig;

/// Id under which the fetched default model is served.
pub const DEFAULT_MODEL_ID: &str = "smollm2-135m-instruct";

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config {path}: {source}")]
    Parse {
        path: PathBuf,
        source: toml::de::Error,
    },
    #[error("invalid value for {var}: {message}")]
    Env { var: &'static str, message: String },
    #[error("invalid config: {0}")]
    Invalid(String),
    #[error("invalid config: {0}")]
    Plugins(#[from] warden_plugin_host::config::InvalidPlugins),
    #[error("invalid config: {0}")]
    Policies(#[from] warden_governance::config::InvalidPolicies),
    #[error("invalid config: {0}")]
    Agent(#[from] warden_agents::spec::SpecError),
    #[error("invalid config: {0}")]
    Slack(#[from] warden_slack::config::InvalidSlack),
    #[error("invalid config: {0}")]
    Delivery(#[from] warden_channels::config::InvalidDelivery),
    #[error("invalid config: {0}")]
    Email(#[from] warden_email::config::InvalidEmail),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[derive(Default)]
pub struct Config {
    pub server: ServerConfig,
    /// Models served on `/v1`. Empty means "the embedded default model".
    pub models: Vec<ModelConfig>,
    pub plugins: PluginsConfig,
    pub policies: PoliciesConfig,
    /// `[[agents]]`; none means the three shipped agents.
    pub agents: Vec<AgentSpec>,
    pub channels: ChannelsConfig,
    pub console: crate::console::ConsoleConfig,
}

/// `[channels]`: the Slack apps (and, next, mailboxes) agents answer on,
/// and how their replies are delivered.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ChannelsConfig {
    pub slack: Vec<warden_slack::config::SlackConfig>,
    pub email: Vec<warden_email::config::EmailConfig>,
    pub delivery: warden_channels::DeliveryConfig,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    /// Where models, the SQLite database and other state live.
    pub data_dir: PathBuf,
    /// `sqlite://...` or `postgres://...`; defaults to `warden.db` in `data_dir`.
    pub database_url: Option<String>,
    /// Largest accepted request body.
    pub max_body_bytes: usize,
    /// `max_tokens` used when a request does not give one.
    pub default_max_tokens: u32,
    /// Upper bound a request may ask for.
    pub max_tokens_limit: u32,
    /// Seconds in-flight requests get to finish after SIGTERM.
    pub shutdown_grace_secs: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: default_data_dir(),
            database_url: None,
            max_body_bytes: 1024 * 1024,
            default_max_tokens: 256,
            max_tokens_limit: 2048,
            shutdown_grace_secs: 30,
        }
    }
}

fn default_prefix_cache_sequences() -> u64 {
    warden_llm_embedded::DEFAULT_PREFIX_CACHE_SEQUENCES
}

/// One model exposed on `/v1/models`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, tag = "backend", rename_all = "lowercase")]
pub enum ModelConfig {
    /// Runs in-process with mistral.rs.
    Embedded {
        id: String,
        /// A `.gguf` file or a Hugging Face format directory. Absent means the
        /// fetched default model.
        path: Option<PathBuf>,
        /// Activation precision: "f32" (default) or "auto" (mistral.rs's choice).
        #[serde(default)]
        dtype: EngineDType,
        /// Finished sequences whose KV cache is kept for prefix reuse before
        /// the cache is renewed (mistral.rs does not evict on the CPU); 0
        /// turns prefix caching off. ~24 MB each for the default model.
        #[serde(default = "default_prefix_cache_sequences")]
        prefix_cache_sequences: u64,
    },
    /// Any OpenAI-compatible server.
    Openai {
        id: String,
        base_url: String,
        /// Name of the environment variable holding the upstream API key.
        api_key_env: Option<String>,
        /// Model name upstream; defaults to `id`.
        upstream_model: Option<String>,
        #[serde(default = "default_remote_timeout")]
        timeout_secs: u64,
    },
}

fn default_remote_timeout() -> u64 {
    300
}

impl ModelConfig {
    pub fn id(&self) -> &str {
        match self {
            ModelConfig::Embedded { id, .. } | ModelConfig::Openai { id, .. } => id,
        }
    }
}

/// `$WARDEN_DATA_DIR`, else `$XDG_DATA_HOME/warden`, else `~/.local/share/warden`,
/// else `./data`.
pub fn default_data_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(dir).join("warden");
    }
    if let Some(home) = std::env::var_os("HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(home).join(".local/share/warden");
    }
    PathBuf::from("data")
}

impl Config {
    /// Reads `path` if given (it must exist), else `./warden.toml` if present,
    /// else defaults; then applies `WARDEN_*` overrides.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let mut config = match path {
            Some(p) => Self::from_file(p)?,
            None if Path::new("warden.toml").exists() => Self::from_file(Path::new("warden.toml"))?,
            None => Config::default(),
        };
        config.apply_env(|k| std::env::var(k).ok())?;
        config.validate()?;
        Ok(config)
    }

    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_toml(&text).map_err(|source| ConfigError::Parse {
            path: path.to_owned(),
            source,
        })
    }

    pub fn from_toml(text: &str) -> Result<Config, toml::de::Error> {
        toml::from_str(text)
    }

    /// Applies the `WARDEN_*` variables (and `DATABASE_URL`) read through `get`.
    pub fn apply_env(&mut self, get: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        fn parse<T: std::str::FromStr>(var: &'static str, v: &str) -> Result<T, ConfigError>
        where
            T::Err: std::fmt::Display,
        {
            v.trim().parse().map_err(|e: T::Err| ConfigError::Env {
                var,
                message: e.to_string(),
            })
        }
        let s = &mut self.server;
        if let Some(v) = get("WARDEN_LISTEN") {
            s.listen = parse("WARDEN_LISTEN", &v)?;
        }
        if let Some(v) = get("WARDEN_DATA_DIR").filter(|v| !v.is_empty()) {
            s.data_dir = PathBuf::from(v);
        }
        if let Some(v) = get("WARDEN_DATABASE_URL").or_else(|| get("DATABASE_URL")) {
            s.database_url = Some(v).filter(|v| !v.is_empty());
        }
        if let Some(v) = get("WARDEN_MAX_BODY_BYTES") {
            s.max_body_bytes = parse("WARDEN_MAX_BODY_BYTES", &v)?;
        }
        if let Some(v) = get("WARDEN_DEFAULT_MAX_TOKENS") {
            s.default_max_tokens = parse("WARDEN_DEFAULT_MAX_TOKENS", &v)?;
        }
        if let Some(v) = get("WARDEN_MAX_TOKENS_LIMIT") {
            s.max_tokens_limit = parse("WARDEN_MAX_TOKENS_LIMIT", &v)?;
        }
        if let Some(v) = get("WARDEN_POLICIES_DIR").filter(|v| !v.is_empty()) {
            self.policies.dir = Some(PathBuf::from(v));
        }
        if let Some(v) = get("WARDEN_PLUGIN_DIRS").filter(|v| !v.is_empty()) {
            self.plugins.directories = std::env::split_paths(&v).collect();
        }
        if let Some(v) = get("WARDEN_MODEL_PATH").filter(|v| !v.is_empty()) {
            // Points the default embedded model at another file.
            let path = Some(PathBuf::from(v));
            if self.models.is_empty() {
                self.models.push(ModelConfig::Embedded {
                    id: DEFAULT_MODEL_ID.to_owned(),
                    path,
                    dtype: Default::default(),
                    prefix_cache_sequences: default_prefix_cache_sequences(),
                });
            } else if let Some(ModelConfig::Embedded { path: p, .. }) =
                self.models.iter_mut().find(|m| m.id() == DEFAULT_MODEL_ID)
            {
                *p = path;
            }
        }
        Ok(())
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let s = &self.server;
        if s.max_body_bytes < 1024 {
            return Err(ConfigError::Invalid(
                "server.max_body_bytes must be at least 1024".into(),
            ));
        }
        if s.default_max_tokens == 0 || s.default_max_tokens > s.max_tokens_limit {
            return Err(ConfigError::Invalid(
                "server.default_max_tokens must be between 1 and server.max_tokens_limit".into(),
            ));
        }
        self.plugins.validate(s.max_tokens_limit)?;
        self.policies.validate()?;
        AgentSpec::validate_all(&self.agents)?;
        warden_slack::config::SlackConfig::validate_all(&self.channels.slack)?;
        warden_email::config::EmailConfig::validate_all(&self.channels.email)?;
        self.channels.delivery.validate()?;
        let mut seen = std::collections::HashSet::new();
        for m in &self.models {
            let id = m.id();
            if id.is_empty() || id.starts_with("agent:") {
                return Err(ConfigError::Invalid(format!(
                    "model id {id:?} is not allowed"
                )));
            }
            if !seen.insert(id) {
                return Err(ConfigError::Invalid(format!(
                    "model id {id:?} is declared twice"
                )));
            }
            if let ModelConfig::Openai { base_url, .. } = m
                && !(base_url.starts_with("http://") || base_url.starts_with("https://"))
            {
                return Err(ConfigError::Invalid(format!(
                    "model {id:?}: base_url must start with http:// or https://"
                )));
            }
        }
        Ok(())
    }

    /// The first configured model's id (the default for plugins, judges
    /// and agents that name none).
    pub fn first_model_id(&self) -> String {
        self.effective_models()
            .first()
            .map(|m| m.id().to_owned())
            .unwrap_or_default()
    }

    /// The model plugins' `llm` import calls: `plugins.llm_model`, or the
    /// first configured model.
    pub fn plugin_model(&self) -> String {
        self.plugins
            .llm_model
            .clone()
            .unwrap_or_else(|| self.first_model_id())
    }

    /// The model that answers `llm_judge` rules.
    pub fn judge_model(&self) -> String {
        self.policies
            .judge_model
            .clone()
            .unwrap_or_else(|| self.first_model_id())
    }

    /// The agents to offer, with the shipped three when none are declared.
    pub fn effective_agents(&self) -> Vec<AgentSpec> {
        if self.agents.is_empty() {
            AgentSpec::defaults()
        } else {
            self.agents.clone()
        }
    }

    /// The models to serve, with the embedded default when none are declared.
    pub fn effective_models(&self) -> Vec<ModelConfig> {
        if self.models.is_empty() {
            vec![ModelConfig::Embedded {
                id: DEFAULT_MODEL_ID.to_owned(),
                path: None,
                dtype: Default::default(),
                prefix_cache_sequences: default_prefix_cache_sequences(),
            }]
        } else {
            self.models.clone()
        }
    }

    pub fn database_url(&self) -> String {
        match &self.server.database_url {
            Some(url) => url.clone(),
            None => format!(
                "sqlite://{}?mode=rwc",
                self.server.data_dir.join("warden.db").display()
            ),
        }
    }

    /// Where installed plugins and the compiled-code cache live.
    pub fn plugins_dir(&self) -> PathBuf {
        self.server.data_dir.join("plugins")
    }

    pub fn plugin_cache_dir(&self) -> PathBuf {
        self.server.data_dir.join("cache").join("wasm")
    }

    pub fn models_dir(&self) -> PathBuf {
        self.server.data_dir.join("models")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_gives_defaults_and_the_embedded_default_model() {
        let c = Config::from_toml("").unwrap();
        assert_eq!(c.server.default_max_tokens, 256);
        assert_eq!(c.effective_models()[0].id(), DEFAULT_MODEL_ID);
    }

    #[test]
    fn unknown_keys_are_rejected_with_their_name() {
        let err = Config::from_toml("[server]\nlisten_addr = \"x\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("listen_addr"), "{err}");
        let err =
            Config::from_toml("[[models]]\nbackend = \"embedded\"\nid = \"a\"\npaht = \"x\"\n")
                .unwrap_err()
                .to_string();
        assert!(err.contains("paht"), "{err}");
    }

    #[test]
    fn both_backends_parse() {
        let c = Config::from_toml(
            r#"
            [[models]]
            backend = "embedded"
            id = "local"
            path = "/m/x.gguf"
            [[models]]
            backend = "openai"
            id = "remote"
            base_url = "http://127.0.0.1:9/v1"
            api_key_env = "UPSTREAM_KEY"
            "#,
        )
        .unwrap();
        c.validate().unwrap();
        assert_eq!(c.models.len(), 2);
        assert!(matches!(
            &c.models[1],
            ModelConfig::Openai {
                timeout_secs: 300,
                ..
            }
        ));
    }

    #[test]
    fn env_overrides_apply_and_bad_values_name_the_variable() {
        let mut c = Config::default();
        c.apply_env(|k| match k {
            "WARDEN_LISTEN" => Some("127.0.0.1:9999".into()),
            "DATABASE_URL" => Some("postgres://x/y".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(c.server.listen.port(), 9999);
        assert_eq!(c.database_url(), "postgres://x/y");
        let err = c
            .apply_env(|k| (k == "WARDEN_MAX_BODY_BYTES").then(|| "lots".into()))
            .unwrap_err();
        assert!(err.to_string().contains("WARDEN_MAX_BODY_BYTES"));
    }

    #[test]
    fn invalid_settings_are_rejected() {
        for toml in [
            "[server]\nmax_body_bytes = 10",
            "[server]\ndefault_max_tokens = 0",
            "[[models]]\nbackend=\"embedded\"\nid=\"a\"\n[[models]]\nbackend=\"embedded\"\nid=\"a\"",
            "[[models]]\nbackend=\"openai\"\nid=\"r\"\nbase_url=\"ftp://x\"",
            "[[models]]\nbackend=\"embedded\"\nid=\"agent:x\"",
            "[plugins.limits]\ndefault_memory_mb = 1024",
            "[plugins.limits]\nmax_timeout_ms = 99999999999",
            "[plugins.grants.\"a.b\"]\nllm_max_tokens = 999999",
            "[plugins.grants.\"a.b\"]\nmax_concurrency = 100000",
        ] {
            let c = Config::from_toml(toml).unwrap();
            assert!(c.validate().is_err(), "{toml}");
        }
    }
}
