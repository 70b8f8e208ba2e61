//! The access check in front of every route: a request without the token
//! (when `auth_token` is set) is answered 401, and one from a web page 403,
//! before any route, body read or catcher sees it, so no endpoint (present or
//! future) can forget to check.

use rocket::http::{Method, Status};
use rocket::route::{Handler, Outcome, Route};
use rocket::{Data, Request};

use crate::auth::{AccessPolicy, Credentials};
use crate::error::Error;

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
    async fn handle<'r>(&self, request: &'r Request<'_>, data: Data<'r>) -> Outcome<'r> {
        let Some(policy) = request.rocket().state::<AccessPolicy>() else {
            // Not managed: a wiring bug. Refusing beats serving unchecked.
            return Outcome::from(request, Status::InternalServerError);
        };
        match policy.check(&credentials(request)) {
            Ok(()) => Outcome::forward(data, Status::NotFound),
            Err(failure) => Outcome::from(request, Error::AccessDenied(failure)),
        }
    }
}

/// What the access check needs from `request`.
pub(super) fn credentials<'r>(request: &'r Request<'_>) -> Credentials<'r> {
    let headers = request.headers();
    Credentials {
        path: request.uri().path().as_str(),
        authorization: headers.get_one("Authorization"),
        origin: headers.get_one("Origin"),
        host: headers.get_one("Host"),
        fetch_site: headers.get_one("Sec-Fetch-Site"),
        repeated_headers: headers.get("Host").nth(1).is_some()
            || headers.get("Origin").nth(1).is_some(),
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
