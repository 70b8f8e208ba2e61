//! Logging to stderr through fern, as text or JSON lines, written off the
//! request path. (The line each request gets is made by
//! `routes::request_log`.)
//!
//! A line is formatted where it is logged, then handed to one writer
//! thread through a bounded queue, and the writer writes what has queued up
//! in one go. A request never waits on stderr: when a pipe to journald is
//! slow or full, the writer falls behind, the queue fills, and further lines
//! are dropped and counted rather than block; the writer then says how
//! many it lost, and `/metrics` counts them
//! (`docker_connector_log_lines_dropped_total`). A clean stop flushes what
//! is queued (see [`flush`]); a SIGKILL loses it, as it would lose a
//! buffered stderr.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use log::kv::{self, VisitSource};
use rocket::config::LogLevel;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// How each log line is written (the `log_format` key).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// `<time> <LEVEL> <message>`, for people and journald.
    #[default]
    Text,
    /// One JSON object per line: `time`, `level`, `target`, `message`, and
    /// for requests `method`, `route`, `path`, `status`, `duration_ms`; for
    /// log collectors that should not parse text.
    Json,
}

/// Installs the global logger at the verbosity of Rocket's `log_level`.
/// Rocket's own lines are left out unless `log_level` is `debug`, so that a
/// request costs one line; its launch failures reach `main` as errors anyway.
///
/// # Errors
/// If a global logger is already installed.
pub fn init(level: LogLevel, format: LogFormat) -> Result<(), log::SetLoggerError> {
    let (ours, rockets) = match level {
        LogLevel::Off => (log::LevelFilter::Off, log::LevelFilter::Off),
        LogLevel::Critical => (log::LevelFilter::Warn, log::LevelFilter::Off),
        LogLevel::Normal => (log::LevelFilter::Info, log::LevelFilter::Off),
        LogLevel::Debug => (log::LevelFilter::Debug, log::LevelFilter::Info),
    };
    let queue = start_writer(format, std::io::stderr(), QUEUE_LINES);
    let _ = QUEUE.set(queue.0.clone());
    fern::Dispatch::new()
        .format(move |out, message, record| {
            let time = humantime::format_rfc3339_millis(SystemTime::now());
            match format {
                LogFormat::Text => {
                    out.finish(format_args!("{time} {:<5} {message}", record.level()))
                }
                LogFormat::Json => out.finish(format_args!(
                    "{}",
                    json_line(&time.to_string(), record, &message.to_string())
                )),
            }
        })
        .level(ours)
        .level_for("rocket", rockets)
        .level_for("_", rockets)
        // Rocket's request lines print the URI with its query string, which
        // may carry anything a client typed; ours print the path only. This
        // also silences Rocket's other per-request notes at debug (matched
        // routes, a handler's panic message); its launch lines stay.
        .level_for("rocket::server", log::LevelFilter::Off)
        .level_for("hyper", log::LevelFilter::Warn)
        .chain(Box::new(queue) as Box<dyn log::Log>)
        .apply()
}

/// How many lines may wait for the writer: at 100 bytes a line, under a
/// megabyte, and at the benchmark's 30,000 requests a second, a quarter of
/// a second of them.
const QUEUE_LINES: usize = 8192;

/// How long the writer lets lines gather after the first one of a batch:
/// a request that finds lines waiting adds its own without waking anyone,
/// so the writer is woken at most about this often, not once per line.
const GATHER: Duration = Duration::from_millis(5);

/// How long a flush waits for the writer: a stderr that takes longer is
/// not worth holding a stop for.
const FLUSH_WAIT: Duration = Duration::from_secs(2);

/// The installed queue, for [`dropped_lines`].
static QUEUE: OnceLock<Arc<Queue>> = OnceLock::new();

/// Log lines dropped so far because the writer had fallen behind.
pub fn dropped_lines() -> u64 {
    QUEUE
        .get()
        .map_or(0, |queue| queue.dropped.load(Ordering::Relaxed))
}

/// Waits (at most 2 s) until every line logged before the call is written.
/// `main` calls it on the way out; `log::logger().flush()` does the same.
pub fn flush() {
    log::logger().flush();
}

/// The lines between the loggers and the writer thread.
struct Queue {
    pending: Mutex<Pending>,
    /// Wakes the writer: lines came into an empty queue, or a flush asks.
    lines_came: Condvar,
    /// Wakes flushes: a batch was written.
    written: Condvar,
    capacity: usize,
    /// Lines dropped because the queue was full.
    dropped: AtomicU64,
}

#[derive(Default)]
struct Pending {
    lines: Vec<String>,
    /// Batches taken by the writer so far, and of those, written so far:
    /// a flush waits until what was pending when it asked is written.
    taken: u64,
    done: u64,
    /// A flush is waiting: the writer takes the lines without gathering.
    flushing: bool,
}

impl Queue {
    fn pending(&self) -> std::sync::MutexGuard<'_, Pending> {
        // A panic while holding the lock leaves plain data behind.
        self.pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The logging end of the queue: the last output of the fern chain.
struct LineQueue(Arc<Queue>);

impl log::Log for LineQueue {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }

    /// fern hands over the line it formatted as the record's message.
    fn log(&self, record: &log::Record<'_>) {
        let line = record.args().to_string();
        let queue = &self.0;
        let mut pending = queue.pending();
        if pending.lines.len() >= queue.capacity {
            drop(pending);
            queue.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        pending.lines.push(line);
        if pending.lines.len() == 1 {
            drop(pending);
            queue.lines_came.notify_one();
        }
    }

    fn flush(&self) {
        let queue = &self.0;
        let mut pending = queue.pending();
        // Whatever is pending now is written by the batch after the ones
        // taken so far.
        let until = pending.taken + u64::from(!pending.lines.is_empty());
        pending.flushing = true;
        queue.lines_came.notify_one();
        let deadline = Instant::now() + FLUSH_WAIT;
        while pending.done < until {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                return;
            };
            pending = queue
                .written
                .wait_timeout(pending, left)
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .0;
        }
    }
}

/// Starts the thread that writes queued lines to `out`, and returns the
/// queue's logging end, which holds `capacity` lines.
fn start_writer(format: LogFormat, out: impl Write + Send + 'static, capacity: usize) -> LineQueue {
    let queue = Arc::new(Queue {
        pending: Mutex::new(Pending::default()),
        lines_came: Condvar::new(),
        written: Condvar::new(),
        capacity,
        dropped: AtomicU64::new(0),
    });
    let writer = queue.clone();
    std::thread::Builder::new()
        .name("log writer".into())
        .spawn(move || write_queued(&writer, format, out))
        .expect("a thread can be started at launch");
    LineQueue(queue)
}

/// The writer's loop: waits for a line, lets more gather for [`GATHER`]
/// (not when a flush waits), takes them all, and writes them at once,
/// after a line saying how many were dropped since the last write, if any
/// were.
fn write_queued(queue: &Queue, format: LogFormat, mut out: impl Write) {
    let mut batch = String::new();
    let mut taken = Vec::new();
    let mut reported = 0;
    loop {
        {
            let mut pending = queue.pending();
            while pending.lines.is_empty() && !pending.flushing {
                pending = queue
                    .lines_came
                    .wait(pending)
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
            }
            if !pending.flushing {
                drop(pending);
                std::thread::sleep(GATHER);
                pending = queue.pending();
            }
            pending.flushing = false;
            std::mem::swap(&mut taken, &mut pending.lines);
            pending.taken += 1;
        }
        for line in taken.drain(..) {
            batch.push_str(&line);
            batch.push('\n');
        }
        let dropped = queue.dropped.load(Ordering::Relaxed);
        if dropped > reported {
            batch.push_str(&dropped_notice(format, dropped - reported));
            batch.push('\n');
            reported = dropped;
        }
        // Nowhere to say that stderr failed; the next batch tries again.
        let _ = out.write_all(batch.as_bytes()).and_then(|()| out.flush());
        batch.clear();
        queue.pending().done += 1;
        queue.written.notify_all();
    }
}

/// The line that says `count` lines were dropped, in the log's format.
fn dropped_notice(format: LogFormat, count: u64) -> String {
    let time = humantime::format_rfc3339_millis(SystemTime::now()).to_string();
    let message = format!("{count} log line(s) dropped: the log writer fell behind");
    match format {
        LogFormat::Text => format!("{time} WARN  {message}"),
        LogFormat::Json => serde_json::json!({
            "time": time,
            "level": "WARN",
            "target": module_path!(),
            "message": message,
            "dropped_lines": count,
        })
        .to_string(),
    }
}

/// One log record as a JSON object: serde escapes whatever the message holds,
/// so a line can never be split or forged by what a client sent.
fn json_line(time: &str, record: &log::Record<'_>, message: &str) -> Value {
    let mut line = Map::new();
    line.insert("time".into(), time.into());
    line.insert("level".into(), record.level().as_str().into());
    line.insert("target".into(), record.target().into());
    line.insert("message".into(), message.into());
    let mut fields = JsonFields(&mut line);
    // Visiting a map in memory cannot fail.
    let _ = record.key_values().visit(&mut fields);
    Value::Object(line)
}

/// Copies a record's key-values into a JSON object, numbers as numbers.
struct JsonFields<'a>(&'a mut Map<String, Value>);

impl<'kvs> VisitSource<'kvs> for JsonFields<'_> {
    fn visit_pair(&mut self, key: kv::Key<'kvs>, value: kv::Value<'kvs>) -> Result<(), kv::Error> {
        let json = if let Some(n) = value.to_u64() {
            Value::from(n)
        } else if let Some(n) = value.to_i64() {
            Value::from(n)
        } else if let Some(n) = value.to_f64() {
            Value::from(n)
        } else if let Some(b) = value.to_bool() {
            Value::from(b)
        } else {
            Value::from(value.to_string())
        };
        self.0.insert(key.as_str().to_owned(), json);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use log::Log;
    use std::sync::{Arc, Mutex};

    /// A writer the test can read, and hold up.
    #[derive(Clone, Default)]
    struct Shared {
        written: Arc<Mutex<Vec<u8>>>,
        /// While held by the test, every write waits.
        gate: Arc<Mutex<()>>,
    }

    impl Write for Shared {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            let _open = self.gate.lock().unwrap();
            self.written.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Shared {
        fn text(&self) -> String {
            String::from_utf8(self.written.lock().unwrap().clone()).unwrap()
        }
    }

    fn log_line(queue: &LineQueue, i: usize) {
        queue.log(
            &log::Record::builder()
                .args(format_args!("line {i}"))
                .build(),
        );
    }

    #[test]
    fn lines_are_written_in_order_and_a_flush_waits_for_every_one() {
        let out = Shared::default();
        let queue = start_writer(LogFormat::Text, out.clone(), 4096);
        for i in 0..2000 {
            log_line(&queue, i);
        }
        queue.flush();
        let expected: String = (0..2000).map(|i| format!("line {i}\n")).collect();
        assert_eq!(out.text(), expected);
    }

    #[test]
    fn a_full_queue_drops_and_counts_lines_rather_than_wait_and_says_so() {
        let out = Shared::default();
        let queue = start_writer(LogFormat::Json, out.clone(), 4);
        let held = out.gate.lock().unwrap();
        let started = std::time::Instant::now();
        for i in 0..100 {
            log_line(&queue, i);
        }
        // The writer waits on its first batch, the queue holds four lines.
        assert!(started.elapsed() < Duration::from_secs(1), "never waits");
        let dropped = queue.0.dropped.load(Ordering::Relaxed);
        assert!(dropped > 0, "none dropped");
        drop(held);
        queue.flush();
        let text = out.text();
        let notice: serde_json::Value = text
            .lines()
            .find(|line| line.contains("dropped"))
            .map(|line| serde_json::from_str(line).unwrap())
            .unwrap_or_else(|| panic!("no notice in {text}"));
        assert_eq!(notice["level"], "WARN");
        assert_eq!(notice["dropped_lines"], dropped);
        let written = text.lines().filter(|l| l.starts_with("line ")).count() as u64;
        assert_eq!(written + dropped, 100, "every line written or counted");
        assert!(text.starts_with("line 0\n"), "{text}");
    }
}
