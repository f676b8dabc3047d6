//! The policies page: the active bundle (its files, policies, inline
//! tests, the last reload and its error), a reload, and the evaluate
//! playground: a stage, the scope fields and a text give the matched rules
//! with their spans highlighted and the redacted text, through the same
//! `Governor::check` the API's `POST /api/policies/evaluate` uses (so the
//! evaluation is audited, channel `evaluate`).

use askama::Template;
use axum::Extension;
use axum::Form;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;

use super::pages::{Nav, html, internal, refused_csrf};
use super::session::{self, Session};
use crate::api::AppState;
use warden_policy::Subject;
use warden_policy::spec::Stage;

const MAX_TEXT: usize = 64 * 1024;

struct PolicyRow {
    id: String,
    version: u32,
    mode: String,
    file: String,
    rules: usize,
    description: String,
}

struct TestFileRow {
    file: String,
    passed: Vec<String>,
}

struct FailedTestRow {
    file: String,
    name: String,
    problems: String,
}

/// A piece of the evaluated text: marked where a rule matched.
pub(super) struct Piece {
    text: String,
    kinds: String,
}

struct MatchRow {
    rule: String,
    action: String,
    mode: String,
    spans: String,
}

#[derive(Template)]
#[template(path = "console/policies.html")]
struct PoliciesPage {
    nav: Nav,
    /// The stages, and which the form has chosen.
    stages: Vec<(&'static str, bool)>,
    source: String,
    bundle: String,
    activated_at: String,
    tests: usize,
    test_files: Vec<TestFileRow>,
    reload_error: String,
    /// `file:line:column` of a parse error in the last reload.
    reload_location: String,
    failed_tests: Vec<FailedTestRow>,
    policies: Vec<PolicyRow>,
    notice: String,
    f: EvalForm,
    evaluated: bool,
    decision: String,
    message: String,
    pieces: Vec<Piece>,
    matches: Vec<MatchRow>,
    redacted: String,
    audit_seq: String,
    error: String,
}

#[derive(Deserialize, Default, Clone)]
pub struct EvalForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    stage: String,
    #[serde(default)]
    text: String,
    #[serde(default)]
    agent: String,
    #[serde(default)]
    plugin: String,
    #[serde(default)]
    tool: String,
    #[serde(default)]
    channel: String,
    #[serde(default)]
    effect: String,
}

fn page(state: &AppState, s: &Session, f: EvalForm) -> PoliciesPage {
    let status = state.governor.store.status();
    PoliciesPage {
        nav: Nav::of(s, "policies"),
        stages: ["input", "llm_output", "tool_call", "tool_result", "output"]
            .into_iter()
            .map(|st| (st, st == f.stage))
            .collect(),
        source: status.source.clone(),
        bundle: status.bundle.clone(),
        activated_at: status.activated_at.clone(),
        tests: status.tests,
        test_files: status
            .tests_by_file
            .iter()
            .map(|f| TestFileRow {
                file: f.file.clone(),
                passed: f.passed.clone(),
            })
            .collect(),
        reload_error: status
            .last_reload_error
            .as_ref()
            .map(|e| format!("{} (at {})", e.message, e.at))
            .unwrap_or_default(),
        reload_location: status
            .last_reload_error
            .as_ref()
            .and_then(|e| e.location.as_ref())
            .map(|l| match l.line {
                0 => l.file.clone(),
                _ => format!("{}:{}:{}", l.file, l.line, l.column),
            })
            .unwrap_or_default(),
        failed_tests: status
            .last_reload_error
            .iter()
            .flat_map(|e| &e.failed_tests)
            .map(|t| FailedTestRow {
                file: t.file.clone(),
                name: t.name.clone(),
                problems: t.problems.join("\n"),
            })
            .collect(),
        policies: status
            .policies
            .iter()
            .map(|p| PolicyRow {
                id: p.id.clone(),
                version: p.version,
                mode: p.mode.as_str().to_owned(),
                file: p.file.clone(),
                rules: p.rules.len(),
                description: p.description.clone(),
            })
            .collect(),
        notice: String::new(),
        f: EvalForm {
            csrf: String::new(),
            ..f
        },
        evaluated: false,
        decision: String::new(),
        message: String::new(),
        pieces: Vec::new(),
        matches: Vec::new(),
        redacted: String::new(),
        audit_seq: String::new(),
        error: String::new(),
    }
}

pub async fn show(State(state): State<AppState>, Extension(s): Extension<Session>) -> Response {
    let f = EvalForm {
        stage: "input".into(),
        ..EvalForm::default()
    };
    html(StatusCode::OK, &page(&state, &s, f))
}

pub async fn reload(
    State(state): State<AppState>,
    Extension(s): Extension<Session>,
    Form(form): Form<super::pages::CsrfForm>,
) -> Response {
    if !session::csrf_ok(&s, &form.csrf) {
        return refused_csrf();
    }
    let store = state.governor.store.clone();
    let result = match tokio::task::spawn_blocking(move || store.reload(true)).await {
        Ok(r) => r,
        Err(e) => return internal(e),
    };
    super::audit_action(&state, &s.key_name, "policies.reload", "").await;
    let mut p = page(&state, &s, EvalForm::default());
    let status = match result {
        Ok(Some(_)) => {
            p.notice = format!("Activated bundle {}.", p.bundle);
            StatusCode::OK
        }
        Ok(None) => {
            p.notice = "Nothing changed on disk; the active bundle stays.".into();
            StatusCode::OK
        }
        Err(e) => {
            p.error = format!("The policy directory was not activated: {e}");
            StatusCode::UNPROCESSABLE_ENTITY
        }
    };
    html(status, &p)
}

/// The text cut into pieces at the spans' edges, each piece naming the
/// span kinds covering it (byte offsets; an offset inside a character is
/// moved to its start).
pub(super) fn pieces(text: &str, spans: &[(usize, usize, String)]) -> Vec<Piece> {
    let floor = |mut i: usize| {
        i = i.min(text.len());
        while !text.is_char_boundary(i) {
            i -= 1;
        }
        i
    };
    let mut cuts: Vec<usize> = vec![0, text.len()];
    for (a, b, _) in spans {
        cuts.push(floor(*a));
        cuts.push(floor(*b));
    }
    cuts.sort_unstable();
    cuts.dedup();
    cuts.windows(2)
        .map(|w| {
            let (a, b) = (w[0], w[1]);
            let mut kinds: Vec<&str> = spans
                .iter()
                .filter(|(s, e, _)| floor(*s) <= a && b <= floor(*e))
                .map(|(_, _, k)| k.as_str())
                .collect();
            kinds.sort_unstable();
            kinds.dedup();
            Piece {
                text: text[a..b].to_owned(),
                kinds: kinds.join(" "),
            }
        })
        .filter(|p| !p.text.is_empty())
        .collect()
}

pub async fn evaluate(
    State(state): State<AppState>,
    Extension(s): Extension<Session>,
    Form(form): Form<EvalForm>,
) -> Response {
    if !session::csrf_ok(&s, &form.csrf) {
        return refused_csrf();
    }
    let mut p = page(&state, &s, form.clone());
    let Some(stage) = Stage::parse(&form.stage) else {
        p.error = "Choose a stage: input, llm_output, tool_call, tool_result or output.".into();
        return html(StatusCode::BAD_REQUEST, &p);
    };
    if form.text.len() > MAX_TEXT {
        p.error = format!("The playground takes at most {MAX_TEXT} bytes.");
        return html(StatusCode::BAD_REQUEST, &p);
    }
    let opt = |v: &str| (!v.trim().is_empty()).then(|| v.trim().to_owned());
    let subject = Subject {
        key: Some(s.key_name.clone()),
        agent: opt(&form.agent),
        plugin: opt(&form.plugin),
        tool: opt(&form.tool),
        channel: Some(opt(&form.channel).unwrap_or_else(|| "evaluate".into())),
        effect: opt(&form.effect),
    };
    let checked = match state
        .governor
        .check(stage, &form.text, &subject, None)
        .await
    {
        Ok(c) => c,
        Err(e) => return internal(e),
    };
    let d = &checked.decision;
    let spans: Vec<(usize, usize, String)> = d
        .matches
        .iter()
        .flat_map(|m| {
            m.spans
                .iter()
                .map(|sp| (sp.start, sp.end, sp.kind.to_string()))
        })
        .collect();
    p.evaluated = true;
    p.decision = d.decision.as_str().to_owned();
    p.message = d.message.clone().unwrap_or_default();
    p.pieces = pieces(&form.text, &spans);
    p.matches = d
        .matches
        .iter()
        .map(|m| MatchRow {
            rule: m.qualified(),
            action: m.action.as_str().to_owned(),
            mode: m.mode.as_str().to_owned(),
            spans: m
                .spans
                .iter()
                .map(|sp| format!("{} {}..{}", sp.kind, sp.start, sp.end))
                .collect::<Vec<_>>()
                .join(", "),
        })
        .collect();
    p.redacted = d.redacted.clone().unwrap_or_default();
    p.audit_seq = checked.audit_seq.to_string();
    html(StatusCode::OK, &p)
}

#[cfg(test)]
mod tests {
    use super::pieces;

    #[test]
    fn spans_cut_the_text_into_marked_and_plain_pieces_at_character_boundaries() {
        let text = "key AKIA1 and é€x";
        let got = pieces(text, &[(4, 9, "aws".into()), (15, 17, "odd".into())]);
        let shown: Vec<(&str, &str)> = got
            .iter()
            .map(|p| (p.text.as_str(), p.kinds.as_str()))
            .collect();
        // 15 and 17 fall inside "é" (14..16) and "€" (16..19): moved back.
        assert_eq!(
            shown,
            [
                ("key ", ""),
                ("AKIA1", "aws"),
                (" and ", ""),
                ("é", "odd"),
                ("€x", "")
            ]
        );
    }
}
