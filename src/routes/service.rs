//! `/service` and `/service/<name>`: the definitions.

use std::collections::BTreeMap;
use std::sync::Arc;

use rocket::data::Data;
use rocket::http::Status;
use rocket::response::status::{Created, Custom, NoContent};
use rocket::serde::json::Json;
use rocket::{Route, State};

use super::{known_name, read_json};
use crate::domain::{ServiceDefinition, ServiceName};
use crate::error::Error;
use crate::reconciler::Reconciler;
use crate::scaler::Scaler;
use crate::store::{Replaced, Store};

pub fn routes() -> Vec<Route> {
    rocket::routes![list, create, show, replace, delete]
}

#[rocket::get("/service")]
fn list(store: &State<Arc<Store>>) -> Json<BTreeMap<String, ServiceDefinition>> {
    Json(
        store
            .all()
            .iter()
            .map(|(name, stored)| (name.to_string(), stored.definition.clone()))
            .collect(),
    )
}

#[rocket::post("/service", data = "<body>")]
async fn create(
    store: &State<Arc<Store>>,
    body: Data<'_>,
) -> Result<Created<Json<ServiceDefinition>>, Error> {
    let definition = ServiceDefinition::from_create_body(&read_json(body).await?)?;
    let location = format!("/service/{}", definition.name());
    store.create(definition.clone()).await?;
    Ok(Created::new(location).body(Json(definition)))
}

#[rocket::get("/service/<name>")]
fn show(store: &State<Arc<Store>>, name: &str) -> Result<Json<ServiceDefinition>, Error> {
    let name = known_name(name)?;
    store
        .get(&name)
        .map(Json)
        .ok_or_else(|| Error::ServiceNotFound(name.to_string()))
}

#[rocket::put("/service/<name>", data = "<body>")]
async fn replace(
    store: &State<Arc<Store>>,
    scaler: &State<Arc<Scaler>>,
    reconciler: &State<Arc<Reconciler>>,
    name: &str,
    body: Data<'_>,
) -> Result<Custom<Json<ServiceDefinition>>, Error> {
    let name = ServiceName::parse(name)?;
    let definition = ServiceDefinition::from_replace_body(name, &read_json(body).await?)?;
    let replaced = store.replace(definition.clone()).await?;
    let status = match replaced {
        Replaced::Created => Status::Created,
        Replaced::Updated { .. } => Status::Ok,
    };
    // A changed definition is rolled out in the background, at once: what
    // failed before says nothing about it. The same definition again keeps
    // its backoff, so repeating a broken one cannot hammer the engine.
    if replaced
        == (Replaced::Updated {
            runs_differently: true,
        })
    {
        scaler.definition_replaced(definition.name());
        reconciler.wake();
    }
    Ok(Custom(status, Json(definition)))
}

#[rocket::delete("/service/<name>")]
async fn delete(scaler: &State<Arc<Scaler>>, name: &str) -> Result<NoContent, Error> {
    scaler.delete(&known_name(name)?).await.map(|()| NoContent)
}
