//! The swarm backend: each service is one Swarm service, which Swarm
//! places, heals and rolls across its nodes. The connector hands it the
//! stored definition and count, waits for a scale to take effect, and
//! reads its tasks back for status (interpreted in `status`).
//!
//! Operations on one service are serialized by a per-service lock, so a
//! scale cannot create a Swarm service that a delete just removed, or
//! create one from a definition a PUT has just replaced. The lock is not
//! held while a scale waits for Swarm.

mod status;
mod watch;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;

use crate::backend::locks::ServiceLocks;
use crate::backend::{settle_scale, Backend, Rollout, RolloutState, ScaleReport, ServiceStatus};
use crate::docker::{deadline, ListedTask};
use crate::docker::{Lookup, SwarmCli, SwarmService, Task};
use crate::domain::{Precondition, ScaleRequest, ServiceDefinition, ServiceName};
use crate::error::Error;
use crate::feed::EventKind;
use crate::feed::Feed;
use crate::store::{Origin, Scaled, Store, StoredService, DONE};
use serde_json::json;
use status::{newest_error, status_of};
use watch::{
    container_changes, sightings, FeedWriter, SeenTask, SEEN_KEPT, TASK_POLL, WATCHER_CHECK,
};

/// How often a scale asks Swarm how many tasks run.
const SCALE_POLL: Duration = Duration::from_millis(200);

/// How often the update watcher asks Swarm how an update it took goes.
const UPDATE_POLL: Duration = Duration::from_secs(2);

/// How long after a hand-over an update that does not look under way is
/// still watched: Swarm's update status may still be the last update's
/// until its updater starts on the new one.
const UPDATE_START_GRACE: Duration = Duration::from_secs(5);

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
    /// For each service whose stored definition followed Swarm's own
    /// rollback: the config hash it went back to, and the definition Swarm
    /// gave up, whose tasks say why. Status says `rolled_back` while the
    /// former stays current; a PUT or a rollback clears it. In memory
    /// only, like `handed_over`.
    rollbacks: Mutex<HashMap<ServiceName, (String, ServiceDefinition)>>,
    /// The services whose definition docker took for a rolling update,
    /// with when, until the watcher (see [`SwarmBackend::follow_updates`])
    /// has seen the update end. Only these are asked about, so the
    /// watcher's cost follows the updates in flight, not the services.
    watching: Mutex<HashMap<ServiceName, Instant>>,
    /// Where the tasks' changes and the updates' progress and outcome are
    /// told (see `watch`).
    feed: FeedWriter,
}

impl SwarmBackend {
    pub fn new(cli: SwarmCli, store: Arc<Store>, scale_timeout: Duration, feed: Arc<Feed>) -> Self {
        SwarmBackend {
            cli,
            locks: ServiceLocks::new(store.clone()),
            store,
            scale_timeout,
            handed_over: Mutex::new(HashMap::new()),
            rollbacks: Mutex::new(HashMap::new()),
            watching: Mutex::new(HashMap::new()),
            feed: FeedWriter::new(feed),
        }
    }

    /// Runs until the runtime stops: watches each update docker took until
    /// Swarm ends it, so that when Swarm rolls it back by itself the store
    /// follows at once (see [`SwarmBackend::follow_rollback`]), not only at
    /// the next status or scale. After a restart of the connector, updates
    /// handed over before it are followed by those. Starts the task
    /// watcher beside it (see `watch`).
    pub async fn follow_updates(self: Arc<Self>) {
        tokio::spawn(self.clone().watch_tasks());
        loop {
            tokio::time::sleep(UPDATE_POLL).await;
            let watched: Vec<(ServiceName, Instant)> = self
                .watching
                .lock()
                .expect("the watch table is never poisoned")
                .iter()
                .map(|(service, since)| (service.clone(), *since))
                .collect();
            for (service, since) in watched {
                if self.update_ended(&service, since).await {
                    let mut watching = self
                        .watching
                        .lock()
                        .expect("the watch table is never poisoned");
                    // A later hand-over starts a watch of its own.
                    if watching.get(&service) == Some(&since) {
                        watching.remove(&service);
                    }
                }
            }
        }
    }

    /// Whether the update of `service` handed over at `since` has ended,
    /// its rollback (if Swarm rolled it back) followed by the store and
    /// its outcome told to the feed; a service gone is done with too.
    /// Under the service's lock, so it cannot follow a rollback across a
    /// PUT.
    async fn update_ended(&self, service: &ServiceName, since: Instant) -> bool {
        let _lock = self.locks.lock(service).await;
        let Some(stored) = self.store.service(service) else {
            return true;
        };
        let current = match self.cli.inspect(service).await {
            Ok(Some(current)) => current,
            Ok(None) => return true,
            Err(e) => {
                log::debug!("'{service}': cannot ask Swarm how its update goes: {e}");
                return false;
            }
        };
        if current.rolling() || since.elapsed() < UPDATE_START_GRACE {
            return false;
        }
        self.follow_rollback(service, stored, &current).await;
        self.publish_outcome(service).await;
        true
    }

    /// Watches the update docker just took for `service`.
    fn watch_update(&self, service: &ServiceName) {
        self.watching
            .lock()
            .expect("the watch table is never poisoned")
            .insert(service.clone(), Instant::now());
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

    /// Makes the store follow Swarm when Swarm rolled the stored definition
    /// back by itself (`--update-failure-action rollback`): the definition
    /// Swarm went back to becomes the current one again, the rolled-back
    /// one the head of the history, as after `POST .../rollback`, so that
    /// `GET /service/<name>` shows what runs. Followed only when docker is
    /// known to have taken the stored definition: this connector handed it
    /// over, or Swarm's previous spec is it (after a restart of the
    /// connector; a PUT that docker refused must not be undone). Answers
    /// the service as the store then holds it; a failure to write is logged
    /// and leaves the store as it was (status then says `failed`).
    async fn follow_rollback(
        &self,
        service: &ServiceName,
        stored: StoredService,
        current: &SwarmService,
    ) -> StoredService {
        let from = stored.definition.config_hash();
        if !self.rolled_back(&stored.definition, current) {
            return stored;
        }
        let taken = self
            .handed_over
            .lock()
            .expect("the hand-over table is never poisoned")
            .get(service)
            .is_some_and(|hash| hash == from);
        if !taken {
            match self.cli.previous_config_hash(current).await {
                Ok(Some(previous)) if previous == from => {}
                Ok(_) => return stored,
                Err(e) => {
                    log::warn!("'{service}': cannot read Swarm's previous spec: {e}");
                    return stored;
                }
            }
        }
        let origin = Origin {
            caller: "swarm".to_owned(),
            reason: Some("Swarm rolled the update back".to_owned()),
        };
        match self
            .store
            .roll_back_from(service, from, &current.config_hash, &origin)
            .await
        {
            Ok(true) => {
                log::warn!(
                    "'{service}': Swarm rolled the update back; the stored definition follows"
                );
                self.rollbacks
                    .lock()
                    .expect("the rollback table is never poisoned")
                    .insert(
                        service.clone(),
                        (current.config_hash.clone(), stored.definition.clone()),
                    );
            }
            Ok(false) => {}
            Err(e) => log::error!("'{service}': cannot follow Swarm's rollback: {e}"),
        }
        self.store.service(service).unwrap_or(stored)
    }

    /// Why Swarm rolled `stored` back to its definition, while that is
    /// the one the store followed Swarm to: told as a status of the
    /// definition Swarm gave up would tell it, from Swarm's update status
    /// and the tasks as they are now (a rollback under way, then done).
    fn rollback_reason(
        &self,
        service: &ServiceName,
        stored: &StoredService,
        current: &SwarmService,
        tasks: &[Task],
    ) -> Option<String> {
        let given_up = self
            .rollbacks
            .lock()
            .expect("the rollback table is never poisoned")
            .get(service)
            .filter(|(hash, _)| hash == stored.definition.config_hash())
            .map(|(_, given_up)| given_up.clone())?;
        let as_given_up = StoredService {
            definition: given_up,
            ..stored.clone()
        };
        status_of(&as_given_up, current, tasks, true).rollout.error
    }

    /// Forgets what a rollback of `service` said: a definition was put or
    /// rolled back since, or the service is gone.
    fn forget_rollback(&self, service: &ServiceName) {
        self.rollbacks
            .lock()
            .expect("the rollback table is never poisoned")
            .remove(service);
    }

    /// Records `replicas` as the desired count and hands it to Swarm, once
    /// Swarm is not rolling tasks (see [`SwarmService::rolling`]); waits
    /// for that, without the lock, up to the scale timeout.
    async fn set_replicas(
        &self,
        service: &ServiceName,
        request: &ScaleRequest,
        origin: &Origin,
        precondition: Option<&Precondition>,
    ) -> Result<Scaled, Error> {
        // The polls of this wait are Swarm's time, not one docker answer.
        deadline::lengthen(self.scale_timeout);
        let deadline = Instant::now() + self.scale_timeout;
        loop {
            let applied = {
                let _lock = self.locks.lock(service).await;
                self.try_set_replicas(service, request, origin, precondition)
                    .await?
            };
            if let Some(scaled) = applied {
                return Ok(scaled);
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
    async fn try_set_replicas(
        &self,
        service: &ServiceName,
        request: &ScaleRequest,
        origin: &Origin,
        precondition: Option<&Precondition>,
    ) -> Result<Option<Scaled>, Error> {
        let stored = self
            .store
            .service(service)
            .ok_or_else(|| Error::ServiceNotFound(service.to_string()))?;
        let current = self.cli.inspect(service).await?;
        if current.as_ref().is_some_and(SwarmService::rolling) {
            return Ok(None);
        }
        let stored = match &current {
            Some(current) => self.follow_rollback(service, stored, current).await,
            None => stored,
        };
        let definition = &stored.definition;
        let scaled = self
            .store
            .scale(service, request, origin, precondition)
            .await?;
        let replicas = scaled.to;
        let Some(current) = current else {
            self.cli.create(definition, replicas).await?;
            self.record_handed_over(definition);
            return Ok(Some(scaled));
        };
        if current.replicas != replicas {
            self.cli.update(&current, None, Some(replicas)).await?;
        }
        if current.config_hash != definition.config_hash()
            && !self.rolled_back(definition, &current)
        {
            self.cli.update(&current, Some(definition), None).await?;
            self.record_handed_over(definition);
            self.watch_update(service);
        }
        Ok(Some(scaled))
    }

    /// Polls Swarm until `target` tasks of `service` run, for at most the
    /// scale timeout. A later scale to another count ends the wait at once:
    /// the answer then carries that count. A delete ends it with
    /// [`Error::ServiceNotFound`].
    async fn wait_for(&self, service: &ServiceName, target: u32) -> Result<ScaleReport, Error> {
        deadline::lengthen(self.scale_timeout);
        let deadline = Instant::now() + self.scale_timeout;
        loop {
            let (desired, revision) = self
                .store
                .all()
                .get(service)
                .map(|stored| (stored.desired, stored.revision))
                .ok_or_else(|| Error::ServiceNotFound(service.to_string()))?;
            let running = match self.cli.running_tasks(service).await {
                Ok(running) => running,
                Err(e) => {
                    // Docker's "not found" may be a delete's doing: it
                    // removes the Swarm service before the definition.
                    self.locks.deleted_meanwhile(service).await?;
                    return Err(e);
                }
            };
            let superseded = desired.filter(|&desired| desired != target);
            if superseded == Some(0) {
                self.locks.deleted_meanwhile(service).await?;
            }
            if running == target as usize || superseded.is_some() {
                return Ok(ScaleReport {
                    running_resources: running,
                    desired_resources: superseded.unwrap_or(target),
                    revision,
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
                self.watch_update(service);
                Ok(())
            }
            // Nothing to roll: Swarm runs it already, or runs nothing yet
            // (the first scale creates the service from it).
            _ => {
                let settled = self
                    .store
                    .settle_definition(service, stored.config_hash(), DONE)
                    .await;
                if let Err(e) = settled {
                    log::error!("'{service}': cannot record that its definition runs: {e}");
                }
                Ok(())
            }
        }
    }
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
        request: &ScaleRequest,
        origin: &Origin,
        precondition: Option<&Precondition>,
    ) -> Result<ScaleReport, Error> {
        let scaled = self
            .set_replicas(service, request, origin, precondition)
            .await?;
        let result = self.wait_for(service, scaled.to).await;
        if scaled.changed() {
            settle_scale(&self.store, service, scaled.revision, &result).await;
        }
        result.map(|report| ScaleReport {
            revision: scaled.revision,
            ..report
        })
    }

    /// Swarm keeps a task with a health check `starting` until it passes:
    /// its running tasks are its healthy ones.
    async fn wait_healthy(
        &self,
        service: &ServiceName,
        target: u32,
        timeout: Duration,
    ) -> Result<ScaleReport, Error> {
        let deadline = Instant::now() + timeout;
        loop {
            let stored = self
                .store
                .service(service)
                .ok_or_else(|| Error::ServiceNotFound(service.to_string()))?;
            let desired = stored.desired;
            let running = self.cli.running_tasks(service).await?;
            let superseded = desired.filter(|&desired| desired != target);
            if superseded == Some(0) {
                self.locks.deleted_meanwhile(service).await?;
            }
            if running == target as usize || superseded.is_some() {
                return Ok(ScaleReport {
                    running_resources: running,
                    desired_resources: superseded.unwrap_or(target),
                    revision: stored.revision,
                });
            }
            if Instant::now() >= deadline {
                return Err(Error::NotHealthy {
                    healthy: running,
                    running,
                    desired: target,
                    seconds: timeout.as_secs(),
                });
            }
            tokio::time::sleep(SCALE_POLL).await;
        }
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
                healthy_resources: 0,
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
        let stored = self.follow_rollback(service, stored, &current).await;
        let rolled_back = self.rolled_back(&stored.definition, &current);
        let mut status = status_of(&stored, &current, &tasks, rolled_back);
        if let Some(why) = self.rollback_reason(service, &stored, &current, &tasks) {
            if matches!(
                status.rollout.state,
                RolloutState::Complete | RolloutState::Rolling
            ) {
                status.rollout.state = RolloutState::RolledBack;
                status.rollout.error = Some(why);
            }
        }
        Ok(status)
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
        self.forget_rollback(service);
        self.hand_over(service).await.map_err(stored_anyway)
    }

    /// The store goes back to the previous definition (as a PUT, before
    /// docker is asked), then Swarm does: with `docker service rollback`
    /// when Swarm's previous spec is that definition, so Swarm rolls back
    /// with its rollback settings; as an update to it otherwise (a scale
    /// since the PUT made Swarm's previous spec the current definition with
    /// another count, which is all a `docker service rollback` would undo);
    /// not at all when Swarm already runs it (it rolled back by itself) or
    /// has no service yet (the first scale creates it from the store).
    async fn roll_back(
        &self,
        service: &ServiceName,
        origin: &Origin,
        precondition: Option<&Precondition>,
    ) -> Result<(ServiceDefinition, u64), Error> {
        let _lock = self.locks.lock(service).await;
        self.store.check(service, precondition)?;
        let from = self
            .store
            .service(service)
            .ok_or_else(|| Error::ServiceNotFound(service.to_string()))?;
        if from.history.is_empty() {
            return Err(Error::NothingToRollBack(service.to_string()));
        }
        // Asked before the store changes: a Swarm service that is not ours,
        // or a docker that does not answer, leaves everything as it was.
        let current = self.cli.inspect(service).await?;
        let (definition, revision) = self.store.roll_back(service, origin, precondition).await?;
        self.forget_rollback(service);
        let from = from.definition;
        let handed = async {
            let Some(current) = current else {
                return Ok(());
            };
            if current.config_hash == definition.config_hash() {
                return Ok(());
            }
            let previous = self.cli.previous_config_hash(&current).await?;
            if current.config_hash == from.config_hash()
                && previous.as_deref() == Some(definition.config_hash())
            {
                self.cli.roll_back(&current).await
            } else {
                self.cli.update(&current, Some(&definition), None).await
            }
        };
        handed.await.map_err(stored_anyway)?;
        self.record_handed_over(&definition);
        self.watch_update(service);
        log::info!("'{service}': rolled back to its previous definition on request");
        Ok((definition, revision))
    }

    /// Records the count 0, removes the Swarm service (Swarm then stops its
    /// tasks), then the definition, as the containers backend does: a
    /// failure leaves the service at count 0, or as it was when the count
    /// could not be recorded, and a retry finishes. A service at count 0
    /// whose Swarm service is gone is one that was never scaled: status
    /// sees no problem in it, and only a scale creates its Swarm service
    /// again.
    async fn delete(
        &self,
        service: &ServiceName,
        origin: &Origin,
        precondition: Option<&Precondition>,
    ) -> Result<(), Error> {
        let _lock = self.locks.lock(service).await;
        self.store.check(service, precondition)?;
        self.store.retire(service, origin).await?;
        // A Swarm service of that name that is not ours ran nothing of
        // this service: the definition goes, the service stays.
        if let Lookup::Ours(current) = self.cli.look_up(service).await? {
            self.cli.remove(&current).await?;
        }
        self.store.remove(service, origin).await?;
        self.handed_over
            .lock()
            .expect("the hand-over table is never poisoned")
            .remove(service);
        self.forget_rollback(service);
        self.watching
            .lock()
            .expect("the watch table is never poisoned")
            .remove(service);
        Ok(())
    }
}

impl SwarmBackend {
    /// Runs until the runtime stops: while someone watches the feed, polls
    /// the tasks of every service and tells the feed what changed.
    pub(super) async fn watch_tasks(self: Arc<Self>) {
        let mut seen: Option<HashMap<String, SeenTask>> = None;
        let mut unwatched_since: Option<Instant> = None;
        loop {
            if !self.feed.feed.is_watched() {
                let since = *unwatched_since.get_or_insert_with(Instant::now);
                if since.elapsed() > SEEN_KEPT {
                    seen = None;
                }
                tokio::time::sleep(WATCHER_CHECK).await;
                continue;
            }
            unwatched_since = None;
            match self.poll_tasks(seen.as_ref()).await {
                Ok(now) => seen = Some(now),
                Err(e) => log::debug!("cannot list the tasks of the Swarm services: {e}"),
            }
            tokio::time::sleep(TASK_POLL).await;
        }
    }

    /// One poll: lists the tasks, inspects those new or changed since
    /// `before` (the previous poll's; `None` at the first, which tells
    /// nothing), tells the feed what changed of their containers, and reads
    /// again the status of each service whose tasks changed.
    async fn poll_tasks(
        &self,
        before: Option<&HashMap<String, SeenTask>>,
    ) -> Result<HashMap<String, SeenTask>, Error> {
        let services = self.store.all();
        self.feed
            .keep_only(|service| services.contains_key(service));
        let names: Vec<ServiceName> = services.keys().cloned().collect();
        let listed = self.cli.list_tasks(&names).await?;
        let previous = |id: &str| before.and_then(|before| before.get(id));
        let changed: Vec<&ListedTask> = listed
            .iter()
            .filter(|task| {
                previous(&task.id).map_or(true, |seen| {
                    (seen.desired_state, seen.state) != (task.desired_state, task.state)
                })
            })
            .collect();
        let inspected: HashMap<String, Task> = self
            .cli
            .inspect_tasks(&changed)
            .await?
            .into_iter()
            .map(|task| (task.id.clone(), task))
            .collect();
        let now: HashMap<String, SeenTask> = listed
            .iter()
            .map(|task| {
                let seen = SeenTask::new(
                    task,
                    inspected.get(&task.id),
                    previous(&task.id),
                    services.get(&task.service).map(|stored| &**stored),
                );
                (task.id.clone(), seen)
            })
            .collect();
        let Some(before) = before else {
            return Ok(now);
        };
        let mut touched: Vec<&ServiceName> = Vec::new();
        for (id, was, is) in sightings(before, &now) {
            let task = is.or(was).expect("listed by one poll at least");
            // A deleted service's `service.deleted` says it all.
            if !services.contains_key(&task.service) {
                continue;
            }
            let state = |task: Option<&SeenTask>| task.map(|t| (t.desired_state, t.state));
            if state(was) != state(is) && !touched.contains(&&task.service) {
                touched.push(&task.service);
            }
            for change in container_changes(was, is) {
                let (kind, fields) = change.event(id, task);
                self.feed.feed.publish(kind, task.service.as_str(), fields);
            }
        }
        for service in touched {
            self.reread_status(service).await;
        }
        Ok(now)
    }

    /// Reads the status of `service` to tell the feed what changed of its
    /// problem and progress; answers it with the config hash of the stored
    /// definition, or `None` when it cannot be read.
    async fn reread_status(&self, service: &ServiceName) -> Option<(ServiceStatus, String)> {
        let status = match self.status(service).await {
            Ok(status) => status,
            Err(e) => {
                log::debug!("'{service}': cannot read its status for the feed: {e}");
                return None;
            }
        };
        // Read after the status, which may have made the store follow a
        // rollback of Swarm's.
        let hash = self.store.get(service)?.config_hash().to_owned();
        self.feed.status_read(service, &hash, &status);
        Some((status, hash))
    }

    /// Tells the feed how the update of `service` that Swarm just ended
    /// turned out, as status reports it once the store followed a
    /// rollback: `complete`, `rolled_back` (Swarm went back to the
    /// definition the store now holds), or `failed` (paused, or rolled back
    /// without the store following); with the config hash of the
    /// definition the update handed over (the stored one's if that is not
    /// known). Told whether or not anyone watches: a client that
    /// reconnects still finds it in the ring.
    pub(super) async fn publish_outcome(&self, service: &ServiceName) {
        let Some((status, stored_hash)) = self.reread_status(service).await else {
            log::warn!("'{service}': Swarm ended an update; how it went is not told");
            return;
        };
        let handed_over = self
            .handed_over
            .lock()
            .expect("the hand-over table is never poisoned")
            .get(service)
            .cloned()
            .unwrap_or(stored_hash);
        let rollout = status.rollout;
        // The history's entry for the definition; a rollback settled its
        // own when the store followed it.
        let settled = match (rollout.state, &rollout.error) {
            (RolloutState::Complete, _) => Some(DONE.to_owned()),
            (RolloutState::Failed, Some(why)) => Some(format!("failed: {why}")),
            (RolloutState::Failed, None) => Some("failed".to_owned()),
            _ => None,
        };
        if let Some(outcome) = settled {
            if let Err(e) = self
                .store
                .settle_definition(service, &handed_over, &outcome)
                .await
            {
                log::error!("'{service}': cannot record how its update went: {e}");
            }
        }
        match rollout.state {
            RolloutState::Complete | RolloutState::RolledBack | RolloutState::Failed => {
                self.feed.feed.publish(
                    EventKind::RolloutOutcome,
                    service.as_str(),
                    json!({"config_hash": handed_over, "state": rollout.state, "error": rollout.error}),
                );
            }
            // Swarm ended an update, and already runs or awaits another.
            RolloutState::Rolling | RolloutState::Pending | RolloutState::Manual => {
                log::debug!("'{service}': an update ended with the rollout {rollout:?}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::status::tests::service;
    use super::*;
    use serde_json::json;

    fn backend(dir: &std::path::Path) -> SwarmBackend {
        let cli = SwarmCli::for_tests(crate::config::SwarmPublishMode::Host, false);
        let feed = Feed::new(64);
        let store =
            Arc::new(Store::open_for_test(&dir.join("services.json"), feed.clone()).unwrap());
        SwarmBackend::new(cli, store, Duration::from_secs(5), feed)
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
