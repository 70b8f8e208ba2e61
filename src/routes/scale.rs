//! `/service/<name>/scale` and `/service/<name>/status`: the containers.

use std::sync::Arc;

use rocket::data::Data;
use rocket::serde::json::Json;
use rocket::{Route, State};

use super::conditional::{Author, IfMatch, Tagged};
use super::{known_name, read_json};
use crate::backend::{Backend, ScaleReport, ServiceStatus};
use crate::config::AppConfig;
use crate::domain::{HealthWait, ScaleRequest, StatusWait};
use crate::error::Error;
use crate::feed::Feed;
use crate::store::Store;

pub fn routes() -> Vec<Route> {
    rocket::routes![scale, status]
}

/// Scales to a number or by a delta, if `If-Match` allows; with
/// `?wait=healthy`, answers only once as many containers are healthy (or
/// 504 with the counts at the `timeout`).
#[allow(clippy::too_many_arguments)] // a route's guards, each one a header or query
#[rocket::post("/service/<name>/scale?<wait>&<timeout>", data = "<body>")]
async fn scale(
    backend: &State<Arc<dyn Backend>>,
    config: &State<AppConfig>,
    author: Author,
    if_match: IfMatch,
    name: &str,
    wait: Option<&str>,
    timeout: Option<&str>,
    body: Data<'_>,
) -> Result<Tagged<Json<ScaleReport>>, Error> {
    let name = known_name(name)?;
    let request = ScaleRequest::from_body(&read_json(body).await?, config.max_replicas)?;
    let health_wait = HealthWait::from_query(wait, timeout)?;
    let precondition = if_match.precondition()?;
    let origin = author.origin(request.reason());
    let report = backend
        .scale(&name, &request, &origin, precondition.as_ref())
        .await?;
    let report = match health_wait {
        None => report,
        Some(wait) => {
            backend
                .wait_healthy(&name, report.desired_resources, wait.timeout())
                .await?
        }
    };
    let revision = report.revision;
    Ok(Tagged::new(Json(report), revision))
}

/// Where the service stands; with `?index=N`, once it changed after `N`
/// (or `wait` ran out). The index is read before the status, so an answer
/// is never older than its index: a change that lands in between wakes the
/// next blocking request at once rather than being missed.
#[rocket::get("/service/<name>/status?<index>&<wait>")]
async fn status(
    backend: &State<Arc<dyn Backend>>,
    store: &State<Arc<Store>>,
    feed: &State<Arc<Feed>>,
    name: &str,
    index: Option<&str>,
    wait: Option<&str>,
) -> Result<Tagged<Json<ServiceStatus>>, Error> {
    let name = known_name(name)?;
    let blocking = StatusWait::from_query(index, wait)?;
    if let Some(blocking) = blocking {
        if !store.contains(&name) {
            return Err(Error::ServiceNotFound(name.to_string()));
        }
        feed.wait_for_change(name.as_str(), blocking.index, blocking.wait)
            .await;
    }
    let index = feed.service_index(name.as_str());
    let revision = store
        .revision(&name)
        .ok_or_else(|| Error::ServiceNotFound(name.to_string()))?;
    let status = backend.status(&name).await?;
    Ok(Tagged::new(Json(status), revision).indexed(index))
}
