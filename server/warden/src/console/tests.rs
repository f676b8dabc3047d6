//! The console in-process: logins (admin keys only), sessions that end
//! when their key is revoked or they expire, CSRF and same-origin checks
//! on every state change, escaping of whatever the database holds, bad
//! filters answered with the form kept. The real browser flows are in the
//! integration suite.

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use axum::response::Response;
use sea_orm::{ActiveModelTrait, EntityTrait, Set};
use tower::ServiceExt as _;

use crate::api::router;
use crate::api::tests::{MAX_BODY, state};
use crate::keys::{self, Role};
use warden_db::entities::{agent_run, audit_log, console_session};

const HOST: &str = "warden.test";
const ORIGIN: &str = "http://warden.test";

struct Console {
    router: axum::Router,
    db: sea_orm::DatabaseConnection,
    admin: String,
    user: String,
    _dir: tempfile::TempDir,
}

async fn console() -> Console {
    let dir = tempfile::tempdir().unwrap();
    let (state, _) = state(dir.path()).await;
    let db = state.db.clone();
    let admin = keys::create(&db, "ops-admin", Role::Admin).await.unwrap();
    let user = keys::create(&db, "some-user", Role::User).await.unwrap();
    Console {
        router: router(state, MAX_BODY),
        db,
        admin,
        user,
        _dir: dir,
    }
}

async fn body(r: Response) -> String {
    let bytes = axum::body::to_bytes(r.into_body(), 1 << 22).await.unwrap();
    String::from_utf8_lossy(&bytes).into_owned()
}

fn form(
    path: &str,
    fields: &[(&str, &str)],
    cookie: Option<&str>,
    origin: Option<&str>,
) -> Request<Body> {
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(fields)
        .finish();
    let mut r = Request::post(path)
        .header(header::HOST, HOST)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    if let Some(c) = cookie {
        r = r.header(header::COOKIE, format!("{}={c}", super::session::COOKIE));
    }
    if let Some(o) = origin {
        r = r.header(header::ORIGIN, o);
    }
    r.body(Body::from(body)).unwrap()
}

fn get(path: &str, cookie: Option<&str>) -> Request<Body> {
    let mut r = Request::get(path).header(header::HOST, HOST);
    if let Some(c) = cookie {
        r = r.header(header::COOKIE, format!("{}={c}", super::session::COOKIE));
    }
    r.body(Body::empty()).unwrap()
}

/// Whether `html` has an inline event handler (` onclick=`…).
fn inline_handler(html: &str) -> bool {
    html.match_indices(" on").any(|(i, _)| {
        let rest = &html[i + 3..];
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphabetic())
            .collect();
        !name.is_empty() && rest[name.len()..].starts_with('=')
    })
}

impl Console {
    async fn send(&self, req: Request<Body>) -> Response {
        self.router.clone().oneshot(req).await.unwrap()
    }

    /// Logs in with `key`; the session cookie's value.
    async fn login(&self, key: &str) -> String {
        let r = self
            .send(form("/console/login", &[("key", key)], None, Some(ORIGIN)))
            .await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        let set = r.headers()[header::SET_COOKIE].to_str().unwrap().to_owned();
        set.split(';')
            .next()
            .unwrap()
            .split_once('=')
            .unwrap()
            .1
            .to_owned()
    }

    /// The CSRF token a logged-in page carries.
    async fn csrf(&self, cookie: &str) -> String {
        let page = body(self.send(get("/console/keys", Some(cookie))).await).await;
        let at = page.find("name=\"csrf\" value=\"").expect("a csrf field") + 19;
        page[at..].split('"').next().unwrap().to_owned()
    }
}

#[tokio::test]
async fn an_admin_key_logs_in_to_a_session_cookie_scoped_to_the_console_and_user_keys_cannot() {
    let c = console().await;
    let r = c
        .send(form(
            "/console/login",
            &[("key", &c.admin)],
            None,
            Some(ORIGIN),
        ))
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let cookie = r.headers()[header::SET_COOKIE].to_str().unwrap().to_owned();
    for part in [
        "HttpOnly",
        "SameSite=Strict",
        "Path=/console",
        "Max-Age=43200",
    ] {
        assert!(cookie.contains(part), "{cookie}");
    }
    let id = cookie
        .split(';')
        .next()
        .unwrap()
        .split_once('=')
        .unwrap()
        .1
        .to_owned();
    assert!(id.len() >= 43, "256 random bits: {id}");
    // Stored hashed: the database never holds the cookie's value.
    let rows = console_session::Entity::find().all(&c.db).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_ne!(rows[0].id_hash, id);
    assert!(!rows[0].id_hash.contains(&id));
    // A new id at every login.
    assert_ne!(c.login(&c.admin).await, id);

    for (key, expected) in [
        (c.user.as_str(), "only admin keys"),
        ("wk-not-a-real-key", "not a valid Warden API key"),
        ("", "not a valid Warden API key"),
    ] {
        let r = c
            .send(form("/console/login", &[("key", key)], None, Some(ORIGIN)))
            .await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        assert!(r.headers().get(header::SET_COOKIE).is_none());
        let page = body(r).await;
        assert!(page.contains(expected), "{page}");
    }
    // Login CSRF: another site's form cannot log this browser in.
    let r = c
        .send(form(
            "/console/login",
            &[("key", &c.admin)],
            None,
            Some("https://evil.test"),
        ))
        .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn pages_need_a_live_session_and_the_cookie_is_no_api_credential() {
    let c = console().await;
    let r = c.send(get("/console/overview", None)).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()[header::LOCATION], "/console/login");
    let cookie = c.login(&c.admin).await;
    for page in [
        "/console/overview",
        "/console/approvals",
        "/console/runs",
        "/console/audit",
        "/console/keys",
    ] {
        let r = c.send(get(page, Some(&cookie))).await;
        assert_eq!(r.status(), StatusCode::OK, "{page}");
        let csp = r.headers()[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(
            csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"),
            "{csp}"
        );
        assert_eq!(r.headers()[header::X_FRAME_OPTIONS], "DENY");
        assert_eq!(r.headers()[header::CACHE_CONTROL], "no-store");
        let html = body(r).await;
        assert!(
            !html.contains("<script>") && !inline_handler(&html),
            "no inline script on {page}"
        );
    }
    // The console's cookie opens nothing under /api or /v1.
    let r = c
        .send(
            Request::get("/api/keys")
                .header(
                    header::COOKIE,
                    format!("{}={cookie}", super::session::COOKIE),
                )
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    // Revoking the key ends its sessions at once.
    assert!(keys::revoke(&c.db, "ops-admin").await.unwrap());
    let r = c.send(get("/console/overview", Some(&cookie))).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert!(
        r.headers()[header::SET_COOKIE]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
    assert!(
        console_session::Entity::find()
            .all(&c.db)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn an_expired_session_ends() {
    let c = console().await;
    let cookie = c.login(&c.admin).await;
    let row = console_session::Entity::find()
        .one(&c.db)
        .await
        .unwrap()
        .unwrap();
    let mut row: console_session::ActiveModel = row.into();
    row.expires_at = Set(chrono::Utc::now() - chrono::Duration::seconds(1));
    row.update(&c.db).await.unwrap();
    let r = c.send(get("/console/overview", Some(&cookie))).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn a_state_change_needs_the_session_csrf_token_and_this_origin_and_is_audited() {
    let c = console().await;
    let cookie = c.login(&c.admin).await;
    let csrf = c.csrf(&cookie).await;
    let create = |token: &str, origin: Option<&str>| {
        form(
            "/console/keys",
            &[("csrf", token), ("name", "ci-bot"), ("role", "user")],
            Some(&cookie),
            origin,
        )
    };
    for (req, why) in [
        (create("", Some(ORIGIN)), "no token"),
        (create("not-the-token", Some(ORIGIN)), "a wrong token"),
        (create(&csrf, Some("https://evil.test")), "another site"),
        (create(&csrf, None), "no Origin and no Sec-Fetch-Site"),
    ] {
        let r = c.send(req).await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{why}");
    }
    assert!(
        keys::list(&c.db)
            .await
            .unwrap()
            .iter()
            .all(|k| k.name != "ci-bot")
    );

    let r = c.send(create(&csrf, Some(ORIGIN))).await;
    assert_eq!(r.status(), StatusCode::OK);
    let page = body(r).await;
    let shown = page
        .split("<pre class=\"secret\">")
        .nth(1)
        .unwrap()
        .split('<')
        .next()
        .unwrap()
        .to_owned();
    assert!(
        keys::authenticate(&c.db, &shown).await.unwrap().is_some(),
        "the key shown works"
    );
    // Shown once: the next page has no key on it.
    assert!(
        !body(c.send(get("/console/keys", Some(&cookie))).await)
            .await
            .contains(&shown)
    );
    let records = audit_log::Entity::find().all(&c.db).await.unwrap();
    let record = records
        .iter()
        .find(|r| r.stage == "console" && r.matches.contains("key.create"))
        .expect("the action is audited");
    assert_eq!(record.subject.as_deref(), Some("ops-admin"));
    assert!(
        !record.matches.contains(&shown),
        "the key itself is never audited"
    );
    assert!(
        records
            .iter()
            .any(|r| r.stage == "console" && r.matches.contains("\"login\""))
    );

    // A name that is not a key name is refused with the form kept.
    let r = c
        .send(form(
            "/console/keys",
            &[("csrf", &csrf), ("name", "bad name!"), ("role", "user")],
            Some(&cookie),
            Some(ORIGIN),
        ))
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn what_the_database_holds_is_shown_escaped() {
    let c = console().await;
    let cookie = c.login(&c.admin).await;
    let now = chrono::Utc::now();
    agent_run::ActiveModel {
        id: Set("run-xss".into()),
        agent: Set("<img src=x onerror=alert(1)>".into()),
        status: Set("completed".into()),
        subject: Set(Some("\"><script>alert(2)</script>".into())),
        channel: Set(None),
        input: Set("<script>alert(3)</script>".into()),
        answer: Set(Some("</pre><svg onload=alert(4)>".into())),
        error: Set(None),
        state: Set(None),
        steps: Set(0),
        prompt_tokens: Set(1),
        completion_tokens: Set(1),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(&c.db)
    .await
    .unwrap();
    for page in ["/console/runs", "/console/runs/run-xss"] {
        let html = body(c.send(get(page, Some(&cookie))).await).await;
        for raw in ["<img src=x", "<script>alert", "<svg onload"] {
            assert!(!html.contains(raw), "{raw} on {page}");
        }
        // askama's escaping: `<` is `&#60;`, `>` is `&#62;`.
        assert!(
            html.contains("&#60;img src=x onerror=alert(1)&#62;"),
            "{page}: {html}"
        );
    }
}

#[tokio::test]
async fn bad_filters_are_refused_with_the_form_kept() {
    let c = console().await;
    let cookie = c.login(&c.admin).await;
    let r = c
        .send(get(
            "/console/audit?since=last-tuesday&decision=allow",
            Some(&cookie),
        ))
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let html = body(r).await;
    assert!(
        html.contains("value=\"last-tuesday\"") && html.contains("value=\"allow\""),
        "{html}"
    );
    assert!(html.contains("role=\"alert\""), "{html}");
    let r = c
        .send(get("/console/runs?status=exploded", Some(&cookie)))
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(body(r).await.contains("value=\"exploded\""));
    let r = c
        .send(get("/console/runs?before=garbage", Some(&cookie)))
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn the_audit_export_streams_the_filtered_records_as_jsonl() {
    let c = console().await;
    let cookie = c.login(&c.admin).await;
    // A second login: two console records (plus the export's own, after).
    c.login(&c.admin).await;
    let r = c
        .send(get("/console/audit/export?channel=console", Some(&cookie)))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()[header::CONTENT_TYPE], "application/x-ndjson");
    let text = body(r).await;
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(lines.len() >= 2, "{text}");
    assert!(
        lines
            .iter()
            .all(|l| l["stage"] == "console" && l["channel"] == "console")
    );
    let seqs: Vec<i64> = lines.iter().map(|l| l["seq"].as_i64().unwrap()).collect();
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "oldest first: {seqs:?}"
    );
    let r = c
        .send(get("/console/audit/export?since=yesterday", Some(&cookie)))
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_run_is_rated_from_its_page_and_usage_counts_runs_per_agent() {
    let c = console().await;
    let cookie = c.login(&c.admin).await;
    let csrf = c.csrf(&cookie).await;
    let now = chrono::Utc::now();
    agent_run::ActiveModel {
        id: Set("run-rated".into()),
        agent: Set("notes".into()),
        status: Set("completed".into()),
        subject: Set(Some("ops-admin".into())),
        channel: Set(None),
        input: Set("hi".into()),
        answer: Set(Some("hello".into())),
        error: Set(None),
        state: Set(None),
        steps: Set(1),
        prompt_tokens: Set(30),
        completion_tokens: Set(12),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(&c.db)
    .await
    .unwrap();
    let page = body(c.send(get("/console/runs/run-rated", Some(&cookie))).await).await;
    assert!(page.contains("Good answer"), "{page}");
    let rate = |fields: &[(&str, &str)]| {
        form(
            "/console/runs/run-rated/feedback",
            fields,
            Some(&cookie),
            Some(ORIGIN),
        )
    };
    for (fields, expected) in [
        (vec![("rating", "1")], StatusCode::FORBIDDEN),
        (
            vec![("csrf", csrf.as_str()), ("rating", "5")],
            StatusCode::BAD_REQUEST,
        ),
        (
            vec![
                ("csrf", csrf.as_str()),
                ("rating", "1"),
                ("correction", "x"),
            ],
            StatusCode::BAD_REQUEST,
        ),
        (
            vec![
                ("csrf", csrf.as_str()),
                ("rating", "-1"),
                ("correction", "Say hi back."),
            ],
            StatusCode::SEE_OTHER,
        ),
    ] {
        assert_eq!(c.send(rate(&fields)).await.status(), expected, "{fields:?}");
    }
    let stored = warden_db::entities::run_feedback::Entity::find()
        .all(&c.db)
        .await
        .unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(
        (stored[0].rating, stored[0].subject.as_str()),
        (-1, "ops-admin")
    );

    let usage = body(c.send(get("/console/usage?days=7", Some(&cookie))).await).await;
    assert!(
        usage.contains("<td>notes</td><td>1</td><td>42</td>"),
        "{usage}"
    );
}

/// One multipart part: field name, file name, bytes.
type Part<'a> = (&'a str, Option<&'a str>, &'a [u8]);

/// A multipart body with the given parts.
fn multipart(path: &str, parts: &[Part<'_>], cookie: &str) -> Request<Body> {
    const BOUNDARY: &str = "warden-test-boundary";
    let mut body = Vec::new();
    for (name, file, data) in parts {
        body.extend_from_slice(format!("--{BOUNDARY}\r\n").as_bytes());
        match file {
            Some(f) => body.extend_from_slice(
                format!(
                    "Content-Disposition: form-data; name=\"{name}\"; filename=\"{f}\"\r\n\
                     Content-Type: application/octet-stream\r\n\r\n"
                )
                .as_bytes(),
            ),
            None => body.extend_from_slice(
                format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes(),
            ),
        }
        body.extend_from_slice(data);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    Request::post(path)
        .header(header::HOST, HOST)
        .header(header::ORIGIN, ORIGIN)
        .header(
            header::CONTENT_TYPE,
            format!("multipart/form-data; boundary={BOUNDARY}"),
        )
        .header(
            header::COOKIE,
            format!("{}={cookie}", super::session::COOKIE),
        )
        .body(Body::from(body))
        .unwrap()
}

#[tokio::test]
async fn bad_plugin_uploads_are_refused_precisely_and_install_nothing() {
    let c = console().await;
    let cookie = c.login(&c.admin).await;
    let csrf = c.csrf(&cookie).await;
    let manifest: &[u8] = b"id = \"acme.x\"\nname = \"X\"\nversion = \"0.1.0\"\napi_version = \"0.1.0\"\ncomponent = \"x.wasm\"\n";
    let big = vec![b'#'; 70 * 1024];
    let cases: Vec<(&str, Vec<Part<'_>>, StatusCode, &str)> = vec![
        (
            "no csrf token",
            vec![
                ("manifest", Some("plugin.toml"), manifest),
                ("component", Some("x.wasm"), b"\0asm"),
            ],
            StatusCode::FORBIDDEN,
            "CSRF",
        ),
        (
            "no component",
            vec![
                ("csrf", None, csrf.as_bytes()),
                ("manifest", Some("plugin.toml"), manifest),
            ],
            StatusCode::BAD_REQUEST,
            "Choose both files",
        ),
        (
            "not a component",
            vec![
                ("csrf", None, csrf.as_bytes()),
                ("manifest", Some("plugin.toml"), manifest),
                ("component", Some("x.wasm"), b"not wasm at all"),
            ],
            StatusCode::UNPROCESSABLE_ENTITY,
            "Not installed: component rejected",
        ),
        (
            "a manifest that is not one",
            vec![
                ("csrf", None, csrf.as_bytes()),
                ("manifest", Some("plugin.toml"), b"id = = 1"),
                ("component", Some("x.wasm"), b"\0asm"),
            ],
            StatusCode::BAD_REQUEST,
            "Not installed: ",
        ),
        (
            "an unexpected field",
            vec![("csrf", None, csrf.as_bytes()), ("extra", None, b"1")],
            StatusCode::BAD_REQUEST,
            "unexpected field &#34;extra&#34;",
        ),
        (
            "an oversized manifest",
            vec![
                ("csrf", None, csrf.as_bytes()),
                ("manifest", Some("plugin.toml"), &big),
            ],
            StatusCode::PAYLOAD_TOO_LARGE,
            "larger than the limit (65536 bytes for manifest)",
        ),
    ];
    for (what, parts, status, says) in cases {
        let r = c.send(multipart("/console/plugins", &parts, &cookie)).await;
        assert_eq!(r.status(), status, "{what}");
        let page = body(r).await;
        assert!(page.contains(says), "{what}: {page}");
    }
    let r = c
        .send(form(
            "/console/plugins",
            &[("csrf", &csrf)],
            Some(&cookie),
            Some(ORIGIN),
        ))
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(body(r).await.contains("multipart/form-data"));
    let page = body(c.send(get("/console/plugins", Some(&cookie))).await).await;
    assert!(page.contains("No plugins are installed."), "{page}");
}

#[tokio::test]
async fn a_tool_call_from_the_page_refuses_bad_json_non_objects_and_unknown_plugins() {
    let c = console().await;
    let cookie = c.login(&c.admin).await;
    let csrf = c.csrf(&cookie).await;
    let cases = [
        (
            "{\"text\": <b>",
            StatusCode::BAD_REQUEST,
            "The arguments are not valid JSON: ",
        ),
        (
            "[1, 2]",
            StatusCode::BAD_REQUEST,
            "arguments must be a JSON object",
        ),
        // The unknown id carries markup and comes back in the message.
        (
            "{}",
            StatusCode::NOT_FOUND,
            "no plugin &#34;&#60;b&#62;acme&#34;",
        ),
    ];
    for (arguments, status, says) in cases {
        let r = c
            .send(form(
                "/console/plugins/%3Cb%3Eacme/tools/echo",
                &[("csrf", &csrf), ("arguments", arguments)],
                Some(&cookie),
                Some(ORIGIN),
            ))
            .await;
        assert_eq!(r.status(), status, "{arguments}");
        let page = body(r).await;
        assert!(page.contains(says), "{arguments}: {page}");
        assert!(!page.contains("<b>"), "nothing is echoed unescaped");
    }
    let r = c
        .send(form(
            "/console/plugins/%3Cb%3Eacme/tools/echo",
            &[("csrf", "wrong"), ("arguments", "{}")],
            Some(&cookie),
            Some(ORIGIN),
        ))
        .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn the_overview_shows_each_models_load_and_serves_it_live() {
    let c = console().await;
    let cookie = c.login(&c.admin).await;
    let page = body(c.send(get("/console/overview", Some(&cookie))).await).await;
    assert!(
        page.contains("data-live=\"/console/overview/live\""),
        "{page}"
    );
    assert!(page.contains("<tr data-model=\"scripted\">"), "{page}");
    let r = c.send(get("/console/overview/live", Some(&cookie))).await;
    assert_eq!(r.status(), StatusCode::OK);
    let live: serde_json::Value = serde_json::from_str(&body(r).await).unwrap();
    assert_eq!(live["models"][0]["model"], "scripted", "{live}");
    assert_eq!(live["models"][0]["in_flight"], 0, "{live}");
    let r = c.send(get("/console/overview/live", None)).await;
    assert_eq!(
        r.status(),
        StatusCode::SEE_OTHER,
        "the live numbers need a session"
    );
}
