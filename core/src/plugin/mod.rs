//! The plugin host. Its parts, one job each:
//!
//! - [`engine`]: the one wasmtime `Engine` (pooling allocator, epoch ticker) and the on-disk
//!   cache of compiled plugins;
//! - this module: the loaded set, a pre-linked `InstancePre` per plugin, swapped as one `Arc`;
//!   [`watch`] keeps it in line with the policies directory (hot reload);
//! - [`call`]: the one call path, a fresh `Store` per call with an epoch deadline and a memory cap;
//! - [`fault`]: a plugin that keeps faulting (the manifest's `[on-fault]`): unhealthy after
//!   so many faults in a row, and the fallback that answers a call it faulted on;
//! - the host capabilities: [`log`] and [`database`]; and what a plugin may import beyond
//!   the contract, lent by `wasi` (WASI granting nothing, and, with the manifest's grants,
//!   outbound HTTP (`http`) and the key-value cache (`kv`));
//! - the plugin kinds as the rest of the server sees them, in its own types: [`scope`],
//!   [`consent`], [`store`] and [`grant`]. Nothing outside this module names a wasmtime or generated
//!   binding type;
//! - [`contract`]: the contract's versions, a file per version and kind whose interface it
//!   changed: the current version's glue (its generated bindings, the server's types turned
//!   into its records and back), and an earlier version's adapter from the current records
//!   to its own. A version that left a kind's interface as it was is called through the
//!   later version's glue under its own name.
//!
//! Plugins come from the policies directory (`<name>.wasm` + `<name>.toml`). A plugin that
//! fails to compile, link or validate is refused with a log line and whatever version was
//! loaded before keeps serving.

pub mod builtin;
pub mod call;
pub mod check;
pub mod consent;
mod contract;
pub mod database;
pub mod engine;
mod fault;
pub mod grant;
mod http;
mod kv;
mod log;
pub mod manifest;
mod pg_pool;
pub mod scope;
mod shadow;
pub mod store;
mod wasi;
pub mod watch;
mod writer;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Weak};

use parking_lot::RwLock;
use sha2::{Digest, Sha256};
use wasmtime::component::{Component, Linker};

use self::call::CallState;
use self::contract::{ConsentWorld, GrantWorld, ScopeWorld, StorageWorld};
use self::database::Database;
use self::engine::PluginEngine;
pub use self::fault::Unhealthy;
pub use self::manifest::{Contract, Manifest, OnFault, PluginKind};

#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    #[error("no {kind} plugin named `{name}` is loaded")]
    NotLoaded { kind: PluginKind, name: String },
    #[error("plugin `{plugin}` failed: {message}")]
    Trap { plugin: String, message: String },
    /// An asynchronous call that waited past its deadline on what the host does for it (the
    /// database): the plugin is not at fault, what it waits for is unavailable.
    #[error("plugin `{plugin}` waited past its {deadline_ms} ms deadline on the host")]
    Unanswered { plugin: String, deadline_ms: u64 },
}

/// A plugin pre-linked against its world, of its contract version, with the glue that calls
/// it in the server's types.
enum Linked {
    Scope(Box<dyn ScopeWorld>),
    Consent(Box<dyn ConsentWorld>),
    Storage(Box<dyn StorageWorld>),
    Grant(Box<dyn GrantWorld>),
}

pub struct Plugin {
    pub manifest: Manifest,
    /// SHA-256 of the `.wasm`, so an unchanged file is not reloaded.
    pub digest: [u8; 32],
    name: Arc<str>,
    linked: Linked,
    /// A consent UI's locales, asked once at load rather than on every page.
    locales: Vec<String>,
    /// The extension grant types a grant-type plugin answers, asked once at load.
    grant_types: Vec<String>,
    /// Its calls' metrics.
    metrics: call::CallMetrics,
    /// Its faults in a row, and whether they made it unhealthy.
    faults: fault::Faults,
    /// As a shadow scope policy: when it last logged a difference.
    shadow_log: shadow::Sampler,
    /// What it imports beyond the contract (WASI, outbound HTTP, the key-value cache).
    needs: wasi::Needs,
    /// Its stores kept between calls, each with its instance (storage plugins).
    idle: call::Idle,
}

/// The names of the plugins used when a client names none.
#[derive(Clone, Debug)]
pub struct Defaults {
    pub storage: String,
    pub scope: String,
    pub consent: String,
}

/// The linkers of each contract version: one with what every world imports, and one for the
/// storage world, which imports the database too.
struct Linkers {
    versions: Vec<(Contract, Linker<CallState>, Linker<CallState>)>,
}

impl Linkers {
    fn new(engine: &wasmtime::Engine) -> anyhow::Result<Self> {
        let mut versions = Vec::new();
        for contract in Contract::ALL {
            let mut linker = Linker::new(engine);
            log::link(&mut linker, contract)?;
            let mut storage = linker.clone();
            database::link(&mut storage, contract)?;
            versions.push((contract, linker, storage));
        }
        Ok(Self { versions })
    }

    /// Links a compiled component against the world of `kind` in `contract`, with what it
    /// `needs` beyond the world's imports (`wasi::lend`).
    fn link(
        &self,
        component: &Component,
        kind: PluginKind,
        contract: Contract,
        needs: wasi::Needs,
    ) -> Result<Linked, String> {
        let adapt = contract::adapter(kind, contract)?;
        let Some((_, linker, storage)) = self.versions.iter().find(|(c, ..)| *c == contract) else {
            return Err(format!("no linker for portcullis:plugin@{}", contract.version()));
        };
        let linker = if kind == PluginKind::Storage { storage } else { linker };
        let linker = wasi::lend(linker, needs, contract)?;
        adapt(linker.instantiate_pre(component).map_err(linking)?, contract).map_err(linking)
    }
}

pub struct PolicyHost {
    engine: PluginEngine,
    /// What plugins that import capabilities are lent from the host.
    lending: wasi::Lending,
    linkers: Linkers,
    plugins: RwLock<Arc<HashMap<String, Arc<Plugin>>>>,
    database: Database,
    pub defaults: Defaults,
    /// What hot reload remembers and counts.
    reloads: watch::Reloads,
    /// The storage calls' metrics.
    storage_metrics: store::StorageMetrics,
}

impl PolicyHost {
    pub fn new(database: Database, defaults: Defaults, cache_dir: Option<PathBuf>) -> anyhow::Result<Arc<Self>> {
        let engine = PluginEngine::new(cache_dir)?;
        let linkers = Linkers::new(&engine.engine)?;
        let plugins = RwLock::new(Arc::new(HashMap::new()));
        Ok(Arc::new_cyclic(|me: &Weak<Self>| Self {
            lending: wasi::Lending::new(me.clone()),
            engine,
            linkers,
            plugins,
            database,
            defaults,
            reloads: watch::Reloads::default(),
            storage_metrics: store::StorageMetrics::new(),
        }))
    }

    /// How often the policies directory was reconciled and plugins compiled.
    pub fn reloads(&self) -> watch::ReloadCounts {
        self.reloads.counts()
    }

    pub fn database(&self) -> &Database {
        &self.database
    }

    /// The plugins loaded now, by name.
    pub fn loaded(&self) -> Arc<HashMap<String, Arc<Plugin>>> {
        self.plugins.read().clone()
    }

    /// Whether a plugin of `kind` named `name` is loaded now.
    pub fn is_loaded(&self, kind: PluginKind, name: &str) -> bool {
        self.plugins.read().get(name).is_some_and(|p| p.manifest.kind == kind)
    }

    fn get(&self, kind: PluginKind, name: &str) -> Result<Arc<Plugin>, PluginError> {
        match self.plugins.read().get(name) {
            Some(p) if p.manifest.kind == kind => Ok(p.clone()),
            _ => Err(PluginError::NotLoaded { kind, name: name.to_owned() }),
        }
    }

    /// Compiles, links and validates a plugin; nothing is swapped in yet.
    pub fn prepare(&self, manifest_text: &str, stem: &str, wasm: &[u8]) -> Result<Plugin, String> {
        let manifest = Manifest::parse(manifest_text, stem)?;
        let digest: [u8; 32] = Sha256::digest(wasm).into();
        let component = self.engine.compile(wasm, &digest)?;
        wasi::check_grants(&component, &self.engine.engine, manifest.kind, &manifest.grants)?;
        let needs = wasi::Needs::of(&component, &self.engine.engine);
        let linked = self.linkers.link(&component, manifest.kind, manifest.contract, needs)?;
        let name: Arc<str> = Arc::from(manifest.name.as_str());
        let mut plugin = Plugin {
            metrics: call::CallMetrics::new(&name, manifest.kind),
            faults: fault::Faults::new(&name),
            shadow_log: shadow::Sampler::default(),
            needs,
            name,
            manifest,
            digest,
            linked,
            locales: Vec::new(),
            grant_types: Vec::new(),
            idle: call::Idle::default(),
        };
        plugin.locales = match &plugin.linked {
            Linked::Consent(ui) => {
                self.call(&plugin, |store| ui.locales(store)).map_err(|e| format!("locales() failed: {e}"))?
            }
            _ => Vec::new(),
        };
        if let Linked::Grant(grant) = &plugin.linked {
            let types = self
                .call(&plugin, |store| grant.grant_types(store))
                .map_err(|e| format!("grant-types() failed: {e}"))?;
            plugin.grant_types = grant::checked_grant_types(types)?;
        }
        Ok(plugin)
    }

    /// Swaps a prepared plugin in. The configured storage plugin migrates its schema first
    /// (and is refused if that fails); another storage plugin is loaded but never touches
    /// the database.
    pub async fn install(&self, plugin: Plugin) -> Result<(), String> {
        if plugin.manifest.name == self.defaults.storage {
            let deadline = std::time::Duration::from_millis(plugin.manifest.limits.deadline_ms);
            if let Some(wait) = self.database.acquire_timeout()
                && wait >= deadline
            {
                tracing::warn!(
                    plugin = %plugin.name,
                    "database.acquire_timeout_ms ({} ms) is not below the storage plugin's deadline ({} ms): \
                     while the database is unreachable, requests wait the whole deadline before their 503",
                    wait.as_millis(),
                    deadline.as_millis()
                );
            }
            if let Linked::Storage(storage) = &plugin.linked {
                self.call_async(&plugin, async |store| storage.migrate(store).await)
                    .await
                    .map_err(|e| format!("migration: {e}"))?
                    .map_err(|e| format!("migration failed: {e}"))?;
            }
        }
        let mut plugins = self.plugins.write();
        if let Some((other, grant_type)) = grant::claimed_elsewhere(&plugins, &plugin) {
            return Err(format!("grant type `{grant_type}` is already answered by the plugin `{other}`"));
        }
        fault::check_fallback(&plugins, &plugin)?;
        plugin.faults.installed();
        let mut next = HashMap::clone(&plugins);
        next.insert(plugin.manifest.name.clone(), Arc::new(plugin));
        *plugins = Arc::new(next);
        Ok(())
    }

    /// Removes a plugin, unless it is one of the configured defaults (the server cannot run
    /// without them, so the last good version stays).
    pub fn remove(&self, name: &str) -> bool {
        if [&self.defaults.storage, &self.defaults.scope, &self.defaults.consent].iter().any(|d| d.as_str() == name) {
            tracing::warn!(plugin = name, "a default plugin's file was removed; the loaded version keeps serving");
            return false;
        }
        let mut plugins = self.plugins.write();
        if !plugins.contains_key(name) {
            return false;
        }
        let mut next = HashMap::clone(&plugins);
        next.remove(name);
        *plugins = Arc::new(next);
        true
    }

    /// Loads the built-in policies compiled into the binary.
    pub async fn load_builtin(&self) -> anyhow::Result<()> {
        for b in builtin::BUILTIN {
            let plugin = self
                .prepare(b.manifest, b.name, b.wasm)
                .map_err(|e| anyhow::anyhow!("built-in plugin {}: {e}", b.name))?;
            self.install(plugin).await.map_err(|e| anyhow::anyhow!("built-in plugin {}: {e}", b.name))?;
            watch::reloaded(b.name, "loaded");
        }
        Ok(())
    }
}

fn linking(e: wasmtime::Error) -> String {
    format!("does not link: {e:#}")
}
