//! Everything that knows the docker CLI: the process runner (the only code in
//! the connector that spawns processes) and the engine built on it.
//!
//! The scaler sees the engine only through `Engine`: list, start and
//! remove the containers of a service, and follow their changes.
//! `SwarmCli` drives Swarm services instead, for the swarm backend.

mod cli;
mod container;
mod events;
mod runner;
mod swarm;

pub(crate) use cli::DockerCli;
pub(crate) use container::{Container, ContainerState, PublishedPorts};
pub(crate) use events::{ContainerEvent, EventTime, Transition};
pub(crate) use runner::{DockerRunner, OutputStream};
pub use swarm::swarm_service_name;
pub(crate) use swarm::{Lookup, SwarmCli, SwarmService, SwarmSettings, Task, UpdateState};

use async_trait::async_trait;

use crate::domain::{ServiceDefinition, ServiceName};
use crate::error::Error;

/// Label naming the connector instance that owns a container.
pub const LABEL_INSTANCE: &str = "docker-connector.instance";
/// Label naming the service a container belongs to.
pub const LABEL_SERVICE: &str = "docker-connector.service";
/// Label holding `ServiceDefinition::config_hash` of the definition a
/// container was started from.
pub const LABEL_CONFIG_HASH: &str = "docker-connector.config-hash";

/// Label Swarm puts on its tasks' containers. The containers backend leaves
/// such containers to Swarm even when they carry its labels (a swarm
/// backend of the same instance labels its tasks alike).
pub(crate) const LABEL_SWARM_SERVICE_ID: &str = "com.docker.swarm.service.id";

/// Label on containers started with the restart policy `unless-stopped`:
/// docker's events carry labels but not the policy, and whether a container
/// that died will be restarted depends on it.
pub(crate) const LABEL_RESTART_POLICY: &str = "docker-connector.restart-policy";

/// One argv element.
fn arg(s: &str) -> String {
    s.to_owned()
}

/// What a start attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum StartOutcome {
    /// The container runs; its full id.
    Started(String),
    /// Another container already has the name; nothing was created.
    NameTaken,
}

/// Changes to this instance's containers, in the order the engine made them.
#[async_trait]
pub(crate) trait EventStream: Send {
    /// The next change. Once the stream has ended, why it ended, on this
    /// call and every later one.
    ///
    /// Safe to cancel (in `select!`): no event is lost by dropping the future.
    async fn next(&mut self) -> Result<ContainerEvent, String>;
}

/// The operations the connector needs from a container engine.
#[async_trait]
pub(crate) trait Engine: Send + Sync {
    /// Every container of `service` owned by this instance, in any state.
    ///
    /// # Errors
    /// The docker failure, as [`Error`].
    async fn list(&self, service: &ServiceName) -> Result<Vec<Container>, Error>;

    /// Every container owned by this instance, of any service, in any state.
    ///
    /// # Errors
    /// The docker failure, as [`Error`].
    async fn list_all(&self) -> Result<Vec<Container>, Error>;

    /// Follows the changes to this instance's containers from `since` on
    /// (events the engine still holds from before now are replayed first),
    /// until the returned stream is dropped.
    ///
    /// # Errors
    /// The docker failure, as [`Error`], when the stream cannot be started.
    async fn watch(&self, since: EventTime) -> Result<Box<dyn EventStream>, Error>;

    /// Starts one container of `definition` named `name`.
    ///
    /// # Errors
    /// The docker failure, as [`Error`], other than a name clash.
    async fn start(
        &self,
        definition: &ServiceDefinition,
        name: &str,
    ) -> Result<StartOutcome, Error>;

    /// The host ports each of these containers publishes, by id; a container
    /// that is gone is left out.
    ///
    /// # Errors
    /// The docker failure, as [`Error`].
    async fn published_ports(
        &self,
        ids: &[String],
    ) -> Result<std::collections::HashMap<String, PublishedPorts>, Error>;

    /// Removes the containers with these ids, whatever their state.
    ///
    /// # Errors
    /// The docker failure, as [`Error`].
    async fn remove(&self, ids: &[String]) -> Result<(), Error>;

    /// The engine's version, which also proves it answers.
    ///
    /// # Errors
    /// The docker failure, as [`Error`].
    async fn server_version(&self) -> Result<String, Error>;
}
