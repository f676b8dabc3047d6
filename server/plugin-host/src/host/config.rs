use crate::bindings::{config, types::HostError};
use crate::state::CallState;

impl config::Host for CallState {
    async fn get(&mut self, name: String) -> Result<Option<String>, HostError> {
        self.grant
            .config_value(&name)
            .map(|v| v.map(str::to_owned))
            .map_err(HostError::from)
    }
}
