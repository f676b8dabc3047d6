//! The changes an admin makes: install/upgrade, accept, enable/disable,
//! remove. Each one holds the manager's change lock and leaves disk and
//! database agreeing, whichever step fails.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use sea_orm::{ActiveModelTrait, EntityTrait, Set, TransactionTrait};

use super::load::safe_relative;
use super::views::PluginView;
use super::{Entry, ManageError, PluginManager, Source, Status, event};
use crate::manifest::{MANIFEST_FILE, Manifest, digest_of};
use warden_db::entities::plugin;

impl PluginManager {
    /// Where a known plugin lives: its directory and where that came from.
    async fn location(&self, id: &str) -> Option<(PathBuf, Source)> {
        let entries = self.entries.read().await;
        entries.get(id).map(|e| (e.dir.clone(), e.source.clone()))
    }

    pub(super) async fn record_install(
        &self,
        manifest: &Manifest,
        digest: &str,
        source: &Source,
        actor: &str,
        action: &str,
    ) -> Result<(), sea_orm::DbErr> {
        let now = chrono::Utc::now();
        // Reads the existing row, then writes: see `begin_write`.
        let txn = warden_db::begin_write(&self.db).await?;
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
        let recorded: Result<(), ManageError> = match swap() {
            Ok(()) => self
                .record_install(&manifest, &digest, &Source::Managed, actor, action)
                .await
                .map_err(ManageError::from),
            Err(e) => Err(ManageError::Internal(
                anyhow::Error::new(e).context("moving the plugin files"),
            )),
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
            return Err(e);
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
                digest_changed: false,
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
        let (dir, source) = self
            .location(id)
            .await
            .ok_or_else(|| ManageError::NotFound(format!("no plugin {id:?}")))?;
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
        let (dir, source) = self
            .location(id)
            .await
            .ok_or_else(|| ManageError::NotFound(format!("no plugin {id:?} on disk")))?;
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
}
