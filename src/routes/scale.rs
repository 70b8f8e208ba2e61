//! `/service/<name>/scale` and `/service/<name>/status`: the containers.

use std::sync::Arc;

use rocket::data::Data;
use rocket::serde::json::Json;
use rocket::{Route, State};

use super::{known_name, read_json};
use crate::backend::{Backend, ScaleReport, ServiceStatus};
use crate::config::AppConfig;
use crate::domain::{HealthWait, ScaleRequest};
use crate::error::Error;

pub fn routes() -> Vec<Route> {
    rocket::routes![scale, status]
}

/// Scales; with `?wait=healthy`, answers only once as many containers are
/// healthy (or 504 with the counts at the `timeout`).
#[rocket::post("/service/<name>/scale?<wait>&<timeout>", data = "<body>")]
async fn scale(
    backend: &State<Arc<dyn Backend>>,
    config: &State<AppConfig>,
    name: &str,
    wait: Option<&str>,
    timeout: Option<&str>,
    body: Data<'_>,
) -> Result<Json<ScaleReport>, Error> {
    let name = known_name(name)?;
    let request = ScaleRequest::from_body(&read_json(body).await?, config.max_replicas)?;
    let health_wait = HealthWait::from_query(wait, timeout)?;
    let report = backend.scale(&name, request.target()).await?;
    match health_wait {
        None => Ok(Json(report)),
        Some(wait) => backend
            .wait_healthy(&name, request.target().get(), wait.timeout())
            .await
            .map(Json),
    }
}

#[rocket::get("/service/<name>/status")]
async fn status(
    backend: &State<Arc<dyn Backend>>,
    name: &str,
) -> Result<Json<ServiceStatus>, Error> {
    backend.status(&known_name(name)?).await.map(Json)
}
