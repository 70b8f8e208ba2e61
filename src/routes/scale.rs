//! `/service/<name>/scale` and `/service/<name>/status`: the containers.

use std::sync::Arc;

use rocket::data::Data;
use rocket::serde::json::Json;
use rocket::{Route, State};
use serde_json::Value;

use super::{known_name, read_json};
use crate::backend::{Backend, ScaleReport, ServiceStatus};
use crate::config::AppConfig;
use crate::domain::ReplicaCount;
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
    let body = read_json(body).await?;
    let Value::Object(fields) = &body else {
        return Err(Error::MalformedBody(
            "must be a JSON object like {\"number\": 3}".into(),
        ));
    };
    if let Some(unknown) = fields.keys().find(|key| key.as_str() != "number") {
        return Err(Error::invalid(
            unknown.as_str(),
            "unknown field; the only field is number",
        ));
    }
    let target = ReplicaCount::parse(fields.get("number"), config.max_replicas)?;
    backend.scale(&name, target).await.map(Json)
}

#[rocket::get("/service/<name>/status")]
async fn status(
    backend: &State<Arc<dyn Backend>>,
    name: &str,
) -> Result<Json<ServiceStatus>, Error> {
    backend.status(&known_name(name)?).await.map(Json)
}
