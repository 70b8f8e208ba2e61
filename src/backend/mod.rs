//! What the routes ask of whatever runs the services, and what it answers.
//!
//! Two backends implement [`Backend`]: [`containers::ContainersBackend`],
//! the connector's own containers on one engine, and
//! [`swarm::SwarmBackend`], one Swarm service per service; [`locks`] is the
//! per-service lock both use. Routes and the store never know which one runs. (The
//! container-level [`crate::docker::Engine`] sits one layer below: Swarm
//! starts and removes its own containers, so it is not a backend of the
//! scaler but a backend of its own.)

pub(crate) mod containers;
mod locks;
pub(crate) mod swarm;

use async_trait::async_trait;
use serde::Serialize;

use crate::docker::{Health, PublishedPorts};
use crate::domain::{Precondition, ScaleRequest, ServiceDefinition, ServiceName};
use crate::error::Error;
use crate::store::{Origin, Store, DONE};

/// Runs the defined services: what scale, status, PUT and DELETE do beyond
/// the store.
#[async_trait]
pub trait Backend: Send + Sync {
    /// Records the count `request` asks for as the desired count of
    /// `service` (under the service's lock, so concurrent deltas add up),
    /// if the service meets `precondition`, and brings it there. The
    /// store's history records it, with its outcome once known.
    ///
    /// # Errors
    /// [`Error::ServiceNotFound`], [`Error::PreconditionFailed`],
    /// [`Error::OutOfBounds`], [`Error::Storage`], or the docker failure.
    async fn scale(
        &self,
        service: &ServiceName,
        request: &ScaleRequest,
        origin: &Origin,
        precondition: Option<&Precondition>,
    ) -> Result<ScaleReport, Error>;

    /// Waits until `target` containers of `service` are healthy (running
    /// with a passing health check, or with none), for at most `timeout`.
    /// A later scale to another count ends the wait at once: the answer
    /// then carries that count.
    ///
    /// # Errors
    /// [`Error::NotHealthy`] with the counts at the deadline;
    /// [`Error::ServiceNotFound`] if it was deleted meanwhile; the docker
    /// failure.
    async fn wait_healthy(
        &self,
        service: &ServiceName,
        target: u32,
        timeout: std::time::Duration,
    ) -> Result<ScaleReport, Error>;

    /// Where `service` stands.
    ///
    /// # Errors
    /// [`Error::ServiceNotFound`], or the docker failure.
    async fn status(&self, service: &ServiceName) -> Result<ServiceStatus, Error>;

    /// Records 0 as the desired count of `service` (whatever its bounds),
    /// removes everything it runs, then its definition, all under the
    /// service's lock; if the service meets `precondition` when the delete
    /// begins (a PUT that lands while it runs is deleted with it, as
    /// without `If-Match`). Each step needs the one before: a delete that
    /// fails leaves the service as it was (the count could not be
    /// recorded) or at count 0, never to be started again by itself, and a
    /// retry finishes it.
    ///
    /// # Errors
    /// [`Error::ServiceNotFound`], [`Error::PreconditionFailed`], the
    /// docker failure, or [`Error::Storage`].
    async fn delete(
        &self,
        service: &ServiceName,
        origin: &Origin,
        precondition: Option<&Precondition>,
    ) -> Result<(), Error>;

    /// A PUT stored `definition` over an earlier one; `runs_differently`
    /// says whether its config hash changed. Rolls it out, or arranges for
    /// it to be rolled out.
    ///
    /// # Errors
    /// The docker failure of handing it over; the definition stays stored.
    async fn definition_replaced(
        &self,
        definition: &ServiceDefinition,
        runs_differently: bool,
    ) -> Result<(), Error>;

    /// `POST /service/<name>/rollback`: makes the previous definition of
    /// `service` current again, in the store, rolls it out as a PUT of it
    /// would, and answers it with the service's revision.
    ///
    /// # Errors
    /// [`Error::ServiceNotFound`], [`Error::PreconditionFailed`],
    /// [`Error::NothingToRollBack`], [`Error::Storage`], or the docker
    /// failure of handing it over (the earlier definition then stays
    /// current in the store, as after a PUT).
    async fn roll_back(
        &self,
        service: &ServiceName,
        origin: &Origin,
        precondition: Option<&Precondition>,
    ) -> Result<(ServiceDefinition, u64), Error>;
}

/// Records in the history how a scale that changed the count turned out;
/// a failure to write that is logged, not answered: the scale itself stands.
pub(crate) async fn settle_scale<T>(
    store: &Store,
    service: &ServiceName,
    revision: u64,
    result: &Result<T, Error>,
) {
    let outcome = match result {
        Ok(_) => DONE.to_owned(),
        Err(e) => format!("failed: {e}"),
    };
    if let Err(e) = store.settle(service, revision, &outcome).await {
        log::error!("'{service}': cannot record how the scale went: {e}");
    }
}

/// What a scale reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ScaleReport {
    pub running_resources: usize,
    pub desired_resources: u32,
    /// The service's revision once the count was recorded: the answer's
    /// `ETag`, not part of its body.
    #[serde(skip)]
    pub revision: u64,
}

/// Where a service stands, as `GET /service/<name>/status` reports it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServiceStatus {
    pub running_resources: usize,
    /// Running containers that serve: their health check passes, or they
    /// have none. Never more than `running_resources`.
    pub healthy_resources: usize,
    /// `None` only until the count of a service from an old data file is
    /// adopted.
    pub desired_resources: Option<u32>,
    pub containers: Vec<ContainerStatus>,
    pub rollout: Rollout,
    /// Why the service is not at its desired state, when the connector
    /// knows: the last docker error, or containers that keep exiting.
    pub problem: Option<String>,
    /// Failed attempts in a row to reach the desired state.
    pub failed_attempts: u32,
}

/// One container in a status.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ContainerStatus {
    pub id: String,
    pub name: String,
    pub state: String,
    /// Seconds since the Unix epoch.
    pub created: i64,
    /// Container port → host port; `None` when docker could not be asked.
    pub ports: Option<PublishedPorts>,
    /// The Swarm node running it (`None` until Swarm has placed it); `None`
    /// on the containers backend, where everything runs on the connector's
    /// own engine.
    pub node: Option<String>,
    /// Whether it runs the service's current definition.
    pub current: bool,
    pub restarts: u32,
    pub last_exit_code: Option<i64>,
    /// What its health check says; `None` when it has none or does not run.
    pub health: Option<Health>,
}

/// Where a rollout stands; see [`Rollout::state`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RolloutState {
    Complete,
    Rolling,
    Failed,
    #[serde(rename = "rolled_back")]
    RolledBack,
    Manual,
    Pending,
}

/// How far the current definition has reached.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rollout {
    /// `complete`: every container runs the current definition; `rolling`:
    /// older ones are being replaced; `failed`: the current definition did
    /// not keep running, so the older containers stay (the containers
    /// backend tries again after a backoff, Swarm rolled back); `rolled_back`:
    /// a new definition did not keep running, and the service went back by
    /// itself to the earlier one it runs, which is the current definition
    /// again (shown until the next PUT or rollback); `manual`:
    /// reconciling is off, so older containers are only replaced by scales;
    /// `pending` (Swarm): the definition is stored but docker failed to
    /// hand it to Swarm, and the next scale or PUT does.
    pub state: RolloutState,
    pub updated: usize,
    pub outdated: usize,
    pub error: Option<String>,
}
