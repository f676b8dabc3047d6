//! The author's loop on the command line: scaffold, build, check, call.

use std::path::Path;
use std::process::{Command, Output};

use warden_tests::{copy_plugin, guests_dist, plugins_dist, sdk_dir, warden_bin};

fn warden(args: &[&str], config: &Path, data: &Path) -> Output {
    Command::new(warden_bin())
        .arg("--config")
        .arg(config)
        .args(args)
        .env("WARDEN_DATA_DIR", data)
        .env_remove("DATABASE_URL")
        .env_remove("WARDEN_DATABASE_URL")
        .output()
        .expect("run warden")
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn scaffolded_plugin_builds_checks_and_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("warden.toml");
    std::fs::write(
        &config,
        "[plugins.grants.\"local.hello-tool\"]\nkv_buckets = [\"greetings\"]\n",
    )
    .unwrap();
    let sdk = sdk_dir();
    let out = warden(
        &[
            "plugin",
            "new",
            "hello-tool",
            "--dir",
            tmp.path().to_str().unwrap(),
            "--sdk",
            sdk.to_str().unwrap(),
        ],
        &config,
        tmp.path(),
    );
    assert!(out.status.success(), "{:?}", text(&out));
    let crate_dir = tmp.path().join("hello-tool");

    // Build it exactly as the generated README steps say (sharing the
    // suite's target dir so the SDK's dependencies are already compiled).
    let target_dir = std::env::var("CARGO_TARGET_DIR")
        .unwrap_or_else(|_| crate_dir.join("target").display().to_string());
    let build = Command::new("cargo")
        .args(["build", "--target", "wasm32-wasip2", "--release", "--quiet"])
        .current_dir(&crate_dir)
        .env("CARGO_TARGET_DIR", &target_dir)
        .output()
        .unwrap();
    assert!(
        build.status.success(),
        "{}",
        String::from_utf8_lossy(&build.stderr)
    );
    let wasm = Path::new(&target_dir).join("wasm32-wasip2/release/hello_tool.wasm");
    let wasm = wasm.to_str().unwrap();

    let out = warden(
        &[
            "plugin",
            "check",
            crate_dir.to_str().unwrap(),
            "--component",
            wasm,
        ],
        &config,
        tmp.path(),
    );
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("ok: local.hello-tool 0.1.0"), "{stdout}");
    assert!(
        stdout.contains("greet") && stdout.contains("count_greeting"),
        "{stdout}"
    );
    assert!(stdout.contains("kv bucket greetings: granted"), "{stdout}");

    let out = warden(
        &[
            "plugin",
            "call",
            crate_dir.to_str().unwrap(),
            "greet",
            r#"{"name":"Ada"}"#,
            "--component",
            wasm,
        ],
        &config,
        tmp.path(),
    );
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("Hello, Ada!"), "{stdout}");
    assert!(stderr.contains("peak memory"), "{stderr}");

    let out = warden(
        &[
            "plugin",
            "call",
            crate_dir.to_str().unwrap(),
            "count_greeting",
            r#"{"name":"Ada"}"#,
            "--component",
            wasm,
        ],
        &config,
        tmp.path(),
    );
    assert!(out.status.success(), "{:?}", text(&out));
    assert!(text(&out).0.contains("\"greetings\": 1"));
}

#[test]
fn check_reports_manifest_errors_with_file_and_line() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = copy_plugin(&plugins_dist().join("coding"), tmp.path(), |t| {
        t.replace("[limits]", "[limits]\nmemory = 5")
    })
    .unwrap();
    let out = warden(
        &["plugin", "check", dir.to_str().unwrap()],
        Path::new("/dev/null"),
        tmp.path(),
    );
    let (_, stderr) = text(&out);
    assert!(!out.status.success());
    assert!(
        stderr.contains("plugin.toml")
            && stderr.contains("line")
            && stderr.contains("unknown field `memory`"),
        "{stderr}"
    );
}

#[test]
fn call_without_a_grant_names_what_to_grant() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = guests_dist().join("hostile");
    let out = warden(
        &[
            "plugin",
            "call",
            dir.to_str().unwrap(),
            "kv_write",
            r#"{"bucket":"scratch","key":"k","value":"v"}"#,
        ],
        Path::new("/dev/null"),
        tmp.path(),
    );
    let (_, stderr) = text(&out);
    assert!(!out.status.success());
    assert!(
        stderr.contains(r#"[plugins.grants."test.hostile"] kv_buckets = ["scratch"]"#),
        "{stderr}"
    );

    // --grant-all grants what the manifest requests, nothing more.
    let out = warden(
        &[
            "plugin",
            "call",
            dir.to_str().unwrap(),
            "kv_write",
            r#"{"bucket":"scratch","key":"k","value":"v"}"#,
            "--grant-all",
        ],
        Path::new("/dev/null"),
        tmp.path(),
    );
    assert!(out.status.success(), "{:?}", text(&out));
    let out = warden(
        &[
            "plugin",
            "call",
            dir.to_str().unwrap(),
            "kv_write",
            r#"{"bucket":"elsewhere","key":"k","value":"v"}"#,
            "--grant-all",
        ],
        Path::new("/dev/null"),
        tmp.path(),
    );
    assert!(!out.status.success());
}

#[test]
fn loopback_is_refused_even_when_the_host_is_granted() {
    let tmp = tempfile::tempdir().unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let dir = copy_plugin(&guests_dist().join("hostile"), tmp.path(), |t| {
        t.replace(
            r#"http_hosts = ["https://api.example.com"]"#,
            &format!(r#"http_hosts = ["http://127.0.0.1:{port}"]"#),
        )
    })
    .unwrap();
    let config = tmp.path().join("warden.toml");
    std::fs::write(
        &config,
        format!("[plugins.grants.\"test.hostile\"]\nhttp_hosts = [\"http://127.0.0.1:{port}\"]\n"),
    )
    .unwrap();
    let out = warden(
        &[
            "plugin",
            "call",
            dir.to_str().unwrap(),
            "http_get",
            &format!(r#"{{"url":"http://127.0.0.1:{port}/"}}"#),
        ],
        &config,
        tmp.path(),
    );
    let (_, stderr) = text(&out);
    assert!(!out.status.success());
    assert!(
        stderr.contains("denied") && stderr.contains("private address"),
        "{stderr}"
    );
}

#[test]
fn a_fuel_budget_ends_runaway_code_deterministically() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = copy_plugin(&guests_dist().join("hostile"), tmp.path(), |t| {
        t.replace("[limits]", "[limits]\nfuel = 20000000")
    })
    .unwrap();
    let out = warden(
        &["plugin", "call", dir.to_str().unwrap(), "spin"],
        Path::new("/dev/null"),
        tmp.path(),
    );
    let (_, stderr) = text(&out);
    assert!(!out.status.success());
    assert!(
        stderr.contains("fuel budget of 20000000 exhausted (fuel_exhausted)"),
        "{stderr}"
    );
    let out = warden(
        &[
            "plugin",
            "call",
            dir.to_str().unwrap(),
            "echo",
            r#"{"text":"x"}"#,
        ],
        Path::new("/dev/null"),
        tmp.path(),
    );
    let (_, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("fuel: "), "{stderr}");
}

#[test]
fn install_records_the_plugin_and_list_shows_it() {
    let tmp = tempfile::tempdir().unwrap();
    let none = Path::new("/dev/null");
    let dir = plugins_dist().join("document");
    let out = warden(
        &["plugin", "install", dir.to_str().unwrap()],
        none,
        tmp.path(),
    );
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout.contains("installed warden.document 0.1.0 (10 tools)"),
        "{stdout}"
    );
    assert!(
        tmp.path()
            .join("plugins/warden.document/document.wasm")
            .is_file()
    );

    // Installing the same files again changes nothing.
    let again = warden(
        &["plugin", "install", dir.to_str().unwrap()],
        none,
        tmp.path(),
    );
    assert!(again.status.success(), "{:?}", text(&again));

    let out = warden(&["plugin", "list"], none, tmp.path());
    let (stdout, _) = text(&out);
    let row = stdout
        .lines()
        .find(|l| l.starts_with("warden.document"))
        .unwrap_or_default();
    assert!(
        row.contains("0.1.0") && row.contains("enabled") && row.contains("managed"),
        "{stdout}"
    );
}

#[test]
fn kv_writes_beyond_the_plugin_quota_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("warden.toml");
    std::fs::write(&config, "[plugins.limits]\nkv_max_total_bytes = 64\n").unwrap();
    let dir = guests_dist().join("hostile");
    let write = |value: &str| {
        let args = format!(r#"{{"bucket":"scratch","key":"k","value":"{value}"}}"#);
        warden(
            &[
                "plugin",
                "call",
                dir.to_str().unwrap(),
                "kv_write",
                &args,
                "--grant-all",
            ],
            &config,
            tmp.path(),
        )
    };
    let small = write(&"x".repeat(20));
    assert!(small.status.success(), "{:?}", text(&small));
    let big = write(&"x".repeat(100));
    let (_, stderr) = text(&big);
    assert!(!big.status.success());
    assert!(
        stderr.contains("its quota is 64 (plugins.limits.kv_max_total_bytes)"),
        "{stderr}"
    );
}
