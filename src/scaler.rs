//! Brings a service's containers to its desired state: as many as its
//! desired count, all of its current definition. A scale records the count
//! and acts at once; the reconciler calls [`Scaler::reconcile`] whenever
//! something changed. Each pass looks up what runs, plans removals and
//! starts, carries them out and records them in the inventory; a pass that
//! finds only containers of an older definition rolls one batch of them,
//! start-first.
//!
//! Operations on one service are serialized by a per-service lock, so two
//! scales, a roll and a delete of the same service never race each other;
//! different services proceed in parallel.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::stream::{self, StreamExt};

use crate::backend::{ContainerStatus, Rollout, RolloutState, ScaleReport, ServiceStatus};
use crate::docker::{Container, Engine, PublishedPorts, StartOutcome};
use crate::domain::{ReplicaCount, ServiceDefinition, ServiceName};
use crate::error::Error;
use crate::inventory::Inventory;
use crate::store::{Store, StoredService};

/// Exclusive use of one service's containers.
type ServiceGuard = tokio::sync::OwnedMutexGuard<()>;

/// How often a start retries with another name after a clash.
const NAME_ATTEMPTS: usize = 10;

/// The wait before the reconciler tries a service again after a failed
/// attempt doubles from this ...
const RETRY_FIRST: Duration = Duration::from_secs(1);
/// ... up to this, so a service that cannot start costs the engine one
/// attempt a minute.
const RETRY_LONGEST: Duration = Duration::from_secs(60);

/// How a definition change is rolled out.
#[derive(Debug, Clone, Copy)]
pub struct UpdatePolicy {
    /// How many containers are replaced at once.
    pub parallelism: usize,
    /// How long a new container must keep running before an old one goes.
    pub settle: Duration,
}

/// Failed attempts in a row at one kind of work, and the backoff they set.
#[derive(Debug, Default)]
struct Attempts {
    failures: u32,
    last_error: Option<String>,
    /// The reconciler does not try again before then.
    retry_at: Option<Instant>,
}

impl Attempts {
    fn succeeded(&mut self) {
        *self = Attempts::default();
    }

    fn failed(&mut self, error: &Error) {
        self.failures += 1;
        self.last_error = Some(error.to_string());
        let doublings = self.failures.saturating_sub(1).min(16);
        let wait = (RETRY_FIRST * 2u32.pow(doublings)).min(RETRY_LONGEST);
        self.retry_at = Some(Instant::now() + wait);
    }

    fn record<T>(&mut self, result: &Result<T, Error>) {
        match result {
            Ok(_) => self.succeeded(),
            Err(e) => self.failed(e),
        }
    }

    fn waiting(&self) -> bool {
        self.retry_at.is_some_and(|at| at > Instant::now())
    }
}

/// What the reconciler knows of one service's progress, kept in memory.
/// Fixing the count and rolling back off separately: a failing roll must
/// not delay replacing a container that died.
#[derive(Debug, Default)]
struct Progress {
    count: Attempts,
    roll: Attempts,
    /// The config hash whose roll failed, and why.
    failed_roll: Option<(String, String)>,
}

/// The lock and progress of one service.
#[derive(Default)]
struct ServiceSlot {
    lock: Arc<tokio::sync::Mutex<()>>,
    progress: Mutex<Progress>,
}

impl ServiceSlot {
    fn progress(&self) -> std::sync::MutexGuard<'_, Progress> {
        self.progress.lock().expect("progress poisoned")
    }
}

/// Which definition fills a shortfall, and which containers count as dead.
struct Filling<'a> {
    /// The current definition's hash: its containers are kept first.
    current_hash: &'a str,
    /// What new containers are started from: the current definition, or,
    /// while its roll fails, the earlier definition the service still runs.
    start: &'a ServiceDefinition,
    /// Whether `start` is such an earlier definition: the current one's
    /// containers that do not run are then dead weight, not places.
    falling_back: bool,
}

/// Who asks for containers to be started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Caller {
    /// A request: it has `scale_concurrency` starts of its own.
    Request,
    /// A reconcile pass: all passes share `scale_concurrency` starts, so a
    /// host where every service needs containers at once (after an engine
    /// was wiped, say) is not flooded.
    Reconciler,
}

/// Drives the containers of every service through an [`Engine`].
pub struct Scaler {
    engine: Arc<dyn Engine>,
    inventory: Arc<Inventory>,
    store: Arc<Store>,
    instance: String,
    concurrency: usize,
    update: UpdatePolicy,
    /// Whether the reconciler runs: the rollout state says so.
    reconciling: bool,
    /// The starts reconcile passes may have in flight, all services
    /// together (see [`Caller::Reconciler`]).
    background_starts: tokio::sync::Semaphore,
    /// One slot per existing service, made when it is first locked and
    /// dropped when the service is deleted.
    slots: Mutex<HashMap<ServiceName, Arc<ServiceSlot>>>,
}

impl Scaler {
    pub fn new(
        engine: Arc<dyn Engine>,
        inventory: Arc<Inventory>,
        store: Arc<Store>,
        instance: String,
        concurrency: usize,
    ) -> Self {
        Scaler {
            engine,
            inventory,
            store,
            instance,
            concurrency,
            update: UpdatePolicy {
                parallelism: 1,
                settle: Duration::from_secs(2),
            },
            reconciling: false,
            background_starts: tokio::sync::Semaphore::new(concurrency),
            slots: Mutex::new(HashMap::new()),
        }
    }

    /// Rolls definition changes with `update` when the reconciler runs.
    pub fn reconciling(mut self, update: UpdatePolicy) -> Self {
        self.update = update;
        self.reconciling = true;
        self
    }

    /// The slot of `service`, made if missing. Only for services that
    /// exist (see [`Scaler::lock`]).
    fn slot(&self, service: &ServiceName) -> Arc<ServiceSlot> {
        self.slots
            .lock()
            .expect("slot table poisoned")
            .entry(service.clone())
            .or_default()
            .clone()
    }

    /// The slot of `service` if it has one; never makes one, so a look at
    /// a service being deleted cannot bring its slot back.
    fn existing_slot(&self, service: &ServiceName) -> Option<Arc<ServiceSlot>> {
        self.slots
            .lock()
            .expect("slot table poisoned")
            .get(service)
            .cloned()
    }

    /// Waits for exclusive use of `service` and returns what the store holds
    /// of it once that use is granted. A slot is only made for a service
    /// that exists, so requests for unknown names cannot grow the table.
    async fn lock(
        &self,
        service: &ServiceName,
    ) -> Result<(ServiceGuard, Arc<ServiceSlot>, StoredService), Error> {
        self.ensure_defined(service)?;
        let slot = self.slot(service);
        let guard = slot.lock.clone().lock_owned().await;
        match self.store.service(service) {
            Some(stored) => Ok((guard, slot, stored)),
            None => {
                // Deleted while this request waited: the last one out drops
                // the slot, so deleted names do not linger in the table.
                drop(slot);
                self.forget_slot(service);
                Err(Error::ServiceNotFound(service.to_string()))
            }
        }
    }

    /// Drops the slot of a deleted service unless a request is waiting on it.
    fn forget_slot(&self, service: &ServiceName) {
        let mut slots = self.slots.lock().expect("slot table poisoned");
        // The table's reference to the slot, and the caller's guard on its
        // lock: nobody else waits.
        if slots
            .get(service)
            .is_some_and(|slot| Arc::strong_count(slot) == 1 && Arc::strong_count(&slot.lock) <= 2)
        {
            slots.remove(service);
        }
    }

    /// A service's definition was replaced: whatever failed before says
    /// nothing about the new one, so its backoffs and errors are cleared
    /// and the reconciler may roll at once.
    pub fn definition_replaced(&self, service: &ServiceName) {
        if let Some(slot) = self.existing_slot(service) {
            *slot.progress() = Progress::default();
        }
    }

    /// # Errors
    /// [`Error::ServiceNotFound`] unless `service` is defined.
    fn ensure_defined(&self, service: &ServiceName) -> Result<(), Error> {
        if self.store.contains(service) {
            Ok(())
        } else {
            Err(Error::ServiceNotFound(service.to_string()))
        }
    }

    /// Where `service` stands: its counts, each container, the rollout and
    /// the last problem. Ports come from the index, or one `docker inspect`
    /// of containers whose ports are not known yet; if that fails, they are
    /// reported unknown rather than failing the whole status.
    ///
    /// # Errors
    /// [`Error::ServiceNotFound`], or the docker failure of a listing.
    pub async fn status(&self, service: &ServiceName) -> Result<ServiceStatus, Error> {
        let stored = self
            .store
            .service(service)
            .ok_or_else(|| Error::ServiceNotFound(service.to_string()))?;
        let mut containers = self.inventory.snapshot(service).await?;
        containers.sort_by(|a, b| {
            (name_number(&a.name), a.created).cmp(&(name_number(&b.name), b.created))
        });
        let current_hash = stored.definition.config_hash();
        // A running container publishes ports unless it runs the current
        // definition and that has none: only those are worth a lookup.
        let publishes_nothing = stored.definition.ports().is_empty();
        let may_publish =
            |c: &Container| c.is_running() && !(publishes_nothing && c.config_hash == current_hash);
        let lookup: Vec<&str> = containers
            .iter()
            .filter(|c| may_publish(c))
            .map(|c| c.id.as_str())
            .collect();
        let looked_up = match self.inventory.published_ports(&lookup).await {
            Ok(ports) => Some(ports),
            Err(e) => {
                log::warn!("cannot read the ports of '{service}': {e}");
                None
            }
        };
        let ports_of = |c: &Container| -> Option<PublishedPorts> {
            if !may_publish(c) {
                return Some(PublishedPorts::new());
            }
            looked_up.as_ref()?.get(&c.id).cloned()
        };
        let entries: Vec<ContainerStatus> = containers
            .iter()
            .map(|c| ContainerStatus {
                id: c.id.clone(),
                name: c.name.clone(),
                state: c.state.clone(),
                created: c.created,
                ports: ports_of(c),
                node: None,
                current: c.config_hash == current_hash,
                restarts: c.restarts,
                last_exit_code: c.last_exit_code,
            })
            .collect();
        let places: Vec<&Container> = containers.iter().filter(|c| c.holds_a_place()).collect();
        let updated = places
            .iter()
            .filter(|c| c.config_hash == current_hash)
            .count();
        let outdated = places.len() - updated;
        let slot = self.existing_slot(service);
        let progress = slot.as_ref().map(|slot| slot.progress());
        let progress = progress.as_deref();
        let failed_roll = progress
            .and_then(|p| p.failed_roll.as_ref())
            .filter(|(hash, _)| *hash == current_hash)
            .map(|(_, why)| why.clone());
        let rollout = Rollout {
            state: match (outdated, &failed_roll) {
                (0, _) => RolloutState::Complete,
                (_, Some(_)) => RolloutState::Failed,
                _ if !self.reconciling => RolloutState::Manual,
                _ => RolloutState::Rolling,
            },
            updated,
            outdated,
            error: failed_roll,
        };
        let problem = progress
            .and_then(|p| p.count.last_error.clone())
            .or_else(|| {
                places
                    .iter()
                    .find(|c| c.state == "restarting")
                    .map(|c| crash_loop(c))
            });
        Ok(ServiceStatus {
            running_resources: containers.iter().filter(|c| c.is_running()).count(),
            desired_resources: stored.desired,
            containers: entries,
            rollout,
            problem,
            failed_attempts: progress.map_or(0, |p| p.count.failures + p.roll.failures),
        })
    }

    /// Removes containers of `service` and records that they are gone.
    async fn remove(&self, service: &ServiceName, ids: &[String]) -> Result<(), Error> {
        self.engine.remove(ids).await?;
        self.inventory.record_removed(service, ids);
        Ok(())
    }

    /// Records `target` as the desired count of `service`, then makes
    /// exactly that many containers hold its places (see
    /// [`Scaler::fix_count`]), whatever a backoff says: an explicit request
    /// always acts.
    ///
    /// # Errors
    /// [`Error::ServiceNotFound`]; [`Error::Storage`] (nothing was changed
    /// then, unless only the final directory sync failed: the store then
    /// serves the new count, and the reconciler works towards it); the
    /// docker failure, or [`Error::DockerFailed`] when the count that runs
    /// afterwards is not `target`. The desired count stays recorded, and the
    /// reconciler (if on) keeps working towards it.
    pub async fn scale(
        &self,
        service: &ServiceName,
        target: ReplicaCount,
    ) -> Result<ScaleReport, Error> {
        let (_serialized, slot, stored) = self.lock(service).await?;
        self.store.set_desired(service, target.get()).await?;
        let containers = self.inventory.containers(service).await?;
        let filling = self.filling(&stored, &slot, &containers);
        let result = self
            .fix_count(
                service,
                &containers,
                &filling,
                target.get(),
                Caller::Request,
            )
            .await;
        self.record_count(slot.as_ref(), &filling, &containers, &result);
        result
    }

    /// Records how fixing the count went. A failure to start the current
    /// definition while containers of an earlier one still run is also a
    /// failed roll of it: the next attempts fill from the earlier one (see
    /// [`Scaler::filling`]), and the roll waits out its own backoff.
    fn record_count<T>(
        &self,
        slot: &ServiceSlot,
        filling: &Filling,
        containers: &[Container],
        result: &Result<T, Error>,
    ) {
        let mut progress = slot.progress();
        progress.count.record(result);
        let older_running = containers
            .iter()
            .any(|c| c.is_running() && c.config_hash != filling.current_hash);
        if let (Err(e), false, true) = (result, filling.falling_back, older_running) {
            progress.roll.failed(e);
            progress.failed_roll = Some((filling.current_hash.to_owned(), e.to_string()));
        }
    }

    /// How a shortfall of `stored` is filled (see [`Filling`]): from the
    /// current definition, unless its roll has failed and an earlier
    /// definition still runs; then from the earlier definition that runs
    /// the most containers.
    fn filling<'a>(
        &self,
        stored: &'a StoredService,
        slot: &ServiceSlot,
        containers: &[Container],
    ) -> Filling<'a> {
        let current_hash = stored.definition.config_hash();
        let failing = slot
            .progress()
            .failed_roll
            .as_ref()
            .is_some_and(|(hash, _)| *hash == current_hash);
        let running_of = |hash: &str| {
            containers
                .iter()
                .filter(|c| c.is_running() && c.config_hash == hash)
                .count()
        };
        let fallback = stored
            .history
            .iter()
            .filter(|_| failing)
            .map(|old| (running_of(old.config_hash()), old))
            .filter(|(running, _)| *running > 0)
            .max_by_key(|(running, _)| *running)
            .map(|(_, old)| old);
        // Without an earlier definition to fall back on, the failing one's
        // restarting containers keep their places: the engine's restart
        // delay then paces them, rather than a removal and a new start.
        Filling {
            current_hash,
            start: fallback.unwrap_or(&stored.definition),
            falling_back: fallback.is_some(),
        }
    }

    /// Whether the reconciler should look at `service` now: the index is
    /// live, and the index shows work whose backoff (if any) has ended: a
    /// count to fix, a desired count to adopt, or outdated containers to
    /// roll. Without a live index (docker's event stream is down, so docker
    /// is likely down or hung) the reconciler waits: a pass would only hold
    /// the service's lock against requests while docker times out.
    pub fn needs_reconciling(&self, service: &ServiceName, stored: &StoredService) -> bool {
        let Some(containers) = self.inventory.indexed(service) else {
            return false;
        };
        let Some(desired) = stored.desired else {
            return true;
        };
        // A service never locked yet has no backoff.
        let slot = self.existing_slot(service).unwrap_or_default();
        let filling = self.filling(stored, &slot, &containers);
        let progress = slot.progress();
        let count_work = !Plan::new(&containers, &filling, desired as usize).is_empty();
        let roll_work = containers
            .iter()
            .any(|c| c.holds_a_place() && c.config_hash != filling.current_hash);
        // As the pass decides: a count to fix comes first, and while it
        // waits out its backoff the pass does nothing else.
        if count_work {
            !progress.count.waiting()
        } else {
            roll_work && !progress.roll.waiting()
        }
    }

    /// When the earliest backoff still running ends.
    pub fn next_retry(&self) -> Option<Instant> {
        let now = Instant::now();
        let slots = self.slots.lock().expect("slot table poisoned");
        slots
            .values()
            .flat_map(|slot| {
                let progress = slot.progress();
                [progress.count.retry_at, progress.roll.retry_at]
            })
            .flatten()
            .filter(|at| *at > now)
            .min()
    }

    /// One reconcile pass over `service`: adopt the running count of a
    /// service from an old data file, fix the count, else roll one batch of
    /// outdated containers. Each kind of work waits out its own backoff.
    ///
    /// # Errors
    /// [`Error::ServiceNotFound`] if it was deleted meanwhile; the failure
    /// of the pass, which also starts (or lengthens) that work's backoff.
    pub async fn reconcile(&self, service: &ServiceName) -> Result<(), Error> {
        // A service deleted meanwhile is not worth a warning.
        let (_serialized, slot, stored) = self.lock(service).await?;
        let result = self.reconcile_locked(service, &slot, &stored).await;
        if let Err(e) = &result {
            log::warn!("reconciling '{service}': {e}");
        }
        result
    }

    async fn reconcile_locked(
        &self,
        service: &ServiceName,
        slot: &ServiceSlot,
        stored: &StoredService,
    ) -> Result<(), Error> {
        let containers = self.inventory.containers(service).await?;
        let desired = match stored.desired {
            Some(desired) => desired,
            None => {
                let running = containers.iter().filter(|c| c.holds_a_place()).count();
                let adopted = self
                    .store
                    .adopt_desired(service, u32::try_from(running).unwrap_or(u32::MAX))
                    .await?;
                log::info!("'{service}': adopted {adopted} as its desired count");
                adopted
            }
        };
        let filling = self.filling(stored, slot, &containers);
        if !Plan::new(&containers, &filling, desired as usize).is_empty() {
            if slot.progress().count.waiting() {
                return Ok(());
            }
            let result = self
                .fix_count(service, &containers, &filling, desired, Caller::Reconciler)
                .await;
            self.record_count(slot, &filling, &containers, &result);
            return result.map(drop);
        }
        slot.progress().count.succeeded();
        let hash = filling.current_hash;
        let mut outdated: Vec<&Container> = containers
            .iter()
            .filter(|c| c.holds_a_place() && c.config_hash != hash)
            .collect();
        if outdated.is_empty() {
            let mut progress = slot.progress();
            progress.roll.succeeded();
            progress.failed_roll = None;
            return Ok(());
        }
        if slot.progress().roll.waiting() {
            return Ok(());
        }
        // Not running first, then the newest: the tail of the keep order.
        outdated.sort_by_key(|c| (c.is_running(), std::cmp::Reverse(c.created)));
        let batch: Vec<Container> = outdated
            .into_iter()
            .take(self.update.parallelism)
            .cloned()
            .collect();
        let result = self
            .roll_batch(&stored.definition, &containers, &batch, desired)
            .await;
        // A PUT during the batch (it does not wait for the service's lock)
        // made this outcome moot, and cleared the progress for its own roll.
        let replaced = self
            .store
            .get(service)
            .map_or(true, |now| now.config_hash() != hash);
        if replaced {
            return result;
        }
        let mut progress = slot.progress();
        progress.roll.record(&result);
        progress.failed_roll = match &result {
            Ok(()) => None,
            Err(e) => Some((hash.to_owned(), e.to_string())),
        };
        result
    }

    /// Replaces `outdated` start-first: starts as many containers of
    /// `definition`, waits the settle time, and, only if every new one ran
    /// all along, removes as many outdated ones as keep `desired` running
    /// (one of the others may have died meanwhile). Otherwise removes the
    /// new ones and leaves the outdated ones serving.
    ///
    /// # Errors
    /// [`Error::DockerFailed`] saying why the new containers did not hold.
    async fn roll_batch(
        &self,
        definition: &ServiceDefinition,
        containers: &[Container],
        outdated: &[Container],
        desired: u32,
    ) -> Result<(), Error> {
        let service = definition.name();
        let names = NameAllocator::new(format!("{}-{}-", self.instance, service), containers);
        let started: Vec<Result<String, Error>> = stream::iter(0..outdated.len())
            .map(|_| self.start_one(definition, &names, Caller::Reconciler))
            .buffer_unordered(self.concurrency)
            .collect()
            .await;
        let new_ids: Vec<String> = started.iter().filter_map(|r| r.clone().ok()).collect();
        let start_error = started.into_iter().find_map(Result::err);
        if start_error.is_none() {
            tokio::time::sleep(self.update.settle).await;
        }
        let after = match start_error {
            Some(_) => self.engine.list(service).await?,
            None => self.inventory.containers(service).await?,
        };
        let held = |id: &String| {
            after
                .iter()
                .any(|c| c.id == *id && c.is_running() && c.restarts == 0)
        };
        if start_error.is_none() && new_ids.iter().all(held) {
            let running = after.iter().filter(|c| c.is_running()).count();
            let spare = running.saturating_sub(desired as usize);
            let old_ids: Vec<String> = outdated
                .iter()
                .filter(|old| after.iter().any(|c| c.id == old.id))
                .take(spare)
                .map(|c| c.id.clone())
                .collect();
            self.remove(service, &old_ids).await?;
            log::info!(
                "'{service}': replaced {} outdated container(s) with the current definition",
                old_ids.len()
            );
            return Ok(());
        }
        // What this batch started goes again, and any container a failed
        // start left created; but a new container that runs goes only as far
        // as the desired count stays running (an old one may have died
        // meanwhile), and is then kept like any surplus.
        let (new_running, mut failed): (Vec<&Container>, Vec<&Container>) = after
            .iter()
            .filter(|c| {
                new_ids.contains(&c.id)
                    || (c.config_hash == definition.config_hash() && !c.holds_a_place())
            })
            .partition(|c| c.is_running());
        let running = after.iter().filter(|c| c.is_running()).count();
        let spare = running.saturating_sub(desired as usize);
        failed.extend(new_running.iter().take(spare));
        let why = match start_error {
            Some(e) => e.to_string(),
            None => after
                .iter()
                .filter(|c| new_ids.contains(&c.id))
                .find(|c| !c.is_running() || c.restarts > 0)
                .map_or_else(|| "the new container vanished".to_owned(), crash_loop),
        };
        let failed_ids = removable_ids(failed);
        self.remove(service, &failed_ids).await?;
        Err(Error::DockerFailed(format!(
            "the update of '{service}' stopped and its older containers keep serving: \
             a container of the new definition did not keep running for {:?} ({why})",
            self.update.settle
        )))
    }

    /// Makes exactly `target` containers of `service` hold its places:
    /// removes dead ones (created, exited, dead, paused, and while filling
    /// falls back on an earlier definition, the current one's containers
    /// that do not run), removes
    /// any surplus (not running first, then older definitions, then the
    /// newest), starts the shortfall from `filling` in parallel, records
    /// all that in the inventory, and reports the count that then runs
    /// (from the index, which also holds any event read meanwhile, or
    /// listed afresh when the index is not live).
    ///
    /// # Errors
    /// The docker failure, after removing any container this left dead;
    /// [`Error::DockerFailed`] when the measured count is not `target` (new
    /// containers stopped right after starting, or something else started
    /// more).
    async fn fix_count(
        &self,
        service: &ServiceName,
        containers: &[Container],
        filling: &Filling<'_>,
        target: u32,
        caller: Caller,
    ) -> Result<ScaleReport, Error> {
        let plan = Plan::new(containers, filling, target as usize);
        self.remove(service, &plan.remove).await?;

        let names = NameAllocator::new(format!("{}-{}-", self.instance, service), containers);
        let started: Vec<Result<String, Error>> = stream::iter(0..plan.start)
            .map(|_| self.start_one(filling.start, &names, caller))
            .buffer_unordered(self.concurrency)
            .collect()
            .await;
        let start_error = started.into_iter().find_map(Result::err);

        // After a failed start, docker may hold a created-but-never-started
        // container whose event the index has not read yet: ask docker, so
        // that nothing the failure left behind escapes the clean-up below.
        let after = match start_error {
            Some(_) => self.engine.list(service).await?,
            None => self.inventory.containers(service).await?,
        };
        let dead: Vec<&Container> = after.iter().filter(|c| !filling.holds_a_place(c)).collect();
        self.remove(service, &removable_ids(dead.iter().copied()))
            .await?;
        let running: Vec<&Container> = after.iter().filter(|c| c.is_running()).collect();
        let report = ScaleReport {
            running_resources: running.len(),
            desired_resources: target,
        };
        let mismatch = |cause: String| {
            Error::DockerFailed(format!(
                "{cause}; {} of {target} containers of '{service}' are running",
                running.len()
            ))
        };
        match start_error {
            Some(Error::DockerFailed(message)) => Err(mismatch(message)),
            Some(other) => Err(other),
            None if running.len() < target as usize => {
                let exits: BTreeSet<String> = after
                    .iter()
                    .filter(|c| !c.is_running())
                    .map(|c| c.status.clone())
                    .collect();
                let exits: Vec<String> = exits.into_iter().collect();
                Err(mismatch(if exits.is_empty() {
                    "containers vanished right after starting".to_owned()
                } else {
                    format!(
                        "containers stopped right after starting ({})",
                        exits.join(", ")
                    )
                }))
            }
            None if running.len() > target as usize => Err(mismatch(
                "more containers run than were asked for: something else starts containers \
                 with this service's labels"
                    .to_owned(),
            )),
            None => Ok(report),
        }
    }

    /// Starts one container of `definition`; returns its id.
    async fn start_one(
        &self,
        definition: &ServiceDefinition,
        names: &NameAllocator,
        caller: Caller,
    ) -> Result<String, Error> {
        let _turn = match caller {
            Caller::Request => None,
            Caller::Reconciler => Some(
                self.background_starts
                    .acquire()
                    .await
                    .expect("the semaphore is never closed"),
            ),
        };
        for _ in 0..NAME_ATTEMPTS {
            let name = names.next();
            match self.engine.start(definition, &name).await? {
                StartOutcome::Started(id) => {
                    self.inventory.record_started(Container {
                        id: id.clone(),
                        service: definition.name().to_string(),
                        name,
                        state: "running".to_owned(),
                        status: "Up".to_owned(),
                        config_hash: definition.config_hash().to_owned(),
                        created: unix_now(),
                        restarts: 0,
                        last_exit_code: None,
                    });
                    return Ok(id);
                }
                StartOutcome::NameTaken => {
                    log::info!("container name {name} is taken; trying another")
                }
            }
        }
        Err(Error::DockerFailed(format!(
            "no free container name found after {NAME_ATTEMPTS} attempts"
        )))
    }

    /// Removes every container of `service`, in any state, then its
    /// definition. If docker fails the definition stays, so nothing
    /// half-deleted is hidden.
    ///
    /// # Errors
    /// [`Error::ServiceNotFound`], the docker failure, or [`Error::Storage`].
    pub async fn delete(&self, service: &ServiceName) -> Result<(), Error> {
        let (_serialized, slot, _) = self.lock(service).await?;
        // Asked of docker, not the index: a delete is final, and a container
        // created a moment ago may not have reached the index yet.
        let containers = self.engine.list(service).await?;
        let ids = removable_ids(&containers);
        self.remove(service, &ids).await?;
        self.store.remove(service).await?;
        // A service created later under this name starts afresh, even if a
        // request still holds this slot and keeps it in the table.
        *slot.progress() = Progress::default();
        drop(slot);
        self.forget_slot(service);
        Ok(())
    }
}

/// Says why a container is not serving: how it last exited, and how often
/// the engine restarted it.
fn crash_loop(container: &Container) -> String {
    let exit = container.last_exit_code.map_or_else(
        || "an unknown code".to_owned(),
        |code| format!("code {code}"),
    );
    format!(
        "container {} exits right after starting (last with {exit}; restarted {} times); \
         the engine restarts it with a growing delay",
        container.name, container.restarts
    )
}

/// What a pass removes, and how many containers it starts.
#[derive(Debug, PartialEq, Eq)]
struct Plan {
    remove: Vec<String>,
    start: usize,
}

impl Filling<'_> {
    /// Whether `container` fills one of the service's places.
    fn holds_a_place(&self, container: &Container) -> bool {
        let of_failing_definition = self.falling_back && container.config_hash == self.current_hash;
        container.holds_a_place() && (container.is_running() || !of_failing_definition)
    }
}

impl Plan {
    fn new(containers: &[Container], filling: &Filling, target: usize) -> Self {
        let (mut places, dead): (Vec<&Container>, Vec<&Container>) =
            containers.iter().partition(|c| filling.holds_a_place(c));
        let mut remove = removable_ids(dead);
        // Keep-first order: running, current definition, oldest; the tail
        // goes. Running first, so a surplus never costs a serving container
        // while one that does not run (restarting, say) stays.
        let current_hash = filling.current_hash;
        places.sort_by(|a, b| {
            b.is_running()
                .cmp(&a.is_running())
                .then_with(|| (a.config_hash != current_hash).cmp(&(b.config_hash != current_hash)))
                .then_with(|| a.created.cmp(&b.created))
                .then_with(|| name_number(&a.name).cmp(&name_number(&b.name)))
        });
        let start = target.saturating_sub(places.len());
        remove.extend(places.iter().skip(target).map(|c| c.id.clone()));
        Plan { remove, start }
    }

    fn is_empty(&self) -> bool {
        self.remove.is_empty() && self.start == 0
    }
}

/// Ids of the containers a removal should name: all but those the engine is
/// already removing.
fn removable_ids<'a>(containers: impl IntoIterator<Item = &'a Container>) -> Vec<String> {
    containers
        .into_iter()
        .filter(|c| !c.is_being_removed())
        .map(|c| c.id.clone())
        .collect()
}

/// Seconds since the Unix epoch, as docker gives creation times.
fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_secs() as i64)
}

/// The trailing `-N` of a container name, if any.
fn name_number(name: &str) -> Option<u32> {
    name.rsplit_once('-').and_then(|(_, n)| n.parse().ok())
}

/// Hands out container names `<instance>-<service>-<n>` with the lowest
/// numbers no container of the service holds, never the same one twice.
struct NameAllocator {
    prefix: String,
    taken: Mutex<BTreeSet<u32>>,
}

impl NameAllocator {
    fn new(prefix: String, containers: &[Container]) -> Self {
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

    fn next(&self) -> String {
        let mut taken = self.taken.lock().expect("name table poisoned");
        let number = (1..).find(|n| !taken.contains(n)).expect("a free number");
        taken.insert(number);
        format!("{}{number}", self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::docker::{ContainerEvent, EventStream, EventTime};

    fn container(id: &str, state: &str, hash: &str, created: i64) -> Container {
        Container {
            id: id.into(),
            service: "web".into(),
            name: format!("default-web-{id}"),
            state: state.into(),
            status: String::new(),
            config_hash: hash.into(),
            created,
            restarts: 0,
            last_exit_code: None,
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
    fn failed_attempts_back_off_doubling_to_a_minute_and_a_success_resets() {
        let mut attempts = Attempts::default();
        let error = Error::DockerFailed("no".into());
        let waits: Vec<u64> = (0..9)
            .map(|_| {
                attempts.failed(&error);
                let wait = attempts.retry_at.unwrap() - Instant::now();
                // Rounded up: a little time passed since the failure.
                wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
            })
            .collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
        assert!(attempts.waiting());
        assert_eq!(attempts.last_error.as_deref(), Some("docker failed: no"));
        attempts.succeeded();
        assert!(!attempts.waiting());
        assert_eq!(attempts.failures, 0);
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

    /// An engine that keeps containers in memory and can be told that some
    /// names are taken by foreign containers.
    #[derive(Default)]
    struct FakeEngine {
        containers: Mutex<Vec<Container>>,
        foreign_names: Vec<String>,
        /// How often one service's containers were listed.
        service_listings: std::sync::atomic::AtomicUsize,
    }

    /// An event stream on which nothing ever happens.
    struct QuietStream;

    #[async_trait::async_trait]
    impl EventStream for QuietStream {
        async fn next(&mut self) -> Result<ContainerEvent, String> {
            futures::future::pending().await
        }
    }

    #[async_trait::async_trait]
    impl Engine for FakeEngine {
        async fn list(&self, _: &ServiceName) -> Result<Vec<Container>, Error> {
            self.service_listings
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Ok(self.containers.lock().unwrap().clone())
        }

        async fn list_all(&self) -> Result<Vec<Container>, Error> {
            Ok(self.containers.lock().unwrap().clone())
        }

        async fn watch(&self, _: EventTime) -> Result<Box<dyn EventStream>, Error> {
            Ok(Box::new(QuietStream))
        }

        async fn start(&self, def: &ServiceDefinition, name: &str) -> Result<StartOutcome, Error> {
            let mut containers = self.containers.lock().unwrap();
            if self.foreign_names.iter().any(|n| n == name)
                || containers.iter().any(|c| c.name == name)
            {
                return Ok(StartOutcome::NameTaken);
            }
            let id = format!("id-{name}");
            containers.push(Container {
                name: name.into(),
                ..container(&id, "running", def.config_hash(), 0)
            });
            Ok(StartOutcome::Started(id))
        }

        async fn server_version(&self) -> Result<String, Error> {
            Ok("fake".into())
        }

        async fn published_ports(
            &self,
            ids: &[String],
        ) -> Result<HashMap<String, PublishedPorts>, Error> {
            Ok(ids
                .iter()
                .map(|id| (id.clone(), PublishedPorts::new()))
                .collect())
        }

        async fn remove(&self, ids: &[String]) -> Result<(), Error> {
            self.containers
                .lock()
                .unwrap()
                .retain(|c| !ids.contains(&c.id));
            Ok(())
        }
    }

    async fn scaler_with(
        engine: FakeEngine,
        services: &[&str],
    ) -> (Scaler, Arc<FakeEngine>, tempfile::TempDir) {
        let (scaler, engine, _, dir) = scaler_and_inventory(engine, services).await;
        (scaler, engine, dir)
    }

    async fn scaler_and_inventory(
        engine: FakeEngine,
        services: &[&str],
    ) -> (Scaler, Arc<FakeEngine>, Arc<Inventory>, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(&dir.path().join("s.json")).unwrap());
        for name in services {
            let body = serde_json::json!({"name": name, "image": "app:1"});
            store
                .create(ServiceDefinition::from_create_body(&body).unwrap())
                .await
                .unwrap();
        }
        let engine = Arc::new(engine);
        let inventory = Inventory::new(engine.clone());
        (
            Scaler::new(
                engine.clone(),
                inventory.clone(),
                store,
                "default".into(),
                4,
            ),
            engine,
            inventory,
            dir,
        )
    }

    #[tokio::test]
    async fn with_a_live_index_scales_and_status_list_nothing() {
        let (scaler, engine, inventory, _dir) =
            scaler_and_inventory(FakeEngine::default(), &["web"]).await;
        tokio::spawn(inventory.clone().follow_events());
        let started = std::time::Instant::now();
        while !inventory.summary().live {
            assert!(
                started.elapsed() < std::time::Duration::from_secs(5),
                "never live"
            );
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        let up = scaler.scale(&name("web"), count(3)).await.unwrap();
        assert_eq!(up.running_resources, 3);
        let down = scaler.scale(&name("web"), count(1)).await.unwrap();
        assert_eq!(down.running_resources, 1);
        let status = scaler.status(&name("web")).await.unwrap();
        assert_eq!(status.running_resources, 1);
        assert_eq!(status.desired_resources, Some(1));
        assert_eq!(status.containers.len(), 1);
        assert_eq!(engine.containers.lock().unwrap().len(), 1);
        assert_eq!(
            engine
                .service_listings
                .load(std::sync::atomic::Ordering::SeqCst),
            0
        );
    }

    fn name(raw: &str) -> ServiceName {
        ServiceName::parse(raw).unwrap()
    }

    fn count(n: u32) -> ReplicaCount {
        ReplicaCount::parse(Some(&serde_json::json!(n)), 100).unwrap()
    }

    #[tokio::test]
    async fn a_clash_with_a_foreign_name_moves_on_to_the_next_number() {
        let engine = FakeEngine {
            foreign_names: vec!["default-web-1".into()],
            ..FakeEngine::default()
        };
        let (scaler, engine, _dir) = scaler_with(engine, &["web"]).await;
        let report = scaler.scale(&name("web"), count(2)).await.unwrap();
        assert_eq!(report.running_resources, 2);
        let mut names: Vec<String> = engine
            .containers
            .lock()
            .unwrap()
            .iter()
            .map(|c| c.name.clone())
            .collect();
        names.sort();
        assert_eq!(names, ["default-web-2", "default-web-3"]);
    }

    #[tokio::test]
    async fn unknown_services_get_no_lock_and_deleted_ones_lose_theirs() {
        let (scaler, _engine, _dir) = scaler_with(FakeEngine::default(), &["web"]).await;
        for ghost in ["a", "b", "c"] {
            assert!(matches!(
                scaler.scale(&name(ghost), count(1)).await,
                Err(Error::ServiceNotFound(_))
            ));
        }
        assert!(scaler.slots.lock().unwrap().is_empty());
        scaler.scale(&name("web"), count(1)).await.unwrap();
        assert_eq!(scaler.slots.lock().unwrap().len(), 1);
        scaler.delete(&name("web")).await.unwrap();
        assert!(scaler.slots.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn requests_that_waited_on_a_deleted_service_drop_its_lock() {
        let (scaler, _engine, _dir) = scaler_with(FakeEngine::default(), &["web"]).await;
        let scaler = Arc::new(scaler);
        let (held, _, _) = scaler.lock(&name("web")).await.unwrap();
        let waiters: Vec<_> = (0..3)
            .map(|_| {
                let scaler = scaler.clone();
                tokio::spawn(async move { scaler.scale(&name("web"), count(1)).await })
            })
            .collect();
        // Let the waiters queue on the lock, then delete behind them.
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        scaler.store.remove(&name("web")).await.unwrap();
        drop(held);
        for waiter in waiters {
            assert!(matches!(
                waiter.await.unwrap(),
                Err(Error::ServiceNotFound(_))
            ));
        }
        assert!(scaler.slots.lock().unwrap().is_empty());
    }
}
