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

use crate::backend::{Backend, ContainerStatus, Rollout, ScaleReport, ServiceStatus};
use crate::docker::{Lookup, SwarmCli, SwarmService, Task};
use crate::domain::{ReplicaCount, ServiceDefinition, ServiceName};
use crate::error::Error;
use crate::store::Store;

/// How often a scale asks Swarm how many tasks run.
const SCALE_POLL: Duration = Duration::from_millis(200);

type ServiceGuard = tokio::sync::OwnedMutexGuard<()>;

/// Services as Swarm services, through [`SwarmCli`].
pub struct SwarmBackend {
    cli: SwarmCli,
    store: Arc<Store>,
    /// How long a scale waits for the running tasks to reach its target.
    scale_timeout: Duration,
    locks: Mutex<HashMap<ServiceName, Arc<tokio::sync::Mutex<()>>>>,
}

impl SwarmBackend {
    pub fn new(cli: SwarmCli, store: Arc<Store>, scale_timeout: Duration) -> Self {
        SwarmBackend {
            cli,
            store,
            scale_timeout,
            locks: Mutex::new(HashMap::new()),
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

    async fn lock(&self, service: &ServiceName) -> ServiceGuard {
        let lock = self
            .locks
            .lock()
            .expect("the lock table is never poisoned")
            .entry(service.clone())
            .or_default()
            .clone();
        lock.lock_owned().await
    }

    /// Polls Swarm until `target` tasks of `service` run, for at most the
    /// scale timeout.
    async fn wait_for(&self, service: &ServiceName, target: u32) -> Result<ScaleReport, Error> {
        let deadline = Instant::now() + self.scale_timeout;
        loop {
            let running = self.cli.running_tasks(service).await?;
            if running == target as usize {
                return Ok(ScaleReport {
                    running_resources: running,
                    desired_resources: target,
                });
            }
            if Instant::now() >= deadline {
                let tasks = self.cli.tasks(service).await.unwrap_or_default();
                return Err(Error::NotConverged {
                    running,
                    desired: target,
                    seconds: self.scale_timeout.as_secs(),
                    last_task_error: newest_error(&tasks),
                });
            }
            tokio::time::sleep(SCALE_POLL).await;
        }
    }
}

/// The newest error any task reported.
fn newest_error(tasks: &[Task]) -> Option<String> {
    tasks
        .iter()
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
    /// Records the count, creates the Swarm service or sets its replicas
    /// (and hands it the stored definition if it lacks it and Swarm did not
    /// roll that back), then waits until that many tasks run.
    async fn scale(
        &self,
        service: &ServiceName,
        target: ReplicaCount,
    ) -> Result<ScaleReport, Error> {
        let guard = self.lock(service).await;
        let stored = self
            .store
            .service(service)
            .ok_or_else(|| Error::ServiceNotFound(service.to_string()))?;
        self.store.set_desired(service, target.get()).await?;
        let definition = &stored.definition;
        match self.cli.inspect(service).await? {
            None => self.cli.create(definition, target.get()).await?,
            Some(current) => {
                // A definition Swarm rolled back is retried by a PUT, not
                // by every scale.
                let hand_over =
                    current.config_hash != definition.config_hash() && !current.update_failed();
                self.cli
                    .update(
                        &current,
                        hand_over.then_some(definition),
                        Some(target.get()),
                    )
                    .await?;
            }
        }
        drop(guard);
        self.wait_for(service, target.get()).await
    }

    async fn status(&self, service: &ServiceName) -> Result<ServiceStatus, Error> {
        let stored = self
            .store
            .service(service)
            .ok_or_else(|| Error::ServiceNotFound(service.to_string()))?;
        let Some(current) = self.cli.inspect(service).await? else {
            return Ok(ServiceStatus {
                running_resources: 0,
                desired_resources: stored.desired,
                containers: Vec::new(),
                rollout: Rollout {
                    state: "complete",
                    updated: 0,
                    outdated: 0,
                    error: None,
                },
                problem: None,
                failed_attempts: 0,
            });
        };
        let tasks = self.cli.tasks(service).await?;
        Ok(status_of(&stored.definition, &current, &tasks))
    }

    async fn delete(&self, service: &ServiceName) -> Result<(), Error> {
        let guard = self.lock(service).await;
        if !self.store.contains(service) {
            return Err(Error::ServiceNotFound(service.to_string()));
        }
        // A Swarm service of that name that is not ours ran nothing of
        // this service: the definition goes, the service stays.
        if let Lookup::Ours(current) = self.cli.look_up(service).await? {
            self.cli.remove(&current).await?;
        }
        self.store.remove(service).await?;
        drop(guard);
        self.locks
            .lock()
            .expect("the lock table is never poisoned")
            .remove(service);
        Ok(())
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
        let _guard = self.lock(definition.name()).await;
        let current = self
            .cli
            .inspect(definition.name())
            .await
            .map_err(stored_anyway)?;
        match current {
            Some(current) if current.config_hash != definition.config_hash() => self
                .cli
                .update(&current, Some(definition), None)
                .await
                .map_err(stored_anyway),
            _ => Ok(()),
        }
    }
}

/// The status of a Swarm service running `current`, whose tasks are `tasks`
/// (history included), for the stored `definition`.
fn status_of(
    definition: &ServiceDefinition,
    current: &SwarmService,
    tasks: &[Task],
) -> ServiceStatus {
    let hash = definition.config_hash();
    // Earlier tasks of each slot: what failed there, newest first.
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
            let earlier = history.get(&task.slot).map_or(&[][..], Vec::as_slice);
            ContainerStatus {
                id: task.id.clone(),
                name: task.name.clone(),
                state: task.state.clone(),
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
                node: Some(task.node.clone()),
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
    let (state, error) = if current.config_hash != hash {
        if current.update_failed() {
            let failure = tasks
                .iter()
                .filter(|t| t.config_hash == hash && t.failed())
                .max_by_key(|t| t.since)
                .and_then(|t| t.error.clone());
            let what = match current.update_state.as_deref() {
                Some("rollback_started") => "Swarm is rolling the update back",
                Some("rollback_completed") => "Swarm rolled the update back",
                Some("rollback_paused") => "Swarm paused rolling the update back",
                _ => "Swarm paused the update",
            };
            let detail = current.update_message.as_deref().unwrap_or("no message");
            let error = match failure {
                Some(why) => format!("{what} ({detail}); a new task failed: {why}"),
                None => format!("{what} ({detail})"),
            };
            ("failed", Some(error))
        } else {
            ("pending", None)
        }
    } else if outdated > 0 || current.updating() {
        ("rolling", None)
    } else {
        ("complete", None)
    };
    let short = running.len() < current.replicas as usize;
    ServiceStatus {
        running_resources: running.len(),
        desired_resources: Some(current.replicas),
        containers,
        rollout: Rollout {
            state,
            updated,
            outdated,
            error,
        },
        problem: if short { newest_error(tasks) } else { None },
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
            node: "vm".into(),
            desired_state: desired.into(),
            state: state.into(),
            created: since,
            since,
            config_hash: hash.into(),
            error: (state == "failed").then(|| "task: non-zero exit (7)".to_owned()),
            exit_code: (state == "failed").then_some(7),
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
        crate::docker::SwarmService::parse_for_tests(&text)
    }

    #[test]
    fn status_counts_running_tasks_and_tells_a_rolled_back_update() {
        let definition =
            ServiceDefinition::from_create_body(&json!({"name": "web", "image": "img:2"})).unwrap();
        let new = definition.config_hash();
        let tasks = [
            task("a", 1, "old", "running", "running", 10),
            task("b", 2, "old", "running", "running", 10),
            task("c", 1, new, "shutdown", "failed", 20),
            task("d", 1, "old", "shutdown", "shutdown", 5),
        ];
        let status = status_of(
            &definition,
            &service("old", 2, Some("rollback_completed")),
            &tasks,
        );
        assert_eq!(status.running_resources, 2);
        assert_eq!(status.desired_resources, Some(2));
        assert_eq!(status.rollout.state, "failed");
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
        assert_eq!(status.containers[0].restarts, 1);
        assert_eq!(status.containers[0].last_exit_code, Some(7));
        assert_eq!(status.containers[0].node.as_deref(), Some("vm"));
        assert_eq!(status.problem, None);
        assert_eq!(status.failed_attempts, 1);

        let pending = status_of(&definition, &service("old", 2, None), &tasks);
        assert_eq!(pending.rollout.state, "pending");
        let rolling = status_of(&definition, &service(new, 2, Some("updating")), &tasks);
        assert_eq!(rolling.rollout.state, "rolling");
        let done = [task("e", 1, new, "running", "running", 30)];
        let complete = status_of(&definition, &service(new, 3, Some("completed")), &done);
        assert_eq!(complete.rollout.state, "complete");
        assert_eq!(complete.running_resources, 1);
        assert_eq!(complete.problem, None, "no task reported an error");
    }
}
