//! The host side of `portcullis:plugin/log`, for every world of every contract version.

use super::bindings::{v1, v2, v3, v4};
use super::call::CallState;

/// The `log` import of one contract version's worlds.
macro_rules! log_host {
    ($version:ident) => {
        impl $version::scope_world::portcullis::plugin::log::Host for CallState {
            fn log(&mut self, level: $version::scope_world::portcullis::plugin::log::Level, message: String) {
                use $version::scope_world::portcullis::plugin::log::Level;
                let level = match level {
                    Level::Debug => tracing::Level::DEBUG,
                    Level::Info => tracing::Level::INFO,
                    Level::Warn => tracing::Level::WARN,
                    Level::Error => tracing::Level::ERROR,
                };
                guest_log(&self.plugin, level, &message);
            }
        }
    };
}

log_host!(v4);
log_host!(v3);
log_host!(v2);
log_host!(v1);

/// A plugin's message is its own text: capped so one plugin cannot flood the log, and
/// logged as a field, so a newline in it cannot forge a line.
fn guest_log(plugin: &str, level: tracing::Level, message: &str) {
    let message: String = message.chars().take(crate::limits::MAX_PLUGIN_LOG_CHARS).collect();
    match level {
        tracing::Level::DEBUG => tracing::debug!(target: "plugin", plugin, message = ?message),
        tracing::Level::INFO => tracing::info!(target: "plugin", plugin, message = ?message),
        tracing::Level::WARN => tracing::warn!(target: "plugin", plugin, message = ?message),
        _ => tracing::error!(target: "plugin", plugin, message = ?message),
    }
}
