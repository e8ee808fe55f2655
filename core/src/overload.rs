//! Shedding load. A request is answered at once with 503 `temporarily_unavailable` and
//! `Retry-After` (RFC 9110 §15.6.4, §10.2.3), instead of waiting behind the others, when
//!
//! - the server runs what is ready late: every `limits::SCHEDULING_PROBE_INTERVAL` a probe
//!   measures how long a ready task waits for a thread, and when that is more than
//!   `server.max_scheduling_delay_ms` (under more load than the CPUs serve, every ready
//!   connection waits as long), requests are shed for
//!   `limits::SHED_HOLD` after; a shed request costs a fraction of a served one, so the
//!   backlog drains and what is admitted after keeps its latency;
//! - or `server.max_requests_in_flight` are being answered (requests waiting on the database
//!   or a plugin pile up here, not on the CPUs).
//!
//! A client or balancer learns to come back later or elsewhere; the health endpoints are never
//! shed, so that an orchestrator still sees the replica alive.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::error::OAuthError;
use crate::limits::{REQUESTS_IN_FLIGHT_PER_CPU, SCHEDULING_PROBE_INTERVAL, SHED_HOLD};

/// What decides whether a request is admitted; one per router, shared by its requests.
#[derive(Clone)]
pub struct Admission {
    shared: Arc<Shared>,
}

struct Shared {
    in_flight: AtomicUsize,
    most_in_flight: usize,
    /// Requests are shed until this many milliseconds after `started` (at first 0: a
    /// moment already past).
    shed_until_ms: AtomicU64,
    started: Instant,
}

impl Shared {
    fn shedding(&self) -> bool {
        (self.started.elapsed().as_millis() as u64) < self.shed_until_ms.load(Ordering::Relaxed)
    }
}

impl Admission {
    /// `server.max_requests_in_flight` (0: `REQUESTS_IN_FLIGHT_PER_CPU` per CPU) and
    /// `server.max_scheduling_delay_ms` (0: never shed for lateness). The probe runs on the
    /// runtime this is made on, for as long as the router holding it lives.
    pub fn from_config(config: &Config) -> Self {
        let most_in_flight = match config.server.max_requests_in_flight {
            0 => {
                let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
                REQUESTS_IN_FLIGHT_PER_CPU.saturating_mul(cpus)
            }
            n => n,
        };
        let shared = Arc::new(Shared {
            in_flight: AtomicUsize::new(0),
            most_in_flight,
            shed_until_ms: AtomicU64::new(0),
            started: Instant::now(),
        });
        let most_delay = Duration::from_millis(config.server.max_scheduling_delay_ms);
        if !most_delay.is_zero()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            runtime.spawn(probe(Arc::downgrade(&shared), most_delay));
        }
        Self { shared }
    }
}

/// Every `SCHEDULING_PROBE_INTERVAL`, measures how long a ready task waits for a thread;
/// past `most_delay`, requests are shed for `SHED_HOLD`.
async fn probe(shared: Weak<Shared>, most_delay: Duration) {
    loop {
        tokio::time::sleep(SCHEDULING_PROBE_INTERVAL).await;
        // A yielding task goes to the back of its thread's queue and is woken only after
        // the runtime has looked for ready connections again: the time it takes to come
        // back is the wait of any ready connection. (A timer's wake-up is no measure: the
        // runtime runs it ahead of the queue.)
        let asked = Instant::now();
        tokio::task::yield_now().await;
        let late = asked.elapsed();
        let Some(shared) = shared.upgrade() else { return };
        if late > most_delay {
            let until = (shared.started.elapsed() + SHED_HOLD).as_millis() as u64;
            if !shared.shedding() {
                tracing::warn!(
                    late_ms = late.as_millis() as u64,
                    hold_ms = SHED_HOLD.as_millis() as u64,
                    "overloaded: shedding requests"
                );
            }
            shared.shed_until_ms.store(until, Ordering::Relaxed);
        }
    }
}

/// Counts a request while it is answered: dropped when its answer is ready.
pub struct Admitted(Arc<Shared>);

impl Drop for Admitted {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Admission {
    /// Admits a request for `path` (`server.rs` asks, for every request), or sheds it:
    /// `Ok(None)` for the health endpoints, which are never shed nor counted.
    pub fn admit(&self, path: &str) -> Result<Option<Admitted>, OAuthError> {
        if path.starts_with("/health") {
            return Ok(None);
        }
        let shared = &self.shared;
        let admitted = Admitted(shared.clone());
        let past_bound = shared.in_flight.fetch_add(1, Ordering::Relaxed) >= shared.most_in_flight;
        if past_bound || shared.shedding() {
            drop(admitted);
            crate::metrics::request_shed();
            return Err(OAuthError::Overloaded);
        }
        Ok(Some(admitted))
    }
}
