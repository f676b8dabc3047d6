//! Tool-calling agents: definitions ([`spec`]), the constrained planner
//! ([`planner`]), the governed loop (`run_loop`, driven by [`runner`]), the
//! tools it calls ([`tools`]) and the runs it records ([`runs`]).
//!
//! Invariants: this crate reaches tools only through the [`tools::ToolHost`]
//! seam and models only through `warden-llm`'s `Backend` trait, so it links
//! neither wasmtime nor an inference engine; every step passes the
//! governor before anything acts on it.

pub mod answer_stream;
pub mod feedback;
pub mod memory;
pub mod planner;
mod run_loop;
pub mod runner;
pub mod runs;
pub mod spec;
pub mod state;
pub mod tools;

#[cfg(any(test, feature = "test-support"))]
pub mod testing;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use sea_orm::{ActiveModelTrait, DatabaseConnection, DbErr, EntityTrait, Set};

pub use runner::{RunError, RunReport, RunRequest, Runner};
pub use runs::{RunStatus, RunStore, StepKind, StepRecord};
pub use spec::{AgentSpec, ToolCalling};
pub use state::Resolution;

use warden_db::entities::agent;

/// Agents as the server offers them: the catalog and the loop.
pub struct AgentService {
    pub catalog: AgentCatalog,
    pub runner: Runner,
}

impl AgentService {
    /// Stores an agent made through the API or the console, after checking
    /// it, its tools' fit in a step included ([`Runner::check_tools`]).
    pub async fn define(&self, spec: AgentSpec, actor: &str) -> Result<(), CatalogError> {
        spec.validate()?;
        self.runner.check_tools(&spec).await?;
        self.catalog.put(spec, actor).await
    }
}

/// Agents from `warden.toml` (the shipped three when it declares none)
/// and from the database (made through `/api/agents`). A configured agent
/// cannot be replaced through the API.
pub struct AgentCatalog {
    configured: BTreeMap<String, AgentSpec>,
    db: DatabaseConnection,
}

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error(transparent)]
    Invalid(#[from] crate::spec::SpecError),
    /// Its tools cannot be offered within its steps' token budget.
    #[error(transparent)]
    Tools(#[from] crate::planner::BoundError),
    /// A definition that cannot be stored (serialising it failed).
    #[error("cannot store the definition: {0}")]
    Encode(#[source] serde_json::Error),
    /// A stored definition that no longer reads as an agent.
    #[error("stored agent {name:?} is unreadable: {source}")]
    Unreadable {
        name: String,
        source: serde_json::Error,
    },
    #[error("agent {0:?} is defined in warden.toml and cannot be changed through the API")]
    Configured(String),
    #[error("no agent named {0:?}")]
    NotFound(String),
    #[error("database error: {0}")]
    Db(#[from] DbErr),
}

impl AgentCatalog {
    pub fn new(configured: Vec<AgentSpec>, db: DatabaseConnection) -> Self {
        let configured = configured
            .into_iter()
            .map(|a| (a.name.clone(), a))
            .collect();
        Self { configured, db }
    }

    pub async fn get(&self, name: &str) -> Result<AgentSpec, CatalogError> {
        if let Some(a) = self.configured.get(name) {
            return Ok(a.clone());
        }
        let row = agent::Entity::find_by_id(name.to_owned())
            .one(&self.db)
            .await?
            .ok_or_else(|| CatalogError::NotFound(name.to_owned()))?;
        serde_json::from_str(&row.definition).map_err(|source| CatalogError::Unreadable {
            name: name.to_owned(),
            source,
        })
    }

    /// Every agent, with where it is defined.
    pub async fn list(&self) -> Result<Vec<(AgentSpec, &'static str)>, CatalogError> {
        let mut out: Vec<(AgentSpec, &'static str)> = self
            .configured
            .values()
            .map(|a| (a.clone(), "config"))
            .collect();
        for row in agent::Entity::find().all(&self.db).await? {
            if let Ok(a) = serde_json::from_str::<AgentSpec>(&row.definition) {
                out.push((a, "api"));
            }
        }
        Ok(out)
    }

    pub async fn put(&self, spec: AgentSpec, actor: &str) -> Result<(), CatalogError> {
        spec.validate()?;
        if self.configured.contains_key(&spec.name) {
            return Err(CatalogError::Configured(spec.name));
        }
        let now = chrono::Utc::now();
        let definition = serde_json::to_string(&spec).map_err(CatalogError::Encode)?;
        let existing = agent::Entity::find_by_id(spec.name.clone())
            .one(&self.db)
            .await?;
        let mut row = agent::ActiveModel {
            name: Set(spec.name.clone()),
            definition: Set(definition),
            created_by: Set(Some(actor.to_owned())),
            created_at: Set(now),
            updated_at: Set(now),
        };
        match existing {
            Some(e) => {
                row.created_at = Set(e.created_at);
                row.created_by = Set(e.created_by);
                row.update(&self.db).await?;
            }
            None => {
                row.insert(&self.db).await?;
            }
        }
        Ok(())
    }

    pub async fn delete(&self, name: &str) -> Result<(), CatalogError> {
        if self.configured.contains_key(name) {
            return Err(CatalogError::Configured(name.to_owned()));
        }
        let r = agent::Entity::delete_by_id(name.to_owned())
            .exec(&self.db)
            .await?;
        if r.rows_affected == 0 {
            return Err(CatalogError::NotFound(name.to_owned()));
        }
        Ok(())
    }
}
