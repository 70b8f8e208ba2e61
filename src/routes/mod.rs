//! The HTTP surface: one module per resource (`events` has the event
//! stream and the history), the JSON catchers, reading request bodies, the
//! headers of compare-and-set (`conditional`), the limits on a request's
//! head, the access gate, the docker time a request's calls share
//! (`docker_budget`), the request log and the audit trail.

mod audit;
mod body;
mod conditional;
mod docker_budget;
mod events;
mod gate;
mod limits;
mod meta;
mod request_log;
mod scale;
mod service;

use std::time::Duration;

use rocket::http::{Header, Method, Status};
use rocket::{Catcher, Request, Route};

use crate::domain::ServiceName;
use crate::error::{Error, ErrorReply};

pub(crate) use audit::AuditTrail;
use body::read_json;
pub use gate::GATE_ROUTE_NAME;
pub(crate) use request_log::RequestLogger;

/// Every route the connector serves, behind the access gate, which checks
/// the limits on a request's head first. The docker calls of one request
/// share `docker_timeout` (see `docker::deadline`).
pub(crate) fn routes(docker_timeout: Duration) -> Vec<Route> {
    let mut served = service::routes();
    served.extend(scale::routes());
    served.extend(events::routes());
    served.extend(meta::routes());
    let mut all = limits::checked_first(gate::routes());
    all.extend(docker_budget::shared_by_each_request(
        served,
        docker_timeout,
    ));
    all
}

/// Answers for requests no route took, as JSON rather than Rocket's HTML.
pub(crate) fn catchers() -> Vec<Catcher> {
    rocket::catchers![not_found, default_catcher]
}

/// A service named in a URL; a name that could never be valid is simply not
/// found.
pub(crate) fn known_name(name: &str) -> Result<ServiceName, Error> {
    ServiceName::parse(name).map_err(|_| Error::ServiceNotFound(name.to_owned()))
}

/// A 404 for a path no route knows, or a 405 listing the allowed methods when
/// the path is known but the method is not.
#[rocket::catch(404)]
fn not_found(request: &Request<'_>) -> ErrorReply {
    let allowed = allowed_methods(request);
    if allowed.is_empty() {
        return ErrorReply::new(
            Status::NotFound,
            format!("no such resource: {}", request.uri().path()),
        );
    }
    let list = allowed
        .iter()
        .map(|m| m.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    let message = format!(
        "method {} is not allowed on {}; use {list}",
        request.method(),
        request.uri().path()
    );
    ErrorReply::new(Status::MethodNotAllowed, message).with_header(Header::new("Allow", list))
}

#[rocket::catch(default)]
fn default_catcher(status: Status, request: &Request<'_>) -> ErrorReply {
    let reason = status.reason().unwrap_or("error");
    if status == Status::BadRequest {
        // The connector's own 400s never reach a catcher: this one is Rocket
        // refusing a request it could not parse, and the request it hands
        // over is a placeholder whose method and path mean nothing. No
        // fairing sees such a request, so it is logged and counted here.
        request_log::record_unparsed_request(request, status);
        return ErrorReply::new(
            status,
            format!("{reason}: the request could not be parsed (unknown method, or a malformed URI or header)"),
        );
    }
    ErrorReply::new(
        status,
        format!("{reason}: {} {}", request.method(), request.uri().path()),
    )
}

/// The methods of the mounted routes whose path pattern matches the request's
/// path, in route order.
fn allowed_methods(request: &Request<'_>) -> Vec<Method> {
    let path: Vec<&str> = request.uri().path().segments().collect();
    let mut methods: Vec<Method> = Vec::new();
    let real_routes = request
        .rocket()
        .routes()
        .filter(|route| route.name.as_deref() != Some(gate::GATE_ROUTE_NAME));
    for route in real_routes {
        let pattern: Vec<&str> = route
            .uri
            .path()
            .trim_matches('/')
            .split('/')
            .filter(|s| !s.is_empty())
            .collect();
        let matches = pattern.len() == path.len()
            && pattern
                .iter()
                .zip(&path)
                .all(|(want, got)| want.starts_with('<') || want == got);
        if matches && !methods.contains(&route.method) {
            methods.push(route.method);
        }
    }
    methods
}
