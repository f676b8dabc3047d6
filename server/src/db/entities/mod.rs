pub mod api_key;
pub mod audit_head;
pub mod audit_log;
pub mod plugin;
pub mod plugin_event;
pub mod plugin_kv;
pub mod request_log;
