//! Test harness: starts real `warden` processes on free ports and gives
//! tests what they need to talk to them.

pub mod fake_slack;
pub mod smtp;
pub mod upstream;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{Context, bail};

/// The `warden` binary: `$WARDEN_BIN`, else next to this test binary's
/// `deps/` directory (cargo's layout).
pub fn warden_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("WARDEN_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("current exe");
    exe.parent()
        .and_then(Path::parent)
        .map(|d| d.join("warden"))
        .expect("target dir layout")
}

/// The installed default model (the test command fetches it first).
pub fn model_path() -> PathBuf {
    let out = Command::new(warden_bin())
        .args(["model", "path"])
        .output()
        .expect("run warden model path");
    assert!(
        out.status.success(),
        "default model missing; run `make test` (which fetches it): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

pub const MODEL: &str = "smollm2-135m-instruct";

#[derive(Default, Clone)]
pub struct Options {
    /// Extra `warden.toml` text (models, server settings).
    pub config: String,
    pub database_url: Option<String>,
    pub env: Vec<(String, String)>,
    /// Reuse this data dir (restart tests).
    pub data_dir: Option<PathBuf>,
}

pub struct Server {
    child: Child,
    pub base: String,
    pub admin_key: Option<String>,
    pub data_dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
}

impl Server {
    pub fn start() -> anyhow::Result<Self> {
        Self::start_with(Options::default())
    }

    pub fn start_with(opts: Options) -> anyhow::Result<Self> {
        let (tmp, data_dir) = match &opts.data_dir {
            Some(d) => (None, d.clone()),
            None => {
                let t = tempfile::tempdir()?;
                let p = t.path().to_owned();
                (Some(t), p)
            }
        };
        let config_path = data_dir.join("warden.toml");
        std::fs::write(&config_path, &opts.config)?;
        let stderr = std::fs::File::create(data_dir.join("stderr.log"))?;
        let mut cmd = Command::new(warden_bin());
        cmd.arg("--config")
            .arg(&config_path)
            .arg("serve")
            .env("WARDEN_DATA_DIR", &data_dir)
            .env("WARDEN_LISTEN", "127.0.0.1:0")
            .env("WARDEN_MODEL_PATH", model_path())
            .env_remove("DATABASE_URL")
            .env_remove("WARDEN_DATABASE_URL")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr);
        if let Some(url) = &opts.database_url {
            cmd.env("WARDEN_DATABASE_URL", url);
        }
        for (k, v) in &opts.env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().context("spawning warden")?;
        let stdout = child.stdout.take().context("stdout")?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut admin_key = None;
        loop {
            let line = match rx.recv_timeout(Duration::from_secs(180)) {
                Ok(l) => l,
                Err(_) => {
                    let _ = child.kill();
                    let log =
                        std::fs::read_to_string(data_dir.join("stderr.log")).unwrap_or_default();
                    bail!("warden did not start:\n{log}");
                }
            };
            if let Some(k) = line.split("store it now): ").nth(1) {
                admin_key = Some(k.trim().to_owned());
            }
            if let Some(addr) = line.strip_prefix("warden listening on ") {
                return Ok(Server {
                    child,
                    base: addr.trim().to_owned(),
                    admin_key,
                    data_dir,
                    _tmp: tmp,
                });
            }
        }
    }

    pub fn key(&self) -> &str {
        self.admin_key
            .as_deref()
            .expect("fresh database printed an admin key")
    }

    pub fn v1(&self) -> String {
        format!("{}/v1", self.base)
    }

    /// An async-openai client with the admin key.
    pub fn openai(&self) -> async_openai::Client<async_openai::config::OpenAIConfig> {
        async_openai::Client::with_config(
            async_openai::config::OpenAIConfig::new()
                .with_api_base(self.v1())
                .with_api_key(self.key()),
        )
    }

    /// Sends SIGTERM and waits for the process to exit.
    pub fn terminate(mut self) -> anyhow::Result<std::process::ExitStatus> {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()?;
        anyhow::ensure!(status.success(), "kill failed");
        for _ in 0..600 {
            if let Some(s) = self.child.try_wait()? {
                return Ok(s);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        bail!("warden did not exit within 60 s of SIGTERM")
    }

    /// SIGKILL: a crash, with nothing finished or flushed.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Rows of `query` on this server's SQLite database (for what the API
    /// does not show: conversation turns, outbox attempts).
    pub async fn sqlite_query(&self, query: &str) -> Vec<sea_orm::QueryResult> {
        use sea_orm::{ConnectionTrait, Database, Statement};
        let url = format!("sqlite://{}", self.data_dir.join("warden.db").display());
        let db = Database::connect(&url)
            .await
            .expect("the server's database");
        db.query_all_raw(Statement::from_string(db.get_database_backend(), query))
            .await
            .expect("query")
    }

    pub fn stderr_log(&self) -> String {
        std::fs::read_to_string(self.data_dir.join("stderr.log")).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `warden` with args against a data dir and returns stdout.
pub fn warden_cli(
    data_dir: &Path,
    database_url: Option<&str>,
    args: &[&str],
) -> anyhow::Result<String> {
    let mut cmd = Command::new(warden_bin());
    cmd.args(["--config", "/dev/null"])
        .args(args)
        .env("WARDEN_DATA_DIR", data_dir)
        .env_remove("DATABASE_URL")
        .env_remove("WARDEN_DATABASE_URL");
    if let Some(url) = database_url {
        cmd.env("WARDEN_DATABASE_URL", url);
    }
    let out = cmd.output()?;
    anyhow::ensure!(
        out.status.success(),
        "warden {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8(out.stdout)?)
}

/// Runs `warden` with args (and optional stdin) against a data dir and
/// returns the whole outcome, failures included.
pub fn warden_run(
    data_dir: &Path,
    database_url: Option<&str>,
    args: &[&str],
    stdin: Option<&str>,
) -> std::process::Output {
    use std::io::Write as _;
    let mut cmd = Command::new(warden_bin());
    cmd.args(["--config", "/dev/null"])
        .args(args)
        .env("WARDEN_DATA_DIR", data_dir)
        .env_remove("DATABASE_URL")
        .env_remove("WARDEN_DATABASE_URL")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(url) = database_url {
        cmd.env("WARDEN_DATABASE_URL", url);
    }
    let mut child = cmd.spawn().expect("spawn warden");
    if let Some(mut pipe) = child.stdin.take() {
        let _ = pipe.write_all(stdin.unwrap_or_default().as_bytes());
    }
    child.wait_with_output().expect("wait for warden")
}

/// A uniquely named PostgreSQL database, dropped with this value.
pub struct PgDatabase {
    pub url: String,
    name: String,
}

const PG_ADMIN: &str = "postgres://postgres@127.0.0.1:5432/postgres";

impl PgDatabase {
    pub async fn create() -> anyhow::Result<Self> {
        use sea_orm::ConnectionTrait;
        let name = format!("warden_test_{}", uuid::Uuid::new_v4().simple());
        let admin = sea_orm::Database::connect(PG_ADMIN)
            .await
            .context("connecting to the local PostgreSQL at 127.0.0.1:5432")?;
        admin
            .execute_unprepared(&format!("CREATE DATABASE {name}"))
            .await?;
        Ok(Self {
            url: format!("postgres://postgres@127.0.0.1:5432/{name}"),
            name,
        })
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop runs outside the test's runtime: use a short-lived one.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            rt.block_on(async {
                use sea_orm::ConnectionTrait;
                let admin = sea_orm::Database::connect(PG_ADMIN).await.ok()?;
                admin
                    .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await
                    .ok()
            })
        })
        .join();
    }
}

/// A user message.
pub fn user(text: &str) -> async_openai::types::chat::ChatCompletionRequestMessage {
    async_openai::types::chat::ChatCompletionRequestUserMessageArgs::default()
        .content(text)
        .build()
        .expect("valid user message")
        .into()
}

/// A greedy (temperature 0) request for one user message; add options, then `build()`.
pub fn greedy(
    model: &str,
    text: &str,
    max_tokens: u32,
) -> async_openai::types::chat::CreateChatCompletionRequestArgs {
    let mut args = async_openai::types::chat::CreateChatCompletionRequestArgs::default();
    args.model(model)
        .messages(vec![user(text)])
        .max_completion_tokens(max_tokens)
        .temperature(0.0f32);
    args
}

/// `plugins/dist`: the first-party plugins as `make plugins` lays them out.
pub fn plugins_dist() -> PathBuf {
    std::env::var_os("WARDEN_PLUGINS_DIST")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins/dist"))
}

/// `tests/guests/dist`: the hostile test guests as `make guests` lays them out.
pub fn guests_dist() -> PathBuf {
    std::env::var_os("WARDEN_TEST_GUESTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("guests/dist"))
}

/// The warden-sdk crate, for scaffolded plugins.
pub fn sdk_dir() -> PathBuf {
    std::env::var_os("WARDEN_SDK")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../sdk"))
}

/// Copies the plugin directory `from` into `into/<name>`, applying `edit`
/// to its plugin.toml text. Returns the new directory.
pub fn copy_plugin(
    from: &Path,
    into: &Path,
    edit: impl Fn(String) -> String,
) -> anyhow::Result<PathBuf> {
    let name = from.file_name().context("plugin dir name")?;
    let dest = into.join(name);
    std::fs::create_dir_all(&dest)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        if entry.file_type()?.is_file() {
            std::fs::copy(entry.path(), dest.join(entry.file_name()))?;
        }
    }
    let manifest = dest.join("plugin.toml");
    let text = std::fs::read_to_string(&manifest)?;
    std::fs::write(&manifest, edit(text))?;
    Ok(dest)
}

/// A JSON request to Warden's `/api` with the given key.
pub async fn api(
    server: &Server,
    method: reqwest::Method,
    path: &str,
    key: &str,
    body: Option<serde_json::Value>,
) -> (u16, serde_json::Value) {
    let http = reqwest::Client::new();
    let mut req = http
        .request(method, format!("{}/api{path}", server.base))
        .bearer_auth(key);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.expect("request");
    let status = resp.status().as_u16();
    let text = resp.text().await.expect("body");
    let json = if text.is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text))
    };
    (status, json)
}

/// Calls a plugin tool through the API with the admin key.
pub async fn call_tool(
    server: &Server,
    plugin: &str,
    tool: &str,
    arguments: serde_json::Value,
) -> (u16, serde_json::Value) {
    call_tool_as(server, plugin, tool, arguments, None).await
}

pub async fn call_tool_as(
    server: &Server,
    plugin: &str,
    tool: &str,
    arguments: serde_json::Value,
    user: Option<&str>,
) -> (u16, serde_json::Value) {
    api(
        server,
        reqwest::Method::POST,
        &format!("/plugins/{plugin}/tools/{tool}"),
        server.key(),
        Some(serde_json::json!({ "arguments": arguments, "user": user })),
    )
    .await
}
