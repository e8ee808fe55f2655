//! Hot reload: the policies directory is watched (notify) and reconciled with what is loaded.
//! Compilation happens off the request path; the swap is one pointer write, so requests in
//! flight finish on the version they started with.
//!
//! Only what changes a file wakes the watcher (creating, writing, renaming, removing it):
//! a reconcile reads every file, and reacting to its own reads would reconcile forever. A
//! file refused for what it holds (it does not compile, link or validate, or has no
//! manifest) is remembered by its content and neither tried nor logged again until it changes.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use notify::event::{AccessKind, AccessMode};
use notify::{Event, EventKind, RecursiveMode, Watcher};
use sha2::{Digest, Sha256};

use super::PolicyHost;

/// The watcher's memory and counters, kept by the host.
#[derive(Default)]
pub(crate) struct Reloads {
    reconciles: AtomicU64,
    compilations: AtomicU64,
    /// The files refused for what they hold, by plugin name: a digest of that content.
    refused: parking_lot::Mutex<HashMap<String, [u8; 32]>>,
}

/// How often the policies directory was reconciled and plugins compiled (each compile,
/// link and validation of a plugin, whether it was loaded or refused).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReloadCounts {
    pub reconciles: u64,
    pub compilations: u64,
}

impl Reloads {
    pub(crate) fn counts(&self) -> ReloadCounts {
        ReloadCounts {
            reconciles: self.reconciles.load(Ordering::Relaxed),
            compilations: self.compilations.load(Ordering::Relaxed),
        }
    }

    /// Remembers `content` as refused under `name`; whether it was not already.
    fn refuse(&self, name: &str, content: [u8; 32]) -> bool {
        self.refused.lock().insert(name.to_owned(), content) != Some(content)
    }

    fn was_refused(&self, name: &str, content: &[u8; 32]) -> bool {
        self.refused.lock().get(name) == Some(content)
    }

    fn forget(&self, name: &str) {
        self.refused.lock().remove(name);
    }
}

/// Loads every plugin in `dir`. At start-up a refused plugin is an error only when it is one
/// of the configured defaults and nothing else provides it.
pub async fn load_dir(host: &Arc<PolicyHost>, dir: &Path) -> anyhow::Result<()> {
    reconcile(host, dir).await;
    let loaded = host.loaded();
    for name in [&host.defaults.storage, &host.defaults.scope, &host.defaults.consent] {
        if !loaded.contains_key(name.as_str()) {
            anyhow::bail!("the policies directory {} has no usable plugin `{name}`", dir.display());
        }
    }
    Ok(())
}

/// What the directory holds under one name.
enum Entry {
    /// A manifest and its `.wasm`.
    Plugin { manifest: String, wasm: Vec<u8> },
    /// Files that cannot be loaded as they are: which, why, and what of them could be read.
    Unusable { file: PathBuf, reason: String, content: Vec<u8> },
}

/// Brings the loaded set in line with the directory: new and changed files are compiled and
/// swapped in, removed ones dropped.
pub async fn reconcile(host: &Arc<PolicyHost>, dir: &Path) {
    let dir2 = dir.to_path_buf();
    let entries = match tokio::task::spawn_blocking(move || read_dir(&dir2)).await {
        Ok(Ok(entries)) => entries,
        Ok(Err(e)) => {
            tracing::error!(dir = %dir.display(), error = %e, "cannot read the policies directory");
            return;
        }
        Err(e) => {
            tracing::error!(error = %e, "policy reload task failed");
            return;
        }
    };
    let reloads = &host.reloads;
    let loaded = host.loaded();
    let mut present = HashSet::new();
    for (stem, entry) in entries {
        present.insert(stem.clone());
        let (manifest, wasm) = match entry {
            Entry::Plugin { manifest, wasm } => (manifest, wasm),
            Entry::Unusable { file, reason, content } => {
                if reloads.refuse(&stem, fingerprint(reason.as_bytes(), &content)) {
                    tracing::error!(plugin = %stem, file = %file.display(), "plugin refused: {reason}");
                    reloaded(&stem, "refused");
                }
                continue;
            }
        };
        let digest: [u8; 32] = Sha256::digest(&wasm).into();
        if loaded.get(&stem).is_some_and(|p| p.digest == digest && manifest_unchanged(p, &manifest)) {
            reloads.forget(&stem);
            continue;
        }
        let content = fingerprint(manifest.as_bytes(), &digest);
        if reloads.was_refused(&stem, &content) {
            continue;
        }
        reloads.compilations.fetch_add(1, Ordering::Relaxed);
        let h = host.clone();
        let stem2 = stem.clone();
        let prepared = tokio::task::spawn_blocking(move || h.prepare(&manifest, &stem2, &wasm)).await;
        let plugin = match prepared {
            Ok(Ok(plugin)) => plugin,
            Ok(Err(reason)) => {
                reloads.refuse(&stem, content);
                tracing::error!(plugin = %stem, %reason, "plugin refused; the previous version (if any) keeps serving");
                reloaded(&stem, "refused");
                continue;
            }
            Err(e) => {
                tracing::error!(plugin = %stem, error = %e, "compilation task failed");
                continue;
            }
        };
        reloads.forget(&stem);
        let kind = plugin.manifest.kind;
        // Not remembered: what refuses an install (a failed migration, a grant type another
        // plugin answers) may be gone at the next change in the directory.
        match host.install(plugin).await {
            Ok(()) => {
                tracing::info!(plugin = %stem, %kind, "plugin loaded");
                reloaded(&stem, "loaded");
            }
            Err(reason) => {
                tracing::error!(plugin = %stem, %reason, "plugin refused; the previous version (if any) keeps serving");
                reloaded(&stem, "refused");
            }
        }
    }
    for name in loaded.keys() {
        if !present.contains(name) && host.remove(name) {
            tracing::info!(plugin = %name, "plugin unloaded");
            reloaded(name, "unloaded");
        }
    }
    reloads.refused.lock().retain(|name, _| present.contains(name));
    reloads.reconciles.fetch_add(1, Ordering::Relaxed);
}

/// Counts a change of the loaded set (`portcullis_plugin_reloads_total`): a plugin `loaded`
/// (anew or a new version), `refused` (a file that does not load; counted once per content),
/// or `unloaded`. Names come from the policies directory, one per plugin file.
pub(super) fn reloaded(plugin: &str, outcome: &'static str) {
    metrics::counter!("portcullis_plugin_reloads_total", "plugin" => plugin.to_owned(), "outcome" => outcome)
        .increment(1);
}

/// A digest of a plugin's two halves (or of a refusal's reason and what was read).
fn fingerprint(first: &[u8], second: &[u8]) -> [u8; 32] {
    let mut hash = Sha256::new();
    hash.update((first.len() as u64).to_be_bytes());
    hash.update(first);
    hash.update(second);
    hash.finalize().into()
}

fn manifest_unchanged(plugin: &super::Plugin, text: &str) -> bool {
    super::Manifest::parse(text, &plugin.manifest.name)
        .map(|m| format!("{m:?}") == format!("{:?}", plugin.manifest))
        .unwrap_or(false)
}

/// Reads every `<name>.toml` + `<name>.wasm` pair in `dir`. A `.wasm` without a manifest,
/// or a pair that cannot be read, is an unusable entry.
fn read_dir(dir: &Path) -> std::io::Result<Vec<(String, Entry)>> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let Some(stem) = path.file_stem().and_then(|s| s.to_str()).map(str::to_owned) else { continue };
        match path.extension().and_then(|e| e.to_str()) {
            Some("wasm") if !path.with_extension("toml").exists() => {
                let reason =
                    format!("no manifest {stem}.toml beside it (it names the plugin's kind, contract and limits)");
                let content = std::fs::read(&path).unwrap_or_default();
                found.push((stem, Entry::Unusable { file: path, reason, content }));
                continue;
            }
            Some("toml") => {}
            _ => continue,
        }
        let entry = match (std::fs::read_to_string(&path), std::fs::read(path.with_extension("wasm"))) {
            (Ok(manifest), Ok(wasm)) => Entry::Plugin { manifest, wasm },
            (Err(e), _) | (_, Err(e)) => Entry::Unusable {
                reason: format!("its manifest or .wasm cannot be read: {e}"),
                file: path,
                content: Vec::new(),
            },
        };
        found.push((stem, entry));
    }
    found.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(found)
}

/// Whether an event changes what the directory holds: a file created, written, renamed or
/// removed. Opening, reading and closing a file unwritten change nothing.
fn changes_files(event: &Event) -> bool {
    match event.kind {
        EventKind::Create(_) | EventKind::Modify(_) | EventKind::Remove(_) => true,
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) => false,
        // Events the backend could not classify, or lost (a queue overflow): look again.
        EventKind::Any | EventKind::Other => true,
    }
}

/// Watches `dir` until the host is dropped. Events are debounced so that a file written in
/// several steps is read once it is whole.
pub fn spawn(host: Arc<PolicyHost>, dir: PathBuf) -> anyhow::Result<()> {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<Event>| {
        if event.is_ok_and(|e| changes_files(&e)) {
            let _ = tx.send(());
        }
    })?;
    watcher.watch(&dir, RecursiveMode::NonRecursive)?;
    tokio::spawn(async move {
        let _watcher = watcher;
        while rx.recv().await.is_some() {
            tokio::time::sleep(Duration::from_millis(100)).await;
            while rx.try_recv().is_ok() {}
            reconcile(&host, &dir).await;
        }
    });
    Ok(())
}
