//! SQLite's writing side: the thread that runs every write group of this process, several
//! groups to one transaction (group commit), and the thread that checkpoints the log.
//!
//! A write group (`apply`, `purge-expired`) is a storage call that runs on the writer thread
//! from its first statement to its end. While it runs, more groups queue; when it ends, those
//! already waiting run next, up to [`WRITE_GROUPS_PER_COMMIT`], in the same transaction, each
//! group in a savepoint of its own (a group that fails or rolls back undoes only itself).
//! The transaction commits when no group waits or the bound is reached, and only then is any
//! group of the batch answered: a group is reported written once its commit is. If the commit fails, every group
//! of the batch is answered that the database is unavailable, and none of them was written.
//! Each commit writes the pages the batch touched once, instead of once per group.
//!
//! On the writer thread every statement goes to the batch's connection, reads outside a
//! group's transaction included, so that a group sees what the groups before it in the batch
//! wrote.

use std::cell::RefCell;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use tokio::sync::{Mutex, OwnedMutexGuard, mpsc, oneshot};

use crate::limits::{SQLITE_CHECKPOINT_INTERVAL, WRITE_GROUPS_PER_COMMIT};

/// The write connection, locked.
pub(super) type Connection = OwnedMutexGuard<rusqlite::Connection>;

/// What answers a group's caller once its batch committed (or did not).
type Answer = Box<dyn FnOnce(Result<(), String>) + Send>;
/// A write group, as the writer runs it: its work, then how to answer.
type Job = Pin<Box<dyn Future<Output = Answer> + Send>>;

/// Why a group cannot have the batch's connection.
#[derive(Debug)]
pub(super) enum Refused {
    /// Not asked for on a writer thread.
    OffWriter,
    /// SQLite rolled the batch's transaction back itself (an I/O error, a full disk).
    RolledBack,
    /// The batch's transaction could not begin.
    Begin(rusqlite::Error),
}

/// Why a group's caller got no answer from the writer.
#[derive(Debug, thiserror::Error)]
pub enum WriteFailed {
    #[error("the database's writer stopped")]
    Stopped,
    #[error("the database did not commit: {0}")]
    NotCommitted(String),
}

/// A handle on the writer thread; the thread ends when the last handle is dropped.
#[derive(Clone, Debug)]
pub struct Writer {
    jobs: mpsc::UnboundedSender<Job>,
}

thread_local! {
    /// On a writer thread: the write connection, and the batch's transaction when one is open.
    static BATCH: RefCell<Option<Batch>> = const { RefCell::new(None) };
}

struct Batch {
    write: Arc<Mutex<rusqlite::Connection>>,
    /// The connection while the batch's transaction is open and no group holds it.
    open: Option<Connection>,
}

impl Writer {
    pub(super) fn start(write: Arc<Mutex<rusqlite::Connection>>) -> std::io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let (jobs, queued) = mpsc::unbounded_channel::<Job>();
        std::thread::Builder::new().name("sqlite-writer".into()).spawn(move || {
            BATCH.with(|b| *b.borrow_mut() = Some(Batch { write, open: None }));
            runtime.block_on(serve(queued));
        })?;
        Ok(Self { jobs })
    }

    /// Runs `group` on the writer thread and waits until it is committed. The group runs to
    /// its end even if the caller stops waiting, so it is never cut off between statements.
    pub async fn run<T: Send + 'static>(
        &self,
        group: impl Future<Output = T> + Send + 'static,
    ) -> Result<T, WriteFailed> {
        let (answer, answered) = oneshot::channel();
        let job: Job = Box::pin(async move {
            let done = group.await;
            Box::new(move |committed: Result<(), String>| {
                let _ = answer.send(committed.map(|()| done));
            }) as Answer
        });
        self.jobs.send(job).map_err(|_| WriteFailed::Stopped)?;
        answered.await.map_err(|_| WriteFailed::Stopped)?.map_err(WriteFailed::NotCommitted)
    }
}

/// The writer thread's loop: a batch is the group that came first and those queued behind
/// it when it ended, up to the bound.
async fn serve(mut queued: mpsc::UnboundedReceiver<Job>) {
    let mut answers = Vec::with_capacity(WRITE_GROUPS_PER_COMMIT);
    while let Some(job) = queued.recv().await {
        answers.push(run(job).await);
        while answers.len() < WRITE_GROUPS_PER_COMMIT {
            match queued.try_recv() {
                Ok(job) => answers.push(run(job).await),
                Err(_) => break,
            }
        }
        let committed = commit();
        for answer in answers.drain(..).flatten() {
            answer(committed.clone());
        }
    }
}

/// One group; a group that panics is not answered (its caller hears that the writer stopped
/// for it), and the others go on.
async fn run(job: Job) -> Option<Answer> {
    std::panic::AssertUnwindSafe(job).catch_unwind().await.ok()
}

/// Commits the batch's transaction, if a group opened one.
fn commit() -> Result<(), String> {
    let Some(connection) = BATCH.with(|b| b.borrow_mut().as_mut().and_then(|b| b.open.take())) else {
        return Ok(());
    };
    if connection.is_autocommit() {
        // SQLite rolled the transaction back itself (an I/O error, a full disk).
        return Err("the transaction was rolled back".into());
    }
    connection.execute_batch("COMMIT").map_err(|e| {
        if !connection.is_autocommit() {
            let _ = connection.execute_batch("ROLLBACK");
        }
        e.to_string()
    })
}

/// Whether this thread is a writer thread (and its statements the batch's).
pub(super) fn on_writer() -> bool {
    BATCH.with(|b| b.borrow().is_some())
}

/// On a writer thread, the batch's connection for one group's statements, its transaction
/// begun if this is the batch's first. Give it back with [`give_back`] once the statement or
/// the group is done.
pub(super) async fn take() -> Result<Connection, Refused> {
    let Some((write, open)) = BATCH.with(|b| b.borrow_mut().as_mut().map(|b| (b.write.clone(), b.open.take()))) else {
        return Err(Refused::OffWriter);
    };
    match open {
        Some(connection) if connection.is_autocommit() => {
            give_back(connection);
            Err(Refused::RolledBack)
        }
        Some(connection) => Ok(connection),
        None => {
            // IMMEDIATE takes the write lock up front, so a writer of another process waits on
            // busy_timeout instead of one failing when it upgrades a read lock.
            let connection = write.lock_owned().await;
            match connection.execute_batch("BEGIN IMMEDIATE") {
                Ok(()) => Ok(connection),
                Err(e) => Err(Refused::Begin(e)),
            }
        }
    }
}

/// Hands the batch's connection back to the writer thread.
pub(super) fn give_back(connection: Connection) {
    BATCH.with(|b| {
        if let Some(batch) = b.borrow_mut().as_mut() {
            batch.open = Some(connection);
        }
    });
}

/// A group's transaction within the batch's: a savepoint, begun, ended and undone.
pub(super) const GROUP_BEGIN: &str = "SAVEPOINT portcullis_group";
pub(super) const GROUP_END: &str = "RELEASE portcullis_group";
pub(super) const GROUP_UNDO: &str = "ROLLBACK TO portcullis_group; RELEASE portcullis_group";

/// A thread that checkpoints the write-ahead log every [`SQLITE_CHECKPOINT_INTERVAL`], on a
/// connection of its own: `PASSIVE`, so it never waits for the writer or a reader (what it
/// cannot copy yet, the next round does). A page written many times between two rounds is
/// copied once. The thread ends when the last handle is dropped.
#[derive(Debug)]
pub struct Checkpointer {
    _stop: std::sync::mpsc::Sender<()>,
}

impl Checkpointer {
    pub(super) fn start(path: &std::path::Path) -> std::io::Result<Self> {
        let connection = rusqlite::Connection::open(path)
            .and_then(|c| c.busy_timeout(Duration::from_millis(100)).map(|()| c))
            .map_err(std::io::Error::other)?;
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        std::thread::Builder::new().name("sqlite-checkpoint".into()).spawn(move || {
            let mut failing = false;
            while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(SQLITE_CHECKPOINT_INTERVAL)
            {
                // A failure is logged once, until a checkpoint succeeds again.
                match connection.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                    Ok(()) => failing = false,
                    Err(e) if !failing => {
                        tracing::warn!(error = %e, "SQLite checkpoint failed; trying again");
                        failing = true;
                    }
                    Err(_) => {}
                }
            }
        })?;
        Ok(Self { _stop: stop })
    }
}
