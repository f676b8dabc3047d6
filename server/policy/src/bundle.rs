//! A bundle: every policy file of a directory, parsed, compiled, indexed by
//! stage, and identified by the sha256 of the files' names and contents.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use thiserror::Error;

use super::engine::{StageIndex, index};
use super::spec::{Policy, PolicyFile};
use super::testing::{self, PolicyTest, TestReport};

/// Files larger than this are refused (policies are small; this bounds the
/// parser's work on hostile input).
pub const MAX_FILE_BYTES: usize = 1 << 20;
pub const MAX_FILES: usize = 500;

/// The policies shipped in `policies/`, compiled in for servers started
/// without a policy directory.
pub const DEFAULT_POLICIES: &[(&str, &str)] = &[
    (
        "pii-and-secrets.yaml",
        include_str!("../../../policies/pii-and-secrets.yaml"),
    ),
    (
        "tool-safety.yaml",
        include_str!("../../../policies/tool-safety.yaml"),
    ),
    (
        "output-hygiene.yaml",
        include_str!("../../../policies/output-hygiene.yaml"),
    ),
];

#[derive(Debug, Error)]
pub enum BundleError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{file}:{line}:{column}: {message}")]
    Invalid {
        file: String,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{file}: {message}")]
    File { file: String, message: String },
    #[error("{0}")]
    TestsFailed(TestReport),
}

pub struct Bundle {
    /// sha256 (hex) of the sorted file names and contents.
    pub hash: String,
    /// Where it came from: a directory, or "built-in defaults".
    pub source: String,
    pub policies: Vec<Policy>,
    /// File of each policy (same order as `policies`).
    pub policy_files: Vec<String>,
    pub tests: Vec<(String, PolicyTest)>,
    pub(super) index: StageIndex,
}

impl std::fmt::Debug for Bundle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bundle")
            .field("hash", &self.hash)
            .field("source", &self.source)
            .field("policies", &self.policies.len())
            .finish()
    }
}

impl Bundle {
    /// The shipped defaults, tests included. They are tested in CI, so a
    /// failure here is a build defect, reported rather than panicking.
    pub fn defaults() -> Result<Self, BundleError> {
        let b = Self::from_sources("built-in defaults", DEFAULT_POLICIES)?;
        b.check_tests()?;
        Ok(b)
    }

    /// Parses and tests every `*.yaml`/`*.yml` file directly in `dir`:
    /// the bundle is returned only if all of it is valid and every test passes.
    pub fn load_dir(dir: &Path) -> Result<Self, BundleError> {
        let b = Self::parse_dir(dir)?;
        b.check_tests()?;
        Ok(b)
    }

    /// Parses without running the tests (for `warden policy test`, which
    /// reports them).
    pub fn parse_dir(dir: &Path) -> Result<Self, BundleError> {
        let files = read_dir(dir)?;
        let refs: Vec<(&str, &str)> = files
            .iter()
            .map(|(n, t)| (n.as_str(), t.as_str()))
            .collect();
        Self::from_sources(&dir.display().to_string(), &refs)
    }

    pub fn from_sources(source: &str, files: &[(&str, &str)]) -> Result<Self, BundleError> {
        let mut files: Vec<(&str, &str)> = files.to_vec();
        files.sort_by(|a, b| a.0.cmp(b.0));
        let mut hasher = Sha256::new();
        let mut policies = Vec::new();
        let mut policy_files = Vec::new();
        let mut tests = Vec::new();
        let mut seen = HashSet::new();
        for (name, text) in files {
            hasher.update((name.len() as u64).to_le_bytes());
            hasher.update(name.as_bytes());
            hasher.update((text.len() as u64).to_le_bytes());
            hasher.update(text.as_bytes());
            let parsed = parse_file(name, text)?;
            for p in parsed.policies {
                if !seen.insert(p.id.clone()) {
                    return Err(BundleError::File {
                        file: name.to_owned(),
                        message: format!("policy id {} is used twice in this bundle", p.id),
                    });
                }
                let mut rule_ids = HashSet::new();
                for r in &p.rules {
                    if !rule_ids.insert(&r.id) {
                        return Err(BundleError::File {
                            file: name.to_owned(),
                            message: format!("policy {}: rule id {} is used twice", p.id, r.id),
                        });
                    }
                }
                policies.push(p);
                policy_files.push(name.to_owned());
            }
            tests.extend(parsed.tests.into_iter().map(|t| (name.to_owned(), t)));
        }
        let index = index(&policies);
        Ok(Bundle {
            hash: hex::encode(hasher.finalize()),
            source: source.to_owned(),
            policies,
            policy_files,
            tests,
            index,
        })
    }

    pub fn run_tests(&self) -> TestReport {
        testing::run(self)
    }

    fn check_tests(&self) -> Result<(), BundleError> {
        let report = self.run_tests();
        if report.failures.is_empty() {
            Ok(())
        } else {
            Err(BundleError::TestsFailed(report))
        }
    }
}

/// Parses one file; errors carry the line and column serde_yaml reports.
pub fn parse_file(name: &str, text: &str) -> Result<PolicyFile, BundleError> {
    if text.len() > MAX_FILE_BYTES {
        return Err(BundleError::File {
            file: name.to_owned(),
            message: format!("larger than {MAX_FILE_BYTES} bytes"),
        });
    }
    serde_yaml::from_str::<PolicyFile>(text).map_err(|e| {
        let (line, column) = e.location().map_or((0, 0), |l| (l.line(), l.column()));
        BundleError::Invalid {
            file: name.to_owned(),
            line,
            column,
            message: strip_location(&e.to_string()),
        }
    })
}

/// serde_yaml appends " at line L column C"; the location is reported
/// separately, in `file:line:column` form.
fn strip_location(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}

/// The policy files directly in `dir`, sorted by name.
pub fn read_dir(dir: &Path) -> Result<Vec<(String, String)>, BundleError> {
    let io = |source| BundleError::Io {
        path: dir.to_owned(),
        source,
    };
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        let is_policy = matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml")
        );
        if !is_policy || name.starts_with('.') || !path.is_file() {
            continue;
        }
        if out.len() == MAX_FILES {
            return Err(BundleError::File {
                file: dir.display().to_string(),
                message: format!("more than {MAX_FILES} policy files"),
            });
        }
        let size = entry.metadata().map_err(io)?.len();
        if size > MAX_FILE_BYTES as u64 {
            return Err(BundleError::File {
                file: name,
                message: format!("larger than {MAX_FILE_BYTES} bytes"),
            });
        }
        let text = std::fs::read_to_string(&path).map_err(|source| BundleError::Io {
            path: path.clone(),
            source,
        })?;
        out.push((name, text));
    }
    out.sort();
    Ok(out)
}
