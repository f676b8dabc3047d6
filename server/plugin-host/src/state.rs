//! What one tool call's `Store` holds: the WASI context (empty environment,
//! no preopens, no sockets), the HTTP gate, the memory limiter, and handles
//! to the host services the plugin was granted.

use std::sync::Arc;

use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use super::grant::{Denied, EffectiveGrant};
use super::host::HostServices;
use super::http::HttpGate;
use super::limiter::MemoryLimiter;
use super::manifest::Effect;

/// Most `llm.complete` calls one tool call may make.
pub const MAX_LLM_CALLS_PER_CALL: u32 = 16;
/// Most log lines one tool call may write; later ones are dropped.
pub const MAX_LOG_LINES_PER_CALL: u32 = 200;

pub struct CallState {
    pub(super) wasi: WasiCtx,
    pub(super) http: WasiHttpCtx,
    pub(super) http_gate: HttpGate,
    pub(super) table: ResourceTable,
    pub(super) limiter: MemoryLimiter,
    pub(super) grant: Arc<EffectiveGrant>,
    /// The declared effect of the tool being called; imports beyond it are refused.
    pub(super) effect: Effect,
    pub(super) services: HostServices,
    pub(super) call_id: String,
    pub(super) llm_calls: u32,
    pub(super) log_lines: u32,
}

impl WasiView for CallState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for CallState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.http_gate,
        }
    }
}

impl CallState {
    /// Refuses an import that needs more than the running tool declared.
    pub(super) fn require_effect(&self, needed: Effect, what: &str) -> Result<(), Denied> {
        require_effect(self.effect, needed, what)
    }
}

pub(super) fn require_effect(declared: Effect, needed: Effect, what: &str) -> Result<(), Denied> {
    if declared >= needed {
        Ok(())
    } else {
        Err(Denied(format!(
            "{what} needs a tool with effect \"{}\" or higher; this tool declares \"{}\"",
            needed.as_str(),
            declared.as_str()
        )))
    }
}
