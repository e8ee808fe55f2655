//! SQL storage for SQLite and PostgreSQL, through the `database` capability the host lends.
//!
//! Two tables hold every record of every kind: `records` (kind, id, body, expiry, revision,
//! consumed) and `record_keys` (the secondary keys the host looks records up by). The plugin
//! never parses a body and knows no record kind: a new feature of the server is new rows.
//!
//! One code path serves both dialects: `?` placeholders (the host renumbers them for
//! PostgreSQL), BIGINT integers, `CAST(? AS BIGINT)` wherever a NULL may go to an integer
//! column. Only the schema (DDL) looks at the dialect, and one shape of write group that
//! PostgreSQL runs as a single statement (`one_statement`).
//!
//! Concurrency: several server replicas may share one PostgreSQL. Every precondition of a
//! write group is a statement whose row count (or unique key) says whether it held:
//! `consume` and `update` are conditional UPDATEs, so of two concurrent groups touching one
//! record the second waits for the first's row lock and then finds nothing to change;
//! `create` is an INSERT that a concurrent twin's primary key refuses.

mod schema;

use portcullis_sdk::storage::db::{self, DbError, Dialect, Rows, Value};
use portcullis_sdk::storage::{Guest, KeyRef, Record, RecordRef, StorageError, Stored, Write};

struct SqlStorage;

/// What can go wrong inside the plugin, before it becomes a `storage-error`.
enum E {
    /// The precondition of write number N of the group did not hold.
    Precondition(u32),
    /// A unique key refused an INSERT (turned into `Precondition` by the caller).
    Duplicate,
    /// A batched INSERT of several records met an existing one: the group is run again
    /// record by record, to name the write that failed.
    RetrySingly,
    Db(DbError),
    /// A row had a shape the schema does not produce.
    Decode(&'static str),
}

type R<T> = Result<T, E>;

impl From<E> for StorageError {
    fn from(e: E) -> Self {
        match e {
            E::Precondition(i) => StorageError::PreconditionFailed(i),
            E::Duplicate | E::RetrySingly => StorageError::Backend("duplicate key".into()),
            E::Db(DbError::Unavailable(t)) => StorageError::Unavailable(t),
            E::Db(e) => StorageError::Backend(db_error_text(&e)),
            E::Decode(s) => StorageError::Backend(s.into()),
        }
    }
}

fn db_error_text(e: &DbError) -> String {
    let (kind, text) = match e {
        DbError::Constraint(t) => ("constraint violated", t),
        DbError::Statement(t) => ("bad statement", t),
        DbError::Conflict(t) => ("transaction conflict", t),
        DbError::Unavailable(t) => ("database unavailable", t),
    };
    [kind, ": ", text].concat()
}

fn out<T>(r: R<T>) -> Result<T, StorageError> {
    r.map_err(StorageError::from)
}

// ---------------------------------------------------------------------------------------
// Database access

fn query(sql: &str, params: &[Value]) -> R<Rows> {
    db::query(sql, params).map_err(E::Db)
}

fn execute(sql: &str, params: &[Value]) -> R<u64> {
    db::execute(sql, params).map_err(E::Db)
}

/// An INSERT: a constraint violation means the key exists.
fn insert(sql: &str, params: &[Value]) -> R<()> {
    match db::execute(sql, params) {
        Ok(_) => Ok(()),
        Err(DbError::Constraint(_)) => Err(E::Duplicate),
        Err(e) => Err(E::Db(e)),
    }
}

/// Runs `f` inside a transaction: committed when it returns `Ok`, rolled back otherwise.
/// A serialization conflict is retried a few times.
fn transaction<T>(mut f: impl FnMut() -> R<T>) -> R<T> {
    let mut attempts = 0;
    loop {
        attempts += 1;
        db::begin().map_err(E::Db)?;
        let result = f().and_then(|v| db::commit().map(|()| v).map_err(E::Db));
        match result {
            Ok(v) => return Ok(v),
            Err(e) => {
                let _ = db::rollback();
                match e {
                    E::Db(DbError::Conflict(_)) if attempts < 3 => continue,
                    e => return Err(e),
                }
            }
        }
    }
}

fn text(s: &str) -> Value {
    Value::Text(s.to_string())
}

/// An optional integer for a `CAST(? AS BIGINT)` placeholder. The host binds NULL as
/// text, so the number goes as text too: one statement then always binds the same type
/// (PostgreSQL fixes a prepared statement's parameter types on first use).
fn opt_int(i: Option<i64>) -> Value {
    i.map_or(Value::Null, |i| Value::Text(i.to_string()))
}

/// Reads typed columns out of a row, by position.
struct Row(std::vec::IntoIter<Value>);

impl Row {
    fn next(&mut self) -> R<Value> {
        self.0.next().ok_or(E::Decode("a row has fewer columns than selected"))
    }

    fn string(&mut self) -> R<String> {
        match self.next()? {
            Value::Text(s) => Ok(s),
            Value::Blob(b) => String::from_utf8(b).map_err(|_| E::Decode("a text column holds bytes")),
            Value::Integer(i) => Ok(i.to_string()),
            Value::Null => Err(E::Decode("a required text column is NULL")),
            Value::Real(_) => Err(E::Decode("a text column holds a number")),
        }
    }

    fn opt_int(&mut self) -> R<Option<i64>> {
        match self.next()? {
            Value::Null => Ok(None),
            Value::Integer(i) => Ok(Some(i)),
            Value::Real(f) => Ok(Some(f as i64)),
            Value::Text(s) => s.trim().parse().map(Some).map_err(|_| E::Decode("an integer column holds text")),
            Value::Blob(_) => Err(E::Decode("an integer column holds bytes")),
        }
    }

    fn int(&mut self) -> R<i64> {
        self.opt_int()?.ok_or(E::Decode("a required integer column is NULL"))
    }
}

// ---------------------------------------------------------------------------------------
// Records

/// The columns `stored` reads, in order, from `records` aliased `r`.
const COLUMNS: &str = "r.kind, r.id, r.body, r.expires_at, r.revision, r.consumed";

fn stored(row: Vec<Value>) -> R<Stored> {
    let mut r = Row(row.into_iter());
    Ok(Stored {
        kind: r.string()?,
        id: r.string()?,
        body: r.string()?,
        expires_at: r.opt_int()?,
        revision: u64::try_from(r.int()?).map_err(|_| E::Decode("a negative revision"))?,
        consumed: r.int()? != 0,
    })
}

fn all(rows: Rows) -> R<Vec<Stored>> {
    rows.rows.into_iter().map(stored).collect()
}

/// The record's keys, each (name, value) once.
fn distinct_keys(record: &Record) -> Vec<&(String, String)> {
    let mut keys: Vec<&(String, String)> = Vec::with_capacity(record.keys.len());
    for k in &record.keys {
        if !keys.contains(&k) {
            keys.push(k);
        }
    }
    keys
}

/// Writes the keys of `records` (after their old ones were removed), in one statement.
fn insert_keys<'a>(records: impl IntoIterator<Item = &'a Record>) -> R<()> {
    let mut sql = String::from("INSERT INTO record_keys (kind, name, value, id) VALUES ");
    let mut params = Vec::new();
    for record in records {
        for (name, value) in distinct_keys(record) {
            sql.push_str(if params.is_empty() { "(?, ?, ?, ?)" } else { ", (?, ?, ?, ?)" });
            params.extend([text(&record.kind), text(name), text(value), text(&record.id)]);
        }
    }
    if params.is_empty() {
        return Ok(());
    }
    execute(&sql, &params).map(drop)
}

/// Consecutive `create`s of a group, the first of them write number `first`: their records
/// in one INSERT and their keys in another, so a group costs few round trips.
fn create_all(first: u32, records: &[&Record], batched: bool) -> R<()> {
    if records.len() > 1 && batched {
        let mut sql =
            String::from("INSERT INTO records (kind, id, body, expires_at, revision, consumed) VALUES ");
        let mut params = Vec::with_capacity(records.len() * 4);
        for (i, r) in records.iter().enumerate() {
            sql.push_str(if i == 0 {
                "(?, ?, ?, CAST(? AS BIGINT), 1, 0)"
            } else {
                ", (?, ?, ?, CAST(? AS BIGINT), 1, 0)"
            });
            params.extend([text(&r.kind), text(&r.id), text(&r.body), opt_int(r.expires_at)]);
        }
        match insert(&sql, &params) {
            Err(E::Duplicate) => return Err(E::RetrySingly),
            other => other?,
        }
    } else {
        for (i, r) in records.iter().enumerate() {
            match insert(
                "INSERT INTO records (kind, id, body, expires_at, revision, consumed) \
                 VALUES (?, ?, ?, CAST(? AS BIGINT), 1, 0)",
                &[text(&r.kind), text(&r.id), text(&r.body), opt_int(r.expires_at)],
            ) {
                Err(E::Duplicate) => return Err(E::Precondition(first + i as u32)),
                other => other?,
            }
        }
    }
    insert_keys(records.iter().copied())
}

fn delete_keys(kind: &str, id: &str) -> R<()> {
    execute("DELETE FROM record_keys WHERE kind = ? AND id = ?", &[text(kind), text(id)]).map(drop)
}

/// One write of a group; `index` names it when its precondition fails.
fn write(index: u32, w: &Write) -> R<()> {
    let failed = || E::Precondition(index);
    match w {
        Write::Create(r) => create_all(index, &[r], false),
        Write::Put(r) => {
            execute(
                "INSERT INTO records (kind, id, body, expires_at, revision, consumed) \
                 VALUES (?, ?, ?, CAST(? AS BIGINT), 1, 0) \
                 ON CONFLICT (kind, id) DO UPDATE SET body = excluded.body, \
                 expires_at = excluded.expires_at, revision = records.revision + 1",
                &[text(&r.kind), text(&r.id), text(&r.body), opt_int(r.expires_at)],
            )?;
            delete_keys(&r.kind, &r.id)?;
            insert_keys([r])
        }
        Write::Update(u) => {
            let r = &u.record;
            let revision = i64::try_from(u.revision).map_err(|_| failed())?;
            let changed = execute(
                "UPDATE records SET body = ?, expires_at = CAST(? AS BIGINT), revision = revision + 1 \
                 WHERE kind = ? AND id = ? AND revision = ?",
                &[text(&r.body), opt_int(r.expires_at), text(&r.kind), text(&r.id), Value::Integer(revision)],
            )?;
            if changed == 0 {
                return Err(failed());
            }
            delete_keys(&r.kind, &r.id)?;
            insert_keys([r])
        }
        Write::Consume(at) => {
            let changed = execute(
                "UPDATE records SET consumed = 1, revision = revision + 1 \
                 WHERE kind = ? AND id = ? AND consumed = 0",
                &[text(&at.kind), text(&at.id)],
            )?;
            if changed == 0 {
                return Err(failed());
            }
            Ok(())
        }
        Write::Delete(at) => {
            delete_keys(&at.kind, &at.id)?;
            execute("DELETE FROM records WHERE kind = ? AND id = ?", &[text(&at.kind), text(&at.id)]).map(drop)
        }
        Write::DeleteByKey(key) => {
            let p = [text(&key.kind), text(&key.kind), text(&key.name), text(&key.value)];
            execute(
                "DELETE FROM records WHERE kind = ? AND id IN \
                 (SELECT id FROM record_keys WHERE kind = ? AND name = ? AND value = ?)",
                &p,
            )?;
            execute(
                "DELETE FROM record_keys WHERE kind = ? AND id IN \
                 (SELECT id FROM record_keys WHERE kind = ? AND name = ? AND value = ?)",
                &p,
            )
            .map(drop)
        }
    }
}

/// Whether a group is one statement, atomic without a transaction of its own (which on
/// SQLite costs two more round trips and the write lock for longer).
fn single_statement(writes: &[Write]) -> bool {
    match writes {
        [Write::Consume(_)] => true,
        [Write::Create(r)] => r.keys.is_empty(),
        _ => false,
    }
}

/// A group that creates records, after consuming one at most (its first write), as one
/// statement for PostgreSQL: the consume and the inserts are data-modifying `WITH` clauses,
/// the inserts made only if the consume changed its row, and the statement answers how many
/// rows it consumed. A statement is atomic without a transaction: one round trip instead of
/// one per write and two more for `BEGIN` and `COMMIT`. SQLite has no data-modifying `WITH`.
/// `None`: the group has another shape.
fn one_statement(writes: &[Write]) -> Option<(String, Vec<Value>)> {
    let (consume, creates) = match writes {
        [Write::Consume(at), rest @ ..] => (Some(at), rest),
        all => (None, all),
    };
    let records: Vec<&Record> = creates
        .iter()
        .map(|w| match w {
            Write::Create(r) => Some(r),
            _ => None,
        })
        .collect::<Option<_>>()?;
    if records.is_empty() {
        return None;
    }
    let mut sql = String::from("WITH ");
    let mut params = Vec::new();
    let mut only_if_consumed = "";
    if let Some(at) = consume {
        sql.push_str(
            "consumed AS (UPDATE records SET consumed = 1, revision = revision + 1 \
             WHERE kind = ? AND id = ? AND consumed = 0 RETURNING 1), ",
        );
        params.extend([text(&at.kind), text(&at.id)]);
        only_if_consumed = " WHERE EXISTS (SELECT 1 FROM consumed)";
    }
    sql.push_str(
        "created AS (INSERT INTO records (kind, id, body, expires_at, revision, consumed) \
         SELECT v.kind, v.id, v.body, v.expires_at, 1, 0 FROM (VALUES ",
    );
    for (i, r) in records.iter().enumerate() {
        sql.push_str(if i == 0 { "(?, ?, ?, CAST(? AS BIGINT))" } else { ", (?, ?, ?, CAST(? AS BIGINT))" });
        params.extend([text(&r.kind), text(&r.id), text(&r.body), opt_int(r.expires_at)]);
    }
    sql.push_str(") AS v (kind, id, body, expires_at)");
    sql.push_str(only_if_consumed);
    sql.push(')');
    let mut keyed = false;
    for r in &records {
        for (name, value) in distinct_keys(r) {
            sql.push_str(if keyed {
                ", (?, ?, ?, ?)"
            } else {
                ", keyed AS (INSERT INTO record_keys (kind, name, value, id) \
                 SELECT v.kind, v.name, v.value, v.id FROM (VALUES (?, ?, ?, ?)"
            });
            keyed = true;
            params.extend([text(&r.kind), text(name), text(value), text(&r.id)]);
        }
    }
    if keyed {
        sql.push_str(") AS v (kind, name, value, id)");
        sql.push_str(only_if_consumed);
        sql.push(')');
    }
    sql.push_str(if consume.is_some() { " SELECT (SELECT count(*) FROM consumed)" } else { " SELECT 1" });
    Some((sql, params))
}

/// Runs a group `one_statement` made: a consume that changed no row is write 0's failed
/// precondition (and nothing was written); a create that met an existing record refuses the
/// whole statement, and the group is run again record by record, to name the write.
fn run_one_statement(sql: &str, params: &[Value]) -> R<()> {
    let mut attempts = 0;
    loop {
        attempts += 1;
        match db::query(sql, params) {
            Ok(rows) => {
                let consumed = rows.rows.into_iter().next().map(|row| Row(row.into_iter()).int()).transpose()?;
                return if consumed == Some(0) { Err(E::Precondition(0)) } else { Ok(()) };
            }
            Err(DbError::Constraint(_)) => return Err(E::RetrySingly),
            Err(DbError::Conflict(_)) if attempts < 3 => continue,
            Err(e) => return Err(E::Db(e)),
        }
    }
}

// ---------------------------------------------------------------------------------------
// The storage interface

impl Guest for SqlStorage {
    fn migrate() -> Result<(), StorageError> {
        out(schema::migrate())
    }

    fn get(refs: Vec<RecordRef>) -> Result<Vec<Option<Stored>>, StorageError> {
        if refs.is_empty() {
            return Ok(Vec::new());
        }
        // One round trip for all of them.
        let mut sql = ["SELECT ", COLUMNS, " FROM records r WHERE "].concat();
        let mut params = Vec::with_capacity(refs.len() * 2);
        for (i, at) in refs.iter().enumerate() {
            sql.push_str(if i == 0 { "(r.kind = ? AND r.id = ?)" } else { " OR (r.kind = ? AND r.id = ?)" });
            params.extend([text(&at.kind), text(&at.id)]);
        }
        let mut found = out(query(&sql, &params).and_then(all))?;
        Ok(refs
            .iter()
            .map(|at| {
                let i = found.iter().position(|s| s.kind == at.kind && s.id == at.id)?;
                Some(found.swap_remove(i))
            })
            .collect())
    }

    fn find(key: KeyRef) -> Result<Vec<Stored>, StorageError> {
        out(query(
            &[
                "SELECT ",
                COLUMNS,
                " FROM record_keys k JOIN records r ON r.kind = k.kind AND r.id = k.id \
                 WHERE k.kind = ? AND k.name = ? AND k.value = ? ORDER BY r.id",
            ]
            .concat(),
            &[text(&key.kind), text(&key.name), text(&key.value)],
        )
        .and_then(all))
    }

    fn list(kind: String, after: Option<String>, limit: u32) -> Result<Vec<Stored>, StorageError> {
        let limit = Value::Integer(i64::from(limit));
        out(match after {
            Some(after) => query(
                &["SELECT ", COLUMNS, " FROM records r WHERE r.kind = ? AND r.id > ? ORDER BY r.id LIMIT ?"].concat(),
                &[text(&kind), text(&after), limit],
            ),
            None => query(
                &["SELECT ", COLUMNS, " FROM records r WHERE r.kind = ? ORDER BY r.id LIMIT ?"].concat(),
                &[text(&kind), limit],
            ),
        }
        .and_then(all))
    }

    fn apply(writes: Vec<Write>) -> Result<(), StorageError> {
        if writes.is_empty() {
            return Ok(());
        }
        let index = |i: usize| u32::try_from(i).unwrap_or(u32::MAX);
        let run = |batched: bool| {
            let mut i = 0;
            while i < writes.len() {
                let creates: Vec<&Record> = writes[i..]
                    .iter()
                    .map_while(|w| match w {
                        Write::Create(r) => Some(r),
                        _ => None,
                    })
                    .collect();
                if creates.is_empty() {
                    write(index(i), &writes[i])?;
                    i += 1;
                } else {
                    create_all(index(i), &creates, batched)?;
                    i += creates.len();
                }
            }
            Ok(())
        };
        out(if single_statement(&writes) {
            run(false)
        } else {
            let one = match db::dialect() {
                Dialect::Postgres => one_statement(&writes),
                Dialect::Sqlite => None,
            };
            let tried = match one {
                Some((sql, params)) => run_one_statement(&sql, &params),
                None => transaction(|| run(true)),
            };
            match tried {
                Err(E::RetrySingly) => transaction(|| run(false)),
                other => other,
            }
        })
    }

    /// At most `PURGE_BATCH` of the records expired before `now` (the earliest first) and
    /// their keys, in one short transaction: a call never holds the write lock long, however
    /// much has expired. The host calls again while a call purges anything.
    fn purge_expired(now: i64) -> Result<u64, StorageError> {
        out(transaction(|| {
            let batch = query(
                "SELECT kind, id FROM records WHERE expires_at < ? ORDER BY expires_at LIMIT ?",
                &[Value::Integer(now), Value::Integer(PURGE_BATCH)],
            )?;
            // Grouped by kind, each group removed by its ids: the keys and the records of
            // exactly these rows, whatever another replica purges meanwhile.
            let mut by_kind: std::collections::BTreeMap<String, Vec<String>> = Default::default();
            for row in batch.rows {
                let mut row = Row(row.into_iter());
                let kind = row.string()?;
                by_kind.entry(kind).or_default().push(row.string()?);
            }
            let mut purged = 0;
            for (kind, ids) in &by_kind {
                for ids in ids.chunks(PURGE_STATEMENT_IDS) {
                    let placeholders = vec!["?"; ids.len()].join(", ");
                    let params: Vec<Value> = std::iter::once(text(kind)).chain(ids.iter().map(|id| text(id))).collect();
                    execute(&format!("DELETE FROM record_keys WHERE kind = ? AND id IN ({placeholders})"), &params)?;
                    purged += execute(&format!("DELETE FROM records WHERE kind = ? AND id IN ({placeholders})"), &params)?;
                }
            }
            Ok(purged)
        }))
    }
}

/// Expired records one `purge_expired` call removes at most.
const PURGE_BATCH: i64 = 2000;

/// Ids one DELETE names (well within SQLite's and PostgreSQL's bounds on parameters).
const PURGE_STATEMENT_IDS: usize = 500;

portcullis_sdk::export_storage!(SqlStorage);
