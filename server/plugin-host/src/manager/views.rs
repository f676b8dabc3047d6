//! What the API and CLI show of a plugin.

use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
use serde::Serialize;

use super::{ManageError, PluginManager, Source, Status};
use crate::grant::EffectiveGrant;
use crate::runtime::ToolInfo;
use warden_db::entities::plugin_event;

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
    /// The `warden.toml` lines that would grant what the plugin requests
    /// and is not granted (None when nothing is missing).
    pub missing_grant_toml: Option<String>,
    /// A component from a configured directory whose digest changed since
    /// it was recorded: it does not run until an admin accepts it.
    pub awaiting_accept: bool,
}

impl PluginManager {
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
            missing_grant_toml: grant.as_ref().and_then(EffectiveGrant::missing_grant_toml),
            warnings: grant.map(|g| g.warnings).unwrap_or_default(),
            awaiting_accept: e.digest_changed && matches!(e.source, Source::Directory(_)),
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
}
