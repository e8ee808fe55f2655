//! Accepting and serving HTTP/1.1 connections (hyper), within bounds that keep slow or idle
//! clients from holding the server's descriptors:
//!
//! - at most [`Bounds::max_connections`] are open at once; past it the listener waits to
//!   accept (the kernel's backlog holds the rest), so `accept` never fails for want of a
//!   descriptor that the database, plugins and outbound requests need;
//! - a request's head must arrive within [`Bounds::header_read_timeout`], counted from the
//!   accept or from the previous answer, so a kept-alive connection that asks nothing more is
//!   closed too;
//! - a connection on which no byte is read or written for [`Bounds::idle_timeout`] is closed
//!   (a body that stops coming, a client that stops reading its answer).
//!
//! Every request carries its peer's address (`ConnectInfo`), from which its client address
//! is found (`client_address.rs`). A stop closes the listener and lets each connection finish
//! the request in flight, then closes it, within `server.shutdown_grace`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tower::ServiceExt;

use crate::config::Config;

/// Descriptors kept back from the derived connection cap for everything else the server
/// opens besides the database's connections: the listener, plugin and key files, the
/// compiled-plugin cache, outbound requests, the runtime's own.
const RESERVED_DESCRIPTORS: u64 = 128;
/// Descriptors a database connection may take (SQLite: the database, its WAL and shared memory).
const DESCRIPTORS_PER_DATABASE_CONNECTION: u64 = 3;
/// The derived cap never exceeds this, however high the descriptor limit.
const MOST_DERIVED_CONNECTIONS: u64 = 1 << 16;

/// How connections are bounded.
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    pub max_connections: usize,
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    /// How long a stop waits for the connections to finish what they are answering.
    pub shutdown_grace: Duration,
}

impl Bounds {
    /// `server.max_connections`, or when it is 0, what the descriptor limit leaves; and
    /// `server.header_read_timeout_secs`, `server.idle_timeout_secs`.
    pub fn from_config(config: &Config) -> Self {
        let s = &config.server;
        let max_connections = match s.max_connections {
            0 => derived_cap(descriptor_limit(), config.database.max_connections),
            n => n,
        };
        Self {
            max_connections,
            header_read_timeout: Duration::from_secs(s.header_read_timeout_secs),
            idle_timeout: Duration::from_secs(s.idle_timeout_secs),
            shutdown_grace: Duration::from_secs(s.shutdown_grace),
        }
    }
}

/// The soft limit on this process's open descriptors (`RLIMIT_NOFILE`), if it has one.
fn descriptor_limit() -> Option<u64> {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes one `rlimit` into the struct it is given, which lives here.
    let read = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
    (read == 0 && limit.rlim_cur != libc::RLIM_INFINITY).then_some(limit.rlim_cur)
}

/// The connections `soft_limit` descriptors leave once the database and the rest of the
/// server have theirs; at least half of them.
fn derived_cap(soft_limit: Option<u64>, database_connections: u32) -> usize {
    let Some(limit) = soft_limit else { return MOST_DERIVED_CONNECTIONS as usize };
    let reserved = RESERVED_DESCRIPTORS + DESCRIPTORS_PER_DATABASE_CONNECTION * u64::from(database_connections);
    let cap = limit.saturating_sub(reserved).max(limit / 2).clamp(1, MOST_DERIVED_CONNECTIONS);
    usize::try_from(cap).unwrap_or(usize::MAX)
}

/// The listener: `address` bound (reusable at once after a restart) with a backlog of
/// `limits::LISTEN_BACKLOG` connections waiting to be accepted (the kernel caps it at
/// `net.core.somaxconn`), so that a burst of new connections waits there instead of having
/// its handshakes dropped and retried a second later.
pub fn bind(address: std::net::SocketAddr) -> std::io::Result<TcpListener> {
    let socket = match address {
        std::net::SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        std::net::SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.bind(address)?;
    socket.listen(crate::limits::LISTEN_BACKLOG)
}

/// Serves `router` on `listener` until `stop` completes, then closes the listener and lets
/// the open connections finish what they are answering, for at most
/// [`Bounds::shutdown_grace`].
pub async fn serve(listener: TcpListener, router: Router, bounds: Bounds, stop: impl Future<Output = ()>) {
    tracing::info!(
        max_connections = bounds.max_connections,
        header_read_timeout_secs = bounds.header_read_timeout.as_secs(),
        idle_timeout_secs = bounds.idle_timeout.as_secs(),
        "connection bounds"
    );
    let slots = Arc::new(Semaphore::new(bounds.max_connections));
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(bounds.header_read_timeout);
    let mut warned: Option<Instant> = None;
    tokio::pin!(stop);
    loop {
        // A slot before the accept: past the cap, connections wait in the backlog.
        let slot = match slots.clone().try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) => {
                if warned.is_none_or(|at| at.elapsed() >= Duration::from_secs(60)) {
                    tracing::warn!(
                        max_connections = bounds.max_connections,
                        "every connection slot is taken; new connections wait"
                    );
                    warned = Some(Instant::now());
                }
                tokio::select! {
                    slot = slots.clone().acquire_owned() => match slot {
                        Ok(slot) => slot,
                        Err(_) => break,
                    },
                    () = &mut stop => break,
                }
            }
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    accept_failed(e).await;
                    continue;
                }
            },
            () = &mut stop => break,
        };
        let (stream, idle) = Watched::new(stream);
        let router = router.clone();
        let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
            let mut request = request.map(axum::body::Body::new);
            request.extensions_mut().insert(ConnectInfo(peer));
            router.clone().oneshot(request)
        });
        let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        let idle_timeout = bounds.idle_timeout;
        tokio::spawn(async move {
            // Held until the connection is gone.
            let _slot = slot;
            tokio::select! {
                served = connection => {
                    if let Err(e) = served {
                        tracing::debug!(%peer, error = %e, "connection ended");
                    }
                }
                () = idle.expired(idle_timeout) => tracing::debug!(%peer, "idle connection closed"),
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(bounds.shutdown_grace, graceful.shutdown()).await.is_err() {
        tracing::warn!(grace_secs = bounds.shutdown_grace.as_secs(), "connections still open after the grace; closed");
    }
}

/// A failed `accept`: a connection that went away is skipped; anything else (no descriptor
/// left, a kernel limit) is logged and waited out briefly rather than retried at once.
async fn accept_failed(e: std::io::Error) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(e.kind(), ConnectionAborted | ConnectionRefused | ConnectionReset) {
        return;
    }
    tracing::warn!(error = %e, "accepting a connection failed");
    tokio::time::sleep(Duration::from_millis(100)).await;
}

/// A connection's stream, noting when a byte last moved either way.
struct Watched {
    stream: TcpStream,
    activity: Arc<Activity>,
}

/// When a connection last moved a byte: milliseconds after `opened`.
struct Activity {
    opened: Instant,
    last: AtomicU64,
}

impl Activity {
    fn touch(&self) {
        let now = u64::try_from(self.opened.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last.store(now, Ordering::Relaxed);
    }

    /// Completes once nothing has moved for `timeout`.
    async fn expired(&self, timeout: Duration) {
        loop {
            let deadline = self.opened + Duration::from_millis(self.last.load(Ordering::Relaxed)) + timeout;
            if Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep_until(deadline).await;
        }
    }
}

impl Watched {
    fn new(stream: TcpStream) -> (Self, Arc<Activity>) {
        let activity = Arc::new(Activity { opened: Instant::now(), last: AtomicU64::new(0) });
        (Self { stream, activity: activity.clone() }, activity)
    }

    fn moved<T>(&self, polled: Poll<std::io::Result<T>>, moved: impl FnOnce(&T) -> bool) -> Poll<std::io::Result<T>> {
        if let Poll::Ready(Ok(n)) = &polled
            && moved(n)
        {
            self.activity.touch();
        }
        polled
    }
}

impl AsyncRead for Watched {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.stream).poll_read(cx, buf);
        let read = buf.filled().len() > before;
        self.moved(polled, |()| read)
    }
}

impl AsyncWrite for Watched {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.stream).poll_write(cx, buf);
        self.moved(polled, |n| *n > 0)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.stream).poll_write_vectored(cx, bufs);
        self.moved(polled, |n| *n > 0)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_derived_cap_leaves_the_database_and_the_rest_their_descriptors() {
        assert_eq!(derived_cap(Some(1024), 16), 1024 - 128 - 48);
        assert_eq!(derived_cap(Some(256), 16), 128, "at least half");
        assert_eq!(derived_cap(Some(1), 16), 1);
        assert_eq!(derived_cap(Some(u64::MAX), 16), 1 << 16);
        assert_eq!(derived_cap(None, 16), 1 << 16);
    }
}
