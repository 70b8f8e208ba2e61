//! `/service/<name>/scale` and `/service/<name>/status`: the containers.

use rocket::data::Data;
use rocket::serde::json::Json;
use rocket::{Route, State};
use serde::Serialize;
use serde_json::Value;

use super::{known_name, read_json};
use crate::config::AppConfig;
use crate::domain::ReplicaCount;
use crate::error::Error;
use crate::scaler::{ScaleReport, Scaler};

pub fn routes() -> Vec<Route> {
    rocket::routes![scale, status]
}

#[rocket::post("/service/<name>/scale", data = "<body>")]
async fn scale(
    scaler: &State<Scaler>,
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
    scaler.scale(&name, target).await.map(Json)
}

/// The answer of a status request.
#[derive(Serialize)]
struct StatusReport {
    running_resources: usize,
}

#[rocket::get("/service/<name>/status")]
async fn status(scaler: &State<Scaler>, name: &str) -> Result<Json<StatusReport>, Error> {
    let running_resources = scaler.running(&known_name(name)?).await?;
    Ok(Json(StatusReport { running_resources }))
}
