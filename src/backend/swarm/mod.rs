//! The swarm backend: each service is one Swarm service, which Swarm
//! places, heals and rolls across its nodes. The connector hands it the
//! stored definition and count, waits for a scale to take effect, and
//! reads its tasks back for status.
//!
//! Operations on one service are serialized by a per-service lock, so a
//! scale cannot create a Swarm service that a delete just removed, or
//! create one from a definition a PUT has just replaced. The lock is not
//! held while a scale waits for Swarm.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;

use crate::backend::locks::ServiceLocks;
use crate::backend::{Backend, ContainerStatus, Rollout, RolloutState, ScaleReport, ServiceStatus};
use crate::docker::{Lookup, SwarmCli, SwarmService, Task, UpdateState};
use crate::domain::{ReplicaCount, ServiceDefinition, ServiceName};
use crate::error::Error;
use crate::store::{Store, StoredService};

/// How often a scale asks Swarm how many tasks run.
const SCALE_POLL: Duration = Duration::from_millis(200);

/// Services as Swarm services, through [`SwarmCli`].
pub struct SwarmBackend {
    cli: SwarmCli,
    store: Arc<Store>,
    /// How long a scale waits for the running tasks to reach its target.
    scale_timeout: Duration,
    /// One lock per defined service (and per name a request is working on).
    locks: ServiceLocks<()>,
    /// The config hash of the definition docker last took for each
    /// service (create or update). Swarm's own record of a rollback
    /// (`UpdateStatus`) is cleared by the next update of any kind, and its
    /// task history also holds definitions replaced normally; this tells
    /// a definition Swarm rolled back from one it never got. Not kept
    /// across restarts: then `UpdateStatus` alone decides.
    handed_over: Mutex<HashMap<ServiceName, String>>,
}

impl SwarmBackend {
    pub fn new(cli: SwarmCli, store: Arc<Store>, scale_timeout: Duration) -> Self {
        SwarmBackend {
            cli,
            locks: ServiceLocks::new(store.clone()),
            store,
            scale_timeout,
            handed_over: Mutex::new(HashMap::new()),
        }
    }

    /// Whether the engine is a Swarm manager; the connector refuses to
    /// start otherwise.
    ///
    /// # Errors
    /// What the engine is instead, or why it could not be asked.
    pub async fn check_manager(&self) -> Result<(), String> {
        self.cli.check_manager().await
    }

    /// Records that docker took `definition` for its service.
    fn record_handed_over(&self, definition: &ServiceDefinition) {
        self.handed_over
            .lock()
            .expect("the hand-over table is never poisoned")
            .insert(
                definition.name().clone(),
                definition.config_hash().to_owned(),
            );
    }

    /// Whether Swarm got `definition` and went back to what `current` runs.
    fn rolled_back(&self, definition: &ServiceDefinition, current: &SwarmService) -> bool {
        if current.config_hash == definition.config_hash() {
            return false;
        }
        match self
            .handed_over
            .lock()
            .expect("the hand-over table is never poisoned")
            .get(definition.name())
        {
            Some(hash) => hash == definition.config_hash(),
            None => current.update_failed(),
        }
    }

    /// Records `replicas` as the desired count and hands it to Swarm, once
    /// Swarm is not rolling tasks (see [`SwarmService::rolling`]); waits
    /// for that, without the lock, up to the scale timeout.
    async fn set_replicas(&self, service: &ServiceName, replicas: u32) -> Result<(), Error> {
        let deadline = Instant::now() + self.scale_timeout;
        loop {
            let applied = {
                let _lock = self.locks.lock(service).await;
                self.try_set_replicas(service, replicas).await?
            };
            if applied {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(Error::SwarmBusy {
                    seconds: self.scale_timeout.as_secs(),
                });
            }
            tokio::time::sleep(SCALE_POLL).await;
        }
    }

    /// [`SwarmBackend::set_replicas`] under the lock: `false` while Swarm
    /// is rolling tasks. Creates the Swarm service, or sets its replicas
    /// (only if they differ: every update resets Swarm's rollback record).
    /// The stored definition follows, in an update of its own, when Swarm
    /// runs another one and did not roll this one back (a PUT retries
    /// that, not every scale): a rollback restores the whole earlier spec,
    /// and this way the new count is part of it.
    async fn try_set_replicas(&self, service: &ServiceName, replicas: u32) -> Result<bool, Error> {
        let stored = self
            .store
            .service(service)
            .ok_or_else(|| Error::ServiceNotFound(service.to_string()))?;
        let definition = &stored.definition;
        let current = self.cli.inspect(service).await?;
        if current.as_ref().is_some_and(SwarmService::rolling) {
            return Ok(false);
        }
        self.store.set_desired(service, replicas).await?;
        let Some(current) = current else {
            self.cli.create(definition, replicas).await?;
            self.record_handed_over(definition);
            return Ok(true);
        };
        if current.replicas != replicas {
            self.cli.update(&current, None, Some(replicas)).await?;
        }
        if current.config_hash != definition.config_hash()
            && !self.rolled_back(definition, &current)
        {
            self.cli.update(&current, Some(definition), None).await?;
            self.record_handed_over(definition);
        }
        Ok(true)
    }

    /// Polls Swarm until `target` tasks of `service` run, for at most the
    /// scale timeout. A later scale to another count ends the wait at once:
    /// the answer then carries that count. A delete ends it with
    /// [`Error::ServiceNotFound`].
    async fn wait_for(&self, service: &ServiceName, target: u32) -> Result<ScaleReport, Error> {
        let deadline = Instant::now() + self.scale_timeout;
        loop {
            let desired = self
                .store
                .all()
                .get(service)
                .ok_or_else(|| Error::ServiceNotFound(service.to_string()))?
                .desired;
            let running = match self.cli.running_tasks(service).await {
                Ok(running) => running,
                Err(e) => {
                    // A delete removes the Swarm service and then the
                    // definition, both under the service's lock: once that
                    // lock is free, the store tells whether the failure was
                    // the delete's doing (docker's "not found" comes between
                    // the two).
                    drop(self.locks.lock(service).await);
                    if !self.store.contains(service) {
                        return Err(Error::ServiceNotFound(service.to_string()));
                    }
                    return Err(e);
                }
            };
            let superseded = desired.filter(|&desired| desired != target);
            if running == target as usize || superseded.is_some() {
                return Ok(ScaleReport {
                    running_resources: running,
                    desired_resources: superseded.unwrap_or(target),
                });
            }
            if Instant::now() >= deadline {
                let tasks = self.cli.tasks(service).await.unwrap_or_default();
                return Err(Error::NotConverged {
                    running,
                    desired: target,
                    seconds: self.scale_timeout.as_secs(),
                    last_task_error: newest_error(tasks.iter()),
                });
            }
            tokio::time::sleep(SCALE_POLL).await;
        }
    }

    /// Hands the stored definition of `service` to its Swarm service when
    /// that runs another one. Read from the store under the lock, so of two
    /// PUTs racing, Swarm ends with the one stored last.
    async fn hand_over(&self, service: &ServiceName) -> Result<(), Error> {
        let Some(stored) = self.store.get(service) else {
            return Ok(());
        };
        match self.cli.inspect(service).await? {
            Some(current) if current.config_hash != stored.config_hash() => {
                self.cli.update(&current, Some(&stored), None).await?;
                self.record_handed_over(&stored);
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

/// The newest error among `tasks`.
fn newest_error<'a>(tasks: impl Iterator<Item = &'a Task>) -> Option<String> {
    tasks
        .filter(|task| task.error.is_some())
        .max_by_key(|task| task.since)
        .and_then(|task| task.error.clone())
}

/// Adds to a docker failure of handing a definition over that it stays stored.
fn stored_anyway(error: Error) -> Error {
    const NOTE: &str = "the definition is stored; the next PUT or scale hands it to Swarm";
    match error {
        Error::DockerFailed(why) => Error::DockerFailed(format!("{why}; {NOTE}")),
        Error::DockerUnavailable(why) => Error::DockerUnavailable(format!("{why}; {NOTE}")),
        other => other,
    }
}

#[async_trait]
impl Backend for SwarmBackend {
    /// Records the count and hands it to Swarm (see
    /// [`SwarmBackend::set_replicas`]), then waits, without the lock, until
    /// that many tasks run.
    async fn scale(
        &self,
        service: &ServiceName,
        target: ReplicaCount,
    ) -> Result<ScaleReport, Error> {
        self.set_replicas(service, target.get()).await?;
        self.wait_for(service, target.get()).await
    }

    async fn status(&self, service: &ServiceName) -> Result<ServiceStatus, Error> {
        let stored = self
            .store
            .service(service)
            .ok_or_else(|| Error::ServiceNotFound(service.to_string()))?;
        let Some(current) = self.cli.inspect(service).await? else {
            let wanted = stored.desired.unwrap_or(0);
            return Ok(ServiceStatus {
                running_resources: 0,
                desired_resources: stored.desired,
                containers: Vec::new(),
                rollout: Rollout {
                    state: RolloutState::Complete,
                    updated: 0,
                    outdated: 0,
                    error: None,
                },
                problem: (wanted > 0).then(|| {
                    "Swarm has no service for it (the last scale could not create it, or it \
                     was removed behind the connector's back); the next scale creates it"
                        .to_owned()
                }),
                failed_attempts: 0,
            });
        };
        let tasks = self.cli.tasks(service).await?;
        let rolled_back = self.rolled_back(&stored.definition, &current);
        Ok(status_of(&stored, &current, &tasks, rolled_back))
    }

    /// Hands the definition to the Swarm service as a rolling update, when
    /// the service exists and runs another one; a service not created yet
    /// gets it at its first scale. Compared with what Swarm runs, not with
    /// the definition replaced, so repeating a PUT that docker failed (or
    /// that Swarm rolled back) tries again.
    async fn definition_replaced(
        &self,
        definition: &ServiceDefinition,
        _runs_differently: bool,
    ) -> Result<(), Error> {
        let service = definition.name();
        let _lock = self.locks.lock(service).await;
        self.hand_over(service).await.map_err(stored_anyway)
    }

    async fn delete(&self, service: &ServiceName) -> Result<(), Error> {
        let _lock = self.locks.lock(service).await;
        if !self.store.contains(service) {
            return Err(Error::ServiceNotFound(service.to_string()));
        }
        // A Swarm service of that name that is not ours ran nothing of
        // this service: the definition goes, the service stays.
        if let Lookup::Ours(current) = self.cli.look_up(service).await? {
            self.cli.remove(&current).await?;
        }
        self.store.remove(service).await?;
        self.handed_over
            .lock()
            .expect("the hand-over table is never poisoned")
            .remove(service);
        Ok(())
    }
}

/// The status of a Swarm service running `current`, whose tasks are `tasks`
/// (history included), for the `stored` service; `rolled_back` says whether
/// Swarm got the stored definition and went back from it.
fn status_of(
    stored: &StoredService,
    current: &SwarmService,
    tasks: &[Task],
    rolled_back: bool,
) -> ServiceStatus {
    let hash = stored.definition.config_hash();
    // Earlier tasks of each slot, newest first.
    let mut history: BTreeMap<u64, Vec<&Task>> = BTreeMap::new();
    for task in tasks.iter().filter(|t| !t.is_live()) {
        history.entry(task.slot).or_default().push(task);
    }
    for earlier in history.values_mut() {
        earlier.sort_by_key(|t| std::cmp::Reverse(t.since));
    }
    let mut live: Vec<&Task> = tasks.iter().filter(|t| t.is_live()).collect();
    live.sort_by_key(|t| (t.slot, t.created));
    let containers = live
        .iter()
        .map(|task| {
            // Its slot's earlier tasks of the same definition: those of a
            // definition rolled back are not its restarts.
            let earlier: Vec<&&Task> = history
                .get(&task.slot)
                .map_or(&[][..], Vec::as_slice)
                .iter()
                .filter(|t| t.config_hash == task.config_hash)
                .collect();
            ContainerStatus {
                id: task.id.clone(),
                name: task.name.clone(),
                state: task.state.as_str().to_owned(),
                created: task.created,
                // A task publishes its own ports in host mode; through the
                // mesh, the service's ports reach it from every node.
                ports: Some(
                    current
                        .mesh_ports
                        .iter()
                        .chain(&task.ports)
                        .map(|(port, host)| (port.clone(), *host))
                        .collect(),
                ),
                node: task.node.clone(),
                current: task.config_hash == hash,
                restarts: u32::try_from(earlier.iter().filter(|t| t.ended_by_itself()).count())
                    .unwrap_or(u32::MAX),
                last_exit_code: task
                    .exit_code
                    .or_else(|| earlier.iter().find_map(|t| t.exit_code)),
            }
        })
        .collect();
    let running: Vec<&&Task> = live.iter().filter(|t| t.is_running()).collect();
    let updated = running.iter().filter(|t| t.config_hash == hash).count();
    let outdated = running.len() - updated;
    let (state, error) = if rolled_back {
        let failure = newest_error(tasks.iter().filter(|t| t.config_hash == hash));
        let what = match current.update_state {
            Some(UpdateState::RollbackStarted) => "Swarm is rolling the update back",
            Some(UpdateState::RollbackPaused) => "Swarm paused rolling the update back",
            _ => "Swarm rolled the update back",
        };
        let detail = current
            .update_message
            .as_deref()
            .filter(|_| current.update_failed())
            .map(|message| format!(" ({message})"))
            .unwrap_or_default();
        let error = match failure {
            Some(why) => format!("{what}{detail}; a new task failed: {why}"),
            None => format!("{what}{detail}"),
        };
        (RolloutState::Failed, Some(error))
    } else if current.config_hash != hash {
        (RolloutState::Pending, None)
    } else if current.update_state == Some(UpdateState::Paused) {
        let message = current.update_message.as_deref().unwrap_or("no message");
        (
            RolloutState::Failed,
            Some(format!("Swarm paused the update ({message})")),
        )
    } else if outdated > 0 || current.updating() {
        (RolloutState::Rolling, None)
    } else {
        (RolloutState::Complete, None)
    };
    let short = running.len() < current.replicas as usize;
    ServiceStatus {
        running_resources: running.len(),
        desired_resources: stored.desired,
        containers,
        rollout: Rollout {
            state,
            updated,
            outdated,
            error,
        },
        // Why Swarm cannot run what it now runs, not what it gave up.
        problem: newest_error(
            tasks
                .iter()
                .filter(|t| t.config_hash == current.config_hash),
        )
        .filter(|_| short),
        failed_attempts: u32::try_from(tasks.iter().filter(|t| t.failed()).count())
            .unwrap_or(u32::MAX),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::docker::PublishedPorts;
    use serde_json::json;

    fn task(id: &str, slot: u64, hash: &str, desired: &str, state: &str, since: i64) -> Task {
        Task {
            id: id.into(),
            name: format!("prod-web.{slot}"),
            slot,
            node: Some("vm".into()),
            desired_state: serde_json::from_value(json!(desired)).unwrap(),
            state: serde_json::from_value(json!(state)).unwrap(),
            created: since,
            since,
            config_hash: hash.into(),
            error: (state == "failed").then(|| format!("task: non-zero exit ({since})")),
            exit_code: (state == "failed").then_some(since),
            ports: PublishedPorts::new(),
        }
    }

    fn service(hash: &str, replicas: u32, update_state: Option<&str>) -> SwarmService {
        let text = json!({"Spec": {"Name": "prod-web",
            "Labels": {"docker-connector.config-hash": hash},
            "TaskTemplate": {"ContainerSpec": {}},
            "Mode": {"Replicated": {"Replicas": replicas}}},
            "UpdateStatus": update_state.map(|s| json!({"State": s, "Message": "update rolled back"}))})
        .to_string();
        SwarmService::parse_for_tests(&text)
    }

    fn stored_web(desired: u32) -> StoredService {
        StoredService {
            definition: ServiceDefinition::from_create_body(
                &json!({"name": "web", "image": "img:2"}),
            )
            .unwrap(),
            desired: Some(desired),
            history: Vec::new(),
        }
    }

    #[test]
    fn a_rolled_back_update_is_failed_with_the_reason_of_its_tasks() {
        let stored = stored_web(2);
        let new = stored.definition.config_hash();
        let tasks = [
            task("a", 1, "old", "running", "running", 10),
            task("b", 2, "old", "running", "running", 10),
            task("c", 1, new, "shutdown", "failed", 7),
            task("d", 1, "old", "shutdown", "failed", 3),
            task("e", 1, "old", "shutdown", "shutdown", 5),
        ];
        let rolled = service("old", 2, Some("rollback_completed"));
        let status = status_of(&stored, &rolled, &tasks, true);
        assert_eq!(status.running_resources, 2);
        assert_eq!(status.desired_resources, Some(2));
        assert_eq!(status.rollout.state, RolloutState::Failed);
        assert_eq!((status.rollout.updated, status.rollout.outdated), (0, 2));
        assert_eq!(
            status.rollout.error.as_deref(),
            Some(
                "Swarm rolled the update back (update rolled back); \
                 a new task failed: task: non-zero exit (7)"
            )
        );
        let names: Vec<&str> = status.containers.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["prod-web.1", "prod-web.2"]);
        // Slot 1's own definition failed once (exit 3); the rolled-back
        // task of the new one is not its restart.
        assert_eq!(status.containers[0].restarts, 1);
        assert_eq!(status.containers[0].last_exit_code, Some(3));
        assert_eq!(status.containers[0].node.as_deref(), Some("vm"));
        assert_eq!(status.problem, None, "every task runs");
        assert_eq!(status.failed_attempts, 2);

        // A later scale cleared UpdateStatus: the backend still knows.
        let cleared = status_of(&stored_web(3), &service("old", 3, None), &tasks, true);
        assert_eq!(cleared.rollout.state, RolloutState::Failed);
        assert_eq!(cleared.desired_resources, Some(3));
        assert_eq!(
            cleared.rollout.error.as_deref(),
            Some("Swarm rolled the update back; a new task failed: task: non-zero exit (7)")
        );
        assert_eq!(
            cleared.problem.as_deref(),
            Some("task: non-zero exit (3)"),
            "short of 3: the newest error of what Swarm runs"
        );
    }

    #[test]
    fn rollout_states_follow_the_spec_and_the_tasks() {
        let stored = stored_web(1);
        let new = stored.definition.config_hash();
        let old_only = [task("a", 1, "old", "running", "running", 10)];
        let pending = status_of(&stored, &service("old", 1, None), &old_only, false);
        assert_eq!(pending.rollout.state, RolloutState::Pending);
        let updating = [task("b", 1, new, "running", "running", 20)];
        let rolling = status_of(
            &stored,
            &service(new, 1, Some("updating")),
            &updating,
            false,
        );
        assert_eq!(
            rolling.rollout.state,
            RolloutState::Rolling,
            "still updating"
        );
        let mixed = status_of(
            &stored,
            &service(new, 1, Some("updating")),
            &old_only,
            false,
        );
        assert_eq!(
            (mixed.rollout.state, mixed.rollout.outdated),
            (RolloutState::Rolling, 1)
        );
        let paused = status_of(&stored, &service(new, 1, Some("paused")), &updating, false);
        assert_eq!(paused.rollout.state, RolloutState::Failed);
        let complete = status_of(
            &stored,
            &service(new, 3, Some("completed")),
            &updating,
            false,
        );
        assert_eq!(complete.rollout.state, RolloutState::Complete);
        assert_eq!(complete.running_resources, 1);
        assert_eq!(complete.problem, None, "no task reported an error");
    }

    fn backend(dir: &std::path::Path) -> SwarmBackend {
        let cli = SwarmCli::for_tests(crate::config::SwarmPublishMode::Host, false);
        let store = Arc::new(Store::open(&dir.join("services.json")).unwrap());
        SwarmBackend::new(cli, store, Duration::from_secs(5))
    }

    #[test]
    fn rolled_back_means_docker_took_the_definition_and_swarm_runs_another() {
        let dir = tempfile::tempdir().unwrap();
        let backend = backend(dir.path());
        let version = |image: &str| {
            ServiceDefinition::from_create_body(&json!({"name": "web", "image": image})).unwrap()
        };
        let (first, second) = (version("img:1"), version("img:2"));
        let runs = |definition: &ServiceDefinition, update_state| {
            service(definition.config_hash(), 1, update_state)
        };
        // Before any hand-over (say, after a restart) Swarm's record decides.
        assert!(!backend.rolled_back(&second, &runs(&first, None)));
        assert!(backend.rolled_back(&second, &runs(&first, Some("rollback_completed"))));
        // Swarm took the second and went back to the first; a scale has
        // cleared Swarm's record since.
        backend.record_handed_over(&second);
        assert!(backend.rolled_back(&second, &runs(&first, None)));
        assert!(!backend.rolled_back(&second, &runs(&second, Some("updating"))));
        // The first PUT back but not taken by docker: never rolled back,
        // even though Swarm's record still shows the earlier rollback.
        assert!(!backend.rolled_back(&first, &runs(&second, Some("rollback_completed"))));
    }

    #[test]
    fn only_an_update_or_its_rollback_in_progress_holds_a_scale_back() {
        for (state, rolling) in [
            (None, false),
            (Some("updating"), true),
            (Some("rollback_started"), true),
            (Some("completed"), false),
            (Some("rollback_completed"), false),
            (Some("paused"), false),
        ] {
            assert_eq!(service("h", 1, state).rolling(), rolling, "{state:?}");
        }
    }
}
