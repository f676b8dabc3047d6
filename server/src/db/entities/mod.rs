pub mod api_key;
pub mod request_log;
