//! `/service`, `/service/<name>` and `/service/<name>/rollback`: the definitions.

use std::collections::BTreeMap;
use std::sync::Arc;

use rocket::data::Data;
use rocket::http::Status;
use rocket::response::status::{Created, Custom, NoContent};
use rocket::serde::json::Json;
use rocket::{Route, State};

use super::{known_name, read_json};
use crate::backend::Backend;
use crate::docker::NetworkCheck;
use crate::domain::{BindPolicy, ServiceDefinition, ServiceName};
use crate::error::Error;
use crate::store::{Replaced, Store};

pub fn routes() -> Vec<Route> {
    rocket::routes![list, create, show, replace, rollback, delete]
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
    binds: &State<BindPolicy>,
    networks: &State<NetworkCheck>,
    body: Data<'_>,
) -> Result<Created<Json<ServiceDefinition>>, Error> {
    let definition = ServiceDefinition::from_create_body(&read_json(body).await?)?;
    admit(&definition, binds, networks).await?;
    let location = format!("/service/{}", definition.name());
    store.create(definition.clone()).await?;
    Ok(Created::new(location).body(Json(definition)))
}

/// What a valid definition must also pass before it is stored: its host
/// paths against `allowed_bind_paths`, and its networks against docker.
async fn admit(
    definition: &ServiceDefinition,
    binds: &BindPolicy,
    networks: &NetworkCheck,
) -> Result<(), Error> {
    definition.check_host_paths(binds)?;
    networks.check(definition).await
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
    backend: &State<Arc<dyn Backend>>,
    binds: &State<BindPolicy>,
    networks: &State<NetworkCheck>,
    name: &str,
    body: Data<'_>,
) -> Result<Custom<Json<ServiceDefinition>>, Error> {
    let name = ServiceName::parse(name)?;
    let definition = ServiceDefinition::from_replace_body(name, &read_json(body).await?)?;
    admit(&definition, binds, networks).await?;
    let replaced = store.replace(definition.clone()).await?;
    // A PUT that replaced a definition is handed to the backend, which
    // rolls it out or answers the docker failure (the definition stays
    // stored either way).
    let status = match replaced {
        Replaced::Created => Status::Created,
        Replaced::Updated { runs_differently } => {
            backend
                .definition_replaced(&definition, runs_differently)
                .await?;
            Status::Ok
        }
    };
    Ok(Custom(status, Json(definition)))
}

/// Makes the previous definition current again and rolls it out; answers
/// the definition now current.
#[rocket::post("/service/<name>/rollback")]
async fn rollback(
    backend: &State<Arc<dyn Backend>>,
    name: &str,
) -> Result<Json<ServiceDefinition>, Error> {
    backend.roll_back(&known_name(name)?).await.map(Json)
}

#[rocket::delete("/service/<name>")]
async fn delete(backend: &State<Arc<dyn Backend>>, name: &str) -> Result<NoContent, Error> {
    backend.delete(&known_name(name)?).await.map(|()| NoContent)
}
