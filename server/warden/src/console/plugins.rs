//! The plugins page: each plugin's status, tools and their effects, what
//! it requests against what it is granted (with the exact `warden.toml`
//! lines that would grant the rest), its change history; and the actions,
//! each through the same `PluginManager` call the API makes and each
//! recorded in the plugin's history and the audit log with the admin key's
//! name: install from an upload, enable, disable, accept a changed
//! component, remove, and call a tool with JSON arguments
//! (`api::plugins::call_tool`, the API's own direct call).

use askama::Template;
use axum::Extension;
use axum::Form;
use axum::body::Bytes;
use axum::extract::{Path, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use serde_json::Value;

use super::pages::{Nav, error_page, html, refused_csrf};
use super::session::{self, Session};
use crate::api::AppState;
use crate::api::error::ApiError;
use warden_plugin_host::{CallRequest, ManageError, Source};

/// Largest plugin.toml an upload may carry.
const MAX_MANIFEST_BYTES: usize = 64 * 1024;
/// Largest JSON argument text a call form may carry.
const MAX_ARGUMENTS_BYTES: usize = 256 * 1024;

struct ToolRow {
    name: String,
    effect: String,
    description: String,
    /// The argument schema, pretty-printed.
    schema: String,
    /// What the call form holds: a skeleton from the schema, or what the
    /// admin typed last.
    arguments: String,
    call: Option<CallView>,
}

/// The result of a call made from the page.
struct CallView {
    ok: bool,
    /// The tool's output (pretty JSON), or the error.
    text: String,
    meta: String,
}

struct PluginRow {
    id: String,
    name: String,
    version: String,
    status: String,
    source: String,
    managed: bool,
    awaiting_accept: bool,
    digest: String,
    error: String,
    tools: Vec<ToolRow>,
    grant: Vec<String>,
    warnings: Vec<String>,
    missing_grant_toml: String,
    history: Vec<String>,
}

#[derive(Template)]
#[template(path = "console/plugins.html")]
struct PluginsPage {
    nav: Nav,
    plugins: Vec<PluginRow>,
    notice: String,
    error: String,
    max_upload: String,
}

/// A call made from the page, shown under its tool.
struct MadeCall {
    plugin: String,
    tool: String,
    arguments: String,
    view: CallView,
}

fn text<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
}

/// A starting point for the call form: every property of the schema with
/// an empty value of its type (the admin fills in the rest).
pub(super) fn skeleton(schema: &Value) -> String {
    let Some(props) = schema.get("properties").and_then(Value::as_object) else {
        return "{}".into();
    };
    let mut out = serde_json::Map::new();
    for (name, prop) in props {
        let ty = match prop.get("type") {
            Some(Value::Array(types)) => types
                .iter()
                .filter_map(Value::as_str)
                .find(|t| *t != "null")
                .unwrap_or("null")
                .to_owned(),
            Some(Value::String(t)) => t.clone(),
            _ => String::new(),
        };
        let empty = match ty.as_str() {
            "string" => prop
                .get("enum")
                .and_then(|e| e.get(0))
                .cloned()
                .unwrap_or_else(|| Value::String(String::new())),
            "integer" | "number" => Value::from(0),
            "boolean" => Value::Bool(false),
            "array" => Value::Array(Vec::new()),
            "object" => Value::Object(serde_json::Map::new()),
            _ => Value::Null,
        };
        out.insert(name.clone(), empty);
    }
    pretty(&Value::Object(out))
}

async fn page(
    state: &AppState,
    s: &Session,
    notice: String,
    error: String,
    call: Option<MadeCall>,
) -> PluginsPage {
    let mut call = call;
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
        let tools = p
            .tools
            .iter()
            .map(|t| {
                let made = call
                    .take_if(|c| c.plugin == p.id && c.tool == t.name)
                    .map(|c| (c.arguments, c.view));
                let (arguments, view) = match made {
                    Some((a, v)) => (a, Some(v)),
                    None => (skeleton(&t.arguments_schema), None),
                };
                ToolRow {
                    name: t.name.clone(),
                    effect: t.effect.as_str().to_owned(),
                    description: t.description.clone(),
                    schema: pretty(&t.arguments_schema),
                    arguments,
                    call: view,
                }
            })
            .collect();
        let (source, managed) = match &p.source {
            Source::Managed => (
                "an upload through the console or the API (managed)".to_owned(),
                true,
            ),
            Source::Directory(d) => (format!("the configured directory {}", d.display()), false),
        };
        plugins.push(PluginRow {
            name: p.name.clone().unwrap_or_default(),
            version: p.version.clone().unwrap_or_default(),
            status: text(&p.status),
            source,
            managed,
            awaiting_accept: p.awaiting_accept,
            digest: p.digest.clone().unwrap_or_default(),
            error: p.error.clone().unwrap_or_default(),
            tools,
            grant: p.grant.clone(),
            warnings: p.warnings.clone(),
            missing_grant_toml: p.missing_grant_toml.clone().unwrap_or_default(),
            history,
            id: p.id,
        });
    }
    // A call to a tool the plugin does not list has no row to show under.
    let error = match call {
        Some(c) if error.is_empty() => c.view.text,
        _ => error,
    };
    PluginsPage {
        nav: Nav::of(s, "plugins"),
        plugins,
        notice,
        error,
        max_upload: format!("{} MiB", state.plugins.max_upload_bytes() >> 20),
    }
}

pub async fn list(State(state): State<AppState>, Extension(s): Extension<Session>) -> Response {
    html(
        StatusCode::OK,
        &page(&state, &s, String::new(), String::new(), None).await,
    )
}

/// The plugins page again, with what went wrong and its status.
async fn refused(state: &AppState, s: &Session, status: StatusCode, error: String) -> Response {
    html(status, &page(state, s, String::new(), error, None).await)
}

/// A plugin action's outcome: done, it is audited (`action` on `target`)
/// and the page says `notice` with `status`; refused, the page says why
/// (after `prefix`) with the status the API would answer.
async fn acted(
    state: &AppState,
    s: &Session,
    (action, target): (&str, &str),
    outcome: Result<(StatusCode, String), ManageError>,
    prefix: &str,
) -> Response {
    match outcome {
        Ok((status, notice)) => {
            super::audit_action(state, &s.key_name, action, target).await;
            html(status, &page(state, s, notice, String::new(), None).await)
        }
        Err(e) => {
            let e = ApiError::from(e);
            refused(state, s, e.status, format!("{prefix}{}", e.message)).await
        }
    }
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
            super::audit_action(&state, &s.key_name, action_of(enabled), &id).await;
            Redirect::to("/console/plugins").into_response()
        }
        Err(e) => acted(&state, &s, (action_of(enabled), &id), Err(e), "").await,
    }
}

fn action_of(enabled: bool) -> &'static str {
    if enabled {
        "plugin.enable"
    } else {
        "plugin.disable"
    }
}

pub async fn accept(
    State(state): State<AppState>,
    Extension(s): Extension<Session>,
    Path(id): Path<String>,
    Form(form): Form<super::pages::CsrfForm>,
) -> Response {
    if !session::csrf_ok(&s, &form.csrf) {
        return refused_csrf();
    }
    let outcome = state.plugins.accept(&id, &s.key_name).await.map(|view| {
        let digest = view.digest.unwrap_or_default();
        (
            StatusCode::OK,
            format!("Accepted the new component of {id} (digest {digest})."),
        )
    });
    acted(&state, &s, ("plugin.accept", &id), outcome, "").await
}

#[derive(Deserialize)]
pub struct RemoveForm {
    #[serde(default)]
    csrf: String,
    /// "on" keeps the plugin's kv data.
    #[serde(default)]
    keep_data: String,
}

pub async fn remove(
    State(state): State<AppState>,
    Extension(s): Extension<Session>,
    Path(id): Path<String>,
    Form(form): Form<RemoveForm>,
) -> Response {
    if !session::csrf_ok(&s, &form.csrf) {
        return refused_csrf();
    }
    let purge = form.keep_data != "on";
    let outcome = state
        .plugins
        .remove(&id, purge, &s.key_name)
        .await
        .map(|()| {
            let notice = if purge {
                format!("Removed {id} and its stored data.")
            } else {
                format!("Removed {id}; its stored data is kept.")
            };
            (StatusCode::OK, notice)
        });
    acted(&state, &s, ("plugin.remove", &id), outcome, "").await
}

/// What an upload form carried.
#[derive(Default)]
struct Upload {
    csrf: String,
    manifest: Option<Bytes>,
    component: Option<Bytes>,
}

/// Why an upload could not be read.
#[derive(Debug, thiserror::Error)]
enum UploadError {
    #[error("The upload must be sent as multipart/form-data.")]
    NotMultipart,
    #[error("The upload is larger than the limit ({0}).")]
    TooLarge(String),
    #[error("The form has an unexpected field {0:?}.")]
    UnknownField(String),
    #[error("The upload could not be read: {0}")]
    Unreadable(String),
}

impl UploadError {
    fn status(&self) -> StatusCode {
        match self {
            UploadError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            _ => StatusCode::BAD_REQUEST,
        }
    }
}

/// Reads the multipart form within limits: the manifest at most 64 KiB,
/// the component at most `plugins.max_upload_bytes`; nothing else.
async fn read_upload(req: Request, max_component: usize) -> Result<Upload, UploadError> {
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let boundary = multer::parse_boundary(&content_type).map_err(|_| UploadError::NotMultipart)?;
    let as_u64 = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
    let whole = max_component + MAX_MANIFEST_BYTES + 16 * 1024;
    let limits = multer::SizeLimit::new()
        .whole_stream(as_u64(whole))
        .for_field("csrf", 1024)
        .for_field("manifest", as_u64(MAX_MANIFEST_BYTES))
        .for_field("component", as_u64(max_component));
    let constraints = multer::Constraints::new()
        .allowed_fields(vec!["csrf", "manifest", "component"])
        .size_limit(limits);
    let stream = req.into_body().into_data_stream();
    let mut multipart = multer::Multipart::with_constraints(stream, boundary, constraints);
    let mut upload = Upload::default();
    let read_error =
        |e: multer::Error| match e {
            multer::Error::StreamSizeExceeded { .. } => {
                UploadError::TooLarge(format!("{} MiB in all", whole >> 20))
            }
            multer::Error::FieldSizeExceeded { field_name, limit } => UploadError::TooLarge(
                format!("{} bytes for {}", limit, field_name.unwrap_or_default()),
            ),
            multer::Error::UnknownField { field_name } => {
                UploadError::UnknownField(field_name.unwrap_or_default())
            }
            other => UploadError::Unreadable(other.to_string()),
        };
    while let Some(field) = multipart.next_field().await.map_err(read_error)? {
        let name = field.name().unwrap_or_default().to_owned();
        let data = field.bytes().await.map_err(read_error)?;
        match name.as_str() {
            "csrf" => upload.csrf = String::from_utf8_lossy(&data).into_owned(),
            "manifest" => upload.manifest = Some(data),
            "component" => upload.component = Some(data),
            other => return Err(UploadError::UnknownField(other.to_owned())),
        }
    }
    Ok(upload)
}

/// Installs (or upgrades) a plugin from an uploaded `plugin.toml` and
/// component, through `PluginManager::install` like `POST /api/plugins`.
pub async fn install(
    State(state): State<AppState>,
    Extension(s): Extension<Session>,
    req: Request,
) -> Response {
    let upload = match read_upload(req, state.plugins.max_upload_bytes()).await {
        Ok(u) => u,
        Err(e) => return refused(&state, &s, e.status(), e.to_string()).await,
    };
    if !session::csrf_ok(&s, &upload.csrf) {
        return refused_csrf();
    }
    let (Some(manifest), Some(component)) = (upload.manifest, upload.component) else {
        return refused(
            &state,
            &s,
            StatusCode::BAD_REQUEST,
            "Choose both files: the plugin.toml and the component (.wasm).".into(),
        )
        .await;
    };
    if component.is_empty() {
        return refused(
            &state,
            &s,
            StatusCode::BAD_REQUEST,
            "The component file is empty.".into(),
        )
        .await;
    }
    let Ok(manifest) = std::str::from_utf8(&manifest) else {
        return refused(
            &state,
            &s,
            StatusCode::BAD_REQUEST,
            "plugin.toml is not UTF-8 text.".into(),
        )
        .await;
    };
    let outcome = state
        .plugins
        .install(manifest, &component, &s.key_name)
        .await;
    let id = outcome.as_ref().map(|v| v.id.clone()).unwrap_or_default();
    let outcome = outcome.map(|view| {
        let version = view.version.unwrap_or_default();
        let notice = format!("Installed {id} {version} ({} tools).", view.tools.len());
        (StatusCode::CREATED, notice)
    });
    acted(
        &state,
        &s,
        ("plugin.install", &id),
        outcome,
        "Not installed: ",
    )
    .await
}

#[derive(Deserialize)]
pub struct CallForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    arguments: String,
    #[serde(default)]
    user: String,
}

/// Calls a tool with the JSON arguments typed on the page and shows the
/// result under the tool, keeping what was typed.
pub async fn call(
    State(state): State<AppState>,
    Extension(s): Extension<Session>,
    Path((id, tool)): Path<(String, String)>,
    Form(form): Form<CallForm>,
) -> Response {
    if !session::csrf_ok(&s, &form.csrf) {
        return refused_csrf();
    }
    let made = |ok: bool, text: String, meta: String| MadeCall {
        plugin: id.clone(),
        tool: tool.clone(),
        arguments: form.arguments.clone(),
        view: CallView { ok, text, meta },
    };
    let (status, call) = if form.arguments.len() > MAX_ARGUMENTS_BYTES {
        (
            StatusCode::PAYLOAD_TOO_LARGE,
            made(
                false,
                format!("The arguments are larger than {MAX_ARGUMENTS_BYTES} bytes."),
                String::new(),
            ),
        )
    } else {
        match serde_json::from_str::<Value>(&form.arguments) {
            Err(e) => (
                StatusCode::BAD_REQUEST,
                made(
                    false,
                    format!("The arguments are not valid JSON: {e}"),
                    String::new(),
                ),
            ),
            Ok(arguments) => {
                let user = form.user.trim();
                let request = CallRequest {
                    user: (!user.is_empty()).then(|| user.to_owned()),
                    conversation: None,
                };
                let result =
                    crate::api::plugins::call_tool(&state, &id, &tool, &arguments, &request).await;
                super::audit_action(&state, &s.key_name, "plugin.call", &format!("{id}/{tool}"))
                    .await;
                match result {
                    Ok(done) => (
                        StatusCode::OK,
                        made(
                            true,
                            pretty(&done.output),
                            format!(
                                "{} · {:.1} ms · peak memory {} KiB{}{}",
                                done.call_id,
                                done.elapsed_ms,
                                done.peak_memory_bytes >> 10,
                                done.fuel_consumed
                                    .map(|f| format!(" · fuel {f}"))
                                    .unwrap_or_default(),
                                if done.queued {
                                    " · waited for a slot"
                                } else {
                                    ""
                                }
                            ),
                        ),
                    ),
                    Err(e) => (e.status, made(false, e.message, String::new())),
                }
            }
        }
    };
    html(
        status,
        &page(&state, &s, String::new(), String::new(), Some(call)).await,
    )
}
