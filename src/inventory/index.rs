//! The connector's picture of its own containers, kept in memory so that a
//! status answer costs a map lookup instead of a `docker ps`.
//!
//! Three sources feed it, each at its own moment: docker's events (as they
//! are read), the connector's own starts and removals (as they return), and
//! full listings (which take a while, so they describe some moment between
//! their start and their end). Every piece of information carries when it
//! was learnt, and a listing only overrides what was learnt well before the
//! listing began: anything newer is at least as recent as the listing.
//! "Well before", because docker's listing lags its own events: the engine
//! announces a container's `die` before its `docker ps` stops showing it
//! running (about 50 ms on the development machine, more under load), so a
//! listing begun just after an event can still describe the moment before.
//!
//! The index answers only while it is *live*: an event stream runs and a
//! listing begun after the stream started has been merged. Otherwise callers
//! must ask the engine.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::docker::{
    Container, ContainerEvent, ContainerState, Health, PublishedPorts, Transition,
};

/// Removed ids are remembered this long (at least until the next listing),
/// so that a late event cannot bring a removed container back.
const TOMBSTONE_TTL: Duration = Duration::from_secs(600);

/// Above this many remembered removals, those older than
/// [`TOMBSTONE_TTL`] are forgotten even without a listing.
const TOMBSTONE_SWEEP_AT: usize = 4096;

/// How long after an event docker's listing may still show the state from
/// before it (see the module's documentation). What the index learnt less
/// than this before a listing began stands against that listing; the next
/// listing (the follower relists every 30 s) still corrects it if an event
/// was missed.
const LISTING_LAG: Duration = Duration::from_secs(1);

/// One container and when the index learnt what it says about it.
#[derive(Debug, Clone)]
struct Entry {
    container: Container,
    learnt: Instant,
    /// A `kill` was seen since it last started: its next `die` is final,
    /// since the restart policy leaves a container killed or stopped on
    /// purpose down. Any other `die` of a container with the policy is
    /// followed by the engine's restart.
    kill_requested: bool,
    /// It has had a health: the check outlives a death, so its next start
    /// makes it `starting` again even without the connector's label (an
    /// image's own `HEALTHCHECK`).
    health_checked: bool,
}

impl Entry {
    fn new(container: Container, learnt: Instant) -> Self {
        Entry {
            health_checked: container.health.is_some(),
            container,
            learnt,
            kill_requested: false,
        }
    }
}

#[derive(Debug, Default)]
struct State {
    /// Service label → container id → entry.
    services: HashMap<String, HashMap<String, Entry>>,
    /// Ids known to be removed, and when that was learnt.
    removed: HashMap<String, Instant>,
    /// Host ports of running containers, by id, as last inspected; dropped
    /// when the container starts, dies or goes, since a restart may publish
    /// it on other ports.
    ports: HashMap<String, PublishedPorts>,
    /// When the running event stream started, if one runs.
    stream_since: Option<Instant>,
    /// Whether a listing begun after `stream_since` has been merged, and no
    /// listing has failed since.
    live: bool,
}

/// What the index holds, for monitoring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexSummary {
    pub live: bool,
    pub containers: usize,
}

/// The containers of one connector instance, by service.
#[derive(Debug)]
pub struct ContainerIndex {
    state: Mutex<State>,
    /// [`LISTING_LAG`]; shorter in unit tests, which would otherwise sleep
    /// through it.
    listing_lag: Duration,
}

impl Default for ContainerIndex {
    fn default() -> Self {
        Self::new()
    }
}

impl ContainerIndex {
    pub fn new() -> Self {
        ContainerIndex {
            state: Mutex::default(),
            listing_lag: LISTING_LAG,
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("container index poisoned")
    }

    /// How many containers of `service` run, if the index is live. (The
    /// connector reads whole containers; the tests count with this.)
    #[cfg(test)]
    pub fn running(&self, service: &str) -> Option<usize> {
        let state = self.state();
        if !state.live {
            return None;
        }
        Some(state.running(service))
    }

    /// How many containers of each of `services` run, if the index is live:
    /// one look at the index for all of them.
    pub fn running_counts<'a>(
        &self,
        services: impl IntoIterator<Item = &'a str>,
    ) -> Option<BTreeMap<String, usize>> {
        let state = self.state();
        if !state.live {
            return None;
        }
        Some(
            services
                .into_iter()
                .map(|service| (service.to_owned(), state.running(service)))
                .collect(),
        )
    }

    /// The containers of `service`, in any state, if the index is live.
    pub fn containers(&self, service: &str) -> Option<Vec<Container>> {
        let state = self.state();
        if !state.live {
            return None;
        }
        Some(
            state
                .services
                .get(service)
                .map_or_else(Vec::new, |containers| {
                    containers.values().map(|e| e.container.clone()).collect()
                }),
        )
    }

    /// Whether the index answers (see the module's documentation).
    pub fn is_live(&self) -> bool {
        self.state().live
    }

    pub fn summary(&self) -> IndexSummary {
        let state = self.state();
        IndexSummary {
            live: state.live,
            containers: state.services.values().map(HashMap::len).sum(),
        }
    }

    /// An event stream started at `at`: the index is live again once a
    /// listing begun after `at` is merged.
    pub fn stream_started(&self, at: Instant) {
        let mut state = self.state();
        state.stream_since = Some(at);
        state.live = false;
        // Events may have been missed: no port can be vouched for.
        state.ports.clear();
    }

    /// The ports known for each of `ids` that has them.
    pub fn ports(&self, ids: &[&str]) -> HashMap<String, PublishedPorts> {
        let state = self.state();
        ids.iter()
            .filter_map(|id| Some((id.to_string(), state.ports.get(*id)?.clone())))
            .collect()
    }

    /// Remembers inspected ports of containers the index holds as running.
    pub fn record_ports(&self, inspected: HashMap<String, PublishedPorts>) {
        let mut state = self.state();
        for (id, ports) in inspected {
            let running = state.services.values().any(|containers| {
                containers
                    .get(&id)
                    .is_some_and(|e| e.container.is_running())
            });
            if running {
                state.ports.insert(id, ports);
            }
        }
    }

    /// The event stream ended: changes may go unseen until it runs again.
    pub fn stream_ended(&self) {
        let mut state = self.state();
        state.stream_since = None;
        state.live = false;
    }

    /// A listing failed: the engine may not be answering, so nothing the
    /// index holds can be vouched for.
    pub fn listing_failed(&self) {
        self.state().live = false;
    }

    /// Applies one event, as learnt now.
    pub fn apply(&self, event: &ContainerEvent) {
        let now = Instant::now();
        let mut state = self.state();
        let (service, id) = (&event.container.service, &event.container.id);
        if state.removed.contains_key(id) {
            return;
        }
        if matches!(
            event.transition,
            Transition::Started | Transition::Died | Transition::Destroyed
        ) {
            state.ports.remove(id);
        }
        let known = state
            .services
            .get_mut(service)
            .and_then(|containers| containers.get_mut(id));
        match (&event.transition, known) {
            (Transition::Destroyed, _) => state.forget(service, id, now),
            (Transition::Renamed, Some(entry)) => {
                entry.container.name.clone_from(&event.container.name);
                entry.learnt = now;
            }
            (Transition::Killed, Some(entry)) => entry.kill_requested = true,
            // A verdict on a container that no longer runs is stale.
            (Transition::HealthChanged(health), Some(entry)) => {
                if entry.container.is_running() {
                    entry.container.health = Some(*health);
                    entry.health_checked = true;
                    entry.learnt = now;
                }
            }
            // A rename, kill or verdict of a container never heard of says
            // nothing about its state; the next listing brings it.
            (Transition::Renamed | Transition::Killed | Transition::HealthChanged(_), None) => {}
            // A `create` read after the start the connector recorded itself
            // says nothing new.
            (Transition::Created, Some(_)) => {}
            (Transition::Died, Some(entry)) => {
                entry.container.status.clone_from(&event.container.status);
                entry.container.last_exit_code = event.container.last_exit_code;
                entry.container.health = None;
                if entry.kill_requested || !event.restarts_itself {
                    entry.container.state.clone_from(&event.container.state);
                } else {
                    restarting(&mut entry.container);
                }
                entry.learnt = now;
            }
            (_, Some(entry)) => {
                entry.container.state.clone_from(&event.container.state);
                entry.container.status.clone_from(&event.container.status);
                entry.container.health = event.container.health;
                if event.transition == Transition::Started {
                    entry.kill_requested = false;
                    if entry.health_checked {
                        entry.container.health = Some(Health::Starting);
                    }
                }
                entry.learnt = now;
            }
            (transition, None) => {
                let mut container = event.container.clone();
                if *transition == Transition::Died && event.restarts_itself {
                    restarting(&mut container);
                }
                state
                    .services
                    .entry(service.clone())
                    .or_default()
                    .insert(id.clone(), Entry::new(container, now));
            }
        }
    }

    /// Records a container the connector itself just started. Events may
    /// have told of it already: its `create` (then it runs now, as the start
    /// returned), or what happened after its start (it may have died since),
    /// which stands.
    pub fn record_started(&self, container: Container) {
        let now = Instant::now();
        let mut state = self.state();
        if state.removed.contains_key(&container.id) {
            return;
        }
        let containers = state.services.entry(container.service.clone()).or_default();
        match containers.get_mut(&container.id) {
            Some(entry) if entry.container.state == ContainerState::Created => {
                entry.health_checked |= container.health.is_some();
                entry.container = container;
                entry.learnt = now;
            }
            Some(_) => {}
            None => {
                containers.insert(container.id.clone(), Entry::new(container, now));
            }
        }
    }

    /// Records containers of `service` the connector itself just removed.
    pub fn record_removed(&self, service: &str, ids: &[String]) {
        let now = Instant::now();
        let mut state = self.state();
        for id in ids {
            state.forget(service, id, now);
        }
    }

    /// Merges a full listing of the instance's containers that began at
    /// `began`; makes the index live if the event stream ran by then.
    pub fn merge_listing(&self, began: Instant, listing: &[Container]) {
        // What was learnt after this may be newer than what the listing shows.
        let stands_after = began.checked_sub(self.listing_lag).unwrap_or(began);
        let mut state = self.state();
        let mut merged: HashMap<String, HashMap<String, Entry>> = HashMap::new();
        for container in listing {
            let removed_since = state
                .removed
                .get(&container.id)
                .is_some_and(|t| *t > stands_after);
            let known_since = state
                .services
                .get(&container.service)
                .and_then(|containers| containers.get(&container.id))
                .is_some_and(|entry| entry.learnt > stands_after);
            if removed_since || known_since {
                continue;
            }
            // A listing cannot tell restarts or kills: keep what events said.
            let mut entry = Entry::new(container.clone(), began);
            if let Some(earlier) = state
                .services
                .get(&container.service)
                .and_then(|containers| containers.get(&container.id))
            {
                entry.container.restarts = earlier.container.restarts;
                if entry.container.last_exit_code.is_none() {
                    entry.container.last_exit_code = earlier.container.last_exit_code;
                }
                entry.kill_requested = earlier.kill_requested;
                entry.health_checked |= earlier.health_checked;
            }
            merged
                .entry(container.service.clone())
                .or_default()
                .insert(container.id.clone(), entry);
        }
        // What was learnt since `stands_after` stands; what was learnt
        // before and is not listed is gone.
        for (service, containers) in &state.services {
            for (id, entry) in containers {
                if entry.learnt > stands_after {
                    merged
                        .entry(service.clone())
                        .or_default()
                        .insert(id.clone(), entry.clone());
                }
            }
        }
        state.services = merged;
        let State {
            services, ports, ..
        } = &mut *state;
        ports.retain(|id, _| services.values().any(|c| c.contains_key(id)));
        // The listing agrees with removals learnt well before it began.
        state.removed.retain(|_, learnt| *learnt > stands_after);
        if state.stream_since.is_some_and(|since| since <= began) {
            state.live = true;
        }
    }
}

/// A container whose process just ended by itself: its restart policy
/// brings it back (docker shows it `restarting` meanwhile), once more.
fn restarting(container: &mut Container) {
    let code = container
        .last_exit_code
        .map_or_else(|| "unknown".to_owned(), |code| code.to_string());
    container.state = ContainerState::Restarting;
    container.status = format!("Restarting ({code})");
    container.restarts += 1;
}

impl State {
    /// How many containers of `service` run.
    fn running(&self, service: &str) -> usize {
        self.services.get(service).map_or(0, |containers| {
            containers
                .values()
                .filter(|entry| entry.container.is_running())
                .count()
        })
    }

    fn forget(&mut self, service: &str, id: &str, now: Instant) {
        self.ports.remove(id);
        if let Some(containers) = self.services.get_mut(service) {
            containers.remove(id);
            if containers.is_empty() {
                self.services.remove(service);
            }
        }
        if self.removed.len() >= TOMBSTONE_SWEEP_AT {
            self.removed
                .retain(|_, learnt| now.duration_since(*learnt) < TOMBSTONE_TTL);
        }
        self.removed.insert(id.to_owned(), now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::docker::EventTime;

    fn container(id: &str, service: &str, state: &str) -> Container {
        Container {
            id: id.into(),
            service: service.into(),
            name: format!("default-{service}-{id}"),
            state: ContainerState::parse(state),
            status: String::new(),
            config_hash: "h".into(),
            created: 0,
            restarts: 0,
            last_exit_code: None,
            health: None,
        }
    }

    fn event(transition: Transition, id: &str, service: &str) -> ContainerEvent {
        let state = match transition {
            Transition::Created => "created",
            Transition::Started => "running",
            Transition::Paused => "paused",
            Transition::Died => "exited",
            Transition::Killed
            | Transition::Renamed
            | Transition::HealthChanged(_)
            | Transition::Destroyed => "",
        };
        ContainerEvent {
            transition,
            container: container(id, service, state),
            time: EventTime::from_nanos(0),
            restarts_itself: true,
        }
    }

    /// The listing lag of the tests that sleep through it.
    const SHORT_LAG: Duration = Duration::from_millis(20);

    /// An index made live by an empty listing after its stream started.
    fn live_index() -> ContainerIndex {
        live_index_with_lag(LISTING_LAG)
    }

    fn live_index_with_lag(listing_lag: Duration) -> ContainerIndex {
        let index = ContainerIndex {
            listing_lag,
            ..ContainerIndex::new()
        };
        let started = Instant::now();
        index.stream_started(started);
        index.merge_listing(started, &[]);
        index
    }

    #[test]
    fn answers_only_while_live() {
        let index = ContainerIndex::new();
        assert_eq!(index.running("web"), None);
        let began = Instant::now();
        // A listing from before the stream started cannot vouch for what
        // happened before the stream saw it.
        index.merge_listing(began, &[container("a", "web", "running")]);
        index.stream_started(Instant::now());
        assert_eq!(index.running("web"), None);
        index.merge_listing(Instant::now(), &[container("a", "web", "running")]);
        assert_eq!(index.running("web"), Some(1));
        assert_eq!(index.running("db"), Some(0));
        index.listing_failed();
        assert_eq!(index.running("web"), None);
        index.merge_listing(Instant::now(), &[container("a", "web", "running")]);
        assert_eq!(index.running("web"), Some(1));
        index.stream_ended();
        assert_eq!(index.containers("web"), None);
    }

    #[test]
    fn events_move_containers_through_their_states() {
        let index = live_index();
        index.apply(&event(Transition::Created, "a", "web"));
        assert_eq!(index.running("web"), Some(0));
        index.apply(&event(Transition::Started, "a", "web"));
        index.apply(&event(Transition::Started, "b", "web"));
        assert_eq!(index.running("web"), Some(2));
        index.apply(&event(Transition::Died, "a", "web"));
        assert_eq!(index.running("web"), Some(1));
        index.apply(&event(Transition::Paused, "b", "web"));
        assert_eq!(index.running("web"), Some(0));
        index.apply(&event(Transition::Destroyed, "a", "web"));
        assert_eq!(index.containers("web").unwrap().len(), 1);
    }

    #[test]
    fn a_late_create_does_not_undo_a_recorded_start() {
        let index = live_index();
        index.record_started(container("a", "web", "running"));
        index.apply(&event(Transition::Created, "a", "web"));
        index.apply(&event(Transition::Started, "a", "web"));
        assert_eq!(index.running("web"), Some(1));
    }

    #[test]
    fn a_recorded_start_moves_on_from_a_create_already_seen() {
        let index = live_index();
        index.apply(&event(Transition::Created, "a", "web"));
        index.record_started(container("a", "web", "running"));
        assert_eq!(index.running("web"), Some(1));
    }

    #[test]
    fn a_recorded_start_does_not_undo_a_death_already_seen() {
        let index = live_index();
        index.apply(&event(Transition::Started, "a", "web"));
        index.apply(&event(Transition::Died, "a", "web"));
        index.record_started(container("a", "web", "running"));
        assert_eq!(index.running("web"), Some(0));
    }

    #[test]
    fn late_events_cannot_bring_back_a_removed_container() {
        let index = live_index();
        index.record_started(container("a", "web", "running"));
        index.record_removed("web", &["a".to_owned()]);
        index.apply(&event(Transition::Started, "a", "web"));
        index.record_started(container("a", "web", "running"));
        assert_eq!(index.running("web"), Some(0));
        assert_eq!(index.summary().containers, 0);
    }

    #[test]
    fn a_listing_overrides_only_what_was_learnt_well_before_it_began() {
        let index = live_index_with_lag(SHORT_LAG);
        index.apply(&event(Transition::Started, "old", "web"));
        index.apply(&event(Transition::Started, "stale", "web"));
        std::thread::sleep(SHORT_LAG * 2);
        let began = Instant::now();
        std::thread::sleep(Duration::from_millis(2));
        // While the listing ran: one died, one was started, one removed.
        index.apply(&event(Transition::Died, "old", "web"));
        index.record_started(container("new", "web", "running"));
        index.apply(&event(Transition::Started, "gone", "web"));
        index.record_removed("web", &["gone".to_owned()]);
        // The listing saw "old" still running and "gone" still there, and
        // missed "stale", whose destroy event was lost.
        index.merge_listing(
            began,
            &[
                container("old", "web", "running"),
                container("gone", "web", "running"),
                container("other", "db", "running"),
            ],
        );
        let mut web: Vec<(String, String)> = index
            .containers("web")
            .unwrap()
            .into_iter()
            .map(|c| (c.id, c.state.as_str().to_owned()))
            .collect();
        web.sort();
        assert_eq!(
            web,
            [
                ("new".to_owned(), "running".to_owned()),
                // Died unasked: its restart policy brings it back.
                ("old".to_owned(), "restarting".to_owned())
            ]
        );
        assert_eq!(index.running("db"), Some(1));
    }

    #[test]
    fn a_kill_makes_the_next_death_final_and_other_deaths_restarts() {
        let index = live_index_with_lag(SHORT_LAG);
        let state_of = |index: &ContainerIndex| {
            let c = index.containers("web").unwrap().remove(0);
            (c.state.as_str().to_owned(), c.restarts, c.last_exit_code)
        };
        let mut died = event(Transition::Died, "a", "web");
        died.container.last_exit_code = Some(1);
        index.apply(&event(Transition::Started, "a", "web"));
        index.apply(&died);
        assert_eq!(state_of(&index), ("restarting".into(), 1, Some(1)));
        index.apply(&event(Transition::Started, "a", "web"));
        index.apply(&died);
        assert_eq!(state_of(&index), ("restarting".into(), 2, Some(1)));
        index.apply(&event(Transition::Started, "a", "web"));
        assert_eq!(state_of(&index), ("running".into(), 2, Some(1)));
        index.apply(&event(Transition::Killed, "a", "web"));
        died.container.last_exit_code = Some(137);
        index.apply(&died);
        assert_eq!(state_of(&index), ("exited".into(), 2, Some(137)));
        // A start clears the kill: the next death is a restart again.
        index.apply(&event(Transition::Started, "a", "web"));
        index.apply(&died);
        assert_eq!(state_of(&index), ("restarting".into(), 3, Some(137)));
        // Without the restart policy, every death is final.
        index.apply(&event(Transition::Started, "a", "web"));
        died.restarts_itself = false;
        index.apply(&died);
        assert_eq!(state_of(&index), ("exited".into(), 3, Some(137)));
    }

    #[test]
    fn removals_are_forgotten_once_a_listing_agrees() {
        let index = live_index_with_lag(SHORT_LAG);
        index.record_removed("web", &["a".to_owned()]);
        std::thread::sleep(SHORT_LAG * 2);
        index.merge_listing(Instant::now(), &[]);
        assert!(index.state().removed.is_empty());
    }

    #[test]
    fn a_listing_begun_just_after_an_event_cannot_undo_it() {
        // Docker announces a death before its listing stops showing the
        // container running: a listing begun just after the event says so.
        let index = live_index();
        index.apply(&event(Transition::Started, "a", "web"));
        index.apply(&event(Transition::Died, "a", "web"));
        index.apply(&event(Transition::Destroyed, "b", "web"));
        std::thread::sleep(Duration::from_millis(5));
        index.merge_listing(
            Instant::now(),
            &[
                container("a", "web", "running"),
                container("b", "web", "running"),
            ],
        );
        assert_eq!(index.running("web"), Some(0));
        assert_eq!(index.containers("web").unwrap().len(), 1);
    }

    /// The health the index holds for the one container of `web`.
    fn health_of(index: &ContainerIndex) -> Option<Health> {
        index.containers("web").unwrap().remove(0).health
    }

    #[test]
    fn health_follows_its_verdicts_and_restarts_from_starting() {
        let index = live_index();
        let mut checked_start = event(Transition::Started, "a", "web");
        checked_start.container.health = Some(Health::Starting);
        index.apply(&checked_start);
        assert_eq!(health_of(&index), Some(Health::Starting));
        index.apply(&event(
            Transition::HealthChanged(Health::Healthy),
            "a",
            "web",
        ));
        assert_eq!(health_of(&index), Some(Health::Healthy));
        index.apply(&event(
            Transition::HealthChanged(Health::Unhealthy),
            "a",
            "web",
        ));
        assert_eq!(health_of(&index), Some(Health::Unhealthy));
        // A death ends the verdict; the restart (whose event carries no
        // label here, as for an image's own check) starts it over.
        index.apply(&event(Transition::Died, "a", "web"));
        assert_eq!(health_of(&index), None);
        index.apply(&event(
            Transition::HealthChanged(Health::Healthy),
            "a",
            "web",
        ));
        assert_eq!(
            health_of(&index),
            None,
            "a verdict on a dead container is stale"
        );
        index.apply(&event(Transition::Started, "a", "web"));
        assert_eq!(health_of(&index), Some(Health::Starting));
    }

    #[test]
    fn a_container_without_a_check_has_no_health_and_unknown_verdicts_wait_for_a_listing() {
        let index = live_index();
        index.apply(&event(Transition::Started, "a", "web"));
        assert_eq!(health_of(&index), None);
        index.apply(&event(
            Transition::HealthChanged(Health::Healthy),
            "b",
            "web",
        ));
        assert_eq!(index.containers("web").unwrap().len(), 1);
    }

    #[test]
    fn a_listing_brings_health_and_keeps_that_a_container_had_one() {
        let index = live_index_with_lag(SHORT_LAG);
        let mut listed = container("a", "web", "running");
        listed.health = Some(Health::Unhealthy);
        index.merge_listing(Instant::now(), &[listed]);
        assert_eq!(health_of(&index), Some(Health::Unhealthy));
        std::thread::sleep(SHORT_LAG * 2);
        index.merge_listing(Instant::now(), &[container("a", "web", "exited")]);
        assert_eq!(health_of(&index), None);
        index.apply(&event(Transition::Started, "a", "web"));
        assert_eq!(health_of(&index), Some(Health::Starting));
    }
}
