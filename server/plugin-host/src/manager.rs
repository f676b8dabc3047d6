//! The plugin registry: which plugins are installed, enabled and loaded.
//!
//! Plugins come from `<data_dir>/plugins` (managed: installed through the
//! API or `warden plugin install`) and from configured directories. The
//! `plugins` table records each one's digest at install; every load checks
//! the component against it, so a swapped file is refused rather than run.
//! Every change is written to `plugin_events` in the same transaction.

use std::collections::BTreeMap;
use std::path::{Component as PathComponent, Path, PathBuf};
use std::sync::{Arc, OnceLock};

use anyhow::Context;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, Set,
    TransactionTrait,
};
use serde::Serialize;
use thiserror::Error;
use tokio::sync::{Mutex, RwLock};
use wasmtime::Engine;
use wasmtime::component::Linker;

use super::grant::EffectiveGrant;
use super::host::HostServices;
use super::manifest::{MANIFEST_FILE, Manifest, digest_of};
use super::runtime::{self, LoadedPlugin, ToolInfo};
use super::state::CallState;
use crate::config::PluginsConfig;
use warden_db::entities::{plugin, plugin_event};

#[derive(Debug, Error)]
pub enum ManageError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    /// The component or manifest was read but cannot run here.
    #[error("{0}")]
    Rejected(String),
    #[error("internal error: {0:#}")]
    Internal(#[from] anyhow::Error),
}

/// Why an installed plugin did not load; shown on the plugin's entry.
#[derive(Debug, Error)]
enum LoadError {
    #[error("cannot read component {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("database: {0}")]
    Db(#[from] sea_orm::DbErr),
    #[error("recording the install: {0}")]
    RecordInstall(sea_orm::DbErr),
    #[error("plugin id {id} is already installed from {installed_from}; remove one of them")]
    InstalledElsewhere { id: String, installed_from: String },
    #[error(
        "component digest changed since install (recorded {recorded}, found {found}); refusing to run it; {how}"
    )]
    DigestChanged {
        recorded: String,
        found: String,
        how: String,
    },
    /// Compiling, linking or describing the component failed.
    #[error("{0:#}")]
    Component(anyhow::Error),
}

impl From<sea_orm::DbErr> for ManageError {
    fn from(e: sea_orm::DbErr) -> Self {
        ManageError::Internal(anyhow::Error::new(e).context("database"))
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", content = "path", rename_all = "lowercase")]
pub enum Source {
    Managed,
    Directory(PathBuf),
}

impl Source {
    fn db_text(&self) -> String {
        match self {
            Source::Managed => "managed".into(),
            Source::Directory(p) => format!("directory:{}", p.display()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Active,
    Disabled,
    Failed,
}

struct Entry {
    source: Source,
    dir: PathBuf,
    manifest: Option<Manifest>,
    status: Status,
    error: Option<String>,
    loaded: Option<Arc<LoadedPlugin>>,
}

/// One plugin as the API and CLI show it.
#[derive(Debug, Serialize)]
pub struct PluginView {
    pub id: String,
    pub name: Option<String>,
    pub version: Option<String>,
    pub description: Option<String>,
    pub source: Source,
    pub status: Status,
    pub error: Option<String>,
    pub digest: Option<String>,
    pub tools: Vec<ToolInfo>,
    pub grant: Vec<String>,
    pub warnings: Vec<String>,
}

struct Engines {
    plain: (Engine, Linker<CallState>),
    metered: OnceLock<(Engine, Linker<CallState>)>,
    cache_dir: Option<PathBuf>,
    max_memory_bytes: u64,
}

impl Engines {
    fn new(cache_dir: Option<PathBuf>, config: &PluginsConfig) -> anyhow::Result<Self> {
        // The largest memory any grant allows sizes the allocator's slots.
        let max_mb = config
            .grants
            .values()
            .filter_map(|g| g.memory_mb)
            .chain([config.limits.max_memory_mb])
            .max()
            .unwrap_or(config.limits.max_memory_mb);
        let max_memory_bytes = u64::from(max_mb) << 20;
        let engine = super::engine::build(cache_dir.as_deref(), false, max_memory_bytes)?;
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
        let engine = super::engine::build(self.cache_dir.as_deref(), true, self.max_memory_bytes)?;
        let linker = runtime::linker(&engine)?;
        Ok(self.metered.get_or_init(|| (engine, linker)))
    }
}

pub struct PluginManager {
    engines: Engines,
    config: PluginsConfig,
    managed_dir: PathBuf,
    db: DatabaseConnection,
    services: HostServices,
    entries: RwLock<BTreeMap<String, Entry>>,
    changes: Mutex<()>,
}

impl PluginManager {
    /// Builds the engine and loads every plugin found. A plugin that fails
    /// to load is listed with its error; it never stops the server.
    pub async fn start(
        config: PluginsConfig,
        managed_dir: PathBuf,
        cache_dir: Option<PathBuf>,
        db: DatabaseConnection,
        services: HostServices,
    ) -> anyhow::Result<PluginManager> {
        std::fs::create_dir_all(&managed_dir)
            .with_context(|| format!("creating {}", managed_dir.display()))?;
        let manager = PluginManager {
            engines: Engines::new(cache_dir, &config)?,
            config,
            managed_dir: managed_dir.clone(),
            db,
            services,
            entries: RwLock::new(BTreeMap::new()),
            changes: Mutex::new(()),
        };
        let mut sources = vec![(managed_dir, Source::Managed)];
        for dir in &manager.config.directories {
            sources.push((dir.clone(), Source::Directory(dir.clone())));
        }
        for (root, source) in sources {
            for dir in plugin_dirs(&root) {
                manager.load_dir(&dir, source.clone(), "startup").await;
            }
        }
        Ok(manager)
    }

    /// Loads (or reloads) the plugin in `dir`, recording a first sighting as
    /// an install.
    async fn load_dir(&self, dir: &Path, source: Source, actor: &str) {
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
    fn grant_for(&self, manifest: &Manifest) -> EffectiveGrant {
        EffectiveGrant::compute(
            manifest,
            self.config.grants.get(&manifest.id),
            &self.config.limits,
            |k| std::env::var(k).ok(),
        )
    }

    async fn instantiate(
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

    async fn record_install(
        &self,
        manifest: &Manifest,
        digest: &str,
        source: &Source,
        actor: &str,
        action: &str,
    ) -> Result<(), sea_orm::DbErr> {
        let now = chrono::Utc::now();
        let txn = self.db.begin().await?;
        let existing = plugin::Entity::find_by_id(manifest.id.clone())
            .one(&txn)
            .await?;
        let row = plugin::ActiveModel {
            id: Set(manifest.id.clone()),
            name: Set(manifest.name.clone()),
            version: Set(manifest.version.clone()),
            digest: Set(digest.to_owned()),
            source: Set(source.db_text()),
            enabled: Set(existing.as_ref().is_none_or(|r| r.enabled)),
            installed_at: Set(existing.as_ref().map_or(now, |r| r.installed_at)),
            updated_at: Set(now),
        };
        if existing.is_some() {
            row.update(&txn).await?;
        } else {
            row.insert(&txn).await?;
        }
        event(
            &txn,
            &manifest.id,
            action,
            actor,
            Some(format!("version {} {digest}", manifest.version)),
        )
        .await?;
        txn.commit().await
    }

    /// Installs (or upgrades) a managed plugin from a manifest and component.
    /// The component is compiled and described before anything is written,
    /// so a rejected upload leaves no trace.
    pub async fn install(
        &self,
        manifest_text: &str,
        component: &[u8],
        actor: &str,
    ) -> Result<PluginView, ManageError> {
        let _guard = self.changes.lock().await;
        let manifest = Manifest::parse(manifest_text, Path::new(MANIFEST_FILE))
            .map_err(|e| ManageError::BadRequest(e.to_string()))?;
        let relative = safe_relative(&manifest.component)
            .filter(|r| {
                r.file_name()
                    .is_some_and(|n| n != MANIFEST_FILE && !n.to_string_lossy().starts_with('.'))
            })
            .ok_or_else(|| {
            ManageError::BadRequest(format!(
                "plugin.toml: component {:?} must be a relative path inside the plugin directory",
                manifest.component
            ))
        })?;
        let id = manifest.id.clone();
        if let Some(e) = self.entries.read().await.get(&id)
            && e.source != Source::Managed
        {
            return Err(ManageError::Conflict(format!(
                "plugin {id} comes from a configured directory ({}); update it there",
                e.dir.display()
            )));
        }
        let digest = digest_of(component);
        let unchanged = {
            let entries = self.entries.read().await;
            entries.get(&id).is_some_and(|e| {
                e.loaded.as_ref().is_some_and(|p| p.digest == digest)
                    && std::fs::read_to_string(e.dir.join(MANIFEST_FILE))
                        .is_ok_and(|t| t == manifest_text)
            })
        };
        if unchanged {
            return self.view(&id).await;
        }
        let loaded = self
            .instantiate(manifest.clone(), component)
            .await
            .map_err(|e| ManageError::Rejected(format!("component rejected: {e}")))?;

        let staging = self
            .managed_dir
            .join(format!(".staging-{}", uuid::Uuid::new_v4().simple()));
        let write = || -> std::io::Result<()> {
            let target = staging.join(&relative);
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(staging.join(MANIFEST_FILE), manifest_text)?;
            std::fs::write(target, component)
        };
        if let Err(e) = write() {
            let _ = std::fs::remove_dir_all(&staging);
            return Err(ManageError::Internal(
                anyhow::Error::new(e).context("writing the plugin files"),
            ));
        }
        let final_dir = self.managed_dir.join(&id);
        let previous = self
            .managed_dir
            .join(format!(".previous-{}", uuid::Uuid::new_v4().simple()));
        let had_previous = final_dir.exists();
        let swap = || -> std::io::Result<()> {
            if had_previous {
                std::fs::rename(&final_dir, &previous)?;
            }
            std::fs::rename(&staging, &final_dir)
        };
        let action = if had_previous { "upgrade" } else { "install" };
        let recorded = match swap() {
            Ok(()) => {
                self.record_install(&manifest, &digest, &Source::Managed, actor, action)
                    .await
            }
            Err(e) => Err(sea_orm::DbErr::Custom(format!(
                "moving the plugin files: {e}"
            ))),
        };
        if let Err(e) = recorded {
            // Put the old files back so disk and database still agree.
            let _ = std::fs::remove_dir_all(&staging);
            if final_dir.exists() {
                let _ = std::fs::remove_dir_all(&final_dir);
            }
            if had_previous {
                let _ = std::fs::rename(&previous, &final_dir);
            }
            return Err(e.into());
        }
        if had_previous {
            let _ = std::fs::remove_dir_all(&previous);
        }
        let enabled = plugin::Entity::find_by_id(id.clone())
            .one(&self.db)
            .await?
            .is_none_or(|r| r.enabled);
        let (status, loaded) = if enabled {
            (Status::Active, Some(Arc::new(loaded)))
        } else {
            (Status::Disabled, None)
        };
        self.entries.write().await.insert(
            id.clone(),
            Entry {
                source: Source::Managed,
                dir: final_dir,
                manifest: Some(manifest),
                status,
                error: None,
                loaded,
            },
        );
        tracing::info!(plugin = %id, %actor, "plugin {action}ed");
        self.view(&id).await
    }

    /// Accepts the component now on disk for a plugin from a configured
    /// directory (whose digest changed since it was recorded): records the
    /// new digest and loads it. Managed plugins are reinstalled instead.
    pub async fn accept(&self, id: &str, actor: &str) -> Result<PluginView, ManageError> {
        let _guard = self.changes.lock().await;
        let (dir, source) = {
            let entries = self.entries.read().await;
            let e = entries
                .get(id)
                .ok_or_else(|| ManageError::NotFound(format!("no plugin {id:?}")))?;
            (e.dir.clone(), e.source.clone())
        };
        if source == Source::Managed {
            return Err(ManageError::Conflict(format!(
                "plugin {id} is managed; install the new component instead"
            )));
        }
        let (manifest, manifest_file) =
            Manifest::load(&dir).map_err(|e| ManageError::Rejected(e.to_string()))?;
        if manifest.id != id {
            return Err(ManageError::Conflict(format!(
                "{} now declares id {}; remove and re-add the directory",
                dir.display(),
                manifest.id
            )));
        }
        let bytes = std::fs::read(manifest.component_path(&manifest_file))
            .map_err(|e| ManageError::Rejected(format!("cannot read the component: {e}")))?;
        // Compile and describe first: a component that cannot run is not accepted.
        self.instantiate(manifest.clone(), &bytes)
            .await
            .map_err(|e| ManageError::Rejected(format!("component rejected: {e}")))?;
        self.record_install(&manifest, &digest_of(&bytes), &source, actor, "accept")
            .await?;
        self.load_dir(&dir, source, actor).await;
        self.view(id).await
    }

    pub async fn set_enabled(
        &self,
        id: &str,
        enabled: bool,
        actor: &str,
    ) -> Result<PluginView, ManageError> {
        let _guard = self.changes.lock().await;
        let row = plugin::Entity::find_by_id(id.to_owned())
            .one(&self.db)
            .await?
            .ok_or_else(|| ManageError::NotFound(format!("no plugin {id:?}")))?;
        if row.enabled != enabled {
            let txn = self.db.begin().await?;
            let mut active: plugin::ActiveModel = row.into();
            active.enabled = Set(enabled);
            active.updated_at = Set(chrono::Utc::now());
            active.update(&txn).await?;
            event(
                &txn,
                id,
                if enabled { "enable" } else { "disable" },
                actor,
                None,
            )
            .await?;
            txn.commit().await?;
        }
        let (dir, source) = {
            let entries = self.entries.read().await;
            let e = entries
                .get(id)
                .ok_or_else(|| ManageError::NotFound(format!("no plugin {id:?} on disk")))?;
            (e.dir.clone(), e.source.clone())
        };
        if enabled {
            self.load_dir(&dir, source, actor).await;
        } else if let Some(e) = self.entries.write().await.get_mut(id) {
            e.loaded = None;
            e.status = Status::Disabled;
            e.error = None;
        }
        self.view(id).await
    }

    /// Removes a managed plugin: its files, its row (the events stay) and,
    /// when `purge_data`, everything it stored in kv.
    pub async fn remove(&self, id: &str, purge_data: bool, actor: &str) -> Result<(), ManageError> {
        let _guard = self.changes.lock().await;
        let dir = {
            let entries = self.entries.read().await;
            match entries.get(id) {
                Some(e) if e.source != Source::Managed => {
                    return Err(ManageError::Conflict(format!(
                        "plugin {id} comes from a configured directory ({}); remove it there or disable it",
                        e.dir.display()
                    )));
                }
                Some(e) => Some(e.dir.clone()),
                None => None,
            }
        };
        let row = plugin::Entity::find_by_id(id.to_owned())
            .one(&self.db)
            .await?;
        if row.is_none() && dir.is_none() {
            return Err(ManageError::NotFound(format!("no plugin {id:?}")));
        }
        // Move the files aside first, so a failure leaves either the old
        // state or the new one, never a row without files or files without
        // a row.
        let parked = match &dir {
            Some(d) if d.exists() => {
                let parked = self
                    .managed_dir
                    .join(format!(".removed-{}", uuid::Uuid::new_v4().simple()));
                std::fs::rename(d, &parked)
                    .with_context(|| format!("moving {} aside", d.display()))
                    .map_err(ManageError::Internal)?;
                Some((d.clone(), parked))
            }
            _ => None,
        };
        let committed = async {
            let txn = self.db.begin().await?;
            plugin::Entity::delete_by_id(id.to_owned())
                .exec(&txn)
                .await?;
            if purge_data {
                self.services.kv.purge_in(&txn, id).await?;
            }
            let detail = if purge_data {
                "kv data purged"
            } else {
                "kv data kept"
            };
            event(&txn, id, "remove", actor, Some(detail.to_owned())).await?;
            txn.commit().await
        }
        .await;
        if let Err(e) = committed {
            if let Some((original, parked)) = &parked {
                let _ = std::fs::rename(parked, original);
            }
            return Err(e.into());
        }
        self.entries.write().await.remove(id);
        if let Some((_, parked)) = parked
            && let Err(e) = std::fs::remove_dir_all(&parked)
        {
            tracing::warn!(
                "removed plugin {id}, but could not delete {}: {e}",
                parked.display()
            );
        }
        tracing::info!(plugin = %id, %actor, "plugin removed");
        Ok(())
    }

    /// The loaded plugin, or why it cannot be called.
    pub async fn get(&self, id: &str) -> Result<Arc<LoadedPlugin>, ManageError> {
        let entries = self.entries.read().await;
        let e = entries
            .get(id)
            .ok_or_else(|| ManageError::NotFound(format!("no plugin {id:?}")))?;
        match (&e.status, &e.loaded) {
            (Status::Active, Some(p)) => Ok(p.clone()),
            (Status::Disabled, _) => Err(ManageError::Conflict(format!("plugin {id} is disabled"))),
            _ => Err(ManageError::Conflict(format!(
                "plugin {id} failed to load: {}",
                e.error.as_deref().unwrap_or("unknown error")
            ))),
        }
    }

    /// Every loaded plugin, for agents choosing tools.
    pub async fn active(&self) -> Vec<Arc<LoadedPlugin>> {
        self.entries
            .read()
            .await
            .values()
            .filter_map(|e| e.loaded.clone())
            .collect()
    }

    pub async fn list(&self) -> Vec<PluginView> {
        let ids: Vec<String> = self.entries.read().await.keys().cloned().collect();
        let mut out = Vec::new();
        for id in ids {
            if let Ok(v) = self.view(&id).await {
                out.push(v);
            }
        }
        out
    }

    pub async fn view(&self, id: &str) -> Result<PluginView, ManageError> {
        let entries = self.entries.read().await;
        let e = entries
            .get(id)
            .ok_or_else(|| ManageError::NotFound(format!("no plugin {id:?}")))?;
        let m = e.manifest.as_ref();
        let grant = match (&e.loaded, m) {
            (Some(p), _) => Some((*p.grant).clone()),
            (None, Some(m)) => Some(self.grant_for(m)),
            (None, None) => None,
        };
        Ok(PluginView {
            id: id.to_owned(),
            name: m.map(|m| m.name.clone()),
            version: m.map(|m| m.version.clone()),
            description: m.map(|m| m.description.clone()),
            source: e.source.clone(),
            status: e.status.clone(),
            error: e.error.clone(),
            digest: e.loaded.as_ref().map(|p| p.digest.clone()),
            tools: e
                .loaded
                .as_ref()
                .map(|p| p.tools.clone())
                .unwrap_or_default(),
            grant: grant
                .as_ref()
                .map(EffectiveGrant::summary)
                .unwrap_or_default(),
            warnings: grant.map(|g| g.warnings).unwrap_or_default(),
        })
    }

    /// The change history of one plugin, oldest first.
    pub async fn events(&self, id: &str) -> Result<Vec<plugin_event::Model>, ManageError> {
        Ok(plugin_event::Entity::find()
            .filter(plugin_event::Column::PluginId.eq(id))
            .order_by_asc(plugin_event::Column::Id)
            .all(&self.db)
            .await?)
    }

    pub fn max_upload_bytes(&self) -> usize {
        self.config.max_upload_bytes.unwrap_or(32 << 20)
    }
}

async fn event(
    db: &impl sea_orm::ConnectionTrait,
    plugin_id: &str,
    action: &str,
    actor: &str,
    detail: Option<String>,
) -> Result<(), sea_orm::DbErr> {
    plugin_event::ActiveModel {
        plugin_id: Set(plugin_id.to_owned()),
        action: Set(action.to_owned()),
        actor: Set(Some(actor.to_owned())),
        detail: Set(detail),
        created_at: Set(chrono::Utc::now()),
        ..Default::default()
    }
    .insert(db)
    .await?;
    Ok(())
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
fn safe_relative(path: &Path) -> Option<PathBuf> {
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
