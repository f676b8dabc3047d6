//! Keys and the request log persist through sea-orm on SQLite (the
//! default) and on the local PostgreSQL.

use sea_orm::{ConnectionTrait, Database, Statement};
use serde_json::json;
use warden_tests::{MODEL, Options, PgDatabase, Server, warden_cli};

async fn exercise(database_url: Option<String>) {
    let data = tempfile::tempdir().unwrap();
    let opts = Options {
        database_url: database_url.clone(),
        data_dir: Some(data.path().to_owned()),
        ..Options::default()
    };
    let server = Server::start_with(opts.clone()).unwrap();
    let admin = server.key().to_owned();

    // A key made with the CLI works against the running server.
    let cli_key = warden_cli(
        data.path(),
        database_url.as_deref(),
        &["keys", "create", "--name", "cli", "--role", "user"],
    )
    .unwrap();
    let cli_key = cli_key.trim();
    assert!(cli_key.starts_with("wdn_"));
    let http = reqwest::Client::new();
    let resp = http
        .post(format!("{}/chat/completions", server.v1()))
        .bearer_auth(cli_key)
        .json(&json!({"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(server.terminate().unwrap().success());

    let url = database_url.unwrap_or_else(|| {
        format!(
            "sqlite://{}?mode=rw",
            data.path().join("warden.db").display()
        )
    });
    let db = Database::connect(&url).await.unwrap();
    let row = db
        .query_one_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT k.name, r.model, r.status, r.prompt_tokens, r.completion_tokens, r.latency_ms \
             FROM request_log r JOIN api_keys k ON k.id = r.key_id WHERE r.endpoint = '/v1/chat/completions'",
        ))
        .await
        .unwrap()
        .expect("a request log row");
    assert_eq!(row.try_get::<String>("", "name").unwrap(), "cli");
    assert_eq!(row.try_get::<String>("", "model").unwrap(), MODEL);
    assert_eq!(row.try_get::<i32>("", "status").unwrap(), 200);
    assert!(row.try_get::<i32>("", "prompt_tokens").unwrap() > 0);
    assert!((1..=3).contains(&row.try_get::<i32>("", "completion_tokens").unwrap()));
    assert!(row.try_get::<i64>("", "latency_ms").unwrap() >= 0);

    // Keys are stored hashed: the plaintext appears nowhere in the table.
    let keys = db
        .query_all_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT key_hash, prefix FROM api_keys",
        ))
        .await
        .unwrap();
    assert_eq!(keys.len(), 2);
    for k in keys {
        let hash: String = k.try_get("", "key_hash").unwrap();
        assert_eq!(hash.len(), 64);
        assert_ne!(hash, admin);
        assert!(!admin.starts_with(&hash) && !cli_key.contains(&hash));
    }

    // A restart on the same database keeps the keys and prints no new admin key.
    let again = Server::start_with(opts).unwrap();
    assert!(again.admin_key.is_none());
    let listed = warden_cli(
        data.path(),
        Some(&url)
            .filter(|u| u.starts_with("postgres"))
            .map(String::as_str),
        &["keys", "list"],
    )
    .unwrap();
    assert!(
        listed.contains("admin") && listed.contains("cli"),
        "{listed}"
    );
}

#[tokio::test]
async fn sqlite_persists_keys_and_request_log() {
    exercise(None).await;
}

#[tokio::test]
async fn postgres_persists_keys_and_request_log() {
    let pg = PgDatabase::create().await.unwrap();
    exercise(Some(pg.url.clone())).await;
}
