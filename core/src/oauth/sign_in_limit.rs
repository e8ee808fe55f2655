//! Throttles password guessing without locking the real user out (RFC 6819 §4.4.3.6
//! "Online Guessing"; OWASP's "Blocking Brute Force Attacks"). On this replica:
//!
//! - each client address (the TCP peer; IPv6 by /64) gets a number of attempts per minute,
//!   and past it the login page answers 429 without checking anything;
//! - each login page (interaction) gets a number of attempts in all, and past it the page is
//!   spent: the person starts again from the application;
//! - each client using the password grant (RFC 6749 §4.3) gets a number of attempts per
//!   minute, and past it the token endpoint answers 429;
//! - each username gets a number of attempts per minute, and past it attempts are *delayed*
//!   (by at most a configured bound), never refused: the right password, arriving while the
//!   username is under attack, still signs the user in;
//! - password hashes (argon2id, ~19 MiB each) run at most `password_hash_concurrency` at a
//!   time; a bounded queue waits for them, and past it the login page says the server is busy.
//!
//! The rate limiters are governor's keyed GCRA limiters; the hash bound is a tokio semaphore.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use sha2::{Digest, Sha256};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::Config;

/// Why an attempt is refused before its password is looked at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Too many attempts from this address in the last minute.
    Address,
    /// This login page has had all the attempts it gets.
    PageSpent,
    /// Too many password grant attempts by this client in the last minute.
    Client,
}

/// Where an attempt is made: on a login page, or by a client at the token endpoint.
#[derive(Debug, Clone, Copy)]
pub enum Attempt<'a> {
    Page(&'a str),
    Client(&'a str),
}

/// The password hash queue is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Busy;

pub struct SignInLimit {
    per_address: Option<DefaultKeyedRateLimiter<IpAddr>>,
    per_interaction: Option<DefaultKeyedRateLimiter<String>>,
    per_client: Option<DefaultKeyedRateLimiter<String>>,
    per_username: Option<DefaultKeyedRateLimiter<[u8; 32]>>,
    max_delay: Duration,
    hashing: Arc<Semaphore>,
    /// Hashes running or waiting for a permit.
    admitted: Arc<AtomicUsize>,
    /// Most hashes running or waiting at once.
    capacity: usize,
    clock: DefaultClock,
}

impl SignInLimit {
    pub fn new(config: &Config) -> Self {
        let s = &config.server;
        // `n` attempts for the page's whole life: a burst of `n`, replenished once per lifetime.
        let page_life = Duration::from_secs(config.tokens.interaction_ttl.max(1));
        let per_interaction = NonZeroU32::new(s.sign_in_attempts_per_interaction)
            .and_then(|n| Quota::with_period(page_life).map(|q| RateLimiter::keyed(q.allow_burst(n))));
        let concurrency = match s.password_hash_concurrency {
            0 => std::thread::available_parallelism().map(usize::from).unwrap_or(1),
            n => n,
        };
        Self {
            per_address: per_minute(s.sign_in_attempts_per_address_per_minute),
            per_interaction,
            per_client: per_minute(s.sign_in_attempts_per_client_per_minute),
            per_username: per_minute(s.sign_in_attempts_per_minute),
            max_delay: Duration::from_millis(s.sign_in_max_delay_ms),
            hashing: Arc::new(Semaphore::new(concurrency)),
            admitted: Arc::new(AtomicUsize::new(0)),
            capacity: concurrency.saturating_add(s.password_hash_queue),
            clock: DefaultClock::default(),
        }
    }

    /// Spends one attempt from `address`, made `at` a login page or by a client, for
    /// `username`. `Ok(delay)`: go ahead after waiting `delay` (non-zero while the username is
    /// throttled).
    pub fn admit(&self, address: IpAddr, at: Attempt<'_>, username: &str) -> Result<Duration, Refusal> {
        if let Some(l) = &self.per_address
            && l.check_key(&address_key(address)).is_err()
        {
            return Err(Refusal::Address);
        }
        let (limiter, key, refusal) = match at {
            Attempt::Page(page) => (&self.per_interaction, page, Refusal::PageSpent),
            Attempt::Client(client) => (&self.per_client, client, Refusal::Client),
        };
        if let Some(l) = limiter
            && l.check_key(&key.to_owned()).is_err()
        {
            return Err(refusal);
        }
        match &self.per_username {
            Some(l) => match l.check_key(&username_key(username)) {
                Ok(()) => Ok(Duration::ZERO),
                // Wait until the username's rate allows another attempt, but never longer
                // than the bound: the delay slows guessing down and locks nobody out.
                Err(not_until) => Ok(not_until.wait_time_from(self.clock.now()).min(self.max_delay)),
            },
            None => Ok(Duration::ZERO),
        }
    }

    /// A turn at hashing a password: waits for one of the permits, or refuses at once when
    /// the queue is full. Hold the slot until the hash is done (move it into the blocking task).
    pub async fn hash_slot(&self) -> Result<HashSlot, Busy> {
        let queued = Queued(self.admitted.clone());
        if self.admitted.fetch_add(1, Ordering::AcqRel) >= self.capacity {
            return Err(Busy);
        }
        let permit = self.hashing.clone().acquire_owned().await.map_err(|_| Busy)?;
        Ok(HashSlot { _permit: permit, _queued: queued })
    }

    /// How many keys the limiters hold, all together.
    pub fn keys(&self) -> usize {
        let address = self.per_address.as_ref().map_or(0, |l| l.len());
        let named = [&self.per_interaction, &self.per_client].into_iter().flatten().map(|l| l.len()).sum::<usize>();
        address + named + self.per_username.as_ref().map_or(0, |l| l.len())
    }

    /// Forgets keys whose attempts have all been replenished.
    pub fn forget_idle(&self) {
        if let Some(l) = &self.per_address {
            l.retain_recent();
            l.shrink_to_fit();
        }
        for l in [&self.per_interaction, &self.per_client].into_iter().flatten() {
            l.retain_recent();
            l.shrink_to_fit();
        }
        if let Some(l) = &self.per_username {
            l.retain_recent();
            l.shrink_to_fit();
        }
    }
}

fn per_minute<K: std::hash::Hash + Eq + Clone>(n: u32) -> Option<DefaultKeyedRateLimiter<K>> {
    NonZeroU32::new(n).map(|n| RateLimiter::keyed(Quota::per_minute(n)))
}

/// A permit to run one password hash; dropping it lets the next one run.
pub struct HashSlot {
    _permit: OwnedSemaphorePermit,
    _queued: Queued,
}

/// Counts a hash as running or waiting until dropped.
struct Queued(Arc<AtomicUsize>);

impl Drop for Queued {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// An IPv4 address as is; IPv6 by its /64, the smallest block one subscriber usually gets.
fn address_key(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V4(_) => address,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut octets = v6.octets();
                octets[8..].fill(0);
                IpAddr::from(octets)
            }
        },
    }
}

/// Usernames are matched case-insensitively; the key has a fixed size whatever is posted.
fn username_key(username: &str) -> [u8; 32] {
    Sha256::digest(username.trim().to_lowercase().as_bytes()).into()
}
