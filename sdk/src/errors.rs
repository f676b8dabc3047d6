use std::fmt;

use crate::bindings::warden::plugin::types as wit;

/// Why a tool failed; the agent calling the tool reads the message.
#[derive(Debug, Clone, PartialEq)]
pub enum ToolError {
    /// The arguments did not fit the tool.
    InvalidArguments(String),
    /// Something the tool looked up does not exist.
    NotFound(String),
    /// A capability was refused by the host.
    Denied(String),
    /// A limit was hit.
    LimitExceeded(String),
    /// Anything else.
    Failed(String),
}

impl ToolError {
    pub fn invalid(msg: impl Into<String>) -> Self {
        ToolError::InvalidArguments(msg.into())
    }
    pub fn not_found(msg: impl Into<String>) -> Self {
        ToolError::NotFound(msg.into())
    }
    pub fn failed(msg: impl Into<String>) -> Self {
        ToolError::Failed(msg.into())
    }
}

impl fmt::Display for ToolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ToolError::InvalidArguments(m) => write!(f, "invalid arguments: {m}"),
            ToolError::NotFound(m) => write!(f, "not found: {m}"),
            ToolError::Denied(m) => write!(f, "denied: {m}"),
            ToolError::LimitExceeded(m) => write!(f, "limit exceeded: {m}"),
            ToolError::Failed(m) => write!(f, "{m}"),
        }
    }
}

impl std::error::Error for ToolError {}

/// A host import refused or failed.
#[derive(Debug, Clone, PartialEq)]
pub enum HostError {
    /// Not requested in plugin.toml or not granted; the message says how to fix it.
    Denied(String),
    LimitExceeded(String),
    Invalid(String),
    Unavailable(String),
}

impl fmt::Display for HostError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostError::Denied(m) => write!(f, "denied: {m}"),
            HostError::LimitExceeded(m) => write!(f, "limit exceeded: {m}"),
            HostError::Invalid(m) => write!(f, "invalid request: {m}"),
            HostError::Unavailable(m) => write!(f, "unavailable: {m}"),
        }
    }
}

impl std::error::Error for HostError {}

impl From<wit::HostError> for HostError {
    fn from(e: wit::HostError) -> Self {
        match e {
            wit::HostError::Denied(m) => HostError::Denied(m),
            wit::HostError::LimitExceeded(m) => HostError::LimitExceeded(m),
            wit::HostError::Invalid(m) => HostError::Invalid(m),
            wit::HostError::Unavailable(m) => HostError::Unavailable(m),
        }
    }
}

impl From<HostError> for ToolError {
    fn from(e: HostError) -> Self {
        match e {
            HostError::Denied(m) => ToolError::Denied(m),
            HostError::LimitExceeded(m) => ToolError::LimitExceeded(m),
            HostError::Invalid(m) => ToolError::Failed(format!("invalid host request: {m}")),
            HostError::Unavailable(m) => ToolError::Failed(format!("host unavailable: {m}")),
        }
    }
}

impl From<serde_json::Error> for ToolError {
    fn from(e: serde_json::Error) -> Self {
        ToolError::Failed(format!("json: {e}"))
    }
}

impl From<ToolError> for wit::ToolError {
    fn from(e: ToolError) -> Self {
        match e {
            ToolError::InvalidArguments(m) => wit::ToolError::InvalidArguments(m),
            ToolError::NotFound(m) => wit::ToolError::NotFound(m),
            ToolError::Denied(m) => wit::ToolError::Denied(m),
            ToolError::LimitExceeded(m) => wit::ToolError::LimitExceeded(m),
            ToolError::Failed(m) => wit::ToolError::Failed(m),
        }
    }
}
