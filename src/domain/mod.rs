//! Validated domain types: each can only be built from input that passed its
//! rules, so the rest of the connector can put them straight into labels,
//! container names and docker argv.

mod command;
mod definition;
mod duration;
mod environment;
mod healthcheck;
mod image_ref;
mod json_type;
mod mounts;
mod networks;
mod port_spec;
mod precondition;
mod replica_count;
mod resources;
mod scale_request;
mod scaling;
mod service_name;
mod status_wait;
mod user_labels;

pub(crate) use command::Command;
pub(crate) use definition::ServiceDefinition;
pub(crate) use duration::go_duration;
pub(crate) use environment::Environment;
pub(crate) use healthcheck::HealthProbe;
pub(crate) use image_ref::ImageRef;
pub use mounts::BindPolicy;
pub(crate) use port_spec::{PortSpec, Ports};
pub(crate) use precondition::{entity_tag, Precondition};
pub(crate) use replica_count::ReplicaCount;
pub(crate) use scale_request::{HealthWait, ScaleRequest};
pub(crate) use scaling::ScalingBounds;
pub use service_name::ServiceName;
pub(crate) use status_wait::StatusWait;
