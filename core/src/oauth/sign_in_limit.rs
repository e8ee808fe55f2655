//! Throttles password guessing: each username gets a number of sign-in attempts per minute
//! on this replica (governor's keyed GCRA limiter); past it the login page says to wait.

use std::num::NonZeroU32;

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

pub struct SignInLimit {
    limiter: Option<DefaultKeyedRateLimiter<String>>,
}

impl SignInLimit {
    /// `per_minute` attempts per username; 0 turns the limit off.
    pub fn new(per_minute: u32) -> Self {
        Self { limiter: NonZeroU32::new(per_minute).map(|n| RateLimiter::keyed(Quota::per_minute(n))) }
    }

    /// Spends one attempt for `username`; `false` when none is left.
    pub fn attempt(&self, username: &str) -> bool {
        match &self.limiter {
            Some(l) => l.check_key(&username.to_lowercase()).is_ok(),
            None => true,
        }
    }

    /// Forgets usernames whose attempts have all been replenished.
    pub fn forget_idle(&self) {
        if let Some(l) = &self.limiter {
            l.retain_recent();
        }
    }
}
