//! Durable key-value buckets, scoped to this plugin. Each bucket must be
//! listed in plugin.toml `[capabilities] kv_buckets` and granted.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::bindings::warden::plugin::kv as wit;
use crate::{HostError, ToolError};

pub fn get(bucket: &str, key: &str) -> Result<Option<Vec<u8>>, HostError> {
    wit::get(bucket, key).map_err(Into::into)
}

pub fn set(bucket: &str, key: &str, value: &[u8]) -> Result<(), HostError> {
    wit::set(bucket, key, value).map_err(Into::into)
}

/// True when the key existed.
pub fn delete(bucket: &str, key: &str) -> Result<bool, HostError> {
    wit::delete(bucket, key).map_err(Into::into)
}

/// Keys starting with `prefix`, sorted, at most `limit` (the host caps it).
pub fn list_keys(bucket: &str, prefix: &str, limit: u32) -> Result<Vec<String>, HostError> {
    wit::list_keys(bucket, prefix, limit).map_err(Into::into)
}

/// Reads a JSON value stored with [`set_json`].
pub fn get_json<T: DeserializeOwned>(bucket: &str, key: &str) -> Result<Option<T>, ToolError> {
    match get(bucket, key)? {
        None => Ok(None),
        Some(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| ToolError::Failed(format!("stored value {key:?} is corrupt: {e}"))),
    }
}

pub fn set_json<T: Serialize>(bucket: &str, key: &str, value: &T) -> Result<(), ToolError> {
    let bytes = serde_json::to_vec(value)?;
    set(bucket, key, &bytes).map_err(Into::into)
}

/// The next value of a counter kept at `key` (1 first). Not atomic: two
/// concurrent calls of the same plugin may get the same value.
pub fn next_id(bucket: &str, key: &str) -> Result<u64, ToolError> {
    let n: u64 = get_json(bucket, key)?.unwrap_or(1);
    set_json(bucket, key, &(n + 1))?;
    Ok(n)
}
