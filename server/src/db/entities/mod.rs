pub mod api_key;
pub mod plugin;
pub mod plugin_event;
pub mod plugin_kv;
pub mod request_log;
