//! Per-user memory: short facts and preferences (by API key name) that
//! agents with `memory = true` see in their system prompt. Written through
//! `/api/memory` and by the chatbot plugin's `remember_preference` tool
//! when an agent calls it; viewable and deletable by the user and admins.

use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseConnection, DbErr, EntityTrait, PaginatorTrait,
    QueryFilter, QueryOrder, Set,
};

use warden_db::entities::user_memory;

pub const MAX_KEY: usize = 64;
pub const MAX_VALUE: usize = 1000;
/// At most this many entries go into a prompt.
pub const PROMPT_ENTRIES: usize = 50;
/// At most this many entries per user.
pub const MAX_ENTRIES: u64 = 100;

/// The tool whose successful calls are mirrored into memory.
pub const REMEMBER_TOOL: (&str, &str) = ("warden.chatbot", "remember_preference");

#[derive(Clone)]
pub struct MemoryStore {
    db: DatabaseConnection,
}

/// A memory entry out of bounds.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidMemory {
    #[error("memory keys have 1 to {MAX_KEY} printable characters")]
    Key,
    #[error("memory values have 1 to {MAX_VALUE} bytes")]
    Value,
}

/// Why a memory entry was not written.
#[derive(Debug, thiserror::Error)]
pub enum MemoryError {
    #[error("memory is full ({MAX_ENTRIES} entries): delete some first")]
    Full,
    #[error("database: {0}")]
    Db(#[from] DbErr),
}

pub fn validate(key: &str, value: &str) -> Result<(), InvalidMemory> {
    if key.is_empty() || key.len() > MAX_KEY || key.chars().any(char::is_control) {
        return Err(InvalidMemory::Key);
    }
    if value.is_empty() || value.len() > MAX_VALUE {
        return Err(InvalidMemory::Value);
    }
    Ok(())
}

impl MemoryStore {
    pub fn new(db: DatabaseConnection) -> Self {
        Self { db }
    }

    pub async fn list(&self, subject: &str) -> Result<Vec<user_memory::Model>, DbErr> {
        user_memory::Entity::find()
            .filter(user_memory::Column::Subject.eq(subject))
            .order_by_asc(user_memory::Column::Key)
            .all(&self.db)
            .await
    }

    pub async fn put(
        &self,
        subject: &str,
        key: &str,
        value: &str,
        source: &str,
    ) -> Result<(), MemoryError> {
        // Reads the count, then writes: see `begin_write`.
        let txn = warden_db::begin_write(&self.db).await?;
        let existing = user_memory::Entity::find()
            .filter(user_memory::Column::Subject.eq(subject))
            .filter(user_memory::Column::Key.eq(key))
            .one(&txn)
            .await?;
        let now = chrono::Utc::now();
        match existing {
            Some(row) => {
                let mut row: user_memory::ActiveModel = row.into();
                row.value = Set(value.to_owned());
                row.source = Set(source.to_owned());
                row.updated_at = Set(now);
                row.update(&txn).await?;
            }
            None => {
                let count = user_memory::Entity::find()
                    .filter(user_memory::Column::Subject.eq(subject))
                    .count(&txn)
                    .await?;
                if count >= MAX_ENTRIES {
                    return Err(MemoryError::Full);
                }
                user_memory::ActiveModel {
                    subject: Set(subject.to_owned()),
                    key: Set(key.to_owned()),
                    value: Set(value.to_owned()),
                    source: Set(source.to_owned()),
                    updated_at: Set(now),
                    ..Default::default()
                }
                .insert(&txn)
                .await?;
            }
        }
        Ok(txn.commit().await?)
    }

    /// Deletes one key, or everything of the subject when `key` is `None`.
    pub async fn delete(&self, subject: &str, key: Option<&str>) -> Result<u64, DbErr> {
        let mut q =
            user_memory::Entity::delete_many().filter(user_memory::Column::Subject.eq(subject));
        if let Some(k) = key {
            q = q.filter(user_memory::Column::Key.eq(k));
        }
        Ok(q.exec(&self.db).await?.rows_affected)
    }

    /// The prompt section for `subject`, if there is anything to say.
    pub async fn prompt(&self, subject: &str) -> Result<Option<String>, DbErr> {
        let entries = self.list(subject).await?;
        if entries.is_empty() {
            return Ok(None);
        }
        let mut s = String::from("What you know about this user (from earlier conversations):\n");
        // One line per entry, quoted: a value cannot pose as more entries
        // or as instructions outside its line.
        let flat = |t: &str| {
            t.chars()
                .map(|c| if c.is_control() { ' ' } else { c })
                .collect::<String>()
        };
        for e in entries.iter().take(PROMPT_ENTRIES) {
            s.push_str(&format!("- {}: {:?}\n", flat(&e.key), flat(&e.value)));
        }
        Ok(Some(s))
    }
}
