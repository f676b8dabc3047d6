//! A real SMTP server on loopback for the email tests: `aiosmtpd` (from
//! PyPI, installed by `make test`) with its Mailbox handler, which writes
//! every message it accepts into a maildir that tests read.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub struct SmtpSink {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Child,
}

/// A free port on loopback (for a server started later).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn python() -> PathBuf {
    std::env::var_os("WARDEN_TEST_PYTHON").map_or_else(|| "python3".into(), PathBuf::from)
}

impl SmtpSink {
    pub fn start() -> Self {
        Self::start_on(free_port())
    }

    pub fn start_on(port: u16) -> Self {
        Self::with_handler(port, "aiosmtpd.handlers.Mailbox")
    }

    /// A server that defers ann@example.com's first message (451) and
    /// refuses bob@example.com's (554): `tests/python/flaky_smtp.py`.
    pub fn flaky() -> Self {
        Self::with_handler(free_port(), "flaky_smtp.FlakyMailbox")
    }

    fn with_handler(port: u16, handler: &str) -> Self {
        let dir = tempfile::tempdir().expect("maildir");
        let maildir = dir.path().join("mail");
        let child = Command::new(python())
            .env("PYTHONPATH", concat!(env!("CARGO_MANIFEST_DIR"), "/python"))
            .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}")])
            .args(["-c", handler])
            .arg(&maildir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("aiosmtpd (pip install aiosmtpd; make test does)");
        // Owned from here: dropping the sink kills and waits for it.
        let sink = Self { port, dir, child };
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return sink;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("aiosmtpd did not start on port {port}");
    }

    /// Every message received so far, oldest first, as raw text.
    pub fn messages(&self) -> Vec<String> {
        let mut files: Vec<(std::time::SystemTime, PathBuf)> = ["new", "cur"]
            .iter()
            .flat_map(|d| {
                std::fs::read_dir(self.dir.path().join("mail").join(d))
                    .into_iter()
                    .flatten()
            })
            .filter_map(|e| e.ok())
            .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
            .collect();
        files.sort();
        files
            .into_iter()
            .filter_map(|(_, p)| std::fs::read_to_string(p).ok())
            .collect()
    }

    /// Waits (polling, up to `secs`) until `n` messages have arrived.
    pub async fn until(&self, n: usize, secs: u64) -> Vec<String> {
        for _ in 0..secs * 10 {
            let m = self.messages();
            if m.len() >= n {
                return m;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "the SMTP server got {} messages, not {n}",
            self.messages().len()
        );
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The value of header `name` in a raw message (unfolded).
pub fn header(raw: &str, name: &str) -> Option<String> {
    let text = raw.replace("\r\n", "\n");
    let head = text.split("\n\n").next().unwrap_or(&text);
    let mut value: Option<String> = None;
    for line in head.lines() {
        if let Some(v) = &mut value {
            if line.starts_with([' ', '\t']) {
                v.push(' ');
                v.push_str(line.trim());
                continue;
            }
            break;
        }
        if let Some((k, v)) = line.split_once(':')
            && k.eq_ignore_ascii_case(name)
        {
            value = Some(v.trim().to_owned());
        }
    }
    value
}

/// The text body of a raw message, decoded (transfer encoding, charset).
pub fn text_of(raw: &str) -> String {
    mail_parser::MessageParser::default()
        .parse(raw.as_bytes())
        .and_then(|m| m.body_text(0).map(|t| t.into_owned()))
        .unwrap_or_default()
}

/// The messages in `all` addressed to `to`.
pub fn to(all: &[String], to: &str) -> Vec<String> {
    all.iter()
        .filter(|m| header(m, "To").is_some_and(|t| t.contains(to)))
        .cloned()
        .collect()
}

/// A `multipart/form-data` body as providers post it: (name, file name,
/// content type, data) per field. Returns the content type and the body.
pub fn form_data(fields: &[(&str, Option<&str>, &str, &[u8])]) -> (String, Vec<u8>) {
    let boundary = "----warden-test-boundary-7d3f";
    let mut body = Vec::new();
    for (name, file, content_type, data) in fields {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        let disposition = match file {
            Some(f) => format!("form-data; name=\"{name}\"; filename=\"{f}\""),
            None => format!("form-data; name=\"{name}\""),
        };
        body.extend_from_slice(format!("Content-Disposition: {disposition}\r\n").as_bytes());
        body.extend_from_slice(format!("Content-Type: {content_type}\r\n\r\n").as_bytes());
        body.extend_from_slice(data);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}
