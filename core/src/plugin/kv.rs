//! The host side of `portcullis:plugin/kv`: a plugin's own key-value cache with expiry, lent
//! only with `kv = true` under its manifest's `[grants]`.
//!
//! Entries are records of the kind [`KIND`] kept by the storage plugin, so every replica sees
//! the same ones: the id is `<plugin>/<key>` (a plugin reaches its own keys only), the body the
//! value in base64, the expiry the time to live from now. An entry past its expiry is not
//! answered, whether or not it was purged yet. Keys, values and times to live are bounded
//! (`limits.rs`).

use std::sync::{Arc, Weak};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use wasmtime::StoreContextMut;
use wasmtime::component::Linker;

use super::call::CallState;
use super::contract::interface;
use super::contract::v0_5::scope_world::portcullis::plugin::kv as wit;
use super::store::{Record, RecordRef, StoreError, Write};
use super::{Contract, PolicyHost};
use crate::limits::{MAX_PLUGIN_KV_KEY_BYTES, MAX_PLUGIN_KV_TTL_SECS, MAX_PLUGIN_KV_VALUE_BYTES};

/// The record kind of the plugins' key-value entries.
pub const KIND: &str = "plugin-kv";

/// Lends the interface to the plugins of `contract` (the same in every version that has it,
/// and imported alike by every `-kv` world of a version), under the version's name.
pub(super) fn link(linker: &mut Linker<CallState>, contract: Contract) -> wasmtime::Result<()> {
    let mut kv = linker.instance(&interface("kv", contract))?;
    kv.func_wrap("get", |mut store: StoreContextMut<'_, CallState>, (key,): (String,)| {
        Ok((store.data_mut().cache().and_then(|c| c.get(&key)),))
    })?;
    kv.func_wrap(
        "set",
        |mut store: StoreContextMut<'_, CallState>, (key, value, ttl_seconds): (String, Vec<u8>, u32)| {
            Ok((store.data_mut().cache().and_then(|c| c.set(&key, value, ttl_seconds)),))
        },
    )?;
    kv.func_wrap("delete", |mut store: StoreContextMut<'_, CallState>, (key,): (String,)| {
        Ok((store.data_mut().cache().and_then(|c| c.delete(&key)),))
    })?;
    Ok(())
}

/// One call's cache: the plugin's keys in the host's storage.
pub(crate) struct Cache {
    host: Weak<PolicyHost>,
    plugin: Arc<str>,
}

impl Cache {
    pub(super) fn new(host: Weak<PolicyHost>, plugin: Arc<str>) -> Self {
        Self { host, plugin }
    }

    fn host(&self) -> Result<Arc<PolicyHost>, wit::KvError> {
        self.host.upgrade().ok_or_else(|| wit::KvError::Unavailable("the server is stopping".into()))
    }

    /// The record where `key` is kept.
    fn record(&self, key: &str) -> Result<RecordRef, wit::KvError> {
        if key.is_empty() || key.len() > MAX_PLUGIN_KV_KEY_BYTES {
            return Err(wit::KvError::InvalidKey(format!("a key has 1 to {MAX_PLUGIN_KV_KEY_BYTES} bytes")));
        }
        Ok(RecordRef { kind: KIND, id: format!("{}/{key}", self.plugin) })
    }

    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, wit::KvError> {
        let at = self.record(key)?;
        let host = self.host()?;
        let found = wait(host.store_get(std::slice::from_ref(&at)))?;
        let Some(Some(stored)) = found.into_iter().next() else { return Ok(None) };
        if stored.expires_at.is_some_and(|t| t <= now()) {
            return Ok(None);
        }
        BASE64
            .decode(stored.body)
            .map(Some)
            .map_err(|e| wit::KvError::Unavailable(format!("a stored entry does not read back: {e}")))
    }

    fn set(&self, key: &str, value: Vec<u8>, ttl_seconds: u32) -> Result<(), wit::KvError> {
        let at = self.record(key)?;
        if value.len() > MAX_PLUGIN_KV_VALUE_BYTES {
            return Err(wit::KvError::TooLarge(format!("a value has at most {MAX_PLUGIN_KV_VALUE_BYTES} bytes")));
        }
        if ttl_seconds == 0 || ttl_seconds > MAX_PLUGIN_KV_TTL_SECS {
            return Err(wit::KvError::InvalidTtl(format!("a time to live is 1 to {MAX_PLUGIN_KV_TTL_SECS} seconds")));
        }
        let record = Record {
            kind: KIND,
            id: at.id,
            body: BASE64.encode(value),
            keys: Vec::new(),
            expires_at: Some(now() + i64::from(ttl_seconds)),
        };
        let host = self.host()?;
        wait(host.store_apply(vec![Write::Put(record)]))
    }

    fn delete(&self, key: &str) -> Result<(), wit::KvError> {
        let at = self.record(key)?;
        let host = self.host()?;
        wait(host.store_apply(vec![Write::Delete(at)]))
    }
}

/// Waits for a storage call from inside a plugin's call, which runs off the tokio worker
/// (`wasi::off_worker`), where blocking on the runtime is allowed.
fn wait<T>(call: impl Future<Output = Result<T, StoreError>>) -> Result<T, wit::KvError> {
    wasmtime_wasi::runtime::in_tokio(call).map_err(|e| wit::KvError::Unavailable(e.to_string()))
}

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

impl CallState {
    fn cache(&mut self) -> Result<&Cache, wit::KvError> {
        self.lent().kv.as_ref().ok_or_else(|| wit::KvError::Unavailable("no key-value cache is lent".into()))
    }
}
