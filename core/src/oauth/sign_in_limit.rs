//! Throttles password guessing without locking the real user out (RFC 6819 §4.4.3.6
//! "Online Guessing"; OWASP's "Blocking Brute Force Attacks"). On this replica:
//!
//! - each client address (the TCP peer, or behind a trusted proxy the client it names:
//!   `crate::client_address`; IPv6 by /64) gets a number of attempts per minute, and past
//!   it the login page answers 429 without checking anything;
//! - each login page (interaction) gets a number of attempts in all, and past it the page is
//!   spent: the person starts again from the application;
//! - each client using the password grant (RFC 6749 §4.3) gets a number of attempts per
//!   minute, and past it the token endpoint answers 429;
//! - each username gets a number of attempts per minute, and past it attempts are *delayed*
//!   (by at most a configured bound), never refused: the right password, arriving while the
//!   username is under attack, still signs the user in.
//!
//! Where `limits.redis_url` is set, every replica counts these together instead
//! ([`super::sign_in_shared`], [`SignInLimit::check`]), and falls back to its own counters
//! while Redis cannot answer.
//!
//! The password hash itself is bounded apart, with every other hash ([`crate::passwords`]).
//!
//! The rate limiters are governor's keyed GCRA limiters, keyed by fixed-size values (an
//! address, or a SHA-256 of what names the page, client or username) and holding at most
//! [`MAX_LIMITER_KEYS`] keys each: a full limiter forgets the keys whose attempts are all
//! replenished, and until it can, refuses attempts (the username limiter delays them by the
//! longest delay instead).

use std::hash::Hash;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, NotUntil, Quota, RateLimiter};
use parking_lot::Mutex;
use sha2::{Digest, Sha256};

use super::sign_in_shared::{Counter, Shared, SharedState};
use crate::config::Config;
use crate::limits::MAX_LIMITER_KEYS;

/// Why an attempt is refused before its password is looked at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Too many attempts from this address in the last minute.
    Address,
    /// This login page has had all the attempts it gets.
    PageSpent,
    /// Too many password grant attempts by this client in the last minute.
    Client,
    /// A limiter holds as many keys as it may, none of them idle yet.
    Full,
}

/// Where an attempt is made: on a login page, or by a client at the token endpoint.
#[derive(Debug, Clone, Copy)]
pub enum Attempt<'a> {
    Page(&'a str),
    Client(&'a str),
}

pub struct SignInLimit {
    per_address: Option<Keyed<IpAddr>>,
    per_interaction: Option<Keyed<[u8; 32]>>,
    per_client: Option<Keyed<[u8; 32]>>,
    per_username: Option<Keyed<[u8; 32]>>,
    /// Dynamic client registrations (RFC 7591) per client address, on this replica.
    per_registration_address: Option<Keyed<IpAddr>>,
    max_delay: Duration,
    clock: DefaultClock,
    /// The counters every replica shares, where `limits.redis_url` is set.
    shared: Option<Shared>,
    quotas: Quotas,
}

/// The limits as numbers, for the shared counters: attempts per minute per address, client
/// and username, attempts per login page and the page's life (0: no limit).
struct Quotas {
    address: u32,
    page: u32,
    page_life: Duration,
    client: u32,
    username: u32,
}

impl SignInLimit {
    pub fn new(config: &Config) -> Self {
        let s = &config.server;
        // `n` attempts for the page's whole life: a burst of `n`, replenished once per lifetime.
        let page_life = Duration::from_secs(config.tokens.interaction_ttl.max(1));
        let per_interaction = NonZeroU32::new(s.sign_in_attempts_per_interaction)
            .and_then(|n| Quota::with_period(page_life).map(|q| Keyed::new(q.allow_burst(n), MAX_LIMITER_KEYS)));
        Self {
            per_address: per_minute(s.sign_in_attempts_per_address_per_minute),
            per_interaction,
            per_client: per_minute(s.sign_in_attempts_per_client_per_minute),
            per_username: per_minute(s.sign_in_attempts_per_minute),
            per_registration_address: per_minute(config.registration.registrations_per_address_per_minute),
            max_delay: Duration::from_millis(s.sign_in_max_delay_ms),
            clock: DefaultClock::default(),
            shared: config.limits.redis_url.as_deref().and_then(|url| {
                Shared::new(url, &config.limits.redis_prefix)
                    .inspect_err(
                        |e| tracing::warn!(error = %e, "limits.redis_url is not a Redis URL; sign-in limits are local"),
                    )
                    .ok()
            }),
            quotas: Quotas {
                address: s.sign_in_attempts_per_address_per_minute,
                page: s.sign_in_attempts_per_interaction,
                page_life,
                client: s.sign_in_attempts_per_client_per_minute,
                username: s.sign_in_attempts_per_minute,
            },
        }
    }

    /// How attempts are counted now: with every replica, by this one alone, or by this one
    /// alone because Redis cannot be used (readiness reports it).
    pub fn state(&self) -> SharedState {
        self.shared.as_ref().map_or(SharedState::Local, Shared::state)
    }

    /// As [`SignInLimit::admit`], counted with every replica where Redis is configured and
    /// answers (one round trip), else by this replica.
    pub async fn check(&self, address: IpAddr, at: Attempt<'_>, username: &str) -> Result<Duration, Refusal> {
        if let Some(shared) = &self.shared
            && let Some(answer) = self.check_shared(shared, address, at, username).await
        {
            return answer;
        }
        self.admit(address, at, username)
    }

    async fn check_shared(
        &self,
        shared: &Shared,
        address: IpAddr,
        at: Attempt<'_>,
        username: &str,
    ) -> Option<Result<Duration, Refusal>> {
        const MINUTE: Duration = Duration::from_secs(60);
        let q = &self.quotas;
        let window = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).ok()?.as_secs() / 60;
        // A window's counter outlives it a little, for clocks that disagree.
        let per_minute = |key: String, limit| Counter { key: format!("{key}:{window}"), lifetime: 2 * MINUTE, limit };
        let (second, refusal) = match at {
            Attempt::Page(page) => (
                Counter {
                    key: format!("sign-in:page:{}", hex::encode(Sha256::digest(page.as_bytes()))),
                    lifetime: q.page_life,
                    limit: q.page,
                },
                Refusal::PageSpent,
            ),
            Attempt::Client(client) => (
                per_minute(format!("sign-in:client:{}", hex::encode(Sha256::digest(client.as_bytes()))), q.client),
                Refusal::Client,
            ),
        };
        let counters = [
            per_minute(format!("sign-in:address:{}", address_key(address)), q.address),
            second,
            per_minute(format!("sign-in:username:{}", hex::encode(username_key(username))), q.username),
        ];
        let counts = shared.count(&counters).await?;
        let over = |i: usize| counters[i].limit > 0 && counts[i] > u64::from(counters[i].limit);
        if over(0) {
            return Some(Err(Refusal::Address));
        }
        if over(1) {
            return Some(Err(refusal));
        }
        if !over(2) {
            return Some(Ok(Duration::ZERO));
        }
        // Past the username's budget: each attempt more waits one more share of the minute.
        let excess = (counts[2] - u64::from(q.username)).min(u64::from(u32::MAX)) as u32;
        Some(Ok((MINUTE / q.username.max(1)).saturating_mul(excess).min(self.max_delay)))
    }

    /// Spends one attempt from `address`, made `at` a login page or by a client, for
    /// `username`. `Ok(delay)`: go ahead after waiting `delay` (non-zero while the username is
    /// throttled).
    pub fn admit(&self, address: IpAddr, at: Attempt<'_>, username: &str) -> Result<Duration, Refusal> {
        if let Some(l) = &self.per_address {
            l.check(&address_key(address)).map_err(|spent| spent.or(Refusal::Address))?;
        }
        let (limiter, key, refusal) = match at {
            Attempt::Page(page) => (&self.per_interaction, page, Refusal::PageSpent),
            Attempt::Client(client) => (&self.per_client, client, Refusal::Client),
        };
        if let Some(l) = limiter {
            l.check(&Sha256::digest(key.as_bytes()).into()).map_err(|spent| spent.or(refusal))?;
        }
        match &self.per_username {
            Some(l) => match l.check(&username_key(username)) {
                Ok(()) => Ok(Duration::ZERO),
                // Wait until the username's rate allows another attempt, but never longer
                // than the bound: the delay slows guessing down and locks nobody out.
                Err(Limited::Until(not_until)) => Ok(not_until.wait_time_from(self.clock.now()).min(self.max_delay)),
                Err(Limited::Full) => Ok(self.max_delay),
            },
            None => Ok(Duration::ZERO),
        }
    }

    /// Admits a dynamic client registration from `address` (IPv6 by /64): `Address` past
    /// `registration.registrations_per_address_per_minute`, `Full` while the limiter is full.
    pub fn admit_registration(&self, address: IpAddr) -> Result<(), Refusal> {
        match &self.per_registration_address {
            Some(l) => l.check(&address_key(address)).map_err(|spent| spent.or(Refusal::Address)),
            None => Ok(()),
        }
    }

    /// How many keys the limiters hold, all together.
    pub fn keys(&self) -> usize {
        let address = [&self.per_address, &self.per_registration_address]
            .into_iter()
            .flatten()
            .map(|l| l.limiter.len())
            .sum::<usize>();
        let hashed = [&self.per_interaction, &self.per_client, &self.per_username];
        address + hashed.into_iter().flatten().map(|l| l.limiter.len()).sum::<usize>()
    }

    /// Forgets keys whose attempts have all been replenished.
    pub fn forget_idle(&self) {
        for l in [&self.per_address, &self.per_registration_address].into_iter().flatten() {
            l.forget_idle();
        }
        for l in [&self.per_interaction, &self.per_client, &self.per_username].into_iter().flatten() {
            l.forget_idle();
        }
    }
}

fn per_minute<K: Hash + Eq + Clone>(n: u32) -> Option<Keyed<K>> {
    NonZeroU32::new(n).map(|n| Keyed::new(Quota::per_minute(n), MAX_LIMITER_KEYS))
}

/// Why a key's attempt is refused.
enum Limited {
    /// Its attempts are spent until then.
    Until(NotUntil<<DefaultClock as Clock>::Instant>),
    /// The limiter holds as many keys as it may.
    Full,
}

impl Limited {
    /// The refusal: `spent` for a key whose attempts are spent, or that the limiter is full.
    fn or(self, spent: Refusal) -> Refusal {
        match self {
            Self::Until(_) => spent,
            Self::Full => Refusal::Full,
        }
    }
}

/// A keyed rate limiter holding at most `max_keys` keys.
struct Keyed<K: Hash + Eq + Clone> {
    limiter: DefaultKeyedRateLimiter<K>,
    max_keys: usize,
    /// When the idle keys were last forgotten because the limiter was full.
    pruned: Mutex<Option<Instant>>,
}

impl<K: Hash + Eq + Clone> Keyed<K> {
    fn new(quota: Quota, max_keys: usize) -> Self {
        Self { limiter: RateLimiter::keyed(quota), max_keys, pruned: Mutex::new(None) }
    }

    /// Spends one of `key`'s attempts. A full limiter first forgets its idle keys, at most
    /// once a second (that walks every key), and while still full refuses every attempt: it
    /// cannot tell a key it holds without adding it.
    fn check(&self, key: &K) -> Result<(), Limited> {
        if self.limiter.len() >= self.max_keys {
            if let Some(mut pruned) = self.pruned.try_lock()
                && pruned.is_none_or(|at| at.elapsed() >= Duration::from_secs(1))
            {
                *pruned = Some(Instant::now());
                self.forget_idle();
            }
            if self.limiter.len() >= self.max_keys {
                return Err(Limited::Full);
            }
        }
        self.limiter.check_key(key).map_err(Limited::Until)
    }

    fn forget_idle(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_limiter_refuses_until_its_keys_are_idle() {
        let limiter = Keyed::new(Quota::per_minute(NonZeroU32::MIN), 2);
        assert!(limiter.check(&1).is_ok());
        assert!(matches!(limiter.check(&1), Err(Limited::Until(_))), "the key's attempt is spent");
        assert!(limiter.check(&2).is_ok());
        assert!(matches!(limiter.check(&3), Err(Limited::Full)), "a third key is not taken");
        assert_eq!(limiter.limiter.len(), 2);
    }

    #[test]
    fn a_page_client_or_username_of_any_length_is_one_key_of_a_fixed_size() {
        let config = Config::default();
        let limit = SignInLimit::new(&config);
        let address = IpAddr::from([192, 0, 2, 1]);
        let long = "p".repeat(60_000);
        assert!(limit.admit(address, Attempt::Page(&long), &long).is_ok());
        assert!(limit.admit(address, Attempt::Client(&long), &long).is_ok());
        assert_eq!(limit.keys(), 4, "an address, a page, a client and a username");
    }
}
