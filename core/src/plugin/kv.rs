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
use wasmtime::component::{HasSelf, Linker};

use super::PolicyHost;
use super::call::CallState;
use super::contract::v0_4::scope_world::portcullis::plugin::kv as wit;
use super::store::{Record, RecordRef, StoreError, Write};
use crate::limits::{MAX_PLUGIN_KV_KEY_BYTES, MAX_PLUGIN_KV_TTL_SECS, MAX_PLUGIN_KV_VALUE_BYTES};

/// The record kind of the plugins' key-value entries.
pub const KIND: &str = "plugin-kv";

/// Adds the interface (0.4.0's, which every `-kv` world of the version imports alike) to `linker`.
pub(super) fn add_to_linker(linker: &mut Linker<CallState>) -> wasmtime::Result<()> {
    wit::add_to_linker::<_, HasSelf<_>>(linker, |s| s)
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

impl wit::Host for CallState {
    fn get(&mut self, key: String) -> Result<Option<Vec<u8>>, wit::KvError> {
        self.cache()?.get(&key)
    }

    fn set(&mut self, key: String, value: Vec<u8>, ttl_seconds: u32) -> Result<(), wit::KvError> {
        self.cache()?.set(&key, value, ttl_seconds)
    }

    fn delete(&mut self, key: String) -> Result<(), wit::KvError> {
        self.cache()?.delete(&key)
    }
}
