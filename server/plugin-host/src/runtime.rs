//! Loading a component and running one tool call under its limits.
//!
//! A [`LoadedPlugin`] holds the pre-linked `PluginPre` built once at load;
//! every call gets a fresh `Store` with a memory limiter, an epoch deadline
//! (for guest code) and an outer timeout (for time spent in host calls), and
//! waits for one of the plugin's concurrency permits.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde::Serialize;
use thiserror::Error;
use tokio::sync::Semaphore;
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Engine, Store, Trap, UpdateDeadline};
use wasmtime_wasi::WasiCtxBuilder;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi_http::WasiHttpCtx;

use super::bindings::types::{CallContext, Effect as WitEffect, PluginInfo, ToolError};
use super::bindings::{Plugin, PluginPre};
use super::grant::EffectiveGrant;
use super::host::HostServices;
use super::http::HttpGate;
use super::limiter::MemoryLimiter;
use super::manifest::{Effect, Manifest, validate_tool_name};
use super::state::CallState;

/// Captured guest stdout/stderr per call (panic messages land here).
const CAPTURE_BYTES: usize = 64 * 1024;
/// Grace added to the outer timeout so the epoch deadline fires first when
/// the guest is running wasm.
const OUTER_GRACE: Duration = Duration::from_millis(250);
/// Budget for `describe` at load time.
const DESCRIBE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a call did not produce output.
#[derive(Debug, Clone, Error, PartialEq, Serialize)]
#[serde(tag = "code", content = "message", rename_all = "snake_case")]
pub enum CallError {
    #[error("invalid arguments: {0}")]
    InvalidArguments(String),
    #[error("unknown tool: {0}")]
    UnknownTool(String),
    #[error("not found: {0}")]
    NotFound(String),
    #[error("denied: {0}")]
    Denied(String),
    #[error("limit exceeded: {0}")]
    LimitExceeded(String),
    #[error("tool failed: {0}")]
    Failed(String),
    #[error("timed out after {0} ms")]
    Timeout(u64),
    #[error("memory limit of {0} bytes exceeded")]
    MemoryLimit(u64),
    #[error("fuel budget of {0} exhausted")]
    FuelExhausted(u64),
    #[error("output of {size} bytes exceeds the limit of {limit} bytes")]
    OutputTooLarge { size: u64, limit: u64 },
    #[error("plugin output is not JSON: {0}")]
    BadOutput(String),
    #[error("plugin crashed: {0}")]
    Trapped(String),
    #[error("plugin is busy: {0} calls already running")]
    Busy(u32),
    #[error("host error: {0}")]
    Host(String),
}

impl CallError {
    /// Stable machine-readable name, as in the API's `error.code`.
    pub fn code(&self) -> &'static str {
        match self {
            CallError::InvalidArguments(_) => "invalid_arguments",
            CallError::UnknownTool(_) => "unknown_tool",
            CallError::NotFound(_) => "not_found",
            CallError::Denied(_) => "denied",
            CallError::LimitExceeded(_) => "limit_exceeded",
            CallError::Failed(_) => "tool_failed",
            CallError::Timeout(_) => "timeout",
            CallError::MemoryLimit(_) => "memory_limit",
            CallError::FuelExhausted(_) => "fuel_exhausted",
            CallError::OutputTooLarge { .. } => "output_too_large",
            CallError::BadOutput(_) => "bad_output",
            CallError::Trapped(_) => "plugin_crashed",
            CallError::Busy(_) => "busy",
            CallError::Host(_) => "host_error",
        }
    }
}

impl CallError {
    /// Applies `f` to the free-text part of the error.
    pub fn map_message(self, f: impl Fn(&str) -> String) -> CallError {
        match self {
            CallError::InvalidArguments(m) => CallError::InvalidArguments(f(&m)),
            CallError::UnknownTool(m) => CallError::UnknownTool(f(&m)),
            CallError::NotFound(m) => CallError::NotFound(f(&m)),
            CallError::Denied(m) => CallError::Denied(f(&m)),
            CallError::LimitExceeded(m) => CallError::LimitExceeded(f(&m)),
            CallError::Failed(m) => CallError::Failed(f(&m)),
            CallError::BadOutput(m) => CallError::BadOutput(f(&m)),
            CallError::Trapped(m) => CallError::Trapped(f(&m)),
            CallError::Host(m) => CallError::Host(f(&m)),
            other => other,
        }
    }
}

impl From<ToolError> for CallError {
    fn from(e: ToolError) -> Self {
        match e {
            ToolError::InvalidArguments(m) => CallError::InvalidArguments(m),
            ToolError::UnknownTool(m) => CallError::UnknownTool(m),
            ToolError::NotFound(m) => CallError::NotFound(m),
            ToolError::Denied(m) => CallError::Denied(m),
            ToolError::LimitExceeded(m) => CallError::LimitExceeded(m),
            ToolError::Failed(m) => CallError::Failed(m),
        }
    }
}

/// Who a call runs for.
#[derive(Debug, Clone, Default)]
pub struct CallRequest {
    pub user: Option<String>,
    pub conversation: Option<String>,
}

/// The result of one call plus what it cost.
#[derive(Debug)]
pub struct CallOutcome {
    pub call_id: String,
    pub result: Result<serde_json::Value, CallError>,
    pub elapsed: Duration,
    pub peak_memory_bytes: u64,
    pub fuel_consumed: Option<u64>,
    /// The plugin was at its concurrency cap and this call waited for a slot.
    pub queued: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct ToolInfo {
    pub name: String,
    pub description: String,
    pub effect: Effect,
    pub arguments_schema: serde_json::Value,
}

pub struct LoadedPlugin {
    pub manifest: Manifest,
    pub digest: String,
    pub tools: Vec<ToolInfo>,
    pub grant: Arc<EffectiveGrant>,
    pre: PluginPre<CallState>,
    engine: Engine,
    permits: Arc<Semaphore>,
    services: HostServices,
}

impl LoadedPlugin {
    /// Compiles (or fetches from the cache), links, calls `describe` and
    /// checks it against the manifest.
    pub async fn load(
        engine: &Engine,
        linker: &Linker<CallState>,
        manifest: Manifest,
        bytes: &[u8],
        grant: EffectiveGrant,
        services: HostServices,
    ) -> anyhow::Result<LoadedPlugin> {
        use anyhow::Context;
        let digest = super::manifest::digest_of(bytes);
        if let Some(pinned) = &manifest.digest
            && pinned.to_ascii_lowercase() != digest
        {
            anyhow::bail!(
                "component digest {digest} does not match the manifest's pinned {pinned}"
            );
        }
        let component = Component::from_binary(engine, bytes)
            .map_err(anyhow::Error::from)
            .context("compiling the component")?;
        let instance_pre = linker
            .instantiate_pre(&component)
            .map_err(anyhow::Error::from)
            .context(
                "linking the component: it imports something this host does not offer \
             (plugins may import warden:plugin/* and WASI 0.2 only)",
            )?;
        let pre = PluginPre::new(instance_pre)
            .map_err(anyhow::Error::from)
            .context(
                "the component does not export the warden:plugin world (describe, call-tool)",
            )?;
        let grant = Arc::new(grant);
        let mut plugin = LoadedPlugin {
            permits: Arc::new(Semaphore::new(grant.limits.max_concurrency as usize)),
            manifest,
            digest,
            tools: Vec::new(),
            grant,
            pre,
            engine: engine.clone(),
            services,
        };
        let info = plugin.describe().await?;
        plugin.tools = check_description(&plugin.manifest, info)?;
        Ok(plugin)
    }

    pub fn id(&self) -> &str {
        &self.manifest.id
    }

    pub fn tool(&self, name: &str) -> Option<&ToolInfo> {
        self.tools.iter().find(|t| t.name == name)
    }

    fn new_store(
        &self,
        grant: Arc<EffectiveGrant>,
        effect: Effect,
        call_id: &str,
        deadline: Instant,
        timeout: Duration,
    ) -> (Store<CallState>, MemoryOutputPipe) {
        // stdout is discarded; stderr is kept (bounded) for panic messages.
        let capture = MemoryOutputPipe::new(CAPTURE_BYTES);
        let wasi = WasiCtxBuilder::new().stderr(capture.clone()).build();
        let mut table = ResourceTable::new();
        table.set_max_capacity(10_000);
        let state = CallState {
            wasi,
            http: WasiHttpCtx::new(),
            http_gate: HttpGate::new(grant.clone(), effect, call_id.to_owned(), timeout),
            table,
            limiter: MemoryLimiter::new(grant.limits.memory_bytes),
            grant,
            effect,
            services: self.services.clone(),
            call_id: call_id.to_owned(),
            llm_calls: 0,
            log_lines: 0,
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limiter);
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |_| {
            if Instant::now() >= deadline {
                Ok(UpdateDeadline::Interrupt)
            } else {
                Ok(UpdateDeadline::Yield(1))
            }
        });
        (store, capture)
    }

    async fn describe(&self) -> anyhow::Result<PluginInfo> {
        let deadline = Instant::now() + DESCRIBE_TIMEOUT;
        // `describe` runs at load, outside any tool call: no capabilities.
        let (mut store, capture) = self.new_store(
            Arc::new(self.grant.without_capabilities()),
            Effect::Pure,
            "describe",
            deadline,
            DESCRIBE_TIMEOUT,
        );
        if let Some(fuel) = self.grant.limits.fuel {
            store.set_fuel(fuel).map_err(anyhow::Error::from)?;
        }
        let run = async {
            let plugin: Plugin = self.pre.instantiate_async(&mut store).await?;
            plugin.call_describe(&mut store).await
        };
        match tokio::time::timeout(DESCRIBE_TIMEOUT + OUTER_GRACE, run).await {
            Ok(Ok(info)) => Ok(info),
            Ok(Err(e)) => Err(anyhow::Error::new(classify_trap(
                &e,
                store.data().limiter.hit,
                &capture,
                self.grant.limits,
                DESCRIBE_TIMEOUT,
            ))
            .context("describe failed")),
            Err(_) => anyhow::bail!("describe did not return within {DESCRIBE_TIMEOUT:?}"),
        }
    }

    /// Runs `tool` with JSON `arguments`. Never panics and never leaves the
    /// plugin unusable: each call has its own store.
    pub async fn call(&self, tool: &str, arguments: &str, req: &CallRequest) -> CallOutcome {
        let started = Instant::now();
        let call_id = format!("call_{}", uuid::Uuid::new_v4().simple());
        let limits = self.grant.limits;
        let timeout = Duration::from_millis(limits.timeout_ms);
        // One budget for the whole call, waiting for a slot included.
        let deadline = started + timeout;
        let outcome = |result, peak, fuel| CallOutcome {
            call_id: call_id.clone(),
            result,
            elapsed: started.elapsed(),
            peak_memory_bytes: peak,
            fuel_consumed: fuel,
            queued: false,
        };
        let Some(effect) = self.tool(tool).map(|t| t.effect) else {
            let known: Vec<_> = self.tools.iter().map(|t| t.name.as_str()).collect();
            return outcome(
                Err(CallError::UnknownTool(format!(
                    "plugin {} has no tool {tool:?}; it has: {}",
                    self.id(),
                    known.join(", ")
                ))),
                0,
                None,
            );
        };
        let (_permit, queued) = match self.permits.clone().try_acquire_owned() {
            Ok(p) => (p, false),
            Err(_) => {
                let slot = self.permits.clone().acquire_owned();
                match tokio::time::timeout_at(deadline.into(), slot).await {
                    Ok(Ok(p)) => (p, true),
                    _ => {
                        let mut busy =
                            outcome(Err(CallError::Busy(limits.max_concurrency)), 0, None);
                        busy.queued = true;
                        return busy;
                    }
                }
            }
        };
        let (mut store, capture) =
            self.new_store(self.grant.clone(), effect, &call_id, deadline, timeout);
        if let Some(fuel) = limits.fuel
            && let Err(e) = store.set_fuel(fuel)
        {
            return outcome(Err(CallError::Host(e.to_string())), 0, None);
        }
        let context = CallContext {
            call_id: call_id.clone(),
            user: req.user.clone(),
            conversation: req.conversation.clone(),
        };
        let run = async {
            let plugin: Plugin = self.pre.instantiate_async(&mut store).await?;
            plugin
                .call_call_tool(&mut store, &context, tool, arguments)
                .await
        };
        let result = tokio::time::timeout_at((deadline + OUTER_GRACE).into(), run).await;
        let hit = store.data().limiter.hit;
        let peak = store.data().limiter.peak as u64;
        let fuel_consumed = limits
            .fuel
            .and_then(|f| store.get_fuel().ok().map(|left| f - left));
        let result = match result {
            Err(_) => Err(CallError::Timeout(limits.timeout_ms)),
            Ok(Err(e)) => Err(classify_trap(&e, hit, &capture, limits, timeout)),
            Ok(Ok(Err(tool_error))) => Err(CallError::from(tool_error)),
            Ok(Ok(Ok(output))) => {
                let size = output.json.len() as u64;
                if size > limits.max_output_bytes {
                    Err(CallError::OutputTooLarge {
                        size,
                        limit: limits.max_output_bytes,
                    })
                } else {
                    serde_json::from_str(&output.json)
                        .map_err(|e| CallError::BadOutput(e.to_string()))
                }
            }
        };
        // Messages can carry plugin-written text: cap it and redact secrets
        // before it reaches the log or the caller.
        let result = result.map_err(|e| e.map_message(|m| self.grant.redact(&truncate(m))));
        if let Err(e) = &result {
            tracing::info!(plugin = self.id(), tool, call = %call_id, code = e.code(), "plugin call failed: {e}");
        }
        // Dropping the store returns its slot to the pool; count it in the call.
        drop(store);
        let mut done = outcome(result, peak, fuel_consumed);
        done.queued = queued;
        done
    }
}

/// Turns a wasmtime error into the reason a person can act on.
fn classify_trap(
    e: &wasmtime::Error,
    memory_hit: bool,
    capture: &MemoryOutputPipe,
    limits: super::grant::EffectiveLimits,
    timeout: Duration,
) -> CallError {
    if memory_hit {
        return CallError::MemoryLimit(limits.memory_bytes);
    }
    match e.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => CallError::Timeout(timeout.as_millis() as u64),
        Some(Trap::OutOfFuel) => CallError::FuelExhausted(limits.fuel.unwrap_or(0)),
        Some(trap) => {
            let output = String::from_utf8_lossy(&capture.contents()).into_owned();
            let panic = output
                .lines()
                .skip_while(|l| !l.contains("panicked at"))
                .take(6)
                .collect::<Vec<_>>()
                .join("\n");
            if panic.is_empty() {
                CallError::Trapped(trap.to_string())
            } else {
                CallError::Trapped(truncate(&panic))
            }
        }
        None => CallError::Trapped(
            format!("{e:#}")
                .lines()
                .next()
                .unwrap_or("unknown error")
                .to_owned(),
        ),
    }
}

fn truncate(text: &str) -> String {
    text.chars().take(2000).collect()
}

/// Validates `describe` against the manifest: same id and version, valid
/// tool names and schemas, and exactly the tools (with the same effects)
/// that `[[tools]]` declares.
fn check_description(manifest: &Manifest, info: PluginInfo) -> anyhow::Result<Vec<ToolInfo>> {
    use anyhow::bail;
    if info.id != manifest.id {
        bail!(
            "describe says id {:?} but plugin.toml says {:?}",
            info.id,
            manifest.id
        );
    }
    if info.version != manifest.version {
        bail!(
            "describe says version {:?} but plugin.toml says {:?}",
            info.version,
            manifest.version
        );
    }
    let mut tools = Vec::new();
    for t in info.tools {
        validate_tool_name(&t.name)?;
        let effect = match t.effect {
            WitEffect::Pure => Effect::Pure,
            WitEffect::Reads => Effect::Reads,
            WitEffect::Writes => Effect::Writes,
            WitEffect::External => Effect::External,
        };
        let schema: serde_json::Value = serde_json::from_str(&t.arguments_schema)
            .with_context(|| format!("tool {}: arguments schema is not JSON", t.name))?;
        if !schema.is_object() {
            bail!("tool {}: arguments schema must be a JSON object", t.name);
        }
        if tools.iter().any(|x: &ToolInfo| x.name == t.name) {
            bail!("tool {} is described twice", t.name);
        }
        tools.push(ToolInfo {
            name: t.name,
            description: t.description,
            effect,
            arguments_schema: schema,
        });
    }
    for declared in &manifest.tools {
        match tools.iter().find(|t| t.name == declared.name) {
            None => bail!(
                "plugin.toml declares tool {} but the component does not describe it",
                declared.name
            ),
            Some(t) if t.effect != declared.effect => bail!(
                "tool {}: plugin.toml declares effect {} but the component says {}",
                t.name,
                declared.effect.as_str(),
                t.effect.as_str()
            ),
            Some(_) => {}
        }
    }
    if let Some(extra) = tools
        .iter()
        .find(|t| !manifest.tools.iter().any(|d| d.name == t.name))
    {
        bail!(
            "the component describes tool {} ({}) which plugin.toml does not declare; add it to [[tools]]",
            extra.name,
            extra.effect.as_str()
        );
    }
    Ok(tools)
}

/// The linker every plugin is instantiated with: WASI 0.2 (its context
/// denies filesystem, sockets and environment), `wasi:http` through the
/// gate, and the `warden:plugin` imports.
pub fn linker(engine: &Engine) -> anyhow::Result<Linker<CallState>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
    Plugin::add_to_linker::<CallState, wasmtime::component::HasSelf<CallState>>(
        &mut linker,
        |s| s,
    )?;
    Ok(linker)
}
