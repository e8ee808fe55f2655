//! SQL storage for SQLite and PostgreSQL, through the `database` capability the host lends.
//!
//! Two tables hold every record of every kind: `records` (kind, id, body, expiry, revision,
//! consumed, and the list of the record's keys) and `record_keys` (the secondary keys the host
//! looks records up by). The plugin never parses a body and knows no record kind: a new
//! feature of the server is new rows.
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

/// A record's secondary keys, (name, value) each.
type Keys = Vec<(String, String)>;

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

/// The `key_list` column: each of a record's keys as `<length>:<name><length>:<value>`, the
/// lengths counted in characters, as SQL's `length` counts them (migration 3 lists the keys
/// of the rows it finds in SQL).
fn key_list<'a>(keys: impl IntoIterator<Item = &'a (String, String)>) -> String {
    let mut list = String::new();
    for (name, value) in keys {
        for part in [name, value] {
            list.push_str(&part.chars().count().to_string());
            list.push(':');
            list.push_str(part);
        }
    }
    list
}

/// A row's revision and its keys as it lists them, from its columns `revision,
/// keys_revision, key_list`; `None` when the list cannot be trusted: written for another
/// revision (an older plugin changed the row without listing its keys), NULL (an older plugin
/// wrote the row) or malformed.
fn listed(row: &mut Row) -> R<(i64, Option<Keys>)> {
    let revision = row.int()?;
    let listed_at = row.opt_int()?;
    let list = row.next()?;
    Ok((revision, if listed_at == Some(revision) { listed_keys(list) } else { None }))
}

/// The columns `listed` reads, in order.
macro_rules! listed_columns {
    () => {
        "revision, keys_revision, key_list"
    };
}

/// For a write that moves a row to its next revision and keeps its keys (`SET revision =
/// revision + 1, ` and this): the key list holds for the next revision if it held for this
/// one. `$table` qualifies the columns (`"records."` in an upsert).
macro_rules! list_follows {
    ($table:literal) => {
        concat!(
            "keys_revision = CASE WHEN ",
            $table,
            "keys_revision = ",
            $table,
            "revision THEN ",
            $table,
            "revision + 1 END"
        )
    };
}

/// The keys a `key_list` column lists; `None` for a NULL or a malformed list.
fn listed_keys(list: Value) -> Option<Keys> {
    let Value::Text(list) = list else { return None };
    let mut rest = list.as_str();
    let mut keys = Vec::new();
    while !rest.is_empty() {
        let name = listed_part(&mut rest)?;
        keys.push((name, listed_part(&mut rest)?));
    }
    Some(keys)
}

/// The `<length>:<text>` at the start of `rest`, which it then leaves out.
fn listed_part(rest: &mut &str) -> Option<String> {
    let (length, tail) = rest.split_once(':')?;
    let length: usize = length.parse().ok()?;
    let end = match tail.char_indices().nth(length) {
        Some((end, _)) => end,
        None if tail.chars().count() == length => tail.len(),
        None => return None,
    };
    *rest = &tail[end..];
    Some(tail[..end].to_owned())
}

/// Writes these keys of these records, in one statement.
fn insert_keys<'a>(keys: impl IntoIterator<Item = (&'a Record, &'a (String, String))>) -> R<()> {
    let mut sql = String::from("INSERT INTO record_keys (kind, name, value, id) VALUES ");
    let mut params = Vec::new();
    for (record, (name, value)) in keys {
        sql.push_str(if params.is_empty() { "(?, ?, ?, ?)" } else { ", (?, ?, ?, ?)" });
        params.extend([text(&record.kind), text(name), text(value), text(&record.id)]);
    }
    if params.is_empty() {
        return Ok(());
    }
    execute(&sql, &params).map(drop)
}

/// Every key of these new records.
fn insert_all_keys<'a>(records: impl IntoIterator<Item = &'a Record>) -> R<()> {
    insert_keys(records.into_iter().flat_map(|r| distinct_keys(r).into_iter().map(move |k| (r, k))))
}

/// Removes these keys, each named whole (`(kind, name, value, id)`, `record_keys`' primary
/// key), a few hundred to a statement.
fn delete_listed_keys(keys: &[(&str, &str, &str, &str)]) -> R<()> {
    for chunk in keys.chunks(PURGE_STATEMENT_IDS) {
        let mut sql = String::from(
            "DELETE FROM record_keys WHERE (kind, name, value, id) IN \
             (SELECT column1, column2, column3, column4 FROM (VALUES ",
        );
        let mut params = Vec::with_capacity(chunk.len() * 4);
        for (i, (kind, name, value, id)) in chunk.iter().enumerate() {
            sql.push_str(if i == 0 { "(?, ?, ?, ?)" } else { ", (?, ?, ?, ?)" });
            params.extend([text(kind), text(name), text(value), text(id)]);
        }
        sql.push_str(") AS v)");
        execute(&sql, &params)?;
    }
    Ok(())
}

/// Removes the rows of `table` (`records`, or `record_keys`: every key of these records) of
/// one kind and these ids, a few hundred ids to a statement; the rows it removed.
fn delete_by_ids(table: &str, kind: &str, ids: &[&str]) -> R<u64> {
    let mut deleted = 0;
    for ids in ids.chunks(PURGE_STATEMENT_IDS) {
        let placeholders = vec!["?"; ids.len()].join(", ");
        let params: Vec<Value> = std::iter::once(text(kind)).chain(ids.iter().map(|id| text(id))).collect();
        deleted += execute(&format!("DELETE FROM {table} WHERE kind = ? AND id IN ({placeholders})"), &params)?;
    }
    Ok(deleted)
}

/// Removes the keys of a record that is gone, as its row listed them (`None`: unlisted, all
/// its keys found by its id).
fn delete_keys(kind: &str, id: &str, listed: Option<Keys>) -> R<()> {
    match listed {
        Some(keys) => {
            let keys: Vec<_> = keys.iter().map(|(n, v)| (kind, n.as_str(), v.as_str(), id)).collect();
            delete_listed_keys(&keys)
        }
        None => delete_by_ids("record_keys", kind, &[id]).map(drop),
    }
}

/// After a record's row was replaced, its keys listed as `listed` before (`None`: unlisted):
/// its keys become the record's. Only those that changed are written, and the row lists
/// them again when they changed.
fn rekey(r: &Record, listed: Option<Keys>) -> R<()> {
    let keys = distinct_keys(r);
    match listed {
        Some(old) => {
            let gone: Vec<_> = old
                .iter()
                .filter(|k| !keys.contains(k))
                .map(|(n, v)| (r.kind.as_str(), n.as_str(), v.as_str(), r.id.as_str()))
                .collect();
            let new: Vec<_> = keys.iter().copied().filter(|k| !old.contains(k)).collect();
            if gone.is_empty() && new.is_empty() {
                return Ok(());
            }
            delete_listed_keys(&gone)?;
            insert_keys(new.into_iter().map(|k| (r, k)))?;
        }
        None => {
            delete_keys(&r.kind, &r.id, None)?;
            insert_all_keys([r])?;
        }
    }
    execute(
        "UPDATE records SET key_list = ?, keys_revision = revision WHERE kind = ? AND id = ?",
        &[text(&key_list(keys)), text(&r.kind), text(&r.id)],
    )
    .map(drop)
}

/// Consecutive `create`s of a group, the first of them write number `first`: their records
/// in one INSERT and their keys in another, so a group costs few round trips.
fn create_all(first: u32, records: &[&Record], batched: bool) -> R<()> {
    if records.len() > 1 && batched {
        let mut sql = String::from(
            "INSERT INTO records (kind, id, body, expires_at, revision, consumed, key_list, keys_revision) VALUES ",
        );
        let mut params = Vec::with_capacity(records.len() * 5);
        for (i, r) in records.iter().enumerate() {
            sql.push_str(if i == 0 {
                "(?, ?, ?, CAST(? AS BIGINT), 1, 0, ?, 1)"
            } else {
                ", (?, ?, ?, CAST(? AS BIGINT), 1, 0, ?, 1)"
            });
            params.extend(new_row(r));
        }
        match insert(&sql, &params) {
            Err(E::Duplicate) => return Err(E::RetrySingly),
            other => other?,
        }
    } else {
        for (i, r) in records.iter().enumerate() {
            match insert(
                "INSERT INTO records (kind, id, body, expires_at, revision, consumed, key_list, keys_revision) \
                 VALUES (?, ?, ?, CAST(? AS BIGINT), 1, 0, ?, 1)",
                &new_row(r),
            ) {
                Err(E::Duplicate) => return Err(E::Precondition(first + i as u32)),
                other => other?,
            }
        }
    }
    insert_all_keys(records.iter().copied())
}

/// A new row's kind, id, body, expiry and key list, for `(?, ?, ?, CAST(? AS BIGINT), ?)`.
fn new_row(r: &Record) -> [Value; 5] {
    [text(&r.kind), text(&r.id), text(&r.body), opt_int(r.expires_at), text(&key_list(distinct_keys(r)))]
}

/// The one row a statement `RETURNING` columns answered, if any.
fn returned(rows: Rows) -> Option<Row> {
    rows.rows.into_iter().next().map(|row| Row(row.into_iter()))
}

/// One write of a group; `index` names it when its precondition fails.
fn write(index: u32, w: &Write) -> R<()> {
    let failed = || E::Precondition(index);
    match w {
        Write::Create(r) => create_all(index, &[r], false),
        Write::Put(r) => {
            // A replaced row keeps its key list until `rekey`: the statement answers the keys
            // the row listed (under the row's lock, on PostgreSQL).
            let sql = concat!(
                "INSERT INTO records (kind, id, body, expires_at, revision, consumed, key_list, keys_revision) \
                 VALUES (?, ?, ?, CAST(? AS BIGINT), 1, 0, ?, 1) \
                 ON CONFLICT (kind, id) DO UPDATE SET body = excluded.body, \
                 expires_at = excluded.expires_at, revision = records.revision + 1, ",
                list_follows!("records."),
                " RETURNING ",
                listed_columns!()
            );
            let mut row = returned(query(sql, &new_row(r))?).ok_or(E::Decode("an upsert returned no row"))?;
            match listed(&mut row)? {
                (1, _) => insert_all_keys([r]),
                (_, listed) => rekey(r, listed),
            }
        }
        Write::Update(u) => {
            let r = &u.record;
            let revision = i64::try_from(u.revision).map_err(|_| failed())?;
            let sql = concat!(
                "UPDATE records SET body = ?, expires_at = CAST(? AS BIGINT), revision = revision + 1, ",
                list_follows!(""),
                " WHERE kind = ? AND id = ? AND revision = ? RETURNING ",
                listed_columns!()
            );
            let params = [text(&r.body), opt_int(r.expires_at), text(&r.kind), text(&r.id), Value::Integer(revision)];
            let mut row = returned(query(sql, &params)?).ok_or_else(failed)?;
            rekey(r, listed(&mut row)?.1)
        }
        Write::Consume(at) => {
            let changed = execute(
                concat!(
                    "UPDATE records SET consumed = 1, revision = revision + 1, ",
                    list_follows!(""),
                    " WHERE kind = ? AND id = ? AND consumed = 0"
                ),
                &[text(&at.kind), text(&at.id)],
            )?;
            if changed == 0 {
                return Err(failed());
            }
            Ok(())
        }
        Write::Delete(at) => {
            let deleted = query(
                concat!("DELETE FROM records WHERE kind = ? AND id = ? RETURNING ", listed_columns!()),
                &[text(&at.kind), text(&at.id)],
            )?;
            match returned(deleted) {
                Some(mut row) => delete_keys(&at.kind, &at.id, listed(&mut row)?.1),
                None => Ok(()),
            }
        }
        Write::DeleteByKey(key) => {
            let sql = concat!(
                "DELETE FROM records WHERE kind = ? AND id IN \
                 (SELECT id FROM record_keys WHERE kind = ? AND name = ? AND value = ?) \
                 RETURNING id, ",
                listed_columns!()
            );
            let deleted = query(sql, &[text(&key.kind), text(&key.kind), text(&key.name), text(&key.value)])?;
            for row in deleted.rows {
                let mut row = Row(row.into_iter());
                let id = row.string()?;
                delete_keys(&key.kind, &id, listed(&mut row)?.1)?;
            }
            Ok(())
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
        sql.push_str(concat!(
            "consumed AS (UPDATE records SET consumed = 1, revision = revision + 1, ",
            list_follows!(""),
            " WHERE kind = ? AND id = ? AND consumed = 0 RETURNING 1), "
        ));
        params.extend([text(&at.kind), text(&at.id)]);
        only_if_consumed = " WHERE EXISTS (SELECT 1 FROM consumed)";
    }
    sql.push_str(
        "created AS (INSERT INTO records (kind, id, body, expires_at, revision, consumed, key_list, keys_revision) \
         SELECT v.kind, v.id, v.body, v.expires_at, 1, 0, v.key_list, 1 FROM (VALUES ",
    );
    for (i, r) in records.iter().enumerate() {
        sql.push_str(if i == 0 { "(?, ?, ?, CAST(? AS BIGINT), ?)" } else { ", (?, ?, ?, CAST(? AS BIGINT), ?)" });
        params.extend(new_row(r));
    }
    sql.push_str(") AS v (kind, id, body, expires_at, key_list)");
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
                concat!(
                    "SELECT kind, id, ",
                    listed_columns!(),
                    " FROM records WHERE expires_at < ? ORDER BY expires_at LIMIT ?"
                ),
                &[Value::Integer(now), Value::Integer(PURGE_BATCH)],
            )?;
            // Grouped by kind, each group removed by its ids: the keys and the records of
            // exactly these rows, whatever another replica purges meanwhile. The keys their
            // rows list go by their primary key, an unlisted row's by its id.
            let mut by_kind: std::collections::BTreeMap<String, Vec<(String, Option<Keys>)>> = Default::default();
            for row in batch.rows {
                let mut row = Row(row.into_iter());
                let kind = row.string()?;
                let id = row.string()?;
                by_kind.entry(kind).or_default().push((id, listed(&mut row)?.1));
            }
            let mut purged = 0;
            for (kind, rows) in &by_kind {
                let listed: Vec<_> = rows
                    .iter()
                    .filter_map(|(id, keys)| Some((id, keys.as_ref()?)))
                    .flat_map(|(id, keys)| {
                        keys.iter().map(move |(n, v)| (kind.as_str(), n.as_str(), v.as_str(), id.as_str()))
                    })
                    .collect();
                delete_listed_keys(&listed)?;
                let unlisted: Vec<&str> =
                    rows.iter().filter(|(_, keys)| keys.is_none()).map(|(id, _)| id.as_str()).collect();
                delete_by_ids("record_keys", kind, &unlisted)?;
                let ids: Vec<&str> = rows.iter().map(|(id, _)| id.as_str()).collect();
                purged += delete_by_ids("records", kind, &ids)?;
            }
            Ok(purged)
        }))
    }
}

/// Expired records one `purge_expired` call removes at most.
const PURGE_BATCH: i64 = 2000;

/// Ids or keys one DELETE names (well within SQLite's and PostgreSQL's bounds on parameters).
const PURGE_STATEMENT_IDS: usize = 500;

portcullis_sdk::export_storage!(SqlStorage);

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(name: &str, value: &str) -> (String, String) {
        (name.to_owned(), value.to_owned())
    }

    #[test]
    fn a_key_list_reads_back_as_the_keys_it_lists() {
        let keys = [pair("user", "ünï:cøde"), pair("", ""), pair("12:3", "a\u{1F600}b"), pair("client", "c-1")];
        let list = key_list(&keys);
        assert_eq!(list, "4:user8:ünï:cøde0:0:4:12:33:a\u{1F600}b6:client3:c-1");
        assert_eq!(listed_keys(Value::Text(list)), Some(keys.to_vec()));
        assert_eq!(listed_keys(Value::Text(String::new())), Some(Vec::new()));
    }

    #[test]
    fn an_unlisted_or_malformed_key_list_is_not_read() {
        assert_eq!(listed_keys(Value::Null), None, "a row an older plugin wrote");
        for bad in ["4:user", "4:use", "x:user0:", "9:user3:abc", "4:user3:ab", ":"] {
            assert_eq!(listed_keys(Value::Text(bad.into())), None, "{bad}");
        }
    }
}
