//! The log line and the metrics of every request: a fairing for the
//! requests Rocket routes, and a call for the catcher of those it cannot
//! parse.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rocket::fairing::{Fairing, Info, Kind};
use rocket::http::{Method, Status};
use rocket::{Data, Request, Response};

use super::gate::GATE_ROUTE_NAME;
use crate::metrics::{Metrics, UNMATCHED_ROUTE};

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
