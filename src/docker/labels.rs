//! The labels by which the connector owns its containers and Swarm
//! services, and the ones of docker's it reads.

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

/// Label on containers whose definition gives a health check (value
/// `true`): a `start` event carries labels but not the health check, and
/// such a container's health is `starting` until docker says otherwise.
pub(crate) const LABEL_HEALTH_CHECK: &str = "docker-connector.health-check";
