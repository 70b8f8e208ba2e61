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
    /// No service has that name.
    ServiceNotFound(String),
    /// A service with that name already exists.
    ServiceExists(String),
    /// A rollback of a service that has no earlier definition to go back to.
    NothingToRollBack(String),
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
    /// The definitions file could not be written; nothing was changed.
    Storage(String),
    /// The access check refused the request: `auth_token` is set and the
    /// request does not carry it (401), or it comes from a web page (403).
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

    /// The status code each kind of failure is answered with.
    pub fn status(&self) -> Status {
        match self {
            Error::Invalid { .. } | Error::MalformedBody(_) => Status::BadRequest,
            Error::BodyTooLarge { .. } => Status::PayloadTooLarge,
            Error::ServiceNotFound(_) => Status::NotFound,
            Error::ServiceExists(_)
            | Error::NothingToRollBack(_)
            | Error::ForeignSwarmService { .. } => Status::Conflict,
            Error::DockerUnavailable(_) => Status::ServiceUnavailable,
            Error::DockerTimeout { .. } | Error::NotConverged { .. } | Error::SwarmBusy { .. } => {
                Status::GatewayTimeout
            }
            Error::DockerFailed(_) => Status::BadGateway,
            Error::Storage(_) => Status::InternalServerError,
            Error::AccessDenied(AuthFailure::Browser(_)) => Status::Forbidden,
            Error::AccessDenied(_) => Status::Unauthorized,
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
            Error::ServiceNotFound(name) => write!(f, "service '{name}' does not exist"),
            Error::ServiceExists(name) => write!(f, "service '{name}' already exists"),
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
            Error::Storage(reason) => write!(f, "could not save the definitions: {reason}"),
            Error::AccessDenied(AuthFailure::Missing) => write!(
                f,
                "authentication required: send the header 'Authorization: Bearer <auth_token>'"
            ),
            Error::AccessDenied(AuthFailure::WrongToken) => {
                write!(
                    f,
                    "authentication failed: the bearer token is not auth_token"
                )
            }
            Error::AccessDenied(AuthFailure::Browser(reason)) => write!(f, "forbidden: {reason}"),
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
}

impl ErrorReply {
    pub fn new(status: Status, message: impl Into<String>) -> Self {
        ErrorReply {
            status,
            message: message.into(),
            header: None,
        }
    }

    pub fn with_header(mut self, header: Header<'static>) -> Self {
        self.header = Some(header);
        self
    }
}

impl<'r> Responder<'r, 'static> for ErrorReply {
    fn respond_to(self, _: &'r Request<'_>) -> response::Result<'static> {
        let body = json!({ "error": self.message }).to_string();
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
            // RFC 6750: the scheme to use, and whether the token was wrong.
            Error::AccessDenied(AuthFailure::Missing) => reply.with_header(Header::new(
                "WWW-Authenticate",
                r#"Bearer realm="docker-connector""#,
            )),
            Error::AccessDenied(AuthFailure::WrongToken) => reply.with_header(Header::new(
                "WWW-Authenticate",
                r#"Bearer realm="docker-connector", error="invalid_token""#,
            )),
            _ => reply,
        };
        reply.respond_to(request)
    }
}
