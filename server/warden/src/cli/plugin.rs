//! `warden plugin ...`: the author and operator verbs.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use tokio::sync::OnceCell;

use crate::adapters::LazyRegistryLlm;
use crate::config::Config;
use warden_plugin_host::kv_store::KvStore;
use warden_plugin_host::manager::plugin_dirs;
use warden_plugin_host::{CallRequest, HostServices, Manifest, PluginManager, standalone};

#[derive(Subcommand)]
pub enum PluginCommand {
    /// Scaffold a plugin crate that builds and passes `warden plugin check`.
    New(NewArgs),
    /// Validate a plugin: manifest, component, tools, capabilities.
    Check(TargetArgs),
    /// Run one tool under production limits; prints output, time and memory.
    Call(CallArgs),
    /// List installed plugins (from the database and plugin directories).
    List,
    /// Install (or upgrade) a plugin into the data directory.
    Install(TargetArgs),
}

#[derive(Args)]
pub struct NewArgs {
    /// Crate name: lower-case letters, digits, '-' and '_'.
    pub name: String,
    /// Directory to create it in (default: the current directory).
    #[arg(long, default_value = ".")]
    pub dir: PathBuf,
    /// Plugin id for plugin.toml (default: local.<name>).
    #[arg(long)]
    pub id: Option<String>,
    /// Path to the warden-sdk crate (default: the SDK this binary was built from).
    #[arg(long)]
    pub sdk: Option<PathBuf>,
}

#[derive(Args)]
pub struct TargetArgs {
    /// The plugin directory or its plugin.toml.
    pub path: PathBuf,
    /// Use this component instead of the manifest's `component`.
    #[arg(long)]
    pub component: Option<PathBuf>,
}

#[derive(Args)]
pub struct CallArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    pub tool: String,
    /// Arguments as a JSON object.
    #[arg(default_value = "{}")]
    pub arguments: String,
    /// Grant everything plugin.toml requests (for authors); otherwise only
    /// what warden.toml grants.
    #[arg(long)]
    pub grant_all: bool,
    /// The end user the call runs for.
    #[arg(long)]
    pub user: Option<String>,
    /// Keep kv data in the configured database instead of a throwaway one.
    #[arg(long)]
    pub persist: bool,
}

pub async fn run(config: Config, cmd: PluginCommand) -> anyhow::Result<()> {
    match cmd {
        PluginCommand::New(a) => new(&a),
        PluginCommand::Check(a) => check(&config, &a).await,
        PluginCommand::Call(a) => call(config, &a).await,
        PluginCommand::List => list(&config).await,
        PluginCommand::Install(a) => install(config, &a).await,
    }
}

async fn services(config: &Config, persist: bool) -> anyhow::Result<HostServices> {
    let url = if persist {
        config.database_url()
    } else {
        "sqlite::memory:".to_owned()
    };
    let db = warden_db::connect(&url)
        .await
        .context("opening the kv database")?;
    Ok(services_on(db, config))
}

/// kv in `db`; the LLM loaded from `config` on first use.
fn services_on(db: sea_orm::DatabaseConnection, config: &Config) -> HostServices {
    HostServices {
        kv: KvStore::new(db),
        llm: Some(Arc::new(LazyRegistryLlm {
            config: config.clone(),
            backend: OnceCell::new(),
        })),
    }
}

async fn check(config: &Config, a: &TargetArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let loaded = standalone::load(
        &a.path,
        a.component.as_deref(),
        &config.plugins,
        false,
        Some(&config.plugin_cache_dir()),
        services(config, false).await?,
    )
    .await?;
    let p = &loaded.plugin;
    let m = &p.manifest;
    println!("ok: {} {} ({})", m.id, m.version, m.name);
    println!(
        "component: {} ({} bytes, {})",
        loaded.component_path.display(),
        loaded.component_bytes,
        p.digest
    );
    println!(
        "loaded in {:.0} ms (compile or cache, link, describe)",
        started.elapsed().as_secs_f64() * 1000.0
    );
    println!("tools:");
    for t in &p.tools {
        println!(
            "  {:<24} {:<9} {}",
            t.name,
            t.effect.as_str(),
            t.description
        );
    }
    println!("capabilities (as granted by this host's warden.toml):");
    for line in p.grant.summary() {
        println!("  {line}");
    }
    for w in &p.grant.warnings {
        println!("warning: {w}");
    }
    if let Some(lines) = p.grant.missing_grant_toml() {
        println!("to grant what it requests and is not granted, put these lines in warden.toml:");
        for line in lines.lines() {
            println!("  {line}");
        }
    }
    Ok(())
}

async fn call(config: Config, a: &CallArgs) -> anyhow::Result<()> {
    let args: serde_json::Value =
        serde_json::from_str(&a.arguments).context("arguments must be a JSON object")?;
    if !args.is_object() {
        bail!("arguments must be a JSON object, got {args}");
    }
    let svc = services(&config, a.persist).await?;
    let loaded = standalone::load(
        &a.target.path,
        a.target.component.as_deref(),
        &config.plugins,
        a.grant_all,
        Some(&config.plugin_cache_dir()),
        svc,
    )
    .await?;
    let req = CallRequest {
        user: a.user.clone(),
        conversation: None,
    };
    let outcome = loaded.plugin.call(&a.tool, &args.to_string(), &req).await;
    eprintln!(
        "time: {:.2} ms, peak memory: {} KiB{}",
        outcome.elapsed.as_secs_f64() * 1000.0,
        outcome.peak_memory_bytes / 1024,
        outcome
            .fuel_consumed
            .map(|f| format!(", fuel: {f}"))
            .unwrap_or_default()
    );
    match outcome.result {
        Ok(v) => {
            println!("{}", serde_json::to_string_pretty(&v)?);
            Ok(())
        }
        Err(e) => bail!("{} ({})", e, e.code()),
    }
}

async fn list(config: &Config) -> anyhow::Result<()> {
    use sea_orm::EntityTrait;
    let db = warden_db::connect(&config.database_url())
        .await
        .context("opening the database")?;
    let rows = warden_db::entities::plugin::Entity::find().all(&db).await?;
    println!(
        "{:<28} {:<10} {:<9} {:<20} SOURCE",
        "ID", "VERSION", "STATE", "DIGEST"
    );
    for r in &rows {
        let state = if r.enabled { "enabled" } else { "disabled" };
        let digest: String = r.digest.chars().take(19).collect();
        println!(
            "{:<28} {:<10} {:<9} {:<20} {}",
            r.id, r.version, state, digest, r.source
        );
    }
    let mut roots = vec![config.plugins_dir()];
    roots.extend(config.plugins.directories.iter().cloned());
    for root in roots {
        for dir in plugin_dirs(&root) {
            match Manifest::load(&dir) {
                Ok((m, _)) if !rows.iter().any(|r| r.id == m.id) => {
                    println!(
                        "{:<28} {:<10} {:<9} {:<20} {}",
                        m.id,
                        m.version,
                        "new",
                        "-",
                        dir.display()
                    );
                }
                Ok(_) => {}
                Err(e) => println!("{:<28} {:<10} {:<9} {:<20} {e}", "?", "-", "invalid", "-"),
            }
        }
    }
    Ok(())
}

async fn install(config: Config, a: &TargetArgs) -> anyhow::Result<()> {
    let (manifest, manifest_file) = Manifest::load(&a.path)?;
    let component_path = a
        .component
        .clone()
        .unwrap_or_else(|| manifest.component_path(&manifest_file));
    let bytes = std::fs::read(&component_path)
        .with_context(|| format!("reading {}", component_path.display()))?;
    let mut text = std::fs::read_to_string(&manifest_file)?;
    if a.component.is_some() {
        // The managed copy keeps the component under the manifest's name.
        text = rewrite_component(&text, &manifest.component)?;
    }
    let db = warden_db::connect(&config.database_url())
        .await
        .context("opening the database")?;
    let services = services_on(db.clone(), &config);
    let manager = PluginManager::start(
        config.plugins.clone(),
        config.plugins_dir(),
        Some(config.plugin_cache_dir()),
        db,
        services,
    )
    .await?;
    let view = manager.install(&text, &bytes, "cli").await?;
    println!(
        "installed {} {} ({} tools)",
        view.id,
        view.version.unwrap_or_default(),
        view.tools.len()
    );
    for line in view.grant {
        println!("  {line}");
    }
    Ok(())
}

fn rewrite_component(text: &str, component: &Path) -> anyhow::Result<String> {
    let mut doc: toml::Table = toml::from_str(text)?;
    doc.insert(
        "component".into(),
        toml::Value::String(component.display().to_string()),
    );
    Ok(toml::to_string(&doc)?)
}

fn new(a: &NewArgs) -> anyhow::Result<()> {
    let name = &a.name;
    let ok = name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
        && name.len() <= 48;
    if !ok {
        bail!("plugin name {name:?} must start with a-z and contain only a-z, 0-9, '-' and '_'");
    }
    let id = a.id.clone().unwrap_or_else(|| format!("local.{name}"));
    warden_plugin_host::manifest::validate_id(&id)?;
    let sdk = match &a.sdk {
        Some(p) => p.clone(),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../sdk"),
    };
    let sdk = std::fs::canonicalize(&sdk)
        .with_context(|| format!("the SDK is not at {}; pass --sdk PATH", sdk.display()))?;
    let root = a.dir.join(name);
    if root.exists() {
        bail!("{} already exists", root.display());
    }
    let crate_file = name.replace('-', "_");
    std::fs::create_dir_all(root.join("src"))?;
    let files = [
        ("Cargo.toml", super::plugin_template::cargo_toml(name, &sdk)),
        (
            "plugin.toml",
            super::plugin_template::plugin_toml(&id, name, &crate_file),
        ),
        ("src/lib.rs", super::plugin_template::lib_rs(&id)),
        (".gitignore", "/target\n".to_owned()),
    ];
    for (file, text) in files {
        std::fs::write(root.join(file), text).with_context(|| format!("writing {file}"))?;
    }
    println!("created {} (plugin id {id})", root.display());
    println!("next:");
    println!("  cd {}", root.display());
    println!("  cargo build --target wasm32-wasip2 --release");
    println!("  warden plugin check .");
    println!("  warden plugin call . greet '{{\"name\": \"Ada\"}}'");
    Ok(())
}
