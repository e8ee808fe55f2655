//! PostgreSQL's connections, pooled by deadpool. A connection is handed out without a round
//! trip of its own: sqlx's pool pings every connection it takes back, a round trip per
//! storage call that under load cost the server about as much CPU as the statements did.
//! Instead, a connection is handed out again only if the last use left it reusable (its
//! statement finished, no transaction open, it did not break), and is pinged first only if
//! it was last handed out `limits::POSTGRES_CHECK_IDLE_AFTER` or longer ago. One that is not
//! reusable is closed (which also ends its transaction, if it had one) and another is taken.

use std::time::Duration;

use deadpool::managed::{self, Metrics, PoolError, QueueMode, RecycleError, RecycleResult, Timeouts};
use sqlx::Connection as _;
use sqlx::postgres::{PgConnectOptions, PgConnection};

use crate::limits::POSTGRES_CHECK_IDLE_AFTER;

#[derive(Debug)]
pub struct Manager {
    options: PgConnectOptions,
}

/// A pooled connection, and whether the pool may hand it out again as it is.
#[derive(Debug)]
pub struct Pooled {
    pub(super) connection: PgConnection,
    reusable: bool,
}

impl Pooled {
    /// A statement or a transaction begins: until it ends well, the connection is not to be
    /// handed out again (a call dropped meanwhile, at its deadline, leaves it so).
    pub(super) fn in_use(&mut self) -> &mut PgConnection {
        self.reusable = false;
        &mut self.connection
    }

    /// The statement ended (or the transaction was committed or rolled back) and the
    /// connection did not break.
    pub(super) fn done(&mut self) {
        self.reusable = true;
    }
}

impl managed::Manager for Manager {
    type Type = Pooled;
    type Error = sqlx::Error;

    async fn create(&self) -> Result<Pooled, sqlx::Error> {
        Ok(Pooled { connection: PgConnection::connect_with(&self.options).await?, reusable: true })
    }

    async fn recycle(&self, pooled: &mut Pooled, metrics: &Metrics) -> RecycleResult<sqlx::Error> {
        if !pooled.reusable {
            return Err(RecycleError::message("its last use did not end well"));
        }
        if metrics.last_used() >= POSTGRES_CHECK_IDLE_AFTER {
            pooled.connection.ping().await?;
        }
        Ok(())
    }
}

pub type Pool = managed::Pool<Manager>;
pub(super) type Connection = managed::Object<Manager>;

/// Gives a connection back to the pool, or closes it at once if its use did not end well: a
/// transaction it had open (and the rows that transaction locked) then ends now, rather
/// than when the pool next looks at it.
pub(super) fn give_back(connection: Connection) {
    if !connection.reusable {
        drop(managed::Object::take(connection));
    }
}

/// A pool of at most `max` connections; taking one (waiting for it, checking it, opening
/// it) takes at most `acquire_timeout` for each step.
pub(super) fn pool(options: PgConnectOptions, max: u32, acquire_timeout: Duration) -> Result<Pool, sqlx::Error> {
    let most = Some(acquire_timeout);
    managed::Pool::builder(Manager { options })
        .max_size(max.max(1) as usize)
        .queue_mode(QueueMode::Lifo)
        .timeouts(Timeouts { wait: most, create: most, recycle: most })
        .runtime(deadpool::Runtime::Tokio1)
        .build()
        .map_err(|e| sqlx::Error::Configuration(e.into()))
}

/// A connection from the pool, or why there is none, as sqlx says it.
pub(super) async fn get(pool: &Pool) -> Result<Connection, sqlx::Error> {
    pool.get().await.map_err(|e| match e {
        PoolError::Backend(e) => e,
        PoolError::Timeout(_) => sqlx::Error::PoolTimedOut,
        PoolError::Closed => sqlx::Error::PoolClosed,
        e @ (PoolError::NoRuntimeSpecified | PoolError::PostCreateHook(_)) => {
            sqlx::Error::Configuration(e.to_string().into())
        }
    })
}
