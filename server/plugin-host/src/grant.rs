//! Effective grant = what the manifest requests ∩ what the operator grants.
//!
//! Every host import asks the [`EffectiveGrant`] at call time; a refusal
//! carries a message that says exactly what is missing and where to add it,
//! because the reader is often an LLM agent relaying it to an operator.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::manifest::{InvalidField, Manifest};

/// A capability the running plugin asked for but may not use; the message
/// says exactly what to declare or grant, because the reader is often an
/// agent relaying it to an operator.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Denied(pub String);

/// One operator grant, `[plugins.grants."<plugin id>"]` in `warden.toml`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct OperatorGrant {
    #[serde(default)]
    pub llm: bool,
    /// Ceiling on `max-tokens` per llm call.
    pub llm_max_tokens: Option<u32>,
    #[serde(default)]
    pub kv_buckets: Vec<String>,
    #[serde(default)]
    pub http_hosts: Vec<String>,
    /// Lets granted hosts resolve to loopback or private addresses.
    #[serde(default)]
    pub allow_private_networks: bool,
    #[serde(default)]
    pub config: BTreeMap<String, ConfigValue>,
    /// Per-plugin ceilings, overriding the global ones in `[plugins]`.
    pub memory_mb: Option<u32>,
    pub timeout_ms: Option<u64>,
    pub max_output_bytes: Option<u64>,
    pub max_concurrency: Option<u32>,
    pub fuel: Option<u64>,
}

/// A config value: inline, or read from the server's environment at start-up
/// (the way to pass secrets without writing them into `warden.toml`).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum ConfigValue {
    Value(String),
    Env { env: String },
}

/// Global defaults and ceilings for plugin limits.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LimitPolicy {
    pub default_memory_mb: u32,
    pub max_memory_mb: u32,
    pub default_timeout_ms: u64,
    pub max_timeout_ms: u64,
    pub default_max_output_bytes: u64,
    pub max_output_bytes: u64,
    pub default_max_concurrency: u32,
    pub max_concurrency: u32,
    pub default_llm_max_tokens: u32,
    /// Largest kv value.
    pub kv_max_value_bytes: u64,
    /// Most bytes (keys and values) one plugin may keep in kv.
    pub kv_max_total_bytes: u64,
}

impl Default for LimitPolicy {
    fn default() -> Self {
        Self {
            default_memory_mb: 64,
            max_memory_mb: 512,
            default_timeout_ms: 10_000,
            max_timeout_ms: 300_000,
            default_max_output_bytes: 1 << 20,
            max_output_bytes: 16 << 20,
            default_max_concurrency: 4,
            max_concurrency: 64,
            default_llm_max_tokens: 512,
            kv_max_value_bytes: 1 << 20,
            kv_max_total_bytes: 256 << 20,
        }
    }
}

/// Limits applied to every call of one plugin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct EffectiveLimits {
    pub memory_bytes: u64,
    pub timeout_ms: u64,
    pub max_output_bytes: u64,
    pub max_concurrency: u32,
    pub fuel: Option<u64>,
    pub llm_max_tokens: u32,
    pub kv_max_value_bytes: u64,
    pub kv_max_total_bytes: u64,
}

#[derive(Debug, Clone)]
pub struct EffectiveGrant {
    plugin_id: String,
    llm_requested: bool,
    llm_granted: bool,
    kv_requested: Vec<String>,
    kv_granted: Vec<String>,
    http_requested: Vec<HostPattern>,
    http_granted: Vec<HostPattern>,
    pub allow_private_networks: bool,
    /// Declared variables → value (None when unset).
    config: BTreeMap<String, Option<String>>,
    secret_values: Vec<String>,
    /// Required config variables that have no value.
    unset_required: Vec<String>,
    pub limits: EffectiveLimits,
    /// Problems the operator should know about (clamped limits, unset
    /// required variables, grants the manifest never asked for).
    pub warnings: Vec<String>,
}

impl EffectiveGrant {
    pub fn compute(
        manifest: &Manifest,
        grant: Option<&OperatorGrant>,
        policy: &LimitPolicy,
        env: impl Fn(&str) -> Option<String>,
    ) -> EffectiveGrant {
        let empty = OperatorGrant::default();
        let g = grant.unwrap_or(&empty);
        let caps = &manifest.capabilities;
        let mut warnings = Vec::new();

        let parse_all = |hosts: &[String], warnings: &mut Vec<String>| {
            hosts
                .iter()
                .filter_map(|h| match HostPattern::parse(h) {
                    Ok(p) => Some(p),
                    Err(e) => {
                        warnings.push(format!("ignoring granted http host: {e}"));
                        None
                    }
                })
                .collect::<Vec<_>>()
        };
        let http_requested = parse_all(&caps.http_hosts, &mut warnings);
        let http_granted = parse_all(&g.http_hosts, &mut warnings);

        let mut config = BTreeMap::new();
        let mut secret_values = Vec::new();
        let mut unset_required = Vec::new();
        for (name, var) in &caps.config {
            let value = match g.config.get(name) {
                Some(ConfigValue::Value(v)) => Some(v.clone()),
                Some(ConfigValue::Env { env: var_name }) => {
                    let v = env(var_name);
                    if v.is_none() {
                        warnings.push(format!(
                            "config variable {name:?} reads ${var_name}, which is not set"
                        ));
                    }
                    v
                }
                None => var.default.clone(),
            };
            if value.is_none() && var.required {
                unset_required.push(name.clone());
                warnings.push(format!(
                    "required config variable {name:?} is not set; set it in warden.toml: \
                     [plugins.grants.\"{}\".config] {name} = ...",
                    manifest.id
                ));
            }
            if var.secret
                && let Some(v) = &value
                && !v.is_empty()
            {
                secret_values.push(v.clone());
            }
            config.insert(name.clone(), value);
        }
        for name in g.config.keys() {
            if !caps.config.contains_key(name) {
                warnings.push(format!(
                    "granted config variable {name:?} is not declared by the plugin and is ignored"
                ));
            }
        }

        let mut clamp = |what: &str, requested: Option<u64>, default: u64, ceiling: u64| {
            let want = requested.unwrap_or(default);
            if want > ceiling {
                warnings.push(format!(
                    "limits.{what} {want} exceeds the operator ceiling {ceiling}; using {ceiling}"
                ));
                ceiling
            } else {
                want
            }
        };
        let l = &manifest.limits;
        let memory_mb = clamp(
            "memory_mb",
            l.memory_mb.map(u64::from),
            policy.default_memory_mb.into(),
            g.memory_mb.unwrap_or(policy.max_memory_mb).into(),
        );
        let timeout_ms = clamp(
            "timeout_ms",
            l.timeout_ms,
            policy.default_timeout_ms,
            g.timeout_ms.unwrap_or(policy.max_timeout_ms),
        );
        let max_output_bytes = clamp(
            "max_output_bytes",
            l.max_output_bytes,
            policy.default_max_output_bytes,
            g.max_output_bytes.unwrap_or(policy.max_output_bytes),
        );
        let max_concurrency = clamp(
            "max_concurrency",
            l.max_concurrency.map(u64::from),
            policy.default_max_concurrency.into(),
            g.max_concurrency.unwrap_or(policy.max_concurrency).into(),
        );
        let fuel = match (l.fuel, g.fuel) {
            (Some(want), Some(ceiling)) => Some(want.min(ceiling)),
            (Some(want), None) => Some(want),
            (None, Some(ceiling)) => Some(ceiling),
            (None, None) => None,
        };
        let limits = EffectiveLimits {
            memory_bytes: memory_mb.saturating_mul(1 << 20),
            timeout_ms,
            max_output_bytes,
            max_concurrency: u32::try_from(max_concurrency).unwrap_or(u32::MAX).max(1),
            fuel,
            llm_max_tokens: g.llm_max_tokens.unwrap_or(policy.default_llm_max_tokens),
            kv_max_value_bytes: policy.kv_max_value_bytes,
            kv_max_total_bytes: policy.kv_max_total_bytes,
        };

        EffectiveGrant {
            plugin_id: manifest.id.clone(),
            llm_requested: caps.llm,
            llm_granted: g.llm,
            kv_requested: caps.kv_buckets.clone(),
            kv_granted: g.kv_buckets.clone(),
            http_requested,
            http_granted,
            allow_private_networks: g.allow_private_networks,
            config,
            secret_values,
            unset_required,
            limits,
            warnings,
        }
    }

    /// The `warden.toml` lines that would grant everything the manifest
    /// requests and this grant does not give, `None` when nothing is
    /// missing. Lists are complete (what is granted now plus what is
    /// missing), so each line can replace the key of the same name in the
    /// plugin's grant table; required config variables are read from the
    /// environment, so no secret needs to be written into the file.
    pub fn missing_grant_toml(&self) -> Option<String> {
        let quote = |s: &str| toml::Value::String(s.to_owned()).to_string();
        let list = |items: Vec<&str>| {
            let quoted: Vec<String> = items.into_iter().map(quote).collect();
            format!("[{}]", quoted.join(", "))
        };
        let table = format!("[plugins.grants.{}]", quote(&self.plugin_id));
        let mut lines = Vec::new();
        if self.llm_requested && !self.llm_granted {
            lines.push("llm = true".to_owned());
        }
        if self
            .kv_requested
            .iter()
            .any(|b| !self.kv_granted.contains(b))
        {
            let mut all: Vec<&str> = self.kv_granted.iter().map(String::as_str).collect();
            for b in &self.kv_requested {
                if !all.contains(&b.as_str()) {
                    all.push(b);
                }
            }
            lines.push(format!("kv_buckets = {}", list(all)));
        }
        let http_missing: Vec<&HostPattern> = self
            .http_requested
            .iter()
            .filter(|p| !self.http_granted.iter().any(|g| g.covers(p)))
            .collect();
        if !http_missing.is_empty() {
            let mut all: Vec<&str> = self.http_granted.iter().map(|g| g.text.as_str()).collect();
            all.extend(http_missing.iter().map(|p| p.text.as_str()));
            lines.push(format!("http_hosts = {}", list(all)));
        }
        let mut config = Vec::new();
        for name in &self.unset_required {
            let env: String = format!("WARDEN_{}_{name}", self.plugin_id)
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() {
                        c.to_ascii_uppercase()
                    } else {
                        '_'
                    }
                })
                .collect();
            config.push(format!("{} = {{ env = {} }}", quote_key(name), quote(&env)));
        }
        if lines.is_empty() && config.is_empty() {
            return None;
        }
        let mut out = String::new();
        if !lines.is_empty() {
            out.push_str(&table);
            out.push('\n');
            for l in lines {
                out.push_str(&l);
                out.push('\n');
            }
        }
        if !config.is_empty() {
            if !out.is_empty() {
                out.push('\n');
            }
            out.push_str(&format!(
                "[plugins.grants.{}.config]\n",
                quote(&self.plugin_id)
            ));
            for l in config {
                out.push_str(&l);
                out.push('\n');
            }
        }
        Some(out)
    }

    /// The same limits with every capability withdrawn (for `describe`,
    /// which runs outside any tool call).
    pub fn without_capabilities(&self) -> EffectiveGrant {
        EffectiveGrant {
            llm_granted: false,
            kv_granted: Vec::new(),
            http_granted: Vec::new(),
            config: self.config.keys().map(|k| (k.clone(), None)).collect(),
            secret_values: Vec::new(),
            unset_required: Vec::new(),
            warnings: Vec::new(),
            ..self.clone()
        }
    }

    pub fn plugin_id(&self) -> &str {
        &self.plugin_id
    }

    pub fn check_llm(&self) -> Result<(), Denied> {
        match (self.llm_requested, self.llm_granted) {
            (true, true) => Ok(()),
            (false, _) => Err(Denied(
                "llm is not declared in plugin.toml; add `llm = true` under \
                 [capabilities]"
                    .into(),
            )),
            (true, false) => Err(Denied(format!(
                "llm is not granted to plugin {id}; grant it in warden.toml: \
                 [plugins.grants.\"{id}\"] llm = true",
                id = self.plugin_id
            ))),
        }
    }

    pub fn check_kv(&self, bucket: &str) -> Result<(), Denied> {
        if !self.kv_requested.iter().any(|b| b == bucket) {
            return Err(Denied(format!(
                "kv bucket {bucket:?} is not declared in plugin.toml; add it to \
                 [capabilities] kv_buckets"
            )));
        }
        if !self.kv_granted.iter().any(|b| b == bucket) {
            return Err(Denied(format!(
                "kv bucket {bucket:?} is not granted to plugin {id}; grant it in warden.toml: \
                 [plugins.grants.\"{id}\"] kv_buckets = [\"{bucket}\"]",
                id = self.plugin_id
            )));
        }
        Ok(())
    }

    /// Whether the plugin may send to `scheme://host:port`. Address checks
    /// (loopback, private ranges) happen after DNS in the HTTP hook.
    pub fn check_http(&self, scheme: &str, host: &str, port: u16) -> Result<(), Denied> {
        let target = format!("{scheme}://{host}:{port}");
        if !self
            .http_requested
            .iter()
            .any(|p| p.matches(scheme, host, port))
        {
            return Err(Denied(format!(
                "outbound HTTP to {target} is not declared in plugin.toml; add it to \
                 [capabilities] http_hosts"
            )));
        }
        if !self
            .http_granted
            .iter()
            .any(|p| p.matches(scheme, host, port))
        {
            return Err(Denied(format!(
                "outbound HTTP to {target} is not granted to plugin {id}; grant it in \
                 warden.toml: [plugins.grants.\"{id}\"] http_hosts = [\"{scheme}://{host}\"]",
                id = self.plugin_id
            )));
        }
        Ok(())
    }

    pub fn config_value(&self, name: &str) -> Result<Option<&str>, Denied> {
        match self.config.get(name) {
            Some(v) => Ok(v.as_deref()),
            None => Err(Denied(format!(
                "config variable {name:?} is not declared in plugin.toml; add it under \
                 [capabilities.config]"
            ))),
        }
    }

    /// Replaces every secret config value in `text` with `[redacted]`.
    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for secret in &self.secret_values {
            if out.contains(secret.as_str()) {
                out = out.replace(secret.as_str(), "[redacted]");
            }
        }
        out
    }

    /// One line per capability, for `warden plugin check` and the API.
    pub fn summary(&self) -> Vec<String> {
        let state = |requested: bool, granted: bool| match (requested, granted) {
            (true, true) => "granted",
            (true, false) => "requested, NOT granted",
            (false, _) => "not requested",
        };
        let mut lines = vec![format!(
            "llm: {}",
            state(self.llm_requested, self.llm_granted)
        )];
        for b in &self.kv_requested {
            lines.push(format!(
                "kv bucket {b}: {}",
                state(true, self.kv_granted.contains(b))
            ));
        }
        for p in &self.http_requested {
            let granted = self.http_granted.iter().any(|g| g.covers(p));
            lines.push(format!("http {}: {}", p.text, state(true, granted)));
        }
        for (name, value) in &self.config {
            let secret = self.secret_values.iter().any(|s| Some(s) == value.as_ref());
            let shown = match value {
                None => "unset".to_owned(),
                Some(_) if secret => "set (secret)".to_owned(),
                Some(v) => format!("{v:?}"),
            };
            lines.push(format!("config {name}: {shown}"));
        }
        let l = &self.limits;
        lines.push(format!(
            "limits: memory {} MiB, timeout {} ms, output {} bytes, concurrency {}{}",
            l.memory_bytes >> 20,
            l.timeout_ms,
            l.max_output_bytes,
            l.max_concurrency,
            l.fuel.map(|f| format!(", fuel {f}")).unwrap_or_default()
        ));
        lines
    }
}

/// A TOML key: bare when it can be, quoted otherwise.
fn quote_key(key: &str) -> String {
    if !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        key.to_owned()
    } else {
        toml::Value::String(key.to_owned()).to_string()
    }
}

/// `scheme://host[:port]`; `scheme` may be `*`, `host` may start with `*.`.
#[derive(Debug, Clone, PartialEq)]
pub struct HostPattern {
    text: String,
    scheme: String,
    host: String,
    port: Option<u16>,
}

impl HostPattern {
    pub fn parse(text: &str) -> Result<HostPattern, InvalidField> {
        let bad =
            |why: &str| InvalidField(format!("{text:?} {why}; expected scheme://host[:port]"));
        let (scheme, rest) = text.split_once("://").ok_or_else(|| bad("has no scheme"))?;
        if !matches!(scheme, "http" | "https" | "*") {
            return Err(bad("must use http, https or *"));
        }
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains(['/', '?', '#', '@']) || rest.is_empty() {
            return Err(bad("must not have a path, query or user info"));
        }
        let parse_port = |p: &str| p.parse::<u16>().map_err(|_| bad("has an invalid port"));
        let (host, port) = if let Some(inner) = rest.strip_prefix('[') {
            // An IPv6 literal: [addr] or [addr]:port; kept without brackets,
            // as request hosts are compared without them.
            let (addr, after) = inner
                .split_once(']')
                .ok_or_else(|| bad("has an invalid host"))?;
            if addr.parse::<std::net::Ipv6Addr>().is_err() {
                return Err(bad("has an invalid host"));
            }
            let port = match after {
                "" => None,
                p => Some(parse_port(
                    p.strip_prefix(':')
                        .ok_or_else(|| bad("has an invalid port"))?,
                )?),
            };
            (addr.to_ascii_lowercase(), port)
        } else {
            let (h, port) = match rest.rsplit_once(':') {
                Some((h, p)) => (h, Some(parse_port(p)?)),
                None => (rest, None),
            };
            let host = h.to_ascii_lowercase();
            let label_ok =
                |l: &str| !l.is_empty() && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
            let bare = host.strip_prefix("*.").unwrap_or(&host);
            if !(bare.split('.').all(label_ok) || bare.parse::<std::net::Ipv4Addr>().is_ok()) {
                return Err(bad("has an invalid host"));
            }
            (host, port)
        };
        Ok(HostPattern {
            text: text.to_owned(),
            scheme: scheme.to_owned(),
            host,
            port,
        })
    }

    pub fn matches(&self, scheme: &str, host: &str, port: u16) -> bool {
        let scheme_ok = self.scheme == "*" || self.scheme == scheme;
        let default_port = match scheme {
            "http" => 80,
            _ => 443,
        };
        let port_ok = self.port.unwrap_or(default_port) == port
            || (self.scheme == "*" && self.port.is_none() && matches!(port, 80 | 443));
        let host = host.to_ascii_lowercase();
        let host_ok = match self.host.strip_prefix("*.") {
            Some(suffix) => host.ends_with(&format!(".{suffix}")),
            None => self.host == host,
        };
        scheme_ok && port_ok && host_ok
    }

    /// Whether this (granted) pattern allows everything `other` names.
    fn covers(&self, other: &HostPattern) -> bool {
        let port = other
            .port
            .unwrap_or(if other.scheme == "http" { 80 } else { 443 });
        let scheme = if other.scheme == "*" {
            "https"
        } else {
            &other.scheme
        };
        let host = other
            .host
            .strip_prefix("*.")
            .map_or(other.host.clone(), |s| format!("x.{s}"));
        self.matches(scheme, &host, port)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn manifest(caps: &str) -> Manifest {
        Manifest::parse(
            &format!(
                "id = \"acme.t\"\nname = \"T\"\nversion = \"0.1.0\"\napi_version = \"0.1.0\"\n{caps}"
            ),
            Path::new("plugin.toml"),
        )
        .unwrap()
    }

    fn grant(toml_text: &str) -> OperatorGrant {
        toml::from_str(toml_text).unwrap()
    }

    #[test]
    fn host_patterns() {
        let cases: &[(&str, &str, &str, u16, bool)] = &[
            (
                "https://api.example.com",
                "https",
                "api.example.com",
                443,
                true,
            ),
            (
                "https://api.example.com",
                "http",
                "api.example.com",
                80,
                false,
            ),
            (
                "https://api.example.com",
                "https",
                "api.example.com",
                8443,
                false,
            ),
            (
                "https://API.example.com",
                "https",
                "api.EXAMPLE.com",
                443,
                true,
            ),
            (
                "https://*.example.com",
                "https",
                "a.b.example.com",
                443,
                true,
            ),
            ("https://*.example.com", "https", "example.com", 443, false),
            (
                "https://*.example.com",
                "https",
                "evilexample.com",
                443,
                false,
            ),
            ("http://127.0.0.1:8080", "http", "127.0.0.1", 8080, true),
            ("*://example.com", "http", "example.com", 80, true),
            ("http://[::1]:8080", "http", "::1", 8080, true),
            ("https://[2001:db8::1]", "https", "2001:db8::1", 443, true),
        ];
        for (pattern, scheme, host, port, want) in cases {
            let p = HostPattern::parse(pattern).unwrap();
            assert_eq!(
                p.matches(scheme, host, *port),
                *want,
                "{pattern} vs {scheme}://{host}:{port}"
            );
        }
        for bad in [
            "example.com",
            "ftp://x.com",
            "https://x.com/path",
            "https://u@x.com",
            "https://x.com:99999",
            "https://[::1",
            "https://[nope]",
            "https://",
        ] {
            assert!(HostPattern::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn requested_but_not_granted_names_what_to_grant() {
        let m = manifest(
            "[capabilities]\nllm = true\nkv_buckets = [\"notes\"]\nhttp_hosts = [\"https://api.example.com\"]",
        );
        let g = EffectiveGrant::compute(&m, None, &LimitPolicy::default(), |_| None);
        let llm = g.check_llm().unwrap_err().to_string();
        assert!(
            llm.contains("[plugins.grants.\"acme.t\"] llm = true"),
            "{llm}"
        );
        let kv = g.check_kv("notes").unwrap_err().to_string();
        assert!(kv.contains("kv_buckets = [\"notes\"]"), "{kv}");
        let http = g
            .check_http("https", "api.example.com", 443)
            .unwrap_err()
            .to_string();
        assert!(
            http.contains("http_hosts = [\"https://api.example.com\"]"),
            "{http}"
        );
    }

    #[test]
    fn granted_but_not_requested_is_still_denied() {
        let m = manifest("");
        let og = grant("llm = true\nkv_buckets = [\"notes\"]\nhttp_hosts = [\"https://x.com\"]");
        let g = EffectiveGrant::compute(&m, Some(&og), &LimitPolicy::default(), |_| None);
        assert!(
            g.check_llm()
                .unwrap_err()
                .0
                .contains("not declared in plugin.toml")
        );
        assert!(g.check_kv("notes").unwrap_err().0.contains("not declared"));
        assert!(
            g.check_http("https", "x.com", 443)
                .unwrap_err()
                .0
                .contains("not declared")
        );
    }

    #[test]
    fn intersection_allows_only_both() {
        let m = manifest(
            "[capabilities]\nkv_buckets = [\"a\", \"b\"]\nhttp_hosts = [\"https://*.example.com\"]",
        );
        let og = grant("kv_buckets = [\"a\"]\nhttp_hosts = [\"https://api.example.com\"]");
        let g = EffectiveGrant::compute(&m, Some(&og), &LimitPolicy::default(), |_| None);
        assert!(g.check_kv("a").is_ok());
        assert!(g.check_kv("b").is_err());
        assert!(g.check_http("https", "api.example.com", 443).is_ok());
        assert!(g.check_http("https", "other.example.com", 443).is_err());
    }

    #[test]
    fn limits_are_clamped_to_ceilings() {
        let m = manifest("[limits]\nmemory_mb = 4096\ntimeout_ms = 100");
        let g = EffectiveGrant::compute(&m, None, &LimitPolicy::default(), |_| None);
        assert_eq!(g.limits.memory_bytes, 512 << 20);
        assert_eq!(g.limits.timeout_ms, 100);
        assert!(g.warnings.iter().any(|w| w.contains("memory_mb 4096")));
        let og = grant("memory_mb = 16");
        let g = EffectiveGrant::compute(&m, Some(&og), &LimitPolicy::default(), |_| None);
        assert_eq!(g.limits.memory_bytes, 16 << 20);
    }

    #[test]
    fn config_values_defaults_env_and_redaction() {
        let m = manifest(
            "[capabilities.config.region]\ndefault = \"eu\"\n[capabilities.config.token]\nsecret = true\nrequired = true",
        );
        let og = grant("config = { token = { env = \"ACME_TOKEN\" } }");
        let g = EffectiveGrant::compute(&m, Some(&og), &LimitPolicy::default(), |k| {
            (k == "ACME_TOKEN").then(|| "s3cr3t".to_owned())
        });
        assert_eq!(g.config_value("region").unwrap(), Some("eu"));
        assert_eq!(g.config_value("token").unwrap(), Some("s3cr3t"));
        assert!(
            g.config_value("other")
                .unwrap_err()
                .0
                .contains("not declared")
        );
        assert_eq!(g.redact("token=s3cr3t!"), "token=[redacted]!");
        assert!(
            g.summary()
                .iter()
                .any(|l| l == "config token: set (secret)")
        );
        let unset = EffectiveGrant::compute(&m, None, &LimitPolicy::default(), |_| None);
        assert!(
            unset
                .warnings
                .iter()
                .any(|w| w.contains("required config variable \"token\""))
        );
    }

    /// The lines the console shows are a working grant: pasted into
    /// `warden.toml`, every requested capability is granted.
    #[test]
    fn missing_grant_lines_grant_exactly_what_was_requested() {
        let m = manifest(
            "[capabilities]\nllm = true\nkv_buckets = [\"a\", \"b\"]\n\
             http_hosts = [\"https://*.example.com\", \"http://127.0.0.1:9000\"]\n\
             [capabilities.config.token]\nsecret = true\nrequired = true\n\
             [capabilities.config.region]\ndefault = \"eu\"",
        );
        let og =
            grant("kv_buckets = [\"a\"]\nhttp_hosts = [\"https://*.example.com\"]\nmemory_mb = 16");
        let policy = LimitPolicy::default();
        let g = EffectiveGrant::compute(&m, Some(&og), &policy, |_| None);
        let lines = g.missing_grant_toml().expect("something is missing");
        assert!(
            lines.starts_with(&format!("[plugins.grants.\"{}\"]\n", m.id)),
            "{lines}"
        );
        assert!(lines.contains("kv_buckets = [\"a\", \"b\"]"), "{lines}");
        assert!(
            lines.contains("http_hosts = [\"https://*.example.com\", \"http://127.0.0.1:9000\"]"),
            "{lines}"
        );

        // Paste the lines over the operator's grant table, key by key.
        #[derive(Deserialize)]
        struct File {
            plugins: Plugins,
        }
        #[derive(Deserialize)]
        struct Plugins {
            grants: BTreeMap<String, toml::Table>,
        }
        let pasted: File = toml::from_str(&lines).expect("the lines are valid TOML");
        let mut table: toml::Table = toml::from_str(
            "kv_buckets = [\"a\"]\nhttp_hosts = [\"https://*.example.com\"]\nmemory_mb = 16",
        )
        .unwrap();
        for (k, v) in pasted.plugins.grants[&m.id].clone() {
            table.insert(k, v);
        }
        let merged: OperatorGrant = table.try_into().expect("a valid grant");
        let env_var = "WARDEN_ACME_T_TOKEN";
        assert!(lines.contains(env_var), "{lines}");
        let fixed = EffectiveGrant::compute(&m, Some(&merged), &policy, |k| {
            (k == env_var).then(|| "set".to_owned())
        });
        assert_eq!(fixed.missing_grant_toml(), None);
        assert!(fixed.check_llm().is_ok());
        assert!(fixed.check_kv("b").is_ok());
        assert!(fixed.check_http("http", "127.0.0.1", 9000).is_ok());
        assert_eq!(fixed.limits.memory_bytes, 16 << 20, "other keys are kept");
        assert!(
            !fixed.summary().iter().any(|l| l.contains("NOT granted")),
            "{:?}",
            fixed.summary()
        );
        // Only the operator's own memory ceiling (16 MiB under the default
        // 64) is left to warn about.
        assert!(
            fixed
                .warnings
                .iter()
                .all(|w| w.starts_with("limits.memory_mb")),
            "{:?}",
            fixed.warnings
        );
    }
}
