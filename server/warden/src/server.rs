//! `warden serve`: wires configuration, database, models and the HTTP API
//! together and runs until SIGTERM or ctrl-c.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use warden_agents::{AgentCatalog, AgentService, Runner};
use warden_governance::Governor;
use warden_governance::audit::AuditLog;
use warden_governance::judge::Judge;
use warden_governance::store::PolicyStore;
use warden_llm::ModelRegistry;
use warden_plugin_host::kv_store::KvStore;
use warden_plugin_host::{HostServices, PluginManager};

use crate::adapters::{PluginTools, RegistryJudge, RegistryLlm};
use crate::api::{self, AppState, request_log::RequestLogger, wire::Limits};
use crate::config::Config;

/// What `warden serve` tells its operator; the CLI prints it (to stdout,
/// never through the log, since the admin key is a secret).
pub enum Notice {
    /// The first admin key, created on an empty database; shown once.
    AdminKey(String),
    Listening(SocketAddr),
}

pub async fn serve(config: Config, notify: impl Fn(Notice)) -> anyhow::Result<()> {
    let core = start_core(&config).await?;
    if crate::keys::count(&core.db).await? == 0 {
        let key = crate::keys::create(&core.db, "admin", crate::keys::Role::Admin).await?;
        notify(Notice::AdminKey(key));
    }
    let (state, log_writer) = app_state(&config, &core, |var| std::env::var(var).ok())?;
    let audit_writer = core.audit_writer;
    let channel_tasks = state
        .channels
        .as_ref()
        .map(|c| c.start())
        .unwrap_or_default();
    let app = api::router(state, config.server.max_body_bytes);

    let listener = tokio::net::TcpListener::bind(config.server.listen)
        .await
        .with_context(|| format!("binding {}", config.server.listen))?;
    let addr = listener.local_addr()?;
    let stop = shutdown_signal()?;
    notify(Notice::Listening(addr));
    tracing::info!(%addr, "serving");

    let grace = Duration::from_secs(config.server.shutdown_grace_secs);
    let (shutdown_started_tx, shutdown_started_rx) = tokio::sync::oneshot::channel::<()>();
    let server = axum::serve(listener, app).with_graceful_shutdown(async move {
        stop.await;
        tracing::info!("shutting down: refusing new connections, finishing in-flight requests");
        let _ = shutdown_started_tx.send(());
    });
    let deadline = async move {
        if shutdown_started_rx.await.is_ok() {
            tokio::time::sleep(grace).await;
        } else {
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        result = server => result.context("server error")?,
        () = deadline => tracing::warn!(?grace, "in-flight requests did not finish within the grace period"),
    }
    if tokio::time::timeout(Duration::from_secs(5), log_writer.flush())
        .await
        .is_err()
    {
        tracing::warn!("request log did not flush within 5 s");
    }
    for t in channel_tasks {
        t.abort();
    }
    // Every audit append is awaited by its caller, so once the server has
    // stopped nothing is queued; the writer ends when its senders are gone.
    audit_writer.abort();
    tracing::info!("stopped");
    Ok(())
}

/// The HTTP state over a started core: limits, the request log, and the
/// configured channels (their secrets read through `env`).
pub fn app_state(
    config: &Config,
    core: &Core,
    env: impl Fn(&str) -> Option<String>,
) -> anyhow::Result<(AppState, crate::api::request_log::LogWriter)> {
    let db = core.db.clone();
    let (request_log, log_writer) = RequestLogger::spawn(db.clone());
    let limits = Limits {
        default_max_tokens: config.server.default_max_tokens,
        max_tokens_limit: config.server.max_tokens_limit,
    };
    let mut state = AppState::new(
        core.registry.clone(),
        db.clone(),
        limits,
        request_log,
        core.governor.clone(),
        core.plugins.clone(),
        core.agents.clone(),
    );
    state.metrics = core.metrics.clone();
    state.stream_hold_back = config.policies.stream_hold_back_bytes;
    state.console = config.console.clone();
    state.channels =
        crate::channels::Channels::build(&config.channels, db, state.agents.clone(), env)?;
    Ok((state, log_writer))
}

/// Registers for SIGTERM and SIGINT now and returns the wait for the
/// first. Registering before the server announces that it listens matters:
/// until a handler exists, a SIGTERM (a supervisor's stop right after
/// readiness) takes the default action and kills the process ungracefully.
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).context("listening for SIGTERM")?;
        let mut int = signal(SignalKind::interrupt()).context("listening for SIGINT")?;
        Ok(async move {
            tokio::select! {
                _ = term.recv() => {},
                _ = int.recv() => {},
            }
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            let _ = tokio::signal::ctrl_c().await;
        })
    }
}

/// What the server and in-process CLI verbs (`warden agent run`) share.
pub struct Core {
    pub db: sea_orm::DatabaseConnection,
    /// Shared with the HTTP state: the registry's backends count into it.
    pub metrics: Arc<crate::metrics::Metrics>,
    pub registry: Arc<ModelRegistry>,
    pub governor: Arc<Governor>,
    pub plugins: Arc<PluginManager>,
    pub agents: Arc<AgentService>,
    pub audit_writer: tokio::task::JoinHandle<()>,
}

/// Fetches the default model if needed, opens the database, loads the
/// models, the policies, the plugins and the agents.
pub async fn start_core(config: &Config) -> anyhow::Result<Core> {
    crate::models::fetch_default_if_needed(config).await?;
    let db = warden_db::connect(&config.database_url())
        .await
        .context("opening the database")?;
    let metrics = Arc::new(crate::metrics::Metrics::default());
    let registry = Arc::new(crate::models::metered(
        &crate::models::load(config).await?,
        &metrics,
    ));
    let (governor, audit_writer) = start_governance(config, &registry, db.clone())?;
    let plugins = Arc::new(start_plugins(config, &registry, db.clone()).await?);
    let default_model = config.first_model_id();
    let agents = Arc::new(AgentService {
        catalog: AgentCatalog::new(config.effective_agents(), db.clone()),
        runner: Runner::new(
            registry.clone(),
            Arc::new(PluginTools::Installed(plugins.clone())),
            governor.clone(),
            db.clone(),
            default_model,
        ),
    });
    let interrupted = agents.runner.runs.fail_interrupted().await?;
    if interrupted > 0 {
        tracing::warn!(
            runs = interrupted,
            "agent runs interrupted by the last stop are marked failed"
        );
    }
    Ok(Core {
        db,
        metrics,
        registry,
        governor,
        plugins,
        agents,
        audit_writer,
    })
}

/// Loads the policy bundle (fatal if invalid: the server never runs
/// ungoverned), starts the watcher and the audit writer.
fn start_governance(
    config: &Config,
    registry: &Arc<ModelRegistry>,
    db: sea_orm::DatabaseConnection,
) -> anyhow::Result<(Arc<Governor>, tokio::task::JoinHandle<()>)> {
    let store = Arc::new(
        PolicyStore::open(config.policies.source()).context("loading governance policies")?,
    );
    let status = store.status();
    tracing::info!(source = %status.source, bundle = %status.bundle, policies = status.policies.len(), "governance policies active");
    store.watch(Duration::from_millis(config.policies.reload_interval_ms));
    let judge_model = config.judge_model();
    if registry.get(&judge_model).is_none() {
        anyhow::bail!("policies.judge_model {judge_model:?} is not a configured model");
    }
    let judge: Arc<dyn Judge> = Arc::new(RegistryJudge {
        registry: registry.clone(),
        model: judge_model,
    });
    let (audit, writer) = AuditLog::spawn(db);
    Ok((Arc::new(Governor::new(store, audit, Some(judge))), writer))
}

/// Loads every installed plugin; their `llm` calls go to
/// `plugins.llm_model` (default: the first configured model).
async fn start_plugins(
    config: &Config,
    registry: &Arc<ModelRegistry>,
    db: sea_orm::DatabaseConnection,
) -> anyhow::Result<PluginManager> {
    let model = config.plugin_model();
    if registry.get(&model).is_none() {
        anyhow::bail!("plugins.llm_model {model:?} is not a configured model");
    }
    let services = HostServices {
        kv: KvStore::new(db.clone()),
        llm: Some(Arc::new(RegistryLlm {
            registry: registry.clone(),
            model,
        })),
    };
    PluginManager::start(
        config.plugins.clone(),
        config.plugins_dir(),
        Some(config.plugin_cache_dir()),
        db,
        services,
    )
    .await
    .context("starting the plugin host")
}
