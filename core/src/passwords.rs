//! Every password hash the server computes (signing in, creating a user) goes through one
//! [`Passwords`]: argon2id (`crypto`) takes ~19 MiB and tens of milliseconds a hash, so at
//! most so many run at once, on blocking threads, and a bounded queue waits for them; past
//! it a hash is refused at once ([`PasswordError::Busy`]) rather than queued without end.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    /// As many hashes are running and waiting as may.
    #[error("every password hash slot is taken")]
    Busy,
    #[error("password hashing failed: {0}")]
    Failed(String),
}

pub struct Passwords {
    running: Arc<Semaphore>,
    /// Hashes running or waiting for a permit.
    admitted: Arc<AtomicUsize>,
    /// Most hashes running or waiting at once.
    capacity: usize,
}

impl Passwords {
    /// `concurrency` hashes at once (0: one per CPU), and `queue` more waiting.
    pub fn new(concurrency: usize, queue: usize) -> Self {
        let concurrency = match concurrency {
            0 => std::thread::available_parallelism().map(usize::from).unwrap_or(1),
            n => n,
        };
        Self {
            running: Arc::new(Semaphore::new(concurrency)),
            admitted: Arc::new(AtomicUsize::new(0)),
            capacity: concurrency.saturating_add(queue),
        }
    }

    /// The argon2id hash (PHC string) of a new password.
    pub async fn hash(&self, password: &str) -> Result<String, PasswordError> {
        let password = password.to_owned();
        self.run(move || crate::crypto::hash_password(&password))
            .await?
            .map_err(|e| PasswordError::Failed(e.to_string()))
    }

    /// Whether `password` matches the PHC string `phc`. Without one (no such user), it is
    /// checked against a hash of nothing anyone knows, so that timing does not tell.
    pub async fn verify(&self, password: &str, phc: Option<String>) -> Result<bool, PasswordError> {
        let password = password.to_owned();
        self.run(move || {
            let phc = phc.as_deref().unwrap_or_else(|| crate::crypto::dummy_password_hash());
            crate::crypto::verify_password(&password, phc)
        })
        .await
    }

    /// A turn at hashing: waits for a running permit, or refuses at once when the queue is
    /// full. Hashing holds it until done.
    pub async fn slot(&self) -> Result<Slot, PasswordError> {
        let queued = Queued(self.admitted.clone());
        if self.admitted.fetch_add(1, Ordering::AcqRel) >= self.capacity {
            return Err(PasswordError::Busy);
        }
        let permit = self.running.clone().acquire_owned().await.map_err(|_| PasswordError::Busy)?;
        Ok(Slot { _permit: permit, _queued: queued })
    }

    /// Runs `hash` on a blocking thread in a [`Slot`], which moves into the blocking task:
    /// it bounds running hashes even if the caller goes away meanwhile.
    async fn run<T: Send + 'static>(&self, hash: impl FnOnce() -> T + Send + 'static) -> Result<T, PasswordError> {
        let slot = self.slot().await?;
        tokio::task::spawn_blocking(move || {
            let _slot = slot;
            hash()
        })
        .await
        .map_err(|e| PasswordError::Failed(e.to_string()))
    }
}

/// A permit to run one password hash; dropping it lets the next one run.
pub struct Slot {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_verify_and_a_full_queue_refuses_at_once() {
        let passwords = Passwords::new(1, 0);
        let phc = passwords.hash("a long password").await.unwrap();
        assert!(passwords.verify("a long password", Some(phc.clone())).await.unwrap());
        assert!(!passwords.verify("another password", Some(phc)).await.unwrap());
        assert!(!passwords.verify("a long password", None).await.unwrap());

        // While the one slot is taken, and none may wait, a hash is refused at once.
        let slot = passwords.slot().await.unwrap();
        assert!(matches!(passwords.hash("another one").await, Err(PasswordError::Busy)));
        drop(slot);
        assert!(passwords.hash("another one").await.is_ok(), "its slot is free again");
    }
}
