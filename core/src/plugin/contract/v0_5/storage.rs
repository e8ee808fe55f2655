//! The storage interface of 0.4.0, the same since 0.2.0: the server's records as its
//! records, and its answers as the server's.

use wasmtime::Store;
use wasmtime::component::{Instance, InstancePre};

use super::storage_world::exports::portcullis::plugin::storage as wit;
use crate::plugin::call::CallState;
use crate::plugin::contract::{Answer, Export, Exported, Found, Param, Pending, StorageWorld, Storing};
use crate::plugin::store::{KeyRef, Record, RecordRef, StoreError, Stored, Write};
use crate::plugin::{Contract, Linked, PluginKind};

/// What a storage function answers: `T`, or why not.
type Answered<T> = (Result<T, wit::StorageError>,);

struct Storage {
    pre: InstancePre<CallState>,
    migrate: Export<(), Answered<()>>,
    get: Export<(Vec<wit::RecordRef>,), Answered<Vec<Option<wit::Stored>>>>,
    find: Export<(wit::KeyRef,), Answered<Vec<wit::Stored>>>,
    list: Export<(String, Option<String>, u32), Answered<Vec<wit::Stored>>>,
    apply: Export<(Vec<wit::Write>,), Answered<()>>,
    purge_expired: Export<(i64,), Answered<u64>>,
}

/// Links a storage plugin of `contract`.
pub(in crate::plugin) fn link(pre: InstancePre<CallState>, contract: Contract) -> wasmtime::Result<Linked> {
    let exported = Exported::of(&pre, PluginKind::Storage, contract)?;
    let storage = Storage {
        migrate: exported.func("migrate")?,
        get: exported.func("get")?,
        find: exported.func("find")?,
        list: exported.func("list")?,
        apply: exported.func("apply")?,
        purge_expired: exported.func("purge-expired")?,
        pre,
    };
    Ok(Linked::Storage(Box::new(storage)))
}

impl Storage {
    /// The store's instance: the one an earlier call made in it, or a new one.
    async fn instance(&self, store: &mut Store<CallState>) -> wasmtime::Result<Instance> {
        if let Some(instance) = store.data().instance {
            return Ok(instance);
        }
        let instance = self.pre.instantiate_async(&mut *store).await?;
        store.data_mut().instance = Some(instance);
        Ok(instance)
    }

    /// Calls `f` on the store's instance.
    async fn call<P: Param, T: Answer>(
        &self,
        store: &mut Store<CallState>,
        f: &Export<(P,), Answered<T>>,
        params: P,
    ) -> wasmtime::Result<Result<T, wit::StorageError>> {
        let instance = self.instance(store).await?;
        Ok(f.call_async(store, &instance, (params,)).await?.0)
    }
}

impl StorageWorld for Storage {
    fn migrate<'a>(&'a self, store: &'a mut Store<CallState>) -> Pending<'a, Result<(), String>> {
        Box::pin(async move {
            let instance = self.pre.instantiate_async(&mut *store).await?;
            // Every function is checked against its records here, once, so that a storage
            // plugin whose functions do not match is refused when it is installed.
            self.get.check(store, &instance)?;
            self.find.check(store, &instance)?;
            self.list.check(store, &instance)?;
            self.apply.check(store, &instance)?;
            self.purge_expired.check(store, &instance)?;
            let (migrated,) = self.migrate.call_async(store, &instance, ()).await?;
            Ok(migrated.map_err(|e| format!("{e:?}")))
        })
    }

    fn get<'a>(&'a self, store: &'a mut Store<CallState>, refs: &[RecordRef]) -> Storing<'a, Vec<Option<Stored>>> {
        let refs = refs.iter().map(record_ref).collect();
        Box::pin(async move {
            let found = self.call(store, &self.get, refs).await?;
            Ok(found.map(|found| found.into_iter().map(|s| s.map(stored)).collect()).map_err(StoreError::from))
        })
    }

    fn find<'a>(
        &'a self,
        store: &'a mut Store<CallState>,
        key: &KeyRef,
    ) -> Pending<'a, Result<Vec<Stored>, StoreError>> {
        let key = key_ref(key);
        Box::pin(async move { Ok(self.call(store, &self.find, key).await?.map(all_stored).map_err(StoreError::from)) })
    }

    fn list<'a>(&'a self, store: &'a mut Store<CallState>, kind: &str, after: Option<&str>, limit: u32) -> Found<'a> {
        let params = (kind.to_owned(), after.map(str::to_owned), limit);
        Box::pin(async move {
            let instance = self.instance(store).await?;
            let (found,) = self.list.call_async(store, &instance, params).await?;
            Ok(found.map(all_stored).map_err(StoreError::from))
        })
    }

    fn apply<'a>(&'a self, store: &'a mut Store<CallState>, writes: Vec<Write>) -> Storing<'a, ()> {
        let writes = writes.into_iter().map(write).collect();
        Box::pin(async move { Ok(self.call(store, &self.apply, writes).await?.map_err(StoreError::from)) })
    }

    fn purge_expired<'a>(&'a self, store: &'a mut Store<CallState>, now: i64) -> Storing<'a, u64> {
        Box::pin(async move { Ok(self.call(store, &self.purge_expired, now).await?.map_err(StoreError::from)) })
    }
}

impl From<wit::StorageError> for StoreError {
    fn from(e: wit::StorageError) -> Self {
        match e {
            wit::StorageError::PreconditionFailed(i) => StoreError::Precondition(i as usize),
            wit::StorageError::Backend(m) => StoreError::Backend(m),
            wit::StorageError::Unavailable(m) => StoreError::Unavailable(m),
        }
    }
}

fn record_ref(r: &RecordRef) -> wit::RecordRef {
    wit::RecordRef { kind: r.kind.to_owned(), id: r.id.clone() }
}

fn key_ref(k: &KeyRef) -> wit::KeyRef {
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

fn write(w: Write) -> wit::Write {
    match w {
        Write::Create(r) => wit::Write::Create(record(r)),
        Write::Put(r) => wit::Write::Put(record(r)),
        Write::Update(r, revision) => wit::Write::Update(wit::Revised { record: record(r), revision }),
        Write::Consume(r) => wit::Write::Consume(record_ref(&r)),
        Write::Delete(r) => wit::Write::Delete(record_ref(&r)),
        Write::DeleteByKey(k) => wit::Write::DeleteByKey(key_ref(&k)),
    }
}

fn all_stored(found: Vec<wit::Stored>) -> Vec<Stored> {
    found.into_iter().map(stored).collect()
}

fn stored(s: wit::Stored) -> Stored {
    Stored {
        kind: s.kind,
        id: s.id,
        body: s.body,
        expires_at: s.expires_at,
        revision: s.revision,
        consumed: s.consumed,
    }
}
