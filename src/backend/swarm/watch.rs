//! What the swarm backend tells the change feed beyond the store's own
//! events: its tasks (the containers status lists) starting, turning
//! healthy, dying and going; how an update it handed over rolls and how it
//! ends; and each service's problem as status tells it.
//!
//! docker's event stream on a manager reports only the containers of its
//! own node, so the tasks are polled instead, cluster-wide, once a second,
//! and only while someone watches the feed: a connector nobody watches
//! asks Swarm nothing more than before. A poll is one `docker service ps`
//! for every service; only when tasks changed since the previous poll are
//! those inspected (one more call, for their definition and exit code)
//! and the status of their services read again (for problem and
//! progress), so the cost follows the changes, not the services.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};

use super::status::probed;
use crate::backend::{RolloutState, ServiceStatus};
use crate::docker::{Health, ListedTask, Task, TaskState};
use crate::domain::ServiceName;
use crate::feed::{EventKind, Feed};
use crate::store::StoredService;

/// How often the tasks are listed while someone watches.
pub(super) const TASK_POLL: Duration = Duration::from_secs(1);

/// How often, while nobody watches, the watcher looks whether someone does
/// (without asking docker): a stream opened just before a scale takes its
/// first look at the tasks before Swarm has started any.
pub(super) const WATCHER_CHECK: Duration = Duration::from_millis(100);

/// How long the tasks seen last are kept while nobody watches. A client
/// that blocks on status asks again right after each answer: over such a
/// gap the next poll tells what changed meanwhile, a moment late, instead
/// of taking what it sees as the new starting point and telling nothing.
/// After a longer one, what changed meanwhile is old news nobody waited
/// for.
pub(super) const SEEN_KEPT: Duration = Duration::from_secs(5);

/// What Swarm's task error says when it shut a task down because its
/// health check failed (`task: non-zero exit (137): dockerexec: unhealthy
/// container`).
const UNHEALTHY: &str = "unhealthy container";

/// A task as one poll saw it.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct SeenTask {
    pub(super) service: ServiceName,
    pub(super) name: String,
    pub(super) desired_state: TaskState,
    pub(super) state: TaskState,
    /// The config hash of its definition, read when it was last inspected.
    pub(super) config_hash: String,
    /// Whether its definition has a health check: Swarm then keeps it
    /// `starting` until the check passes.
    pub(super) probed: bool,
    /// Its container's exit code, once it ended by itself.
    pub(super) exit_code: Option<i64>,
    /// Whether Swarm ended it because its health check failed.
    pub(super) unhealthy: bool,
}

impl SeenTask {
    /// What `listed` shows of a task, completed by its inspection when it
    /// was new or changed, else by what the previous poll knew of it.
    pub(super) fn new(
        listed: &ListedTask,
        inspected: Option<&Task>,
        before: Option<&SeenTask>,
        stored: Option<&StoredService>,
    ) -> Self {
        let (desired_state, state) = inspected.map_or((listed.desired_state, listed.state), |t| {
            (t.desired_state, t.state)
        });
        let (config_hash, exit_code, unhealthy) = match (inspected, before) {
            (Some(task), _) => (
                task.config_hash.clone(),
                task.exit_code,
                task.error.as_deref().is_some_and(|e| e.contains(UNHEALTHY)),
            ),
            (None, Some(before)) => (
                before.config_hash.clone(),
                before.exit_code,
                before.unhealthy,
            ),
            (None, None) => (String::new(), None, false),
        };
        SeenTask {
            service: listed.service.clone(),
            name: listed.name.clone(),
            desired_state,
            state,
            probed: stored.is_some_and(|stored| probed(stored, &config_hash)),
            config_hash,
            exit_code,
            unhealthy,
        }
    }

    /// Whether its container runs: started, its health check (if any)
    /// pending or passed.
    pub(super) fn is_up(&self) -> bool {
        matches!(self.state, TaskState::Starting | TaskState::Running)
    }

    /// Whether it is over: ended by itself, shut down, or never placed.
    pub(super) fn has_ended(&self) -> bool {
        matches!(
            self.state,
            TaskState::Complete
                | TaskState::Failed
                | TaskState::Shutdown
                | TaskState::Rejected
                | TaskState::Orphaned
                | TaskState::Remove
        )
    }

    /// Whether status lists it among the service's containers: Swarm still
    /// wants it, or its container still runs.
    pub(super) fn is_listed(&self) -> bool {
        !matches!(self.desired_state, TaskState::Shutdown | TaskState::Remove) || self.is_up()
    }
}

/// What happened to one task's container between two polls.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum ContainerChange {
    /// With its health as status shows it: `None` without a check.
    Started {
        health: Option<Health>,
    },
    /// Its check passed, or failed so that Swarm shut it down.
    Health(Health),
    Died {
        exit_code: Option<i64>,
    },
    /// Status no longer lists it.
    Removed,
}

/// What happened to a task between the poll that saw it as `before` and
/// the one that sees it as `now` (`None`: not listed), in order.
pub(super) fn container_changes(
    before: Option<&SeenTask>,
    now: Option<&SeenTask>,
) -> Vec<ContainerChange> {
    let was_up = before.is_some_and(SeenTask::is_up);
    let is_up = now.is_some_and(SeenTask::is_up);
    // A container that started and ended between two polls shows only by
    // its exit code.
    let ran_unseen = !was_up
        && !before.is_some_and(SeenTask::has_ended)
        && now.is_some_and(|task| task.exit_code.is_some());
    let mut changes = Vec::new();
    if let Some(task) = now.filter(|_| (!was_up && is_up) || ran_unseen) {
        let health = match task.state {
            _ if !task.probed || !is_up => None,
            TaskState::Starting => Some(Health::Starting),
            _ => Some(Health::Healthy),
        };
        changes.push(ContainerChange::Started { health });
    } else if let (Some(before), Some(task)) = (before, now) {
        if task.probed && before.state == TaskState::Starting && task.state == TaskState::Running {
            changes.push(ContainerChange::Health(Health::Healthy));
        }
    }
    if (was_up && !is_up) || ran_unseen {
        if now.is_some_and(|task| task.unhealthy) {
            changes.push(ContainerChange::Health(Health::Unhealthy));
        }
        changes.push(ContainerChange::Died {
            exit_code: now.and_then(|task| task.exit_code),
        });
    }
    // Told once status stops listing it, if status listed it or it was
    // just told to have started.
    let was_listed = before.is_some_and(SeenTask::is_listed) || ran_unseen;
    if was_listed && !now.is_some_and(SeenTask::is_listed) {
        changes.push(ContainerChange::Removed);
    }
    changes
}

/// Every task either poll listed, with how each saw it: by task name, so
/// that a slot's tasks are told together, the ones seen before first (a
/// task that died before its replacement started).
pub(super) fn sightings<'a>(
    before: &'a HashMap<String, SeenTask>,
    now: &'a HashMap<String, SeenTask>,
) -> Vec<(&'a str, Option<&'a SeenTask>, Option<&'a SeenTask>)> {
    let mut sightings: Vec<_> = before
        .iter()
        .map(|(id, task)| (id.as_str(), Some(task), now.get(id)))
        .chain(
            now.iter()
                .filter(|(id, _)| !before.contains_key(*id))
                .map(|(id, task)| (id.as_str(), None, Some(task))),
        )
        .collect();
    sightings.sort_by_key(|&(id, was, is)| {
        let name = is.or(was).map_or("", |task| task.name.as_str());
        (name, was.is_none(), id)
    });
    sightings
}

impl ContainerChange {
    /// The feed event of this change of the task `id`, with the fields the
    /// containers backend gives a container's events.
    pub(super) fn event(self, id: &str, task: &SeenTask) -> (EventKind, Value) {
        let (kind, extra) = match self {
            ContainerChange::Started { health } => {
                (EventKind::ContainerStarted, json!({"health": health}))
            }
            ContainerChange::Health(health) => {
                (EventKind::ContainerHealth, json!({"health": health}))
            }
            // Swarm replaces a task that ended with a new one: its own
            // container never comes back.
            ContainerChange::Died { exit_code } => (
                EventKind::ContainerDied,
                json!({"exit_code": exit_code, "restarts_itself": false}),
            ),
            ContainerChange::Removed => (EventKind::ContainerRemoved, json!({})),
        };
        let mut fields = json!({"id": id, "name": task.name, "config_hash": task.config_hash});
        if let (Some(fields), Value::Object(extra)) = (fields.as_object_mut(), extra) {
            fields.extend(extra);
        }
        (kind, fields)
    }
}

/// The change feed, with what the swarm backend last told it of each
/// service's rollout and problem, so that it tells only changes.
pub(super) struct FeedWriter {
    pub(super) feed: Arc<Feed>,
    /// `(updated, outdated)` last told of each service while an update
    /// of it rolls.
    pub(super) progress: Mutex<HashMap<ServiceName, (usize, usize)>>,
    /// The problem last told (or seen) of each service; absent until its
    /// status was first read while watched.
    pub(super) problems: Mutex<HashMap<ServiceName, Option<String>>>,
}

impl FeedWriter {
    pub(super) fn new(feed: Arc<Feed>) -> Self {
        FeedWriter {
            feed,
            progress: Mutex::new(HashMap::new()),
            problems: Mutex::new(HashMap::new()),
        }
    }

    /// Tells what `status` of `service` changed of its problem, and of its
    /// rollout's progress while it rolls the stored definition, whose
    /// config hash is `hash`.
    pub(super) fn status_read(&self, service: &ServiceName, hash: &str, status: &ServiceStatus) {
        let told = self
            .problems
            .lock()
            .expect("the problem table is never poisoned")
            .insert(service.clone(), status.problem.clone());
        // Before the first read, a problem is news and its absence is not.
        let news = told.map_or(status.problem.is_some(), |told| told != status.problem);
        if news {
            self.feed.publish(
                EventKind::Problem,
                service.as_str(),
                json!({"problem": status.problem}),
            );
        }
        let mut progress = self
            .progress
            .lock()
            .expect("the progress table is never poisoned");
        // As the containers backend tells it: while older tasks remain.
        // Their last one gone, the outcome follows once Swarm ends the
        // update.
        if status.rollout.state != RolloutState::Rolling || status.rollout.outdated == 0 {
            progress.remove(service);
            return;
        }
        let counts = (status.rollout.updated, status.rollout.outdated);
        if progress.insert(service.clone(), counts) != Some(counts) {
            self.feed.publish(
                EventKind::RolloutProgress,
                service.as_str(),
                json!({"config_hash": hash, "updated": counts.0, "outdated": counts.1}),
            );
        }
    }

    /// Forgets what it told of services no longer defined: a service
    /// created again under the name starts afresh.
    pub(super) fn keep_only(&self, defined: impl Fn(&ServiceName) -> bool) {
        self.progress
            .lock()
            .expect("the progress table is never poisoned")
            .retain(|service, _| defined(service));
        self.problems
            .lock()
            .expect("the problem table is never poisoned")
            .retain(|service, _| defined(service));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::Rollout;
    use crate::feed::Batch;
    use ContainerChange::{Died, Removed, Started};
    use TaskState::{Complete, Failed, Pending, Ready, Remove, Running, Shutdown, Starting};

    fn seen(desired: TaskState, state: TaskState) -> SeenTask {
        SeenTask {
            service: ServiceName::parse("web").unwrap(),
            name: "prod-web.1".into(),
            desired_state: desired,
            state,
            config_hash: "h".into(),
            probed: false,
            exit_code: None,
            unhealthy: false,
        }
    }

    fn checked(task: SeenTask) -> SeenTask {
        SeenTask {
            probed: true,
            ..task
        }
    }

    fn exited(task: SeenTask, code: i64) -> SeenTask {
        SeenTask {
            exit_code: Some(code),
            ..task
        }
    }

    #[test]
    fn a_task_that_starts_is_started_once() {
        let pending = seen(Running, Pending);
        let running = seen(Running, Running);
        assert_eq!(container_changes(None, Some(&pending)), []);
        assert_eq!(
            container_changes(Some(&pending), Some(&running)),
            [Started { health: None }]
        );
        assert_eq!(container_changes(Some(&running), Some(&running)), []);
        // Without a health check, `starting` is the start itself.
        assert_eq!(
            container_changes(None, Some(&seen(Running, Starting))),
            [Started { health: None }]
        );
        assert_eq!(
            container_changes(Some(&seen(Running, Starting)), Some(&running)),
            []
        );
    }

    #[test]
    fn a_checked_task_is_starting_until_swarm_calls_it_running() {
        let starting = checked(seen(Running, Starting));
        let running = checked(seen(Running, Running));
        assert_eq!(
            container_changes(Some(&checked(seen(Ready, Pending))), Some(&starting)),
            [Started {
                health: Some(Health::Starting)
            }]
        );
        assert_eq!(
            container_changes(Some(&starting), Some(&running)),
            [ContainerChange::Health(Health::Healthy)]
        );
        // Both between two polls.
        assert_eq!(
            container_changes(None, Some(&running)),
            [Started {
                health: Some(Health::Healthy)
            }]
        );
        let unhealthy = SeenTask {
            unhealthy: true,
            ..exited(checked(seen(Shutdown, Failed)), 137)
        };
        assert_eq!(
            container_changes(Some(&running), Some(&unhealthy)),
            [
                ContainerChange::Health(Health::Unhealthy),
                Died {
                    exit_code: Some(137)
                },
                Removed
            ]
        );
    }

    #[test]
    fn a_task_that_fails_dies_with_its_code_and_leaves_the_list() {
        let running = seen(Running, Running);
        // Swarm marks it failed, then wants it shut down.
        let failed = exited(seen(Running, Failed), 3);
        assert_eq!(
            container_changes(Some(&running), Some(&failed)),
            [Died { exit_code: Some(3) }]
        );
        let history = exited(seen(Shutdown, Failed), 3);
        assert_eq!(container_changes(Some(&failed), Some(&history)), [Removed]);
        // Swarm drops it from its history later: nothing more to tell.
        assert_eq!(container_changes(Some(&history), None), []);
        // Started and failed between two polls.
        assert_eq!(
            container_changes(Some(&seen(Running, Pending)), Some(&history)),
            [
                Started { health: None },
                Died { exit_code: Some(3) },
                Removed
            ]
        );
        let done = exited(seen(Shutdown, Complete), 0);
        assert_eq!(
            container_changes(None, Some(&done)),
            [
                Started { health: None },
                Died { exit_code: Some(0) },
                Removed
            ]
        );
    }

    #[test]
    fn a_task_scaled_away_dies_once_it_stops_and_then_is_removed() {
        let running = seen(Running, Running);
        let stopping = seen(Remove, Running);
        assert_eq!(container_changes(Some(&running), Some(&stopping)), []);
        // Gone from the listing once stopped, or shown shut down.
        assert_eq!(
            container_changes(Some(&stopping), None),
            [Died { exit_code: None }, Removed]
        );
        assert_eq!(
            container_changes(Some(&stopping), Some(&seen(Shutdown, Shutdown))),
            [Died { exit_code: None }, Removed]
        );
        // A task never placed goes without a container to tell of.
        assert_eq!(
            container_changes(Some(&seen(Running, Pending)), None),
            [Removed]
        );
    }

    fn status(problem: Option<&str>, state: RolloutState, updated: usize) -> ServiceStatus {
        ServiceStatus {
            running_resources: 0,
            healthy_resources: 0,
            desired_resources: Some(2),
            containers: Vec::new(),
            rollout: Rollout {
                state,
                updated,
                outdated: 2 - updated,
                error: None,
            },
            problem: problem.map(str::to_owned),
            failed_attempts: 0,
        }
    }

    #[tokio::test]
    async fn a_status_read_tells_only_what_changed_of_the_problem_and_the_progress() {
        let feed = Feed::new(16);
        let mut cursor = feed.watch(None);
        let writer = FeedWriter::new(feed.clone());
        let web = ServiceName::parse("web").unwrap();
        let reads = [
            // First read: no problem is no news.
            status(None, RolloutState::Complete, 0),
            status(None, RolloutState::Rolling, 0),
            status(None, RolloutState::Rolling, 0),
            status(Some("no such image"), RolloutState::Rolling, 1),
            status(Some("no such image"), RolloutState::Rolling, 1),
            // Swarm still updates, but no older task is left.
            status(None, RolloutState::Rolling, 2),
            status(None, RolloutState::Complete, 2),
            // A later update starts from nothing told.
            status(None, RolloutState::Rolling, 0),
        ];
        for read in &reads {
            writer.status_read(&web, "h2", read);
        }
        let Batch::Events(events) = cursor.next().await else {
            panic!("a reset");
        };
        let told: Vec<(&str, Value)> = events
            .iter()
            .map(|e| {
                let mut data = e.data.clone();
                let data = data.as_object_mut().unwrap();
                data.remove("time");
                assert_eq!(data.remove("service"), Some(json!("web")));
                (e.kind.name(), Value::Object(data.clone()))
            })
            .collect();
        assert_eq!(
            told,
            [
                (
                    "rollout.progress",
                    json!({"config_hash": "h2", "updated": 0, "outdated": 2})
                ),
                ("problem", json!({"problem": "no such image"})),
                (
                    "rollout.progress",
                    json!({"config_hash": "h2", "updated": 1, "outdated": 1})
                ),
                ("problem", json!({"problem": null})),
                (
                    "rollout.progress",
                    json!({"config_hash": "h2", "updated": 0, "outdated": 2})
                ),
            ]
        );
    }

    #[test]
    fn a_slots_tasks_are_told_together_the_earlier_first() {
        let named = |name: &str| SeenTask {
            name: name.into(),
            ..seen(Running, Running)
        };
        let before = HashMap::from([
            ("b".to_owned(), named("prod-web.2")),
            ("z".to_owned(), named("prod-web.1")),
        ]);
        let now = HashMap::from([
            ("a".to_owned(), named("prod-web.1")),
            ("b".to_owned(), named("prod-web.2")),
        ]);
        let order: Vec<(&str, bool, bool)> = sightings(&before, &now)
            .into_iter()
            .map(|(id, was, is)| (id, was.is_some(), is.is_some()))
            .collect();
        assert_eq!(
            order,
            [("z", true, false), ("a", false, true), ("b", true, true)]
        );
    }

    #[test]
    fn container_events_carry_the_task_and_what_changed() {
        let task = seen(Shutdown, Failed);
        let (kind, fields) = Died { exit_code: Some(3) }.event("t1", &task);
        assert_eq!(kind, EventKind::ContainerDied);
        assert_eq!(
            fields,
            json!({"id": "t1", "name": "prod-web.1", "config_hash": "h",
                   "exit_code": 3, "restarts_itself": false})
        );
        let (kind, fields) = ContainerChange::Health(Health::Starting).event("t1", &task);
        assert_eq!(kind, EventKind::ContainerHealth);
        assert_eq!(fields["health"], "starting");
        assert_eq!(
            Removed.event("t1", &task).1,
            json!({"id": "t1", "name": "prod-web.1", "config_hash": "h"})
        );
    }
}
