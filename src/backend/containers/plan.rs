//! Pure planning for one service's containers: which of them hold its
//! places, what a pass removes and how many it starts, and the names new
//! containers get. No docker, no locks: table-tested below.

use std::collections::BTreeSet;
use std::sync::Mutex;

use crate::docker::{Container, Health};
use crate::domain::ServiceDefinition;

/// Which definition fills a shortfall, and which containers count as dead.
pub(super) struct Filling<'a> {
    /// The current definition's hash: its containers are kept first.
    pub(super) current_hash: &'a str,
    /// What new containers are started from: the current definition, or,
    /// while its roll fails, the earlier definition the service still runs.
    pub(super) start: &'a ServiceDefinition,
    /// Whether `start` is such an earlier definition: the current one's
    /// containers that do not run are then dead weight, not places.
    pub(super) falling_back: bool,
}

/// What a pass removes, and how many containers it starts.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Plan {
    pub(super) remove: Vec<String>,
    pub(super) start: usize,
}

impl Filling<'_> {
    /// Whether `container` fills one of the service's places.
    pub(super) fn holds_a_place(&self, container: &Container) -> bool {
        let of_failing_definition = self.falling_back && container.config_hash == self.current_hash;
        container.holds_a_place() && (container.is_running() || !of_failing_definition)
    }
}

impl Plan {
    pub(super) fn new(containers: &[Container], filling: &Filling, target: usize) -> Self {
        let (mut places, dead): (Vec<&Container>, Vec<&Container>) =
            containers.iter().partition(|c| filling.holds_a_place(c));
        let mut remove = removable_ids(dead);
        // Keep-first order: running, current definition, healthy, oldest;
        // the tail goes. Running first, so a surplus never costs a running
        // container while one that does not run (restarting, say) stays.
        // An outdated definition goes before an unhealthy container of the
        // current one: the reconciler replaces the unhealthy one anyway,
        // while the outdated one would only be rolled later. Oldest kept,
        // as it has proved it keeps running (see docs/design.md).
        let current_hash = filling.current_hash;
        places.sort_by(|a, b| {
            b.is_running()
                .cmp(&a.is_running())
                .then_with(|| (a.config_hash != current_hash).cmp(&(b.config_hash != current_hash)))
                .then_with(|| health_rank(a).cmp(&health_rank(b)))
                .then_with(|| a.created.cmp(&b.created))
                .then_with(|| name_number(&a.name).cmp(&name_number(&b.name)))
        });
        let start = target.saturating_sub(places.len());
        remove.extend(places.iter().skip(target).map(|c| c.id.clone()));
        Plan { remove, start }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.remove.is_empty() && self.start == 0
    }
}

/// How much a place's health is worth keeping, best first: serving
/// (healthy, or without a check), still starting, unhealthy.
fn health_rank(container: &Container) -> u8 {
    match container.health {
        None | Some(Health::Healthy) => 0,
        Some(Health::Starting) => 1,
        Some(Health::Unhealthy) => 2,
    }
}

/// Ids of the containers a removal should name: all but those the engine is
/// already removing.
pub(super) fn removable_ids<'a>(
    containers: impl IntoIterator<Item = &'a Container>,
) -> Vec<String> {
    containers
        .into_iter()
        .filter(|c| !c.is_being_removed())
        .map(|c| c.id.clone())
        .collect()
}

/// Seconds since the Unix epoch, as docker gives creation times.
pub(super) fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_secs() as i64)
}

/// The trailing `-N` of a container name, if any.
pub(super) fn name_number(name: &str) -> Option<u32> {
    name.rsplit_once('-').and_then(|(_, n)| n.parse().ok())
}

/// Hands out container names `<instance>-<service>-<n>` with the lowest
/// numbers no container of the service holds, never the same one twice.
pub(super) struct NameAllocator {
    prefix: String,
    taken: Mutex<BTreeSet<u32>>,
}

impl NameAllocator {
    pub(super) fn new(prefix: String, containers: &[Container]) -> Self {
        let taken = containers
            .iter()
            .filter_map(|c| {
                c.name
                    .strip_prefix(&prefix)
                    .and_then(|rest| rest.parse().ok())
            })
            .collect();
        NameAllocator {
            prefix,
            taken: Mutex::new(taken),
        }
    }

    pub(super) fn next(&self) -> String {
        let mut taken = self.taken.lock().expect("name table poisoned");
        let number = (1..).find(|n| !taken.contains(n)).expect("a free number");
        taken.insert(number);
        format!("{}{number}", self.prefix)
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::docker::ContainerState;

    pub(in crate::backend::containers) fn container(
        id: &str,
        state: &str,
        hash: &str,
        created: i64,
    ) -> Container {
        Container {
            id: id.into(),
            service: "web".into(),
            name: format!("default-web-{id}"),
            state: ContainerState::parse(state),
            status: String::new(),
            config_hash: hash.into(),
            created,
            restarts: 0,
            last_exit_code: None,
            health: None,
        }
    }

    /// A filling from the current definition, whose hash is `hash`; with
    /// `falling_back`, as while that definition's roll fails and an earlier one runs.
    fn filling<'a>(
        definition: &'a ServiceDefinition,
        hash: &'a str,
        falling_back: bool,
    ) -> Filling<'a> {
        Filling {
            current_hash: hash,
            start: definition,
            falling_back,
        }
    }

    fn app_definition() -> ServiceDefinition {
        ServiceDefinition::from_create_body(&serde_json::json!({"name": "web", "image": "app:1"}))
            .unwrap()
    }

    #[test]
    fn scale_down_removes_dead_then_not_running_then_old_definitions_then_newest() {
        let containers = [
            container("1", "running", "new", 1),
            container("2", "running", "old", 0),
            container("3", "exited", "new", 0),
            container("4", "running", "new", 3),
            container("5", "running", "new", 2),
            container("6", "restarting", "new", 0),
            container("7", "paused", "new", 0),
        ];
        let definition = app_definition();
        let plan = Plan::new(&containers, &filling(&definition, "new", false), 2);
        assert_eq!(
            plan,
            Plan {
                remove: vec!["3".into(), "7".into(), "4".into(), "2".into(), "6".into()],
                start: 0
            }
        );
    }

    fn with_health(container: Container, health: Health) -> Container {
        Container {
            health: Some(health),
            ..container
        }
    }

    #[test]
    fn scale_down_removes_outdated_then_unhealthy_then_starting_then_newest() {
        let definition = app_definition();
        let filling = filling(&definition, "new", false);
        let containers = [
            with_health(container("1", "running", "new", 0), Health::Unhealthy),
            container("2", "running", "old", 5),
            with_health(container("3", "running", "new", 1), Health::Healthy),
            container("4", "running", "new", 4),
            with_health(container("5", "running", "new", 2), Health::Starting),
            container("6", "running", "new", 3),
        ];
        for (target, remove) in [
            (5, vec!["2"]),
            (4, vec!["1", "2"]),
            (3, vec!["5", "1", "2"]),
            (2, vec!["4", "5", "1", "2"]),
            (1, vec!["6", "4", "5", "1", "2"]),
        ] {
            let plan = Plan::new(&containers, &filling, target);
            assert_eq!(plan.remove, remove, "down to {target}");
        }
    }

    #[test]
    fn while_a_roll_fails_its_containers_that_do_not_run_are_dead_weight() {
        let containers = [
            container("1", "running", "old", 0),
            container("2", "restarting", "new", 1),
            container("3", "running", "new", 2),
        ];
        let definition = app_definition();
        assert_eq!(
            Plan::new(&containers, &filling(&definition, "new", false), 3),
            Plan {
                remove: vec![],
                start: 0
            }
        );
        assert_eq!(
            Plan::new(&containers, &filling(&definition, "new", true), 3),
            Plan {
                remove: vec!["2".into()],
                start: 1
            }
        );
    }

    #[test]
    fn scale_up_starts_the_shortfall_and_clears_the_dead() {
        let containers = [
            container("1", "running", "h", 0),
            container("2", "created", "h", 0),
            container("3", "removing", "h", 0),
        ];
        let definition = app_definition();
        assert_eq!(
            Plan::new(&containers, &filling(&definition, "h", false), 3),
            Plan {
                remove: vec!["2".into()],
                start: 2
            }
        );
    }

    #[test]
    fn names_fill_gaps_and_never_repeat() {
        let containers = [
            container("1", "running", "h", 0),
            container("3", "running", "h", 0),
        ];
        let names = NameAllocator::new("default-web-".into(), &containers);
        assert_eq!(
            [names.next(), names.next(), names.next()],
            ["default-web-2", "default-web-4", "default-web-5"]
        );
    }
}
