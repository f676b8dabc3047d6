//! Hostile guests against the real host: each misbehaviour ends with a
//! clear error of the right kind, and the host keeps serving other calls.

use std::io::{Read, Write};
use std::net::TcpListener;

use serde_json::json;
use warden_tests::{Options, Server, call_tool, copy_plugin, guests_dist};

const SECRET: &str = "tok-SECRET-7f3a9c";

/// A TCP server that accepts connections and never answers.
fn black_hole() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for mut stream in listener.incoming().flatten() {
            let mut buf = [0u8; 1024];
            let _ = stream.read(&mut buf);
            held.push(stream);
        }
    });
    port
}

/// A minimal HTTP server that answers every request with `hello from loopback`.
fn responder() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            let body = "hello from loopback";
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    port
}

fn start(port: u16) -> (Server, tempfile::TempDir) {
    start_with(port, |t| t)
}

/// Starts a server with the hostile guest, allowed to reach 127.0.0.1:`port`
/// (and, for the positive HTTP case, a responder), after `edit` on its manifest.
fn start_with(port: u16, edit: impl Fn(String) -> String) -> (Server, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    copy_plugin(&guests_dist().join("hostile"), dir.path(), |t| {
        edit(t.replace(
            r#"http_hosts = ["https://api.example.com"]"#,
            &format!(r#"http_hosts = ["https://api.example.com", "http://127.0.0.1:{port}"]"#),
        ))
    })
    .unwrap();
    let config = format!(
        r#"
        [plugins]
        directories = ["{dir}"]
        [plugins.grants."test.hostile"]
        kv_buckets = ["scratch"]
        http_hosts = ["https://api.example.com", "http://127.0.0.1:{port}"]
        allow_private_networks = true
        config = {{ api_token = "{SECRET}" }}
        "#,
        dir = dir.path().display()
    );
    let server = Server::start_with(Options {
        config,
        ..Options::default()
    })
    .unwrap();
    (server, dir)
}

fn code(body: &serde_json::Value) -> &str {
    body["error"]["code"].as_str().unwrap_or_default()
}

fn message(body: &serde_json::Value) -> String {
    body["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_guests_end_cleanly_and_the_host_keeps_serving() {
    let port = black_hole();
    let (server, _dir) = start(port);
    let p = "test.hostile";

    // (tool, arguments, status, error code, fragment of the message)
    let cases: &[(&str, serde_json::Value, u16, &str, &str)] = &[
        ("spin", json!({}), 422, "timeout", "timed out after 1000 ms"),
        (
            "allocate",
            json!({}),
            422,
            "memory_limit",
            "memory limit of 33554432 bytes",
        ),
        (
            "huge_output",
            json!({"bytes": 200000}),
            422,
            "output_too_large",
            "limit of 65536 bytes",
        ),
        (
            "panic",
            json!({"text": "boom"}),
            502,
            "plugin_crashed",
            "deliberate panic: boom",
        ),
        (
            "http_get",
            json!({"url": "https://undeclared.example.net/"}),
            403,
            "denied",
            "denied",
        ),
        // Blocked inside a host call (the epoch cannot interrupt it): the outer timeout ends it.
        (
            "http_get",
            json!({"url": format!("http://127.0.0.1:{port}/")}),
            422,
            "timeout",
            "timed out",
        ),
        (
            "kv_write",
            json!({"bucket": "other", "key": "k", "value": "v"}),
            403,
            "denied",
            "kv bucket \"other\" is not declared in plugin.toml",
        ),
        (
            "read_file",
            json!({"name": "/etc/passwd"}),
            403,
            "denied",
            "cannot read /etc/passwd",
        ),
        (
            "sneaky_write",
            json!({}),
            403,
            "denied",
            "writing kv needs a tool with effect \"writes\" or higher; this tool declares \"pure\"",
        ),
        (
            "ask_llm",
            json!({"text": "hi"}),
            403,
            "denied",
            "[plugins.grants.\"test.hostile\"] llm = true",
        ),
        (
            "echo",
            json!({"text": 5}),
            400,
            "invalid_arguments",
            "invalid type",
        ),
        (
            "no_such_tool",
            json!({}),
            404,
            "unknown_tool",
            "it has: echo",
        ),
    ];
    for (tool, args, status, want_code, fragment) in cases {
        let (s, body) = call_tool(&server, p, tool, args.clone()).await;
        assert_eq!(
            (s, code(&body)),
            (*status, *want_code),
            "{tool} {args}: {body}"
        );
        assert!(message(&body).contains(fragment), "{tool}: {body}");
        // After every failure the plugin still answers.
        let (s, body) = call_tool(&server, p, "echo", json!({"text": "still here"})).await;
        assert_eq!(s, 200, "echo after {tool}: {body}");
        assert_eq!(body["output"]["text"], "still here");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_sandbox_shows_no_environment_no_files_and_granted_kv_only() {
    let (server, _dir) = start(black_hole());
    let p = "test.hostile";
    let (s, body) = call_tool(&server, p, "read_env", json!({"name": "WARDEN_DATA_DIR"})).await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["output"]["value"], json!(null));
    assert_eq!(body["output"]["visible_variables"], json!([]));

    let (s, body) = call_tool(
        &server,
        p,
        "kv_write",
        json!({"bucket": "scratch", "key": "k", "value": "v"}),
    )
    .await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["output"]["stored"], "v");
    assert!(body["peak_memory_bytes"].as_u64().unwrap() > 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn secret_config_values_reach_the_plugin_but_not_the_log() {
    let (server, _dir) = start(black_hole());
    let (s, body) = call_tool(&server, "test.hostile", "log_secret", json!({})).await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["output"]["token_length"], SECRET.len());
    let log = server.stderr_log();
    assert!(log.contains("the token is [redacted]"), "{log}");
    assert!(!log.contains(SECRET), "secret leaked into the log");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_runaway_call_does_not_block_other_calls() {
    let (server, _dir) = start(black_hole());
    let spinning = async {
        let r = call_tool(&server, "test.hostile", "spin", json!({})).await;
        (r, std::time::Instant::now())
    };
    let echo = async {
        // Give the spinning call a head start.
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let r = call_tool(
            &server,
            "test.hostile",
            "echo",
            json!({"text": "meanwhile"}),
        )
        .await;
        (r, std::time::Instant::now())
    };
    let (((s1, b1), spin_done), ((s2, b2), echo_done)) = tokio::join!(spinning, echo);
    assert_eq!((s1, code(&b1)), (422, "timeout"), "{b1}");
    assert_eq!(s2, 200, "{b2}");
    assert!(
        echo_done < spin_done,
        "echo waited for the spinning call to hit its deadline"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn granted_hosts_are_reachable_when_private_networks_are_allowed() {
    let port = responder();
    let (server, _dir) = start(port);
    let (s, body) = call_tool(
        &server,
        "test.hostile",
        "http_get",
        json!({"url": format!("http://127.0.0.1:{port}/greeting")}),
    )
    .await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(
        body["output"],
        json!({"status": 200, "body": "hello from loopback"})
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn calls_beyond_the_concurrency_cap_wait_or_are_refused() {
    let (server, _dir) = start_with(black_hole(), |t| {
        t.replace("[limits]", "[limits]\nmax_concurrency = 1")
    });
    let spinning = call_tool(&server, "test.hostile", "spin", json!({}));
    let echo = async {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        call_tool(&server, "test.hostile", "echo", json!({"text": "queued"})).await
    };
    let ((s1, _), (s2, b2)) = tokio::join!(spinning, echo);
    assert_eq!(s1, 422);
    // Either it waited for the only slot, or it was refused as busy; it never ran alongside.
    match s2 {
        200 => assert_eq!(b2["queued"], true, "{b2}"),
        429 => assert_eq!(code(&b2), "busy"),
        other => panic!("unexpected {other}: {b2}"),
    }
    let (_, alone) = call_tool(&server, "test.hostile", "echo", json!({"text": "alone"})).await;
    assert_eq!(alone["queued"], false);
}
