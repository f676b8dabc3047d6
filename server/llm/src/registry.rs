//! Model id → backend. Which backends exist is decided by the binary
//! (`warden.toml`); this is only the map.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::Backend;

#[derive(Clone, Default)]
pub struct ModelRegistry {
    backends: BTreeMap<String, Arc<dyn Backend>>,
}

impl ModelRegistry {
    pub fn insert(&mut self, backend: Arc<dyn Backend>) {
        self.backends.insert(backend.model_id().to_owned(), backend);
    }

    pub fn get(&self, id: &str) -> Option<Arc<dyn Backend>> {
        self.backends.get(id).cloned()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<dyn Backend>> {
        self.backends.values()
    }
}
