//! Brings a service's containers to its desired state: as many as its
//! desired count, all of its current definition. A scale records the count
//! and acts at once; the reconciler (see [`super::reconciler`]) runs a pass
//! whenever something changed. Each fix looks up what runs, plans removals
//! and starts ([`super::plan`]), carries them out and records them in the
//! inventory; a pass that finds only containers of an older definition
//! rolls one batch of them ([`super::rollout`]).
//!
//! Operations on one service are serialized by its lock
//! ([`crate::backend::locks`]), which also keeps the service's progress.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::stream::{self, StreamExt};

use super::plan::{removable_ids, unix_now, Filling, NameAllocator, Plan};
use super::progress::{Progress, Tracker};
use crate::backend::locks::{ServiceHold, ServiceLocks};
use crate::backend::{settle_scale, ScaleReport};
use crate::docker::{deadline, Container, ContainerState, Engine, Health, StartOutcome};
use crate::domain::{Precondition, ScaleRequest, ServiceDefinition, ServiceName};
use crate::error::Error;
use crate::feed::Feed;
use crate::inventory::Inventory;
use crate::store::{Origin, Store, StoredService};

/// The grace period `docker stop` gives a container started without
/// `--stop-timeout`.
const DOCKER_STOP_GRACE: Duration = Duration::from_secs(10);

/// How often a start retries with another name after a clash.
const NAME_ATTEMPTS: usize = 10;

/// How a definition change is rolled out.
#[derive(Debug, Clone, Copy)]
pub struct UpdatePolicy {
    /// How many containers are replaced at once.
    pub parallelism: usize,
    /// How long a new container must keep running before an old one goes.
    pub settle: Duration,
}

/// Who asks for containers to be started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Caller {
    /// A request: it has `scale_concurrency` starts of its own.
    Request,
    /// A reconcile pass: all passes share `scale_concurrency` starts, so a
    /// host where every service needs containers at once (after an engine
    /// was wiped, say) is not flooded.
    Reconciler,
}

/// Drives the containers of every service through an [`Engine`].
pub struct Scaler {
    pub(super) engine: Arc<dyn Engine>,
    pub(super) inventory: Arc<Inventory>,
    pub(super) store: Arc<Store>,
    /// Where rollouts and problems are announced.
    pub(super) feed: Arc<Feed>,
    pub(super) instance: String,
    pub(super) concurrency: usize,
    pub(super) update: UpdatePolicy,
    /// Whether the reconciler runs: the rollout state says so.
    pub(super) reconciling: bool,
    /// The starts reconcile passes may have in flight, all services
    /// together (see [`Caller::Reconciler`]).
    background_starts: tokio::sync::Semaphore,
    /// Each existing service's lock and progress, made when it is first
    /// locked and dropped once the service is deleted and its last holder
    /// is gone.
    pub(super) locks: ServiceLocks<Tracker>,
}

impl Scaler {
    pub fn new(
        engine: Arc<dyn Engine>,
        inventory: Arc<Inventory>,
        store: Arc<Store>,
        feed: Arc<Feed>,
        instance: String,
        concurrency: usize,
    ) -> Self {
        Scaler {
            engine,
            inventory,
            feed,
            locks: ServiceLocks::new(store.clone()),
            store,
            instance,
            concurrency,
            update: UpdatePolicy {
                parallelism: 1,
                settle: Duration::from_secs(2),
            },
            reconciling: false,
            background_starts: tokio::sync::Semaphore::new(concurrency),
        }
    }

    /// Rolls definition changes with `update` when the reconciler runs.
    pub fn reconciling(mut self, update: UpdatePolicy) -> Self {
        self.update = update;
        self.reconciling = true;
        self
    }

    /// Waits for exclusive use of `service` and returns what the store holds
    /// of it once that use is granted. A lock is only made for a service
    /// that exists, so requests for unknown names cannot grow the table; a
    /// request that waited while the service was deleted gets
    /// [`Error::ServiceNotFound`], and the last one out drops the lock.
    pub(super) async fn lock(
        &self,
        service: &ServiceName,
    ) -> Result<(ServiceHold<'_, Tracker>, StoredService), Error> {
        self.ensure_defined(service)?;
        let held = self.locks.lock(service).await;
        match self.store.service(service) {
            Some(stored) => Ok((held, stored)),
            None => Err(Error::ServiceNotFound(service.to_string())),
        }
    }

    /// A service's definition was replaced: whatever failed before says
    /// nothing about the new one, so its backoffs and errors are cleared
    /// and the reconciler may roll at once.
    pub fn definition_replaced(&self, service: &ServiceName) {
        if let Some(tracker) = self.locks.peek(service) {
            let mut progress = tracker.get();
            // What watchers were told stays true until announced otherwise.
            let announced = progress.announced_problem.take();
            *progress = Progress::default();
            progress.announced_problem = announced;
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

    /// Removes these containers of `service` (all but those the engine is
    /// removing already) and records that they are gone: those that run are
    /// stopped gracefully first (see [`Engine::stop`]), so this returns once
    /// they have exited, at most the longest grace period later. A service
    /// that asks for no grace is not stopped first: its containers would get
    /// SIGKILL at once, as the removal gives it, and the stop would only
    /// cost one docker call more.
    pub(super) async fn remove<'a>(
        &self,
        service: &ServiceName,
        containers: impl IntoIterator<Item = &'a Container>,
    ) -> Result<(), Error> {
        let containers: Vec<&Container> = containers.into_iter().collect();
        let running: Vec<String> = containers
            .iter()
            .filter(|c| c.needs_stopping())
            .map(|c| c.id.clone())
            .collect();
        let ids = removable_ids(containers);
        if !self.asks_no_grace(service) {
            self.engine
                .stop(&running, self.longest_grace(service))
                .await?;
        }
        self.engine.remove(&ids).await?;
        self.inventory.record_removed(service, &ids);
        Ok(())
    }

    /// The longest grace period a container of `service` may have been
    /// started with, for the deadline of stopping it. Each container keeps
    /// the grace of the definition it was started from, and every definition
    /// whose containers may still run is the current one or in the history.
    /// Docker's own 10 s is the floor: a container started before the
    /// connector passed `--stop-timeout`, or from a definition that has since
    /// left the history, may have it. (One of the latter with a longer grace
    /// would make the stop overrun its deadline and fail; docker finishes
    /// the stop by itself, and the next attempt removes the container.)
    fn longest_grace(&self, service: &ServiceName) -> Duration {
        self.store
            .service(service)
            .iter()
            .flat_map(|stored| std::iter::once(&stored.definition).chain(&stored.history))
            .map(ServiceDefinition::stop_grace_period)
            // `docker run` rounds a fraction of a second up.
            .map(|grace| Duration::from_secs(grace.as_secs() + u64::from(grace.subsec_nanos() > 0)))
            .fold(DOCKER_STOP_GRACE, Duration::max)
    }

    /// Whether every definition of `service` whose containers may still run
    /// (the current one and its history) asks for no stop grace period.
    fn asks_no_grace(&self, service: &ServiceName) -> bool {
        self.store.service(service).is_some_and(|stored| {
            std::iter::once(&stored.definition)
                .chain(&stored.history)
                .all(|definition| definition.stop_grace_period().is_zero())
        })
    }

    /// Records `target` as the desired count of `service`, then makes
    /// exactly that many containers hold its places (see
    /// [`Scaler::fix_count`]), whatever a backoff says: an explicit request
    /// always acts.
    ///
    /// # Errors
    /// [`Error::ServiceNotFound`]; [`Error::PreconditionFailed`] and
    /// [`Error::OutOfBounds`] (nothing was changed); [`Error::Storage`]
    /// (nothing was changed then either); the
    /// docker failure, or [`Error::DockerFailed`] when the count that runs
    /// afterwards is not `target`. The desired count stays recorded, and the
    /// reconciler (if on) keeps working towards it.
    pub async fn scale(
        &self,
        service: &ServiceName,
        request: &ScaleRequest,
        origin: &Origin,
        precondition: Option<&Precondition>,
    ) -> Result<ScaleReport, Error> {
        let (held, stored) = self.lock(service).await?;
        let scaled = self
            .store
            .scale(service, request, origin, precondition)
            .await?;
        let result = async {
            let containers = self.inventory.containers(service).await?;
            let filling = self.filling(&stored, &held, &containers);
            let result = self
                .fix_count(service, &containers, &filling, scaled.to, Caller::Request)
                .await;
            self.record_count(&held, &filling, &containers, &result);
            result
        }
        .await;
        self.announce_problem(service, &held);
        if scaled.changed() {
            settle_scale(&self.store, service, scaled.revision, &result).await;
        }
        result.map(|report| ScaleReport {
            revision: scaled.revision,
            ..report
        })
    }

    /// Records how fixing the count went. A failure to start the current
    /// definition while containers of an earlier one still run is also a
    /// failed roll of it: the next attempts fill from the earlier one (see
    /// [`Scaler::filling`]), and the roll waits out its own backoff. Not
    /// when the engine was hung or unreachable: that failed nothing of the
    /// definition's.
    pub(super) fn record_count<T>(
        &self,
        progress: &Tracker,
        filling: &Filling,
        containers: &[Container],
        result: &Result<T, Error>,
    ) {
        let mut progress = progress.get();
        progress.count.record(result);
        let older_running = containers
            .iter()
            .any(|c| c.is_running() && c.config_hash != filling.current_hash);
        if let (Err(e), false, true) = (result, filling.falling_back, older_running) {
            if e.is_engine_fault() {
                return;
            }
            progress.roll.failed(e);
            progress.failed_roll = Some((filling.current_hash.to_owned(), e.to_string()));
        }
    }

    /// How a shortfall of `stored` is filled (see [`Filling`]): from the
    /// current definition, unless its roll has failed and an earlier
    /// definition still runs; then from the earlier definition that runs
    /// the most containers.
    pub(super) fn filling<'a>(
        &self,
        stored: &'a StoredService,
        progress: &Tracker,
        containers: &[Container],
    ) -> Filling<'a> {
        let current_hash = stored.definition.config_hash();
        let failing = progress
            .get()
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
    pub(super) async fn fix_count(
        &self,
        service: &ServiceName,
        containers: &[Container],
        filling: &Filling<'_>,
        target: u32,
        caller: Caller,
    ) -> Result<ScaleReport, Error> {
        let plan = Plan::new(containers, filling, target as usize);
        self.remove(
            service,
            containers.iter().filter(|c| plan.remove.contains(&c.id)),
        )
        .await?;

        let names = NameAllocator::new(format!("{}-{}-", self.instance, service), containers);
        // Starts run `concurrency` at a time: each round after the first is
        // one more docker deadline of honest work for the request.
        let rounds = plan.start.div_ceil(self.concurrency.max(1));
        deadline::lengthen_by_calls(u32::try_from(rounds.saturating_sub(1)).unwrap_or(u32::MAX));
        // Once docker is hung or gone, the starts not yet begun would only
        // meet it again, one deadline per round: they give up at once.
        let engine_failure: Mutex<Option<Error>> = Mutex::new(None);
        let started: Vec<Result<String, Error>> = stream::iter(0..plan.start)
            .map(|_| async {
                if let Some(e) = engine_failure.lock().expect("poisoned").clone() {
                    return Err(e);
                }
                let result = self.start_one(filling.start, &names, caller).await;
                if let Err(e) = result.as_ref() {
                    if e.is_engine_fault() {
                        engine_failure
                            .lock()
                            .expect("poisoned")
                            .get_or_insert_with(|| e.clone());
                    }
                }
                result
            })
            .buffer_unordered(self.concurrency)
            .collect()
            .await;
        let start_error = started.into_iter().find_map(Result::err);

        // After a failed start, docker may hold a created-but-never-started
        // container whose event the index has not read yet: ask docker, so
        // that nothing the failure left behind escapes the clean-up below.
        // Not when docker is hung or gone: the listing would only fail too,
        // after another full deadline, and the reconciler cleans up once
        // docker answers again.
        let after = match &start_error {
            Some(e) if e.is_engine_fault() => return Err(e.clone()),
            Some(_) => self.engine.list(service).await?,
            None => self.inventory.containers(service).await?,
        };
        let dead: Vec<&Container> = after.iter().filter(|c| !filling.holds_a_place(c)).collect();
        self.remove(service, dead).await?;
        let running: Vec<&Container> = after.iter().filter(|c| c.is_running()).collect();
        let report = ScaleReport {
            running_resources: running.len(),
            desired_resources: target,
            // The scale that asked knows the revision; a pass has none.
            revision: 0,
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
    pub(super) async fn start_one(
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
                        state: ContainerState::Running,
                        status: "Up".to_owned(),
                        config_hash: definition.config_hash().to_owned(),
                        created: unix_now(),
                        restarts: 0,
                        last_exit_code: None,
                        // As its `start` event will say (see
                        // `LABEL_HEALTH_CHECK`).
                        health: definition.health_probe().map(|_| Health::Starting),
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

    /// Deletes `service` in three steps, all under its lock, so that no
    /// failure leaves it to be started again: records its desired count
    /// as 0, removes every container of it (in any state), then removes
    /// its definition. A step that fails ends the delete; what the earlier
    /// ones did stands, and a retry finishes the job.
    ///
    /// # Errors
    /// [`Error::ServiceNotFound`], [`Error::PreconditionFailed`] (nothing
    /// was changed); [`Error::Storage`] from the first step (nothing was
    /// changed, the containers run on) or the last (the service stays, at
    /// count 0 and with no containers); the docker failure (the service
    /// stays at count 0, and the reconciler, if on, keeps removing what is
    /// left).
    pub async fn delete(
        &self,
        service: &ServiceName,
        origin: &Origin,
        precondition: Option<&Precondition>,
    ) -> Result<(), Error> {
        let (held, stored) = self.lock(service).await?;
        self.store.check(service, precondition)?;
        self.store.retire(service, origin).await?;
        let removed = async {
            // Asked of docker, not the index: a delete is final, and a
            // container created a moment ago may not have reached the index
            // yet.
            let containers = self.engine.list(service).await?;
            self.remove(service, &containers).await
        }
        .await;
        if let Err(e) = removed {
            // The history then says why the count 0 was not reached; the
            // retire wrote an entry only if the count was not 0 already.
            if stored.desired != Some(0) {
                if let Some(revision) = self.store.revision(service) {
                    settle_scale(&self.store, service, revision, &Err::<(), _>(e.clone())).await;
                }
            }
            return Err(e);
        }
        self.store.remove(service, origin).await?;
        // A service created later under this name starts afresh, even if a
        // request still waits on this lock and so keeps it in the table.
        *held.get() = Progress::default();
        Ok(())
    }
}

#[cfg(test)]
pub(super) mod tests {
    use std::collections::HashMap;
    use std::sync::Mutex;

    use super::*;
    use crate::backend::containers::plan::tests::container;
    use crate::docker::{ContainerEvent, EventStream, EventTime, PublishedPorts};

    #[derive(Default)]
    pub(in crate::backend::containers) struct FakeEngine {
        containers: Mutex<Vec<Container>>,
        foreign_names: Vec<String>,
        /// How often one service's containers were listed.
        service_listings: std::sync::atomic::AtomicUsize,
        /// Every start fails with this error.
        failing_starts: Option<Error>,
        /// Each stop asked for: the ids, and the grace it allowed for.
        stops: Mutex<Vec<(Vec<String>, Duration)>>,
        /// While set, every stop of a running container fails with this
        /// docker error.
        failing_stops: Mutex<Option<String>>,
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
            if let Some(error) = &self.failing_starts {
                return Err(error.clone());
            }
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

        async fn stop(&self, ids: &[String], longest_grace: Duration) -> Result<(), Error> {
            if ids.is_empty() {
                return Ok(());
            }
            if let Some(why) = self.failing_stops.lock().unwrap().clone() {
                return Err(Error::DockerFailed(why));
            }
            for c in self.containers.lock().unwrap().iter_mut() {
                if ids.contains(&c.id) {
                    c.state = ContainerState::Exited;
                }
            }
            self.stops
                .lock()
                .unwrap()
                .push((ids.to_vec(), longest_grace));
            Ok(())
        }

        async fn remove(&self, ids: &[String]) -> Result<(), Error> {
            self.containers
                .lock()
                .unwrap()
                .retain(|c| !ids.contains(&c.id));
            Ok(())
        }
    }

    pub(in crate::backend::containers) async fn scaler_with(
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
        let store = Arc::new(
            Store::open_for_test(&dir.path().join("s.json"), crate::feed::Feed::new(64)).unwrap(),
        );
        for name in services {
            let body = serde_json::json!({"name": name, "image": "app:1"});
            store
                .create_for_test(ServiceDefinition::from_create_body(&body).unwrap())
                .await
                .unwrap();
        }
        let engine = Arc::new(engine);
        let feed = crate::feed::Feed::new(64);
        let inventory = Inventory::new(engine.clone(), feed.clone());
        (
            Scaler::new(
                engine.clone(),
                inventory.clone(),
                store,
                feed,
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
        let up = scaler
            .scale(&name("web"), &count(3), &Origin::connector("test"), None)
            .await
            .unwrap();
        assert_eq!(up.running_resources, 3);
        let down = scaler
            .scale(&name("web"), &count(1), &Origin::connector("test"), None)
            .await
            .unwrap();
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

    fn count(n: u32) -> ScaleRequest {
        ScaleRequest::to(n)
    }

    #[tokio::test]
    async fn a_clash_with_a_foreign_name_moves_on_to_the_next_number() {
        let engine = FakeEngine {
            foreign_names: vec!["default-web-1".into()],
            ..FakeEngine::default()
        };
        let (scaler, engine, _dir) = scaler_with(engine, &["web"]).await;
        let report = scaler
            .scale(&name("web"), &count(2), &Origin::connector("test"), None)
            .await
            .unwrap();
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
                scaler
                    .scale(&name(ghost), &count(1), &Origin::connector("test"), None)
                    .await,
                Err(Error::ServiceNotFound(_))
            ));
        }
        assert_eq!(scaler.locks.len(), 0);
        scaler
            .scale(&name("web"), &count(1), &Origin::connector("test"), None)
            .await
            .unwrap();
        assert_eq!(scaler.locks.len(), 1);
        scaler
            .delete(&name("web"), &Origin::connector("test"), None)
            .await
            .unwrap();
        assert_eq!(scaler.locks.len(), 0);
    }

    #[tokio::test]
    async fn requests_that_waited_on_a_deleted_service_drop_its_lock() {
        let (scaler, _engine, _dir) = scaler_with(FakeEngine::default(), &["web"]).await;
        let scaler = Arc::new(scaler);
        let (held, _) = scaler.lock(&name("web")).await.unwrap();
        let waiters: Vec<_> = (0..3)
            .map(|_| {
                let scaler = scaler.clone();
                tokio::spawn(async move {
                    scaler
                        .scale(&name("web"), &count(1), &Origin::connector("test"), None)
                        .await
                })
            })
            .collect();
        // Let the waiters queue on the lock, then delete behind them.
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        scaler.store.remove_for_test(&name("web")).await.unwrap();
        drop(held);
        for waiter in waiters {
            assert!(matches!(
                waiter.await.unwrap(),
                Err(Error::ServiceNotFound(_))
            ));
        }
        assert_eq!(scaler.locks.len(), 0);
    }

    #[tokio::test]
    async fn an_engine_outage_during_a_roll_neither_fails_nor_rolls_it_back() {
        let one = ServiceDefinition::from_create_body(
            &serde_json::json!({"name": "web", "image": "app:1"}),
        )
        .unwrap();
        let old = [
            container("a", "running", one.config_hash(), 1),
            container("b", "running", one.config_hash(), 2),
        ];
        let engine = FakeEngine {
            containers: Mutex::new(old.to_vec()),
            failing_starts: Some(Error::DockerUnavailable("cannot connect".into())),
            ..FakeEngine::default()
        };
        let (scaler, _engine, _dir) = scaler_with(engine, &["web"]).await;
        let two = ServiceDefinition::from_create_body(
            &serde_json::json!({"name": "web", "image": "app:2"}),
        )
        .unwrap();
        scaler.store.replace_for_test(two).await.unwrap();
        let stored = scaler.store.service(&name("web")).unwrap();
        let progress = Tracker::default();
        let filling = scaler.filling(&stored, &progress, &old);
        let result = scaler
            .roll_outdated(&name("web"), &progress, &stored, &old, &filling, 2)
            .await;
        assert!(
            matches!(result, Err(Error::DockerUnavailable(_))),
            "{result:?}"
        );
        let now = scaler.store.service(&name("web")).unwrap();
        assert_eq!(now.definition.image().as_str(), "app:2", "not rolled back");
        let progress = progress.get();
        assert!(progress.failed_roll.is_none());
        assert!(progress.rolled_back.is_none());
        assert_eq!(progress.roll.failures, 0, "no backoff built up");
        assert!(progress.roll.waiting(), "tried again after a second");
    }

    #[tokio::test]
    async fn a_pass_that_finds_the_service_short_and_outdated_fills_and_rolls_at_once() {
        let one = ServiceDefinition::from_create_body(
            &serde_json::json!({"name": "web", "image": "app:1"}),
        )
        .unwrap();
        let engine = FakeEngine {
            containers: Mutex::new(vec![container("a", "running", one.config_hash(), 1)]),
            ..FakeEngine::default()
        };
        let (scaler, engine, _dir) = scaler_with(engine, &["web"]).await;
        let scaler = scaler.reconciling(UpdatePolicy {
            parallelism: 1,
            settle: Duration::from_millis(10),
        });
        // Scaled to 3 and given a new definition while docker was away.
        scaler
            .store
            .scale(&name("web"), &count(3), &Origin::connector("test"), None)
            .await
            .unwrap();
        let two = ServiceDefinition::from_create_body(
            &serde_json::json!({"name": "web", "image": "app:2"}),
        )
        .unwrap();
        scaler.store.replace_for_test(two.clone()).await.unwrap();
        scaler.reconcile(&name("web")).await.unwrap();
        let hashes: Vec<String> = engine
            .containers
            .lock()
            .unwrap()
            .iter()
            .map(|c| c.config_hash.clone())
            .collect();
        assert_eq!(hashes, vec![two.config_hash().to_owned(); 3], "one pass");
        let progress = scaler.locks.peek(&name("web")).unwrap();
        let progress = progress.get();
        assert_eq!(progress.count.failures, 0);
        assert!(!progress.count.waiting());
    }

    /// A scaler of `web` whose engine (and live index) holds one healthy and
    /// one unhealthy container of its current definition.
    async fn web_with_an_unhealthy_container(
        failing_starts: Option<Error>,
    ) -> (Scaler, Arc<FakeEngine>, tempfile::TempDir) {
        let body = serde_json::json!({"name": "web", "image": "app:1"});
        let definition = ServiceDefinition::from_create_body(&body).unwrap();
        let hash = definition.config_hash();
        let healthy = Container {
            health: Some(crate::docker::Health::Healthy),
            ..container("good", "running", hash, 0)
        };
        let unhealthy = Container {
            name: "default-web-2".into(),
            health: Some(crate::docker::Health::Unhealthy),
            ..container("bad", "running", hash, 1)
        };
        let engine = FakeEngine {
            containers: Mutex::new(vec![healthy, unhealthy]),
            failing_starts,
            ..FakeEngine::default()
        };
        let (scaler, engine, inventory, dir) = scaler_and_inventory(engine, &["web"]).await;
        tokio::spawn(inventory.clone().follow_events());
        let started = std::time::Instant::now();
        while !inventory.summary().live {
            assert!(started.elapsed() < Duration::from_secs(5), "never live");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        (scaler, engine, dir)
    }

    /// Runs the replacement as a reconcile pass would, on what the index holds.
    async fn replace_unhealthy_once(scaler: &Scaler, tracker: &Tracker) -> Result<(), Error> {
        let web = name("web");
        let stored = scaler.store.service(&web).unwrap();
        let containers = scaler.inventory.containers(&web).await.unwrap();
        let filling = scaler.filling(&stored, tracker, &containers);
        scaler
            .replace_unhealthy(&web, tracker, &containers, &filling)
            .await
    }

    #[tokio::test]
    async fn an_unhealthy_container_goes_once_its_replacement_started() {
        let (scaler, _, _dir) = web_with_an_unhealthy_container(None).await;
        let tracker = Tracker::default();
        replace_unhealthy_once(&scaler, &tracker).await.unwrap();
        let left: Vec<String> = scaler
            .inventory
            .containers(&name("web"))
            .await
            .unwrap()
            .into_iter()
            .map(|c| c.id)
            .collect();
        assert_eq!(left.len(), 2);
        assert!(left.contains(&"good".to_owned()));
        assert!(!left.contains(&"bad".to_owned()), "{left:?}");
        let progress = tracker.get();
        assert_eq!(progress.heal.failures, 1);
        assert!(
            progress.heal.waiting(),
            "the next round waits out a backoff"
        );
        let why = progress.heal.last_error.clone().unwrap();
        assert!(why.contains("default-web-2 turned unhealthy"), "{why}");
        assert!(why.contains("replaced, start-first"), "{why}");
    }

    #[tokio::test]
    async fn an_unhealthy_container_stays_when_its_replacement_cannot_start() {
        let (scaler, _, _dir) =
            web_with_an_unhealthy_container(Some(Error::DockerFailed("no such image".into())))
                .await;
        let tracker = Tracker::default();
        let result = replace_unhealthy_once(&scaler, &tracker).await;
        assert!(matches!(result, Err(Error::DockerFailed(_))), "{result:?}");
        let mut left: Vec<String> = scaler
            .inventory
            .containers(&name("web"))
            .await
            .unwrap()
            .into_iter()
            .map(|c| c.id)
            .collect();
        left.sort();
        assert_eq!(left, ["bad", "good"]);
        let why = tracker.get().heal.last_error.clone().unwrap();
        assert!(
            why.contains("default-web-2 is unhealthy and stays"),
            "{why}"
        );
        assert!(why.contains("no such image"), "{why}");
    }

    #[tokio::test]
    async fn scale_down_stops_the_surplus_before_removing_it() {
        let (scaler, engine, _dir) = scaler_with(FakeEngine::default(), &["web"]).await;
        scaler
            .scale(&name("web"), &count(3), &Origin::connector("test"), None)
            .await
            .unwrap();
        scaler
            .scale(&name("web"), &count(1), &Origin::connector("test"), None)
            .await
            .unwrap();
        let stops = engine.stops.lock().unwrap().clone();
        assert_eq!(stops.len(), 1, "{stops:?}");
        let (stopped, grace) = &stops[0];
        assert_eq!(stopped.len(), 2);
        assert_eq!(*grace, DOCKER_STOP_GRACE);
        let left: Vec<String> = engine
            .containers
            .lock()
            .unwrap()
            .iter()
            .map(|c| c.id.clone())
            .collect();
        assert_eq!(left.len(), 1);
        assert!(stopped.iter().all(|id| !left.contains(id)), "{stopped:?}");
    }

    #[tokio::test]
    async fn a_service_without_stop_grace_is_removed_without_a_stop_first() {
        let body = serde_json::json!({"name": "web", "image": "app:1", "stop_grace_period": "0s"});
        let definition = ServiceDefinition::from_create_body(&body).unwrap();
        let hash = definition.config_hash().to_owned();
        let engine = FakeEngine {
            containers: Mutex::new(vec![
                container("a", "running", &hash, 1),
                container("b", "running", &hash, 2),
            ]),
            ..FakeEngine::default()
        };
        let (scaler, engine, _dir) = scaler_with(engine, &[]).await;
        scaler.store.create_for_test(definition).await.unwrap();
        let report = scaler
            .scale(&name("web"), &count(0), &Origin::connector("test"), None)
            .await
            .unwrap();
        assert_eq!(report.running_resources, 0);
        assert!(engine.containers.lock().unwrap().is_empty());
        assert!(engine.stops.lock().unwrap().is_empty(), "no docker stop");
    }

    #[tokio::test]
    async fn delete_stops_what_runs_and_only_removes_what_does_not() {
        let (scaler, engine, _dir) = scaler_with(FakeEngine::default(), &["web"]).await;
        let web = ServiceDefinition::from_create_body(&serde_json::json!({
            "name": "web", "image": "app:1"
        }))
        .unwrap();
        engine.containers.lock().unwrap().extend([
            container("up", "running", web.config_hash(), 1),
            container("down", "exited", web.config_hash(), 2),
            container("frozen", "paused", web.config_hash(), 3),
        ]);
        scaler
            .delete(&name("web"), &Origin::connector("test"), None)
            .await
            .unwrap();
        let stops = engine.stops.lock().unwrap().clone();
        assert_eq!(stops, [(vec!["up".to_owned()], DOCKER_STOP_GRACE)]);
        assert!(engine.containers.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_delete_docker_fails_leaves_the_service_at_count_0_whatever_its_minimum() {
        let (scaler, engine, _dir) = scaler_with(FakeEngine::default(), &[]).await;
        let bounded = ServiceDefinition::from_create_body(&serde_json::json!({
            "name": "web", "image": "app:1", "scaling": {"min": 1}
        }))
        .unwrap();
        scaler.store.create_for_test(bounded).await.unwrap();
        let web = name("web");
        let origin = Origin::connector("test");
        scaler.scale(&web, &count(2), &origin, None).await.unwrap();

        *engine.failing_stops.lock().unwrap() = Some("the engine is wedged".into());
        let failed = scaler.delete(&web, &origin, None).await;
        assert!(
            matches!(failed, Err(Error::DockerFailed(ref why)) if why == "the engine is wedged"),
            "{failed:?}"
        );
        let stored = scaler.store.service(&web).expect("the definition stays");
        assert_eq!(stored.desired, Some(0));
        let last = &stored.changes[0];
        assert_eq!(
            (&last.from, &last.to),
            (&serde_json::json!(2), &serde_json::json!(0))
        );
        assert_eq!(last.outcome, "failed: docker failed: the engine is wedged");
        assert_eq!(engine.containers.lock().unwrap().len(), 2);

        // Once docker works again, a retry finishes the job.
        *engine.failing_stops.lock().unwrap() = None;
        scaler.delete(&web, &origin, None).await.unwrap();
        assert!(scaler.store.service(&web).is_none());
        assert!(engine.containers.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_stop_allows_for_the_longest_grace_of_any_definition_still_kept() {
        let (scaler, engine, _dir) = scaler_with(FakeEngine::default(), &[]).await;
        let defined = |grace: &str| {
            ServiceDefinition::from_create_body(&serde_json::json!({
                "name": "web", "image": "app:1", "stop_grace_period": grace
            }))
            .unwrap()
        };
        scaler.store.create_for_test(defined("45s")).await.unwrap();
        scaler
            .scale(&name("web"), &count(2), &Origin::connector("test"), None)
            .await
            .unwrap();
        // Its containers keep the 45 s they were started with.
        scaler
            .store
            .replace_for_test(defined("1.5s"))
            .await
            .unwrap();
        scaler
            .scale(&name("web"), &count(1), &Origin::connector("test"), None)
            .await
            .unwrap();
        scaler.store.replace_for_test(defined("1m")).await.unwrap();
        scaler
            .delete(&name("web"), &Origin::connector("test"), None)
            .await
            .unwrap();
        let graces: Vec<Duration> = engine
            .stops
            .lock()
            .unwrap()
            .iter()
            .map(|(_, grace)| *grace)
            .collect();
        assert_eq!(graces, [Duration::from_secs(45), Duration::from_secs(60)]);

        // Never below docker's own default, which older containers have;
        // a fraction of a second rounded up, as `docker run` takes it.
        for (grace, allowed) in [
            ("1.5s", DOCKER_STOP_GRACE),
            ("10.5s", Duration::from_secs(11)),
        ] {
            scaler.store.create_for_test(defined(grace)).await.unwrap();
            scaler
                .scale(&name("web"), &count(1), &Origin::connector("test"), None)
                .await
                .unwrap();
            scaler
                .delete(&name("web"), &Origin::connector("test"), None)
                .await
                .unwrap();
            let last = engine.stops.lock().unwrap().last().unwrap().1;
            assert_eq!(last, allowed, "{grace}");
        }
    }
}
