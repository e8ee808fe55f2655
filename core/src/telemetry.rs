//! Logging: pretty or JSON as configured; `RUST_LOG` filters. Colours (ANSI escapes) only
//! when stderr is a terminal, never into a file or a pipe.
//!
//! Lines are formatted on the thread that logs them and written to stderr by a thread of
//! their own (tracing-appender), through a buffer flushed whenever no line waits: a request
//! never waits on a `write` to stderr, and a busy server writes many lines per call. Nothing
//! is dropped: a logger that finds the queue full (`limits::LOG_LINES_QUEUED`) waits for room.

use std::io::IsTerminal;

use tracing_appender::non_blocking::{NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Keeps the writing thread; dropped at exit, it writes what is still queued.
pub struct LogWriter {
    _guard: Option<WorkerGuard>,
}

pub fn init(format: LogFormat) -> LogWriter {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,wasmtime=warn,cranelift=warn"));
    let (writer, guard) = NonBlockingBuilder::default()
        .lossy(false)
        .buffered_lines_limit(crate::limits::LOG_LINES_QUEUED)
        .thread_name("log-writer")
        .finish(std::io::BufWriter::new(std::io::stderr()));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(std::io::stderr().is_terminal());
    let installed = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Pretty => builder.try_init(),
    };
    // Where another subscriber was installed first, its writer is the one in use.
    LogWriter { _guard: installed.is_ok().then_some(guard) }
}
