//! The admin console in a real browser: a real `warden serve` (the
//! scripted upstream as the model, the real chatbot plugin, a policy that
//! pauses ticket creation), and Debian's chromium driven by playwright-core
//! (`tests/browser/console.mjs`, installed by `make test`). The browser
//! logs in, approves a paused run and sees it complete, verifies the audit
//! chain, evaluates a policy and sees the span highlighted, disables and
//! enables a plugin, installs one from an upload and reads the
//! `warden.toml` lines that grant what it asks for, calls its tool with
//! JSON arguments, accepts a changed component and removes a plugin,
//! creates an agent and tries it on the real model (following the run
//! live), and checks that hostile data (tool arguments, run input, policy
//! descriptions and messages, audit fields, tool output) renders inert,
//! that the console cannot be framed or posted to from another site, and
//! that revoking the key ends the session. Screenshots land in
//! `target/console-shots/`.

use std::path::PathBuf;
use std::process::Command;

use reqwest::Method;
use serde_json::{Value, json};
use warden_tests::upstream::Upstream;
use warden_tests::{Options, Server, api, guests_dist, plugins_dist};

use super::agents::{TICKET_APPROVAL, plugin_config};
use super::governance_chat::policy_dir_with;

const REAL_MODEL: &str = "smollm2-135m-instruct";

/// A policy whose description and message carry markup, and a rule the
/// browser's playground triggers.
const HOSTILE_POLICY: &str = r#"
policies:
  - id: hostile-text
    version: 1
    description: "<img src=x onerror=\"window.__xss=5\">described"
    rules:
      - id: marker
        stages: [input]
        match:
          regex: { pattern: 'xss-marker' }
        action: block
        message: "<img src=x onerror=\"window.__xss=4\">Blocked <script>window.__xss=4</script>"
tests:
  - name: the marker is blocked
    stage: input
    input: "an xss-marker here"
    expect: { decision: block }
"#;

fn browser_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/browser"))
}

#[tokio::test(flavor = "multi_thread")]
async fn an_admin_approves_a_paused_run_and_verifies_the_audit_chain_in_a_real_browser() {
    assert!(
        browser_dir().join("node_modules/playwright-core").exists(),
        "playwright-core is not installed in tests/browser (make test installs it)"
    );
    let policies = policy_dir_with(&[
        ("tickets.yaml", TICKET_APPROVAL),
        ("hostile.yaml", HOSTILE_POLICY),
    ]);
    let up = Upstream::start().await;
    // The configured plugin directory: the document and chatbot plugins,
    // and the hostile test guest, recorded at a first start; the guest's
    // component then changes on disk, so the console's server finds it
    // waiting for an admin's accept. The coding plugin is not there: the
    // browser installs it from an upload.
    let extra = tempfile::tempdir().unwrap();
    let copy_plugin = |from: PathBuf, name: &str| {
        let to = extra.path().join(name);
        std::fs::create_dir_all(&to).unwrap();
        for f in std::fs::read_dir(&from).unwrap() {
            let f = f.unwrap();
            std::fs::copy(f.path(), to.join(f.file_name())).unwrap();
        }
        to
    };
    copy_plugin(plugins_dist().join("document"), "document");
    copy_plugin(plugins_dist().join("chatbot"), "chatbot");
    let changed = copy_plugin(guests_dist().join("hostile"), "hostile");
    let dist = plugins_dist().display().to_string();
    let plugins = plugin_config().replace(
        &format!("directories = [\"{dist}\"]"),
        &format!("directories = [\"{}\"]", extra.path().display()),
    );
    assert!(
        plugins.contains(&extra.path().display().to_string()),
        "{plugins}"
    );
    let data = tempfile::tempdir().unwrap();
    let options = Options {
        // The scripted upstream plays the model for the paused run; the
        // embedded model answers the agent the browser creates.
        config: format!(
            "{}[[models]]\nbackend = \"embedded\"\nid = \"{REAL_MODEL}\"\n{plugins}",
            up.model_config(),
        ),
        env: vec![(
            "WARDEN_POLICIES_DIR".into(),
            policies.path().display().to_string(),
        )],
        data_dir: Some(data.path().to_owned()),
        ..Options::default()
    };
    let first = Server::start_with(options.clone()).unwrap();
    let root = first.key().to_owned();
    let stopped = first.terminate().unwrap();
    assert!(
        stopped.success(),
        "the first start did not stop cleanly ({stopped}):\n{}",
        std::fs::read_to_string(data.path().join("stderr.log")).unwrap_or_default()
    );
    let mut bytes = std::fs::read(changed.join("hostile.wasm")).unwrap();
    // A custom section appended keeps the component valid and changes its digest.
    bytes.extend_from_slice(&[0x00, 0x05, 0x04, b'n', b'o', b't', b'e']);
    std::fs::write(changed.join("hostile.wasm"), bytes).unwrap();
    let mut server = Server::start_with(options).unwrap();
    server.admin_key = Some(root.clone());
    let agent = json!({
        "name": "ticketer", "model": "scripted", "system_prompt": "You open tickets.",
        "tools": ["warden.chatbot/create_ticket"],
    });
    let (status, body) = api(&server, Method::POST, "/agents", &root, Some(agent)).await;
    assert_eq!(status, 201, "{body}");
    let (status, created) = api(
        &server,
        Method::POST,
        "/keys",
        &root,
        Some(json!({"name": "console-admin", "role": "admin"})),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let console_key = created["key"].as_str().unwrap().to_owned();

    // A run that pauses on create_ticket, its arguments carrying markup.
    let step = json!({"tool": "create_ticket", "arguments": {
        "subject": "<img src=x onerror=\"window.__xss=1;alert(1)\">",
        "description": "<script>window.__xss=2</script>",
    }})
    .to_string();
    let (status, paused) = api(
        &server,
        Method::POST,
        "/agents/ticketer/runs",
        &root,
        Some(json!({"message": step})),
    )
    .await;
    assert_eq!(status, 200, "{paused}");
    assert_eq!(paused["status"], "awaiting_approval", "{paused}");
    let run_id = paused["id"].as_str().unwrap().to_owned();
    // A run whose input is markup (the echo is no step: it fails).
    let (status, _) = api(
        &server,
        Method::POST,
        "/agents/ticketer/runs",
        &root,
        Some(json!({"message": "<img src=x onerror=\"window.__xss=3\">"})),
    )
    .await;
    assert_eq!(status, 200);

    let shots = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../target/console-shots"
    ));
    std::fs::create_dir_all(&shots).unwrap();
    let out = Command::new("node")
        .arg("console.mjs")
        .current_dir(browser_dir())
        .env("WARDEN_BASE", &server.base)
        .env("CONSOLE_KEY", &console_key)
        .env("ROOT_KEY", &root)
        .env("PAUSED_RUN", &run_id)
        .env("REAL_MODEL", REAL_MODEL)
        .env("SHOTS", &shots)
        .env("UPLOAD_DIR", plugins_dist().join("coding"))
        .output()
        .expect("node (make test installs what the browser test needs)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the browser flows failed:\n{stdout}\n{stderr}"
    );
    let checks: Vec<Value> = stdout
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    assert!(checks.len() >= 34, "every flow reported: {stdout}");
    assert!(checks.iter().all(|c| c["ok"] == true), "{stdout}");
    for shot in [
        "overview",
        "approvals",
        "run",
        "runs",
        "audit",
        "policies",
        "plugins",
        "plugin-install",
        "plugin-call",
        "plugin-accept",
        "agent",
        "tried",
        "keys",
        "usage",
    ] {
        assert!(shots.join(format!("{shot}.png")).exists(), "{shot}.png");
    }

    // What the browser did, as the API sees it.
    let (_, run) = api(
        &server,
        Method::GET,
        &format!("/runs/{run_id}"),
        &root,
        None,
    )
    .await;
    assert_eq!(run["status"], "completed", "{run}");
    let (_, keys) = api(&server, Method::GET, "/keys", &root, None).await;
    let keys = keys.to_string();
    assert!(
        !keys.contains("\"evil\""),
        "the cross-site post made no key: {keys}"
    );
    let (_, audit) = api(&server, Method::GET, "/audit?channel=approval", &root, None).await;
    assert!(audit.to_string().contains("console-admin"), "{audit}");
    let (_, audit) = api(&server, Method::GET, "/audit?channel=console", &root, None).await;
    let audit = audit.to_string();
    for action in [
        "login",
        "plugin.disable",
        "plugin.enable",
        "plugin.install",
        "plugin.call",
        "plugin.accept",
        "plugin.remove",
        "agent.save",
    ] {
        assert!(audit.contains(action), "{action}: {audit}");
    }
    let (_, plugin) = api(
        &server,
        Method::GET,
        "/plugins/warden.document",
        &root,
        None,
    )
    .await;
    assert_eq!(plugin["status"], "active", "{plugin}");
    let (_, changed) = api(&server, Method::GET, "/plugins/test.hostile", &root, None).await;
    assert_eq!(
        changed["status"], "active",
        "accepted in the browser: {changed}"
    );
    let (status, removed) = api(&server, Method::GET, "/plugins/warden.coding", &root, None).await;
    assert_eq!(status, 404, "removed in the browser: {removed}");
}
