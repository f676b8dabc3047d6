//! Loading: plugin directories, the digest check, compiling and
//! instantiating a component under its grant.

use std::path::{Component as PathComponent, Path, PathBuf};
use std::sync::{Arc, OnceLock};

use sea_orm::EntityTrait;
use wasmtime::Engine;
use wasmtime::component::Linker;

use super::{Entry, LoadError, PluginManager, Source, Status};
use crate::config::PluginsConfig;
use crate::grant::EffectiveGrant;
use crate::manifest::{MANIFEST_FILE, Manifest, digest_of};
use crate::runtime::{self, LoadedPlugin};
use crate::state::CallState;
use warden_db::entities::plugin;

pub(super) struct Engines {
    plain: (Engine, Linker<CallState>),
    metered: OnceLock<(Engine, Linker<CallState>)>,
    cache_dir: Option<PathBuf>,
    max_memory_bytes: u64,
}

impl Engines {
    pub(super) fn new(cache_dir: Option<PathBuf>, config: &PluginsConfig) -> anyhow::Result<Self> {
        // The largest memory any grant allows sizes the allocator's slots.
        let max_mb = config
            .grants
            .values()
            .filter_map(|g| g.memory_mb)
            .chain([config.limits.max_memory_mb])
            .max()
            .unwrap_or(config.limits.max_memory_mb);
        let max_memory_bytes = u64::from(max_mb) << 20;
        let engine = crate::engine::build(cache_dir.as_deref(), false, max_memory_bytes)?;
        let linker = runtime::linker(&engine)?;
        Ok(Engines {
            plain: (engine, linker),
            metered: OnceLock::new(),
            cache_dir,
            max_memory_bytes,
        })
    }

    /// The fuel-metered engine is built only when a plugin has a fuel budget.
    fn for_grant(&self, grant: &EffectiveGrant) -> anyhow::Result<&(Engine, Linker<CallState>)> {
        if grant.limits.fuel.is_none() {
            return Ok(&self.plain);
        }
        if let Some(m) = self.metered.get() {
            return Ok(m);
        }
        let engine = crate::engine::build(self.cache_dir.as_deref(), true, self.max_memory_bytes)?;
        let linker = runtime::linker(&engine)?;
        Ok(self.metered.get_or_init(|| (engine, linker)))
    }
}

impl PluginManager {
    /// Loads (or reloads) the plugin in `dir`, recording a first sighting as
    /// an install.
    pub(super) async fn load_dir(&self, dir: &Path, source: Source, actor: &str) {
        let (manifest, manifest_file) = match Manifest::load(dir) {
            Ok(m) => m,
            Err(e) => {
                let key = dir
                    .file_name()
                    .map_or("?".into(), |n| n.to_string_lossy().into_owned());
                tracing::error!("plugin in {} not loaded: {e}", dir.display());
                let mut entries = self.entries.write().await;
                if entries.get(&key).is_some_and(|e| e.dir != dir) {
                    return; // never shadow a loaded plugin that happens to share the name
                }
                entries.insert(
                    key,
                    Entry {
                        source,
                        dir: dir.to_owned(),
                        manifest: None,
                        status: Status::Failed,
                        error: Some(e.to_string()),
                        digest_changed: false,
                        loaded: None,
                    },
                );
                return;
            }
        };
        let id = manifest.id.clone();
        let result = self
            .load_checked(&manifest, &manifest_file, &source, actor)
            .await;
        let digest_changed = matches!(result, Err(LoadError::DigestChanged { .. }));
        let (status, error, loaded) = match result {
            Ok(Some(p)) => {
                tracing::info!(plugin = %id, tools = p.tools.len(), "plugin loaded");
                (Status::Active, None, Some(Arc::new(p)))
            }
            Ok(None) => (Status::Disabled, None, None),
            Err(e) => {
                tracing::error!(plugin = %id, "plugin not loaded: {e}");
                (Status::Failed, Some(e.to_string()), None)
            }
        };
        self.entries.write().await.insert(
            id,
            Entry {
                source,
                dir: dir.to_owned(),
                manifest: Some(manifest),
                status,
                error,
                digest_changed,
                loaded,
            },
        );
    }

    /// `Ok(None)` when disabled.
    async fn load_checked(
        &self,
        manifest: &Manifest,
        manifest_file: &Path,
        source: &Source,
        actor: &str,
    ) -> Result<Option<LoadedPlugin>, LoadError> {
        let component = manifest.component_path(manifest_file);
        let bytes = std::fs::read(&component).map_err(|source| LoadError::Read {
            path: component.clone(),
            source,
        })?;
        let digest = digest_of(&bytes);
        let row = plugin::Entity::find_by_id(manifest.id.clone())
            .one(&self.db)
            .await?;
        match row {
            None => {
                self.record_install(manifest, &digest, source, actor, "install")
                    .await
                    .map_err(LoadError::RecordInstall)?;
            }
            Some(row) if row.source != source.db_text() => {
                return Err(LoadError::InstalledElsewhere {
                    id: manifest.id.clone(),
                    installed_from: row.source,
                });
            }
            Some(row) if row.digest != digest => {
                let how = match source {
                    Source::Managed => format!(
                        "reinstall it to accept the new component: `warden plugin install {}`",
                        manifest_file.parent().unwrap_or(Path::new(".")).display()
                    ),
                    Source::Directory(_) => format!(
                        "accept the new component with POST /api/plugins/{}/accept (admin)",
                        manifest.id
                    ),
                };
                return Err(LoadError::DigestChanged {
                    recorded: row.digest,
                    found: digest,
                    how,
                });
            }
            Some(row) if !row.enabled => return Ok(None),
            Some(_) => {}
        }
        self.instantiate(manifest.clone(), &bytes).await.map(Some)
    }

    /// The plugin's request intersected with this host's grant for it.
    pub(super) fn grant_for(&self, manifest: &Manifest) -> EffectiveGrant {
        EffectiveGrant::compute(
            manifest,
            self.config.grants.get(&manifest.id),
            &self.config.limits,
            |k| std::env::var(k).ok(),
        )
    }

    pub(super) async fn instantiate(
        &self,
        manifest: Manifest,
        bytes: &[u8],
    ) -> Result<LoadedPlugin, LoadError> {
        let grant = self.grant_for(&manifest);
        for w in &grant.warnings {
            tracing::warn!(plugin = %manifest.id, "{w}");
        }
        let (engine, linker) = self
            .engines
            .for_grant(&grant)
            .map_err(LoadError::Component)?;
        LoadedPlugin::load(
            engine,
            linker,
            manifest,
            bytes,
            grant,
            self.services.clone(),
        )
        .await
        .map_err(LoadError::Component)
    }
}

/// Subdirectories of `root` that hold a `plugin.toml`, sorted.
pub fn plugin_dirs(root: &Path) -> Vec<PathBuf> {
    let Ok(read) = std::fs::read_dir(root) else {
        return Vec::new();
    };
    let mut dirs: Vec<PathBuf> = read
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            let hidden = p
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'));
            !hidden && p.join(MANIFEST_FILE).is_file()
        })
        .collect();
    dirs.sort();
    dirs
}

/// `path` if it stays inside its base directory.
pub(super) fn safe_relative(path: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            PathComponent::Normal(part) => out.push(part),
            PathComponent::CurDir => {}
            _ => return None,
        }
    }
    (!out.as_os_str().is_empty()).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn component_paths_must_stay_inside_the_plugin_dir() {
        assert_eq!(
            safe_relative(Path::new("a.wasm")),
            Some(PathBuf::from("a.wasm"))
        );
        assert_eq!(
            safe_relative(Path::new("./t/r/a.wasm")),
            Some(PathBuf::from("t/r/a.wasm"))
        );
        for bad in ["../a.wasm", "/etc/passwd", "t/../../a", ""] {
            assert_eq!(safe_relative(Path::new(bad)), None, "{bad}");
        }
    }
}
