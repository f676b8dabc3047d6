//! Variables declared in plugin.toml `[capabilities.config]`, valued by the
//! operator. Secret values never appear in host logs.

use crate::HostError;
use crate::bindings::warden::plugin::config as wit;

/// `Ok(None)` when declared but unset; `Err(Denied)` when not declared.
pub fn get(name: &str) -> Result<Option<String>, HostError> {
    wit::get(name).map_err(Into::into)
}
