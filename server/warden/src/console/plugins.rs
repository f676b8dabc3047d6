//! The plugins page: each plugin's status, tools and their effects, what
//! it is granted (and the grant's warnings: what it asked for and did not
//! get), its change history; enable and disable through the same
//! `PluginManager::set_enabled` the API uses (recorded in the plugin's
//! history and the audit log with the admin key's name).

use askama::Template;
use axum::Extension;
use axum::Form;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::pages::{Nav, error_page, html, refused_csrf};
use super::session::{self, Session};
use crate::api::AppState;

struct ToolRow {
    name: String,
    effect: String,
    description: String,
}

struct PluginRow {
    id: String,
    name: String,
    version: String,
    status: String,
    error: String,
    tools: Vec<ToolRow>,
    grant: Vec<String>,
    warnings: Vec<String>,
    history: Vec<String>,
}

#[derive(Template)]
#[template(path = "console/plugins.html")]
struct PluginsPage {
    nav: Nav,
    plugins: Vec<PluginRow>,
}

fn text<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

pub async fn list(State(state): State<AppState>, Extension(s): Extension<Session>) -> Response {
    let mut plugins = Vec::new();
    for p in state.plugins.list().await {
        let history = state
            .plugins
            .events(&p.id)
            .await
            .unwrap_or_default()
            .into_iter()
            .rev()
            .take(10)
            .map(|e| {
                format!(
                    "{} {} by {}",
                    e.created_at.format("%Y-%m-%d %H:%M"),
                    e.action,
                    e.actor.unwrap_or_default()
                )
            })
            .collect();
        plugins.push(PluginRow {
            name: p.name.clone().unwrap_or_default(),
            version: p.version.clone().unwrap_or_default(),
            status: text(&p.status),
            error: p.error.clone().unwrap_or_default(),
            tools: p
                .tools
                .iter()
                .map(|t| ToolRow {
                    name: t.name.clone(),
                    effect: t.effect.as_str().to_owned(),
                    description: t.description.clone(),
                })
                .collect(),
            grant: p.grant.clone(),
            warnings: p.warnings.clone(),
            history,
            id: p.id,
        });
    }
    html(
        StatusCode::OK,
        &PluginsPage {
            nav: Nav::of(&s, "plugins"),
            plugins,
        },
    )
}

#[derive(Deserialize)]
pub struct SwitchForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    enabled: String,
}

pub async fn switch(
    State(state): State<AppState>,
    Extension(s): Extension<Session>,
    Path(id): Path<String>,
    Form(form): Form<SwitchForm>,
) -> Response {
    if !session::csrf_ok(&s, &form.csrf) {
        return refused_csrf();
    }
    let enabled = match form.enabled.as_str() {
        "true" => true,
        "false" => false,
        _ => return error_page(StatusCode::BAD_REQUEST, "Choose enable or disable."),
    };
    match state.plugins.set_enabled(&id, enabled, &s.key_name).await {
        Ok(_) => {
            let action = if enabled {
                "plugin.enable"
            } else {
                "plugin.disable"
            };
            super::audit_action(&state, &s.key_name, action, &id).await;
            Redirect::to("/console/plugins").into_response()
        }
        Err(e) => {
            let e = crate::api::error::ApiError::from(e);
            error_page(e.status, &e.message)
        }
    }
}
