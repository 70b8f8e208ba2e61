//! The status report of a Swarm service: its tasks as containers, the
//! rollout told from Swarm's update status and the config hash each task
//! runs, and the problem its tasks report. Pure: the backend reads Swarm,
//! this only interprets what it read.

use std::collections::BTreeMap;

use crate::backend::{ContainerStatus, Rollout, RolloutState, ServiceStatus};
use crate::docker::{Health, SwarmService, Task, UpdateState};
use crate::store::StoredService;

/// The newest error among `tasks`.
pub(super) fn newest_error<'a>(tasks: impl Iterator<Item = &'a Task>) -> Option<String> {
    tasks
        .filter(|task| task.error.is_some())
        .max_by_key(|task| task.since)
        .and_then(|task| task.error.clone())
}

/// A task's health as Swarm shows it: a task with a health check stays
/// `starting` until the check passes, and one that turns unhealthy is
/// shut down and replaced, so a running one is healthy.
fn task_health(task: &Task, probed: bool) -> Option<Health> {
    if !probed {
        None
    } else if task.is_running() {
        Some(Health::Healthy)
    } else if task.is_starting() {
        Some(Health::Starting)
    } else {
        None
    }
}

/// Whether the definition with `hash` that `stored` knows (current or
/// earlier) has a health probe.
fn probed(stored: &StoredService, hash: &str) -> bool {
    std::iter::once(&stored.definition)
        .chain(&stored.history)
        .find(|definition| definition.config_hash() == hash)
        .is_some_and(|definition| definition.health_probe().is_some())
}

/// The status of a Swarm service running `current`, whose tasks are `tasks`
/// (history included), for the `stored` service; `rolled_back` says whether
/// Swarm got the stored definition and went back from it.
pub(super) fn status_of(
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
                health: task_health(task, probed(stored, &task.config_hash)),
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
        // Swarm keeps a task with a health check `starting` until it is
        // healthy, and replaces one that turns unhealthy: its running
        // tasks serve.
        healthy_resources: running.len(),
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
pub(super) mod tests {
    use super::*;
    use crate::docker::PublishedPorts;
    use crate::domain::ServiceDefinition;
    use serde_json::json;

    pub(in crate::backend::swarm) fn task(
        id: &str,
        slot: u64,
        hash: &str,
        desired: &str,
        state: &str,
        since: i64,
    ) -> Task {
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

    pub(in crate::backend::swarm) fn service(
        hash: &str,
        replicas: u32,
        update_state: Option<&str>,
    ) -> SwarmService {
        let text = json!({"Spec": {"Name": "prod-web",
            "Labels": {"docker-connector.config-hash": hash},
            "TaskTemplate": {"ContainerSpec": {}},
            "Mode": {"Replicated": {"Replicas": replicas}}},
            "UpdateStatus": update_state.map(|s| json!({"State": s, "Message": "update rolled back"}))})
        .to_string();
        SwarmService::parse_for_tests(&text)
    }

    pub(in crate::backend::swarm) fn stored_web(desired: u32) -> StoredService {
        StoredService {
            definition: ServiceDefinition::from_create_body(
                &json!({"name": "web", "image": "img:2"}),
            )
            .unwrap(),
            desired: Some(desired),
            history: Vec::new(),
            revision: 1,
            changes: Vec::new(),
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

    #[test]
    fn running_tasks_of_a_checked_definition_are_healthy_and_starting_ones_starting() {
        let mut stored = stored_web(3);
        let unchecked_hash = stored.definition.config_hash().to_owned();
        let checked = ServiceDefinition::from_create_body(&json!({
            "name": "web", "image": "img:2", "healthcheck": {"test": "test -f /tmp/ok"}
        }))
        .unwrap();
        stored
            .history
            .push(std::mem::replace(&mut stored.definition, checked));
        let hash = stored.definition.config_hash().to_owned();
        let tasks = [
            task("a", 1, &hash, "running", "running", 10),
            task("b", 2, &hash, "running", "starting", 10),
            task("c", 3, &unchecked_hash, "running", "running", 10),
        ];
        let status = status_of(&stored, &service(&hash, 3, None), &tasks, false);
        let health: Vec<Option<Health>> = status.containers.iter().map(|c| c.health).collect();
        assert_eq!(
            health,
            [Some(Health::Healthy), Some(Health::Starting), None]
        );
        assert_eq!((status.running_resources, status.healthy_resources), (2, 2));
    }
}
