//! Loading one plugin outside the server, for `warden plugin check|call`
//! and `warden bench plugins`: same engine, linker, limits and checks as
//! the server, with grants from `warden.toml` (or everything the manifest
//! requests, when the author asks for it).

use std::path::Path;

use anyhow::Context;

use super::grant::{EffectiveGrant, OperatorGrant};
use super::host::HostServices;
use super::manifest::Manifest;
use super::runtime::{self, LoadedPlugin};
use crate::config::PluginsConfig;

pub struct Standalone {
    pub plugin: LoadedPlugin,
    pub component_path: std::path::PathBuf,
    pub component_bytes: usize,
}

/// An operator grant that allows exactly what the manifest requests.
pub fn grant_everything_requested(manifest: &Manifest) -> OperatorGrant {
    let caps = &manifest.capabilities;
    OperatorGrant {
        llm: caps.llm,
        kv_buckets: caps.kv_buckets.clone(),
        http_hosts: caps.http_hosts.clone(),
        ..Default::default()
    }
}

pub async fn load(
    path: &Path,
    component_override: Option<&Path>,
    config: &PluginsConfig,
    grant_all: bool,
    cache_dir: Option<&Path>,
    services: HostServices,
) -> anyhow::Result<Standalone> {
    let (manifest, manifest_file) = Manifest::load(path)?;
    let component_path = component_override
        .map(Path::to_owned)
        .unwrap_or_else(|| manifest.component_path(&manifest_file));
    let bytes = std::fs::read(&component_path)
        .with_context(|| format!("reading component {}", component_path.display()))?;
    let mut operator = config.grants.get(&manifest.id).cloned();
    if grant_all {
        let mut all = grant_everything_requested(&manifest);
        if let Some(g) = operator {
            all.config = g.config;
            all.allow_private_networks = g.allow_private_networks;
        }
        operator = Some(all);
    }
    let grant = EffectiveGrant::compute(&manifest, operator.as_ref(), &config.limits, |k| {
        std::env::var(k).ok()
    });
    let engine = super::engine::build(
        cache_dir,
        grant.limits.fuel.is_some(),
        grant.limits.memory_bytes,
    )?;
    let linker = runtime::linker(&engine)?;
    let plugin = LoadedPlugin::load(&engine, &linker, manifest, &bytes, grant, services)
        .await
        .with_context(|| format!("loading {}", component_path.display()))?;
    Ok(Standalone {
        plugin,
        component_path,
        component_bytes: bytes.len(),
    })
}
