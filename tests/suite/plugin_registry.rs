//! Installing, enabling, disabling and removing plugins through the API:
//! every change is recorded, bad uploads are refused without a trace, and a
//! component swapped on disk is refused at the next load.

use base64::Engine as _;
use reqwest::Method;
use serde_json::{Value, json};
use warden_tests::{Options, PgDatabase, Server, api, call_tool, plugins_dist, warden_cli};

fn upload(dir: &str, component: &str) -> Value {
    let root = plugins_dist().join(dir);
    let manifest = std::fs::read_to_string(root.join("plugin.toml")).unwrap();
    let bytes = std::fs::read(root.join(component)).unwrap();
    json!({
        "manifest": manifest,
        "component_base64": base64::engine::general_purpose::STANDARD.encode(bytes),
    })
}

async fn lifecycle(database_url: Option<String>) {
    let data = tempfile::tempdir().unwrap();
    let opts = Options {
        config: "[plugins.grants.\"warden.coding\"]\nllm = true\n\
                 [plugins.grants.\"warden.document\"]\nkv_buckets = [\"documents\"]\n"
            .into(),
        database_url: database_url.clone(),
        data_dir: Some(data.path().to_owned()),
        ..Options::default()
    };
    let server = Server::start_with(opts.clone()).unwrap();
    let key = server.key().to_owned();
    let (s, list) = api(&server, Method::GET, "/plugins", &key, None).await;
    assert_eq!((s, list["data"].clone()), (200, json!([])));

    // Bad uploads: each refused with its reason, none leaves anything behind.
    let mut bad_manifest = upload("coding", "coding.wasm");
    bad_manifest["manifest"] = json!(format!(
        "{}\ncolour = \"red\"\n",
        bad_manifest["manifest"].as_str().unwrap()
    ));
    let mut not_wasm = upload("coding", "coding.wasm");
    not_wasm["component_base64"] =
        json!(base64::engine::general_purpose::STANDARD.encode(b"\0asm but not really"));
    let mut bad_b64 = upload("coding", "coding.wasm");
    bad_b64["component_base64"] = json!("!!!");
    let mut wrong_tools = upload("coding", "coding.wasm");
    wrong_tools["manifest"] = json!(wrong_tools["manifest"].as_str().unwrap().replace(
        "name = \"diff_stats\"\neffect = \"pure\"",
        "name = \"diff_stats\"\neffect = \"writes\""
    ));
    for (body, status, fragment) in [
        (bad_manifest, 400, "unknown field `colour`"),
        (not_wasm, 422, "component rejected"),
        (bad_b64, 400, "not valid base64"),
        (
            wrong_tools,
            422,
            "tool diff_stats: plugin.toml declares effect writes but the component says pure",
        ),
        (json!({"manifest": "x"}), 400, "component_base64"),
    ] {
        let (s, b) = api(&server, Method::POST, "/plugins", &key, Some(body)).await;
        assert_eq!(s, status, "{b}");
        assert!(
            b["error"]["message"].as_str().unwrap().contains(fragment),
            "{b}"
        );
    }
    let (_, list) = api(&server, Method::GET, "/plugins", &key, None).await;
    assert_eq!(list["data"], json!([]));
    assert!(
        std::fs::read_dir(data.path().join("plugins"))
            .unwrap()
            .next()
            .is_none(),
        "files left behind"
    );

    // A user key may list but not install.
    let user_key = warden_cli(
        data.path(),
        database_url.as_deref(),
        &["keys", "create", "--name", "u", "--role", "user"],
    )
    .unwrap();
    // A small body: the 403 comes before the body is read, and a 5 MB
    // upload still being written when it does fails with a broken pipe on
    // the client's side instead (seen as a flaky failure here).
    let (s, _) = api(
        &server,
        Method::POST,
        "/plugins",
        user_key.trim(),
        Some(json!({"manifest": "id = \"x\"", "component_base64": ""})),
    )
    .await;
    assert_eq!(s, 403);
    let mut traversal = upload("coding", "coding.wasm");
    traversal["manifest"] = json!(traversal["manifest"].as_str().unwrap().replace(
        "component = \"coding.wasm\"",
        "component = \"../../escape.wasm\""
    ));
    let (s, b) = api(&server, Method::POST, "/plugins", &key, Some(traversal)).await;
    assert_eq!(s, 400, "{b}");
    assert!(
        b["error"]["message"]
            .as_str()
            .unwrap()
            .contains("must be a relative path inside the plugin directory"),
        "{b}"
    );

    let (s, installed) = api(
        &server,
        Method::POST,
        "/plugins",
        &key,
        Some(upload("coding", "coding.wasm")),
    )
    .await;
    assert_eq!(s, 201, "{installed}");
    assert_eq!(installed["status"], "active");
    assert_eq!(installed["tools"].as_array().unwrap().len(), 6);
    let (s, _) = call_tool(
        &server,
        "warden.coding",
        "format_json",
        json!({"json": "[1]"}),
    )
    .await;
    assert_eq!(s, 200);

    // User keys see the plugin but cannot manage or call it.
    let user = user_key.trim();
    let (s, list) = api(&server, Method::GET, "/plugins", user, None).await;
    assert_eq!(s, 200);
    assert!(
        list["data"][0].get("grant").is_none(),
        "operator detail shown to a user: {list}"
    );
    for (method, path) in [
        (Method::GET, "/plugins/warden.coding"),
        (Method::POST, "/plugins/warden.coding/disable"),
        (Method::POST, "/plugins/warden.coding/enable"),
        (Method::DELETE, "/plugins/warden.coding"),
        (Method::POST, "/plugins/warden.coding/tools/format_json"),
    ] {
        let body = Some(json!({"arguments": {"json": "1"}}));
        let (s, b) = api(&server, method.clone(), path, user, body).await;
        assert_eq!(s, 403, "{method} {path}: {b}");
    }

    let (s, _) = api(
        &server,
        Method::POST,
        "/plugins/warden.coding/disable",
        &key,
        None,
    )
    .await;
    assert_eq!(s, 200);
    let (s, b) = call_tool(
        &server,
        "warden.coding",
        "format_json",
        json!({"json": "[1]"}),
    )
    .await;
    assert_eq!(
        (s, b["error"]["message"].as_str().unwrap()),
        (409, "plugin warden.coding is disabled")
    );
    let (s, _) = api(
        &server,
        Method::POST,
        "/plugins/warden.coding/enable",
        &key,
        None,
    )
    .await;
    assert_eq!(s, 200);
    let (s, _) = call_tool(
        &server,
        "warden.coding",
        "format_json",
        json!({"json": "[1]"}),
    )
    .await;
    assert_eq!(s, 200);

    let (_, one) = api(&server, Method::GET, "/plugins/warden.coding", &key, None).await;
    let actions: Vec<&str> = one["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["install", "disable", "enable"]);
    assert_eq!(one["events"][1]["actor"], "admin");

    // Swap the component on disk: the next start refuses to run it.
    assert!(server.terminate().unwrap().success());
    let managed = data.path().join("plugins/warden.coding/coding.wasm");
    std::fs::copy(plugins_dist().join("document/document.wasm"), &managed).unwrap();
    let mut server = Server::start_with(opts.clone()).unwrap();
    server.admin_key = Some(key.clone());
    let (_, one) = api(&server, Method::GET, "/plugins/warden.coding", &key, None).await;
    assert_eq!(one["status"], "failed", "{one}");
    assert!(
        one["error"]
            .as_str()
            .unwrap()
            .contains("component digest changed since install"),
        "{one}"
    );
    let (s, _) = call_tool(
        &server,
        "warden.coding",
        "format_json",
        json!({"json": "[1]"}),
    )
    .await;
    assert_eq!(s, 409);

    // Reinstalling is how an operator accepts a new component; removal is recorded too.
    let (s, b) = api(
        &server,
        Method::POST,
        "/plugins",
        &key,
        Some(upload("coding", "coding.wasm")),
    )
    .await;
    assert_eq!(s, 201, "{b}");
    let (s, _) = api(
        &server,
        Method::DELETE,
        "/plugins/warden.coding",
        &key,
        None,
    )
    .await;
    assert_eq!(s, 204);
    let (s, _) = api(&server, Method::GET, "/plugins/warden.coding", &key, None).await;
    assert_eq!(s, 404);
    assert!(!data.path().join("plugins/warden.coding").exists());
    let (s, _) = api(
        &server,
        Method::DELETE,
        "/plugins/warden.coding",
        &key,
        None,
    )
    .await;
    assert_eq!(s, 404);

    // kv through this database (quota accounting included).
    let (s, b) = api(
        &server,
        Method::POST,
        "/plugins",
        &key,
        Some(upload("document", "document.wasm")),
    )
    .await;
    assert_eq!(s, 201, "{b}");
    let (s, b) = call_tool(
        &server,
        "warden.document",
        "create_document",
        json!({"title": "Ünïcode", "content": "body"}),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    let (s, b) = call_tool(
        &server,
        "warden.document",
        "get_document",
        json!({"id": "doc-1"}),
    )
    .await;
    assert_eq!(
        (s, b["output"]["title"].as_str()),
        (200, Some("Ünïcode")),
        "{b}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn plugin_lifecycle_on_sqlite() {
    lifecycle(None).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn plugin_lifecycle_on_postgres() {
    let db = PgDatabase::create().await.unwrap();
    lifecycle(Some(db.url.clone())).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn directory_plugins_changed_on_disk_run_only_after_an_admin_accepts_them() {
    let data = tempfile::tempdir().unwrap();
    let dirs = tempfile::tempdir().unwrap();
    let plugin =
        warden_tests::copy_plugin(&plugins_dist().join("coding"), dirs.path(), |t| t).unwrap();
    let opts = Options {
        config: format!("[plugins]\ndirectories = [\"{}\"]\n", dirs.path().display()),
        data_dir: Some(data.path().to_owned()),
        ..Options::default()
    };
    let server = Server::start_with(opts.clone()).unwrap();
    let key = server.key().to_owned();
    let (s, _) = call_tool(
        &server,
        "warden.coding",
        "diff_stats",
        json!({"diff": "--- a/x\n+++ b/x\n@@ -1 +1 @@\n-a\n+b\n"}),
    )
    .await;
    assert_eq!(s, 200);
    assert!(server.terminate().unwrap().success());

    // Rebuild "in place": the directory now holds a different component.
    let mut bytes = std::fs::read(plugin.join("coding.wasm")).unwrap();
    // A custom section appended to a component keeps it valid but changes its digest.
    bytes.extend_from_slice(&[0x00, 0x05, 0x04, b'n', b'o', b't', b'e']);
    std::fs::write(plugin.join("coding.wasm"), bytes).unwrap();

    let mut server = Server::start_with(opts).unwrap();
    server.admin_key = Some(key.clone());
    let (_, one) = api(&server, Method::GET, "/plugins/warden.coding", &key, None).await;
    assert_eq!(one["status"], "failed", "{one}");
    assert!(
        one["error"]
            .as_str()
            .unwrap()
            .contains("POST /api/plugins/warden.coding/accept"),
        "{one}"
    );
    let (s, _) = call_tool(
        &server,
        "warden.coding",
        "format_json",
        json!({"json": "1"}),
    )
    .await;
    assert_eq!(s, 409);

    let (s, accepted) = api(
        &server,
        Method::POST,
        "/plugins/warden.coding/accept",
        &key,
        None,
    )
    .await;
    assert_eq!(s, 200, "{accepted}");
    assert_eq!(accepted["status"], "active");
    let (s, _) = call_tool(
        &server,
        "warden.coding",
        "format_json",
        json!({"json": "1"}),
    )
    .await;
    assert_eq!(s, 200);
    let (_, one) = api(&server, Method::GET, "/plugins/warden.coding", &key, None).await;
    let actions: Vec<&str> = one["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["install", "accept"]);
}
