//! Everything that knows the docker CLI, one file per job; this file only
//! names them and what the rest of the connector may use.
//!
//! - `runner`: the process runner, the only code that spawns processes;
//!   `deadline`: the docker time one request's calls share.
//! - `labels`: the ownership labels.
//! - `container`: one container and its state; `events`: docker's events.
//! - `engine`: what the containers backend needs of an engine (list,
//!   start, remove, follow changes); `cli`: that engine over the docker CLI.
//! - `networks`: whether the networks a definition names exist.
//! - `swarm`: Swarm services for the swarm backend (arguments; docker's
//!   JSON in `swarm::json`; every service's tasks at once in `swarm::tasks`).

mod cli;
mod container;
pub(crate) mod deadline;
mod engine;
mod events;
mod labels;
mod networks;
mod runner;
mod swarm;

pub(crate) use cli::DockerCli;
pub(crate) use container::{Container, ContainerState, Health, PublishedPorts};
pub(crate) use engine::{Engine, EventStream, StartOutcome};
pub(crate) use events::{ContainerEvent, EventTime, Transition};
pub use labels::{LABEL_CONFIG_HASH, LABEL_INSTANCE, LABEL_SERVICE};
pub(crate) use labels::{LABEL_HEALTH_CHECK, LABEL_RESTART_POLICY, LABEL_SWARM_SERVICE_ID};
pub(crate) use networks::NetworkCheck;
pub(crate) use runner::{DockerRunner, OutputStream};
pub use swarm::swarm_service_name;
pub(crate) use swarm::{
    ListedTask, Lookup, SwarmCli, SwarmService, SwarmSettings, Task, TaskState, UpdateState,
};
