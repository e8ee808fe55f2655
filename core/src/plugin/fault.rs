//! A plugin that keeps faulting: its faults in a row, whether that made it unhealthy, and the
//! fallback that answers a call it faulted on (the manifest's `[on-fault]`).
//!
//! Each loaded version of a plugin counts its own faults (a trap, a deadline, an exhausted
//! memory, a call unanswered in time: every `Err` of the call path), so a new version starts
//! healthy. A call the plugin answers, whatever it answers, sets the count back to zero. At
//! `on-fault.after` faults in a row the plugin is unhealthy until its next answer: a WARN
//! once when it becomes so, an INFO when it recovers, `portcullis_plugin_healthy{plugin}` 0
//! meanwhile (1 otherwise), and [`PolicyHost::unhealthy`] lists it for `/health/ready`.
//!
//! What a request gets does not depend on that state: the plugin is asked first on every
//! call, so that its next answer recovers it, and a call it faulted on goes to its fallback
//! (scope policies and consent UIs) or is refused, from the first fault on. The state is
//! what an operator sees and is alerted on.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use super::{Plugin, PluginError, PluginKind, PolicyHost};

/// One loaded version's faults in a row and health.
pub(super) struct Faults {
    in_a_row: AtomicU32,
    unhealthy: AtomicBool,
    /// `portcullis_plugin_healthy{plugin}`, taken when the plugin is prepared.
    healthy: metrics::Gauge,
}

impl Faults {
    pub(super) fn new(name: &Arc<str>) -> Self {
        Self {
            in_a_row: AtomicU32::new(0),
            unhealthy: AtomicBool::new(false),
            healthy: metrics::gauge!("portcullis_plugin_healthy", "plugin" => name.clone()),
        }
    }

    /// The version is serving: it is healthy (a version it replaced may not have been).
    pub(super) fn installed(&self) {
        self.healthy.set(1.0);
    }

    /// Whether the plugin is unhealthy now, and after how many faults in a row.
    fn state(&self) -> Option<u32> {
        self.unhealthy.load(Ordering::Relaxed).then(|| self.in_a_row.load(Ordering::Relaxed))
    }
}

/// Counts how one call of `plugin` ended: answered or faulted.
pub(super) fn record(plugin: &Plugin, answered: bool) {
    let f = &plugin.faults;
    if answered {
        // Read first: a healthy plugin's calls write nothing shared.
        if f.in_a_row.load(Ordering::Relaxed) != 0 {
            f.in_a_row.store(0, Ordering::Relaxed);
        }
        if f.unhealthy.load(Ordering::Relaxed) && f.unhealthy.swap(false, Ordering::Relaxed) {
            f.healthy.set(1.0);
            tracing::info!(plugin = %plugin.name, kind = %plugin.manifest.kind, "plugin answered again: healthy");
        }
        return;
    }
    let in_a_row = f.in_a_row.fetch_add(1, Ordering::Relaxed).saturating_add(1);
    if in_a_row >= plugin.manifest.on_fault.after && !f.unhealthy.swap(true, Ordering::Relaxed) {
        f.healthy.set(0.0);
        tracing::warn!(
            plugin = %plugin.name,
            kind = %plugin.manifest.kind,
            faults = in_a_row,
            fallback = plugin.manifest.on_fault.fallback.as_deref().unwrap_or("none"),
            "plugin faulted {in_a_row} times in a row: unhealthy until it answers again or is reloaded"
        );
    }
}

/// A plugin that faulted its last calls, as readiness names it.
#[derive(Debug, Clone)]
pub struct Unhealthy {
    pub name: String,
    pub kind: PluginKind,
    /// Its faults in a row.
    pub faults: u32,
    /// The plugin its manifest names to answer the calls it faults on.
    pub fallback: Option<String>,
}

impl PolicyHost {
    /// The loaded plugins that are unhealthy now, by name.
    pub fn unhealthy(&self) -> Vec<Unhealthy> {
        let mut found: Vec<Unhealthy> = self
            .loaded()
            .values()
            .filter_map(|p| {
                p.faults.state().map(|faults| Unhealthy {
                    name: p.manifest.name.clone(),
                    kind: p.manifest.kind,
                    faults,
                    fallback: p.manifest.on_fault.fallback.clone(),
                })
            })
            .collect();
        found.sort_by(|a, b| a.name.cmp(&b.name));
        found
    }

    /// The plugin that answers a call `plugin` faulted on: its fallback, when one of the same
    /// kind is loaded. A fallback that is not (removed, or replaced by another kind) leaves the
    /// fault as it is: a denial, or the request's error.
    pub(super) fn fallback_for(&self, plugin: &Plugin, fault: &PluginError) -> Option<Arc<Plugin>> {
        if matches!(fault, PluginError::NotLoaded { .. }) {
            return None;
        }
        let name = plugin.manifest.on_fault.fallback.as_deref()?;
        match self.get(plugin.manifest.kind, name) {
            Ok(fallback) => Some(fallback),
            Err(_) => {
                tracing::warn!(
                    plugin = %plugin.name,
                    fallback = name,
                    "the plugin's on-fault fallback is not loaded as a {}: the fault stands",
                    plugin.manifest.kind
                );
                None
            }
        }
    }
}

/// At install: a fallback that is loaded must be of the plugin's kind. One not loaded yet is
/// accepted (it may come later in the directory); until it is, faults stand.
pub(super) fn check_fallback(
    plugins: &std::collections::HashMap<String, Arc<Plugin>>,
    plugin: &Plugin,
) -> Result<(), String> {
    let Some(name) = plugin.manifest.on_fault.fallback.as_deref() else { return Ok(()) };
    match plugins.get(name) {
        Some(other) if other.manifest.kind != plugin.manifest.kind => Err(format!(
            "on-fault.fallback: `{name}` is a {} plugin, not a {} one",
            other.manifest.kind, plugin.manifest.kind
        )),
        Some(_) => Ok(()),
        None => {
            tracing::warn!(
                plugin = %plugin.name,
                fallback = name,
                "the plugin's on-fault fallback is not loaded (yet): until it is, the plugin's faults stand"
            );
            Ok(())
        }
    }
}
