//! Sign-in attempts counted by every replica together, in Redis (`limits.redis_url`), for
//! [`super::sign_in_limit`]: one `EVAL` per attempt increments the attempt's counters (its
//! address's, its login page's or client's, its username's) and answers them, so a budget
//! spent at one replica is spent at all. Keys are namespaced by `limits.redis_prefix`; the
//! per-minute ones are fixed windows of one minute, a login page's lasts the page's life.
//!
//! Redis never fails a sign-in: every call has a deadline ([`REDIS_TIMEOUT`]); while Redis
//! cannot be reached (at start or later) the replica counts with its own limiters, says so
//! once in the log (WARN), tries again every [`REDIS_RETRY`], and says when it is back (INFO).
//! [`SharedState`] is what readiness reports.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::limits::{REDIS_RETRY, REDIS_TIMEOUT};

/// How a replica counts sign-in attempts now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SharedState {
    /// With every replica, in Redis.
    Shared,
    /// On its own: no Redis is configured.
    Local,
    /// On its own because Redis cannot be used now, and why.
    Fallback(String),
}

impl fmt::Display for SharedState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Shared => f.write_str("shared"),
            Self::Local => f.write_str("local"),
            Self::Fallback(reason) => write!(f, "fallback({reason})"),
        }
    }
}

/// Increments each key, giving a new key its lifetime (ms), and answers the counts; it stops
/// at the first count past its limit (0: none), so an attempt refused for its address spends
/// nothing else.
const SCRIPT: &str = r"
local counts = {}
local n = #KEYS
for i = 1, n do
  local count = redis.call('INCR', KEYS[i])
  if count == 1 then redis.call('PEXPIRE', KEYS[i], ARGV[i]) end
  counts[i] = count
  local limit = tonumber(ARGV[n + i])
  if limit > 0 and count > limit then break end
end
return counts
";

/// A counter of one attempt: its key (below the prefix), lifetime and limit (0: none).
pub(crate) struct Counter {
    pub key: String,
    pub lifetime: Duration,
    pub limit: u32,
}

pub(crate) struct Shared {
    client: redis::Client,
    prefix: String,
    inner: Arc<Mutex<Inner>>,
}

struct Inner {
    connection: Option<redis::aio::MultiplexedConnection>,
    /// Why Redis is not used now; none while it is.
    down: Option<String>,
    /// Whether the log has said that it is down.
    told: bool,
    /// A connection is being made.
    connecting: bool,
    /// No connection is tried before this.
    retry_at: Option<Instant>,
}

impl Shared {
    /// A URL Redis' client does not take is refused at start.
    pub fn new(url: &str, prefix: &str) -> Result<Self, redis::RedisError> {
        let client = redis::Client::open(url)?;
        let inner = Inner {
            connection: None,
            down: Some("not connected yet".into()),
            told: false,
            connecting: false,
            retry_at: None,
        };
        let shared = Self { client, prefix: prefix.to_owned(), inner: Arc::new(Mutex::new(inner)) };
        shared.connect_in_background();
        Ok(shared)
    }

    pub fn state(&self) -> SharedState {
        match &self.inner.lock().down {
            None => SharedState::Shared,
            Some(reason) => SharedState::Fallback(reason.clone()),
        }
    }

    /// Counts one attempt on every counter: the counts, in order (0 for a counter not
    /// reached), or none when Redis cannot answer within [`REDIS_TIMEOUT`].
    pub async fn count(&self, counters: &[Counter]) -> Option<Vec<u64>> {
        let mut connection = {
            let inner = self.inner.lock();
            inner.connection.clone()
        };
        let Some(connection) = connection.as_mut() else {
            self.connect_in_background();
            return None;
        };
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(SCRIPT).arg(counters.len());
        for c in counters {
            cmd.arg(format!("{}:{}", self.prefix, c.key));
        }
        for c in counters {
            cmd.arg(c.lifetime.as_millis().max(1) as u64);
        }
        for c in counters {
            cmd.arg(c.limit);
        }
        let answer = tokio::time::timeout(REDIS_TIMEOUT, cmd.query_async::<Vec<u64>>(connection)).await;
        match answer {
            Ok(Ok(mut counts)) => {
                counts.resize(counters.len(), 0);
                Self::up(&mut self.inner.lock());
                Some(counts)
            }
            Ok(Err(e)) => {
                self.lost(format!("redis: {e}"));
                None
            }
            Err(_) => {
                self.lost(format!("redis did not answer within {} ms", REDIS_TIMEOUT.as_millis()));
                None
            }
        }
    }

    fn up(inner: &mut Inner) {
        if inner.down.take().is_some() && inner.told {
            inner.told = false;
            tracing::info!("sign-in limits are shared through Redis again");
        }
    }

    fn lost(&self, reason: String) {
        let mut inner = self.inner.lock();
        inner.connection = None;
        inner.retry_at = Some(Instant::now() + REDIS_RETRY);
        Self::down(&mut inner, reason);
    }

    fn down(inner: &mut Inner, reason: String) {
        if !inner.told {
            inner.told = true;
            tracing::warn!(%reason, "sign-in limits are counted by this replica alone until Redis answers");
        }
        inner.down = Some(reason);
    }

    /// Makes a connection, unless one is being made or the last failure was too recent.
    fn connect_in_background(&self) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        {
            let mut inner = self.inner.lock();
            if inner.connecting || inner.connection.is_some() || inner.retry_at.is_some_and(|at| Instant::now() < at) {
                return;
            }
            inner.connecting = true;
        }
        let (client, inner) = (self.client.clone(), self.inner.clone());
        runtime.spawn(async move {
            let made = tokio::time::timeout(REDIS_TIMEOUT, client.get_multiplexed_async_connection()).await;
            let mut inner = inner.lock();
            inner.connecting = false;
            match made {
                Ok(Ok(connection)) => {
                    inner.connection = Some(connection);
                    inner.retry_at = None;
                    Self::up(&mut inner);
                }
                Ok(Err(e)) => {
                    inner.retry_at = Some(Instant::now() + REDIS_RETRY);
                    Self::down(&mut inner, format!("redis: {e}"));
                }
                Err(_) => {
                    inner.retry_at = Some(Instant::now() + REDIS_RETRY);
                    Self::down(&mut inner, format!("redis did not connect within {} ms", REDIS_TIMEOUT.as_millis()));
                }
            }
        });
    }
}
