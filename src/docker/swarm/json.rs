//! What `docker service inspect`, `docker inspect` of a task and `docker
//! info` print, and the [`SwarmService`] and [`Task`] read from it: the
//! one place that knows docker's JSON field names for Swarm.

use std::collections::{BTreeSet, HashMap};

use serde::Deserialize;

use crate::docker::cli::utc_timestamp;
use crate::docker::{PublishedPorts, LABEL_CONFIG_HASH};
use crate::error::Error;

/// A Swarm service of this connector, as `docker service inspect` reports
/// the parts it reads.
#[derive(Debug, Clone, PartialEq)]
pub struct SwarmService {
    pub name: String,
    /// The config hash of the definition in its spec.
    pub config_hash: String,
    pub replicas: u32,
    /// Keys of the environment in its spec.
    pub(super) env_keys: BTreeSet<String>,
    /// Its published ports as `--publish-rm` names them: `mode=...,target=...,protocol=...`.
    pub(super) ports: BTreeSet<String>,
    /// What its spec sets of the workload keys, for an update to reset
    /// what the new definition lacks.
    pub(super) workload: SpecWorkload,
    /// Swarm's `UpdateStatus.State`, if it was ever updated.
    pub update_state: Option<UpdateState>,
    pub update_message: Option<String>,
    /// Ports published through the routing mesh, on every node: the
    /// service's, not a task's.
    pub mesh_ports: PublishedPorts,
}

impl SwarmService {
    /// Whether Swarm gave up the last update: it rolled back, or paused.
    pub fn update_failed(&self) -> bool {
        matches!(
            self.update_state,
            Some(
                UpdateState::Paused
                    | UpdateState::RollbackStarted
                    | UpdateState::RollbackPaused
                    | UpdateState::RollbackCompleted
            )
        )
    }

    /// Whether an update is under way.
    pub fn updating(&self) -> bool {
        self.update_state == Some(UpdateState::Updating)
    }

    /// Whether Swarm is rolling tasks: an update, or its rollback. Any
    /// other update meanwhile (a scale too) would become the spec a
    /// failure rolls back to, and drop the rollback Swarm was watching for.
    pub fn rolling(&self) -> bool {
        matches!(
            self.update_state,
            Some(UpdateState::Updating | UpdateState::RollbackStarted)
        )
    }
}

/// The parts of a service's task spec that come from a definition's
/// workload keys, as far as an update needs to know what to remove.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SpecWorkload {
    /// Whether the spec has a health check of its own (a probe, or
    /// `NONE` for one turned off); one with every field unset inherits the
    /// image's, as if there were none.
    pub(super) healthcheck: bool,
    /// Which limits are set (not zero).
    pub(super) memory_limit: bool,
    pub(super) cpu_limit: bool,
    pub(super) pids_limit: bool,
    /// Ids of the networks it joins: the spec holds ids, not names.
    pub(super) network_ids: BTreeSet<String>,
    /// Targets of its mounts, as `--mount-rm` names them.
    pub(super) mount_targets: BTreeSet<String>,
    /// Keys of its container labels, the connector's own included.
    pub(super) label_keys: BTreeSet<String>,
}

/// Swarm's `UpdateStatus.State` of a service: how its last update went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UpdateState {
    Updating,
    Paused,
    Completed,
    RollbackStarted,
    RollbackPaused,
    RollbackCompleted,
    /// A state this connector does not know (a newer engine's).
    #[serde(other)]
    Unknown,
}

/// One task of a service, as `docker service ps` and `docker inspect` report it.
#[derive(Debug, Clone, PartialEq)]
pub struct Task {
    pub id: String,
    /// `<service>.<slot>`, as `docker service ps` shows it.
    pub name: String,
    pub slot: u64,
    /// The node it runs on; `None` until Swarm has placed it.
    pub node: Option<String>,
    /// What Swarm wants of it: `running`, `ready`, `shutdown`, `remove`...
    pub desired_state: TaskState,
    /// What it is: `new`, `pending`, `preparing`, `starting`, `running`,
    /// `complete`, `failed`, `rejected`, `shutdown`...
    pub state: TaskState,
    /// Seconds since the Unix epoch.
    pub created: i64,
    /// When it reached `state`, seconds since the Unix epoch.
    pub since: i64,
    pub config_hash: String,
    /// Why it failed or was rejected.
    pub error: Option<String>,
    /// Its container's exit code, once it exited.
    pub exit_code: Option<i64>,
    pub ports: PublishedPorts,
}

impl Task {
    pub fn is_running(&self) -> bool {
        self.state == TaskState::Running
    }

    /// Whether Swarm still wants it (it is not history: shut down, failed
    /// and replaced, or being removed).
    pub fn is_live(&self) -> bool {
        !matches!(self.desired_state, TaskState::Shutdown | TaskState::Remove)
    }

    /// Whether it ended in a failure: its process failed, or the node
    /// could not run it (a missing image, say).
    pub fn failed(&self) -> bool {
        matches!(self.state, TaskState::Failed | TaskState::Rejected)
    }

    /// Whether it ended by itself, so that Swarm replaced it: it failed,
    /// or its process exited 0. (A task Swarm shut down for an update or
    /// a scale did not.)
    pub fn ended_by_itself(&self) -> bool {
        self.failed() || self.state == TaskState::Complete
    }
}

/// A Swarm task's state (`Status.State`), or the state Swarm wants it in
/// (`DesiredState`), as Swarm's task life cycle names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskState {
    New,
    Allocated,
    Pending,
    Assigned,
    Accepted,
    Preparing,
    Ready,
    Starting,
    Running,
    Complete,
    Shutdown,
    Failed,
    Rejected,
    Remove,
    Orphaned,
    /// A state this connector does not know (a newer engine's).
    #[serde(other)]
    Unknown,
}

impl TaskState {
    /// Swarm's own name of the state, as status reports it.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskState::New => "new",
            TaskState::Allocated => "allocated",
            TaskState::Pending => "pending",
            TaskState::Assigned => "assigned",
            TaskState::Accepted => "accepted",
            TaskState::Preparing => "preparing",
            TaskState::Ready => "ready",
            TaskState::Starting => "starting",
            TaskState::Running => "running",
            TaskState::Complete => "complete",
            TaskState::Shutdown => "shutdown",
            TaskState::Failed => "failed",
            TaskState::Rejected => "rejected",
            TaskState::Remove => "remove",
            TaskState::Orphaned => "orphaned",
            TaskState::Unknown => "unknown",
        }
    }
}

#[cfg(test)]
impl SwarmService {
    /// A service read from `docker service inspect` output, for the tests
    /// of the code that reads services.
    pub fn parse_for_tests(text: &str) -> Self {
        parse_service(text).expect("a valid service").service
    }
}

/// `docker info`'s `.Swarm`, the parts read.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct SwarmInfo {
    pub(super) local_node_state: String,
    #[serde(default)]
    pub(super) control_available: bool,
}

/// One network as `docker network ls --format '{{json .}}'` lists it.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub(super) struct ListedNetwork {
    #[serde(rename = "ID")]
    pub(super) id: String,
    pub(super) name: String,
    pub(super) driver: String,
    /// `swarm` for the networks Swarm manages (overlay), `local` for one
    /// engine's own (bridge, host, macvlan...).
    pub(super) scope: String,
}

/// Reads the lines of `docker network ls --no-trunc --format '{{json .}}'`.
pub(super) fn parse_networks(text: &str) -> Result<Vec<ListedNetwork>, Error> {
    text.lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            serde_json::from_str(line).map_err(|e| {
                Error::DockerFailed(format!("unexpected `docker network ls` line {line:?}: {e}"))
            })
        })
        .collect()
}

/// A service as inspect reports it, with its labels for the ownership check.
pub(super) struct InspectedService {
    pub(super) labels: HashMap<String, String>,
    pub(super) service: SwarmService,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ServiceJson {
    spec: ServiceSpecJson,
    update_status: Option<UpdateStatusJson>,
    endpoint: Option<EndpointSpecJson>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ServiceSpecJson {
    name: String,
    #[serde(default)]
    labels: HashMap<String, String>,
    task_template: TaskTemplateJson,
    mode: ModeJson,
    endpoint_spec: Option<EndpointSpecJson>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TaskTemplateJson {
    container_spec: Option<ContainerSpecJson>,
    resources: Option<ResourcesJson>,
    networks: Option<Vec<NetworkAttachmentJson>>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct ContainerSpecJson {
    env: Option<Vec<String>>,
    labels: Option<HashMap<String, String>>,
    healthcheck: Option<HealthcheckJson>,
    mounts: Option<Vec<MountJson>>,
}

/// Docker's `HealthConfig`; durations in nanoseconds, zero for "the image's".
#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct HealthcheckJson {
    test: Option<Vec<String>>,
    interval: Option<u64>,
    timeout: Option<u64>,
    start_period: Option<u64>,
    retries: Option<u64>,
}

impl HealthcheckJson {
    /// Whether any field is set: an empty one inherits the image's check.
    fn sets_anything(&self) -> bool {
        self.test.as_ref().is_some_and(|test| !test.is_empty())
            || [self.interval, self.timeout, self.start_period, self.retries]
                .into_iter()
                .any(|value| value.unwrap_or(0) != 0)
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct MountJson {
    target: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ResourcesJson {
    limits: Option<LimitsJson>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct LimitsJson {
    #[serde(rename = "NanoCPUs")]
    nano_cpus: Option<i64>,
    memory_bytes: Option<i64>,
    pids: Option<i64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct NetworkAttachmentJson {
    target: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ModeJson {
    replicated: Option<ReplicatedJson>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ReplicatedJson {
    replicas: Option<u32>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct EndpointSpecJson {
    ports: Option<Vec<PortJson>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PortJson {
    protocol: Option<String>,
    target_port: u16,
    published_port: Option<u16>,
    publish_mode: Option<String>,
}

impl PortJson {
    fn protocol(&self) -> &str {
        self.protocol.as_deref().unwrap_or("tcp")
    }

    /// `8080/tcp` and the port it is published on, if it is.
    fn published(&self) -> Option<(String, u16)> {
        let published = self.published_port?;
        Some((
            format!("{}/{}", self.target_port, self.protocol()),
            published,
        ))
    }

    /// The port as `--publish-rm` names it.
    fn publish_spec(&self) -> String {
        format!(
            "mode={},target={},protocol={}",
            self.publish_mode.as_deref().unwrap_or("ingress"),
            self.target_port,
            self.protocol()
        )
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct UpdateStatusJson {
    state: Option<UpdateState>,
    message: Option<String>,
}

pub(super) fn parse_service(text: &str) -> Result<InspectedService, Error> {
    let json: ServiceJson = serde_json::from_str(text).map_err(|e| {
        Error::DockerFailed(format!("unexpected `docker service inspect` output: {e}"))
    })?;
    let template = json.spec.task_template;
    let container = template.container_spec.unwrap_or_default();
    let limits = template.resources.and_then(|r| r.limits);
    let limit_set = |pick: fn(&LimitsJson) -> Option<i64>| {
        limits
            .as_ref()
            .and_then(pick)
            .is_some_and(|value| value != 0)
    };
    let workload = SpecWorkload {
        healthcheck: container
            .healthcheck
            .as_ref()
            .is_some_and(HealthcheckJson::sets_anything),
        memory_limit: limit_set(|l| l.memory_bytes),
        cpu_limit: limit_set(|l| l.nano_cpus),
        pids_limit: limit_set(|l| l.pids),
        network_ids: template
            .networks
            .unwrap_or_default()
            .into_iter()
            .map(|network| network.target)
            .collect(),
        mount_targets: container
            .mounts
            .unwrap_or_default()
            .into_iter()
            .map(|mount| mount.target)
            .collect(),
        label_keys: container.labels.unwrap_or_default().into_keys().collect(),
    };
    let env_keys = container
        .env
        .unwrap_or_default()
        .iter()
        .map(|entry| {
            entry
                .split_once('=')
                .map_or(entry.as_str(), |(k, _)| k)
                .to_owned()
        })
        .collect();
    let ports = json
        .spec
        .endpoint_spec
        .and_then(|spec| spec.ports)
        .unwrap_or_default()
        .iter()
        .map(PortJson::publish_spec)
        .collect();
    let (update_state, update_message) = json
        .update_status
        .map_or((None, None), |status| (status.state, status.message));
    Ok(InspectedService {
        service: SwarmService {
            name: json.spec.name,
            config_hash: json
                .spec
                .labels
                .get(LABEL_CONFIG_HASH)
                .cloned()
                .unwrap_or_default(),
            replicas: json
                .spec
                .mode
                .replicated
                .and_then(|r| r.replicas)
                .unwrap_or(0),
            env_keys,
            ports,
            workload,
            update_state,
            update_message,
            mesh_ports: first_published(
                json.endpoint
                    .and_then(|endpoint| endpoint.ports)
                    .unwrap_or_default()
                    .iter()
                    .filter(|port| port.publish_mode.as_deref().unwrap_or("ingress") == "ingress"),
            ),
        },
        labels: json.spec.labels,
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TaskJson {
    #[serde(rename = "ID")]
    id: String,
    slot: Option<u64>,
    desired_state: TaskState,
    created_at: String,
    spec: TaskTemplateJson,
    status: TaskStatusJson,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TaskStatusJson {
    timestamp: Option<String>,
    state: TaskState,
    err: Option<String>,
    container_status: Option<ContainerStatusJson>,
    port_status: Option<PortStatusJson>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ContainerStatusJson {
    exit_code: Option<i64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PortStatusJson {
    ports: Option<Vec<PortJson>>,
}

/// The published port of each target in `ports`, the first where one target
/// has several. A task's `PortStatus` lists its container's bindings in
/// order, IPv4 (`0.0.0.0`) before IPv6 (`::`), without their addresses; and
/// docker 20.10 does not always give both the same host port: when the
/// IPv4 port it picked is taken by another process, it moves IPv4 on and
/// leaves IPv6 where it was (seen here with the IPv4 port held by another
/// program). Clients reach a task over IPv4, as on 127.0.0.1.
fn first_published<'a>(ports: impl Iterator<Item = &'a PortJson>) -> PublishedPorts {
    let mut published = PublishedPorts::new();
    for (port, host_port) in ports.filter_map(PortJson::published) {
        published.entry(port).or_insert(host_port);
    }
    published
}

/// Reads one task of `service` from `docker inspect`; `nodes` names the
/// node each task id runs on.
pub(super) fn parse_task(
    line: &str,
    service: &str,
    nodes: &HashMap<String, String>,
) -> Result<Task, Error> {
    // Not the line itself: it holds the task's environment, values and all.
    let unexpected = |e: String| {
        Error::DockerFailed(format!(
            "unexpected `docker inspect` output for a task of {service}: {e}"
        ))
    };
    let json: TaskJson = serde_json::from_str(line).map_err(|e| unexpected(e.to_string()))?;
    let created = utc_timestamp(&json.created_at)
        .ok_or_else(|| unexpected(format!("creation time {:?}", json.created_at)))?;
    let since = json
        .status
        .timestamp
        .as_deref()
        .and_then(utc_timestamp)
        .unwrap_or(created);
    let slot = json.slot.unwrap_or(0);
    let labels = json
        .spec
        .container_spec
        .and_then(|spec| spec.labels)
        .unwrap_or_default();
    let ports = first_published(
        json.status
            .port_status
            .and_then(|status| status.ports)
            .unwrap_or_default()
            .iter(),
    );
    // A task shut down by Swarm was killed on purpose; its code says nothing.
    let exited = matches!(json.status.state, TaskState::Failed | TaskState::Complete);
    Ok(Task {
        name: format!("{service}.{slot}"),
        node: nodes.get(&json.id).filter(|node| !node.is_empty()).cloned(),
        id: json.id,
        slot,
        desired_state: json.desired_state,
        state: json.status.state,
        created,
        since,
        config_hash: labels.get(LABEL_CONFIG_HASH).cloned().unwrap_or_default(),
        error: json.status.err.filter(|e| !e.is_empty()),
        exit_code: json
            .status
            .container_status
            .and_then(|c| c.exit_code)
            .filter(|_| exited),
        ports,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::docker::LABEL_INSTANCE;
    use serde_json::json;

    #[test]
    fn reads_a_service_and_its_update_status() {
        let text = json!({"ID": "x", "Spec": {"Name": "prod-web",
            "Labels": {"docker-connector.instance": "prod", "docker-connector.service": "web",
                       "docker-connector.config-hash": "abc"},
            "TaskTemplate": {"ContainerSpec": {"Image": "img:1", "Env": ["A=1", "B=x=y"]}},
            "Mode": {"Replicated": {"Replicas": 3}},
            "EndpointSpec": {"Mode": "vip", "Ports": [{"Protocol": "tcp", "TargetPort": 8080, "PublishMode": "host"}]}},
            "Endpoint": {"Ports": [{"Protocol": "tcp", "TargetPort": 8080, "PublishMode": "host"},
                                   {"Protocol": "udp", "TargetPort": 53, "PublishedPort": 30001, "PublishMode": "ingress"}]},
            "UpdateStatus": {"State": "rollback_completed", "Message": "rollback completed"}})
        .to_string();
        let inspected = parse_service(&text).unwrap();
        let service = inspected.service;
        assert_eq!(inspected.labels[LABEL_INSTANCE], "prod");
        assert_eq!(service.config_hash, "abc");
        assert_eq!(service.replicas, 3);
        assert_eq!(service.env_keys, ["A", "B"].map(String::from).into());
        assert_eq!(
            service.ports,
            ["mode=host,target=8080,protocol=tcp".to_owned()].into()
        );
        assert!(service.update_failed() && !service.updating());
        assert_eq!(
            service.mesh_ports,
            PublishedPorts::from([("53/udp".into(), 30001)])
        );
        let fresh = json!({"Spec": {"Name": "n", "TaskTemplate": {"ContainerSpec": {}},
            "Mode": {"Replicated": {}}}})
        .to_string();
        let fresh = parse_service(&fresh).unwrap().service;
        assert_eq!((fresh.replicas, fresh.update_failed()), (0, false));
    }

    #[test]
    fn reads_a_task_with_its_node_ports_and_exit_code() {
        let line = json!({"ID": "t1", "Slot": 2, "NodeID": "n1", "DesiredState": "shutdown",
            "CreatedAt": "2026-11-28T14:49:45.187203406Z",
            "Spec": {"ContainerSpec": {"Labels": {"docker-connector.config-hash": "abc"}}},
            "Status": {"Timestamp": "2026-11-28T14:49:53.376011204Z", "State": "failed",
                       "Err": "task: non-zero exit (2)",
                       "ContainerStatus": {"ContainerID": "c", "ExitCode": 2},
                       "PortStatus": {"Ports": [{"Protocol": "tcp", "TargetPort": 8080,
                                      "PublishedPort": 32768, "PublishMode": "host"},
                                     {"Protocol": "tcp", "TargetPort": 8080,
                                      "PublishedPort": 32766, "PublishMode": "host"}]}}})
        .to_string();
        let nodes = HashMap::from([("t1".to_owned(), "vm".to_owned())]);
        let task = parse_task(&line, "prod-web", &nodes).unwrap();
        assert_eq!(task.name, "prod-web.2");
        assert_eq!(task.node.as_deref(), Some("vm"));
        assert_eq!(task.created, 1_795_877_385);
        assert_eq!(task.since, 1_795_877_393);
        assert_eq!(task.config_hash, "abc");
        assert_eq!(task.exit_code, Some(2));
        assert_eq!(task.error.as_deref(), Some("task: non-zero exit (2)"));
        // The IPv4 binding, not the IPv6 one docker put on another port.
        assert_eq!(
            task.ports,
            PublishedPorts::from([("8080/tcp".into(), 32768)])
        );
        assert!(task.failed() && !task.is_live() && !task.is_running());

        let running = json!({"ID": "t2", "DesiredState": "running",
            "CreatedAt": "2026-11-28T14:49:45Z", "Spec": {},
            "Status": {"State": "running", "Err": "", "ContainerStatus": {"ExitCode": 0}}})
        .to_string();
        let task = parse_task(&running, "prod-web", &nodes).unwrap();
        assert_eq!(
            (task.exit_code, task.error.as_deref(), task.node.as_deref()),
            (None, None, None)
        );
        assert!(task.is_live() && task.is_running());
    }

    #[test]
    fn reads_which_workload_keys_a_spec_sets() {
        let spec = |template: serde_json::Value| {
            parse_service(
                &json!({"Spec": {"Name": "n", "TaskTemplate": template, "Mode": {"Replicated": {}}}})
                    .to_string(),
            )
            .unwrap()
            .service
            .workload
        };
        let set = spec(json!({
            "ContainerSpec": {"Healthcheck": {"Test": ["NONE"]},
                              "Labels": {"a": "1", "docker-connector.instance": "prod"},
                              "Mounts": [{"Type": "volume", "Source": "v", "Target": "/v"}]},
            "Resources": {"Limits": {"MemoryBytes": 6_291_456, "NanoCPUs": 0, "Pids": 9}},
            "Networks": [{"Target": "nid", "Aliases": ["x"]}]}));
        assert_eq!(
            set,
            SpecWorkload {
                healthcheck: true,
                memory_limit: true,
                cpu_limit: false,
                pids_limit: true,
                network_ids: ["nid".to_owned()].into(),
                mount_targets: ["/v".to_owned()].into(),
                label_keys: ["a", "docker-connector.instance"].map(String::from).into(),
            }
        );
        // What `--health-cmd= --health-interval=0s ...` and `--limit-memory=0`
        // leave behind reads as nothing set.
        let reset = spec(json!({"ContainerSpec": {"Healthcheck": {"Interval": 0}},
            "Resources": {"Limits": {}}}));
        assert_eq!(reset, SpecWorkload::default());
        assert_eq!(spec(json!({})), SpecWorkload::default());
    }
}
