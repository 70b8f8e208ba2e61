//! `/service`, `/service/<name>` and `/service/<name>/rollback`: the definitions.

use std::collections::BTreeMap;
use std::sync::Arc;

use rocket::data::Data;
use rocket::http::Status;
use rocket::request::{FromRequest, Outcome, Request};
use rocket::response::status::{Created, Custom, NoContent};
use rocket::serde::json::Json;
use rocket::{Route, State};

use super::conditional::{Author, IfMatch, Tagged};
use super::gate::Access;
use super::{known_name, read_json};
use crate::backend::Backend;
use crate::docker::NetworkCheck;
use crate::domain::{BindPolicy, ServiceDefinition, ServiceName};
use crate::error::Error;
use crate::store::{Replaced, Store};

pub fn routes() -> Vec<Route> {
    rocket::routes![list, create, show, replace, rollback, delete]
}

/// Every definition this caller may see: a token limited to some
/// services lists only those.
#[rocket::get("/service")]
fn list(
    store: &State<Arc<Store>>,
    access: Access<'_>,
) -> Json<BTreeMap<String, ServiceDefinition>> {
    Json(
        store
            .all()
            .iter()
            .filter(|(name, _)| access.sees(name.as_str()))
            .map(|(name, stored)| (name.to_string(), stored.definition.clone()))
            .collect(),
    )
}

#[rocket::post("/service", data = "<body>")]
async fn create(
    store: &State<Arc<Store>>,
    admission: Admission<'_>,
    access: Access<'_>,
    author: Author,
    body: Data<'_>,
) -> Result<Tagged<Created<Json<ServiceDefinition>>>, Error> {
    let definition = ServiceDefinition::from_create_body(&read_json(body).await?)?;
    access.check_service(definition.name().as_str())?;
    admission.admit(&definition).await?;
    let location = format!("/service/{}", definition.name());
    let revision = store
        .create(definition.clone(), &author.origin(None))
        .await?;
    Ok(Tagged::new(
        Created::new(location).body(Json(definition)),
        revision,
    ))
}

/// What a valid definition must also pass before it is stored: its host
/// paths against `allowed_bind_paths`, and its networks against docker.
struct Admission<'r> {
    binds: &'r BindPolicy,
    networks: &'r NetworkCheck,
}

impl Admission<'_> {
    async fn admit(&self, definition: &ServiceDefinition) -> Result<(), Error> {
        definition.check_host_paths(self.binds)?;
        self.networks.check(definition).await
    }
}

#[rocket::async_trait]
impl<'r> FromRequest<'r> for Admission<'r> {
    type Error = ();

    async fn from_request(request: &'r Request<'_>) -> Outcome<Self, ()> {
        let rocket = request.rocket();
        match (rocket.state::<BindPolicy>(), rocket.state::<NetworkCheck>()) {
            (Some(binds), Some(networks)) => Outcome::Success(Admission { binds, networks }),
            _ => Outcome::Error((Status::InternalServerError, ())),
        }
    }
}

#[rocket::get("/service/<name>")]
fn show(store: &State<Arc<Store>>, name: &str) -> Result<Tagged<Json<ServiceDefinition>>, Error> {
    let name = known_name(name)?;
    store
        .service(&name)
        .map(|stored| Tagged::new(Json(stored.definition), stored.revision))
        .ok_or_else(|| Error::ServiceNotFound(name.to_string()))
}

#[rocket::put("/service/<name>", data = "<body>")]
async fn replace(
    store: &State<Arc<Store>>,
    backend: &State<Arc<dyn Backend>>,
    admission: Admission<'_>,
    author: Author,
    if_match: IfMatch,
    name: &str,
    body: Data<'_>,
) -> Result<Tagged<Custom<Json<ServiceDefinition>>>, Error> {
    let name = ServiceName::parse(name)?;
    let definition = ServiceDefinition::from_replace_body(name, &read_json(body).await?)?;
    let precondition = if_match.precondition()?;
    admission.admit(&definition).await?;
    let (replaced, revision) = store
        .replace(
            definition.clone(),
            &author.origin(None),
            precondition.as_ref(),
        )
        .await?;
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
    Ok(Tagged::new(Custom(status, Json(definition)), revision))
}

/// Makes the previous definition current again and rolls it out; answers
/// the definition now current.
#[rocket::post("/service/<name>/rollback")]
async fn rollback(
    backend: &State<Arc<dyn Backend>>,
    author: Author,
    if_match: IfMatch,
    name: &str,
) -> Result<Tagged<Json<ServiceDefinition>>, Error> {
    let name = known_name(name)?;
    let precondition = if_match.precondition()?;
    let (definition, revision) = backend
        .roll_back(&name, &author.origin(None), precondition.as_ref())
        .await?;
    Ok(Tagged::new(Json(definition), revision))
}

#[rocket::delete("/service/<name>")]
async fn delete(
    backend: &State<Arc<dyn Backend>>,
    author: Author,
    if_match: IfMatch,
    name: &str,
) -> Result<NoContent, Error> {
    let name = known_name(name)?;
    let precondition = if_match.precondition()?;
    backend
        .delete(&name, &author.origin(None), precondition.as_ref())
        .await
        .map(|()| NoContent)
}
