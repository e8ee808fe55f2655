//! The plugin host: one wasmtime `Engine`, a pre-linked `InstancePre` per loaded plugin, and a
//! fresh `Store` per call with an epoch deadline and a memory cap.
//!
//! Plugins come from the policies directory (`<name>.wasm` + `<name>.toml`) and are swapped
//! in atomically when the directory changes ([`watch`]). A plugin that fails to compile, link
//! or validate is refused with a log line and whatever version was loaded before keeps serving.

pub mod bindings;
pub mod builtin;
pub mod database;
pub mod manifest;
pub mod watch;

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;
use sha2::{Digest, Sha256};
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{
    Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store, StoreLimits, StoreLimitsBuilder,
};

use self::bindings::{consent_world, scope_world, storage_world};
use self::database::{Database, DbSession};
pub use self::manifest::{Manifest, PluginKind};

/// How often the epoch advances; deadlines are counted in these ticks.
const EPOCH_TICK: Duration = Duration::from_millis(5);

#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    #[error("no {kind} plugin named `{name}` is loaded")]
    NotLoaded { kind: PluginKind, name: String },
    #[error("plugin `{plugin}` failed: {message}")]
    Trap { plugin: String, message: String },
    #[error("plugin `{plugin}`: {message}")]
    Refused { plugin: String, message: String },
}

/// The data of one call's `Store`.
pub struct CallState {
    plugin: Arc<str>,
    limits: StoreLimits,
    db: Option<DbSession>,
}

enum Loaded {
    Scope(Box<scope_world::ScopePolicyPluginPre<CallState>>),
    Consent(Box<consent_world::ConsentUiPluginPre<CallState>>),
    Storage(Box<storage_world::StoragePluginPre<CallState>>),
}

pub struct Plugin {
    pub manifest: Manifest,
    /// SHA-256 of the `.wasm`, so an unchanged file is not reloaded.
    pub digest: [u8; 32],
    name: Arc<str>,
    loaded: Loaded,
    /// A consent UI's locales, asked once at load rather than on every page.
    locales: Vec<String>,
}

/// The names of the plugins used when a client names none.
#[derive(Clone, Debug)]
pub struct Defaults {
    pub storage: String,
    pub scope: String,
    pub consent: String,
}

pub struct PolicyHost {
    engine: Engine,
    scope_linker: Linker<CallState>,
    consent_linker: Linker<CallState>,
    storage_linker: Linker<CallState>,
    plugins: RwLock<Arc<HashMap<String, Arc<Plugin>>>>,
    database: Database,
    cache_dir: Option<PathBuf>,
    pub defaults: Defaults,
}

impl PolicyHost {
    pub fn new(database: Database, defaults: Defaults, cache_dir: Option<PathBuf>) -> anyhow::Result<Arc<Self>> {
        let engine = Engine::new(&engine_config())?;
        let mut scope_linker = Linker::new(&engine);
        scope_world::ScopePolicyPlugin::add_to_linker::<_, HasSelf<_>>(&mut scope_linker, |s| s)?;
        let mut consent_linker = Linker::new(&engine);
        consent_world::ConsentUiPlugin::add_to_linker::<_, HasSelf<_>>(&mut consent_linker, |s| s)?;
        let mut storage_linker = Linker::new(&engine);
        storage_world::StoragePlugin::add_to_linker::<_, HasSelf<_>>(&mut storage_linker, |s| s)?;

        let ticker = engine.weak();
        std::thread::Builder::new().name("plugin-epoch".into()).spawn(move || {
            while let Some(engine) = ticker.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(EPOCH_TICK);
            }
        })?;

        if let Some(dir) = &cache_dir {
            std::fs::create_dir_all(dir)?;
        }
        Ok(Arc::new(Self {
            engine,
            scope_linker,
            consent_linker,
            storage_linker,
            plugins: RwLock::new(Arc::new(HashMap::new())),
            database,
            cache_dir,
            defaults,
        }))
    }

    pub fn database(&self) -> &Database {
        &self.database
    }

    /// The plugins loaded now, by name.
    pub fn loaded(&self) -> Arc<HashMap<String, Arc<Plugin>>> {
        self.plugins.read().clone()
    }

    fn get(&self, kind: PluginKind, name: &str) -> Result<Arc<Plugin>, PluginError> {
        match self.plugins.read().get(name) {
            Some(p) if p.manifest.kind == kind => Ok(p.clone()),
            _ => Err(not_loaded(kind, name)),
        }
    }

    /// Compiles, links and validates a plugin; nothing is swapped in yet.
    pub fn prepare(&self, manifest_text: &str, stem: &str, wasm: &[u8]) -> Result<Plugin, String> {
        let manifest = Manifest::parse(manifest_text, stem)?;
        let digest: [u8; 32] = Sha256::digest(wasm).into();
        let component = self.compile(wasm, &digest)?;
        let loaded = match manifest.kind {
            PluginKind::ScopePolicy => {
                let pre = self.scope_linker.instantiate_pre(&component).map_err(|e| format!("{e:#}"))?;
                Loaded::Scope(Box::new(scope_world::ScopePolicyPluginPre::new(pre).map_err(|e| format!("{e:#}"))?))
            }
            PluginKind::ConsentUi => {
                let pre = self.consent_linker.instantiate_pre(&component).map_err(|e| format!("{e:#}"))?;
                Loaded::Consent(Box::new(consent_world::ConsentUiPluginPre::new(pre).map_err(|e| format!("{e:#}"))?))
            }
            PluginKind::Storage => {
                let pre = self.storage_linker.instantiate_pre(&component).map_err(|e| format!("{e:#}"))?;
                Loaded::Storage(Box::new(storage_world::StoragePluginPre::new(pre).map_err(|e| format!("{e:#}"))?))
            }
        };
        let mut plugin =
            Plugin { name: Arc::from(manifest.name.as_str()), manifest, digest, loaded, locales: Vec::new() };
        if let Loaded::Consent(pre) = &plugin.loaded {
            let mut store = self.store(&plugin, false);
            let instance = pre.instantiate(&mut store).map_err(|e| format!("{e:#}"))?;
            plugin.locales = instance
                .portcullis_plugin_consent()
                .call_locales(&mut store)
                .map_err(|e| format!("locales() failed: {e:#}"))?;
        }
        Ok(plugin)
    }

    /// The locales the consent UI `name` renders, most preferred first.
    pub fn consent_locales(&self, name: &str) -> Vec<String> {
        self.get(PluginKind::ConsentUi, name).map(|p| p.locales.clone()).unwrap_or_default()
    }

    /// Compiled code is cached on disk by content hash, so a restart does not recompile.
    fn compile(&self, wasm: &[u8], digest: &[u8; 32]) -> Result<Component, String> {
        let mut compat = std::hash::DefaultHasher::new();
        self.engine.precompile_compatibility_hash().hash(&mut compat);
        let key = format!("{}-{:016x}.cwasm", hex(digest), compat.finish());
        let cached = self.cache_dir.as_ref().map(|d| d.join(key));
        if let Some(path) = &cached
            && path.exists()
        {
            // SAFETY: the file was written by `Component::serialize` of this same engine
            // configuration (the key includes its compatibility hash) into our own data dir.
            match unsafe { Component::deserialize_file(&self.engine, path) } {
                Ok(c) => return Ok(c),
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "ignoring unusable compiled-plugin cache entry")
                }
            }
        }
        let component = Component::new(&self.engine, wasm).map_err(|e| format!("does not compile: {e:#}"))?;
        if let Some(path) = &cached {
            let written = component.serialize().map_err(|e| e.to_string()).and_then(|bytes| {
                let tmp = path.with_extension(format!("tmp{}", std::process::id()));
                std::fs::write(&tmp, bytes).and_then(|_| std::fs::rename(&tmp, path)).map_err(|e| e.to_string())
            });
            if let Err(e) = written {
                tracing::warn!(path = %path.display(), error = %e, "could not cache compiled plugin");
            }
        }
        Ok(component)
    }

    /// Swaps a prepared plugin in. A storage plugin migrates its schema first; if that fails
    /// the plugin is refused.
    pub async fn install(&self, plugin: Plugin) -> Result<(), String> {
        if let Loaded::Storage(pre) = &plugin.loaded {
            let mut store = self.store(&plugin, true);
            let instance = pre.instantiate_async(&mut store).await.map_err(|e| format!("{e:#}"))?;
            instance
                .portcullis_plugin_storage()
                .call_migrate(&mut store)
                .await
                .map_err(|e| format!("migration trapped: {e:#}"))?
                .map_err(|e| format!("migration failed: {e:?}"))?;
        }
        let mut plugins = self.plugins.write();
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
        }
        Ok(())
    }

    fn store(&self, plugin: &Plugin, with_db: bool) -> Store<CallState> {
        let limits = StoreLimitsBuilder::new()
            .memory_size(usize::try_from(plugin.manifest.limits.memory_mb << 20).unwrap_or(usize::MAX))
            .instances(64)
            .tables(64)
            .memories(16)
            .trap_on_grow_failure(true)
            .build();
        let state = CallState {
            plugin: plugin.name.clone(),
            limits,
            db: with_db.then(|| DbSession::new(self.database.clone())),
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limits);
        let ticks = plugin.manifest.limits.deadline_ms.div_ceil(EPOCH_TICK.as_millis() as u64).max(1);
        store.set_epoch_deadline(ticks);
        store
    }

    /// Runs the scope policy `name` on one request.
    pub fn resolve_scope(
        &self,
        name: &str,
        request: &scope_world::exports::portcullis::plugin::scope::ScopeRequest,
    ) -> Result<
        Result<
            scope_world::exports::portcullis::plugin::scope::Grant,
            scope_world::exports::portcullis::plugin::scope::Denial,
        >,
        PluginError,
    > {
        let plugin = self.get(PluginKind::ScopePolicy, name)?;
        let Loaded::Scope(pre) = &plugin.loaded else { return Err(not_loaded(PluginKind::ScopePolicy, name)) };
        let mut store = self.store(&plugin, false);
        let trap = |e: wasmtime::Error| trap(&plugin, e);
        let instance = pre.instantiate(&mut store).map_err(trap)?;
        instance.portcullis_plugin_scope().call_resolve(&mut store, request).map_err(trap)
    }

    /// Calls the consent UI plugin `name`.
    pub fn consent<R>(
        &self,
        name: &str,
        call: impl FnOnce(
            &consent_world::exports::portcullis::plugin::consent::Guest,
            &mut Store<CallState>,
        ) -> wasmtime::Result<R>,
    ) -> Result<R, PluginError> {
        let plugin = self.get(PluginKind::ConsentUi, name)?;
        let Loaded::Consent(pre) = &plugin.loaded else { return Err(not_loaded(PluginKind::ConsentUi, name)) };
        let mut store = self.store(&plugin, false);
        let instance = pre.instantiate(&mut store).map_err(|e| trap(&plugin, e))?;
        call(instance.portcullis_plugin_consent(), &mut store).map_err(|e| trap(&plugin, e))
    }

    /// A fresh instance of the active storage plugin, for one operation.
    pub async fn storage(&self) -> Result<StorageCall, PluginError> {
        let plugin = self.get(PluginKind::Storage, &self.defaults.storage)?;
        let Loaded::Storage(pre) = &plugin.loaded else {
            return Err(not_loaded(PluginKind::Storage, &self.defaults.storage));
        };
        let mut store = self.store(&plugin, true);
        let instance = pre.instantiate_async(&mut store).await.map_err(|e| trap(&plugin, e))?;
        Ok(StorageCall { store, instance, plugin })
    }
}

/// One storage operation: a fresh instance and its store.
pub struct StorageCall {
    pub store: Store<CallState>,
    pub instance: storage_world::StoragePlugin,
    plugin: Arc<Plugin>,
}

impl StorageCall {
    pub fn trap(&self, e: wasmtime::Error) -> PluginError {
        trap(&self.plugin, e)
    }
}

fn not_loaded(kind: PluginKind, name: &str) -> PluginError {
    PluginError::NotLoaded { kind, name: name.to_owned() }
}

fn trap(plugin: &Plugin, e: wasmtime::Error) -> PluginError {
    let message = match e.downcast_ref::<wasmtime::Trap>() {
        Some(wasmtime::Trap::Interrupt) => format!("ran past its {} ms deadline", plugin.manifest.limits.deadline_ms),
        Some(t) => format!("trapped: {t}"),
        None => format!("{e:#}"),
    };
    tracing::warn!(plugin = %plugin.name, %message, "plugin call failed");
    PluginError::Trap { plugin: plugin.name.to_string(), message }
}

fn engine_config() -> Config {
    let mut config = Config::new();
    config.wasm_component_model(true);
    config.epoch_interruption(true);
    config.max_wasm_stack(512 << 10);
    config.async_stack_size(1 << 20);
    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(500);
    pool.total_core_instances(1000);
    pool.total_memories(1000);
    pool.total_tables(1000);
    pool.max_memory_size(manifest::MAX_MEMORY_MB as usize * (1 << 20));
    pool.max_component_instance_size(1 << 20);
    pool.max_core_instance_size(1 << 20);
    pool.max_memories_per_component(16);
    pool.max_tables_per_component(16);
    pool.total_stacks(500);
    // The first pages of a reused slot are cleared with memset rather than handed back to the
    // kernel, so a fresh instance does not fault them in again.
    pool.linear_memory_keep_resident(128 << 10);
    pool.table_keep_resident(16 << 10);
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    config
}

pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// One `log` implementation serves every world: the consent and storage bindings reuse the
/// scope world's `log` interface.
impl scope_world::portcullis::plugin::log::Host for CallState {
    fn log(&mut self, level: scope_world::portcullis::plugin::log::Level, message: String) {
        use scope_world::portcullis::plugin::log::Level;
        let level = match level {
            Level::Debug => 0,
            Level::Info => 1,
            Level::Warn => 2,
            Level::Error => 3,
        };
        guest_log(&self.plugin, level, &message);
    }
}

fn guest_log(plugin: &str, level: u8, message: &str) {
    // A plugin's message is its own text: cap it so one plugin cannot flood the log.
    let message: String = message.chars().take(2000).collect();
    match level {
        0 => tracing::debug!(target: "plugin", plugin, "{message}"),
        1 => tracing::info!(target: "plugin", plugin, "{message}"),
        2 => tracing::warn!(target: "plugin", plugin, "{message}"),
        _ => tracing::error!(target: "plugin", plugin, "{message}"),
    }
}

mod db_host {
    use super::CallState;
    use super::bindings::storage_world::portcullis::plugin::database::{DbError, Dialect, Host, Rows, Value};

    fn session(state: &mut CallState) -> Result<&mut super::DbSession, DbError> {
        state.db.as_mut().ok_or_else(|| DbError::Unavailable("no database in this call".into()))
    }

    impl Host for CallState {
        async fn get_dialect(&mut self) -> Dialect {
            self.db.as_ref().map(|d| d.dialect()).unwrap_or(Dialect::Sqlite)
        }
        async fn query(&mut self, sql: String, params: Vec<Value>) -> Result<Rows, DbError> {
            session(self)?.query(&sql, &params).await
        }
        async fn execute(&mut self, sql: String, params: Vec<Value>) -> Result<u64, DbError> {
            session(self)?.execute(&sql, &params).await
        }
        async fn batch(&mut self, sql: String) -> Result<(), DbError> {
            session(self)?.batch(&sql).await
        }
        async fn begin(&mut self) -> Result<(), DbError> {
            session(self)?.begin().await
        }
        async fn commit(&mut self) -> Result<(), DbError> {
            session(self)?.commit().await
        }
        async fn rollback(&mut self) -> Result<(), DbError> {
            session(self)?.rollback().await
        }
    }
}

/// Reads every `<name>.toml` + `<name>.wasm` pair in `dir`.
pub fn read_dir(dir: &Path) -> std::io::Result<Vec<(String, String, Vec<u8>)>> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().and_then(|e| e.to_str()) != Some("toml") {
            continue;
        }
        let Some(stem) = path.file_stem().and_then(|s| s.to_str()).map(str::to_owned) else { continue };
        let wasm_path = path.with_extension("wasm");
        match (std::fs::read_to_string(&path), std::fs::read(&wasm_path)) {
            (Ok(manifest), Ok(wasm)) => found.push((stem, manifest, wasm)),
            (Err(e), _) | (_, Err(e)) => {
                tracing::error!(plugin = %stem, error = %e, "plugin refused: its manifest or .wasm cannot be read")
            }
        }
    }
    found.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(found)
}
