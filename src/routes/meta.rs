//! The connector about itself: `/health` (open to all, for monitoring),
//! `/metrics` (for Prometheus) and `/openapi.json` (the contract).

use std::sync::Arc;

use rocket::http::{ContentType, Status};
use rocket::request::{FromRequest, Outcome, Request};
use rocket::serde::json::Json;
use rocket::{Route, State};
use serde_json::{json, Value};

use super::gate::{credentials, Access};
use crate::auth::{AccessPolicy, Credentials};
use crate::error::Error;
use crate::health::HealthCheck;
use crate::inventory::Inventory;
use crate::metrics::{Metrics, CONTENT_TYPE};
use crate::store::Store;

/// The OpenAPI 3 description of every endpoint, served as written.
const OPENAPI_DOCUMENT: &str = include_str!("../openapi.json");

/// The routes of this module.
pub fn routes() -> Vec<Route> {
    rocket::routes![health, prometheus_metrics, openapi]
}

/// Who is asking: `/health` answers anyone, but shows details only to
/// callers the access check trusts.
struct Caller<'r>(Credentials<'r>);

#[rocket::async_trait]
impl<'r> FromRequest<'r> for Caller<'r> {
    type Error = std::convert::Infallible;

    async fn from_request(request: &'r Request<'_>) -> Outcome<Self, Self::Error> {
        Outcome::Success(Caller(credentials(request)))
    }
}

/// 200 with `"status": "pass"` while the engine answers, else 503 with
/// `"status": "fail"`. The details (versions, docker's error, the number of
/// services, whether the container index follows docker's events) go only to trusted callers (no web page, and the token when one
/// is set): docker's errors can name paths and the versions help an attacker.
#[rocket::get("/health")]
async fn health(
    check: &State<HealthCheck>,
    store: &State<Arc<Store>>,
    inventory: &State<Arc<Inventory>>,
    policy: &State<AccessPolicy>,
    caller: Caller<'_>,
) -> (Status, Json<Value>) {
    let engine = check.engine().await;
    let (status, word) = if engine.is_reachable() {
        (Status::Ok, "pass")
    } else {
        (Status::ServiceUnavailable, "fail")
    };
    if !policy.trusts(&caller.0) {
        return (status, Json(json!({ "status": word })));
    }
    let index = inventory.summary();
    let body = json!({
        "status": word,
        "version": env!("CARGO_PKG_VERSION"),
        "docker": engine.to_json(),
        "services": store.all().len(),
        "container_index": {
            "live": index.live,
            "containers": index.containers,
        },
    });
    (status, Json(body))
}

/// The Prometheus exposition. Behind the token like every endpoint but
/// `/health`: it names the services. Asks docker nothing: the running counts
/// come from the container index, and are left out while it is not live.
/// A token limited to some services may not read it: it covers them all.
#[rocket::get("/metrics")]
fn prometheus_metrics(
    metrics: &State<Arc<Metrics>>,
    store: &State<Arc<Store>>,
    inventory: &State<Arc<Inventory>>,
    access: Access<'_>,
) -> Result<(ContentType, String), Error> {
    access.check_every_service("/metrics")?;
    let services = store.all();
    let running = inventory.running_counts(services.keys());
    let content_type = ContentType::parse_flexible(CONTENT_TYPE).expect("a valid content type");
    Ok((
        content_type,
        metrics.render(services.len(), running.as_ref()),
    ))
}

#[rocket::get("/openapi.json")]
fn openapi() -> (ContentType, &'static str) {
    (ContentType::JSON, OPENAPI_DOCUMENT)
}
