//! Every password hash the server computes (signing in, creating a user) goes through one
//! [`Passwords`]: argon2id (`crypto`) takes ~19 MiB and tens of milliseconds a hash, so at
//! most so many run at once, on blocking threads, and a bounded queue waits for them; past
//! it a hash is refused at once ([`PasswordError::Busy`]) rather than queued without end.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::Semaphore;

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

    /// Runs `hash` on a blocking thread once a permit is free, or refuses at once when the
    /// queue is full. The permit moves into the blocking task: it bounds running hashes even
    /// if the caller goes away meanwhile.
    async fn run<T: Send + 'static>(&self, hash: impl FnOnce() -> T + Send + 'static) -> Result<T, PasswordError> {
        let queued = Queued(self.admitted.clone());
        if self.admitted.fetch_add(1, Ordering::AcqRel) >= self.capacity {
            return Err(PasswordError::Busy);
        }
        let permit = self.running.clone().acquire_owned().await.map_err(|_| PasswordError::Busy)?;
        tokio::task::spawn_blocking(move || {
            let _held = (permit, queued);
            hash()
        })
        .await
        .map_err(|e| PasswordError::Failed(e.to_string()))
    }
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
        let passwords = Arc::new(Passwords::new(1, 0));
        let phc = passwords.hash("a long password").await.unwrap();
        assert!(passwords.verify("a long password", Some(phc.clone())).await.unwrap());
        assert!(!passwords.verify("another password", Some(phc)).await.unwrap());
        assert!(!passwords.verify("a long password", None).await.unwrap());

        // A hash that runs until told to finish, and none may wait: another is refused at once.
        let (finish, finished) = std::sync::mpsc::channel::<()>();
        let running = {
            let passwords = passwords.clone();
            tokio::spawn(async move { passwords.run(move || finished.recv()).await })
        };
        while passwords.admitted.load(Ordering::Acquire) == 0 {
            tokio::task::yield_now().await;
        }
        assert!(matches!(passwords.hash("another one").await, Err(PasswordError::Busy)));
        finish.send(()).unwrap();
        running.await.unwrap().unwrap().unwrap();
        assert!(passwords.hash("another one").await.is_ok(), "its slot is free again");
    }
}
