//! Brings a service's containers to a wanted count: look up what runs, plan
//! removals and starts, carry them out and record them in the inventory,
//! then measure the result.
//!
//! Operations on one service are serialized by a per-service lock, so two
//! scales of the same service never race each other or a delete; different
//! services proceed in parallel.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use futures::stream::{self, StreamExt};
use serde::Serialize;

use crate::docker::{Container, Engine, StartOutcome};
use crate::domain::{ReplicaCount, ServiceDefinition, ServiceName};
use crate::error::Error;
use crate::inventory::Inventory;
use crate::store::Store;

/// Exclusive use of one service's containers.
type ServiceGuard = tokio::sync::OwnedMutexGuard<()>;

/// How often a start retries with another name after a clash.
const NAME_ATTEMPTS: usize = 10;

/// What a scale or status request reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ScaleReport {
    pub running_resources: usize,
    pub desired_resources: u32,
}

/// Drives the containers of every service through an [`Engine`].
pub struct Scaler {
    engine: Arc<dyn Engine>,
    inventory: Arc<Inventory>,
    store: Arc<Store>,
    instance: String,
    concurrency: usize,
    /// One lock per existing service, made when it is first scaled or
    /// deleted and dropped when it is deleted.
    locks: Mutex<HashMap<ServiceName, Arc<tokio::sync::Mutex<()>>>>,
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
            locks: Mutex::new(HashMap::new()),
        }
    }

    /// Waits for exclusive use of `service` and returns its definition as it
    /// stands once that use is granted. A lock is only made for a service
    /// that exists, so requests for unknown names cannot grow the table.
    async fn lock(
        &self,
        service: &ServiceName,
    ) -> Result<(ServiceGuard, ServiceDefinition), Error> {
        self.ensure_defined(service)?;
        let lock = self
            .locks
            .lock()
            .expect("lock table poisoned")
            .entry(service.clone())
            .or_default()
            .clone();
        let guard = lock.lock_owned().await;
        match self.definition(service) {
            Ok(definition) => Ok((guard, definition)),
            Err(e) => {
                // Deleted while this request waited: the last one out drops
                // the entry, so deleted names do not linger in the table.
                self.forget_lock(service);
                Err(e)
            }
        }
    }

    /// Drops the lock of a deleted service unless a request is waiting on it.
    fn forget_lock(&self, service: &ServiceName) {
        let mut locks = self.locks.lock().expect("lock table poisoned");
        // The table's own reference and the caller's guard: nobody else waits.
        if locks
            .get(service)
            .is_some_and(|lock| Arc::strong_count(lock) <= 2)
        {
            locks.remove(service);
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

    fn definition(&self, service: &ServiceName) -> Result<ServiceDefinition, Error> {
        self.store
            .get(service)
            .ok_or_else(|| Error::ServiceNotFound(service.to_string()))
    }

    /// Counts the running containers of `service`.
    ///
    /// # Errors
    /// [`Error::ServiceNotFound`], or the docker failure.
    pub async fn running(&self, service: &ServiceName) -> Result<usize, Error> {
        self.ensure_defined(service)?;
        self.inventory.running(service).await
    }

    /// Removes containers of `service` and records that they are gone.
    async fn remove(&self, service: &ServiceName, ids: &[String]) -> Result<(), Error> {
        self.engine.remove(ids).await?;
        self.inventory.record_removed(service, ids);
        Ok(())
    }

    /// Makes exactly `target` containers of `service` run: removes the ones
    /// that are not running, removes any surplus (containers of an older
    /// definition first, then the newest), starts the shortfall in parallel,
    /// records all that in the inventory, and reports the count that then
    /// runs (from the index, which also holds any event read meanwhile, or
    /// listed afresh when the index is not live).
    ///
    /// # Errors
    /// [`Error::ServiceNotFound`]; the docker failure, after removing any
    /// container this left not running; [`Error::DockerFailed`] when the
    /// measured count is not `target` (new containers stopped right after
    /// starting, or something else started more).
    pub async fn scale(
        &self,
        service: &ServiceName,
        target: ReplicaCount,
    ) -> Result<ScaleReport, Error> {
        let (_serialized, definition) = self.lock(service).await?;
        let target = target.get();
        let containers = self.inventory.containers(service).await?;
        let plan = Plan::new(&containers, &definition.config_hash(), target as usize);
        self.remove(service, &plan.remove).await?;

        let names = NameAllocator::new(format!("{}-{}-", self.instance, service), &containers);
        let started: Vec<Result<(), Error>> = stream::iter(0..plan.start)
            .map(|_| self.start_one(&definition, &names))
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
        let (running, stopped): (Vec<&Container>, Vec<&Container>) =
            after.iter().partition(|c| c.is_running());
        let stopped_ids = removable_ids(stopped.iter().copied());
        self.remove(service, &stopped_ids).await?;
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
                let exits: BTreeSet<&str> = stopped.iter().map(|c| c.status.as_str()).collect();
                let exits: Vec<&str> = exits.into_iter().collect();
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

    async fn start_one(
        &self,
        definition: &ServiceDefinition,
        names: &NameAllocator,
    ) -> Result<(), Error> {
        for _ in 0..NAME_ATTEMPTS {
            let name = names.next();
            match self.engine.start(definition, &name).await? {
                StartOutcome::Started(id) => {
                    self.inventory.record_started(Container {
                        id,
                        service: definition.name().to_string(),
                        name,
                        state: "running".to_owned(),
                        status: "Up".to_owned(),
                        config_hash: definition.config_hash(),
                        created: unix_now(),
                    });
                    return Ok(());
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
        let (_serialized, _) = self.lock(service).await?;
        // Asked of docker, not the index: a delete is final, and a container
        // created a moment ago may not have reached the index yet.
        let containers = self.engine.list(service).await?;
        let ids = removable_ids(&containers);
        self.remove(service, &ids).await?;
        self.store.remove(service).await?;
        self.forget_lock(service);
        Ok(())
    }
}

/// What a scale removes, and how many containers it starts.
#[derive(Debug, PartialEq, Eq)]
struct Plan {
    remove: Vec<String>,
    start: usize,
}

impl Plan {
    fn new(containers: &[Container], current_hash: &str, target: usize) -> Self {
        let (mut running, stopped): (Vec<&Container>, Vec<&Container>) =
            containers.iter().partition(|c| c.is_running());
        let mut remove = removable_ids(stopped);
        // Keep-first order: current definition, then oldest; the tail goes.
        running.sort_by(|a, b| {
            (a.config_hash != current_hash)
                .cmp(&(b.config_hash != current_hash))
                .then_with(|| a.created.cmp(&b.created))
                .then_with(|| name_number(&a.name).cmp(&name_number(&b.name)))
        });
        let start = target.saturating_sub(running.len());
        remove.extend(running.iter().skip(target).map(|c| c.id.clone()));
        Plan { remove, start }
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
        }
    }

    #[test]
    fn scale_down_removes_stopped_then_old_definitions_then_newest() {
        let containers = [
            container("1", "running", "new", 1),
            container("2", "running", "old", 0),
            container("3", "exited", "new", 0),
            container("4", "running", "new", 3),
            container("5", "running", "new", 2),
        ];
        let plan = Plan::new(&containers, "new", 2);
        assert_eq!(
            plan,
            Plan {
                remove: vec!["3".into(), "4".into(), "2".into()],
                start: 0
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
        assert_eq!(
            Plan::new(&containers, "h", 3),
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
                ..container(&id, "running", &def.config_hash(), 0)
            });
            Ok(StartOutcome::Started(id))
        }

        async fn server_version(&self) -> Result<String, Error> {
            Ok("fake".into())
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
        assert_eq!(scaler.running(&name("web")).await.unwrap(), 1);
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
        assert!(scaler.locks.lock().unwrap().is_empty());
        scaler.scale(&name("web"), count(1)).await.unwrap();
        assert_eq!(scaler.locks.lock().unwrap().len(), 1);
        scaler.delete(&name("web")).await.unwrap();
        assert!(scaler.locks.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn requests_that_waited_on_a_deleted_service_drop_its_lock() {
        let (scaler, _engine, _dir) = scaler_with(FakeEngine::default(), &["web"]).await;
        let scaler = Arc::new(scaler);
        let (held, _) = scaler.lock(&name("web")).await.unwrap();
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
        assert!(scaler.locks.lock().unwrap().is_empty());
    }
}
