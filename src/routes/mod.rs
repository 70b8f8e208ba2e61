//! The HTTP surface: one module per resource, the JSON catchers, and reading
//! request bodies.

mod scale;
mod service;

use rocket::data::{Data, ToByteUnit};
use rocket::http::{Header, Method, Status};
use rocket::{Catcher, Request, Route};
use serde_json::Value;

use crate::domain::ServiceName;
use crate::error::{Error, ErrorReply};

/// Largest request body accepted; larger ones answer 413.
pub const BODY_LIMIT: u64 = 64 * 1024;

/// Every route the connector serves.
pub fn routes() -> Vec<Route> {
    let mut all = service::routes();
    all.extend(scale::routes());
    all
}

/// Answers for requests no route took, as JSON rather than Rocket's HTML.
pub fn catchers() -> Vec<Catcher> {
    rocket::catchers![not_found, default_catcher]
}

/// Reads a JSON request body of at most [`BODY_LIMIT`] bytes. The content type
/// is not checked: curl and scripts often omit it.
///
/// # Errors
/// [`Error::BodyTooLarge`], or [`Error::MalformedBody`] for an empty body or
/// one that is not JSON.
pub async fn read_json(data: Data<'_>) -> Result<Value, Error> {
    let body = data
        .open(BODY_LIMIT.bytes())
        .into_bytes()
        .await
        .map_err(|e| Error::MalformedBody(format!("could not be read: {e}")))?;
    if !body.is_complete() {
        return Err(Error::BodyTooLarge { limit: BODY_LIMIT });
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(Error::MalformedBody(
            "is empty; a JSON object is expected".into(),
        ));
    }
    serde_json::from_slice(&body)
        .map_err(|e| Error::MalformedBody(format!("is not valid JSON: {e}")))
}

/// A service named in a URL; a name that could never be valid is simply not
/// found.
pub fn known_name(name: &str) -> Result<ServiceName, Error> {
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
    for route in request.rocket().routes() {
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
