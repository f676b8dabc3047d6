//! `audit_log`: one row per governance decision, hash-chained, append-only
//! (triggers refuse UPDATE and DELETE); `audit_head`: the chain's last
//! sequence number and hash, so truncating the tail is detected too.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[derive(DeriveIden)]
enum AuditLog {
    Table,
    Seq,
    At,
    RunId,
    Stage,
    Subject,
    Agent,
    Plugin,
    Tool,
    Channel,
    Decision,
    Mode,
    Policies,
    Matches,
    Bundle,
    ContentSha256,
    PrevHash,
    Hash,
}

#[derive(DeriveIden)]
enum AuditHead {
    Table,
    Id,
    Seq,
    Hash,
}

const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(AuditLog::Table)
                    .if_not_exists()
                    .col(
                        big_integer(AuditLog::Seq)
                            .primary_key()
                            .check(Expr::col(AuditLog::Seq).gte(1)),
                    )
                    .col(string(AuditLog::At))
                    .col(string_null(AuditLog::RunId))
                    .col(string(AuditLog::Stage))
                    .col(string_null(AuditLog::Subject))
                    .col(string_null(AuditLog::Agent))
                    .col(string_null(AuditLog::Plugin))
                    .col(string_null(AuditLog::Tool))
                    .col(string_null(AuditLog::Channel))
                    .col(string(AuditLog::Decision))
                    .col(string(AuditLog::Mode))
                    .col(text(AuditLog::Policies))
                    .col(text(AuditLog::Matches))
                    .col(string(AuditLog::Bundle))
                    .col(string(AuditLog::ContentSha256))
                    .col(string(AuditLog::PrevHash))
                    .col(string(AuditLog::Hash))
                    .to_owned(),
            )
            .await?;
        for (name, col) in [
            ("idx_audit_log_at", AuditLog::At),
            ("idx_audit_log_run", AuditLog::RunId),
            ("idx_audit_log_hash", AuditLog::Hash),
        ] {
            manager
                .create_index(
                    Index::create()
                        .name(name)
                        .table(AuditLog::Table)
                        .col(col)
                        .if_not_exists()
                        .to_owned(),
                )
                .await?;
        }
        manager
            .create_table(
                Table::create()
                    .table(AuditHead::Table)
                    .if_not_exists()
                    .col(integer(AuditHead::Id).primary_key())
                    .col(big_integer(AuditHead::Seq))
                    .col(string(AuditHead::Hash))
                    .to_owned(),
            )
            .await?;
        manager
            .exec_stmt(
                Query::insert()
                    .into_table(AuditHead::Table)
                    .columns([AuditHead::Id, AuditHead::Seq, AuditHead::Hash])
                    .values_panic([1.into(), 0i64.into(), GENESIS.into()])
                    .on_conflict(OnConflict::column(AuditHead::Id).do_nothing().to_owned())
                    .to_owned(),
            )
            .await?;
        let db = manager.get_connection();
        match db.get_database_backend() {
            DbBackend::Postgres => {
                db.execute_unprepared(
                    "CREATE OR REPLACE FUNCTION warden_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ \
                     BEGIN RAISE EXCEPTION 'audit_log is append-only'; END $$",
                )
                .await?;
                db.execute_unprepared("DROP TRIGGER IF EXISTS audit_log_append_only ON audit_log")
                    .await?;
                db.execute_unprepared(
                    "CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log \
                     FOR EACH ROW EXECUTE FUNCTION warden_audit_append_only()",
                )
                .await?;
            }
            _ => {
                for op in ["UPDATE", "DELETE"] {
                    db.execute_unprepared(&format!(
                        "CREATE TRIGGER IF NOT EXISTS audit_log_no_{} BEFORE {op} ON audit_log \
                         BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END",
                        op.to_lowercase()
                    ))
                    .await?;
                }
            }
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(AuditHead::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(AuditLog::Table).to_owned())
            .await?;
        if manager.get_connection().get_database_backend() == DbBackend::Postgres {
            manager
                .get_connection()
                .execute_unprepared("DROP FUNCTION IF EXISTS warden_audit_append_only()")
                .await?;
        }
        Ok(())
    }
}
