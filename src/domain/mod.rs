//! Validated domain types: each can only be built from input that passed its
//! rules, so the rest of the connector can put them straight into labels,
//! container names and docker argv.

mod command;
mod definition;
mod environment;
mod image_ref;
mod json_type;
mod port_spec;
mod replica_count;
mod scale_request;
mod service_name;

pub(crate) use command::Command;
pub(crate) use definition::ServiceDefinition;
pub(crate) use environment::Environment;
pub(crate) use image_ref::ImageRef;
pub(crate) use port_spec::{PortSpec, Ports};
pub(crate) use replica_count::ReplicaCount;
pub(crate) use scale_request::ScaleRequest;
pub use service_name::ServiceName;
