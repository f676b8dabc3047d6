//! Per-user preferences in the `preferences` bucket, keyed by the calling
//! context's user so one customer never sees another's.

use std::collections::BTreeMap;

use serde::Deserialize;
use warden_sdk::{Context, JsonSchema, ToolError, kv};

const BUCKET: &str = "preferences";

fn user(ctx: &Context) -> Result<&str, ToolError> {
    ctx.user
        .as_deref()
        .filter(|u| !u.is_empty())
        .ok_or_else(|| ToolError::invalid("preferences need a user; the caller gave none"))
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RememberArgs {
    /// e.g. "language", "tone", "name"
    key: String,
    value: String,
}

pub fn remember(ctx: &Context, a: RememberArgs) -> Result<BTreeMap<String, String>, ToolError> {
    let user = user(ctx)?;
    let ok = !a.key.is_empty()
        && a.key.len() <= 64
        && a.key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if !ok {
        return Err(ToolError::invalid(
            "key must be 1-64 characters of letters, digits, _ and -",
        ));
    }
    if a.value.len() > 1000 {
        return Err(ToolError::invalid("value longer than 1000 bytes"));
    }
    let key = format!("user:{user}");
    let mut prefs: BTreeMap<String, String> = kv::get_json(BUCKET, &key)?.unwrap_or_default();
    if prefs.len() >= 100 && !prefs.contains_key(&a.key) {
        return Err(ToolError::LimitExceeded(
            "at most 100 preferences per user".into(),
        ));
    }
    prefs.insert(a.key, a.value);
    kv::set_json(BUCKET, &key, &prefs)?;
    Ok(prefs)
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Nothing {}

pub fn get(ctx: &Context, _: Nothing) -> Result<BTreeMap<String, String>, ToolError> {
    let user = user(ctx)?;
    Ok(kv::get_json(BUCKET, &format!("user:{user}"))?.unwrap_or_default())
}
