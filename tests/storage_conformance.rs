//! The storage conformance suite: what every storage plugin must do, run on every backend.
//! A backend is done when this suite is green.
//!
//! By default it runs the built-in `storage-sql` on embedded SQLite and on PostgreSQL (each
//! test on a fresh database). It takes any storage plugin and any database:
//!
//! ```sh
//! PORTCULLIS_CONFORMANCE_PLUGIN=/path/to/my-storage.wasm \
//! PORTCULLIS_CONFORMANCE_DATABASE=postgres://user@host/db \
//!     cargo test -p portcullis --test storage_conformance
//! ```
//!
//! `PORTCULLIS_CONFORMANCE_PLUGIN` is a `.wasm` with its manifest (`.toml`) beside it.
//! `PORTCULLIS_CONFORMANCE_DATABASE` is the database of the `server_database` half (every
//! test writes record kinds of its own, so a database that holds other data is fine); without
//! it, each test of that half gets a fresh database on the PostgreSQL server at
//! `PORTCULLIS_TEST_POSTGRES` (default `postgres://postgres@127.0.0.1:5432/postgres`), and
//! fails, not skips, without one. The `embedded_sqlite` half always runs on a fresh file.
//!
//! The first half checks the contract itself (`interface storage` in `sdk/wit`); the second
//! the host's guarantees on top of it (cascades, single use), which must hold on any
//! conforming backend.

mod support;

use std::path::PathBuf;
use std::sync::Arc;

use portcullis::model::*;
use portcullis::plugin::database::Database;
use portcullis::plugin::store::{KeyRef, Record, RecordRef, StoreError, Write};
use portcullis::plugin::{Defaults, PolicyHost, watch};
use portcullis::storage::{Kind, Storage, StorageError, write};
use serde::{Deserialize, Serialize};

/// The storage plugin under test.
fn plugin_under_test() -> PathBuf {
    std::env::var_os("PORTCULLIS_CONFORMANCE_PLUGIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| support::policies_dir().join("storage-sql.wasm"))
}

/// A storage plugin, alone in a policies directory with the default scope and consent
/// plugins beside it.
fn policies(plugin: &std::path::Path) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let builtin = support::policies_dir();
    for name in ["scope-template", "consent-default"] {
        for ext in ["wasm", "toml"] {
            std::fs::copy(builtin.join(format!("{name}.{ext}")), dir.path().join(format!("{name}.{ext}")))
                .expect("copy");
        }
    }
    let name = plugin.file_stem().and_then(|s| s.to_str()).expect("a plugin file name").to_owned();
    std::fs::copy(plugin, dir.path().join(format!("{name}.wasm"))).expect("the plugin's .wasm");
    std::fs::copy(plugin.with_extension("toml"), dir.path().join(format!("{name}.toml"))).expect("its manifest");
    (dir, name)
}

struct Backend {
    host: Arc<PolicyHost>,
    storage: Storage,
    /// Kinds of this test's own: `k("code")` is unique to one test run.
    tag: String,
    _guards: Vec<Box<dyn std::any::Any + Send>>,
}

impl Backend {
    async fn open(url: &str, guards: Vec<Box<dyn std::any::Any + Send>>) -> Self {
        Self::open_with(&plugin_under_test(), url, guards).await
    }

    async fn open_with(plugin: &std::path::Path, url: &str, mut guards: Vec<Box<dyn std::any::Any + Send>>) -> Self {
        let (dir, name) = policies(plugin);
        let db = Database::connect(url, 8, std::time::Duration::from_secs(1)).await.expect("database");
        let defaults = Defaults { storage: name, scope: "scope-template".into(), consent: "consent-default".into() };
        let host = PolicyHost::new(db, defaults, None).expect("host");
        watch::load_dir(&host, dir.path()).await.expect("the storage plugin loads and migrates");
        guards.push(Box::new(dir));
        let tag = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
        Backend { storage: Storage::new(host.clone()), host, tag, _guards: guards }
    }

    /// A kind name unique to this test run.
    fn k(&self, kind: &str) -> &'static str {
        Box::leak(format!("t{}-{kind}", self.tag).into_boxed_str())
    }
}

async fn sqlite() -> Backend {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}/conformance.db", dir.path().display());
    Backend::open(&url, vec![Box::new(dir)]).await
}

async fn server_database() -> Backend {
    if let Ok(url) = std::env::var("PORTCULLIS_CONFORMANCE_DATABASE") {
        return Backend::open(&url, Vec::new()).await;
    }
    let (url, guard) = support::fresh_postgres("conf").await;
    Backend::open(&url, vec![Box::new(guard)]).await
}

fn rec(kind: &'static str, id: &str, body: &str, keys: &[(&'static str, &str)], expires_at: Option<i64>) -> Record {
    Record {
        kind,
        id: id.into(),
        body: body.into(),
        keys: keys.iter().map(|(k, v)| (*k, (*v).to_owned())).collect(),
        expires_at,
    }
}

fn at(kind: &'static str, id: &str) -> RecordRef {
    RecordRef { kind, id: id.into() }
}

fn key(kind: &'static str, name: &'static str, value: &str) -> KeyRef {
    KeyRef { kind, name, value: value.into() }
}

fn precondition(r: Result<(), StoreError>) -> Option<usize> {
    match r {
        Err(StoreError::Precondition(i)) => Some(i),
        Ok(()) => None,
        Err(e) => panic!("expected a precondition failure or success, got {e}"),
    }
}

async fn ids(b: &Backend, k: KeyRef) -> Vec<String> {
    b.host.store_find(&k).await.expect("find").into_iter().map(|s| s.id).collect()
}

// ---------------------------------------------------------------------------------------
// The contract

async fn records_round_trip_opaque_bodies_and_odd_ids(b: &Backend) {
    let kind = b.k("thing");
    let odd = ["plain", "with space", "quote ' \" `", "ünïcødé ✓", "semi;colon -- comment", "%_like"];
    let body = "not JSON at all: ' \" \\ \n\t ✓ DROP TABLE records; --";
    let writes = odd.iter().map(|id| Write::Create(rec(kind, id, &format!("{body}{id}"), &[], None))).collect();
    b.host.store_apply(writes).await.expect("create");
    let refs: Vec<RecordRef> = odd.iter().map(|id| at(kind, id)).chain([at(kind, "missing")]).collect();
    let got = b.host.store_get(&refs).await.expect("get");
    assert_eq!(got.len(), odd.len() + 1, "one answer per ref, in order");
    for (id, s) in odd.iter().zip(&got) {
        let s = s.as_ref().expect("stored");
        assert_eq!((s.kind.as_str(), s.id.as_str()), (kind, *id));
        assert_eq!(s.body, format!("{body}{id}"), "bodies come back byte for byte");
        assert_eq!((s.revision, s.consumed, s.expires_at), (1, false, None));
    }
    assert!(got[odd.len()].is_none());
    // Another kind with the same id is another record.
    assert!(b.host.store_get(&[at(b.k("other"), "plain")]).await.expect("get")[0].is_none());
    assert!(b.host.store_get(&[]).await.expect("empty get").is_empty());
}

async fn create_refuses_an_existing_record_and_groups_are_atomic(b: &Backend) {
    let kind = b.k("thing");
    b.host.store_apply(vec![Write::Create(rec(kind, "a", "1", &[], None))]).await.expect("create");
    let group = vec![
        Write::Create(rec(kind, "b", "2", &[("tag", "x")], None)),
        Write::Put(rec(kind, "c", "3", &[], None)),
        Write::Create(rec(kind, "a", "again", &[], None)),
    ];
    assert_eq!(precondition(b.host.store_apply(group).await), Some(2), "the index of the failing write");
    let got = b.host.store_get(&[at(kind, "a"), at(kind, "b"), at(kind, "c")]).await.expect("get");
    assert_eq!(got[0].as_ref().map(|s| s.body.as_str()), Some("1"), "the existing record is untouched");
    assert!(got[1].is_none() && got[2].is_none(), "nothing of a failed group is written");
    assert!(ids(b, key(kind, "tag", "x")).await.is_empty(), "nor its keys");
}

/// Groups asked for at once (which SQLite's writer runs several to a transaction) each stand
/// or fall alone: a group whose precondition fails leaves nothing, its neighbours everything.
async fn groups_asked_for_at_once_stand_or_fall_alone(b: &Backend) {
    let kind = b.k("thing");
    let groups = (0..48).map(|i| {
        let id = format!("g{i:02}");
        let mut writes = vec![
            Write::Create(rec(kind, &id, "body", &[("batch", "x")], None)),
            Write::Put(rec(kind, &format!("{id}-put"), "body", &[], None)),
        ];
        if i % 3 == 0 {
            writes.push(Write::Consume(at(kind, "missing")));
        }
        b.host.store_apply(writes)
    });
    let results = futures::future::join_all(groups).await;
    for (i, result) in results.into_iter().enumerate() {
        assert_eq!(precondition(result), (i % 3 == 0).then_some(2), "group {i}");
    }
    let mut kept = ids(b, key(kind, "batch", "x")).await;
    kept.sort();
    let expected: Vec<String> = (0..48).filter(|i| i % 3 != 0).map(|i| format!("g{i:02}")).collect();
    assert_eq!(kept, expected, "exactly the groups that held are written, with their keys");
    let puts: Vec<RecordRef> = (0..48).map(|i| at(kind, &format!("g{i:02}-put"))).collect();
    let got = b.host.store_get(&puts).await.expect("get");
    for (i, got) in got.iter().enumerate() {
        assert_eq!(got.is_some(), i % 3 != 0, "the put of group {i}");
    }
}

async fn put_replaces_body_keys_and_expiry_and_bumps_the_revision(b: &Backend) {
    let kind = b.k("thing");
    b.host.store_apply(vec![Write::Put(rec(kind, "p", "one", &[("color", "red")], Some(100)))]).await.expect("put");
    b.host
        .store_apply(vec![Write::Put(rec(kind, "p", "two", &[("color", "blue"), ("size", "L")], None))])
        .await
        .expect("put again");
    let s = b.host.store_get(&[at(kind, "p")]).await.expect("get").remove(0).expect("stored");
    assert_eq!((s.body.as_str(), s.revision, s.expires_at), ("two", 2, None));
    assert!(ids(b, key(kind, "color", "red")).await.is_empty(), "old keys are gone");
    assert_eq!(ids(b, key(kind, "color", "blue")).await, ["p"]);
    assert_eq!(ids(b, key(kind, "size", "L")).await, ["p"]);
}

async fn update_compares_the_revision(b: &Backend) {
    let kind = b.k("thing");
    b.host.store_apply(vec![Write::Create(rec(kind, "u", "v1", &[("k", "1")], None))]).await.expect("create");
    let stale = Write::Update(rec(kind, "u", "lost", &[], None), 7);
    assert_eq!(precondition(b.host.store_apply(vec![stale]).await), Some(0));
    let fresh = Write::Update(rec(kind, "u", "v2", &[("k", "2")], Some(5)), 1);
    assert_eq!(precondition(b.host.store_apply(vec![fresh]).await), None);
    let s = b.host.store_get(&[at(kind, "u")]).await.expect("get").remove(0).expect("stored");
    assert_eq!((s.body.as_str(), s.revision, s.expires_at), ("v2", 2, Some(5)));
    assert_eq!(ids(b, key(kind, "k", "2")).await, ["u"]);
    assert!(ids(b, key(kind, "k", "1")).await.is_empty());
    let missing = Write::Update(rec(kind, "nobody", "x", &[], None), 1);
    assert_eq!(precondition(b.host.store_apply(vec![missing]).await), Some(0), "updating nothing fails");
    // Two writers that read revision 2: exactly one wins.
    let racers =
        (0..6).map(|i| b.host.store_apply(vec![Write::Update(rec(kind, "u", &format!("w{i}"), &[], None), 2)]));
    let results = futures::future::join_all(racers).await;
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1, "one compare-and-set wins");
    assert!(results.into_iter().all(|r| matches!(r, Ok(()) | Err(StoreError::Precondition(0)))));
}

async fn consume_is_exactly_once_under_concurrency(b: &Backend) {
    let kind = b.k("code");
    b.host.store_apply(vec![Write::Create(rec(kind, "c1", "code", &[], Some(i64::MAX)))]).await.expect("create");
    let attempts = (0..8).map(|_| b.host.store_apply(vec![Write::Consume(at(kind, "c1"))]));
    let results = futures::future::join_all(attempts).await;
    let won = results.iter().filter(|r| r.is_ok()).count();
    let lost = results.iter().filter(|r| matches!(r, Err(StoreError::Precondition(0)))).count();
    assert_eq!((won, lost), (1, 7));
    let s = b.host.store_get(&[at(kind, "c1")]).await.expect("get").remove(0).expect("a consumed record stays");
    assert!(s.consumed);
    assert_eq!(s.revision, 2);
    assert_eq!(precondition(b.host.store_apply(vec![Write::Consume(at(kind, "nothing"))]).await), Some(0));
    // Put keeps a consumed record consumed.
    b.host.store_apply(vec![Write::Put(rec(kind, "c1", "rewritten", &[], None))]).await.expect("put");
    assert!(b.host.store_get(&[at(kind, "c1")]).await.expect("get")[0].as_ref().is_some_and(|s| s.consumed));
}

async fn consume_and_create_rotate_with_one_winner(b: &Backend) {
    let kind = b.k("refresh");
    b.host.store_apply(vec![Write::Create(rec(kind, "r0", "first", &[("family", "f")], None))]).await.expect("create");
    let attempts = (0..6).map(|i| {
        b.host.store_apply(vec![
            Write::Consume(at(kind, "r0")),
            Write::Create(rec(kind, &format!("r1-{i}"), "next", &[("family", "f")], None)),
        ])
    });
    let results = futures::future::join_all(attempts).await;
    let winners: Vec<usize> = results.iter().enumerate().filter(|(_, r)| r.is_ok()).map(|(i, _)| i).collect();
    assert_eq!(winners.len(), 1, "{results:?}");
    assert!(results.iter().all(|r| matches!(r, Ok(()) | Err(StoreError::Precondition(0)))));
    let mut family = ids(b, key(kind, "family", "f")).await;
    family.sort();
    assert_eq!(family, vec!["r0".to_owned(), format!("r1-{}", winners[0])], "only the winner's successor exists");
}

async fn find_and_delete_by_key(b: &Backend) {
    let (grant, code) = (b.k("grant"), b.k("code"));
    b.host
        .store_apply(vec![
            Write::Create(rec(code, "c2", "", &[("grant", "g1"), ("client", "x")], None)),
            Write::Create(rec(code, "c1", "", &[("grant", "g1"), ("grant", "g1")], None)),
            Write::Create(rec(code, "c3", "", &[("grant", "g2")], None)),
            Write::Create(rec(grant, "g1", "", &[("grant", "g1")], None)),
        ])
        .await
        .expect("create");
    assert_eq!(ids(b, key(code, "grant", "g1")).await, ["c1", "c2"], "ordered by id, each record once");
    assert_eq!(ids(b, key(code, "client", "x")).await, ["c2"]);
    b.host.store_apply(vec![Write::DeleteByKey(key(code, "grant", "g1"))]).await.expect("delete by key");
    let got = b.host.store_get(&[at(code, "c1"), at(code, "c2"), at(code, "c3"), at(grant, "g1")]).await.expect("get");
    assert!(got[0].is_none() && got[1].is_none(), "both records with the key are gone");
    assert!(got[2].is_some(), "another key's record stays");
    assert!(got[3].is_some(), "a record of another kind with the same key stays");
    assert!(ids(b, key(code, "client", "x")).await.is_empty(), "the removed records' other keys are gone");
    // A deleted record leaves no keys behind for a new record with its id.
    b.host.store_apply(vec![Write::Delete(at(code, "c3")), Write::Delete(at(code, "never"))]).await.expect("delete");
    b.host.store_apply(vec![Write::Create(rec(code, "c3", "new", &[], None))]).await.expect("re-create");
    assert!(ids(b, key(code, "grant", "g2")).await.is_empty());
}

async fn list_pages_through_one_kind_in_id_order(b: &Backend) {
    let (kind, other) = (b.k("client"), b.k("user"));
    let mut writes: Vec<Write> =
        ["e", "a", "g", "c", "b", "f", "d"].iter().map(|id| Write::Create(rec(kind, id, id, &[], None))).collect();
    writes.push(Write::Create(rec(other, "a0", "", &[], None)));
    b.host.store_apply(writes).await.expect("create");
    let page = |after: Option<&'static str>| async move {
        b.host.store_list(kind, after, 3).await.expect("list").into_iter().map(|s| s.id).collect::<Vec<_>>()
    };
    assert_eq!(page(None).await, ["a", "b", "c"]);
    assert_eq!(page(Some("c")).await, ["d", "e", "f"]);
    assert_eq!(page(Some("f")).await, ["g"]);
    assert!(page(Some("g")).await.is_empty());
}

async fn purge_removes_only_what_expired(b: &Backend) {
    let kind = b.k("session");
    b.host
        .store_apply(vec![
            Write::Create(rec(kind, "old", "", &[("user", "u")], Some(1_000))),
            Write::Create(rec(kind, "new", "", &[("user", "u")], Some(3_000))),
            Write::Create(rec(kind, "forever", "", &[("user", "u")], None)),
        ])
        .await
        .expect("create");
    // Dead records are still returned until purged: the host checks expiry itself.
    assert!(b.host.store_get(&[at(kind, "old")]).await.expect("get")[0].is_some());
    assert!(b.host.store_purge_expired(2_000).await.expect("purge") >= 1);
    let got = b.host.store_get(&[at(kind, "old"), at(kind, "new"), at(kind, "forever")]).await.expect("get");
    assert!(got[0].is_none() && got[1].is_some() && got[2].is_some());
    assert_eq!(ids(b, key(kind, "user", "u")).await, ["forever", "new"], "the purged record's keys went with it");
}

async fn purging_much_that_expired_takes_calls_that_each_remove_a_part(b: &Backend) {
    let kind = b.k("code");
    let dead: Vec<String> = (0..2_500).map(|i| format!("dead-{i:05}")).collect();
    for group in dead.chunks(250) {
        let writes = group.iter().map(|id| Write::Create(rec(kind, id, "", &[("user", "u")], Some(1_000)))).collect();
        b.host.store_apply(writes).await.expect("create");
    }
    b.host
        .store_apply(vec![Write::Create(rec(kind, "live", "", &[("user", "u")], Some(3_000)))])
        .await
        .expect("create");
    let mut calls = Vec::new();
    loop {
        let purged = b.host.store_purge_expired(2_000).await.expect("purge");
        if purged == 0 {
            break;
        }
        calls.push(purged);
        assert!(calls.len() <= 50, "purging never ends: {calls:?}");
    }
    assert!(calls.iter().sum::<u64>() >= 2_500, "every expired record went: {calls:?}");
    assert_eq!(ids(b, key(kind, "user", "u")).await, ["live"], "the keys went with their records");
    assert!(b.host.store_get(&[at(kind, "live")]).await.expect("get")[0].is_some());
    // The built-in plugin bounds one call's work, so that no call holds the database long.
    if std::env::var_os("PORTCULLIS_CONFORMANCE_PLUGIN").is_none() {
        assert!(calls[0] <= 2_000, "storage-sql purges at most 2,000 records a call: {calls:?}");
    }
}

// ---------------------------------------------------------------------------------------
// The built-in plugin's schema, upgraded in place

/// A database the 0.4.0 build of `storage-sql` wrote (schema 2: keys found by a second index
/// of `record_keys`) is upgraded by today's build, which lists each record's keys in its row:
/// every record keeps its keys, keys that a write replaces or removes are gone, and rows the
/// older build keeps writing beside it (as a replica not yet upgraded does) are handled too.
async fn storage_sql_upgrades_a_database_the_0_4_build_wrote(url: &str) {
    let legacy = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/policies/v0.4.0/storage-sql.wasm");
    let today = support::policies_dir().join("storage-sql.wasm");
    let old = Backend::open_with(&legacy, url, Vec::new()).await;
    let kind = old.k("grant");
    let apply = |b: &Backend, writes: Vec<Write>| {
        let host = b.host.clone();
        async move { host.store_apply(writes).await.expect("applied") }
    };
    apply(
        &old,
        vec![
            Write::Create(rec(kind, "a", "", &[("n", "1"), ("m", "ü:2")], None)),
            Write::Create(rec(kind, "b", "", &[("n", "1")], Some(1_000))),
            Write::Create(rec(kind, "c", "", &[("n", "3")], None)),
            Write::Create(rec(kind, "d", "", &[("x", "é")], None)),
            Write::Create(rec(kind, "e", "", &[], None)),
        ],
    )
    .await;

    let new = Backend::open_with(&today, url, Vec::new()).await;
    // Migration 3 listed each row's keys, in the form the plugin writes them.
    let listed = |id: &'static str| {
        let url = url.to_owned();
        async move { key_list(&url, kind, id).await }
    };
    let a = listed("a").await.expect("listed");
    assert!(a == "1:n1:11:m3:ü:2" || a == "1:m3:ü:21:n1:1", "{a}");
    assert_eq!(listed("e").await.as_deref(), Some(""), "a record without keys lists none");
    assert_eq!(ids(&new, key(kind, "n", "1")).await, ["a", "b"]);

    // A replaced record's keys are its new ones; removed keys no longer find a record of its id.
    apply(&new, vec![Write::Put(rec(kind, "a", "", &[("m", "ü:2"), ("z", "9")], None))]).await;
    assert_eq!(ids(&new, key(kind, "n", "1")).await, ["b"]);
    assert_eq!(ids(&new, key(kind, "m", "ü:2")).await, ["a"]);
    assert_eq!(ids(&new, key(kind, "z", "9")).await, ["a"]);
    let a = listed("a").await.expect("listed");
    assert!(a == "1:m3:ü:21:z1:9" || a == "1:z1:91:m3:ü:2", "{a}");
    apply(&new, vec![Write::Update(rec(kind, "c", "", &[], None), 1)]).await;
    apply(&new, vec![Write::Delete(at(kind, "d"))]).await;
    assert_eq!(new.host.store_purge_expired(2_000).await.expect("purge"), 1, "b expired");
    apply(
        &new,
        vec![
            Write::Create(rec(kind, "b", "", &[], None)),
            Write::Create(rec(kind, "c2", "", &[], None)),
            Write::Create(rec(kind, "d", "", &[], None)),
        ],
    )
    .await;
    for (name, value) in [("n", "1"), ("n", "3"), ("x", "é")] {
        assert!(ids(&new, key(kind, name, value)).await.is_empty(), "{name}={value} went with its record");
    }

    // The 0.4.0 build, still running beside today's, writes rows that list no keys.
    apply(
        &old,
        vec![
            Write::Create(rec(kind, "f", "", &[("q", "1")], None)),
            Write::Create(rec(kind, "g", "", &[("q", "1"), ("r", "1")], Some(1_000))),
            Write::Create(rec(kind, "h", "", &[("s", "1")], None)),
        ],
    )
    .await;
    assert_eq!(listed("f").await, None);
    apply(&new, vec![Write::Put(rec(kind, "f", "", &[("q", "2")], None))]).await;
    assert_eq!(listed("f").await.as_deref(), Some("1:q1:2"), "listed once rewritten");
    assert_eq!(new.host.store_purge_expired(2_000).await.expect("purge"), 1, "g expired");
    apply(&new, vec![Write::DeleteByKey(key(kind, "s", "1"))]).await;
    apply(&new, vec![Write::Create(rec(kind, "g", "", &[], None)), Write::Create(rec(kind, "h", "", &[], None))]).await;
    assert!(ids(&new, key(kind, "q", "1")).await.is_empty());
    assert_eq!(ids(&new, key(kind, "q", "2")).await, ["f"]);
    assert!(ids(&new, key(kind, "r", "1")).await.is_empty() && ids(&new, key(kind, "s", "1")).await.is_empty());
    // Today's rows read back through the older build, which may rewrite them: the list it
    // leaves behind is no longer trusted.
    assert_eq!(ids(&old, key(kind, "z", "9")).await, ["a"]);
    apply(&old, vec![Write::Put(rec(kind, "a", "", &[("w", "1")], None))]).await;
    apply(&old, vec![Write::Update(rec(kind, "f", "", &[("w", "2")], None), 2)]).await;
    apply(&new, vec![Write::Delete(at(kind, "a")), Write::Put(rec(kind, "f", "", &[("w", "3")], None))]).await;
    apply(&new, vec![Write::Create(rec(kind, "a", "", &[], None))]).await;
    for (name, value) in [("w", "1"), ("w", "2"), ("m", "ü:2"), ("z", "9")] {
        assert!(ids(&new, key(kind, name, value)).await.is_empty(), "{name}={value} went with its record");
    }
    assert_eq!(ids(&new, key(kind, "w", "3")).await, ["f"]);
}

/// The `key_list` column of one record, read from the database itself.
async fn key_list(url: &str, kind: &str, id: &str) -> Option<String> {
    let sql = "SELECT key_list FROM records WHERE kind = $1 AND id = $2";
    if url.starts_with("sqlite:") {
        let pool = sqlx::SqlitePool::connect(url).await.expect("SQLite");
        sqlx::query_scalar(sql).bind(kind).bind(id).fetch_one(&pool).await.expect("the record")
    } else {
        let pool = sqlx::PgPool::connect(url).await.expect("PostgreSQL");
        sqlx::query_scalar(sql).bind(kind).bind(id).fetch_one(&pool).await.expect("the record")
    }
}

mod schema_upgrade {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn embedded_sqlite() {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}/upgrade.db", dir.path().display());
        super::storage_sql_upgrades_a_database_the_0_4_build_wrote(&url).await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn server_database() {
        let (url, _guard) = super::support::fresh_postgres("upgrade").await;
        super::storage_sql_upgrades_a_database_the_0_4_build_wrote(&url).await
    }
}

// ---------------------------------------------------------------------------------------
// The host's guarantees on top of the contract

fn grant(id: &str, client_id: &str, user: &str) -> Grant {
    Grant {
        id: id.into(),
        client_id: client_id.into(),
        user_id: Some(user.into()),
        created_at: now(),
        expires_at: now() + 3600,
        doc: GrantDocument { scopes: vec!["openid".into()], auth_time: Some(now()), ..Default::default() },
    }
}

fn refresh(hash: &str, grant_id: &str, client_id: &str) -> RefreshToken {
    RefreshToken {
        hash: hash.into(),
        grant_id: grant_id.into(),
        client_id: client_id.into(),
        user_id: Some("u1".into()),
        scopes: vec!["openid".into()],
        claims: vec![],
        auth_time: None,
        sid: None,
        assurance: None,
        created_at: now(),
        expires_at: now() + 3600,
        dpop_jkt: None,
    }
}

fn code(hash: &str, grant: Grant) -> Code {
    Code {
        hash: hash.into(),
        expires_at: now() + 600,
        doc: CodeDocument { client_id: grant.client_id.clone(), ..Default::default() },
        grant,
    }
}

fn client(id: &str) -> Client {
    Client {
        id: id.into(),
        secret_hash: Some("ab".repeat(32)),
        organization_id: None,
        created_at: now(),
        doc: ClientDocument { name: format!("client {id}"), scopes: vec!["openid".into()], ..Default::default() },
    }
}

fn user(id: &str, username: &str) -> User {
    User {
        id: id.into(),
        username: username.into(),
        password_hash: "$argon2id$v=19$...".into(),
        created_at: now(),
        doc: UserDocument { email: format!("{username}@example.com"), ..Default::default() },
    }
}

async fn revoking_a_grant_removes_its_refresh_tokens(b: &Backend) {
    let s = &b.storage;
    let (g1, g2) = (grant(&b.tag, "c1", "u1"), grant(&format!("{}-other", b.tag), "c1", "u1"));
    s.apply(vec![
        write::create(&g1).unwrap(),
        write::create(&g2).unwrap(),
        write::create(&refresh(&format!("{}-r1", b.tag), &g1.id, "c1")).unwrap(),
        write::create(&refresh(&format!("{}-r2", b.tag), &g2.id, "c1")).unwrap(),
    ])
    .await
    .expect("issue");
    s.revoke_grant(&g1.id).await.expect("revoke");
    assert!(s.get::<Grant>(&g1.id).await.unwrap().is_none(), "the grant is gone");
    assert!(s.get::<RefreshToken>(&format!("{}-r1", b.tag)).await.unwrap().is_none(), "its refresh token is gone");
    assert!(s.get::<Grant>(&g2.id).await.unwrap().is_some(), "another grant stays");
    assert!(s.get::<RefreshToken>(&format!("{}-r2", b.tag)).await.unwrap().is_some(), "and its refresh token");
}

async fn a_code_is_redeemed_once_creating_its_grant_and_refresh_token(b: &Backend) {
    let s = &b.storage;
    let g = grant(&format!("{}-g", b.tag), "c1", "u1");
    let c = code(&format!("{}-code", b.tag), g.clone());
    s.apply(vec![write::create(&c).unwrap()]).await.expect("code issued");
    // As the token endpoint redeems: consume the code, create its grant and a refresh token.
    let attempts = (0..6).map(|i| {
        let writes = vec![
            write::consume::<Code>(&c.hash),
            write::create(&g).unwrap(),
            write::create(&refresh(&format!("{}-r{i}", b.tag), &g.id, "c1")).unwrap(),
        ];
        s.apply(writes)
    });
    let results = futures::future::join_all(attempts).await;
    let winners: Vec<usize> = results.iter().enumerate().filter(|(_, r)| r.is_ok()).map(|(i, _)| i).collect();
    assert_eq!(winners.len(), 1, "{results:?}");
    assert!(results.iter().all(|r| matches!(r, Ok(()) | Err(StorageError::Conflict(0)))), "{results:?}");
    assert!(s.get_loaded::<Code>(&c.hash).await.unwrap().expect("kept").consumed);
    assert!(s.get::<Grant>(&g.id).await.unwrap().is_some(), "the grant exists");
    let family: Vec<RefreshToken> = s.find("grant", &g.id).await.unwrap();
    assert_eq!(family.len(), 1, "only the winner's refresh token exists");
    assert_eq!(family[0].hash, format!("{}-r{}", b.tag, winners[0]));
    // A group whose later create meets an existing record fails whole, naming that write.
    let again = s
        .apply(vec![write::create(&grant(&format!("{}-new", b.tag), "c1", "u1")).unwrap(), write::create(&g).unwrap()])
        .await;
    assert!(matches!(again, Err(StorageError::Conflict(1))), "{again:?}");
    assert!(s.get::<Grant>(&format!("{}-new", b.tag)).await.unwrap().is_none(), "nothing of it was written");
    // A consume that held, then a create that meets an existing record: the code stays
    // unconsumed, and no key of the group's records is written.
    let c2 = code(&format!("{}-code2", b.tag), g.clone());
    s.apply(vec![write::create(&c2).unwrap()]).await.expect("code issued");
    let r = refresh(&format!("{}-r-late", b.tag), &g.id, "c1");
    let again =
        s.apply(vec![write::consume::<Code>(&c2.hash), write::create(&r).unwrap(), write::create(&g).unwrap()]).await;
    assert!(matches!(again, Err(StorageError::Conflict(2))), "{again:?}");
    assert!(!s.get_loaded::<Code>(&c2.hash).await.unwrap().expect("kept").consumed, "the consume is undone");
    assert!(s.get::<RefreshToken>(&r.hash).await.unwrap().is_none(), "the refresh token is not written");
    assert_eq!(s.find::<RefreshToken>("grant", &g.id).await.unwrap().len(), 1, "nor its keys");
}

async fn deleting_a_client_removes_everything_issued_to_it(b: &Backend) {
    let s = &b.storage;
    let (c1, c2) = (format!("{}-c1", b.tag), format!("{}-c2", b.tag));
    s.create_client(&client(&c1)).await.expect("client");
    s.create_client(&client(&c2)).await.expect("client");
    assert!(matches!(s.create_client(&client(&c1)).await, Err(StorageError::Duplicate)));
    let (g1, g2) = (grant(&format!("{c1}-g"), &c1, "u1"), grant(&format!("{c2}-g"), &c2, "u1"));
    s.apply(vec![
        write::create(&g1).unwrap(),
        write::create(&g2).unwrap(),
        write::create(&refresh(&format!("{c1}-r"), &g1.id, &c1)).unwrap(),
    ])
    .await
    .expect("issue");
    s.put_consent(&Consent { user_id: "u1".into(), client_id: c1.clone(), scopes: vec![], granted_at: now() })
        .await
        .expect("consent");
    assert!(s.delete_client(&c1).await.expect("delete"));
    assert!(!s.delete_client(&c1).await.expect("delete again"), "a second delete finds nothing");
    assert!(s.get_client(&c1).await.unwrap().is_none(), "gone at once on this replica");
    assert!(s.get::<Grant>(&g1.id).await.unwrap().is_none());
    assert!(s.get::<RefreshToken>(&format!("{c1}-r")).await.unwrap().is_none());
    assert!(s.user_and_consent("u1", &c1).await.unwrap().1.is_none());
    assert!(s.get::<Grant>(&g2.id).await.unwrap().is_some(), "another client's grant stays");
}

async fn usernames_are_unique_and_users_are_found_by_name(b: &Backend) {
    let s = &b.storage;
    let name = format!("alice-{}", b.tag);
    s.create_user(&user(&format!("{}-1", b.tag), &name)).await.expect("user");
    let twin = s.create_user(&user(&format!("{}-2", b.tag), &name)).await;
    assert!(matches!(twin, Err(StorageError::Duplicate)), "{twin:?}");
    assert!(s.get_user(&format!("{}-2", b.tag)).await.unwrap().is_none(), "the refused user was not written");
    assert_eq!(s.find_user(&name).await.unwrap().expect("found").id, format!("{}-1", b.tag));
    assert!(s.find_user(&format!("nobody-{}", b.tag)).await.unwrap().is_none());
}

/// A record kind the storage contract and storage-sql have never heard of: added through
/// the host with no change to either, as device codes (RFC 8628) will be.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct DeviceCode {
    hash: String,
    user_code: String,
    client_id: String,
    expires_at: i64,
}

impl Kind for DeviceCode {
    const KIND: &'static str = "device-code";
    fn id(&self) -> String {
        self.hash.clone()
    }
    fn keys(&self) -> Vec<(&'static str, String)> {
        vec![("user-code", self.user_code.clone())]
    }
    fn expires_at(&self) -> Option<i64> {
        Some(self.expires_at)
    }
}

async fn a_new_record_kind_needs_no_new_function(b: &Backend) {
    let s = &b.storage;
    let device = DeviceCode {
        hash: format!("{}-dc", b.tag),
        user_code: format!("WDJB-{}", b.tag),
        client_id: "tv".into(),
        expires_at: now() + 600,
    };
    s.apply(vec![write::create(&device).unwrap()]).await.expect("stored");
    let found: Vec<DeviceCode> = s.find("user-code", &device.user_code).await.expect("found by its user code");
    assert_eq!(found, vec![device.clone()]);
    let hash = format!("{}-dc", b.tag);
    assert!(s.apply(vec![write::consume::<DeviceCode>(&hash)]).await.is_ok(), "approved once");
    assert!(matches!(s.apply(vec![write::consume::<DeviceCode>(&hash)]).await, Err(StorageError::Conflict(0))));
    assert!(s.get_loaded::<DeviceCode>(&hash).await.unwrap().expect("still there").consumed);
}

macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod embedded_sqlite {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $name() { super::$name(&super::sqlite().await).await } )*
        }
        mod server_database {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $name() { super::$name(&super::server_database().await).await } )*
        }
    };
}

conformance!(
    records_round_trip_opaque_bodies_and_odd_ids,
    create_refuses_an_existing_record_and_groups_are_atomic,
    groups_asked_for_at_once_stand_or_fall_alone,
    put_replaces_body_keys_and_expiry_and_bumps_the_revision,
    update_compares_the_revision,
    consume_is_exactly_once_under_concurrency,
    consume_and_create_rotate_with_one_winner,
    find_and_delete_by_key,
    list_pages_through_one_kind_in_id_order,
    purge_removes_only_what_expired,
    purging_much_that_expired_takes_calls_that_each_remove_a_part,
    revoking_a_grant_removes_its_refresh_tokens,
    a_code_is_redeemed_once_creating_its_grant_and_refresh_token,
    deleting_a_client_removes_everything_issued_to_it,
    usernames_are_unique_and_users_are_found_by_name,
    a_new_record_kind_needs_no_new_function,
);
