//! The agents page: every agent (from `warden.toml`, read-only, or made
//! through the API or here), a form to create or edit one (system prompt,
//! model, tools picked from the installed plugins, examples, limits) that
//! stores it through the same `AgentCatalog::put` as `POST /api/agents`,
//! and a "try it" box that starts a run (detached, like the API's) and
//! opens its run page, whose timeline follows the run live.

use askama::Template;
use axum::Extension;
use axum::Form;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::pages::{Nav, error_page, html, internal, refused_csrf};
use super::session::{self, Session};
use crate::api::AppState;
use warden_agents::{AgentSpec, RunRequest};

const MAX_MESSAGE: usize = 64 * 1024;

struct AgentRow {
    name: String,
    description: String,
    model: String,
    tools: String,
    source: String,
}

/// One tool offered by the installed plugins, and whether the form has it.
struct ToolChoice {
    id: String,
    effect: String,
    chosen: bool,
}

#[derive(Template)]
#[template(path = "console/agents.html")]
struct AgentsPage {
    nav: Nav,
    agents: Vec<AgentRow>,
    f: AgentForm,
    models: Vec<(String, bool)>,
    tools: Vec<ToolChoice>,
    editing: bool,
    error: String,
}

/// The agent form as posted (checkbox `tools` may repeat).
#[derive(Deserialize, Default, Clone)]
pub struct AgentForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    model: String,
    #[serde(default)]
    system_prompt: String,
    #[serde(default)]
    tools: Vec<String>,
    /// One example per line pair: `user: …` then `assistant: {…}`.
    #[serde(default)]
    examples: String,
    #[serde(default)]
    max_steps: String,
    #[serde(default)]
    max_tokens: String,
}

impl AgentForm {
    fn of(spec: &AgentSpec) -> Self {
        Self {
            name: spec.name.clone(),
            description: spec.description.clone(),
            model: spec.model.clone().unwrap_or_default(),
            system_prompt: spec.system_prompt.clone(),
            tools: spec.tools.clone(),
            examples: spec
                .examples
                .iter()
                .map(|e| format!("user: {}\nassistant: {}", e.user, e.assistant))
                .collect::<Vec<_>>()
                .join("\n"),
            max_steps: spec.max_steps.to_string(),
            max_tokens: spec.max_tokens.to_string(),
        }
    }

    /// The spec the form describes, or what is wrong with it.
    fn spec(&self) -> Result<AgentSpec, String> {
        let mut examples = Vec::new();
        let mut user: Option<String> = None;
        for line in self
            .examples
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
        {
            if let Some(u) = line.strip_prefix("user:") {
                user = Some(u.trim().to_owned());
            } else if let Some(a) = line.strip_prefix("assistant:") {
                let u = user
                    .take()
                    .ok_or("an example's assistant line needs a user line before it")?;
                examples.push(serde_json::json!({"user": u, "assistant": a.trim()}));
            } else {
                return Err("example lines start with `user:` or `assistant:`".into());
            }
        }
        let number = |v: &str, what: &str| -> Result<Option<u32>, String> {
            let v = v.trim();
            if v.is_empty() {
                return Ok(None);
            }
            v.parse()
                .map(Some)
                .map_err(|_| format!("{what} must be a whole number"))
        };
        let mut spec = serde_json::json!({
            "name": self.name.trim(),
            "description": self.description.trim(),
            "system_prompt": self.system_prompt,
            "tools": self.tools,
            "examples": examples,
        });
        if !self.model.trim().is_empty() {
            spec["model"] = self.model.trim().into();
        }
        if let Some(n) = number(&self.max_steps, "max steps")? {
            spec["max_steps"] = n.into();
        }
        if let Some(n) = number(&self.max_tokens, "max tokens")? {
            spec["max_tokens"] = n.into();
        }
        serde_json::from_value(spec).map_err(|e| e.to_string())
    }
}

async fn render(
    state: &AppState,
    s: &Session,
    f: AgentForm,
    editing: bool,
    error: String,
) -> Response {
    let agents = match state.agents.catalog.list().await {
        Ok(a) => a,
        Err(e) => return internal(e),
    };
    let mut tools = Vec::new();
    for p in state.plugins.list().await {
        for t in &p.tools {
            let id = format!("{}/{}", p.id, t.name);
            tools.push(ToolChoice {
                chosen: f.tools.contains(&id) || f.tools.contains(&format!("{}/*", p.id)),
                effect: t.effect.as_str().to_owned(),
                id,
            });
        }
    }
    let models = state
        .registry
        .iter()
        .map(|b| (b.model_id().to_owned(), b.model_id() == f.model))
        .collect();
    let status = if error.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::BAD_REQUEST
    };
    html(
        status,
        &AgentsPage {
            nav: Nav::of(s, "agents"),
            agents: agents
                .into_iter()
                .map(|(a, source)| AgentRow {
                    model: a.model.clone().unwrap_or_else(|| "(default)".into()),
                    tools: a.tools.join(", "),
                    name: a.name,
                    description: a.description,
                    source: source.to_owned(),
                })
                .collect(),
            f,
            models,
            tools,
            editing,
            error,
        },
    )
}

pub async fn list(State(state): State<AppState>, Extension(s): Extension<Session>) -> Response {
    let f = AgentForm {
        max_steps: "6".into(),
        max_tokens: "1024".into(),
        ..AgentForm::default()
    };
    render(&state, &s, f, false, String::new()).await
}

pub async fn edit(
    State(state): State<AppState>,
    Extension(s): Extension<Session>,
    Path(name): Path<String>,
) -> Response {
    match state.agents.catalog.get(&name).await {
        Ok(spec) => render(&state, &s, AgentForm::of(&spec), true, String::new()).await,
        Err(e) => {
            let e = crate::api::error::ApiError::from(e);
            error_page(e.status, &e.message)
        }
    }
}

/// `tools` arrives as repeated fields: read the body by hand.
fn parse_form(body: &[u8]) -> (String, AgentForm) {
    let mut f = AgentForm::default();
    let mut csrf = String::new();
    for (k, v) in form_urlencoded::parse(body) {
        let v = v.into_owned();
        match k.as_ref() {
            "csrf" => csrf = v,
            "name" => f.name = v,
            "description" => f.description = v,
            "model" => f.model = v,
            "system_prompt" => f.system_prompt = v,
            "tools" => f.tools.push(v),
            "examples" => f.examples = v,
            "max_steps" => f.max_steps = v,
            "max_tokens" => f.max_tokens = v,
            _ => {}
        }
    }
    (csrf, f)
}

pub async fn save(
    State(state): State<AppState>,
    Extension(s): Extension<Session>,
    body: axum::body::Bytes,
) -> Response {
    let (csrf, f) = parse_form(&body);
    if !session::csrf_ok(&s, &csrf) {
        return refused_csrf();
    }
    let spec = match f.spec() {
        Ok(spec) => spec,
        Err(e) => return render(&state, &s, f, false, e).await,
    };
    if let Some(m) = &spec.model
        && state.registry.get(m).is_none()
    {
        return render(
            &state,
            &s,
            f,
            false,
            format!("model {m:?} is not configured"),
        )
        .await;
    }
    let name = spec.name.clone();
    match state.agents.define(spec, &s.key_name).await {
        Ok(()) => {
            super::audit_action(&state, &s.key_name, "agent.save", &name).await;
            Redirect::to(&format!(
                "/console/agents/{}",
                super::pages::urlencode(&name)
            ))
            .into_response()
        }
        Err(e) => {
            let e = crate::api::error::ApiError::from(e);
            if e.status.is_server_error() {
                return internal(e.message);
            }
            render(&state, &s, f, false, e.message).await
        }
    }
}

#[derive(Deserialize)]
pub struct TryForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    message: String,
}

pub async fn try_it(
    State(state): State<AppState>,
    Extension(s): Extension<Session>,
    Path(name): Path<String>,
    Form(form): Form<TryForm>,
) -> Response {
    if !session::csrf_ok(&s, &form.csrf) {
        return refused_csrf();
    }
    if form.message.trim().is_empty() || form.message.len() > MAX_MESSAGE {
        return error_page(
            StatusCode::BAD_REQUEST,
            "A message has 1 byte to 64 KiB of text.",
        );
    }
    let agent = match state.agents.catalog.get(&name).await {
        Ok(a) => a,
        Err(e) => {
            let e = crate::api::error::ApiError::from(e);
            return error_page(e.status, &e.message);
        }
    };
    let id = warden_agents::runner::new_run_id();
    let request = RunRequest {
        agent,
        message: form.message,
        subject: Some(s.key_name.clone()),
        channel: "console".into(),
        id: Some(id.clone()),
        history: Vec::new(),
        answer_stream: None,
    };
    let agents = state.agents.clone();
    // Detached, like the API's: the run goes on whatever the browser does.
    tokio::spawn(async move {
        if let Err(e) = agents.runner.run(request, None).await {
            tracing::warn!(error = %e, "console: a tried run failed to start");
        }
    });
    // The run page follows it live; wait until it exists.
    for _ in 0..50 {
        if let Ok(Some(_)) = state.agents.runner.runs.get(&id).await {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    Redirect::to(&format!("/console/runs/{id}")).into_response()
}
