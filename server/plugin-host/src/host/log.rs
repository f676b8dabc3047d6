use crate::bindings::log::{self, Level};
use crate::state::{CallState, MAX_LOG_LINES_PER_CALL};

/// Longest logged message; the rest is cut.
const MAX_MESSAGE_CHARS: usize = 4096;

impl log::Host for CallState {
    async fn log(&mut self, level: Level, message: String) {
        self.log_lines += 1;
        if self.log_lines > MAX_LOG_LINES_PER_CALL {
            if self.log_lines == MAX_LOG_LINES_PER_CALL + 1 {
                tracing::warn!(plugin = self.grant.plugin_id(), call = %self.call_id, "plugin log limit reached; dropping further lines");
            }
            return;
        }
        let mut text: String = message.chars().take(MAX_MESSAGE_CHARS).collect();
        text = self.grant.redact(&text);
        let plugin = self.grant.plugin_id();
        let call = &self.call_id;
        match level {
            Level::Trace => tracing::trace!(target: "plugin", plugin, %call, "{text}"),
            Level::Debug => tracing::debug!(target: "plugin", plugin, %call, "{text}"),
            Level::Info => tracing::info!(target: "plugin", plugin, %call, "{text}"),
            Level::Warn => tracing::warn!(target: "plugin", plugin, %call, "{text}"),
            Level::Error => tracing::error!(target: "plugin", plugin, %call, "{text}"),
        }
    }
}
