//! The storage plugin as the rest of the server sees it: generic records of a kind, in plain
//! Rust types (each version's records: `contract/`). Each function here is one call of the
//! storage plugin, on a fresh instance.

use std::sync::Arc;

use wasmtime::Store;

use super::call::CallState;
use super::contract::{Pending, StorageWorld};
use super::{Linked, PluginError, PluginKind, PolicyHost};

/// Where a record is: its kind and its id within the kind.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RecordRef {
    pub kind: &'static str,
    pub id: String,
}

/// The records of `kind` whose key `name` has `value`.
#[derive(Debug, Clone)]
pub struct KeyRef {
    pub kind: &'static str,
    pub name: &'static str,
    pub value: String,
}

/// A record as the host writes it.
#[derive(Debug, Clone)]
pub struct Record {
    pub kind: &'static str,
    pub id: String,
    pub body: String,
    pub keys: Vec<(&'static str, String)>,
    pub expires_at: Option<i64>,
}

/// A record as the storage plugin returns it.
#[derive(Debug, Clone)]
pub struct Stored {
    pub kind: String,
    pub id: String,
    pub body: String,
    pub expires_at: Option<i64>,
    pub revision: u64,
    pub consumed: bool,
}

/// One write of an atomic group; see `interface storage` in the WIT for each precondition.
#[derive(Debug, Clone)]
pub enum Write {
    Create(Record),
    Put(Record),
    Update(Record, u64),
    Consume(RecordRef),
    Delete(RecordRef),
    DeleteByKey(KeyRef),
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The precondition of the write at this index failed; nothing was written.
    #[error("the precondition of write {0} of the group did not hold")]
    Precondition(usize),
    #[error("storage backend: {0}")]
    Backend(String),
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    #[error(transparent)]
    Plugin(PluginError),
}

/// A storage call that waited past its deadline for the database finds it unavailable.
impl From<PluginError> for StoreError {
    fn from(e: PluginError) -> Self {
        match e {
            PluginError::Unanswered { .. } => StoreError::Unavailable(e.to_string()),
            e => StoreError::Plugin(e),
        }
    }
}

/// The storage plugin's operations, as the storage metrics label them.
const OPERATIONS: [&str; 5] = ["get", "find", "list", "apply", "purge_expired"];

/// How a storage call ended: `ok`, `precondition` (a write group refused by its
/// precondition, nothing written), `unavailable` (the database) or `error`.
const OUTCOMES: [&str; 4] = ["ok", "precondition", "unavailable", "error"];

/// The storage calls' metrics (`portcullis_storage_calls_total`,
/// `portcullis_storage_call_duration_seconds`) by operation and outcome: every handle taken
/// once, when the host is made, so that a call records without building and looking up a
/// labelled key.
pub(super) struct StorageMetrics {
    /// By operation, in the order of [`OPERATIONS`]: its duration, and its count by outcome.
    operations: [(metrics::Histogram, [metrics::Counter; 4]); 5],
}

impl StorageMetrics {
    pub(super) fn new() -> Self {
        Self {
            operations: OPERATIONS.map(|operation| {
                (
                    metrics::histogram!("portcullis_storage_call_duration_seconds", "operation" => operation),
                    OUTCOMES.map(|outcome| {
                        metrics::counter!("portcullis_storage_calls_total", "operation" => operation, "outcome" => outcome)
                    }),
                )
            }),
        }
    }

    /// Counts and times a call of the storage plugin's `operation` (one of [`OPERATIONS`]).
    fn record<T>(&self, operation: &str, result: &Result<T, StoreError>, started: std::time::Instant) {
        let Some(index) = OPERATIONS.iter().position(|o| *o == operation) else { return };
        let outcome = match result {
            Ok(_) => 0,
            Err(StoreError::Precondition(_)) => 1,
            Err(StoreError::Unavailable(_)) => 2,
            Err(StoreError::Backend(_) | StoreError::Plugin(_)) => 3,
        };
        let (duration, outcomes) = &self.operations[index];
        duration.record(started.elapsed().as_secs_f64());
        outcomes[outcome].increment(1);
    }
}

impl PolicyHost {
    /// One call of the configured storage plugin, of whichever contract version it was built
    /// for: `operation` (one of [`OPERATIONS`]), which `call` makes, counted and timed by its
    /// outcome ([`StorageMetrics`]).
    async fn storage<T>(
        &self,
        operation: &str,
        call: impl for<'a> FnOnce(&'a dyn StorageWorld, &'a mut Store<CallState>) -> Pending<'a, Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let started = std::time::Instant::now();
        let result = async {
            let plugin = self.get(PluginKind::Storage, &self.defaults.storage)?;
            let Linked::Storage(storage) = &plugin.linked else {
                return Err(
                    PluginError::NotLoaded { kind: PluginKind::Storage, name: self.defaults.storage.clone() }.into()
                );
            };
            self.call_async(&plugin, async |store| call(storage.as_ref(), store).await).await?
        }
        .await;
        self.storage_metrics.record(operation, &result, started);
        result
    }

    /// The records at `refs`, in order.
    pub async fn store_get(&self, refs: &[RecordRef]) -> Result<Vec<Option<Stored>>, StoreError> {
        let found = self.storage("get", |storage, store| storage.get(store, refs)).await?;
        if found.len() != refs.len() {
            return Err(StoreError::Backend(format!("asked for {} records, got {} answers", refs.len(), found.len())));
        }
        Ok(found)
    }

    /// Every record carrying the key, ordered by id.
    pub async fn store_find(&self, key: &KeyRef) -> Result<Vec<Stored>, StoreError> {
        self.storage("find", |storage, store| storage.find(store, key)).await
    }

    /// One page of the records of `kind`, ordered by id.
    pub async fn store_list(&self, kind: &str, after: Option<&str>, limit: u32) -> Result<Vec<Stored>, StoreError> {
        self.storage("list", |storage, store| storage.list(store, kind, after, limit)).await
    }

    /// The writes as one atomic group.
    pub async fn store_apply(self: &Arc<Self>, writes: Vec<Write>) -> Result<(), StoreError> {
        self.writing(
            move |host| async move { host.storage("apply", |storage, store| storage.apply(store, writes)).await },
        )
        .await
    }

    pub async fn store_purge_expired(self: &Arc<Self>, now: i64) -> Result<u64, StoreError> {
        self.writing(move |host| async move {
            host.storage("purge_expired", |storage, store| storage.purge_expired(store, now)).await
        })
        .await
    }

    /// Runs a storage call that writes where the database wants its writers: SQLite's on its
    /// writer thread (answered once the batch it joined there is committed), PostgreSQL's here.
    async fn writing<T, F>(self: &Arc<Self>, call: impl FnOnce(Arc<Self>) -> F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: Future<Output = Result<T, StoreError>> + Send + 'static,
    {
        let task = call(self.clone());
        match self.database.writer() {
            Some(writer) => writer.run(task).await.map_err(|e| StoreError::Unavailable(e.to_string()))?,
            None => task.await,
        }
    }
}
