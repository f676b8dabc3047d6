//! API keys: generation, hashing, storage and lookup.
//!
//! A key is `wdn_` followed by 256 random bits in base64url. Only its sha256
//! is stored: with that much entropy a fast hash is as strong as a slow one,
//! and lookups stay one indexed query per request.

use base64::Engine as _;
use rand::RngCore;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, Set,
};
use sha2::{Digest, Sha256};
use thiserror::Error;

use warden_db::entities::api_key;

const KEY_PREFIX: &str = "wdn_";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Admin,
    User,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::User => "user",
        }
    }
}

impl std::str::FromStr for Role {
    type Err = KeyError;
    fn from_str(s: &str) -> Result<Self, KeyError> {
        match s {
            "admin" => Ok(Role::Admin),
            "user" => Ok(Role::User),
            other => Err(KeyError::BadRole(other.to_owned())),
        }
    }
}

#[derive(Debug, Error)]
pub enum KeyError {
    #[error("unknown role {0:?}; expected \"admin\" or \"user\"")]
    BadRole(String),
    #[error("key name must be 1-64 characters of letters, digits, '-', '_' or '.'")]
    BadName,
    #[error("a key named {0:?} already exists")]
    NameTaken(String),
    #[error("database error: {0}")]
    Db(#[from] sea_orm::DbErr),
}

/// The identity behind a valid key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub key_id: i64,
    pub name: String,
    pub role: Role,
}

pub fn generate_key() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!(
        "{KEY_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

pub fn hash_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// Creates a key and returns its plaintext, which is never stored.
pub async fn create(db: &DatabaseConnection, name: &str, role: Role) -> Result<String, KeyError> {
    if !valid_name(name) {
        return Err(KeyError::BadName);
    }
    if api_key::Entity::find()
        .filter(api_key::Column::Name.eq(name))
        .one(db)
        .await?
        .is_some()
    {
        return Err(KeyError::NameTaken(name.to_owned()));
    }
    let key = generate_key();
    let row = api_key::ActiveModel {
        name: Set(name.to_owned()),
        role: Set(role.as_str().to_owned()),
        key_hash: Set(hash_key(&key)),
        prefix: Set(key.chars().take(KEY_PREFIX.len() + 4).collect()),
        created_at: Set(chrono::Utc::now()),
        last_used_at: Set(None),
        revoked: Set(false),
        ..Default::default()
    };
    row.insert(db).await.map_err(|e| match e.sql_err() {
        Some(sea_orm::SqlErr::UniqueConstraintViolation(_)) => KeyError::NameTaken(name.to_owned()),
        _ => KeyError::Db(e),
    })?;
    Ok(key)
}

/// Resolves a presented key; `None` for unknown or revoked keys.
pub async fn authenticate(
    db: &DatabaseConnection,
    key: &str,
) -> Result<Option<Principal>, KeyError> {
    if !key.starts_with(KEY_PREFIX) || key.len() > 128 {
        return Ok(None);
    }
    let Some(row) = api_key::Entity::find()
        .filter(api_key::Column::KeyHash.eq(hash_key(key)))
        .one(db)
        .await?
    else {
        return Ok(None);
    };
    if row.revoked {
        return Ok(None);
    }
    let role = row.role.parse()?;
    Ok(Some(Principal {
        key_id: row.id,
        name: row.name,
        role,
    }))
}

/// Records that a key was used; best effort, called off the request path.
pub async fn touch(db: &DatabaseConnection, key_id: i64) -> Result<(), KeyError> {
    let row = api_key::ActiveModel {
        id: Set(key_id),
        last_used_at: Set(Some(chrono::Utc::now())),
        ..Default::default()
    };
    row.update(db).await?;
    Ok(())
}

pub async fn count(db: &DatabaseConnection) -> Result<u64, KeyError> {
    use sea_orm::PaginatorTrait;
    Ok(api_key::Entity::find().count(db).await?)
}

pub async fn list(db: &DatabaseConnection) -> Result<Vec<api_key::Model>, KeyError> {
    Ok(api_key::Entity::find()
        .order_by_asc(api_key::Column::Id)
        .all(db)
        .await?)
}

/// Revokes a key by name; returns whether one was found.
pub async fn revoke(db: &DatabaseConnection, name: &str) -> Result<bool, KeyError> {
    let Some(row) = api_key::Entity::find()
        .filter(api_key::Column::Name.eq(name))
        .one(db)
        .await?
    else {
        return Ok(false);
    };
    let mut active: api_key::ActiveModel = row.into();
    active.revoked = Set(true);
    active.update(db).await?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_long_random_and_prefixed() {
        let a = generate_key();
        let b = generate_key();
        assert_ne!(a, b);
        assert!(a.starts_with("wdn_"));
        assert_eq!(a.len(), 4 + 43);
    }

    #[test]
    fn hashes_are_stable_hex_sha256() {
        assert_eq!(
            hash_key("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn names_and_roles_are_validated() {
        assert!(valid_name("ci-bot_1.2"));
        for bad in ["", "has space", "semi;colon", &"x".repeat(65)] {
            assert!(!valid_name(bad), "{bad}");
        }
        assert!("root".parse::<Role>().is_err());
        assert_eq!("admin".parse::<Role>().unwrap(), Role::Admin);
    }
}
