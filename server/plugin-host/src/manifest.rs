//! `plugin.toml`: what a plugin is and what it asks for.
//!
//! The manifest only *requests*; the operator's grant in `warden.toml`
//! decides (see [`super::grant`]). Parsing is strict: unknown keys are
//! errors that name the file, line and key.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use thiserror::Error;

pub use crate::bindings::API_VERSION;

pub const MANIFEST_FILE: &str = "plugin.toml";

#[derive(Debug, Error)]
pub enum ManifestError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The toml message already carries line, column and the offending key.
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{path}: {source}")]
    Invalid { path: PathBuf, source: InvalidField },
}

/// A manifest value (or a name, id or pattern) that is not acceptable; the
/// message names the field and says what is expected.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{0}")]
pub struct InvalidField(pub String);

impl InvalidField {
    fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Reverse-DNS style: lower-case letters, digits, `.`, `-`, `_`.
    pub id: String,
    pub name: String,
    /// The plugin's own semver version.
    pub version: String,
    /// The `warden:plugin` version it was built against.
    pub api_version: String,
    #[serde(default)]
    pub description: String,
    /// The component file, relative to the manifest's directory.
    #[serde(default = "default_component")]
    pub component: PathBuf,
    /// Optional pinned digest, `sha256:<hex>`, checked before compiling.
    #[serde(default)]
    pub digest: Option<String>,
    #[serde(default)]
    pub capabilities: Capabilities,
    #[serde(default)]
    pub limits: RequestedLimits,
    /// Static copy of what `describe` returns; checked at load so operators
    /// review effects before granting.
    #[serde(default)]
    pub tools: Vec<DeclaredTool>,
}

fn default_component() -> PathBuf {
    PathBuf::from("plugin.wasm")
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Capabilities {
    /// Use the host `llm` import.
    #[serde(default)]
    pub llm: bool,
    /// kv buckets the plugin uses.
    #[serde(default)]
    pub kv_buckets: Vec<String>,
    /// Outbound HTTP targets: `https://api.example.com`, `https://*.example.com`,
    /// `http://127.0.0.1:8080`.
    #[serde(default)]
    pub http_hosts: Vec<String>,
    /// Variables the operator sets; `secret = true` ones are redacted.
    #[serde(default)]
    pub config: BTreeMap<String, ConfigVar>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ConfigVar {
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub secret: bool,
    #[serde(default)]
    pub required: bool,
    /// Used when the operator sets nothing. Not allowed for secrets.
    #[serde(default)]
    pub default: Option<String>,
}

/// What the plugin would like; the host clamps each to the operator ceiling.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RequestedLimits {
    pub memory_mb: Option<u32>,
    pub timeout_ms: Option<u64>,
    pub max_output_bytes: Option<u64>,
    pub max_concurrency: Option<u32>,
    /// A deterministic instruction budget per call.
    pub fuel: Option<u64>,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Effect {
    Pure,
    Reads,
    Writes,
    External,
}

impl Effect {
    pub fn as_str(self) -> &'static str {
        match self {
            Effect::Pure => "pure",
            Effect::Reads => "reads",
            Effect::Writes => "writes",
            Effect::External => "external",
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DeclaredTool {
    pub name: String,
    pub effect: Effect,
}

impl Manifest {
    /// Reads `plugin.toml` from a file or from the directory holding it.
    pub fn load(path: &Path) -> Result<(Manifest, PathBuf), ManifestError> {
        let file = if path.is_dir() {
            path.join(MANIFEST_FILE)
        } else {
            path.to_owned()
        };
        let text = std::fs::read_to_string(&file).map_err(|source| ManifestError::Read {
            path: file.clone(),
            source,
        })?;
        let manifest = Self::parse(&text, &file)?;
        Ok((manifest, file))
    }

    /// Parses and validates; `path` only labels errors.
    pub fn parse(text: &str, path: &Path) -> Result<Manifest, ManifestError> {
        let manifest: Manifest = toml::from_str(text).map_err(|e| ManifestError::Parse {
            path: path.to_owned(),
            message: e.to_string().trim_end().to_owned(),
        })?;
        manifest
            .validate()
            .map_err(|source| ManifestError::Invalid {
                path: path.to_owned(),
                source,
            })?;
        Ok(manifest)
    }

    /// The component path, resolved against the manifest file's directory.
    pub fn component_path(&self, manifest_file: &Path) -> PathBuf {
        manifest_file
            .parent()
            .unwrap_or(Path::new("."))
            .join(&self.component)
    }

    fn validate(&self) -> Result<(), InvalidField> {
        validate_id(&self.id)?;
        if self.name.trim().is_empty() {
            return Err(InvalidField::new("name must not be empty"));
        }
        parse_semver(&self.version)
            .map_err(|e| InvalidField(format!("version {:?}: {e}", self.version)))?;
        let (major, minor, _) = parse_semver(&self.api_version)
            .map_err(|e| InvalidField(format!("api_version {:?}: {e}", self.api_version)))?;
        let (host_major, host_minor, _) = parse_semver(API_VERSION).expect("valid constant");
        if (major, minor) != (host_major, host_minor) {
            return Err(InvalidField(format!(
                "api_version {} is not supported: this host implements warden:plugin@{API_VERSION}",
                self.api_version
            )));
        }
        if let Some(d) = &self.digest {
            parse_digest(d)?;
        }
        for bucket in &self.capabilities.kv_buckets {
            validate_name("kv bucket", bucket)?;
        }
        for host in &self.capabilities.http_hosts {
            super::grant::HostPattern::parse(host)
                .map_err(|e| InvalidField(format!("http_hosts: {e}")))?;
        }
        for (name, var) in &self.capabilities.config {
            validate_name("config variable", name)?;
            if var.secret && var.default.is_some() {
                return Err(InvalidField(format!(
                    "config variable {name:?} is secret and must not have a default"
                )));
            }
        }
        let l = &self.limits;
        for (what, zero) in [
            ("memory_mb", l.memory_mb == Some(0)),
            ("timeout_ms", l.timeout_ms == Some(0)),
            ("max_output_bytes", l.max_output_bytes == Some(0)),
            ("max_concurrency", l.max_concurrency == Some(0)),
            ("fuel", l.fuel == Some(0)),
        ] {
            if zero {
                return Err(InvalidField(format!(
                    "limits.{what} must be greater than 0"
                )));
            }
        }
        let mut seen = std::collections::HashSet::new();
        for tool in &self.tools {
            validate_tool_name(&tool.name)?;
            if !seen.insert(&tool.name) {
                return Err(InvalidField(format!(
                    "tool {:?} is declared twice",
                    tool.name
                )));
            }
        }
        Ok(())
    }
}

pub fn validate_id(id: &str) -> Result<(), InvalidField> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id.starts_with(|c: char| c.is_ascii_lowercase())
        && id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '-' | '_'));
    if ok {
        Ok(())
    } else {
        Err(InvalidField(format!(
            "id {id:?} must be 1-64 characters of a-z, 0-9, '.', '-', '_' starting with a letter"
        )))
    }
}

pub fn validate_tool_name(name: &str) -> Result<(), InvalidField> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(InvalidField(format!(
            "tool name {name:?} must match [a-z][a-z0-9_]* (at most 64 characters)"
        )))
    }
}

fn validate_name(what: &str, name: &str) -> Result<(), InvalidField> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(InvalidField(format!(
            "{what} {name:?} must be 1-64 characters of letters, digits, '-', '_', '.'"
        )))
    }
}

fn parse_semver(v: &str) -> Result<(u64, u64, u64), InvalidField> {
    let core = v.split(['-', '+']).next().unwrap_or_default();
    let parts: Vec<_> = core.split('.').collect();
    if parts.len() != 3 {
        return Err(InvalidField::new("expected MAJOR.MINOR.PATCH"));
    }
    let n = |s: &str| {
        s.parse::<u64>()
            .map_err(|_| InvalidField::new("expected MAJOR.MINOR.PATCH"))
    };
    Ok((n(parts[0])?, n(parts[1])?, n(parts[2])?))
}

/// `sha256:<64 hex>` → the hex part.
pub fn parse_digest(d: &str) -> Result<&str, InvalidField> {
    match d.strip_prefix("sha256:") {
        Some(hex) if hex.len() == 64 && hex.chars().all(|c| c.is_ascii_hexdigit()) => Ok(hex),
        _ => Err(InvalidField(format!(
            "digest {d:?} must be sha256:<64 hex digits>"
        ))),
    }
}

pub fn digest_of(bytes: &[u8]) -> String {
    use sha2::Digest;
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
        id = "acme.hello"
        name = "Hello"
        version = "1.0.0"
        api_version = "0.1.0"
    "#;

    fn parse(text: &str) -> Result<Manifest, ManifestError> {
        Manifest::parse(text, Path::new("plugin.toml"))
    }

    #[test]
    fn minimal_manifest_requests_nothing() {
        let m = parse(MINIMAL).unwrap();
        assert_eq!(m.component, PathBuf::from("plugin.wasm"));
        assert_eq!(m.capabilities, Capabilities::default());
        assert!(m.tools.is_empty());
    }

    #[test]
    fn full_manifest_parses() {
        let m = parse(&format!(
            r#"{MINIMAL}
            description = "says hello"
            component = "hello.wasm"
            digest = "sha256:{}"
            [capabilities]
            llm = true
            kv_buckets = ["greetings"]
            http_hosts = ["https://api.example.com", "https://*.example.org:8443"]
            [capabilities.config.api_key]
            secret = true
            required = true
            [capabilities.config.greeting]
            default = "hi"
            [limits]
            memory_mb = 32
            timeout_ms = 500
            [[tools]]
            name = "greet"
            effect = "pure"
            "#,
            "a".repeat(64)
        ))
        .unwrap();
        assert!(m.capabilities.llm);
        assert!(m.capabilities.config["api_key"].secret);
        assert_eq!(m.tools[0].effect, Effect::Pure);
    }

    /// Each case: manifest text appended to MINIMAL (or replacing it), and a
    /// fragment the error must contain.
    #[test]
    fn invalid_manifests_name_the_problem() {
        let cases: &[(&str, &str)] = &[
            ("colour = \"red\"", "unknown field `colour`"),
            ("[capabilities]\nkv_bucket = [\"x\"]", "line 7"),
            (
                "[capabilities]\nkv_bucket = [\"x\"]",
                "unknown field `kv_bucket`",
            ),
            (
                "[limits]\nmemory_mb = 0",
                "limits.memory_mb must be greater than 0",
            ),
            ("[limits]\nmemory_mb = -1", "invalid value"),
            (
                "[capabilities]\nhttp_hosts = [\"api.example.com\"]",
                "http_hosts",
            ),
            (
                "[capabilities]\nkv_buckets = [\"a b\"]",
                "kv bucket \"a b\"",
            ),
            (
                "[capabilities.config.k]\nsecret = true\ndefault = \"x\"",
                "must not have a default",
            ),
            ("digest = \"md5:abc\"", "sha256:<64 hex digits>"),
            (
                "[[tools]]\nname = \"Bad-Name\"\neffect = \"pure\"",
                "must match",
            ),
            (
                "[[tools]]\nname = \"t\"\neffect = \"deletes\"",
                "unknown variant `deletes`",
            ),
            (
                "[[tools]]\nname = \"t\"\neffect = \"pure\"\n[[tools]]\nname = \"t\"\neffect = \"pure\"",
                "declared twice",
            ),
        ];
        for (extra, want) in cases {
            let err = parse(&format!("{MINIMAL}{extra}")).unwrap_err().to_string();
            assert!(err.contains(want), "{extra:?}: {err:?} lacks {want:?}");
            assert!(err.starts_with("plugin.toml"), "{err}");
        }
        let replaced: &[(&str, &str)] = &[
            (r#"id = "Acme""#, "id \"Acme\""),
            (r#"version = "1""#, "MAJOR.MINOR.PATCH"),
            (r#"api_version = "0.2.0""#, "not supported"),
        ];
        for (line, want) in replaced {
            let key = line.split(' ').next().unwrap();
            let text: String = MINIMAL
                .lines()
                .map(|l| {
                    if l.trim_start().starts_with(&format!("{key} ")) {
                        line.to_string()
                    } else {
                        l.to_string()
                    }
                })
                .collect::<Vec<_>>()
                .join("\n");
            let err = parse(&text).unwrap_err().to_string();
            assert!(err.contains(want), "{line}: {err}");
        }
        let err = parse("id = \"acme.x\"").unwrap_err().to_string();
        assert!(err.contains("missing field `name`"), "{err}");
    }

    #[test]
    fn digests() {
        assert_eq!(
            digest_of(b""),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert!(parse_digest(&digest_of(b"x")).is_ok());
    }
}
