//! The durable side of the `kv` import: rows in `plugin_kv`, keyed by
//! (plugin id, bucket, key). Plugin scoping is enforced here, not by the
//! guest: the plugin id comes from the host's record of which plugin runs.

use sea_orm::sea_query::{Expr, ExprTrait, LikeExpr, OnConflict};
use sea_orm::{
    ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set,
};

use warden_db::entities::plugin_kv::{ActiveModel, Column, Entity};

/// Longest key accepted.
pub const MAX_KEY_BYTES: usize = 512;
/// Most keys one `list-keys` returns.
pub const MAX_LIST: u32 = 1000;

#[derive(Clone)]
pub struct KvStore {
    db: DatabaseConnection,
}

impl KvStore {
    pub fn new(db: DatabaseConnection) -> Self {
        Self { db }
    }

    pub async fn get(
        &self,
        plugin: &str,
        bucket: &str,
        key: &str,
    ) -> Result<Option<Vec<u8>>, DbErr> {
        Ok(
            Entity::find_by_id((plugin.to_owned(), bucket.to_owned(), key.to_owned()))
                .one(&self.db)
                .await?
                .map(|row| row.value),
        )
    }

    pub async fn set(
        &self,
        plugin: &str,
        bucket: &str,
        key: &str,
        value: Vec<u8>,
    ) -> Result<(), DbErr> {
        let row = ActiveModel {
            plugin_id: Set(plugin.to_owned()),
            bucket: Set(bucket.to_owned()),
            key: Set(key.to_owned()),
            value: Set(value),
            updated_at: Set(chrono::Utc::now()),
        };
        Entity::insert(row)
            .on_conflict(
                OnConflict::columns([Column::PluginId, Column::Bucket, Column::Key])
                    .update_columns([Column::Value, Column::UpdatedAt])
                    .to_owned(),
            )
            .exec_without_returning(&self.db)
            .await?;
        Ok(())
    }

    /// Bytes (keys and values) a plugin keeps, and what `key` currently takes.
    pub async fn usage(&self, plugin: &str, bucket: &str, key: &str) -> Result<(u64, u64), DbErr> {
        use sea_orm::{ConnectionTrait, Statement};
        let backend = self.db.get_database_backend();
        let sql = match backend {
            sea_orm::DatabaseBackend::Postgres => {
                "SELECT COALESCE(SUM(OCTET_LENGTH(key) + OCTET_LENGTH(value)), 0)::BIGINT AS total, \
                 COALESCE(SUM(CASE WHEN bucket = $2 AND key = $3 THEN OCTET_LENGTH(key) + OCTET_LENGTH(value) ELSE 0 END), 0)::BIGINT AS this \
                 FROM plugin_kv WHERE plugin_id = $1"
            }
            _ => {
                "SELECT COALESCE(SUM(LENGTH(CAST(key AS BLOB)) + LENGTH(value)), 0) AS total, \
                 COALESCE(SUM(CASE WHEN bucket = ?2 AND key = ?3 THEN LENGTH(CAST(key AS BLOB)) + LENGTH(value) ELSE 0 END), 0) AS this \
                 FROM plugin_kv WHERE plugin_id = ?1"
            }
        };
        let row = self
            .db
            .query_one_raw(Statement::from_sql_and_values(
                backend,
                sql,
                [plugin.into(), bucket.into(), key.into()],
            ))
            .await?;
        let get = |col: &str| -> Result<u64, DbErr> {
            let v: i64 = row.as_ref().map_or(Ok(0), |r| r.try_get("", col))?;
            Ok(u64::try_from(v).unwrap_or(0))
        };
        Ok((get("total")?, get("this")?))
    }

    pub async fn delete(&self, plugin: &str, bucket: &str, key: &str) -> Result<bool, DbErr> {
        let res = Entity::delete_by_id((plugin.to_owned(), bucket.to_owned(), key.to_owned()))
            .exec(&self.db)
            .await?;
        Ok(res.rows_affected > 0)
    }

    pub async fn list_keys(
        &self,
        plugin: &str,
        bucket: &str,
        prefix: &str,
        limit: u32,
    ) -> Result<Vec<String>, DbErr> {
        let pattern = format!("{}%", escape_like(prefix));
        let rows: Vec<String> = Entity::find()
            .select_only()
            .column(Column::Key)
            .filter(Column::PluginId.eq(plugin))
            .filter(Column::Bucket.eq(bucket))
            .filter(Expr::col(Column::Key).like(LikeExpr::new(pattern).escape('\\')))
            .order_by_asc(Column::Key)
            .limit(u64::from(Ord::min(limit, MAX_LIST)))
            .into_tuple()
            .all(&self.db)
            .await?;
        Ok(rows)
    }

    /// Removes everything a plugin stored (used when it is removed).
    pub async fn purge(&self, plugin: &str) -> Result<u64, DbErr> {
        self.purge_in(&self.db, plugin).await
    }

    /// [`Self::purge`] inside the caller's transaction.
    pub async fn purge_in(
        &self,
        db: &impl sea_orm::ConnectionTrait,
        plugin: &str,
    ) -> Result<u64, DbErr> {
        let res = Entity::delete_many()
            .filter(Column::PluginId.eq(plugin))
            .exec(db)
            .await?;
        Ok(res.rows_affected)
    }
}

fn escape_like(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '\\' | '%' | '_') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn store() -> KvStore {
        KvStore::new(warden_db::connect("sqlite::memory:").await.unwrap())
    }

    #[tokio::test]
    async fn values_round_trip_and_are_scoped_per_plugin() {
        let kv = store().await;
        kv.set("a", "b", "k", b"one".to_vec()).await.unwrap();
        kv.set("a", "b", "k", b"two".to_vec()).await.unwrap();
        kv.set("other", "b", "k", b"theirs".to_vec()).await.unwrap();
        assert_eq!(
            kv.get("a", "b", "k").await.unwrap().as_deref(),
            Some(&b"two"[..])
        );
        assert_eq!(kv.get("a", "c", "k").await.unwrap(), None);
        assert!(kv.delete("a", "b", "k").await.unwrap());
        assert!(!kv.delete("a", "b", "k").await.unwrap());
        assert_eq!(
            kv.get("other", "b", "k").await.unwrap().as_deref(),
            Some(&b"theirs"[..])
        );
    }

    #[tokio::test]
    async fn prefix_listing_treats_like_wildcards_literally() {
        let kv = store().await;
        for k in ["doc:1", "doc:2", "doc_x", "docs", "note:1"] {
            kv.set("p", "b", k, vec![]).await.unwrap();
        }
        assert_eq!(
            kv.list_keys("p", "b", "doc:", 10).await.unwrap(),
            ["doc:1", "doc:2"]
        );
        assert_eq!(kv.list_keys("p", "b", "doc_", 10).await.unwrap(), ["doc_x"]);
        assert_eq!(kv.list_keys("p", "b", "", 2).await.unwrap().len(), 2);
        assert_eq!(kv.purge("p").await.unwrap(), 5);
    }
}
