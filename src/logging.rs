//! Logging to stderr through fern: the global logger, and a fairing that
//! writes one line per request.

use std::time::Instant;

use rocket::config::LogLevel;
use rocket::fairing::{Fairing, Info, Kind};
use rocket::{Data, Request, Response};

/// Installs the global logger at the verbosity of Rocket's `log_level`.
/// Rocket's own lines are left out unless `log_level` is `debug`, so that a
/// request costs one line; its launch failures reach `main` as errors anyway.
///
/// # Errors
/// If a global logger is already installed.
pub fn init(level: LogLevel) -> Result<(), log::SetLoggerError> {
    let (ours, rockets) = match level {
        LogLevel::Off => (log::LevelFilter::Off, log::LevelFilter::Off),
        LogLevel::Critical => (log::LevelFilter::Warn, log::LevelFilter::Off),
        LogLevel::Normal => (log::LevelFilter::Info, log::LevelFilter::Off),
        LogLevel::Debug => (log::LevelFilter::Debug, log::LevelFilter::Info),
    };
    fern::Dispatch::new()
        .format(|out, message, record| {
            out.finish(format_args!(
                "{} {:<5} {}",
                humantime::format_rfc3339_millis(std::time::SystemTime::now()),
                record.level(),
                message
            ))
        })
        .level(ours)
        .level_for("rocket", rockets)
        .level_for("_", rockets)
        .level_for("hyper", log::LevelFilter::Warn)
        .chain(std::io::stderr())
        .apply()
}

/// Logs method, path, status and duration of every request.
pub struct RequestLogger;

/// When the request arrived, kept in the request's local cache.
struct Arrival(Instant);

#[rocket::async_trait]
impl Fairing for RequestLogger {
    fn info(&self) -> Info {
        Info {
            name: "request log",
            kind: Kind::Request | Kind::Response,
        }
    }

    async fn on_request(&self, request: &mut Request<'_>, _: &mut Data<'_>) {
        request.local_cache(|| Arrival(Instant::now()));
    }

    async fn on_response<'r>(&self, request: &'r Request<'_>, response: &mut Response<'r>) {
        let started = request.local_cache(|| Arrival(Instant::now())).0;
        log::info!(
            "{} {} {} {:.1}ms",
            request.method(),
            request.uri().path(),
            response.status().code,
            started.elapsed().as_secs_f64() * 1000.0
        );
    }
}
