//! The official `openai` Python package talks to Warden unchanged.

use warden_tests::{MODEL, Server};

#[test]
fn openai_python_package_completes_and_streams() {
    let python = std::env::var("WARDEN_TEST_PYTHON").expect(
        "WARDEN_TEST_PYTHON must point at a Python with the openai package (make test sets it up)",
    );
    let server = Server::start().unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/python/client_smoke.py");
    let out = std::process::Command::new(python)
        .arg(script)
        .env("WARDEN_BASE_URL", server.v1())
        .env("WARDEN_API_KEY", server.key())
        .env("WARDEN_MODEL", MODEL)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("completion ok") && stdout.contains("stream ok"),
        "{stdout}"
    );
}
