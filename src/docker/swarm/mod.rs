//! Swarm services through the docker CLI: `docker service create`, `update`,
//! `ps`, `inspect` and `rm`, and which flags to pass; what they print is
//! read in `json`; the tasks of all services at once, for the task
//! watcher, in `tasks`. Swarm starts, heals and rolls the containers
//! itself; the connector only hands it the service's spec and replica count.

mod json;
mod tasks;

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::runner::arg;
use super::{DockerRunner, LABEL_CONFIG_HASH, LABEL_INSTANCE, LABEL_SERVICE};
use crate::config::SwarmPublishMode;
use crate::domain::{go_duration, BindPolicy, ServiceDefinition, ServiceName};
use crate::error::Error;
use json::{parse_networks, parse_service, parse_task, ListedNetwork, SpecWorkload, SwarmInfo};
pub(crate) use json::{SwarmService, Task, TaskState, UpdateState};
pub(crate) use tasks::ListedTask;
use tasks::{read_listing, TaskId};

/// Swarm updates a service only at the version the update was read at,
/// and Swarm itself bumps the version while it rolls (its update status):
/// `docker service update`, which reads and writes in one call, then fails
/// with "update out of sequence" though nobody else changed the spec. The
/// same update is tried again, this many times in all, after these pauses
/// doubling.
const OUT_OF_SEQUENCE_ATTEMPTS: u32 = 4;
const OUT_OF_SEQUENCE_PAUSE: Duration = Duration::from_millis(100);
/// Longest name Swarm accepts for a service (a DNS label).
const MAX_SERVICE_NAME: usize = 63;

/// The connector's own label namespace: an update never removes a
/// container label under it, whatever the definition lacks.
const CONNECTOR_LABELS: &str = "docker-connector.";

/// How the connector's Swarm services are created and updated.
#[derive(Debug, Clone, Copy)]
pub struct SwarmSettings {
    pub publish_mode: SwarmPublishMode,
    /// Whether to ask a registry for the image's digest (`--no-resolve-image`
    /// when not).
    pub resolve_image: bool,
    /// How many tasks an update replaces at once.
    pub parallelism: usize,
    /// How long a new task must keep running before the update goes on
    /// (`--update-monitor`); one that fails sooner rolls the update back.
    pub monitor: Duration,
}

/// What Swarm has under a service's name.
#[derive(Debug)]
pub enum Lookup {
    Missing,
    /// A service with this connector's labels for the service (boxed: it
    /// is large beside the other variants).
    Ours(Box<SwarmService>),
    /// A service of that name that is not this connector's: never touched.
    NotOurs(String),
}

/// The Swarm service name of `service` of `instance`:
/// `<instance>-<service>-<hash>`, the hash (8 hex digits) of both names.
/// Both may contain `-`, so without it instance `a` with service `b-c` and
/// instance `a-b` with service `c` would share a name. Characters Swarm does
/// not accept in a name (a DNS label: letters, digits, `-` and `_` inside,
/// at most 63 characters) become `-`, and a long name is cut short before
/// the hash. The connector finds its services by this name and checks their
/// labels.
pub fn swarm_service_name(instance: &str, service: &ServiceName) -> String {
    let digest = Sha256::digest(format!("{instance}\n{service}"));
    let suffix: String = digest[..4].iter().map(|b| format!("{b:02x}")).collect();
    let mut readable: String = format!("{instance}-{service}")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '-'
            }
        })
        .take(MAX_SERVICE_NAME - suffix.len() - 1)
        .collect();
    while readable.ends_with(['-', '_']) {
        readable.pop();
    }
    let name = format!("{readable}-{suffix}");
    debug_assert!(is_swarm_name(&name), "{name}");
    name
}

/// Swarm's rule for a service name.
fn is_swarm_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    let inner_ok = |b: &u8| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_';
    name.len() <= MAX_SERVICE_NAME
        && bytes.first().is_some_and(u8::is_ascii_alphanumeric)
        && bytes.last().is_some_and(u8::is_ascii_alphanumeric)
        && bytes.iter().all(inner_ok)
}

/// A network of a definition, found among the engine's: Swarm's spec
/// holds the id.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Attachment {
    name: String,
    id: String,
}

/// Finds each of `names` among `listed` (what `docker network ls` lists),
/// in the definition's order.
///
/// # Errors
/// [`Error::DockerFailed`] naming the first network that is missing, or
/// that is one engine's own: docker says "network NAME not found" of an
/// existing local bridge network, which would send the user looking for
/// the wrong fault.
fn resolve_networks(names: &[String], listed: &[ListedNetwork]) -> Result<Vec<Attachment>, Error> {
    names
        .iter()
        .map(|name| {
            let mut same_name = listed.iter().filter(|network| &network.name == name);
            if let Some(network) = same_name.clone().find(|network| network.scope == "swarm") {
                return Ok(Attachment {
                    name: name.clone(),
                    id: network.id.clone(),
                });
            }
            let why = match same_name.next() {
                Some(_) if name == "bridge" => "network \"bridge\" is each engine's own default \
                    network, which a Swarm task is on already when a definition names no network; \
                    for tasks to reach one another across nodes, create an overlay network \
                    (`docker network create --driver overlay NAME`) and name that"
                    .to_owned(),
                Some(local) => format!(
                    "network {name:?} is a {} network of this engine alone ({} scope), which a \
                     Swarm service cannot join; on Swarm, networks must be swarm-scoped: create \
                     an overlay network (`docker network create --driver overlay NAME`) and \
                     name that",
                    local.driver, local.scope
                ),
                None => format!(
                    "there is no network {name:?}; on Swarm, networks must be swarm-scoped: \
                     create it with `docker network create --driver overlay {name}`"
                ),
            };
            Err(Error::DockerFailed(format!("networks: {why}")))
        })
        .collect()
}

/// The health check flags of an update: the definition's, with the fields
/// it leaves out set back to zero ("the image's"), since an update keeps
/// whatever flag it is not given. Without a check in the definition, a
/// check in the spec is cleared the same way: an empty check inherits the
/// image's `HEALTHCHECK`. A check turned off needs `--no-healthcheck` alone:
/// it replaces the whole check, and docker refuses it beside the others.
fn health_update_args(definition: &ServiceDefinition, current: &SpecWorkload) -> Vec<String> {
    let (mut args, probe) = match definition.healthcheck() {
        Some(check) => match definition.health_probe() {
            Some(probe) => (check.docker_args(), Some(probe)),
            None => return check.docker_args(),
        },
        None if current.healthcheck => (vec![arg("--health-cmd=")], None),
        None => return Vec::new(),
    };
    for (flag, given) in [
        ("--health-interval=0s", probe.and_then(|p| p.interval)),
        ("--health-timeout=0s", probe.and_then(|p| p.timeout)),
        (
            "--health-start-period=0s",
            probe.and_then(|p| p.start_period),
        ),
    ] {
        if given.is_none() {
            args.push(arg(flag));
        }
    }
    if probe.and_then(|p| p.retries).is_none() {
        args.push(arg("--health-retries=0"));
    }
    args
}

/// Quotes `argv` for `docker service update --args`, which splits its one
/// value like a shell (without running one): each argument in single
/// quotes, a single quote inside as `'\''`. `docker service create` takes
/// the command as separate arguments and needs none of this.
fn quote_args(argv: &[String]) -> String {
    argv.iter()
        .map(|arg| format!("'{}'", arg.replace('\'', r"'\''")))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A definition about to be handed to Swarm, its networks looked up.
struct Handover<'a> {
    definition: &'a ServiceDefinition,
    networks: Vec<Attachment>,
}

/// `--stop-grace-period`: always given, the definition's or the default,
/// so an update also brings back a grace changed by hand.
fn stop_grace_arg(definition: &ServiceDefinition) -> String {
    format!(
        "--stop-grace-period={}",
        go_duration(definition.stop_grace_period())
    )
}

/// The update flags of the workload keys: each set as the definition says,
/// and what `current` has that the definition lacks removed or reset. An
/// update keeps whatever it is not told to change, and of an item both
/// removed and added it applies the removal last (docker's CLI does labels
/// and mounts so), so only what the definition lacks is removed.
fn workload_update_args(current: &SpecWorkload, handover: &Handover) -> Vec<String> {
    let definition = handover.definition;
    let mut args = health_update_args(definition, current);
    args.push(stop_grace_arg(definition));
    let limits = definition.resources();
    let memory = limits.and_then(|l| l.memory);
    let cpus = limits.and_then(|l| l.cpus.clone());
    let pids = limits.and_then(|l| l.pids);
    // Zero is docker's "no limit".
    for (flag, value, is_set) in [
        (
            "memory",
            memory.map(|m| m.to_string()),
            current.memory_limit,
        ),
        ("cpu", cpus, current.cpu_limit),
        ("pids", pids.map(|p| p.to_string()), current.pids_limit),
    ] {
        match value {
            Some(value) => args.push(format!("--limit-{flag}={value}")),
            None if is_set => args.push(format!("--limit-{flag}=0")),
            None => {}
        }
    }
    let new_ids: BTreeSet<&str> = handover.networks.iter().map(|n| n.id.as_str()).collect();
    for gone in current
        .network_ids
        .iter()
        .filter(|id| !new_ids.contains(id.as_str()))
    {
        args.push(format!("--network-rm={gone}"));
    }
    // Adding a network the service is on already is an error to docker.
    for added in handover
        .networks
        .iter()
        .filter(|n| !current.network_ids.contains(&n.id))
    {
        args.push(format!("--network-add={}", added.name));
    }
    let new_targets: BTreeSet<&str> = definition
        .volumes()
        .iter()
        .map(|mount| mount.target.as_str())
        .collect();
    for gone in current
        .mount_targets
        .iter()
        .filter(|target| !new_targets.contains(target.as_str()))
    {
        args.push(format!("--mount-rm={gone}"));
    }
    // A mount added on a target the spec has replaces that one.
    for mount in definition.volumes() {
        args.push(format!("--mount-add={}", mount.mount_arg()));
    }
    let new_keys: BTreeSet<&str> = definition.labels().map(|(key, _)| key).collect();
    for gone in current
        .label_keys
        .iter()
        .filter(|key| !key.starts_with(CONNECTOR_LABELS) && !new_keys.contains(key.as_str()))
    {
        args.push(format!("--container-label-rm={gone}"));
    }
    for (key, value) in definition.labels() {
        args.push(format!("--container-label-add={key}={value}"));
    }
    args
}

/// The connector's Swarm services, through the docker CLI.
pub struct SwarmCli {
    runner: DockerRunner,
    instance: String,
    settings: SwarmSettings,
    /// Where host paths may be mounted from, checked again before each
    /// hand-over, as the containers backend does before each start. Only
    /// this manager's file system can be checked; a task on another node
    /// mounts that node's path.
    bind_policy: BindPolicy,
}

impl SwarmCli {
    pub fn new(
        runner: DockerRunner,
        instance: String,
        settings: SwarmSettings,
        bind_policy: BindPolicy,
    ) -> Self {
        SwarmCli {
            runner,
            instance,
            settings,
            bind_policy,
        }
    }

    pub fn service_name(&self, service: &ServiceName) -> String {
        swarm_service_name(&self.instance, service)
    }

    /// Whether the engine is a Swarm manager, which the swarm backend needs.
    ///
    /// # Errors
    /// A message saying what the engine is instead, or why it could not be asked.
    pub async fn check_manager(&self) -> Result<(), String> {
        let args = [arg("info"), arg("--format"), arg("{{json .Swarm}}")];
        let out = self.runner.run(&args).await.map_err(|e| {
            format!("backend = \"swarm\": cannot ask docker whether this engine is a Swarm manager: {e}")
        })?;
        let swarm: SwarmInfo = serde_json::from_str(out.trim()).map_err(|e| {
            format!("backend = \"swarm\": unexpected `docker info` output {out:?}: {e}")
        })?;
        if swarm.local_node_state == "active" && swarm.control_available {
            return Ok(());
        }
        let what = match swarm.local_node_state.as_str() {
            "active" => "a Swarm worker, not a manager".to_owned(),
            "inactive" => "not part of a Swarm".to_owned(),
            other => format!("in Swarm state {other:?}"),
        };
        Err(format!(
            "backend = \"swarm\" needs the docker engine to be a Swarm manager, and it is {what}. \
             Run `docker swarm init` on it, or point DOCKER_HOST at a manager, or set \
             backend = \"containers\"."
        ))
    }

    /// The service of `service`, if Swarm has one by its name.
    ///
    /// # Errors
    /// The docker failure; [`Error::ForeignSwarmService`] when a service of
    /// that name exists without this connector's labels for `service` (it
    /// is never touched).
    pub async fn inspect(&self, service: &ServiceName) -> Result<Option<SwarmService>, Error> {
        match self.look_up(service).await? {
            Lookup::Missing => Ok(None),
            Lookup::Ours(found) => Ok(Some(*found)),
            Lookup::NotOurs(swarm_name) => Err(Error::ForeignSwarmService {
                swarm_name,
                service: service.to_string(),
            }),
        }
    }

    /// What Swarm has under the name of `service`.
    ///
    /// # Errors
    /// The docker failure.
    pub async fn look_up(&self, service: &ServiceName) -> Result<Lookup, Error> {
        let name = self.service_name(service);
        let args = [
            arg("service"),
            arg("inspect"),
            arg("--format"),
            arg("{{json .}}"),
            name.clone(),
        ];
        let out = self
            .runner
            .run_tolerating(&args, |complaint| {
                complaint.to_ascii_lowercase().contains("no such service")
            })
            .await?;
        if out.trim().is_empty() {
            return Ok(Lookup::Missing);
        }
        let found = parse_service(out.trim())?;
        if found.labels.get(LABEL_INSTANCE) != Some(&self.instance)
            || found.labels.get(LABEL_SERVICE).map(String::as_str) != Some(service.as_str())
        {
            return Ok(Lookup::NotOurs(name));
        }
        Ok(Lookup::Ours(Box::new(found.service)))
    }

    /// Creates the service of `definition` with `replicas` tasks; returns
    /// without waiting for them.
    ///
    /// # Errors
    /// The docker failure; before anything is created, a host path outside
    /// `allowed_bind_paths` or a network Swarm cannot join.
    pub async fn create(&self, definition: &ServiceDefinition, replicas: u32) -> Result<(), Error> {
        definition.check_host_paths(&self.bind_policy)?;
        // Only checked: `--network` takes the names.
        self.attachments(definition).await?;
        self.runner
            .run(&self.create_args(definition, replicas))
            .await
            .map(drop)
    }

    fn create_args(&self, definition: &ServiceDefinition, replicas: u32) -> Vec<String> {
        let mut args = vec![
            arg("service"),
            arg("create"),
            arg("--detach"),
            arg("--quiet"),
            arg("--name"),
            self.service_name(definition.name()),
            arg("--replicas"),
            replicas.to_string(),
        ];
        for label in self.labels(definition) {
            args.extend([
                arg("--label"),
                label.clone(),
                arg("--container-label"),
                label,
            ]);
        }
        args.extend(self.policy_args());
        for (key, value) in definition.environment() {
            args.extend([arg("--env"), format!("{key}={value}")]);
        }
        for port in self.ports(definition) {
            args.extend([arg("--publish"), port]);
        }
        if let Some(check) = definition.healthcheck() {
            args.extend(check.docker_args());
        }
        args.push(stop_grace_arg(definition));
        if let Some(limits) = definition.resources() {
            if let Some(memory) = limits.memory {
                args.push(format!("--limit-memory={memory}"));
            }
            if let Some(cpus) = &limits.cpus {
                args.push(format!("--limit-cpu={cpus}"));
            }
            if let Some(pids) = limits.pids {
                args.push(format!("--limit-pids={pids}"));
            }
        }
        for network in definition.networks() {
            args.push(format!("--network={network}"));
        }
        for mount in definition.volumes() {
            args.push(format!("--mount={}", mount.mount_arg()));
        }
        for (key, value) in definition.labels() {
            args.push(format!("--container-label={key}={value}"));
        }
        // `--` ends docker's own flags: nothing after it can become one.
        args.extend([arg("--"), arg(definition.image().as_str())]);
        args.extend(definition.command_argv().iter().cloned());
        args
    }

    /// Updates `current` to run `definition` (a rolling update, as the
    /// settings say) and/or to `replicas` tasks; returns without waiting.
    ///
    /// # Errors
    /// The docker failure; before anything is updated, a host path outside
    /// `allowed_bind_paths` or a network Swarm cannot join.
    pub async fn update(
        &self,
        current: &SwarmService,
        definition: Option<&ServiceDefinition>,
        replicas: Option<u32>,
    ) -> Result<(), Error> {
        let handover = match definition {
            Some(definition) => {
                definition.check_host_paths(&self.bind_policy)?;
                Some(Handover {
                    definition,
                    networks: self.attachments(definition).await?,
                })
            }
            None => None,
        };
        let args = self.update_args(current, handover.as_ref(), replicas);
        let mut pause = OUT_OF_SEQUENCE_PAUSE;
        for _ in 1..OUT_OF_SEQUENCE_ATTEMPTS {
            match self.runner.run(&args).await {
                Err(Error::DockerFailed(why)) if why.contains("update out of sequence") => {
                    tokio::time::sleep(pause).await;
                    pause *= 2;
                }
                other => return other.map(drop),
            }
        }
        self.runner.run(&args).await.map(drop)
    }

    /// The networks of `definition` as the engine has them; no docker call
    /// when it names none.
    ///
    /// # Errors
    /// The docker failure, or a network missing or that Swarm cannot use.
    async fn attachments(&self, definition: &ServiceDefinition) -> Result<Vec<Attachment>, Error> {
        if definition.networks().is_empty() {
            return Ok(Vec::new());
        }
        let args = [
            arg("network"),
            arg("ls"),
            arg("--no-trunc"),
            arg("--format"),
            arg("{{json .}}"),
        ];
        let listed = parse_networks(&self.runner.run(&args).await?)?;
        resolve_networks(definition.networks(), &listed)
    }

    fn update_args(
        &self,
        current: &SwarmService,
        handover: Option<&Handover>,
        replicas: Option<u32>,
    ) -> Vec<String> {
        let mut args = vec![
            arg("service"),
            arg("update"),
            arg("--detach"),
            arg("--quiet"),
        ];
        if let Some(handover) = handover {
            let definition = handover.definition;
            args.extend([arg("--image"), arg(definition.image().as_str())]);
            args.extend([arg("--args"), quote_args(definition.command_argv())]);
            // Only what the new definition lacks is removed: a port removed
            // and added in one update ends up removed (seen on this engine).
            let new_env: BTreeSet<&str> = definition.environment().map(|(key, _)| key).collect();
            for gone in current
                .env_keys
                .iter()
                .filter(|k| !new_env.contains(k.as_str()))
            {
                args.extend([arg("--env-rm"), gone.clone()]);
            }
            for (key, value) in definition.environment() {
                args.extend([arg("--env-add"), format!("{key}={value}")]);
            }
            let new_ports: BTreeSet<String> = self.ports(definition).collect();
            for gone in current.ports.difference(&new_ports) {
                args.extend([arg("--publish-rm"), gone.clone()]);
            }
            for added in new_ports.difference(&current.ports) {
                args.extend([arg("--publish-add"), added.clone()]);
            }
            for label in self.labels(definition) {
                args.extend([
                    arg("--label-add"),
                    label.clone(),
                    arg("--container-label-add"),
                    label,
                ]);
            }
            args.extend(self.policy_args());
            args.extend(workload_update_args(&current.workload, handover));
        }
        if let Some(replicas) = replicas {
            args.extend([arg("--replicas"), replicas.to_string()]);
        }
        args.push(current.name.clone());
        args
    }

    /// The ownership labels, on the service and on its tasks' containers.
    fn labels(&self, definition: &ServiceDefinition) -> [String; 3] {
        [
            format!("{LABEL_INSTANCE}={}", self.instance),
            format!("{LABEL_SERVICE}={}", definition.name()),
            format!("{LABEL_CONFIG_HASH}={}", definition.config_hash()),
        ]
    }

    /// `--publish` values, each on an ephemeral port: per task in host
    /// mode, per service in the routing mesh.
    fn ports<'a>(&'a self, definition: &'a ServiceDefinition) -> impl Iterator<Item = String> + 'a {
        let mode = self.settings.publish_mode.as_str();
        definition.ports().iter().map(move |port| {
            format!(
                "mode={mode},target={},protocol={}",
                port.number(),
                port.protocol_name()
            )
        })
    }

    /// Rolling updates start-first, as the containers backend rolls, and
    /// roll back on their own when a new task fails within the monitor
    /// time; rollbacks go the same way.
    fn policy_args(&self) -> Vec<String> {
        let parallelism = self.settings.parallelism.to_string();
        let monitor = format!("{}ms", self.settings.monitor.as_millis());
        let mut args = vec![
            arg("--update-order"),
            arg("start-first"),
            arg("--update-parallelism"),
            parallelism.clone(),
            arg("--update-monitor"),
            monitor.clone(),
            arg("--update-failure-action"),
            arg("rollback"),
            arg("--update-max-failure-ratio"),
            arg("0"),
            arg("--rollback-order"),
            arg("start-first"),
            arg("--rollback-parallelism"),
            parallelism,
            arg("--rollback-monitor"),
            monitor,
        ];
        if !self.settings.resolve_image {
            args.push(arg("--no-resolve-image"));
        }
        args
    }

    /// How many tasks of the service Swarm wants running and are running.
    ///
    /// # Errors
    /// The docker failure.
    pub async fn running_tasks(&self, service: &ServiceName) -> Result<usize, Error> {
        let args = [
            arg("service"),
            arg("ps"),
            arg("--filter"),
            arg("desired-state=running"),
            arg("--format"),
            arg("{{json .CurrentState}}"),
            self.service_name(service),
        ];
        let out = self.runner.run(&args).await?;
        Ok(out
            .lines()
            .filter(|line| line.starts_with("\"Running"))
            .count())
    }

    /// Every task of the service Swarm still holds, its history included.
    ///
    /// Listed, then inspected: two calls, between which a start-first
    /// update may start a task and shut an old one down. So when the
    /// inspect shows a running task Swarm is shutting down, the service is
    /// listed again and any task new to the list inspected too; a snapshot
    /// holding the old task's shutdown without its replacement would count
    /// one running task too few.
    ///
    /// # Errors
    /// The docker failure.
    pub async fn tasks(&self, service: &ServiceName) -> Result<Vec<Task>, Error> {
        let mut nodes = self.task_nodes(service).await?;
        let mut tasks = self.inspect_listed(service, &nodes, nodes.keys()).await?;
        let handing_over = tasks
            .iter()
            .any(|task| task.is_running() && !task.is_live());
        if handing_over {
            let listed = self.task_nodes(service).await?;
            let new: Vec<String> = listed
                .keys()
                .filter(|id| !nodes.contains_key(*id))
                .cloned()
                .collect();
            nodes.extend(listed);
            tasks.extend(self.inspect_listed(service, &nodes, new.iter()).await?);
        }
        Ok(tasks)
    }

    /// The service's tasks as `docker service ps` lists them: id → node.
    async fn task_nodes(&self, service: &ServiceName) -> Result<HashMap<String, String>, Error> {
        let args = [
            arg("service"),
            arg("ps"),
            arg("--no-trunc"),
            arg("--format"),
            arg("[{{json .ID}},{{json .Node}}]"),
            self.service_name(service),
        ];
        let listed = self.runner.run(&args).await?;
        let mut nodes = HashMap::new();
        for line in listed.lines().filter(|line| !line.trim().is_empty()) {
            let (id, node): (String, String) = serde_json::from_str(line).map_err(|e| {
                Error::DockerFailed(format!("unexpected `docker service ps` line {line:?}: {e}"))
            })?;
            nodes.insert(id, node);
        }
        Ok(nodes)
    }

    /// The tasks `ids` inspected; one Swarm dropped from its history
    /// meanwhile is simply left out.
    async fn inspect_listed<'a>(
        &self,
        service: &ServiceName,
        nodes: &HashMap<String, String>,
        ids: impl Iterator<Item = &'a String>,
    ) -> Result<Vec<Task>, Error> {
        let ids: Vec<String> = ids.cloned().collect();
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let inspected = self
            .runner
            .inspect_existing("task", "{{json .}}", ids)
            .await?;
        let name = self.service_name(service);
        inspected
            .lines()
            .filter(|line| !line.trim().is_empty())
            .map(|line| parse_task(line, &name, nodes))
            .collect()
    }

    /// Removes the service; Swarm then stops and removes its tasks.
    ///
    /// # Errors
    /// The docker failure; a service that is already gone is not one.
    pub async fn remove(&self, current: &SwarmService) -> Result<(), Error> {
        let args = [arg("service"), arg("rm"), current.name.clone()];
        self.runner
            .run_tolerating(&args, |complaint| {
                complaint.to_ascii_lowercase().contains("not found")
                    || complaint.to_ascii_lowercase().contains("no such service")
            })
            .await
            .map(drop)
    }

    /// The config hash of the spec a `docker service rollback` of `current`
    /// would go back to (Swarm's `PreviousSpec`); `None` when Swarm keeps
    /// none, or one without the connector's hash label.
    ///
    /// # Errors
    /// The docker failure.
    pub async fn previous_config_hash(
        &self,
        current: &SwarmService,
    ) -> Result<Option<String>, Error> {
        let format = format!(
            "{{{{with .PreviousSpec}}}}{{{{index .Labels {LABEL_CONFIG_HASH:?}}}}}{{{{end}}}}"
        );
        let args = [
            arg("service"),
            arg("inspect"),
            arg("--format"),
            format,
            current.name.clone(),
        ];
        let out = self.runner.run(&args).await?;
        let hash = out.trim();
        Ok((!hash.is_empty() && hash != "<no value>").then(|| hash.to_owned()))
    }

    /// `docker service rollback`: Swarm makes the previous spec of
    /// `current` its spec again and rolls the tasks back to it, start-first
    /// (`--rollback-order`); returns without waiting.
    ///
    /// # Errors
    /// The docker failure.
    pub async fn roll_back(&self, current: &SwarmService) -> Result<(), Error> {
        let args = [
            arg("service"),
            arg("rollback"),
            arg("--detach"),
            arg("--quiet"),
            current.name.clone(),
        ];
        self.runner.run(&args).await.map(drop)
    }
}

#[cfg(test)]
impl SwarmCli {
    /// Instance `prod`, updates 2 tasks at a time watched for 2.5 s: for
    /// the tests of argument building and of the backend's bookkeeping,
    /// which run no docker command.
    pub fn for_tests(publish_mode: SwarmPublishMode, resolve_image: bool) -> Self {
        let runner = DockerRunner::new(
            "docker",
            Duration::from_secs(5),
            std::sync::Arc::new(crate::metrics::Metrics::new()),
        );
        let settings = SwarmSettings {
            publish_mode,
            resolve_image,
            parallelism: 2,
            monitor: Duration::from_millis(2500),
        };
        let no_host_paths = BindPolicy::new(&[]).expect("an empty policy is valid");
        SwarmCli::new(runner, "prod".to_owned(), settings, no_host_paths)
    }
}

impl SwarmCli {
    /// Every task Swarm holds of the Swarm services of `services`, their
    /// history included, in one `docker service ps`. A service Swarm has
    /// no service for yet has none.
    ///
    /// # Errors
    /// The docker failure.
    pub async fn list_tasks(&self, services: &[ServiceName]) -> Result<Vec<ListedTask>, Error> {
        if services.is_empty() {
            return Ok(Vec::new());
        }
        let by_swarm_name: HashMap<String, ServiceName> = services
            .iter()
            .map(|service| (self.service_name(service), service.clone()))
            .collect();
        let mut args = vec![
            arg("service"),
            arg("ps"),
            arg("--no-trunc"),
            arg("--format"),
            arg("[{{json .ID}},{{json .Name}},{{json .Node}},{{json .DesiredState}},{{json .CurrentState}}]"),
        ];
        args.extend(by_swarm_name.keys().cloned());
        // docker lists the tasks of the services it found, then fails
        // naming each one it did not.
        let listing = self
            .runner
            .run_tolerating(&args, |complaint| {
                complaint.starts_with("no such service: ")
            })
            .await?;
        read_listing(&listing, &by_swarm_name)
    }

    /// The tasks among `listed` read in full, in one `docker inspect`; one
    /// Swarm dropped meanwhile is left out.
    ///
    /// # Errors
    /// The docker failure.
    pub async fn inspect_tasks(&self, listed: &[&ListedTask]) -> Result<Vec<Task>, Error> {
        let by_id: HashMap<&str, &ListedTask> = listed
            .iter()
            .map(|task| (task.id.as_str(), *task))
            .collect();
        let nodes: HashMap<String, String> = listed
            .iter()
            .filter_map(|task| Some((task.id.clone(), task.node.clone()?)))
            .collect();
        let inspected = self
            .runner
            .inspect_existing(
                "task",
                "{{json .}}",
                by_id.keys().map(|id| (*id).to_owned()),
            )
            .await?;
        let mut tasks = Vec::new();
        for line in inspected.lines().filter(|line| !line.trim().is_empty()) {
            let TaskId { id } = serde_json::from_str(line).map_err(|e| {
                Error::DockerFailed(format!(
                    "unexpected `docker inspect` output for a task: {e}"
                ))
            })?;
            let Some(listed) = by_id.get(id.as_str()) else {
                continue;
            };
            tasks.push(parse_task(
                line,
                &self.service_name(&listed.service),
                &nodes,
            )?);
        }
        Ok(tasks)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::docker::PublishedPorts;
    use serde_json::json;

    fn definition(body: serde_json::Value) -> ServiceDefinition {
        ServiceDefinition::from_create_body(&body).unwrap()
    }

    fn cli(publish_mode: SwarmPublishMode, resolve_image: bool) -> SwarmCli {
        SwarmCli::for_tests(publish_mode, resolve_image)
    }

    fn value_after<'a>(args: &'a [String], flag: &str) -> Vec<&'a str> {
        args.windows(2)
            .filter(|w| w[0] == flag)
            .map(|w| w[1].as_str())
            .collect()
    }

    #[test]
    fn service_names_are_readable_valid_and_distinct() {
        let name = |s: &str| ServiceName::parse(s).unwrap();
        let plain = swarm_service_name("prod", &name("web_1"));
        assert!(
            plain.starts_with("prod-web_1-") && plain.len() == 19,
            "{plain}"
        );
        assert!(is_swarm_name(&plain), "{plain}");
        let dotted = swarm_service_name("prod", &name("web.v2"));
        assert!(dotted.starts_with("prod-web-v2-"), "{dotted}");
        assert_ne!(dotted, swarm_service_name("prod", &name("web-v2")));
        assert_ne!(
            swarm_service_name("a", &name("b-c")),
            swarm_service_name("a-b", &name("c"))
        );
        let long = swarm_service_name(&"i".repeat(63), &name(&"s".repeat(63)));
        assert!(
            is_swarm_name(&long) && long.len() <= MAX_SERVICE_NAME,
            "{long}"
        );
        assert_ne!(
            long,
            swarm_service_name(&"i".repeat(63), &name(&"s".repeat(62)))
        );
        let trailing = swarm_service_name("prod", &name("web-"));
        assert!(is_swarm_name(&trailing), "{trailing}");
    }

    #[test]
    fn args_are_quoted_so_that_dockers_splitting_gives_them_back() {
        let argv: Vec<String> = ["sh", "-c", "echo it's \"x\" $HOME", "", "two words"]
            .map(String::from)
            .into();
        assert_eq!(
            quote_args(&argv),
            r#"'sh' '-c' 'echo it'\''s "x" $HOME' '' 'two words'"#
        );
        assert_eq!(quote_args(&[]), "");
    }

    #[test]
    fn create_labels_service_and_containers_and_passes_the_command_as_argv() {
        let cli = cli(SwarmPublishMode::Host, false);
        let web = definition(json!({"name": "web", "image": "img:1",
            "command": ["sh", "-c", "a b; c"], "ports": ["8080", "53/udp"],
            "environment": {"A": "1"}}));
        let args = cli.create_args(&web, 3);
        assert_eq!(
            value_after(&args, "--name"),
            [swarm_service_name("prod", web.name())]
        );
        assert_eq!(value_after(&args, "--replicas"), ["3"]);
        let hash = format!("{LABEL_CONFIG_HASH}={}", web.config_hash());
        for flag in ["--label", "--container-label"] {
            let labels = value_after(&args, flag);
            assert!(
                labels.contains(&"docker-connector.instance=prod"),
                "{args:?}"
            );
            assert!(labels.contains(&"docker-connector.service=web"), "{args:?}");
            assert!(labels.contains(&hash.as_str()), "{args:?}");
        }
        assert_eq!(value_after(&args, "--env"), ["A=1"]);
        assert_eq!(
            value_after(&args, "--publish"),
            [
                "mode=host,target=8080,protocol=tcp",
                "mode=host,target=53,protocol=udp"
            ]
        );
        assert_eq!(value_after(&args, "--update-order"), ["start-first"]);
        assert_eq!(value_after(&args, "--update-parallelism"), ["2"]);
        assert_eq!(value_after(&args, "--update-monitor"), ["2500ms"]);
        assert_eq!(value_after(&args, "--update-failure-action"), ["rollback"]);
        assert!(args.contains(&"--no-resolve-image".to_owned()));
        let tail = &args[args.iter().position(|a| a == "--").unwrap()..];
        assert_eq!(tail, ["--", "img:1", "sh", "-c", "a b; c"]);

        let resolving = cli_with_mesh();
        let args = resolving.create_args(&web, 1);
        assert!(!args.contains(&"--no-resolve-image".to_owned()));
        assert_eq!(
            value_after(&args, "--publish")[0],
            "mode=ingress,target=8080,protocol=tcp"
        );
    }

    fn cli_with_mesh() -> SwarmCli {
        cli(SwarmPublishMode::Ingress, true)
    }

    #[test]
    fn an_update_replaces_env_and_ports_and_keeps_what_stays() {
        let cli = cli(SwarmPublishMode::Host, true);
        let current = SwarmService {
            name: "prod-web".into(),
            config_hash: "old".into(),
            replicas: 2,
            env_keys: ["A", "GONE"].map(String::from).into(),
            ports: [
                "mode=host,target=8080,protocol=tcp",
                "mode=ingress,target=9000,protocol=tcp",
            ]
            .map(String::from)
            .into(),
            workload: SpecWorkload::default(),
            update_state: None,
            update_message: None,
            mesh_ports: PublishedPorts::new(),
        };
        let web = definition(json!({"name": "web", "image": "img:2",
            "ports": ["8080", "9000"], "environment": {"A": "2", "B": "3"}}));
        let args = cli.update_args(&current, Some(&handover(&web, &[])), Some(4));
        assert_eq!(value_after(&args, "--image"), ["img:2"]);
        assert_eq!(value_after(&args, "--args"), [""]);
        assert_eq!(value_after(&args, "--env-rm"), ["GONE"]);
        assert_eq!(value_after(&args, "--env-add"), ["A=2", "B=3"]);
        assert_eq!(
            value_after(&args, "--publish-rm"),
            ["mode=ingress,target=9000,protocol=tcp"]
        );
        assert_eq!(
            value_after(&args, "--publish-add"),
            ["mode=host,target=9000,protocol=tcp"]
        );
        assert_eq!(value_after(&args, "--replicas"), ["4"]);
        assert_eq!(args.last().unwrap(), "prod-web");

        let scale_only = cli.update_args(&current, None, Some(0));
        assert_eq!(
            scale_only,
            [
                "service",
                "update",
                "--detach",
                "--quiet",
                "--replicas",
                "0",
                "prod-web"
            ]
        );
    }

    fn handover<'a>(definition: &'a ServiceDefinition, networks: &[(&str, &str)]) -> Handover<'a> {
        Handover {
            definition,
            networks: networks
                .iter()
                .map(|(name, id)| Attachment {
                    name: (*name).to_owned(),
                    id: (*id).to_owned(),
                })
                .collect(),
        }
    }

    /// The arguments that start with `prefix`, in order.
    fn flags_starting<'a>(args: &'a [String], prefix: &str) -> Vec<&'a str> {
        args.iter()
            .filter(|a| a.starts_with(prefix))
            .map(String::as_str)
            .collect()
    }

    /// A spec that has every workload key set, as `docker service inspect`
    /// shows one (networks by id).
    fn service_with_everything() -> SwarmService {
        SwarmService::parse_for_tests(
            &json!({"Spec": {"Name": "prod-web", "Labels": {},
                "TaskTemplate": {
                    "ContainerSpec": {
                        "Labels": {"docker-connector.instance": "prod", "team": "a", "gone": "x"},
                        "Healthcheck": {"Test": ["CMD-SHELL", "true"], "Interval": 2_000_000_000_u64,
                                        "Timeout": 1_000_000_000_u64, "Retries": 2},
                        "Mounts": [{"Type": "volume", "Source": "old", "Target": "/old"},
                                   {"Type": "volume", "Source": "data", "Target": "/data"}]},
                    "Resources": {"Limits": {"NanoCPUs": 500_000_000_u64, "MemoryBytes": 67_108_864_u64, "Pids": 50}},
                    "Networks": [{"Target": "id-old"}, {"Target": "id-kept"}]},
                "Mode": {"Replicated": {"Replicas": 1}}}})
            .to_string(),
        )
    }

    #[test]
    fn create_passes_every_workload_key_and_the_default_grace() {
        let cli = cli(SwarmPublishMode::Host, false);
        let web = definition(json!({"name": "web", "image": "img:1",
            "healthcheck": {"test": ["CMD-SHELL", "wget -q -O- localhost:8080"],
                            "interval": "5s", "retries": 3},
            "stop_grace_period": "1m30s",
            "resources": {"memory": "256m", "cpus": "0.5", "pids": 100},
            "networks": ["backend", "monitoring"],
            "volumes": [{"source": "data", "target": "/data", "read_only": true}],
            "labels": {"traefik.enable": "true", "team": "web"}}));
        let args = cli.create_args(&web, 1);
        let before_image = &args[..args.iter().position(|a| a == "--").unwrap()];
        for expected in [
            "--health-cmd=wget -q -O- localhost:8080",
            "--health-interval=5s",
            "--health-retries=3",
            "--stop-grace-period=90s",
            "--limit-memory=268435456",
            "--limit-cpu=0.5",
            "--limit-pids=100",
            "--network=backend",
            "--network=monitoring",
            "--mount=type=volume,source=data,target=/data,readonly",
            "--container-label=team=web",
            "--container-label=traefik.enable=true",
        ] {
            assert!(
                before_image.contains(&expected.to_owned()),
                "{expected} in {args:?}"
            );
        }
        // Only what is given: docker's defaults stand for the rest.
        assert_eq!(
            flags_starting(&args, "--health-timeout"),
            Vec::<&str>::new()
        );
        let plain = cli.create_args(&definition(json!({"name": "web", "image": "img:1"})), 1);
        assert_eq!(
            flags_starting(&plain, "--stop-grace-period"),
            ["--stop-grace-period=10s"]
        );
        for absent in ["--health", "--no-health", "--limit", "--network", "--mount"] {
            assert_eq!(
                flags_starting(&plain, absent),
                Vec::<&str>::new(),
                "{plain:?}"
            );
        }
        let disabled = definition(json!({"name": "web", "image": "img:1",
            "healthcheck": {"disable": true}}));
        let args = cli.create_args(&disabled, 1);
        assert_eq!(
            flags_starting(&args, "--no-healthcheck"),
            ["--no-healthcheck"]
        );
        assert_eq!(flags_starting(&args, "--health"), Vec::<&str>::new());
    }

    #[test]
    fn an_update_sets_each_workload_key_and_resets_what_the_definition_lacks() {
        let cli = cli(SwarmPublishMode::Host, false);
        let current = service_with_everything();
        let web = definition(json!({"name": "web", "image": "img:2",
            "healthcheck": {"test": "true", "interval": "3s"},
            "stop_grace_period": "2s",
            "resources": {"memory": "128m"},
            "networks": ["kept", "added"],
            "volumes": [{"source": "other", "target": "/data"}],
            "labels": {"team": "b"}}));
        let args = cli.update_args(
            &current,
            Some(&handover(
                &web,
                &[("kept", "id-kept"), ("added", "id-added")],
            )),
            None,
        );
        assert_eq!(
            flags_starting(&args, "--health"),
            [
                "--health-cmd=true",
                "--health-interval=3s",
                "--health-timeout=0s",
                "--health-start-period=0s",
                "--health-retries=0"
            ]
        );
        assert_eq!(
            flags_starting(&args, "--stop-grace-period"),
            ["--stop-grace-period=2s"]
        );
        assert_eq!(
            flags_starting(&args, "--limit"),
            [
                "--limit-memory=134217728",
                "--limit-cpu=0",
                "--limit-pids=0"
            ]
        );
        assert_eq!(
            flags_starting(&args, "--network-rm"),
            ["--network-rm=id-old"]
        );
        assert_eq!(
            flags_starting(&args, "--network-add"),
            ["--network-add=added"]
        );
        assert_eq!(flags_starting(&args, "--mount-rm"), ["--mount-rm=/old"]);
        assert_eq!(
            flags_starting(&args, "--mount-add"),
            ["--mount-add=type=volume,source=other,target=/data"]
        );
        // The connector's own labels are never removed, only re-added.
        assert_eq!(
            flags_starting(&args, "--container-label-rm"),
            ["--container-label-rm=gone"]
        );
        let added = flags_starting(&args, "--container-label-add=team");
        assert_eq!(added, ["--container-label-add=team=b"]);
        assert!(
            value_after(&args, "--container-label-add").contains(&"docker-connector.instance=prod")
        );
    }

    #[test]
    fn an_update_without_the_keys_clears_the_spec_and_touches_nothing_unset() {
        let cli = cli(SwarmPublishMode::Host, false);
        let bare = definition(json!({"name": "web", "image": "img:2"}));
        let args = cli.update_args(
            &service_with_everything(),
            Some(&handover(&bare, &[])),
            None,
        );
        assert_eq!(
            flags_starting(&args, "--health"),
            [
                "--health-cmd=",
                "--health-interval=0s",
                "--health-timeout=0s",
                "--health-start-period=0s",
                "--health-retries=0"
            ]
        );
        assert_eq!(
            flags_starting(&args, "--limit"),
            ["--limit-memory=0", "--limit-cpu=0", "--limit-pids=0"]
        );
        assert_eq!(
            flags_starting(&args, "--network-rm"),
            ["--network-rm=id-kept", "--network-rm=id-old"]
        );
        assert_eq!(
            flags_starting(&args, "--mount-rm"),
            ["--mount-rm=/data", "--mount-rm=/old"]
        );
        assert_eq!(
            flags_starting(&args, "--container-label-rm"),
            ["--container-label-rm=gone", "--container-label-rm=team"]
        );
        assert_eq!(
            flags_starting(&args, "--stop-grace-period"),
            ["--stop-grace-period=10s"]
        );

        // A spec without them gets no flag for them, but the grace.
        let fresh = SwarmService::parse_for_tests(
            &json!({"Spec": {"Name": "prod-web", "TaskTemplate": {"ContainerSpec": {
                "Healthcheck": {}}, "Resources": {"Limits": {}}},
                "Mode": {"Replicated": {}}}})
            .to_string(),
        );
        let args = cli.update_args(&fresh, Some(&handover(&bare, &[])), None);
        for absent in [
            "--health",
            "--no-health",
            "--limit",
            "--network",
            "--mount",
            "--container-label-rm",
        ] {
            assert_eq!(
                flags_starting(&args, absent),
                Vec::<&str>::new(),
                "{args:?}"
            );
        }

        // Turning the check off replaces it whole; docker refuses
        // --no-healthcheck beside any --health-* flag.
        let off = definition(json!({"name": "web", "image": "img:2",
            "healthcheck": {"disable": true}}));
        let args = cli.update_args(&service_with_everything(), Some(&handover(&off, &[])), None);
        assert_eq!(
            flags_starting(&args, "--no-healthcheck"),
            ["--no-healthcheck"]
        );
        assert_eq!(flags_starting(&args, "--health"), Vec::<&str>::new());
    }

    #[test]
    fn networks_resolve_to_swarm_scoped_ones_and_any_other_is_refused_by_name() {
        let listed = |name: &str, id: &str, driver: &str, scope: &str| ListedNetwork {
            id: id.to_owned(),
            name: name.to_owned(),
            driver: driver.to_owned(),
            scope: scope.to_owned(),
        };
        let engine = [
            listed("bridge", "b1", "bridge", "local"),
            listed("mine", "m1", "bridge", "local"),
            listed("backend", "o1", "overlay", "swarm"),
            listed("twice", "t-local", "bridge", "local"),
            listed("twice", "t-swarm", "overlay", "swarm"),
        ];
        let names = |list: &[&str]| list.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>();
        let found = resolve_networks(&names(&["twice", "backend"]), &engine).unwrap();
        assert_eq!(
            found,
            [
                Attachment {
                    name: "twice".into(),
                    id: "t-swarm".into()
                },
                Attachment {
                    name: "backend".into(),
                    id: "o1".into()
                }
            ]
        );
        let refused = |name: &str| match resolve_networks(&names(&["backend", name]), &engine) {
            Err(Error::DockerFailed(why)) => why,
            other => panic!("{name}: {other:?}"),
        };
        let why = refused("mine");
        assert!(
            why.starts_with("networks: network \"mine\" is a bridge network"),
            "{why}"
        );
        assert!(why.contains("overlay"), "{why}");
        let why = refused("bridge");
        assert!(
            why.contains("\"bridge\"") && why.contains("already"),
            "{why}"
        );
        let why = refused("nowhere");
        assert!(why.contains("no network \"nowhere\""), "{why}");
        assert_eq!(resolve_networks(&[], &engine).unwrap(), []);
    }
}
