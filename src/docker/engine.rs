//! What the containers backend needs from a container engine: list,
//! start and remove one service's containers, and follow their changes.
//! `DockerCli` implements it over the docker CLI; tests fake it.

use std::time::Duration;

use async_trait::async_trait;

use super::{Container, ContainerEvent, EventTime, PublishedPorts};
use crate::domain::{ServiceDefinition, ServiceName};
use crate::error::Error;

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

    /// Stops the running containers with these ids gracefully and waits
    /// until they have exited: each gets its stop signal (SIGTERM unless its
    /// image says otherwise), then SIGKILL once the grace period it was
    /// started with has passed. `longest_grace` is the longest of those
    /// grace periods, so the wait is not mistaken for a hung engine. A
    /// container that is gone already is no failure.
    ///
    /// # Errors
    /// The docker failure, as [`Error`].
    async fn stop(&self, ids: &[String], longest_grace: Duration) -> Result<(), Error>;

    /// Removes the containers with these ids, whatever their state; one
    /// that still runs is killed (see [`Engine::stop`] for a graceful end).
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
