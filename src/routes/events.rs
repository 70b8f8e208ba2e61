//! `GET /events`, the change feed as server-sent events,
//! `GET /service/<name>/history`, the changes a service keeps, and
//! `DELETE /service/<name>/earlier-definitions`, which drops the earlier
//! definitions it keeps.

use std::sync::Arc;
use std::time::Duration;

use rocket::request::Request;
use rocket::response::stream::{Event, EventStream};
use rocket::response::{self, Responder};
use rocket::serde::json::Json;
use rocket::{Route, Shutdown, State};
use serde_json::{json, Value};

use super::conditional::{LastEventId, Tagged};
use super::gate::Access;
use super::known_name;
use crate::backend::Backend;
use crate::domain::ServiceName;
use crate::error::Error;
use crate::feed::{Batch, Feed};
use crate::store::Store;

/// The most of a stream Rocket reads into one buffer before writing it:
/// an event is a few hundred bytes, and each open stream keeps its buffer
/// allocated while it waits, so Rocket's 4 KiB default would cost a
/// thousand watchers 4 MB for nothing.
const STREAM_CHUNK: usize = 512;

/// How often an idle stream sends a comment line, so that proxies and
/// load balancers (which often close a connection idle for 30 to 60 s)
/// keep it open.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

pub fn routes() -> Vec<Route> {
    rocket::routes![events, history, forget_earlier_definitions]
}

/// Streams every change after `Last-Event-ID` (or from now), of one
/// service with `?service=`. A client that missed more than the ring
/// holds gets one `reset` event, and the stream ends: it must read the
/// state afresh and reconnect without `Last-Event-ID`. Streams end when
/// the connector shuts down.
#[rocket::get("/events?<service>")]
fn events(
    feed: &State<Arc<Feed>>,
    last_event_id: LastEventId,
    access: Access<'_>,
    service: Option<&str>,
    mut shutdown: Shutdown,
) -> Result<SmallChunks<EventStream![Event + 'static]>, Error> {
    let only = service
        .map(|name| {
            ServiceName::parse(name).map_err(|e| match e {
                Error::Invalid { reason, .. } => Error::invalid("service", reason),
                other => other,
            })
        })
        .transpose()?
        .map(|name| name.to_string());
    if let Some(name) = &only {
        access.check_service(name)?;
    }
    // A token limited to some services sees only their events.
    let visible = access.visibility();
    let mut cursor = feed.watch(last_event_id.id()?);
    let stream = EventStream! {
        loop {
            let batch = rocket::tokio::select! {
                batch = cursor.next() => batch,
                _ = &mut shutdown => break,
            };
            let events = match batch {
                Batch::Events(events) => events,
                Batch::Reset => {
                    yield Event::json(&json!({
                        "reason": "events this stream had not sent are no longer kept: \
                                   read the state again, then reconnect without Last-Event-ID",
                    }))
                    .event("reset");
                    break;
                }
            };
            for event in events {
                if only.as_ref().is_some_and(|name| *name != event.service)
                    || !visible.allows(&event.service)
                {
                    continue;
                }
                yield Event::data(event.data.to_string())
                    .id(event.id.to_string())
                    .event(event.kind.name());
            }
        }
    };
    Ok(SmallChunks(stream.heartbeat(KEEP_ALIVE)))
}

/// A streamed answer written in chunks of at most [`STREAM_CHUNK`] bytes.
struct SmallChunks<R>(R);

impl<'r, 'o: 'r, R: Responder<'r, 'o>> Responder<'r, 'o> for SmallChunks<R> {
    fn respond_to(self, request: &'r Request<'_>) -> response::Result<'o> {
        let mut response = self.0.respond_to(request)?;
        response.set_max_chunk_size(STREAM_CHUNK);
        Ok(response)
    }
}

/// The changes of a service's definition and desired count, newest
/// first: who, why, when, and how each turned out.
#[rocket::get("/service/<name>/history")]
fn history(store: &State<Arc<Store>>, name: &str) -> Result<Tagged<Json<Value>>, Error> {
    let name = known_name(name)?;
    let stored = store
        .service(&name)
        .ok_or_else(|| Error::ServiceNotFound(name.to_string()))?;
    Ok(Tagged::new(
        Json(json!({"service": name.as_str(), "changes": stored.changes})),
        stored.revision,
    ))
}

/// Drops the earlier definitions a service keeps for rollbacks, and with
/// them, from the data files, the environment values they held: after a
/// secret is rotated by a PUT, the old one stays in them until then. Refused
/// while containers of an earlier definition still run.
#[rocket::delete("/service/<name>/earlier-definitions")]
async fn forget_earlier_definitions(
    store: &State<Arc<Store>>,
    backend: &State<Arc<dyn Backend>>,
    name: &str,
) -> Result<Json<Value>, Error> {
    let name = known_name(name)?;
    if !store.contains(&name) {
        return Err(Error::ServiceNotFound(name.to_string()));
    }
    let status = backend.status(&name).await?;
    let earlier = status.containers.iter().filter(|c| !c.current).count();
    if earlier > 0 {
        return Err(Error::EarlierDefinitionRuns {
            service: name.to_string(),
            containers: earlier,
        });
    }
    let forgotten = store.forget_earlier_definitions(&name).await?;
    Ok(Json(
        json!({"service": name.as_str(), "forgotten": forgotten}),
    ))
}
