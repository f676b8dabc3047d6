//! `[console]`: the admin console's settings.

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ConsoleConfig {
    /// Serve `/console` (default true).
    #[serde(default = "yes")]
    pub enabled: bool,
    /// How long a login lasts.
    #[serde(default = "default_hours")]
    pub session_hours: u32,
    /// Mark the session cookie `Secure` (set it when Warden is reached
    /// over TLS, e.g. behind a proxy).
    #[serde(default)]
    pub secure_cookie: bool,
}

fn yes() -> bool {
    true
}

fn default_hours() -> u32 {
    12
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            session_hours: default_hours(),
            secure_cookie: false,
        }
    }
}

impl ConsoleConfig {
    pub fn session_ttl(&self) -> chrono::Duration {
        chrono::Duration::hours(i64::from(self.session_hours.clamp(1, 24 * 30)))
    }
}
