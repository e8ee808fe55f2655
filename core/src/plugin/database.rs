//! The host side of `portcullis:plugin/database`: the capability storage plugins get.
//! One sqlx pool (SQLite or PostgreSQL); at most one transaction per plugin call, held in
//! the call's `Store` so that it rolls back when the call ends without `commit`.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgPool, PgPoolOptions, PgRow};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{Column, Row, TypeInfo, ValueRef};

use super::bindings::v2::storage_world::portcullis::plugin::database::{DbError, Dialect, Host, Rows, Value};

/// The operator's database, shared by every call of every storage plugin.
#[derive(Clone, Debug)]
pub enum Database {
    /// SQLite has one writer at a time. Every write of this process goes through `write`,
    /// a pool of one connection, so writers queue on it instead of on SQLite's busy handler
    /// (which sleeps and would put tens of milliseconds on the latency tail; the busy timeout
    /// still covers other processes, such as the CLI). Reads use `read` and never wait for a
    /// writer (WAL). Write groups run on `writer`, a thread of their own, so that the write
    /// lock is never held while a busy request thread gets round to the next statement.
    Sqlite {
        read: SqlitePool,
        write: SqlitePool,
        writer: Writer,
    },
    Postgres(PgPool),
}

impl Database {
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, sqlx::Error> {
        if url.starts_with("sqlite:") {
            let options = SqliteConnectOptions::from_str(url)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(10));
            let writer = Writer::start().map_err(sqlx::Error::Io)?;
            // An in-memory database lives in its one connection, which reads and writes.
            if url.contains(":memory:") || url.contains("mode=memory") {
                let pool = sqlite_pool(1).connect_with(options).await?;
                return Ok(Self::Sqlite { read: pool.clone(), write: pool, writer });
            }
            let write = sqlite_pool(1).connect_with(options.clone()).await?;
            let read = sqlite_pool(max_connections.max(1)).connect_with(options).await?;
            Ok(Self::Sqlite { read, write, writer })
        } else {
            let pool = PgPoolOptions::new()
                .max_connections(max_connections)
                .acquire_timeout(Duration::from_secs(10))
                .connect(url)
                .await?;
            Ok(Self::Postgres(pool))
        }
    }

    pub fn dialect(&self) -> Dialect {
        match self {
            Self::Sqlite { .. } => Dialect::Sqlite,
            Self::Postgres(_) => Dialect::Postgres,
        }
    }

    /// Where write groups run: SQLite's writer thread, or (PostgreSQL, whose writers lock
    /// rows, not the database) wherever the request is.
    pub fn writer(&self) -> Option<&Writer> {
        match self {
            Self::Sqlite { writer, .. } => Some(writer),
            Self::Postgres(_) => None,
        }
    }
}

/// A file's connections do not go stale: no ping before each use.
fn sqlite_pool(max_connections: u32) -> SqlitePoolOptions {
    SqlitePoolOptions::new().max_connections(max_connections).test_before_acquire(false)
}

/// A thread with a runtime of its own that runs SQLite's write groups. Under load a request
/// thread has many tasks queued; a write group waiting there for its turn between two
/// statements would hold the database's one write lock all that time. On this thread the
/// group's next statement runs as soon as the previous one answers. The thread ends when the
/// last handle is dropped.
#[derive(Clone, Debug)]
pub struct Writer {
    handle: tokio::runtime::Handle,
    _stop: Arc<tokio::sync::oneshot::Sender<()>>,
}

impl Writer {
    fn start() -> std::io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let handle = runtime.handle().clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        std::thread::Builder::new().name("sqlite-writer".into()).spawn(move || {
            // Resolves (with an error) when the last `Writer` drops its sender.
            let _ = runtime.block_on(stopped);
        })?;
        Ok(Self { handle, _stop: Arc::new(stop) })
    }

    /// Runs `task` on the writer thread and waits for it. The task finishes even if the
    /// caller stops waiting, so a write group is never cut off between two statements.
    pub async fn run<T: Send + 'static>(
        &self,
        task: impl Future<Output = T> + Send + 'static,
    ) -> Result<T, tokio::task::JoinError> {
        self.handle.spawn(task).await
    }
}

enum Transaction {
    Sqlite(sqlx::Transaction<'static, sqlx::Sqlite>),
    Postgres(sqlx::Transaction<'static, sqlx::Postgres>),
}

/// The database as one plugin call sees it.
pub struct DbSession {
    db: Database,
    tx: Option<Transaction>,
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
            (_, Some(Transaction::Sqlite(tx))) => {
                let rows = bind(sqlx::query(sql), params).fetch_all(&mut **tx).await;
                sqlite_rows(rows.map_err(db_error)?)
            }
            (_, Some(Transaction::Postgres(tx))) => {
                let sql = numbered_placeholders(sql);
                let rows = bind_pg(sqlx::query(&sql), params).fetch_all(&mut **tx).await;
                pg_rows(rows.map_err(db_error)?)
            }
            (Database::Sqlite { read, .. }, None) => {
                let rows = bind(sqlx::query(sql), params).fetch_all(read).await;
                sqlite_rows(rows.map_err(db_error)?)
            }
            (Database::Postgres(pool), None) => {
                let sql = numbered_placeholders(sql);
                let rows = bind_pg(sqlx::query(&sql), params).fetch_all(pool).await;
                pg_rows(rows.map_err(db_error)?)
            }
        }
    }

    pub async fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64, DbError> {
        let done = match (&self.db, &mut self.tx) {
            (_, Some(Transaction::Sqlite(tx))) => {
                bind(sqlx::query(sql), params).execute(&mut **tx).await.map(|r| r.rows_affected())
            }
            (_, Some(Transaction::Postgres(tx))) => {
                let sql = numbered_placeholders(sql);
                bind_pg(sqlx::query(&sql), params).execute(&mut **tx).await.map(|r| r.rows_affected())
            }
            (Database::Sqlite { write, .. }, None) => {
                bind(sqlx::query(sql), params).execute(write).await.map(|r| r.rows_affected())
            }
            (Database::Postgres(pool), None) => {
                let sql = numbered_placeholders(sql);
                bind_pg(sqlx::query(&sql), params).execute(pool).await.map(|r| r.rows_affected())
            }
        };
        done.map_err(db_error)
    }

    pub async fn batch(&mut self, sql: &str) -> Result<(), DbError> {
        use sqlx::Executor;
        let result = match (&self.db, &mut self.tx) {
            (_, Some(Transaction::Sqlite(tx))) => tx.execute(sql).await.map(drop),
            (_, Some(Transaction::Postgres(tx))) => tx.execute(sql).await.map(drop),
            (Database::Sqlite { write, .. }, None) => write.execute(sql).await.map(drop),
            (Database::Postgres(pool), None) => pool.execute(sql).await.map(drop),
        };
        result.map_err(db_error)
    }

    pub async fn begin(&mut self) -> Result<(), DbError> {
        if self.tx.is_some() {
            return Err(DbError::Statement("a transaction is already open in this call".into()));
        }
        self.tx = Some(match &self.db {
            // IMMEDIATE takes the write lock up front, so a writer of another process waits
            // on busy_timeout instead of one failing when it upgrades a read lock.
            Database::Sqlite { write, .. } => {
                Transaction::Sqlite(write.begin_with("BEGIN IMMEDIATE").await.map_err(db_error)?)
            }
            Database::Postgres(pool) => Transaction::Postgres(pool.begin().await.map_err(db_error)?),
        });
        Ok(())
    }

    pub async fn commit(&mut self) -> Result<(), DbError> {
        match self.tx.take() {
            Some(Transaction::Sqlite(tx)) => tx.commit().await.map_err(db_error),
            Some(Transaction::Postgres(tx)) => tx.commit().await.map_err(db_error),
            None => Err(DbError::Statement("commit without begin".into())),
        }
    }

    pub async fn rollback(&mut self) -> Result<(), DbError> {
        match self.tx.take() {
            Some(Transaction::Sqlite(tx)) => tx.rollback().await.map_err(db_error),
            Some(Transaction::Postgres(tx)) => tx.rollback().await.map_err(db_error),
            None => Ok(()),
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
    bind(q, params)
}

fn bind<'q, DB: sqlx::Database>(
    mut q: sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments<'q>>,
    params: &'q [Value],
) -> sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments<'q>>
where
    Option<String>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    f64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    &'q [u8]: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
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

fn sqlite_rows(rows: Vec<SqliteRow>) -> Result<Rows, DbError> {
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
                    "INTEGER" | "BOOLEAN" | "INT8" | "BIGINT" => Value::Integer(row.try_get(i).map_err(db_error)?),
                    "REAL" => Value::Real(row.try_get(i).map_err(db_error)?),
                    "BLOB" => Value::Blob(row.try_get(i).map_err(db_error)?),
                    _ => Value::Text(row.try_get(i).map_err(db_error)?),
                }
            };
            values.push(value);
        }
        out.push(values);
    }
    Ok(Rows { columns, rows: out })
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
                // PostgreSQL serialization failure / deadlock; SQLite busy / locked.
                _ if matches!(code.as_str(), "40001" | "40P01" | "5" | "6" | "517") => DbError::Conflict(message),
                _ => DbError::Statement(message),
            }
        }
        sqlx::Error::Io(e) => DbError::Unavailable(e.to_string()),
        e @ (sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Tls(_) | sqlx::Error::Protocol(_)) => {
            DbError::Unavailable(e.to_string())
        }
        other => DbError::Statement(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::numbered_placeholders;

    #[test]
    fn placeholders_are_numbered_outside_quotes() {
        assert_eq!(
            numbered_placeholders("SELECT '?', \"a?\" FROM t WHERE a = ? AND b = ?"),
            "SELECT '?', \"a?\" FROM t WHERE a = $1 AND b = $2"
        );
    }
}
