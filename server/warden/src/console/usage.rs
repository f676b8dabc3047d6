//! The usage page: requests and tokens per API key, model and agent over
//! the last `days` days, and per day as a bar chart (inline SVG drawn
//! here: no script, no third-party chart code). Read from the request log
//! (every `/v1` and `/api` request) and the run store (agent runs).

use std::collections::BTreeMap;

use askama::Template;
use axum::Extension;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QuerySelect};
use serde::Deserialize;

use super::pages::{Nav, html, internal};
use super::session::Session;
use crate::api::AppState;
use warden_db::entities::{agent_run, api_key, request_log};

#[derive(Default, Clone)]
struct Usage {
    requests: u64,
    tokens: i64,
}

struct Row {
    name: String,
    requests: u64,
    tokens: i64,
}

struct Bar {
    x: usize,
    y: usize,
    height: usize,
    day: String,
    tokens: i64,
}

#[derive(Template)]
#[template(path = "console/usage.html")]
struct UsagePage {
    nav: Nav,
    days: i64,
    by_key: Vec<Row>,
    by_model: Vec<Row>,
    by_agent: Vec<Row>,
    bars: Vec<Bar>,
    chart_width: usize,
}

#[derive(Deserialize)]
pub struct Window {
    #[serde(default = "thirty")]
    days: i64,
}

fn thirty() -> i64 {
    30
}

const CHART_HEIGHT: usize = 120;
const BAR: usize = 16;

fn rows(map: BTreeMap<String, Usage>) -> Vec<Row> {
    let mut v: Vec<Row> = map
        .into_iter()
        .map(|(name, u)| Row {
            name,
            requests: u.requests,
            tokens: u.tokens,
        })
        .collect();
    v.sort_by(|a, b| b.tokens.cmp(&a.tokens).then(a.name.cmp(&b.name)));
    v
}

pub async fn show(
    State(state): State<AppState>,
    Extension(s): Extension<Session>,
    Query(w): Query<Window>,
) -> Response {
    let days = w.days.clamp(1, 365);
    let since = chrono::Utc::now() - chrono::Duration::days(days);
    let keys: BTreeMap<i64, String> = match api_key::Entity::find().all(&state.db).await {
        Ok(k) => k.into_iter().map(|k| (k.id, k.name)).collect(),
        Err(e) => return internal(e),
    };
    type LogRow = (
        Option<i64>,
        Option<String>,
        i32,
        i32,
        chrono::DateTime<chrono::Utc>,
    );
    let log: Vec<LogRow> = match request_log::Entity::find()
        .select_only()
        .column(request_log::Column::KeyId)
        .column(request_log::Column::Model)
        .column(request_log::Column::PromptTokens)
        .column(request_log::Column::CompletionTokens)
        .column(request_log::Column::CreatedAt)
        .filter(request_log::Column::CreatedAt.gte(since))
        .into_tuple()
        .all(&state.db)
        .await
    {
        Ok(r) => r,
        Err(e) => return internal(e),
    };
    let runs: Vec<(String, i32, i32)> = match agent_run::Entity::find()
        .select_only()
        .column(agent_run::Column::Agent)
        .column(agent_run::Column::PromptTokens)
        .column(agent_run::Column::CompletionTokens)
        .filter(agent_run::Column::CreatedAt.gte(since))
        .into_tuple()
        .all(&state.db)
        .await
    {
        Ok(r) => r,
        Err(e) => return internal(e),
    };
    let (mut by_key, mut by_model, mut by_agent, mut by_day) = (
        BTreeMap::new(),
        BTreeMap::new(),
        BTreeMap::new(),
        BTreeMap::<String, Usage>::new(),
    );
    for (key, model, p, c, at) in log {
        let tokens = i64::from(p) + i64::from(c);
        let key = key
            .and_then(|k| keys.get(&k).cloned())
            .unwrap_or_else(|| "(no key)".into());
        for (map, name) in [
            (&mut by_key, key),
            (&mut by_model, model.unwrap_or_else(|| "(none)".into())),
            (&mut by_day, at.format("%Y-%m-%d").to_string()),
        ] {
            let u: &mut Usage = map.entry(name).or_default();
            u.requests += 1;
            u.tokens += tokens;
        }
    }
    for (agent, p, c) in runs {
        let u: &mut Usage = by_agent.entry(agent).or_default();
        u.requests += 1;
        u.tokens += i64::from(p) + i64::from(c);
    }
    let max = by_day.values().map(|u| u.tokens).max().unwrap_or(0).max(1);
    let bars = by_day
        .iter()
        .enumerate()
        .map(|(i, (day, u))| {
            let height =
                (u.tokens.max(0) as f64 / max as f64 * CHART_HEIGHT as f64).round() as usize;
            Bar {
                x: i * (BAR + 4),
                y: CHART_HEIGHT - height,
                height,
                day: day.clone(),
                tokens: u.tokens,
            }
        })
        .collect::<Vec<_>>();
    let chart_width = (bars.len() * (BAR + 4)).max(BAR);
    html(
        StatusCode::OK,
        &UsagePage {
            nav: Nav::of(&s, "usage"),
            days,
            by_key: rows(by_key),
            by_model: rows(by_model),
            by_agent: rows(by_agent),
            bars,
            chart_width,
        },
    )
}
