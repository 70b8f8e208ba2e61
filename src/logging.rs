//! Logging to stderr through fern, as text or JSON lines. (The line each
//! request gets is written by `routes::request_log`.)

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
    fern::Dispatch::new()
        .format(move |out, message, record| {
            let time = humantime::format_rfc3339_millis(std::time::SystemTime::now());
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
        .chain(std::io::stderr())
        .apply()
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
