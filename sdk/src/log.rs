//! Messages in the host log, tagged with the plugin id and call id.

use crate::bindings::warden::plugin::log as wit;

pub fn debug(message: &str) {
    wit::log(wit::Level::Debug, message);
}

pub fn info(message: &str) {
    wit::log(wit::Level::Info, message);
}

pub fn warn(message: &str) {
    wit::log(wit::Level::Warn, message);
}

pub fn error(message: &str) {
    wit::log(wit::Level::Error, message);
}
