//! PostgreSQL's connections, pooled by deadpool. A connection is handed out without a round
//! trip of its own: sqlx's pool pings every connection it takes back, a round trip per
//! storage call that under load cost the server about as much CPU as the statements did.
//! Instead, a connection is handed out again only if the last use left it reusable (its
//! statement finished, no transaction open, it did not break), and is pinged first only if
//! it was last handed out `limits::POSTGRES_CHECK_IDLE_AFTER` or longer ago. One that is not
//! reusable is closed (which also ends its transaction, if it had one) and another is taken,
//! as is one that has served `limits::POSTGRES_CONNECTION_LIFETIME`.

use std::time::Duration;

use deadpool::managed::{self, Metrics, PoolError, QueueMode, RecycleError, RecycleResult, Timeouts};
use sqlx::Connection as _;
use sqlx::postgres::{PgConnectOptions, PgConnection};

use crate::limits::{POSTGRES_CHECK_IDLE_AFTER, POSTGRES_CONNECTION_LIFETIME};

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
        match verdict(pooled.reusable, metrics.age(), metrics.last_used()) {
            Verdict::HandOut => Ok(()),
            Verdict::CheckFirst => Ok(pooled.connection.ping().await?),
            Verdict::Close(why) => Err(RecycleError::message(why)),
        }
    }
}

/// What the pool does with a connection it is about to hand out again.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    HandOut,
    /// A round trip first: it may have broken while it waited.
    CheckFirst,
    Close(&'static str),
}

/// The verdict on a connection whose last use ended well or not (`reusable`), opened `age`
/// ago and last handed out `since_taken` ago.
fn verdict(reusable: bool, age: Duration, since_taken: Duration) -> Verdict {
    if !reusable {
        Verdict::Close("its last use did not end well")
    } else if age >= POSTGRES_CONNECTION_LIFETIME {
        Verdict::Close("it has served its lifetime")
    } else if since_taken >= POSTGRES_CHECK_IDLE_AFTER {
        Verdict::CheckFirst
    } else {
        Verdict::HandOut
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{Verdict, verdict};
    use crate::limits::{POSTGRES_CHECK_IDLE_AFTER, POSTGRES_CONNECTION_LIFETIME};

    #[test]
    fn a_connection_is_handed_out_again_while_its_last_use_ended_well_and_it_is_young() {
        let (young, now) = (Duration::from_secs(5), Duration::ZERO);
        assert_eq!(verdict(true, young, now), Verdict::HandOut);
        assert_eq!(verdict(true, young, POSTGRES_CHECK_IDLE_AFTER), Verdict::CheckFirst, "after a wait");
        assert!(matches!(verdict(false, young, now), Verdict::Close(_)), "a use that did not end well");
        assert!(matches!(verdict(true, POSTGRES_CONNECTION_LIFETIME, now), Verdict::Close(_)), "past its lifetime");
    }
}
