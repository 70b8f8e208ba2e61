//! The one error type of the connector and its single mapping to an HTTP answer.

use std::io::Cursor;

use rocket::http::{ContentType, Header, Status};
use rocket::request::Request;
use rocket::response::{self, Responder, Response};
use serde_json::json;

use crate::auth::AuthFailure;

/// Everything a request can fail with. The HTTP status of each variant is
/// decided in [`Error::status`] and nowhere else. Clone, so that one docker
/// failure can answer every request that waited on the same docker call.
#[derive(Debug, Clone)]
pub enum Error {
    /// The request names a field that is missing, of the wrong type or invalid.
    Invalid { field: String, reason: String },
    /// The body is not JSON, or not the JSON object that was expected.
    MalformedBody(String),
    /// The body is larger than the connector accepts.
    BodyTooLarge { limit: u64 },
    /// A body that does not say it is JSON (its `Content-Type`, if any):
    /// refused before it is read.
    UnsupportedMediaType(Option<String>),
    /// No service has that name.
    ServiceNotFound(String),
    /// A service with that name already exists.
    ServiceExists(String),
    /// A scale, or a definition, whose count is outside what the service
    /// allows: below 0, above `max_replicas`, or outside its `scaling`
    /// bounds. Well formed, but at odds with the service as it stands.
    OutOfBounds { field: String, reason: String },
    /// An `If-Match` that the service's revision no longer meets (`None`:
    /// the service does not exist); nothing was changed.
    PreconditionFailed {
        service: String,
        revision: Option<u64>,
    },
    /// A rollback of a service that has no earlier definition to go back to.
    NothingToRollBack(String),
    /// Containers of the service still run an earlier definition, which
    /// must stay known until they are replaced.
    EarlierDefinitionRuns { service: String, containers: usize },
    /// A Swarm service has the name the connector would give a service's,
    /// without its labels: someone else's, never touched.
    ForeignSwarmService { swarm_name: String, service: String },
    /// The docker CLI cannot be run or cannot reach the engine.
    DockerUnavailable(String),
    /// The docker CLI did not finish within its deadline and was killed.
    DockerTimeout { seconds: u64 },
    /// The docker CLI ran and reported a failure.
    DockerFailed(String),
    /// Swarm kept rolling an update of the service until the deadline, so a
    /// scale did not set its count.
    SwarmBusy { seconds: u64 },
    /// Swarm did not run the asked number of tasks by the deadline; it
    /// keeps trying.
    NotConverged {
        running: usize,
        desired: u32,
        seconds: u64,
        /// The newest error a task of the service reported, if any.
        last_task_error: Option<String>,
    },
    /// A scale with `wait=healthy` reached its deadline before as many
    /// containers were healthy as it asked for; they keep running, and
    /// the connector keeps working towards the count.
    NotHealthy {
        healthy: usize,
        running: usize,
        desired: u32,
        seconds: u64,
    },
    /// The definitions file could not be written; nothing was changed.
    Storage(String),
    /// The access check refused the request: tokens are set and the request
    /// carries none of them (401), its address failed too often (429), its
    /// token lacks the scope or the service, or it comes from a web page (403).
    AccessDenied(AuthFailure),
}

impl Error {
    /// A validation error for `field`.
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Invalid {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// A count outside what the service allows, named by `field`.
    pub fn out_of_bounds(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::OutOfBounds {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// The status code each kind of failure is answered with.
    /// Docker could not be reached or did not answer: a fault of the engine
    /// (or of the way to it), not of what was asked. It says nothing about
    /// a service's definition, so it neither fails a roll nor earns a
    /// service a longer backoff.
    pub fn is_engine_fault(&self) -> bool {
        matches!(
            self,
            Error::DockerTimeout { .. } | Error::DockerUnavailable(_)
        )
    }

    pub fn status(&self) -> Status {
        match self {
            Error::Invalid { .. } | Error::MalformedBody(_) => Status::BadRequest,
            Error::BodyTooLarge { .. } => Status::PayloadTooLarge,
            Error::UnsupportedMediaType(_) => Status::UnsupportedMediaType,
            Error::ServiceNotFound(_) => Status::NotFound,
            Error::ServiceExists(_)
            | Error::OutOfBounds { .. }
            | Error::NothingToRollBack(_)
            | Error::EarlierDefinitionRuns { .. }
            | Error::ForeignSwarmService { .. } => Status::Conflict,
            Error::PreconditionFailed { .. } => Status::PreconditionFailed,
            Error::DockerUnavailable(_) => Status::ServiceUnavailable,
            Error::DockerTimeout { .. }
            | Error::NotConverged { .. }
            | Error::SwarmBusy { .. }
            | Error::NotHealthy { .. } => Status::GatewayTimeout,
            Error::DockerFailed(_) => Status::BadGateway,
            Error::Storage(_) => Status::InternalServerError,
            Error::AccessDenied(AuthFailure::Missing | AuthFailure::WrongToken) => {
                Status::Unauthorized
            }
            Error::AccessDenied(AuthFailure::Throttled(_)) => Status::TooManyRequests,
            Error::AccessDenied(AuthFailure::NoHost) => Status::BadRequest,
            Error::AccessDenied(
                AuthFailure::Browser(_)
                | AuthFailure::MissingScope { .. }
                | AuthFailure::ServiceNotAllowed(_)
                | AuthFailure::CoversEveryService(_),
            ) => Status::Forbidden,
        }
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Invalid { field, reason } => write!(f, "{field}: {reason}"),
            Error::MalformedBody(reason) => write!(f, "request body: {reason}"),
            Error::BodyTooLarge { limit } => {
                write!(f, "request body: larger than the limit of {limit} bytes")
            }
            Error::UnsupportedMediaType(given) => {
                write!(
                    f,
                    "Content-Type: a request body must be sent as application/json, "
                )?;
                match given {
                    Some(given) => write!(f, "not {given:?}"),
                    None => write!(f, "and this one does not say what it is"),
                }
            }
            Error::ServiceNotFound(name) => write!(f, "service '{name}' does not exist"),
            Error::ServiceExists(name) => write!(f, "service '{name}' already exists"),
            Error::OutOfBounds { field, reason } => {
                write!(f, "{field}: {reason}; nothing was changed")
            }
            Error::PreconditionFailed {
                service,
                revision: Some(revision),
            } => write!(
                f,
                "If-Match: service '{service}' is at revision \"{revision}\" (its ETag) now, \
                 which the header does not name; nothing was changed: read it again and retry"
            ),
            Error::PreconditionFailed {
                service,
                revision: None,
            } => write!(
                f,
                "If-Match: service '{service}' does not exist, so no entity tag matches; \
                 nothing was changed"
            ),
            Error::EarlierDefinitionRuns {
                service,
                containers,
            } => write!(
                f,
                "{containers} container(s) of service '{service}' still run an earlier \
                 definition, which is kept to replace them if they die while the rollout \
                 goes on; forget the earlier definitions once GET \
                 /service/{service}/status says rollout.state complete"
            ),
            Error::NothingToRollBack(name) => write!(
                f,
                "service '{name}' has no earlier definition to roll back to: it was never \
                 replaced by a PUT that changed what it runs"
            ),
            Error::ForeignSwarmService {
                swarm_name,
                service,
            } => write!(
                f,
                "a Swarm service named '{swarm_name}' exists without this connector's labels \
                 for '{service}'; it is left alone: remove or rename it"
            ),
            Error::DockerUnavailable(reason) => write!(f, "docker is unavailable: {reason}"),
            Error::DockerTimeout { seconds } => {
                write!(
                    f,
                    "docker did not answer within {seconds} s; the command was killed"
                )
            }
            Error::DockerFailed(reason) => write!(f, "docker failed: {reason}"),
            Error::SwarmBusy { seconds } => write!(
                f,
                "Swarm was still rolling an update of the service after {seconds} s, and a \
                 count set meanwhile would cancel its rollback; the count was not changed: \
                 scale again once the update is done"
            ),
            Error::NotConverged {
                running,
                desired,
                seconds,
                last_task_error,
            } => {
                write!(
                    f,
                    "Swarm runs {running} of {desired} tasks after {seconds} s; \
                     the service keeps {desired} replicas and Swarm keeps trying"
                )?;
                match last_task_error {
                    Some(why) => write!(f, " (last task error: {why})"),
                    None => Ok(()),
                }
            }
            Error::NotHealthy {
                healthy,
                running,
                desired,
                seconds,
            } => write!(
                f,
                "{healthy} of {desired} containers are healthy after {seconds} s ({running} \
                 running); the scale stands and the containers keep running"
            ),
            Error::Storage(reason) => write!(f, "could not save the definitions: {reason}"),
            Error::AccessDenied(AuthFailure::Missing) => write!(
                f,
                "authentication required: send the header 'Authorization: Bearer <token>', \
                 or the token as the password of HTTP Basic auth"
            ),
            Error::AccessDenied(AuthFailure::WrongToken) => {
                write!(
                    f,
                    "authentication failed: the token is not one this connector accepts"
                )
            }
            Error::AccessDenied(AuthFailure::Throttled(wait)) => write!(
                f,
                "too many failed authentication attempts from this address: try again in {} s",
                wait.as_secs().max(1)
            ),
            Error::AccessDenied(AuthFailure::MissingScope { scope, request }) => write!(
                f,
                "forbidden: {request} needs the scope '{}', which this token does not have",
                scope.as_str()
            ),
            Error::AccessDenied(AuthFailure::ServiceNotAllowed(service)) => {
                write!(f, "forbidden: this token may not touch service '{service}'")
            }
            Error::AccessDenied(AuthFailure::CoversEveryService(what)) => write!(
                f,
                "forbidden: {what} covers every service, and this token may touch only some"
            ),
            Error::AccessDenied(AuthFailure::Browser(reason)) => write!(f, "forbidden: {reason}"),
            Error::AccessDenied(AuthFailure::NoHost) => write!(
                f,
                "Host: the request has no Host header, which HTTP/1.1 requires"
            ),
        }
    }
}

impl std::error::Error for Error {}

/// The JSON error answer every failure of the connector uses:
/// `{"error": message}` with a status and, where useful, one extra header.
pub struct ErrorReply {
    pub status: Status,
    pub message: String,
    pub header: Option<Header<'static>>,
    /// Fields beside `error`, for a client that acts on them (the counts
    /// of a health wait that timed out).
    pub fields: serde_json::Map<String, serde_json::Value>,
}

impl ErrorReply {
    pub fn new(status: Status, message: impl Into<String>) -> Self {
        ErrorReply {
            status,
            message: message.into(),
            header: None,
            fields: serde_json::Map::new(),
        }
    }

    pub fn with_header(mut self, header: Header<'static>) -> Self {
        self.header = Some(header);
        self
    }
}

impl<'r> Responder<'r, 'static> for ErrorReply {
    fn respond_to(self, _: &'r Request<'_>) -> response::Result<'static> {
        let mut fields = self.fields;
        fields.insert("error".to_owned(), self.message.into());
        let body = serde_json::Value::Object(fields).to_string();
        let mut response = Response::build()
            .status(self.status)
            .header(ContentType::JSON)
            .sized_body(body.len(), Cursor::new(body))
            .finalize();
        if let Some(header) = self.header {
            response.set_header(header);
        }
        Ok(response)
    }
}

impl<'r> Responder<'r, 'static> for Error {
    fn respond_to(self, request: &'r Request<'_>) -> response::Result<'static> {
        let status = self.status();
        let message = self.to_string();
        if status.code >= 500 {
            log::error!("{} {}: {message}", request.method(), request.uri().path());
        }
        let reply = ErrorReply::new(status, message);
        let reply = match &self {
            Error::ServiceExists(name) => {
                reply.with_header(Header::new("Location", format!("/service/{name}")))
            }
            Error::PreconditionFailed {
                revision: Some(revision),
                ..
            } => reply.with_header(Header::new("ETag", crate::domain::entity_tag(*revision))),
            // RFC 6750 and 7617: the schemes to use, and whether the token
            // was wrong.
            Error::AccessDenied(AuthFailure::Missing) => reply.with_header(Header::new(
                "WWW-Authenticate",
                r#"Bearer realm="docker-connector", Basic realm="docker-connector""#,
            )),
            Error::AccessDenied(AuthFailure::WrongToken) => reply.with_header(Header::new(
                "WWW-Authenticate",
                r#"Bearer realm="docker-connector", error="invalid_token", Basic realm="docker-connector""#,
            )),
            Error::AccessDenied(AuthFailure::Throttled(wait)) => reply.with_header(Header::new(
                "Retry-After",
                wait.as_secs().max(1).to_string(),
            )),
            Error::NotHealthy {
                healthy,
                running,
                desired,
                ..
            } => ErrorReply {
                fields: json!({
                    "healthy_resources": healthy,
                    "running_resources": running,
                    "desired_resources": desired,
                })
                .as_object()
                .cloned()
                .unwrap_or_default(),
                ..reply
            },
            _ => reply,
        };
        reply.respond_to(request)
    }
}
