//! The host side of `portcullis:plugin/database`: the capability storage plugins get.
//! SQLite (rusqlite: writes on one connection, reads on read-only ones) or PostgreSQL (an
//! sqlx pool); at most one transaction per plugin call, held in the call's `Store` so that
//! it rolls back when the call ends without `commit`.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPoolOptions, PgRow};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{Column, Row, TransactionManager as _, TypeInfo, ValueRef};
use tokio::sync::{Mutex, OwnedMutexGuard};
use wasmtime::StoreContextMut;
use wasmtime::component::Linker;

use super::Contract;
use super::call::CallState;
use super::contract::interface;
use super::contract::v0_5::storage_world::portcullis::plugin::database::{DbError, Dialect, Host, Rows, Value};
use super::pg_pool::{self, Pooled};
use super::writer::{self, Checkpointer, Writer};
use crate::limits::SQLITE_WAL_PAGES_WRITER_CHECKPOINTS;

/// The operator's database, shared by every call of every storage plugin.
#[derive(Clone, Debug)]
pub enum Database {
    /// SQLite has one writer at a time. Every write of this process goes through `write`,
    /// one connection, so writers queue on it instead of on SQLite's busy handler (which
    /// sleeps and would put tens of milliseconds on the latency tail; the busy timeout still
    /// covers other processes, such as the CLI). Write groups run on `writer`, a thread of
    /// their own: SQLite's write lock is held only while statements run. Reads take a
    /// read-only connection from `read`, which WAL never makes wait for a writer; an
    /// in-memory database has no `read` and is read through `write`, its one connection.
    /// Statements run on the thread that asks for them, with no hand-off to another thread
    /// per statement: an indexed read or write of a few rows takes microseconds.
    ///
    /// Several groups share one transaction (group commit: `writer.rs`). Checkpoints (copying
    /// the write-ahead log back into the database file) run on a thread of their own,
    /// [`Checkpointer`], not on the writer's: a writer that checkpoints holds every group
    /// queued behind it while it copies pages and waits for `fsync`.
    Sqlite {
        read: Option<Arc<ReadPool>>,
        write: Arc<Mutex<rusqlite::Connection>>,
        writer: Writer,
        _checkpoints: Option<Arc<Checkpointer>>,
    },
    Postgres {
        pool: pg_pool::Pool,
        /// Where the database is, for the listener's connection of its own.
        options: Arc<PgConnectOptions>,
        acquire_timeout: Duration,
        /// This process's name in what it announces, so that it does not hear itself.
        origin: Arc<str>,
    },
}

impl Database {
    /// Opens the database. `acquire_timeout` bounds how long a PostgreSQL statement waits for
    /// a connection, and how long opening or checking one may take (`pg_pool.rs`).
    pub async fn connect(url: &str, max_connections: u32, acquire_timeout: Duration) -> Result<Self, sqlx::Error> {
        if url.starts_with("sqlite:") {
            let configuration = |e: rusqlite::Error| sqlx::Error::Configuration(e.into());
            if url.contains(":memory:") || url.contains("mode=memory") {
                let write = Arc::new(Mutex::new(rusqlite::Connection::open_in_memory().map_err(configuration)?));
                let writer = Writer::start(write.clone()).map_err(sqlx::Error::Io)?;
                return Ok(Self::Sqlite { read: None, write, writer, _checkpoints: None });
            }
            let path = SqliteConnectOptions::from_str(url)?.get_filename().to_path_buf();
            let write = Arc::new(Mutex::new(write_connection(&path).map_err(configuration)?));
            let writer = Writer::start(write.clone()).map_err(sqlx::Error::Io)?;
            let checkpoints = Checkpointer::start(&path).map_err(sqlx::Error::Io)?;
            let read = ReadPool { path, max: max_connections.max(1) as usize, idle: parking_lot::Mutex::default() };
            Ok(Self::Sqlite { read: Some(Arc::new(read)), write, writer, _checkpoints: Some(Arc::new(checkpoints)) })
        } else {
            let options = PgConnectOptions::from_str(url)?;
            let pool = pg_pool::pool(options.clone(), max_connections, acquire_timeout)?;
            // Reached now, or the start fails saying why.
            drop(pg_pool::get(&pool).await?);
            let (options, origin) = (Arc::new(options), crate::crypto::random_token(12).into());
            Ok(Self::Postgres { pool, options, acquire_timeout, origin })
        }
    }

    pub fn dialect(&self) -> Dialect {
        match self {
            Self::Sqlite { .. } => Dialect::Sqlite,
            Self::Postgres { .. } => Dialect::Postgres,
        }
    }

    /// How long a statement may wait for a connection (PostgreSQL; SQLite's writers queue).
    pub fn acquire_timeout(&self) -> Option<Duration> {
        match self {
            Self::Sqlite { .. } => None,
            Self::Postgres { acquire_timeout, .. } => Some(*acquire_timeout),
        }
    }

    /// Where write groups run: SQLite's writer thread, or (PostgreSQL, whose writers lock
    /// rows, not the database) wherever the request is.
    pub fn writer(&self) -> Option<&Writer> {
        match self {
            Self::Sqlite { writer, .. } => Some(writer),
            Self::Postgres { .. } => None,
        }
    }
}

/// The PostgreSQL channel on which processes sharing a database announce their writes.
const CHANNEL: &str = "portcullis_writes";

/// What another process on the database announced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Announcement {
    /// It wrote records of this kind.
    Wrote(String),
    /// This process was not listening for a while (it has just started, or its connection
    /// was lost): what was announced meanwhile is unknown.
    Missed,
}

impl Database {
    /// Tells the other processes on the database that records of `kind` were written:
    /// PostgreSQL's `NOTIFY`. SQLite has no notifications; its other processes (the CLI
    /// beside a server) are heard of by the clock alone.
    pub(crate) async fn announce(&self, kind: &str) -> Result<(), sqlx::Error> {
        let Self::Postgres { pool, origin, .. } = self else { return Ok(()) };
        let mut connection = pg_pool::get(pool).await?;
        let notify = sqlx::query("SELECT pg_notify($1, $2)").bind(CHANNEL).bind(format!("{origin} {kind}"));
        notify.execute(connection.in_use()).await?;
        connection.done();
        Ok(())
    }

    /// What the other processes announce, as it arrives (`LISTEN`, on a connection of its
    /// own, made again whenever it is lost); none on SQLite.
    pub(crate) fn announcements(&self) -> Option<tokio::sync::mpsc::Receiver<Announcement>> {
        let Self::Postgres { options, origin, .. } = self else { return None };
        let (heard, announcements) = tokio::sync::mpsc::channel(64);
        let options = options.as_ref().clone();
        tokio::spawn(listen(options, origin.clone(), heard));
        Some(announcements)
    }
}

/// Listens until nobody wants to hear any more, connecting again a second after a failure.
async fn listen(
    options: sqlx::postgres::PgConnectOptions,
    origin: Arc<str>,
    heard: tokio::sync::mpsc::Sender<Announcement>,
) {
    // A pool of one connection that never expires: the listener's, apart from the pool of
    // statements, whose connections it would otherwise hold.
    let pool = PgPoolOptions::new().max_connections(1).max_lifetime(None).idle_timeout(None).connect_lazy_with(options);
    let mine = format!("{origin} ");
    'connect: while !heard.is_closed() {
        let mut listener = match sqlx::postgres::PgListener::connect_with(&pool).await {
            Ok(listener) => listener,
            Err(e) => {
                tracing::warn!(error = %e, "listening for other replicas' writes: cannot connect; trying again");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if let Err(e) = listener.listen(CHANNEL).await {
            tracing::warn!(error = %e, "listening for other replicas' writes failed; trying again");
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        }
        loop {
            if heard.send(Announcement::Missed).await.is_err() {
                return;
            }
            loop {
                match listener.try_recv().await {
                    Ok(Some(notification)) => {
                        let payload = notification.payload();
                        if payload.starts_with(&mine) {
                            continue;
                        }
                        let kind = payload.split_once(' ').map_or(payload, |(_, kind)| kind);
                        if heard.send(Announcement::Wrote(kind.to_owned())).await.is_err() {
                            return;
                        }
                    }
                    // The connection was lost and made again, listening again.
                    Ok(None) => break,
                    Err(e) => {
                        tracing::warn!(error = %e, "listening for other replicas' writes: connection lost; trying again");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        continue 'connect;
                    }
                }
            }
        }
    }
}

/// SQLite's read-only connections, opened as needed and kept up to `max` idle.
#[derive(Debug)]
pub struct ReadPool {
    path: std::path::PathBuf,
    max: usize,
    idle: parking_lot::Mutex<Vec<rusqlite::Connection>>,
}

impl ReadPool {
    fn query(&self, sql: &str, params: &[Value]) -> Result<Rows, DbError> {
        let taken = self.idle.lock().pop();
        let connection = match taken {
            Some(c) => c,
            None => read_connection(&self.path).map_err(lite::error)?,
        };
        let rows = lite::query(&connection, sql, params);
        let mut idle = self.idle.lock();
        if idle.len() < self.max {
            idle.push(connection);
        }
        rows
    }
}

/// A read-only connection. A WAL reader waits only while another process recovers the
/// log after a crash, so the wait is short and bounded.
fn read_connection(path: &std::path::Path) -> rusqlite::Result<rusqlite::Connection> {
    use rusqlite::OpenFlags;
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI;
    let connection = rusqlite::Connection::open_with_flags(path, flags)?;
    connection.busy_timeout(Duration::from_millis(500))?;
    connection.set_prepared_statement_cache_capacity(64);
    Ok(connection)
}

/// The one connection this process writes SQLite through; it creates the file, puts it in
/// WAL mode (which the file keeps) and is set up as sqlx sets up its own. It checkpoints
/// only when the log has grown past [`SQLITE_WAL_PAGES_WRITER_CHECKPOINTS`] pages, by when
/// the [`Checkpointer`] has copied all but the last round's.
fn write_connection(path: &std::path::Path) -> rusqlite::Result<rusqlite::Connection> {
    let connection = rusqlite::Connection::open(path)?;
    connection.busy_timeout(Duration::from_secs(10))?;
    connection.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;")?;
    connection.pragma_update(None, "wal_autocheckpoint", SQLITE_WAL_PAGES_WRITER_CHECKPOINTS)?;
    // A group's savepoint keeps what it would undo in memory, not in a temporary file.
    connection.pragma_update(None, "temp_store", "MEMORY")?;
    connection.set_prepared_statement_cache_capacity(64);
    Ok(connection)
}

enum Transaction {
    /// The write connection, held from `BEGIN IMMEDIATE` to `COMMIT` or `ROLLBACK`.
    Sqlite(OwnedMutexGuard<rusqlite::Connection>),
    /// On the writer thread: a savepoint in the transaction of the batch the group is in,
    /// held from `SAVEPOINT` to `RELEASE` or `ROLLBACK TO` (`writer.rs`).
    Grouped(writer::Connection),
    /// A pooled connection, held from `BEGIN` to `COMMIT` or `ROLLBACK`; one dropped before
    /// either is closed, not reused, which ends its transaction.
    Postgres(pg_pool::Connection),
}

/// The database as one plugin call sees it.
pub struct DbSession {
    db: Database,
    tx: Option<Transaction>,
}

impl Drop for DbSession {
    /// A call that ends with its SQLite transaction open rolls it back (a PostgreSQL
    /// connection left in a transaction is closed, `pg_pool.rs`).
    fn drop(&mut self) {
        match self.tx.take() {
            Some(Transaction::Sqlite(connection)) if !connection.is_autocommit() => {
                let _ = connection.execute_batch("ROLLBACK");
            }
            Some(Transaction::Grouped(connection)) => {
                let _ = undo_group(&connection);
                writer::give_back(connection);
            }
            Some(Transaction::Postgres(connection)) => pg_pool::give_back(connection),
            _ => {}
        }
    }
}

impl DbSession {
    pub fn new(db: Database) -> Self {
        Self { db, tx: None }
    }

    pub fn dialect(&self) -> Dialect {
        self.db.dialect()
    }

    pub async fn query(&mut self, sql: &str, params: &[Value]) -> Result<Rows, DbError> {
        match (&self.db, &mut self.tx) {
            (_, Some(Transaction::Sqlite(connection) | Transaction::Grouped(connection))) => {
                lite::query(connection, sql, params)
            }
            (_, Some(Transaction::Postgres(tx))) => {
                let sql = numbered_placeholders(sql);
                let rows = bind_pg(sqlx::query(&sql), params).fetch_all(tx.in_use()).await;
                pg_rows(rows.map_err(db_error)?)
            }
            (Database::Sqlite { .. }, None) if writer::on_writer() => in_batch(|c| lite::query(c, sql, params)).await,
            (Database::Sqlite { read: Some(read), .. }, None) => read.query(sql, params),
            (Database::Sqlite { read: None, write, .. }, None) => lite::query(&*write.lock().await, sql, params),
            (Database::Postgres { pool, .. }, None) => {
                let sql = numbered_placeholders(sql);
                let mut connection = pg_pool::get(pool).await.map_err(db_error)?;
                let rows = bind_pg(sqlx::query(&sql), params).fetch_all(connection.in_use()).await;
                pg_rows(statement_ended(&mut connection, rows)?)
            }
        }
    }

    pub async fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64, DbError> {
        match (&self.db, &mut self.tx) {
            (_, Some(Transaction::Sqlite(connection) | Transaction::Grouped(connection))) => {
                lite::execute(connection, sql, params)
            }
            (_, Some(Transaction::Postgres(tx))) => {
                let sql = numbered_placeholders(sql);
                let done = bind_pg(sqlx::query(&sql), params).execute(tx.in_use()).await;
                done.map(|r| r.rows_affected()).map_err(db_error)
            }
            (Database::Sqlite { .. }, None) if writer::on_writer() => in_batch(|c| lite::execute(c, sql, params)).await,
            (Database::Sqlite { write, .. }, None) => lite::execute(&*write.lock().await, sql, params),
            (Database::Postgres { pool, .. }, None) => {
                let sql = numbered_placeholders(sql);
                let mut connection = pg_pool::get(pool).await.map_err(db_error)?;
                let done = bind_pg(sqlx::query(&sql), params).execute(connection.in_use()).await;
                statement_ended(&mut connection, done).map(|r| r.rows_affected())
            }
        }
    }

    pub async fn batch(&mut self, sql: &str) -> Result<(), DbError> {
        use sqlx::Executor;
        match (&self.db, &mut self.tx) {
            (_, Some(Transaction::Sqlite(connection) | Transaction::Grouped(connection))) => {
                connection.execute_batch(sql).map_err(lite::error)
            }
            (_, Some(Transaction::Postgres(tx))) => tx.in_use().execute(sql).await.map(drop).map_err(db_error),
            (Database::Sqlite { .. }, None) if writer::on_writer() => {
                in_batch(|c| c.execute_batch(sql).map_err(lite::error)).await
            }
            (Database::Sqlite { write, .. }, None) => write.lock().await.execute_batch(sql).map_err(lite::error),
            (Database::Postgres { pool, .. }, None) => {
                let mut connection = pg_pool::get(pool).await.map_err(db_error)?;
                let done = connection.in_use().execute(sql).await;
                statement_ended(&mut connection, done).map(drop)
            }
        }
    }

    pub async fn begin(&mut self) -> Result<(), DbError> {
        if self.tx.is_some() {
            return Err(DbError::Statement("a transaction is already open in this call".into()));
        }
        self.tx = Some(match &self.db {
            // IMMEDIATE takes the write lock up front, so a writer of another process waits
            // on busy_timeout instead of one failing when it upgrades a read lock.
            Database::Sqlite { .. } if writer::on_writer() => {
                let connection = writer::take().await.map_err(refused)?;
                if let Err(e) = connection.execute_batch(writer::GROUP_BEGIN) {
                    writer::give_back(connection);
                    return Err(lite::error(e));
                }
                Transaction::Grouped(connection)
            }
            Database::Sqlite { write, .. } => {
                let connection = write.clone().lock_owned().await;
                connection.execute_batch("BEGIN IMMEDIATE").map_err(lite::error)?;
                Transaction::Sqlite(connection)
            }
            Database::Postgres { pool, .. } => {
                let mut connection = pg_pool::get(pool).await.map_err(db_error)?;
                PgTransactions::begin(connection.in_use(), None).await.map_err(db_error)?;
                Transaction::Postgres(connection)
            }
        });
        Ok(())
    }

    pub async fn commit(&mut self) -> Result<(), DbError> {
        match self.tx.take() {
            Some(Transaction::Sqlite(connection)) => {
                let committed = connection.execute_batch("COMMIT").map_err(lite::error);
                if committed.is_err() && !connection.is_autocommit() {
                    let _ = connection.execute_batch("ROLLBACK");
                }
                committed
            }
            Some(Transaction::Grouped(connection)) => {
                let released = connection.execute_batch(writer::GROUP_END).map_err(lite::error);
                if released.is_err() {
                    let _ = undo_group(&connection);
                }
                writer::give_back(connection);
                released
            }
            Some(Transaction::Postgres(tx)) => end_pg_transaction(tx, PgTransactions::commit).await,
            None => Err(DbError::Statement("commit without begin".into())),
        }
    }

    pub async fn rollback(&mut self) -> Result<(), DbError> {
        match self.tx.take() {
            Some(Transaction::Sqlite(connection)) => {
                if connection.is_autocommit() {
                    return Ok(());
                }
                connection.execute_batch("ROLLBACK").map_err(lite::error)
            }
            Some(Transaction::Grouped(connection)) => {
                let undone = undo_group(&connection);
                writer::give_back(connection);
                undone
            }
            Some(Transaction::Postgres(tx)) => end_pg_transaction(tx, PgTransactions::rollback).await,
            None => Ok(()),
        }
    }
}

/// sqlx's `BEGIN`, `COMMIT` and `ROLLBACK` on one connection (its transaction depth).
type PgTransactions = <sqlx::Postgres as sqlx::Database>::TransactionManager;

/// Ends a PostgreSQL transaction with `end` (`COMMIT` or `ROLLBACK`) and gives its connection
/// back, closed if the end failed (`statement_ended`, `pg_pool::give_back`).
async fn end_pg_transaction(
    mut tx: pg_pool::Connection,
    end: for<'c> fn(&'c mut PgConnection) -> BoxFuture<'c, Result<(), sqlx::Error>>,
) -> Result<(), DbError> {
    let ended = end(tx.in_use()).await;
    let ended = statement_ended(&mut tx, ended);
    pg_pool::give_back(tx);
    ended
}

/// A PostgreSQL statement (or `COMMIT`, `ROLLBACK`) outside an open transaction ended: its
/// connection may be handed out again unless it broke (a failed statement leaves it usable;
/// a failed `COMMIT` or `ROLLBACK` is not trusted to have ended the transaction).
fn statement_ended<T>(connection: &mut Pooled, result: Result<T, sqlx::Error>) -> Result<T, DbError> {
    match result {
        Ok(v) => {
            connection.done();
            Ok(v)
        }
        Err(e) => {
            let e = db_error(e);
            if matches!(e, DbError::Statement(_) | DbError::Constraint(_) | DbError::Conflict(_))
                && PgTransactions::get_transaction_depth(&connection.connection) == 0
            {
                connection.done();
            }
            Err(e)
        }
    }
}

/// Undoes a group's writes and ends its savepoint; the batch's transaction stays open.
fn undo_group(connection: &rusqlite::Connection) -> Result<(), DbError> {
    if connection.is_autocommit() {
        return Ok(());
    }
    connection.execute_batch(writer::GROUP_UNDO).map_err(lite::error)
}

/// A statement outside a group's transaction, on the writer thread: on the batch's connection,
/// so that it sees what the batch's earlier groups wrote (a single statement is atomic by itself).
async fn in_batch<T>(statement: impl FnOnce(&rusqlite::Connection) -> Result<T, DbError>) -> Result<T, DbError> {
    let connection = writer::take().await.map_err(refused)?;
    let done = statement(&connection);
    writer::give_back(connection);
    done
}

/// Why the writer's batch could not be had, as the contract names it.
fn refused(r: writer::Refused) -> DbError {
    match r {
        writer::Refused::OffWriter => DbError::Unavailable("a write group ran off the writer thread".into()),
        writer::Refused::RolledBack => DbError::Unavailable("the database rolled back this batch of writes".into()),
        writer::Refused::Begin(e) => lite::error(e),
    }
}

/// Statements on the SQLite write connection, run where they are asked for.
mod lite {
    use rusqlite::types::{ToSqlOutput, ValueRef};

    use super::{DbError, Rows, Value};

    fn params(params: &[Value]) -> impl Iterator<Item = ToSqlOutput<'_>> {
        params.iter().map(|p| {
            ToSqlOutput::Borrowed(match p {
                Value::Null => ValueRef::Null,
                Value::Integer(i) => ValueRef::Integer(*i),
                Value::Real(f) => ValueRef::Real(*f),
                Value::Text(s) => ValueRef::Text(s.as_bytes()),
                Value::Blob(b) => ValueRef::Blob(b),
            })
        })
    }

    pub fn query(connection: &rusqlite::Connection, sql: &str, bound: &[Value]) -> Result<Rows, DbError> {
        let mut statement = connection.prepare_cached(sql).map_err(error)?;
        let columns: Vec<String> = statement.column_names().into_iter().map(str::to_owned).collect();
        let mut rows = statement.query(rusqlite::params_from_iter(params(bound))).map_err(error)?;
        let mut out = Vec::new();
        while let Some(row) = rows.next().map_err(error)? {
            let mut values = Vec::with_capacity(columns.len());
            for i in 0..columns.len() {
                values.push(match row.get_ref(i).map_err(error)? {
                    ValueRef::Null => Value::Null,
                    ValueRef::Integer(i) => Value::Integer(i),
                    ValueRef::Real(f) => Value::Real(f),
                    ValueRef::Text(t) => Value::Text(String::from_utf8_lossy(t).into_owned()),
                    ValueRef::Blob(b) => Value::Blob(b.to_vec()),
                });
            }
            out.push(values);
        }
        Ok(Rows { columns, rows: out })
    }

    /// Runs a statement to its end (rows it returns are dropped); the rows it changed.
    pub fn execute(connection: &rusqlite::Connection, sql: &str, bound: &[Value]) -> Result<u64, DbError> {
        let mut statement = connection.prepare_cached(sql).map_err(error)?;
        let mut rows = statement.query(rusqlite::params_from_iter(params(bound))).map_err(error)?;
        while rows.next().map_err(error)?.is_some() {}
        Ok(connection.changes())
    }

    pub fn error(e: rusqlite::Error) -> DbError {
        use rusqlite::ErrorCode::*;
        let text = e.to_string();
        match e.sqlite_error_code() {
            Some(ConstraintViolation) => DbError::Constraint(text),
            Some(DatabaseBusy | DatabaseLocked) => DbError::Conflict(text),
            Some(CannotOpen | SystemIoFailure | DiskFull | DatabaseCorrupt | NotADatabase | PermissionDenied) => {
                DbError::Unavailable(text)
            }
            _ => DbError::Statement(text),
        }
    }
}

/// The database as one call holds it: a session for a storage plugin's call, nothing for
/// any other (which cannot import the interface anyway: its world does not have it).
pub struct DatabaseGrant(pub(super) Option<DbSession>);

/// The capability as storage plugins call it: each function runs on the call's session.
impl Host for DatabaseGrant {
    async fn get_dialect(&mut self) -> Dialect {
        self.0.as_ref().map(|d| d.dialect()).unwrap_or(Dialect::Sqlite)
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

/// Lends the database to the storage plugins of `contract`: the interface is the same in every
/// version that has it (0.2.0 and later).
pub(super) fn link(linker: &mut Linker<CallState>, contract: Contract) -> wasmtime::Result<()> {
    let mut database = linker.instance(&interface("database", contract))?;
    // A function of the interface: its parameters, and what it does with the call's grant.
    macro_rules! lend {
        ($name:literal, |$grant:ident $(, $arg:ident: $ty:ty)*| $call:expr) => {
            database.func_wrap_async($name, |mut store: StoreContextMut<'_, CallState>, ($($arg,)*): ($($ty,)*)| {
                Box::new(async move {
                    let $grant = &mut store.data_mut().db;
                    Ok(($call.await,))
                })
            })?;
        };
    }
    lend!("get-dialect", |grant| grant.get_dialect());
    lend!("query", |grant, sql: String, params: Vec<Value>| grant.query(sql, params));
    lend!("execute", |grant, sql: String, params: Vec<Value>| grant.execute(sql, params));
    lend!("batch", |grant, sql: String| grant.batch(sql));
    lend!("begin", |grant| grant.begin());
    lend!("commit", |grant| grant.commit());
    lend!("rollback", |grant| grant.rollback());
    Ok(())
}

fn session(grant: &mut DatabaseGrant) -> Result<&mut DbSession, DbError> {
    grant.0.as_mut().ok_or_else(|| DbError::Unavailable("no database in this call".into()))
}

type PgQuery<'q> = sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>;

fn bind_pg<'q>(mut q: PgQuery<'q>, params: &'q [Value]) -> PgQuery<'q> {
    // PostgreSQL fixes a prepared statement's parameter types when it is first prepared;
    // a NULL goes as text, so a statement that binds one is not kept prepared, lest a later
    // call bind an integer in that place.
    if params.iter().any(|p| matches!(p, Value::Null)) {
        q = q.persistent(false);
    }
    for p in params {
        q = match p {
            Value::Null => q.bind(None::<String>),
            Value::Integer(i) => q.bind(*i),
            Value::Real(f) => q.bind(*f),
            Value::Text(s) => q.bind(s.as_str()),
            Value::Blob(b) => q.bind(b.as_slice()),
        };
    }
    q
}

fn pg_rows(rows: Vec<PgRow>) -> Result<Rows, DbError> {
    let columns = column_names(rows.first());
    let mut out = Vec::with_capacity(rows.len());
    for row in &rows {
        let mut values = Vec::with_capacity(row.len());
        for i in 0..row.len() {
            let raw = row.try_get_raw(i).map_err(db_error)?;
            let value = if raw.is_null() {
                Value::Null
            } else {
                match raw.type_info().name() {
                    "INT8" => Value::Integer(row.try_get(i).map_err(db_error)?),
                    "INT4" => Value::Integer(row.try_get::<i32, _>(i).map_err(db_error)?.into()),
                    "INT2" => Value::Integer(row.try_get::<i16, _>(i).map_err(db_error)?.into()),
                    "BOOL" => Value::Integer(row.try_get::<bool, _>(i).map_err(db_error)?.into()),
                    "FLOAT8" => Value::Real(row.try_get(i).map_err(db_error)?),
                    "FLOAT4" => Value::Real(row.try_get::<f32, _>(i).map_err(db_error)?.into()),
                    "BYTEA" => Value::Blob(row.try_get(i).map_err(db_error)?),
                    _ => Value::Text(row.try_get(i).map_err(db_error)?),
                }
            };
            values.push(value);
        }
        out.push(values);
    }
    Ok(Rows { columns, rows: out })
}

fn column_names<R: Row>(row: Option<&R>) -> Vec<String> {
    row.map(|r| r.columns().iter().map(|c| c.name().to_owned()).collect()).unwrap_or_default()
}

/// Rewrites `?` placeholders as `$1, $2, ...` outside quoted strings and identifiers.
pub fn numbered_placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut n = 0;
    let mut quote: Option<char> = None;
    for c in sql.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => {
                quote = None;
                out.push(c);
            }
            (Some(_), c) => out.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                out.push(c);
            }
            (None, '?') => {
                n += 1;
                out.push('$');
                out.push_str(&n.to_string());
            }
            (None, c) => out.push(c),
        }
    }
    out
}

/// A PostgreSQL error as the contract names it. What says the database cannot be reached
/// for now (the connection broke or was never made, the server is shutting down or starting
/// up) is `unavailable`, which the server answers 503: the request may be tried again.
fn db_error(e: sqlx::Error) -> DbError {
    match e {
        sqlx::Error::Database(db) => {
            let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
            let message = db.message().to_owned();
            match db.kind() {
                sqlx::error::ErrorKind::UniqueViolation
                | sqlx::error::ErrorKind::ForeignKeyViolation
                | sqlx::error::ErrorKind::NotNullViolation
                | sqlx::error::ErrorKind::CheckViolation => DbError::Constraint(message),
                // Serialization failure, deadlock.
                _ if matches!(code.as_str(), "40001" | "40P01") => DbError::Conflict(message),
                _ if connection_lost(&code) => DbError::Unavailable(format!("{message} (SQLSTATE {code})")),
                _ => DbError::Statement(message),
            }
        }
        e @ (sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::WorkerCrashed) => DbError::Unavailable(e.to_string()),
        other => DbError::Statement(other.to_string()),
    }
}

/// SQLSTATE class 08 (connection exception), and 57P01 `admin_shutdown`, 57P02
/// `crash_shutdown`, 57P03 `cannot_connect_now` (PostgreSQL stopping, crashed, starting).
fn connection_lost(sqlstate: &str) -> bool {
    sqlstate.starts_with("08") || matches!(sqlstate, "57P01" | "57P02" | "57P03")
}

#[cfg(test)]
mod tests {
    use super::{connection_lost, numbered_placeholders};

    #[test]
    fn lost_connections_are_told_from_failed_statements() {
        for lost in ["08000", "08003", "08006", "08001", "08P01", "57P01", "57P02", "57P03"] {
            assert!(connection_lost(lost), "{lost}");
        }
        for failed in ["42601", "42P01", "23505", "40001", "57014", "53300", ""] {
            assert!(!connection_lost(failed), "{failed}");
        }
    }

    #[test]
    fn placeholders_are_numbered_outside_quotes() {
        assert_eq!(
            numbered_placeholders("SELECT '?', \"a?\" FROM t WHERE a = ? AND b = ?"),
            "SELECT '?', \"a?\" FROM t WHERE a = $1 AND b = $2"
        );
    }
}
