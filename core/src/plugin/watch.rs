//! Hot reload: the policies directory is watched (notify) and reconciled with what is loaded.
//! Compilation happens off the request path; the swap is one pointer write, so requests in
//! flight finish on the version they started with.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::{RecursiveMode, Watcher};

use super::PolicyHost;

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

/// Brings the loaded set in line with the directory: new and changed files are compiled and
/// swapped in, removed ones dropped.
pub async fn reconcile(host: &Arc<PolicyHost>, dir: &Path) {
    let dir2 = dir.to_path_buf();
    let files = match tokio::task::spawn_blocking(move || super::read_dir(&dir2)).await {
        Ok(Ok(files)) => files,
        Ok(Err(e)) => {
            tracing::error!(dir = %dir.display(), error = %e, "cannot read the policies directory");
            return;
        }
        Err(e) => {
            tracing::error!(error = %e, "policy reload task failed");
            return;
        }
    };
    let loaded = host.loaded();
    let mut present = HashSet::new();
    for (stem, manifest, wasm) in files {
        present.insert(stem.clone());
        let digest: [u8; 32] = {
            use sha2::Digest;
            sha2::Sha256::digest(&wasm).into()
        };
        if loaded.get(&stem).is_some_and(|p| p.digest == digest && manifest_unchanged(p, &manifest)) {
            continue;
        }
        let h = host.clone();
        let stem2 = stem.clone();
        let prepared = tokio::task::spawn_blocking(move || h.prepare(&manifest, &stem2, &wasm)).await;
        let result = match prepared {
            Ok(Ok(plugin)) => {
                let kind = plugin.manifest.kind;
                host.install(plugin).await.map(|_| kind)
            }
            Ok(Err(e)) => Err(e),
            Err(e) => Err(format!("compilation task failed: {e}")),
        };
        match result {
            Ok(kind) => tracing::info!(plugin = %stem, %kind, "plugin loaded"),
            Err(reason) => {
                tracing::error!(plugin = %stem, %reason, "plugin refused; the previous version (if any) keeps serving")
            }
        }
    }
    for name in loaded.keys() {
        if !present.contains(name) && host.remove(name) {
            tracing::info!(plugin = %name, "plugin unloaded");
        }
    }
}

fn manifest_unchanged(plugin: &super::Plugin, text: &str) -> bool {
    super::Manifest::parse(text, &plugin.manifest.name)
        .map(|m| format!("{m:?}") == format!("{:?}", plugin.manifest))
        .unwrap_or(false)
}

/// Watches `dir` until the host is dropped. Events are debounced so that a file written in
/// several steps is read once it is whole.
pub fn spawn(host: Arc<PolicyHost>, dir: PathBuf) -> anyhow::Result<()> {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if event.is_ok() {
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
