//! The plugin registry: which plugins are installed, enabled and loaded.
//!
//! Plugins come from `<data_dir>/plugins` (managed: installed through the
//! API or `warden plugin install`) and from configured directories. The
//! `plugins` table records each one's digest at install; every load checks
//! the component against it, so a swapped file is refused rather than run.
//! Every change is written to `plugin_events` in the same transaction.
//!
//! - [`load`]: finding plugin directories, checking a component against its
//!   recorded digest, compiling and instantiating it under its grant;
//! - [`lifecycle`]: install/upgrade, accept, enable/disable, remove: the
//!   changes an admin makes, each one transactional on disk and in the
//!   database;
//! - [`views`]: what the API and CLI show of a plugin.

mod lifecycle;
mod load;
mod views;

pub use load::plugin_dirs;
pub use views::PluginView;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use sea_orm::{ActiveModelTrait, DatabaseConnection, Set};
use serde::Serialize;
use thiserror::Error;
use tokio::sync::{Mutex, RwLock};

use crate::config::PluginsConfig;
use crate::host::HostServices;
use crate::manifest::Manifest;
use crate::runtime::LoadedPlugin;
use load::Engines;
use warden_db::entities::plugin_event;

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
    /// The component on disk is not the one recorded at install.
    digest_changed: bool,
    loaded: Option<Arc<LoadedPlugin>>,
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
