//! The host side of `portcullis:plugin/log`, the same interface in every contract version:
//! lent to every world of every version under the version's name.

use wasmtime::StoreContextMut;
use wasmtime::component::Linker;

use super::Contract;
use super::call::CallState;
use super::contract::interface;
use super::contract::v0_5::storage_world::portcullis::plugin::log::Level;

/// Lends `log` to the plugins of `contract`.
pub(super) fn link(linker: &mut Linker<CallState>, contract: Contract) -> wasmtime::Result<()> {
    linker.instance(&interface("log", contract))?.func_wrap(
        "log",
        |store: StoreContextMut<'_, CallState>, (level, message): (Level, String)| {
            let level = match level {
                Level::Debug => tracing::Level::DEBUG,
                Level::Info => tracing::Level::INFO,
                Level::Warn => tracing::Level::WARN,
                Level::Error => tracing::Level::ERROR,
            };
            guest_log(&store.data().plugin, level, &message);
            Ok(())
        },
    )
}

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
