//! Logging to stderr through fern, as text or JSON lines, and a fairing that
//! writes one line and records the metrics of every request.

use std::sync::Arc;
use std::time::{Duration, Instant};

use log::kv::{self, VisitSource};
use rocket::config::LogLevel;
use rocket::fairing::{Fairing, Info, Kind};
use rocket::http::{Method, Status};
use rocket::{Data, Request, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::metrics::{Metrics, UNMATCHED_ROUTE};
use crate::routes::GATE_ROUTE_NAME;

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

/// Logs method, path, status and duration of every request, and counts it in
/// the metrics under its route's template.
pub struct RequestLogger;

/// When the request arrived and with which method, kept in the request's
/// local cache. The method is taken on arrival because Rocket answers a
/// HEAD request with its GET route and rewrites the method to GET before
/// response fairings run.
struct Arrival {
    at: Instant,
    method: Method,
}

#[rocket::async_trait]
impl Fairing for RequestLogger {
    fn info(&self) -> Info {
        Info {
            name: "request log and metrics",
            kind: Kind::Request | Kind::Response,
        }
    }

    async fn on_request(&self, request: &mut Request<'_>, _: &mut Data<'_>) {
        let method = request.method();
        request.local_cache(|| Arrival {
            at: Instant::now(),
            method,
        });
    }

    async fn on_response<'r>(&self, request: &'r Request<'_>, response: &mut Response<'r>) {
        let arrival = request.local_cache(|| Arrival {
            at: Instant::now(),
            method: request.method(),
        });
        let took = arrival.at.elapsed();
        let method = arrival.method.as_str();
        let route = route_label(request);
        let status = response.status().code;
        let path = request.uri().path();
        let duration_ms = took.as_secs_f64() * 1000.0;
        // The path only: a query string could carry anything a client typed.
        log::info!(
            method, route, path = path.as_str(), status, duration_ms;
            "{method} {path} {status} {duration_ms:.1}ms"
        );
        if let Some(metrics) = request.rocket().state::<Arc<Metrics>>() {
            metrics.observe_request(method, route, status, took);
        }
    }
}

/// Logs and counts a request Rocket could not parse (an unknown method, a
/// malformed URI or header). Rocket answers those with the 400 catcher
/// without running any fairing, so the catcher calls this instead; the
/// method it hands over is a placeholder, hence `unparsed`.
pub fn record_unparsed_request(request: &Request<'_>, status: Status) {
    let code = status.code;
    log::info!(
        method = "unparsed", route = UNMATCHED_ROUTE, status = code;
        "unparsable request {code}"
    );
    if let Some(metrics) = request.rocket().state::<Arc<Metrics>>() {
        metrics.observe_request("unparsed", UNMATCHED_ROUTE, code, Duration::ZERO);
    }
}

/// The template of the route that answered (`/service/<name>/scale`), or
/// [`UNMATCHED_ROUTE`] when none of the connector's routes did: the access
/// gate refused the request, or nothing matched and a catcher answered (the
/// gate is then the last route Rocket tried).
fn route_label<'r>(request: &'r Request<'_>) -> &'r str {
    match request.route() {
        Some(route) if route.name.as_deref() != Some(GATE_ROUTE_NAME) => route.uri.path(),
        _ => UNMATCHED_ROUTE,
    }
}
