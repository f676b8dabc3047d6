use crate::bindings::{kv, types::HostError};
use crate::kv_store::{MAX_KEY_BYTES, MAX_LIST};
use crate::manifest::Effect;
use crate::state::CallState;

impl CallState {
    fn kv_check(&self, bucket: &str, key: Option<&str>, needs: Effect) -> Result<(), HostError> {
        let what = if needs == Effect::Writes {
            "writing kv"
        } else {
            "reading kv"
        };
        self.require_effect(needs, what).map_err(HostError::from)?;
        self.grant.check_kv(bucket).map_err(HostError::from)?;
        if let Some(key) = key {
            if key.is_empty() {
                return Err(HostError::Invalid("key must not be empty".into()));
            }
            if key.len() > MAX_KEY_BYTES {
                return Err(HostError::LimitExceeded(format!(
                    "key is {} bytes; the limit is {MAX_KEY_BYTES}",
                    key.len()
                )));
            }
        }
        Ok(())
    }

    fn storage_error(&self, e: sea_orm::DbErr) -> HostError {
        tracing::error!(plugin = self.grant.plugin_id(), call = %self.call_id, "kv storage error: {e}");
        HostError::Unavailable("storage error; see the server log".into())
    }
}

impl kv::Host for CallState {
    async fn get(&mut self, bucket: String, key: String) -> Result<Option<Vec<u8>>, HostError> {
        self.kv_check(&bucket, Some(&key), Effect::Reads)?;
        let store = self.services.kv.clone();
        store
            .get(self.grant.plugin_id(), &bucket, &key)
            .await
            .map_err(|e| self.storage_error(e))
    }

    async fn set(&mut self, bucket: String, key: String, value: Vec<u8>) -> Result<(), HostError> {
        self.kv_check(&bucket, Some(&key), Effect::Writes)?;
        let limit = self.grant.limits.kv_max_value_bytes;
        if value.len() as u64 > limit {
            return Err(HostError::LimitExceeded(format!(
                "value is {} bytes; the kv limit is {limit}",
                value.len()
            )));
        }
        let store = self.services.kv.clone();
        let quota = self.grant.limits.kv_max_total_bytes;
        let (total, this) = store
            .usage(self.grant.plugin_id(), &bucket, &key)
            .await
            .map_err(|e| self.storage_error(e))?;
        let after = total - this.min(total) + key.len() as u64 + value.len() as u64;
        if after > quota {
            return Err(HostError::LimitExceeded(format!(
                "this plugin's kv data would reach {after} bytes; its quota is {quota} \
                 (plugins.limits.kv_max_total_bytes)"
            )));
        }
        store
            .set(self.grant.plugin_id(), &bucket, &key, value)
            .await
            .map_err(|e| self.storage_error(e))
    }

    async fn delete(&mut self, bucket: String, key: String) -> Result<bool, HostError> {
        self.kv_check(&bucket, Some(&key), Effect::Writes)?;
        let store = self.services.kv.clone();
        store
            .delete(self.grant.plugin_id(), &bucket, &key)
            .await
            .map_err(|e| self.storage_error(e))
    }

    async fn list_keys(
        &mut self,
        bucket: String,
        prefix: String,
        limit: u32,
    ) -> Result<Vec<String>, HostError> {
        self.kv_check(&bucket, None, Effect::Reads)?;
        let store = self.services.kv.clone();
        store
            .list_keys(
                self.grant.plugin_id(),
                &bucket,
                &prefix,
                limit.min(MAX_LIST),
            )
            .await
            .map_err(|e| self.storage_error(e))
    }
}
