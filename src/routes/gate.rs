//! The access check in front of every route: a request without a Host is
//! answered 400, one without a token (when tokens are set) 401, one whose
//! token lacks the scope or the service its path names 403, one from a web
//! page 403, and an admitted one whose body is not labelled JSON 415,
//! before any route, body read or catcher sees it, so no endpoint (present
//! or future) can forget to check. What it decided stays in the request's local cache:
//! routes whose service is not in the path (a create's body, the list, the
//! event stream) check or filter by it through [`Access`], and the audit
//! log reads it.

use rocket::http::uri::Host;
use rocket::http::{Method, Status};
use rocket::request::{self, FromRequest};
use rocket::route::{Handler, Outcome, Route};
use rocket::{Data, Request};

use crate::auth::{AccessPolicy, AuthFailure, Credentials, Grant, Refusal, ServiceLimit};
use crate::error::Error;

use super::body::check_content_type;

/// Name of the gate's routes, so listings of the real routes can skip them.
pub const GATE_ROUTE_NAME: &str = "auth gate";

/// Below every rank Rocket gives a route by default (-12 to -1), so the gate is
/// tried first on every path.
const GATE_RANK: isize = -100;

/// Passes allowed requests on to the real routes, answers the rest 401 or 403.
#[derive(Clone)]
struct AuthGate;

#[rocket::async_trait]
impl Handler for AuthGate {
    async fn handle<'r>(&self, request: &'r Request<'_>, mut data: Data<'r>) -> Outcome<'r> {
        let Some(policy) = request.rocket().state::<AccessPolicy>() else {
            // Not managed: a wiring bug. Refusing beats serving unchecked.
            return Outcome::from(request, Status::InternalServerError);
        };
        match policy.check(&credentials(request)) {
            Ok(grant) => {
                request.local_cache(|| Verdict::Admitted(grant));
                match check_body_type(request, &mut data).await {
                    Ok(()) => Outcome::forward(data, Status::NotFound),
                    Err(error) => Outcome::from(request, error),
                }
            }
            Err(refusal) => {
                let failure = refusal.failure.clone();
                request.local_cache(|| Verdict::Refused(refusal));
                Outcome::from(request, Error::AccessDenied(failure))
            }
        }
    }
}

/// Refuses a body not labelled as JSON on a method that carries one, before
/// it is read: what a web page can send to another site unasked. A request
/// without a body (a rollback, an httpie POST with no fields) needs no type.
async fn check_body_type(request: &Request<'_>, data: &mut Data<'_>) -> Result<(), Error> {
    if !matches!(request.method(), Method::Post | Method::Put | Method::Patch) {
        return Ok(());
    }
    let content_type = request.headers().get_one("Content-Type");
    if check_content_type(content_type).is_ok() {
        return Ok(());
    }
    // Only a body that is not labelled JSON is waited for, one byte of it.
    if data.peek(1).await.is_empty() && data.peek_complete() {
        return Ok(());
    }
    check_content_type(content_type)
}

/// The host the request target names when it is not the `Host` header:
/// HTTP/2's `:authority` (Rocket's [`Request::host`]), kept for
/// [`credentials`]. Under HTTP/1.1, Rocket takes the host from `Host` itself.
struct TargetHost(Option<String>);

/// What the gate decided about a request.
#[derive(Debug)]
pub(super) enum Verdict {
    /// The gate has not run: a request Rocket answered before routing.
    Unchecked,
    Admitted(Grant),
    Refused(Refusal),
}

impl Verdict {
    pub(super) fn of<'r>(request: &'r Request<'_>) -> &'r Verdict {
        request.local_cache(|| Verdict::Unchecked)
    }
}

/// The service a request acted on, when its path does not name it (a
/// create names it in its body), and whether the token may not touch it:
/// for the audit log.
pub(super) struct ActedOn {
    pub service: Option<String>,
    pub refused: Option<AuthFailure>,
}

impl ActedOn {
    pub(super) fn of<'r>(request: &'r Request<'_>) -> &'r ActedOn {
        request.local_cache(|| ActedOn {
            service: None,
            refused: None,
        })
    }
}

/// What the caller may touch, for routes whose service is not in the path.
pub(super) struct Access<'r> {
    grant: &'r Grant,
    request: &'r Request<'r>,
}

impl Access<'_> {
    /// Refuses a service this caller's token may not touch, and notes it
    /// for the audit log either way.
    pub fn check_service(&self, service: &str) -> Result<(), Error> {
        let checked = self.grant.check_service(service);
        self.request.local_cache(|| ActedOn {
            service: Some(service.to_owned()),
            refused: checked.clone().err(),
        });
        checked.map_err(Error::AccessDenied)
    }

    /// Whether the caller may see `service` (lists and streams leave the
    /// others out).
    pub fn sees(&self, service: &str) -> bool {
        self.grant.services.allows(service)
    }

    /// The services the caller may see, to filter a stream that outlives
    /// the request.
    pub fn visibility(&self) -> ServiceLimit {
        self.grant.services.clone()
    }

    /// Refuses a caller limited to some services: the answer covers all.
    /// Noted for the audit log when refused.
    pub fn check_every_service(&self, what: &str) -> Result<(), Error> {
        if self.grant.services.is_any() {
            return Ok(());
        }
        let failure = AuthFailure::CoversEveryService(what.to_owned());
        self.request.local_cache(|| ActedOn {
            service: None,
            refused: Some(failure.clone()),
        });
        Err(Error::AccessDenied(failure))
    }
}

#[rocket::async_trait]
impl<'r> FromRequest<'r> for Access<'r> {
    type Error = ();

    async fn from_request(request: &'r Request<'_>) -> request::Outcome<Self, ()> {
        match Verdict::of(request) {
            Verdict::Admitted(grant) => request::Outcome::Success(Access {
                grant,
                // Rocket hands guards a `Request<'_>` whose inner lifetime
                // outlives 'r; the local cache needs only 'r.
                request: shorten(request),
            }),
            // Only reachable if the gate were not mounted: refuse.
            _ => request::Outcome::Error((Status::InternalServerError, ())),
        }
    }
}

fn shorten<'r>(request: &'r Request<'_>) -> &'r Request<'r> {
    request
}

/// What the access check needs from `request`.
pub(super) fn credentials<'r>(request: &'r Request<'_>) -> Credentials<'r> {
    let headers = request.headers();
    let host = headers.get_one("Host");
    let TargetHost(target_host) = request.local_cache(|| {
        let same = |a: &Host<'_>, b: &Host<'_>| a.domain() == b.domain() && a.port() == b.port();
        let from_header = host.and_then(|host| Host::parse(host).ok());
        TargetHost(
            request
                .host()
                .filter(|target| !from_header.as_ref().is_some_and(|h| same(h, target)))
                .map(ToString::to_string),
        )
    });
    Credentials {
        method: request.method().as_str(),
        path: request.uri().path().as_str(),
        authorization: headers.get_one("Authorization"),
        origin: headers.get_one("Origin"),
        host,
        target_host: target_host.as_deref(),
        fetch_site: headers.get_one("Sec-Fetch-Site"),
        repeated_headers: headers.get("Host").nth(1).is_some()
            || headers.get("Origin").nth(1).is_some(),
        remote: request.remote().map(|address| address.ip()),
    }
}

/// The gate, on every path for every method.
pub fn routes() -> Vec<Route> {
    [
        Method::Get,
        Method::Head,
        Method::Post,
        Method::Put,
        Method::Delete,
        Method::Patch,
        Method::Options,
        Method::Trace,
        Method::Connect,
    ]
    .into_iter()
    .map(|method| {
        let mut route = Route::ranked(GATE_RANK, method, "/<_..>", AuthGate);
        route.name = Some(GATE_ROUTE_NAME.into());
        route
    })
    .collect()
}
