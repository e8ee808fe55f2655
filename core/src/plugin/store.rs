//! The storage plugin as the rest of the server sees it: generic records of a kind, in plain
//! Rust types. Each function here is one call of the storage plugin, on a fresh instance.

use std::sync::Arc;

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

/// The conversions between the server's record types and one contract version's.
macro_rules! records_of {
    ($module:ident, $wit:path) => {
        mod $module {
            use super::{Record, RecordRef, StoreError, Stored, Write};
            use $wit as wit;

            impl From<wit::StorageError> for StoreError {
                fn from(e: wit::StorageError) -> Self {
                    match e {
                        wit::StorageError::PreconditionFailed(i) => StoreError::Precondition(i as usize),
                        wit::StorageError::Backend(m) => StoreError::Backend(m),
                        wit::StorageError::Unavailable(m) => StoreError::Unavailable(m),
                    }
                }
            }

            pub fn record_ref(r: &RecordRef) -> wit::RecordRef {
                wit::RecordRef { kind: r.kind.to_owned(), id: r.id.clone() }
            }

            pub fn key_ref(k: &super::KeyRef) -> wit::KeyRef {
                wit::KeyRef { kind: k.kind.to_owned(), name: k.name.to_owned(), value: k.value.clone() }
            }

            fn record(r: Record) -> wit::Record {
                wit::Record {
                    kind: r.kind.to_owned(),
                    id: r.id,
                    body: r.body,
                    keys: r.keys.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
                    expires_at: r.expires_at,
                }
            }

            pub fn write(w: Write) -> wit::Write {
                match w {
                    Write::Create(r) => wit::Write::Create(record(r)),
                    Write::Put(r) => wit::Write::Put(record(r)),
                    Write::Update(r, revision) => wit::Write::Update(wit::Revised { record: record(r), revision }),
                    Write::Consume(r) => wit::Write::Consume(record_ref(&r)),
                    Write::Delete(r) => wit::Write::Delete(record_ref(&r)),
                    Write::DeleteByKey(k) => wit::Write::DeleteByKey(key_ref(&k)),
                }
            }

            pub fn stored(s: wit::Stored) -> Stored {
                Stored {
                    kind: s.kind,
                    id: s.id,
                    body: s.body,
                    expires_at: s.expires_at,
                    revision: s.revision,
                    consumed: s.consumed,
                }
            }
        }
    };
}

records_of!(v4_records, crate::plugin::bindings::v4::storage_world::exports::portcullis::plugin::storage);
records_of!(v3_records, crate::plugin::bindings::v3::storage_world::exports::portcullis::plugin::storage);
records_of!(v2_records, crate::plugin::bindings::v2::storage_world::exports::portcullis::plugin::storage);

/// One call of the configured storage plugin, of whichever contract version it was built
/// for: `$method` on a fresh instance. `$w` names that version's conversions in the
/// statements that prepare the arguments and in the expression that maps the answer. Each
/// call is counted and timed by its operation and outcome ([`record`]).
macro_rules! storage_call {
    ($host:expr, |$w:ident| { $($prep:tt)* } $method:ident($($arg:expr),*) => |$out:ident| $map:expr) => {{
        let started = std::time::Instant::now();
        let result = async { storage_call!(@call $host, |$w| { $($prep)* } $method($($arg),*) => |$out| $map) }.await;
        $host.storage_metrics.record(stringify!($method), &result, started);
        result
    }};
    (@call $host:expr, |$w:ident| { $($prep:tt)* } $method:ident($($arg:expr),*) => |$out:ident| $map:expr) => {{
        let plugin = $host.get(PluginKind::Storage, &$host.defaults.storage)?;
        macro_rules! on {
            ($pre:expr) => {{
                $($prep)*
                let answer = $host
                    .call_async(&plugin, async |store| {
                        let instance = $pre.instantiate_async(&mut *store).await?;
                        instance.portcullis_plugin_storage().$method(&mut *store $(, $arg)*).await
                    })
                    .await?;
                answer.map(|$out| $map).map_err(StoreError::from)
            }};
        }
        match &plugin.linked {
            Linked::Storage(pre) => {
                #[allow(unused_imports)]
                use v4_records as $w;
                on!(pre)
            }
            Linked::StorageV3(pre) => {
                #[allow(unused_imports)]
                use v3_records as $w;
                on!(pre)
            }
            Linked::StorageV2(pre) => {
                #[allow(unused_imports)]
                use v2_records as $w;
                on!(pre)
            }
            _ => Err(PluginError::NotLoaded { kind: PluginKind::Storage, name: $host.defaults.storage.clone() }.into()),
        }
    }};
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

    /// Counts and times a call of the storage plugin's `method` (`call_get`, …).
    fn record<T>(&self, method: &str, result: &Result<T, StoreError>, started: std::time::Instant) {
        let operation = method.strip_prefix("call_").unwrap_or(method);
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
    /// The records at `refs`, in order.
    pub async fn store_get(&self, refs: &[RecordRef]) -> Result<Vec<Option<Stored>>, StoreError> {
        let found: Vec<Option<Stored>> = storage_call!(self, |w| {
            let refs: Vec<_> = refs.iter().map(w::record_ref).collect();
        } call_get(&refs) => |found| found.into_iter().map(|s| s.map(w::stored)).collect())?;
        if found.len() != refs.len() {
            return Err(StoreError::Backend(format!("asked for {} records, got {} answers", refs.len(), found.len())));
        }
        Ok(found)
    }

    /// Every record carrying the key, ordered by id.
    pub async fn store_find(&self, key: &KeyRef) -> Result<Vec<Stored>, StoreError> {
        storage_call!(self, |w| {
            let key = w::key_ref(key);
        } call_find(&key) => |found| found.into_iter().map(w::stored).collect())
    }

    /// One page of the records of `kind`, ordered by id.
    pub async fn store_list(&self, kind: &str, after: Option<&str>, limit: u32) -> Result<Vec<Stored>, StoreError> {
        storage_call!(self, |w| {} call_list(kind, after, limit) => |found| found.into_iter().map(w::stored).collect())
    }

    /// The writes as one atomic group.
    pub async fn store_apply(self: &Arc<Self>, writes: Vec<Write>) -> Result<(), StoreError> {
        self.writing(move |host| async move {
            storage_call!(host, |w| {
                let writes: Vec<_> = writes.into_iter().map(w::write).collect();
            } call_apply(&writes) => |done| done)
        })
        .await
    }

    pub async fn store_purge_expired(self: &Arc<Self>, now: i64) -> Result<u64, StoreError> {
        self.writing(move |host| async move { storage_call!(host, |w| {} call_purge_expired(now) => |n| n) }).await
    }

    /// Runs a storage call that writes where the database wants its writers: SQLite's on its
    /// writer thread, PostgreSQL's here.
    async fn writing<T, F>(self: &Arc<Self>, call: impl FnOnce(Arc<Self>) -> F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: Future<Output = Result<T, StoreError>> + Send + 'static,
    {
        let task = call(self.clone());
        match self.database.writer() {
            Some(writer) => writer
                .run(task)
                .await
                .map_err(|e| StoreError::Unavailable(format!("the database's writer stopped: {e}")))?,
            None => task.await,
        }
    }
}
