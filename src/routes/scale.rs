//! `/service/<name>/scale` and `/service/<name>/status`: the containers.

use std::sync::Arc;

use rocket::data::Data;
use rocket::serde::json::Json;
use rocket::{Route, State};

use super::{known_name, read_json};
use crate::backend::{Backend, ScaleReport, ServiceStatus};
use crate::config::AppConfig;
use crate::domain::ScaleRequest;
use crate::error::Error;

pub fn routes() -> Vec<Route> {
    rocket::routes![scale, status]
}

#[rocket::post("/service/<name>/scale", data = "<body>")]
async fn scale(
    backend: &State<Arc<dyn Backend>>,
    config: &State<AppConfig>,
    name: &str,
    body: Data<'_>,
) -> Result<Json<ScaleReport>, Error> {
    let name = known_name(name)?;
    let request = ScaleRequest::from_body(&read_json(body).await?, config.max_replicas)?;
    backend.scale(&name, request.target()).await.map(Json)
}

#[rocket::get("/service/<name>/status")]
async fn status(
    backend: &State<Arc<dyn Backend>>,
    name: &str,
) -> Result<Json<ServiceStatus>, Error> {
    backend.status(&known_name(name)?).await.map(Json)
}
