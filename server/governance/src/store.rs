//! The active bundle and its hot reload. A reload parses and tests the
//! whole directory off to the side; only a bundle whose tests pass replaces
//! the active one, in one pointer swap, so evaluations in flight finish on
//! the bundle they started with. A bad edit leaves the last good bundle in
//! place and is reported (log and `GET /api/policies`).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use serde::Serialize;

use warden_policy::bundle::{Bundle, BundleError};

#[derive(Debug, Clone)]
pub enum PolicySource {
    Dir(PathBuf),
    /// The policies compiled into the binary (no directory configured).
    Defaults,
}

/// Why a reload did not activate the directory; the last good bundle
/// stays active. Kept (with when) for `GET /api/policies`.
#[derive(Debug, Clone, Serialize, thiserror::Error)]
#[error("{message}")]
pub struct ReloadError {
    pub at: String,
    pub message: String,
    /// Where in which file, when the error is a parse error.
    pub location: Option<ErrorLocation>,
    /// The inline tests that failed, when that is why.
    pub failed_tests: Vec<FailedTest>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ErrorLocation {
    pub file: String,
    pub line: usize,
    pub column: usize,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct FailedTest {
    pub file: String,
    pub name: String,
    pub problems: Vec<String>,
}

impl ReloadError {
    fn new(message: String) -> Self {
        Self {
            at: crate::audit::record::now_rfc3339(),
            message,
            location: None,
            failed_tests: Vec::new(),
        }
    }

    fn of(e: &BundleError) -> Self {
        let mut r = Self::new(e.to_string());
        match e {
            BundleError::Invalid {
                file, line, column, ..
            } => {
                r.location = Some(ErrorLocation {
                    file: file.clone(),
                    line: *line,
                    column: *column,
                });
            }
            BundleError::File { file, .. } => {
                r.location = Some(ErrorLocation {
                    file: file.clone(),
                    line: 0,
                    column: 0,
                });
            }
            BundleError::TestsFailed(report) => {
                r.failed_tests = report
                    .failures
                    .iter()
                    .map(|f| FailedTest {
                        file: f.file.clone(),
                        name: f.name.clone(),
                        problems: f.problems.clone(),
                    })
                    .collect();
            }
            BundleError::Io { .. } => {}
        }
        r
    }
}

#[derive(Default)]
struct ReloadState {
    activated_at: String,
    last_error: Option<ReloadError>,
    /// Names, sizes and modification times seen at the last check.
    fingerprint: Vec<(String, u64, Option<SystemTime>)>,
}

pub struct PolicyStore {
    source: PolicySource,
    active: RwLock<Arc<Bundle>>,
    state: Mutex<ReloadState>,
    /// One reload at a time (the watcher and the API may both ask), so an
    /// older directory state can never be activated after a newer one.
    reloading: Mutex<()>,
}

/// What `GET /api/policies` reports.
#[derive(Debug, Serialize)]
pub struct PolicyStatus {
    pub source: String,
    pub bundle: String,
    pub activated_at: String,
    pub policies: Vec<PolicySummary>,
    pub tests: usize,
    /// The active bundle's inline tests by file: every one passed, or the
    /// bundle would not be active.
    pub tests_by_file: Vec<FileTests>,
    pub last_reload_error: Option<ReloadError>,
}

#[derive(Debug, Serialize)]
pub struct FileTests {
    pub file: String,
    pub passed: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct PolicySummary {
    pub id: String,
    pub version: u32,
    pub description: String,
    pub mode: warden_policy::Mode,
    pub file: String,
    pub scope: warden_policy::spec::Scope,
    pub rules: Vec<RuleSummary>,
}

#[derive(Debug, Serialize)]
pub struct RuleSummary {
    pub id: String,
    pub stages: Vec<warden_policy::Stage>,
    pub action: warden_policy::Action,
    pub severity: warden_policy::Severity,
    pub mode: warden_policy::Mode,
    pub detectors: Vec<&'static str>,
}

impl PolicyStore {
    /// Loads the initial bundle; unlike a reload, failure here is fatal.
    pub fn open(source: PolicySource) -> Result<Self, BundleError> {
        let (bundle, fingerprint) = match &source {
            PolicySource::Dir(dir) => {
                let fp = fingerprint(dir).map_err(|source| BundleError::Io {
                    path: dir.clone(),
                    source,
                })?;
                (Bundle::load_dir(dir)?, fp)
            }
            PolicySource::Defaults => (Bundle::defaults()?, Vec::new()),
        };
        Ok(Self {
            source,
            active: RwLock::new(Arc::new(bundle)),
            state: Mutex::new(ReloadState {
                activated_at: crate::audit::record::now_rfc3339(),
                last_error: None,
                fingerprint,
            }),
            reloading: Mutex::new(()),
        })
    }

    /// A store over an already built bundle (tests, benchmarks).
    pub fn fixed(bundle: Bundle) -> Self {
        Self {
            source: PolicySource::Defaults,
            active: RwLock::new(Arc::new(bundle)),
            state: Mutex::new(ReloadState {
                activated_at: crate::audit::record::now_rfc3339(),
                ..ReloadState::default()
            }),
            reloading: Mutex::new(()),
        }
    }

    pub fn current(&self) -> Arc<Bundle> {
        self.active
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, ReloadState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Re-reads the directory if anything in it changed (or `force`).
    /// Returns the new bundle hash when a different bundle was activated.
    pub fn reload(&self, force: bool) -> Result<Option<String>, ReloadError> {
        let PolicySource::Dir(dir) = &self.source else {
            return Ok(None);
        };
        let _one_at_a_time = self.reloading.lock().unwrap_or_else(|e| e.into_inner());
        let fp = fingerprint(dir).map_err(|e| {
            self.fail(ReloadError::new(format!(
                "cannot read {}: {e}",
                dir.display()
            )))
        })?;
        if !force && fp == self.state().fingerprint {
            return Ok(None);
        }
        let loaded = Bundle::load_dir(dir);
        let mut state = self.state();
        state.fingerprint = fp;
        match loaded {
            Ok(bundle) => {
                state.last_error = None;
                if bundle.hash == self.current().hash {
                    return Ok(None);
                }
                let hash = bundle.hash.clone();
                *self.active.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(bundle);
                state.activated_at = crate::audit::record::now_rfc3339();
                tracing::info!(bundle = %hash, "policy bundle activated");
                Ok(Some(hash))
            }
            Err(e) => {
                drop(state);
                Err(self.fail(ReloadError::of(&e)))
            }
        }
    }

    fn fail(&self, error: ReloadError) -> ReloadError {
        tracing::warn!(error = %error.message, "policy reload refused; the last good bundle stays active");
        self.state().last_error = Some(error.clone());
        error
    }

    /// Polls the directory every `interval` and reloads on change.
    pub fn watch(self: &Arc<Self>, interval: Duration) -> Option<tokio::task::JoinHandle<()>> {
        if !matches!(self.source, PolicySource::Dir(_)) {
            return None;
        }
        let store = Arc::clone(self);
        Some(tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let s = Arc::clone(&store);
                let _ = tokio::task::spawn_blocking(move || s.reload(false)).await;
            }
        }))
    }

    pub fn status(&self) -> PolicyStatus {
        let bundle = self.current();
        let state = self.state();
        PolicyStatus {
            source: bundle.source.clone(),
            bundle: bundle.hash.clone(),
            activated_at: state.activated_at.clone(),
            tests: bundle.tests.len(),
            tests_by_file: {
                let mut by_file: Vec<FileTests> = Vec::new();
                for (file, test) in &bundle.tests {
                    match by_file.last_mut() {
                        Some(f) if &f.file == file => f.passed.push(test.name.clone()),
                        _ => by_file.push(FileTests {
                            file: file.clone(),
                            passed: vec![test.name.clone()],
                        }),
                    }
                }
                by_file
            },
            last_reload_error: state.last_error.clone(),
            policies: bundle
                .policies
                .iter()
                .zip(&bundle.policy_files)
                .map(|(p, file)| PolicySummary {
                    id: p.id.to_string(),
                    version: p.version,
                    description: p.description.clone(),
                    mode: p.mode,
                    file: file.clone(),
                    scope: p.scope.clone(),
                    rules: p
                        .rules
                        .iter()
                        .map(|r| RuleSummary {
                            id: r.id.to_string(),
                            stages: r.stages.clone(),
                            action: r.action,
                            severity: r.severity,
                            mode: r.mode.unwrap_or(p.mode),
                            detectors: r.matcher.detectors().iter().map(|d| d.name()).collect(),
                        })
                        .collect(),
                })
                .collect(),
        }
    }
}

fn fingerprint(dir: &Path) -> std::io::Result<Vec<(String, u64, Option<SystemTime>)>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        // Follows symlinks: an edit to a linked file is an edit.
        let meta = std::fs::metadata(entry.path())?;
        out.push((
            entry.file_name().to_string_lossy().into_owned(),
            meta.len(),
            meta.modified().ok(),
        ));
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "policies:\n  - id: x\n    version: 1\n    rules: []\ntests:\n  - name: says hi\n    stage: output\n    input: hi\n    expect: { decision: allow }\n";

    fn store_over(files: &[(&str, &str)]) -> (tempfile::TempDir, PolicyStore) {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        let store = PolicyStore::open(PolicySource::Dir(dir.path().to_owned())).unwrap();
        (dir, store)
    }

    #[test]
    fn status_lists_the_active_bundles_tests_by_file() {
        let (_dir, store) = store_over(&[("a.yaml", GOOD)]);
        let status = store.status();
        assert_eq!(status.tests, 1);
        assert_eq!(status.tests_by_file.len(), 1);
        assert_eq!(status.tests_by_file[0].file, "a.yaml");
        assert_eq!(status.tests_by_file[0].passed, ["says hi"]);
    }

    #[test]
    fn a_parse_error_is_kept_with_its_file_line_and_column() {
        let (dir, store) = store_over(&[("a.yaml", GOOD)]);
        std::fs::write(
            dir.path().join("b.yaml"),
            "policies:\n  - id: y\n    version: one\n",
        )
        .unwrap();
        let e = store.reload(true).unwrap_err();
        let at = e.location.clone().expect("a location");
        assert_eq!((at.file.as_str(), at.line), ("b.yaml", 3), "{e:?}");
        assert!(at.column > 0, "{e:?}");
        assert!(e.failed_tests.is_empty());
        let kept = store
            .status()
            .last_reload_error
            .expect("kept for the status");
        assert_eq!(kept.location, Some(at));
    }

    #[test]
    fn failing_inline_tests_are_kept_by_name_with_what_differed() {
        let (dir, store) = store_over(&[("a.yaml", GOOD)]);
        std::fs::write(
            dir.path().join("a.yaml"),
            GOOD.replace("decision: allow", "decision: block"),
        )
        .unwrap();
        let e = store.reload(true).unwrap_err();
        assert_eq!(e.location, None);
        assert_eq!(e.failed_tests.len(), 1, "{e:?}");
        let failed = &e.failed_tests[0];
        assert_eq!(
            (failed.file.as_str(), failed.name.as_str()),
            ("a.yaml", "says hi")
        );
        assert!(
            failed.problems[0].contains("expected block, got allow"),
            "{:?}",
            failed.problems
        );
        // The last good bundle stays, and a good reload clears the error.
        assert_eq!(store.status().tests_by_file[0].passed, ["says hi"]);
        std::fs::write(dir.path().join("a.yaml"), GOOD).unwrap();
        store.reload(true).unwrap();
        assert!(store.status().last_reload_error.is_none());
    }
}
