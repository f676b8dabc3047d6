//! Database connection and schema migration (SQLite or PostgreSQL), and the
//! sea-orm entities every other crate reads and writes through.
//!
//! Invariant: the schema changes only through `migrations/`; nothing here
//! creates or alters a table.

pub mod entities;

use std::time::Duration;

use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{
    ConnectOptions, Database, DatabaseConnection, DatabaseTransaction, DbErr,
    SqliteTransactionMode, TransactionOptions, TransactionTrait,
};
use warden_migrations::{Migrator, MigratorTrait};

/// Why the database could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("cannot create the database directory {path}: {source}")]
    CreateDir {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Db(#[from] DbErr),
}

/// Connects to `url` and brings the schema up to date.
///
/// SQLite databases are created if missing and run in WAL mode with a busy
/// timeout, so the request-log writer and API readers do not block each other.
pub async fn connect(url: &str) -> Result<DatabaseConnection, ConnectError> {
    if let Some(path) = sqlite_path(url)
        && let Some(parent) = std::path::Path::new(path)
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
    {
        std::fs::create_dir_all(parent).map_err(|source| ConnectError::CreateDir {
            path: parent.to_owned(),
            source,
        })?;
    }
    // (An in-memory database lives only as long as its pool: it is
    // migrated in place.)
    let sqlite_file = url.starts_with("sqlite:") && sqlite_path(url).is_some();
    if sqlite_file {
        // Migrate over one connection of its own, then open the pool. A
        // pooled connection opened while the migrations ran (the migrator
        // uses more than one) can keep the schema as it was between a
        // migration's CREATE TABLE and its CREATE INDEX; SQLite checks an
        // ON CONFLICT target against that stale copy when it prepares the
        // statement and fails ("ON CONFLICT clause does not match any
        // PRIMARY KEY or UNIQUE constraint") without re-reading it.
        let migrating = Database::connect(options(url, 1)).await?;
        Migrator::up(&migrating, None).await?;
        migrating.close().await?;
        return Ok(Database::connect(options(url, 4)).await?);
    }
    let pool = if url.starts_with("sqlite:") { 4 } else { 16 };
    let db = Database::connect(options(url, pool)).await?;
    Migrator::up(&db, None).await?;
    Ok(db)
}

fn options(url: &str, max_connections: u32) -> ConnectOptions {
    let mut options = ConnectOptions::new(url.to_owned());
    options
        .sqlx_logging(false)
        .connect_timeout(Duration::from_secs(10))
        .acquire_timeout(Duration::from_secs(10))
        .max_connections(max_connections);
    if url.starts_with("sqlite:") {
        options.map_sqlx_sqlite_opts(|o| {
            o.create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(5))
                .foreign_keys(true)
                // Plugin kv prefix listing uses LIKE, which must match
                // case-sensitively as it does on PostgreSQL.
                .pragma("case_sensitive_like", "ON")
        });
    }
    options
}

/// Starts a transaction that reads and then writes. On SQLite it is
/// `BEGIN IMMEDIATE`, which takes the write lock at the start, where the
/// busy timeout applies: a deferred transaction that reads first and then
/// writes fails at once with SQLITE_BUSY_SNAPSHOT (517) whenever another
/// connection (the request log, a key's last-used time) committed in
/// between. PostgreSQL ignores the mode.
pub async fn begin_write(db: &DatabaseConnection) -> Result<DatabaseTransaction, DbErr> {
    db.begin_with_options(TransactionOptions {
        sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
        ..TransactionOptions::default()
    })
    .await
}

fn sqlite_path(url: &str) -> Option<&str> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or(rest);
    (!path.is_empty() && path != ":memory:").then_some(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_paths_are_found_in_urls() {
        assert_eq!(
            sqlite_path("sqlite:///tmp/a.db?mode=rwc"),
            Some("/tmp/a.db")
        );
        assert_eq!(sqlite_path("sqlite://data/w.db"), Some("data/w.db"));
        assert_eq!(sqlite_path("sqlite::memory:"), None);
        assert_eq!(sqlite_path("postgres://x/y"), None);
    }
}
