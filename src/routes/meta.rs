//! `/health` (open to all, for monitoring) and `/openapi.json` (the contract).

use std::sync::Arc;

use rocket::http::{ContentType, Status};
use rocket::serde::json::Json;
use rocket::{Route, State};
use serde_json::{json, Value};

use crate::health::HealthCheck;
use crate::store::Store;

/// The OpenAPI 3 description of every endpoint, served as written.
const OPENAPI_DOCUMENT: &str = include_str!("../openapi.json");

pub fn routes() -> Vec<Route> {
    rocket::routes![health, openapi]
}

/// 200 with `"status": "pass"` while the engine answers, else 503 with
/// `"status": "fail"` and docker's reason.
#[rocket::get("/health")]
async fn health(check: &State<HealthCheck>, store: &State<Arc<Store>>) -> (Status, Json<Value>) {
    let engine = check.engine().await;
    let (status, word) = if engine.is_reachable() {
        (Status::Ok, "pass")
    } else {
        (Status::ServiceUnavailable, "fail")
    };
    let body = json!({
        "status": word,
        "version": env!("CARGO_PKG_VERSION"),
        "docker": engine.to_json(),
        "services": store.all().len(),
    });
    (status, Json(body))
}

#[rocket::get("/openapi.json")]
fn openapi() -> (ContentType, &'static str) {
    (ContentType::JSON, OPENAPI_DOCUMENT)
}
