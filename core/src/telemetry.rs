//! Logging: pretty or JSON as configured; `RUST_LOG` filters. Colours (ANSI escapes) only
//! when stderr is a terminal, never into a file or a pipe.
//!
//! Lines are formatted on the thread that logs them and appended to one buffer; a thread of
//! their own writes what the buffer holds to stderr every `limits::LOG_WRITE_INTERVAL`, in
//! one `write` however many lines it holds. A request never waits on a `write` to stderr, nor
//! wakes the writing thread for its line (a wake-up per line, a futex call and a thread
//! scheduled on the other core, cost a busy server more than formatting the line did).
//! Nothing is dropped: a logger that finds `limits::LOG_BUFFER_BYTES` waiting wakes the
//! writer and waits for room. A line is written at most one interval after it was logged,
//! and at exit all that waits is written.

use std::cell::RefCell;
use std::fmt::Write as _;
use std::io::{IsTerminal, Write};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{SystemTime, UNIX_EPOCH};

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::FormatTime;

use crate::config::LogFormat;
use crate::limits::{LOG_BUFFER_BYTES, LOG_WRITE_INTERVAL};

/// Keeps the writing thread; dropped at exit, it writes what is still waiting.
pub struct LogWriter {
    writer: Option<(Arc<Lines>, JoinHandle<()>)>,
}

impl Drop for LogWriter {
    fn drop(&mut self) {
        if let Some((lines, thread)) = self.writer.take() {
            lines.close();
            let _ = thread.join();
        }
    }
}

pub fn init(format: LogFormat) -> LogWriter {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,wasmtime=warn,cranelift=warn"));
    let lines = Arc::new(Lines::default());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(Shared(lines.clone()))
        .with_timer(LineTime)
        .with_ansi(std::io::stderr().is_terminal());
    let installed = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Pretty => builder.try_init(),
    };
    // Where another subscriber was installed first, its writer is the one in use.
    if installed.is_err() {
        return LogWriter { writer: None };
    }
    let writing = lines.clone();
    match std::thread::Builder::new().name("log-writer".into()).spawn(move || writing.write_out(std::io::stderr())) {
        Ok(thread) => LogWriter { writer: Some((lines, thread)) },
        Err(e) => {
            // No thread to write them: each logger writes its own line from now on.
            lines.lock().direct = true;
            eprintln!("portcullis: no thread for the log ({e}); lines are written as they are logged");
            LogWriter { writer: None }
        }
    }
}

/// The lines waiting for the writing thread.
#[derive(Default)]
struct Lines {
    waiting: Mutex<Waiting>,
    /// Told when the buffer is full, or at exit.
    wake_writer: Condvar,
    /// Told when the writer has taken what waited.
    room: Condvar,
}

#[derive(Default)]
struct Waiting {
    bytes: Vec<u8>,
    closing: bool,
    /// No writing thread: loggers write to stderr themselves.
    direct: bool,
}

impl Lines {
    fn lock(&self) -> MutexGuard<'_, Waiting> {
        self.waiting.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Tells the writing thread to write what waits and stop; loggers write their own lines
    /// from then on.
    fn close(&self) {
        self.lock().closing = true;
        self.wake_writer.notify_one();
    }

    /// Appends one formatted line (the formatter hands over each line whole), waiting while
    /// the buffer is full.
    fn append(&self, line: &[u8]) {
        let mut waiting = self.lock();
        while !waiting.direct
            && !waiting.closing
            && !waiting.bytes.is_empty()
            && waiting.bytes.len() + line.len() > LOG_BUFFER_BYTES
        {
            self.wake_writer.notify_one();
            waiting = self.room.wait(waiting).unwrap_or_else(PoisonError::into_inner);
        }
        // With no writing thread, or once it has stopped (at exit), the logger writes its own.
        if waiting.direct || waiting.closing {
            drop(waiting);
            let _ = std::io::stderr().write_all(line);
            return;
        }
        waiting.bytes.extend_from_slice(line);
    }

    /// The writing thread: every interval (or sooner when the buffer is full), takes what
    /// waits and writes it to `out` in one call; once closed, what is left, and stops (nothing
    /// is appended after: loggers then write their own).
    fn write_out(&self, mut out: impl Write) {
        let mut taken = Vec::with_capacity(LOG_BUFFER_BYTES);
        loop {
            let closing = {
                let mut waiting = self.lock();
                if !waiting.closing && waiting.bytes.len() < LOG_BUFFER_BYTES {
                    waiting = self
                        .wake_writer
                        .wait_timeout(waiting, LOG_WRITE_INTERVAL)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0;
                }
                std::mem::swap(&mut waiting.bytes, &mut taken);
                waiting.closing
            };
            self.room.notify_all();
            if !taken.is_empty() {
                // Nowhere to tell of a failed write to stderr.
                let _ = out.write_all(&taken).and_then(|()| out.flush());
                taken.clear();
            }
            if closing {
                return;
            }
        }
    }
}

/// The time at the head of each line, as tracing-subscriber's own timer writes it (RFC 3339,
/// UTC, to the microsecond: `2026-12-07T13:26:40.123456Z`). The date and the time to the
/// second are formatted once a second on each thread; a line adds only its microseconds.
struct LineTime;

impl FormatTime for LineTime {
    fn format_time(&self, w: &mut Writer<'_>) -> std::fmt::Result {
        write_time(SystemTime::now(), w)
    }
}

fn write_time(now: SystemTime, w: &mut Writer<'_>) -> std::fmt::Result {
    thread_local! {
        /// The second last written on this thread, and its date and time.
        static SECOND: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
    }
    // Before 1970, or past what a date holds: as tracing-subscriber writes it.
    let theirs = |w: &mut Writer<'_>| tracing_subscriber::fmt::time::SystemTime.format_time(w);
    let Ok(since) = now.duration_since(UNIX_EPOCH) else { return theirs(w) };
    SECOND.with_borrow_mut(|(second, head)| {
        if *second != since.as_secs() {
            let at =
                i64::try_from(since.as_secs()).ok().and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok());
            let Some(at) = at else { return theirs(w) };
            head.clear();
            write!(
                head,
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
                at.year(),
                u8::from(at.month()),
                at.day(),
                at.hour(),
                at.minute(),
                at.second()
            )?;
            *second = since.as_secs();
        }
        write!(w, "{head}.{:06}Z", since.subsec_micros())
    })
}

/// What the formatter writes each line through.
struct LineWriter<'a>(&'a Lines);

impl Write for LineWriter<'_> {
    fn write(&mut self, line: &[u8]) -> std::io::Result<usize> {
        self.0.append(line);
        Ok(line.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The lines, as the subscriber holds them.
struct Shared(Arc<Lines>);

impl<'a> MakeWriter<'a> for Shared {
    type Writer = LineWriter<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        LineWriter(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the writing thread wrote, shared with the test.
    #[derive(Clone, Default)]
    struct Written(Arc<Mutex<Vec<Vec<u8>>>>);

    impl Write for Written {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().push(buf.to_vec());
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn time_of(secs: u64, micros: u64) -> String {
        let mut text = String::new();
        let at = UNIX_EPOCH + std::time::Duration::from_micros(secs * 1_000_000 + micros);
        write_time(at, &mut Writer::new(&mut text)).unwrap();
        text
    }

    #[test]
    fn a_lines_time_is_rfc_3339_to_the_microsecond_and_changes_with_the_second() {
        assert_eq!(time_of(0, 0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(time_of(951_782_400, 7), "2000-02-29T00:00:00.000007Z");
        // The same second twice, then the next one: the second written once is not kept past it.
        assert_eq!(time_of(1_796_650_000, 123_456), "2026-12-07T13:26:40.123456Z");
        assert_eq!(time_of(1_796_650_000, 999_999), "2026-12-07T13:26:40.999999Z");
        assert_eq!(time_of(1_796_650_001, 0), "2026-12-07T13:26:41.000000Z");
        assert_eq!(time_of(4_102_444_799, 500_000), "2099-12-31T23:59:59.500000Z");
        // As long as tracing-subscriber's own, which the JSON lines' readers were written for.
        let mut theirs = String::new();
        tracing_subscriber::fmt::time::SystemTime.format_time(&mut Writer::new(&mut theirs)).unwrap();
        assert_eq!((theirs.len(), theirs.ends_with('Z')), (time_of(1_796_650_000, 0).len(), true), "{theirs}");
    }

    #[test]
    fn lines_are_written_in_order_in_few_writes_and_none_is_lost_when_the_buffer_fills() {
        let lines = Arc::new(Lines::default());
        let written = Written::default();
        let (writer_lines, out) = (lines.clone(), written.clone());
        let writer = std::thread::spawn(move || writer_lines.write_out(out));
        // More than the buffer holds, from two threads, so loggers wait for room.
        let line = |t: usize, i: usize| format!("thread {t} line {i:06} {}\n", "x".repeat(200));
        let count = 2 * LOG_BUFFER_BYTES / 200;
        let loggers: Vec<_> = (0..2)
            .map(|t| {
                let lines = lines.clone();
                std::thread::spawn(move || {
                    for i in 0..count {
                        LineWriter(&lines).write_all(line(t, i).as_bytes()).unwrap();
                    }
                })
            })
            .collect();
        for logger in loggers {
            logger.join().unwrap();
        }
        lines.close();
        writer.join().unwrap();
        let writes = written.0.lock().unwrap();
        let all = String::from_utf8(writes.concat()).unwrap();
        for t in 0..2 {
            let mine: Vec<&str> = all.lines().filter(|l| l.starts_with(&format!("thread {t} "))).collect();
            let expected: Vec<String> = (0..count).map(|i| line(t, i).trim_end().to_owned()).collect();
            assert_eq!(mine, expected, "thread {t}'s lines, each whole, in order, none lost");
        }
        assert!(writes.len() < 2 * count / 10, "{} writes for {} lines", writes.len(), 2 * count);
    }
}
