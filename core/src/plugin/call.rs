//! The one path every plugin call takes, whatever the plugin's kind: a fresh `Store` with
//! the manifest's memory cap and deadline, the call, and the mapping of a trap, a deadline or
//! an exhausted memory to `PluginError::Trap`, logged once with the plugin's name. Metrics,
//! the count of faults in a row (`fault.rs`) and capability grants hang here.
//!
//! A storage plugin's instance serves several calls, one after another: a call that ends
//! well gives its `Store`, with the instance in it, back to the plugin's idle ones
//! (`limits::MAX_IDLE_STORAGE_INSTANCES`), with a fresh database session, and the next call
//! takes it instead of instantiating; one that traps, runs past its deadline or fails in the
//! host is dropped, and so is one past `limits::MAX_CALLS_PER_STORAGE_INSTANCE` calls. A
//! storage plugin reads and writes every record of every user, so no request's data is
//! hidden from it, and an instance kept between calls learns nothing it is not given
//! anyway. Policy, consent and grant-type plugins, which see one request's user and
//! client, get a fresh instance per call.
//!
//! A synchronous call (scope, consent, grant type) runs on one thread from start to end, so
//! its deadline counts the CPU time that thread spends: on a saturated machine the thread
//! waits for a CPU, which delays the call but is not the plugin's doing. An asynchronous
//! call (storage) moves between threads and waits on the database; its deadline is the
//! wall clock's.
//!
//! A synchronous call of a plugin that imports a capability (WASI, outbound HTTP, the
//! key-value cache: `wasi.rs`) waits on the host as a storage call does, so it runs off the
//! tokio worker thread (`wasi::off_worker`) and its deadline is the wall clock's: the epoch
//! interrupts the plugin's own code at the deadline, and an HTTP request it waits on is cut
//! off there too (`http.rs`). Its store is lent what it imports, built per call; a plugin
//! that imports nothing keeps the inline path, with nothing lent.

use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use wasmtime::component::Instance;
use wasmtime::{Store, StoreLimits, StoreLimitsBuilder, UpdateDeadline};

use super::database::{DatabaseGrant, DbSession};
use super::engine::{recent_thread_cpu_time, thread_cpu_time, ticks};
use super::{Plugin, PluginError, PluginKind, PolicyHost};
use crate::limits::{MAX_CALLS_PER_STORAGE_INSTANCE, MAX_IDLE_STORAGE_INSTANCES};

/// The data of one call's `Store`.
pub struct CallState {
    pub(super) plugin: Arc<str>,
    limits: StoreLimits,
    /// The database capability; only storage plugins have it.
    pub(super) db: DatabaseGrant,
    /// What a plugin importing capabilities beyond the contract is lent for this call.
    pub(super) lent: Option<Box<super::wasi::Lent>>,
    /// A storage plugin's instance in this store, once made: later calls reuse it.
    pub(super) instance: Option<Instance>,
    /// The calls this store has served.
    calls: u32,
}

/// A plugin's stores kept between calls, each with its instance (storage plugins only).
#[derive(Default)]
pub(super) struct Idle(Mutex<Vec<Store<CallState>>>);

impl PolicyHost {
    fn store(&self, plugin: &Plugin) -> Store<CallState> {
        let limits = StoreLimitsBuilder::new()
            .memory_size(usize::try_from(plugin.manifest.limits.memory_mb << 20).unwrap_or(usize::MAX))
            .instances(64)
            .tables(64)
            .memories(16)
            .trap_on_grow_failure(true)
            .build();
        let db =
            DatabaseGrant((plugin.manifest.kind == PluginKind::Storage).then(|| DbSession::new(self.database.clone())));
        let lent = plugin
            .needs
            .any()
            .then(|| Box::new(super::wasi::Lent::new(self, plugin, Instant::now() + deadline(plugin))));
        let state = CallState { plugin: plugin.name.clone(), limits, db, lent, instance: None, calls: 0 };
        let mut store = Store::new(&self.engine.engine, state);
        store.limiter(|s| &mut s.limits);
        store.set_epoch_deadline(ticks(deadline(plugin)));
        plugin.metrics.instances.increment(1);
        store
    }

    /// A storage plugin's store kept from an earlier call, its deadline set for this one, or
    /// a new store.
    fn reused_or_new(&self, plugin: &Plugin) -> Store<CallState> {
        match plugin.idle.0.lock().pop() {
            Some(mut store) => {
                store.set_epoch_deadline(ticks(deadline(plugin)));
                store
            }
            None => self.store(plugin),
        }
    }

    /// Keeps a storage plugin's store after a call that ended well, with a fresh database
    /// session (the call's own is closed here, its open transaction rolled back), unless
    /// enough are kept already or it has served its share of calls.
    fn keep(&self, plugin: &Plugin, mut store: Store<CallState>) {
        let state = store.data_mut();
        state.calls += 1;
        if plugin.manifest.kind != PluginKind::Storage
            || state.instance.is_none()
            || state.calls >= MAX_CALLS_PER_STORAGE_INSTANCE
        {
            return;
        }
        state.db = DatabaseGrant(Some(DbSession::new(self.database.clone())));
        let mut idle = plugin.idle.0.lock();
        if idle.len() < MAX_IDLE_STORAGE_INSTANCES {
            idle.push(store);
        }
    }

    /// A synchronous call (scope, consent and grant-type plugins): `f` instantiates and calls.
    pub(super) fn call<R: Send>(
        &self,
        plugin: &Plugin,
        f: impl FnOnce(&mut Store<CallState>) -> wasmtime::Result<R> + Send,
    ) -> Result<R, PluginError> {
        let mut store = self.store(plugin);
        let started = Instant::now();
        let result = if plugin.needs.any() {
            // Off the worker, on the wall clock; what it wrote to stdout and stderr logged.
            let result = super::wasi::off_worker(|| f(&mut store));
            if let Some(lent) = &store.data().lent {
                lent.flush(&plugin.name);
            }
            result
        } else {
            count_cpu_time(&mut store, deadline(plugin));
            f(&mut store)
        };
        record(plugin, ended(&result), started);
        super::fault::record(plugin, result.is_ok());
        result.map_err(|e| failed(plugin, e))
    }

    /// An asynchronous call (storage plugins, whose database import awaits).
    pub(super) async fn call_async<R>(
        &self,
        plugin: &Plugin,
        f: impl AsyncFnOnce(&mut Store<CallState>) -> wasmtime::Result<R>,
    ) -> Result<R, PluginError> {
        let mut store = self.reused_or_new(plugin);
        // The epoch interrupts the plugin's own code; a host call it awaits (a statement on a
        // connection that stopped answering) is bounded here, by the same deadline.
        let started = Instant::now();
        match tokio::time::timeout(deadline(plugin), f(&mut store)).await {
            Ok(done) => {
                record(plugin, ended(&done), started);
                super::fault::record(plugin, done.is_ok());
                if done.is_ok() {
                    self.keep(plugin, store);
                }
                done.map_err(|e| failed(plugin, e))
            }
            Err(_) => {
                record(plugin, Outcome::Deadline, started);
                super::fault::record(plugin, false);
                Err(PluginError::Unanswered {
                    plugin: plugin.name.to_string(),
                    deadline_ms: plugin.manifest.limits.deadline_ms,
                })
            }
        }
    }
}

fn deadline(plugin: &Plugin) -> Duration {
    Duration::from_millis(plugin.manifest.limits.deadline_ms)
}

/// Makes the store's deadline count the CPU time of this thread from now on: each time the
/// epoch reaches the deadline, the call goes on for what is left of `deadline` on the CPU.
fn count_cpu_time(store: &mut Store<CallState>, deadline: Duration) {
    let Some(started) = recent_thread_cpu_time() else { return };
    store.epoch_deadline_callback(move |_| {
        let used = thread_cpu_time().map_or(Duration::MAX, |now| now.saturating_sub(started));
        Ok(match deadline.checked_sub(used) {
            Some(left) if !left.is_zero() => UpdateDeadline::Continue(ticks(left)),
            _ => UpdateDeadline::Interrupt,
        })
    });
}

/// How a call ended, as its metrics label it: `ok` (whatever the plugin answered),
/// `deadline` (interrupted past its deadline) or `trap` (trapped, out of memory, failed).
#[derive(Clone, Copy)]
enum Outcome {
    Ok,
    Deadline,
    Trap,
}

fn ended<R>(result: &wasmtime::Result<R>) -> Outcome {
    match result {
        Ok(_) => Outcome::Ok,
        Err(e) if matches!(e.downcast_ref::<wasmtime::Trap>(), Some(wasmtime::Trap::Interrupt)) => Outcome::Deadline,
        Err(_) => Outcome::Trap,
    }
}

/// A plugin's call metrics (`portcullis_plugin_calls_total`,
/// `portcullis_plugin_call_duration_seconds`), labelled by its name (only the loaded set
/// gives one), its kind and how a call ended. The handles are taken once, when the plugin is
/// prepared, so that a call records without building and looking up a labelled key.
pub(super) struct CallMetrics {
    /// Instances made (`portcullis_plugin_instances_total`): one per call, but for a
    /// storage plugin's calls that reuse one.
    instances: metrics::Counter,
    duration: metrics::Histogram,
    ok: metrics::Counter,
    deadline: metrics::Counter,
    trap: metrics::Counter,
}

impl CallMetrics {
    pub(super) fn new(name: &Arc<str>, kind: PluginKind) -> Self {
        let kind = kind.as_str();
        let calls = |outcome: &'static str| metrics::counter!("portcullis_plugin_calls_total", "plugin" => name.clone(), "kind" => kind, "outcome" => outcome);
        Self {
            instances: metrics::counter!("portcullis_plugin_instances_total", "plugin" => name.clone(), "kind" => kind),
            duration: metrics::histogram!("portcullis_plugin_call_duration_seconds", "plugin" => name.clone(), "kind" => kind),
            ok: calls("ok"),
            deadline: calls("deadline"),
            trap: calls("trap"),
        }
    }
}

/// Counts and times a call.
fn record(plugin: &Plugin, outcome: Outcome, started: Instant) {
    let m = &plugin.metrics;
    m.duration.record(started.elapsed().as_secs_f64());
    match outcome {
        Outcome::Ok => &m.ok,
        Outcome::Deadline => &m.deadline,
        Outcome::Trap => &m.trap,
    }
    .increment(1);
}

fn failed(plugin: &Plugin, e: wasmtime::Error) -> PluginError {
    let message = match e.downcast_ref::<wasmtime::Trap>() {
        Some(wasmtime::Trap::Interrupt) => format!("ran past its {} ms deadline", plugin.manifest.limits.deadline_ms),
        Some(t) => format!("trapped: {t}"),
        None => format!("{e:#}"),
    };
    tracing::warn!(plugin = %plugin.name, %message, "plugin call failed");
    PluginError::Trap { plugin: plugin.name.to_string(), message }
}
