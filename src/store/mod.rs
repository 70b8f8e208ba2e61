//! The services: each one's definition, desired count, revision and
//! history of changes, in an in-memory map backed by a snapshot and a
//! journal of JSON lines ([`journal`]). This is the only code that touches
//! those files.
//!
//! Every change is appended to the journal and synced before it is visible
//! or acknowledged; so an acknowledged write survives `kill -9`, a failed
//! one leaves both the files and the map as they were, and a write costs
//! the same with 10 services or 2,000. Once visible, a change of a
//! definition or desired count is published to the [`Feed`], in the order
//! the changes were written.
//!
//! Each change of a service's definition or desired count gives it a new
//! revision, from one counter kept in the files, so a revision (the
//! service's `ETag`) is never given twice, not even to a service deleted
//! and created again. A write with an `If-Match` ([`Precondition`]) is
//! checked against the revision under the writer's lock.

mod changes;
mod files;
mod format;
mod journal;
mod service;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use serde_json::{json, Value};

use crate::domain::{Precondition, ScaleRequest, ServiceDefinition, ServiceName};
use crate::error::Error;
use crate::feed::{EventKind, Feed};
use changes::ChangeKind;
pub use changes::{Change, Origin, DONE, PENDING};
pub use journal::Compaction;
use journal::Disk;
pub use service::{Services, StoredService};

/// What a scale did to the desired count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scaled {
    /// The count recorded before (`None`: a version 1 file's service).
    pub from: Option<u32>,
    pub to: u32,
    /// The service's revision after the scale: a new one if the count
    /// changed.
    pub revision: u64,
}

impl Scaled {
    /// Whether the count changed, and the history has an entry for it.
    pub fn changed(&self) -> bool {
        self.from != Some(self.to)
    }
}

/// One write in the making: the map to edit, the revision it may give, the
/// services it changed (what its journal record holds), and the events it
/// will publish once visible.
struct Edit {
    services: Services,
    /// The store's revision before the write.
    base: u64,
    /// Whether the write gave out `base + 1`.
    stamped: bool,
    touched: BTreeSet<ServiceName>,
    events: Vec<(EventKind, String, Value)>,
}

impl Edit {
    /// The service `name`, to change.
    fn service_mut(&mut self, name: &ServiceName) -> Option<&mut StoredService> {
        let stored = self.services.get_mut(name)?;
        self.touched.insert(name.clone());
        Some(Arc::make_mut(stored))
    }

    fn insert(&mut self, name: ServiceName, stored: StoredService) {
        self.touched.insert(name.clone());
        self.services.insert(name, Arc::new(stored));
    }

    fn remove(&mut self, name: &ServiceName) -> Option<Arc<StoredService>> {
        let removed = self.services.remove(name)?;
        self.touched.insert(name.clone());
        Some(removed)
    }

    /// The revision this write gives a service it changes.
    fn stamp(&mut self) -> u64 {
        self.stamped = true;
        self.base + 1
    }

    fn publish(&mut self, kind: EventKind, service: &ServiceName, fields: Value) {
        self.events.push((kind, service.to_string(), fields));
    }

    /// The service `name`, checked against `precondition`.
    fn service(
        &mut self,
        name: &ServiceName,
        precondition: Option<&Precondition>,
    ) -> Result<&mut StoredService, Error> {
        let revision = self.services.get(name).map(|stored| stored.revision);
        check(name, revision, precondition)?;
        self.service_mut(name)
            .ok_or_else(|| Error::ServiceNotFound(name.to_string()))
    }
}

/// [`Error::PreconditionFailed`] unless a service at `revision` meets
/// `precondition`; a service that does not exist and is not expected to is
/// left to the caller.
fn check(
    name: &ServiceName,
    revision: Option<u64>,
    precondition: Option<&Precondition>,
) -> Result<(), Error> {
    match precondition {
        Some(wanted) if !wanted.admits(revision) => Err(Error::PreconditionFailed {
            service: name.to_string(),
            revision,
        }),
        _ => Ok(()),
    }
}

/// The desired count a definition's bounds must admit: what a PUT keeps.
fn check_bounds(definition: &ServiceDefinition, desired: Option<u32>) -> Result<(), Error> {
    let (Some(bounds), Some(desired)) = (definition.scaling(), desired) else {
        return Ok(());
    };
    bounds.check(desired).map_err(|broken| {
        Error::out_of_bounds(
            broken.key,
            format!(
                "the service's desired count is {desired}, {broken}; a definition never \
                 scales the service by itself: scale it into the bounds first"
            ),
        )
    })
}

/// The definitions, readable without waiting on disk writes.
pub struct Store {
    /// The data file as configured, which errors logged name.
    path: PathBuf,
    /// The current map. Readers clone the `Arc` and never wait for the disk;
    /// a writer swaps in a new map only after it is on disk.
    services: RwLock<Arc<Services>>,
    /// The newest revision given, as the files hold it.
    revision: AtomicU64,
    /// Serializes writers, held across the whole write, so changes apply in
    /// order.
    writer: tokio::sync::Mutex<()>,
    /// The files. Locked by a writer for its append, and by a compaction
    /// for its start and end (never while it writes the snapshot).
    disk: Arc<Mutex<Disk>>,
    /// Held while the store lives (`None` only for a test's read-back).
    _lock: Option<files::FilesLock>,
    feed: Arc<Feed>,
}

/// What the store is told at start.
#[derive(Debug, Clone, Copy)]
pub struct StoreSettings {
    /// The configured `max_replicas`: a desired count above it in the files
    /// (the setting was lowered since) is brought down to it.
    pub max_replicas: u32,
    pub compaction: Compaction,
}

/// What a replace did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replaced {
    Created,
    /// Whether the new definition runs something else (another config
    /// hash), or is the same one spelled differently.
    Updated {
        runs_differently: bool,
    },
}

impl Store {
    /// Loads the data file at `path` and replays its journal, or starts
    /// empty (creating the directory) if there is none; changes are
    /// published to `feed`. A journal left by the last run is folded into
    /// the snapshot before the store is used, and a missing data file is
    /// written (empty), so the configured file always exists.
    ///
    /// # Errors
    /// A message naming the file when it cannot be read or does not hold
    /// valid definitions. The files are never overwritten in that case.
    pub fn open(path: &Path, feed: Arc<Feed>, settings: StoreSettings) -> Result<Self, String> {
        Self::open_files(path, feed, settings, true)
    }

    /// Opens the files; `own` takes their lock and folds the journal in, as
    /// the connector does (a test's read-back does neither).
    fn open_files(
        path: &Path,
        feed: Arc<Feed>,
        settings: StoreSettings,
        own: bool,
    ) -> Result<Self, String> {
        let (paths, symlink) = files::Paths::resolve(path)?;
        let lock = if own {
            if let Some(dir) = paths.lock.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .map_err(|e| format!("cannot create directory {}: {e}", dir.display()))?;
            }
            Some(files::lock(&paths)?)
        } else {
            None
        };
        if let Some(link) = symlink {
            log::info!(
                "data file {} is a symlink: the store writes beside its target, {}",
                link.display(),
                paths.snapshot.display()
            );
        }
        let (disk, loaded) = Disk::load(paths, settings.compaction)?;
        if loaded.torn_bytes > 0 {
            log::warn!(
                "the journal ended with {} bytes of a write cut short (never acknowledged); \
                 they are dropped",
                loaded.torn_bytes
            );
        }
        let snapshot = loaded.snapshot;
        let mut edit = Edit {
            services: snapshot.services,
            base: snapshot.revision,
            stamped: false,
            touched: BTreeSet::new(),
            events: Vec::new(),
        };
        Self::cap_counts(&mut edit, settings.max_replicas);
        let revision = edit.base + u64::from(edit.stamped);
        let store = Store {
            path: path.to_path_buf(),
            services: RwLock::new(Arc::new(edit.services)),
            revision: AtomicU64::new(revision),
            writer: tokio::sync::Mutex::new(()),
            disk: Arc::new(Mutex::new(disk)),
            _lock: lock,
            feed,
        };
        let folds = loaded.replayed > 0
            || loaded.torn_bytes > 0
            || !edit.touched.is_empty()
            || !store
                .disk
                .lock()
                .expect("disk lock poisoned")
                .paths
                .snapshot
                .exists();
        if own && folds {
            // Best effort: a store whose directory refuses it still serves,
            // and reads the same files back next time.
            if let Err(e) = store.compact_now() {
                log::warn!("cannot fold the journal into the data file at start: {e}");
            }
        }
        Ok(store)
    }

    /// Brings down to `max_replicas` a desired count above it, which the
    /// API would refuse: the setting was lowered since the count was set.
    fn cap_counts(edit: &mut Edit, max_replicas: u32) {
        let over: Vec<(ServiceName, u32)> = edit
            .services
            .iter()
            .filter_map(|(name, stored)| Some((name.clone(), stored.desired?)))
            .filter(|(_, desired)| *desired > max_replicas)
            .collect();
        for (name, desired) in over {
            log::warn!(
                "'{name}': the data file asks for {desired} containers, above max_replicas \
                 ({max_replicas}); the count is brought down to {max_replicas}"
            );
            let origin = Origin::connector(&format!(
                "max_replicas is {max_replicas}, below the count in the data file"
            ));
            Self::record_count(edit, &name, Some(desired), max_replicas, &origin);
        }
        // Nobody listens yet: the start's own changes are in the history.
        edit.events.clear();
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// All services, by name.
    pub fn all(&self) -> Arc<Services> {
        self.services.read().expect("store lock poisoned").clone()
    }

    pub fn get(&self, name: &ServiceName) -> Option<ServiceDefinition> {
        self.all().get(name).map(|stored| stored.definition.clone())
    }

    /// A service's definition and desired count.
    pub fn service(&self, name: &ServiceName) -> Option<StoredService> {
        self.all()
            .get(name)
            .map(|stored| StoredService::clone(stored))
    }

    /// Whether `name` is defined, without copying its definition.
    pub fn contains(&self, name: &ServiceName) -> bool {
        self.all().contains_key(name)
    }

    /// The revision of `name`, if it exists.
    pub fn revision(&self, name: &ServiceName) -> Option<u64> {
        self.all().get(name).map(|stored| stored.revision)
    }

    /// Checks `precondition` against the service as it stands now, for a
    /// write that must know before it starts (a delete removes containers
    /// first).
    ///
    /// # Errors
    /// [`Error::ServiceNotFound`], [`Error::PreconditionFailed`].
    pub fn check(
        &self,
        name: &ServiceName,
        precondition: Option<&Precondition>,
    ) -> Result<(), Error> {
        let revision = self.revision(name);
        check(name, revision, precondition)?;
        revision
            .map(drop)
            .ok_or_else(|| Error::ServiceNotFound(name.to_string()))
    }

    /// Adds a new definition, with no container desired yet (whatever its
    /// bounds: they apply from its first scale). Returns its revision.
    ///
    /// # Errors
    /// [`Error::ServiceExists`] if the name is taken, [`Error::Storage`] if the
    /// file could not be written.
    pub async fn create(
        &self,
        definition: ServiceDefinition,
        origin: &Origin,
    ) -> Result<u64, Error> {
        self.change(|edit| {
            if edit.services.contains_key(definition.name()) {
                return Err(Error::ServiceExists(definition.name().to_string()));
            }
            Ok(Self::insert(edit, definition, origin))
        })
        .await
    }

    fn insert(edit: &mut Edit, definition: ServiceDefinition, origin: &Origin) -> u64 {
        let revision = edit.stamp();
        let name = definition.name().clone();
        let to = changes::summary(&definition);
        edit.publish(
            EventKind::ServiceCreated,
            &name,
            json!({"revision": revision, "image": definition.image().as_str(),
                   "caller": origin.caller, "reason": origin.reason}),
        );
        let mut stored = StoredService::new(definition, revision);
        changes::record(
            &mut stored.changes,
            Change::new(ChangeKind::Created, revision, Value::Null, to, origin, DONE),
        );
        edit.insert(name, stored);
        revision
    }

    /// Adds or replaces a definition, if the service meets `precondition`.
    /// A replaced service keeps its desired count, which the new bounds
    /// must admit; a new one desires none. Returns what it did and the
    /// service's revision.
    ///
    /// # Errors
    /// [`Error::PreconditionFailed`], [`Error::OutOfBounds`] naming
    /// `scaling.min` or `scaling.max`, [`Error::Storage`] if the file could
    /// not be written.
    pub async fn replace(
        &self,
        definition: ServiceDefinition,
        origin: &Origin,
        precondition: Option<&Precondition>,
    ) -> Result<(Replaced, u64), Error> {
        self.change(|edit| {
            let name = definition.name().clone();
            if !edit.services.contains_key(&name) {
                check(&name, None, precondition)?;
                return Ok((Replaced::Created, Self::insert(edit, definition, origin)));
            }
            let desired = edit.service(&name, precondition)?.desired;
            check_bounds(&definition, desired)?;
            let revision = edit.stamp();
            let image = definition.image().as_str().to_owned();
            let stored = edit.service(&name, None)?;
            let runs_differently =
                stored.change_definition(definition, ChangeKind::Replaced, revision, origin);
            edit.publish(
                EventKind::ServiceReplaced,
                &name,
                json!({"revision": revision, "image": image, "runs_differently": runs_differently,
                       "caller": origin.caller, "reason": origin.reason}),
            );
            Ok((Replaced::Updated { runs_differently }, revision))
        })
        .await
    }

    /// Makes the previous definition of `name` (the head of its history)
    /// the current one again, and answers it with the service's revision.
    /// The definition it replaces goes to the head of the history, as
    /// `docker service rollback` swaps a service's spec and previous spec:
    /// a second rollback undoes the first. One write, like any other
    /// change. The earlier definition comes back whole, bounds included,
    /// unchecked against the count: going back must never be blocked.
    ///
    /// # Errors
    /// [`Error::ServiceNotFound`] if there is no such service,
    /// [`Error::PreconditionFailed`], [`Error::NothingToRollBack`] if it has
    /// no earlier definition, [`Error::Storage`] if the file could not be
    /// written.
    pub async fn roll_back(
        &self,
        name: &ServiceName,
        origin: &Origin,
        precondition: Option<&Precondition>,
    ) -> Result<(ServiceDefinition, u64), Error> {
        self.change(|edit| {
            let previous = edit
                .service(name, precondition)?
                .history
                .first()
                .cloned()
                .ok_or_else(|| Error::NothingToRollBack(name.to_string()))?;
            let revision = Self::go_back(edit, name, previous.clone(), origin)?;
            Ok((previous, revision))
        })
        .await
    }

    fn go_back(
        edit: &mut Edit,
        name: &ServiceName,
        earlier: ServiceDefinition,
        origin: &Origin,
    ) -> Result<u64, Error> {
        let revision = edit.stamp();
        let image = earlier.image().as_str().to_owned();
        let stored = edit.service(name, None)?;
        let runs_differently =
            stored.change_definition(earlier, ChangeKind::RolledBack, revision, origin);
        edit.publish(
            EventKind::ServiceReplaced,
            name,
            json!({"revision": revision, "image": image, "runs_differently": runs_differently,
                   "rollback": true, "caller": origin.caller, "reason": origin.reason}),
        );
        Ok(revision)
    }

    /// Makes the earlier definition of `name` whose config hash is `to` the
    /// current one, as [`Store::roll_back`] does, but only while the current
    /// definition's hash is still `from`: a rollback decided on what `from`
    /// did must not undo a PUT that came meanwhile. Answers whether it did;
    /// a service deleted meanwhile, or without that earlier definition, is
    /// left alone. The definition given up is settled as `rolled back`.
    ///
    /// # Errors
    /// [`Error::Storage`] if the file could not be written.
    pub async fn roll_back_from(
        &self,
        name: &ServiceName,
        from: &str,
        to: &str,
        origin: &Origin,
    ) -> Result<bool, Error> {
        let applies = |stored: &StoredService| {
            stored.definition.config_hash() == from
                && stored.history.iter().any(|old| old.config_hash() == to)
        };
        // Most passes find nothing to do: decide that without a write.
        if !self.all().get(name).is_some_and(|stored| applies(stored)) {
            return Ok(false);
        }
        self.change(|edit| {
            if !edit
                .services
                .get(name)
                .is_some_and(|stored| applies(stored))
            {
                return Ok(false);
            }
            let stored = edit.service_mut(name).expect("checked above");
            changes::settle_definition(&mut stored.changes, from, "rolled back");
            let earlier = stored
                .history
                .iter()
                .find(|old| old.config_hash() == to)
                .cloned()
                .expect("checked above");
            Self::go_back(edit, name, earlier, origin)?;
            Ok(true)
        })
        .await
    }

    /// Records the desired count `request` asks for, computed from the
    /// count recorded now and checked against the definition's bounds, if
    /// the service meets `precondition`. A count that does not change
    /// writes nothing and keeps the revision.
    ///
    /// # Errors
    /// [`Error::ServiceNotFound`], [`Error::PreconditionFailed`],
    /// [`Error::OutOfBounds`], [`Error::Storage`] if the file could not be
    /// written.
    pub async fn scale(
        &self,
        name: &ServiceName,
        request: &ScaleRequest,
        origin: &Origin,
        precondition: Option<&Precondition>,
    ) -> Result<Scaled, Error> {
        let unchanged = |stored: &StoredService| -> Result<Option<Scaled>, Error> {
            let to = request.target(stored.desired.unwrap_or(0), stored.definition.scaling())?;
            Ok((stored.desired == Some(to)).then_some(Scaled {
                from: stored.desired,
                to,
                revision: stored.revision,
            }))
        };
        if let Some(stored) = self.all().get(name) {
            check(name, Some(stored.revision), precondition)?;
            if let Some(scaled) = unchanged(stored)? {
                return Ok(scaled);
            }
        }
        self.change(|edit| {
            let stored = edit.service(name, precondition)?;
            if let Some(scaled) = unchanged(stored)? {
                return Ok(scaled);
            }
            let from = stored.desired;
            let to = request.target(from.unwrap_or(0), stored.definition.scaling())?;
            Ok(Self::record_count(edit, name, from, to, origin))
        })
        .await
    }

    fn record_count(
        edit: &mut Edit,
        name: &ServiceName,
        from: Option<u32>,
        to: u32,
        origin: &Origin,
    ) -> Scaled {
        let revision = edit.stamp();
        let stored = edit.service_mut(name).expect("checked by the caller");
        stored.desired = Some(to);
        stored.revision = revision;
        changes::record(
            &mut stored.changes,
            Change::new(
                ChangeKind::Scaled,
                revision,
                json!(from),
                json!(to),
                origin,
                PENDING,
            ),
        );
        edit.publish(
            EventKind::ServiceScaled,
            name,
            json!({"revision": revision, "from": from, "to": to,
                   "caller": origin.caller, "reason": origin.reason}),
        );
        Scaled { from, to, revision }
    }

    /// Records `desired` for `name` unless a count is recorded already (a
    /// scale may have come first). Returns the count now recorded.
    ///
    /// # Errors
    /// [`Error::ServiceNotFound`], [`Error::Storage`].
    pub async fn adopt_desired(&self, name: &ServiceName, desired: u32) -> Result<u32, Error> {
        if let Some(Some(recorded)) = self.all().get(name).map(|stored| stored.desired) {
            return Ok(recorded);
        }
        self.change(|edit| {
            if let Some(recorded) = edit.service(name, None)?.desired {
                return Ok(recorded);
            }
            let origin = Origin::connector("adopted the count running when the data file had none");
            Self::record_count(edit, name, None, desired, &origin);
            Ok(desired)
        })
        .await
    }

    /// Records how the change that made `revision` of `name` turned out,
    /// if it is still pending. Changes no revision.
    ///
    /// # Errors
    /// [`Error::Storage`] if the file could not be written.
    pub async fn settle(
        &self,
        name: &ServiceName,
        revision: u64,
        outcome: &str,
    ) -> Result<(), Error> {
        let pending = |stored: &StoredService| {
            stored
                .changes
                .iter()
                .any(|c| c.revision == revision && c.outcome == PENDING)
        };
        if !self.all().get(name).is_some_and(|stored| pending(stored)) {
            return Ok(());
        }
        self.change(|edit| {
            if let Some(stored) = edit.service_mut(name) {
                changes::settle_revision(&mut stored.changes, revision, outcome);
            }
            Ok(())
        })
        .await
    }

    /// Records how the rollout of the definition with `config_hash` turned
    /// out, if a change to it is still pending; whether one was. Changes
    /// no revision.
    ///
    /// # Errors
    /// [`Error::Storage`] if the file could not be written.
    pub async fn settle_definition(
        &self,
        name: &ServiceName,
        config_hash: &str,
        outcome: &str,
    ) -> Result<bool, Error> {
        let pending =
            |stored: &StoredService| changes::pending_definition(&stored.changes, config_hash);
        if !self.all().get(name).is_some_and(|stored| pending(stored)) {
            return Ok(false);
        }
        self.change(|edit| {
            Ok(edit.service_mut(name).is_some_and(|stored| {
                changes::settle_definition(&mut stored.changes, config_hash, outcome)
            }))
        })
        .await
    }

    /// Removes a definition, and its history with it.
    ///
    /// # Errors
    /// [`Error::ServiceNotFound`] if there is none, [`Error::Storage`] if the
    /// file could not be written.
    pub async fn remove(&self, name: &ServiceName, origin: &Origin) -> Result<(), Error> {
        self.change(|edit| {
            let revision = edit.stamp();
            edit.remove(name)
                .ok_or_else(|| Error::ServiceNotFound(name.to_string()))?;
            edit.publish(
                EventKind::ServiceDeleted,
                name,
                json!({"revision": revision, "caller": origin.caller, "reason": origin.reason}),
            );
            Ok(())
        })
        .await
    }

    /// Records 0 as the desired count of `name`, whatever its definition's
    /// bounds say (a `scaling.min` must not block a delete): the first step
    /// of a delete, so that containers the delete removes are not started
    /// again should the definition itself fail to go. Recorded as a scale
    /// is, in the history and as `service.scaled`; a count of 0 already
    /// writes nothing.
    ///
    /// # Errors
    /// [`Error::ServiceNotFound`], [`Error::Storage`] if the file could not
    /// be written.
    pub async fn retire(&self, name: &ServiceName, origin: &Origin) -> Result<(), Error> {
        let idle = |stored: &StoredService| stored.desired == Some(0);
        if self.all().get(name).is_some_and(|stored| idle(stored)) {
            return Ok(());
        }
        self.change(|edit| {
            let from = edit.service(name, None)?.desired;
            if from != Some(0) {
                Self::record_count(edit, name, from, 0, origin);
            }
            Ok(())
        })
        .await
    }

    /// Applies `edit` to a copy of the map, appends the services it changed
    /// to the journal, and only then makes the copy the current map and
    /// publishes its events. The copy shares every service it did not
    /// change with the current map.
    async fn change<T>(
        &self,
        edit: impl FnOnce(&mut Edit) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let _writing = self.writer.lock().await;
        let mut next = Edit {
            services: Services::clone(&self.all()),
            base: self.revision.load(Ordering::SeqCst),
            stamped: false,
            touched: BTreeSet::new(),
            events: Vec::new(),
        };
        let outcome = edit(&mut next)?;
        if next.touched.is_empty() {
            return Ok(outcome);
        }
        let revision = next.base + u64::from(next.stamped);
        let disk = self.disk.clone();
        let line = {
            let seq = disk.lock().expect("disk lock poisoned").seq + 1;
            let changed = next
                .touched
                .iter()
                .map(|name| (name, next.services.get(name).map(|stored| &**stored)));
            format::render_record(seq, revision, changed)
        };
        let appended = tokio::task::spawn_blocking(move || {
            let mut disk = disk.lock().expect("disk lock poisoned");
            disk.append(&line).map(|()| disk.start_compaction())
        })
        .await
        .map_err(|e| Error::Storage(format!("the writer task failed: {e}")))?;
        let compaction = appended.map_err(|e| {
            log::error!(
                "cannot append to the journal of {}: {e}",
                self.path.display()
            );
            // The caller learns what failed; where the files are is the
            // operator's business, and the log's.
            Error::Storage(e.to_string())
        })?;
        let services = Arc::new(next.services);
        self.revision.store(revision, Ordering::SeqCst);
        *self.services.write().expect("store lock poisoned") = services.clone();
        for (kind, service, fields) in next.events {
            self.feed.publish(kind, &service, fields);
        }
        if let Some(job) = compaction {
            let disk = self.disk.clone();
            tokio::task::spawn_blocking(move || {
                let snapshot = job.write_snapshot(revision, &services);
                let finished = disk
                    .lock()
                    .expect("disk lock poisoned")
                    .finish_compaction(snapshot);
                if let Err(e) = finished {
                    log::warn!("cannot fold the journal into the data file: {e}; the journal keeps every write, and folding is tried again later");
                }
            });
        }
        Ok(outcome)
    }

    /// Folds the journal into the snapshot now, with the map as it stands,
    /// holding the disk for the whole of it (at start, and in tests).
    fn compact_now(&self) -> Result<(), String> {
        fold(
            &self.disk,
            self.revision.load(Ordering::SeqCst),
            &self.all(),
        )
    }

    /// Drops the earlier definitions of `name` (which a rollback, and a
    /// failing roll's replacements, would use), then folds the journal into
    /// the data file at once, so the values they held, secrets included, are
    /// in neither file any more. Answers how many were dropped; changes no
    /// revision.
    ///
    /// # Errors
    /// [`Error::ServiceNotFound`]; [`Error::Storage`] if a file could not be
    /// written (the definitions may then be dropped from the map and the
    /// journal's newest record, but older records still hold them).
    pub async fn forget_earlier_definitions(&self, name: &ServiceName) -> Result<usize, Error> {
        let forgotten = self
            .change(|edit| {
                if edit
                    .services
                    .get(name)
                    .is_some_and(|s| s.history.is_empty())
                {
                    return Ok(0);
                }
                let stored = edit.service(name, None)?;
                Ok(std::mem::take(&mut stored.history).len())
            })
            .await?;
        // No write may start a compaction of its own meanwhile.
        let _writing = self.writer.lock().await;
        loop {
            if !self.disk.lock().expect("disk lock poisoned").compacting() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        let (disk, services) = (self.disk.clone(), self.all());
        let revision = self.revision.load(Ordering::SeqCst);
        tokio::task::spawn_blocking(move || fold(&disk, revision, &services))
            .await
            .map_err(|e| Error::Storage(format!("the writer task failed: {e}")))?
            .map_err(|e| {
                log::error!("cannot fold the journal into the data file: {e}");
                Error::Storage(
                    "the earlier definitions are dropped, but the journal that still holds them \
                     could not be folded into the data file; try again"
                        .into(),
                )
            })?;
        Ok(forgotten)
    }
}

/// Writes `services` as the snapshot and empties the journal, holding the
/// disk throughout.
fn fold(disk: &Mutex<Disk>, revision: u64, services: &Services) -> Result<(), String> {
    let mut disk = disk.lock().expect("disk lock poisoned");
    let job = disk.begin();
    let snapshot = job.write_snapshot(revision, services);
    disk.finish_compaction(snapshot)
}

/// The writes the unit tests make: by the connector, without `If-Match`.
#[cfg(test)]
impl Store {
    /// A store with the default settings.
    pub(crate) fn open_for_test(path: &Path, feed: Arc<Feed>) -> Result<Self, String> {
        let settings = StoreSettings {
            max_replicas: 100,
            compaction: Compaction {
                after_bytes: 4 * 1024 * 1024,
            },
        };
        Self::open(path, feed, settings)
    }

    /// What the files hold, read as a restarted connector would read them,
    /// while the store that writes them still runs.
    pub(crate) fn read_back_for_test(path: &Path) -> Self {
        let settings = StoreSettings {
            max_replicas: 100,
            compaction: Compaction {
                after_bytes: 4 * 1024 * 1024,
            },
        };
        Self::open_files(path, Feed::new(64), settings, false).unwrap()
    }

    pub(crate) async fn create_for_test(
        &self,
        definition: ServiceDefinition,
    ) -> Result<u64, Error> {
        self.create(definition, &Origin::connector("test")).await
    }

    pub(crate) async fn replace_for_test(
        &self,
        definition: ServiceDefinition,
    ) -> Result<(Replaced, u64), Error> {
        self.replace(definition, &Origin::connector("test"), None)
            .await
    }

    pub(crate) async fn roll_back_for_test(
        &self,
        name: &ServiceName,
    ) -> Result<(ServiceDefinition, u64), Error> {
        self.roll_back(name, &Origin::connector("test"), None).await
    }

    pub(crate) async fn scale_for_test(
        &self,
        name: &ServiceName,
        count: u32,
    ) -> Result<Scaled, Error> {
        let request = ScaleRequest::to(count);
        self.scale(name, &request, &Origin::connector("test"), None)
            .await
    }

    /// Makes the next append fail, as a disk refusing it would: the
    /// journal is swapped for a handle that cannot write.
    pub(crate) fn break_journal_for_test(&self) {
        self.disk.lock().unwrap().break_for_test();
    }

    pub(crate) async fn remove_for_test(&self, name: &ServiceName) -> Result<(), Error> {
        self.remove(name, &Origin::connector("test")).await
    }
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::service::HISTORY_LEN;
    use super::*;
    use crate::domain::ScaleRequest;

    /// What the files hold: the snapshot and the journal.
    fn on_disk(path: &Path) -> (Option<Vec<u8>>, Option<Vec<u8>>) {
        let mut journal = path.as_os_str().to_owned();
        journal.push(".journal");
        (fs::read(path).ok(), fs::read(journal).ok())
    }

    fn definition(name: &str, image: &str) -> ServiceDefinition {
        ServiceDefinition::from_create_body(&json!({"name": name, "image": image})).unwrap()
    }

    #[tokio::test]
    async fn changes_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/services.json");
        let store = Store::open_for_test(&path, crate::feed::Feed::new(64)).unwrap();
        store
            .create_for_test(definition("web", "app:1"))
            .await
            .unwrap();
        store
            .create_for_test(definition("db", "db:1"))
            .await
            .unwrap();
        assert_eq!(
            store
                .replace_for_test(definition("web", "app:2"))
                .await
                .unwrap(),
            (
                Replaced::Updated {
                    runs_differently: true
                },
                3
            )
        );
        store
            .remove_for_test(&ServiceName::parse("db").unwrap())
            .await
            .unwrap();

        use std::os::unix::fs::PermissionsExt;
        let mode = |path: &Path| fs::metadata(path).unwrap().permissions().mode() & 0o777;
        let journal = dir.path().join("nested/services.json.journal");
        assert_eq!(mode(&journal), 0o600, "the journal may hold secrets");
        assert!(
            !fs::read_to_string(&path).unwrap().contains("app:1"),
            "the writes are in the journal, the data file as it was written at start"
        );

        drop(store);
        let reopened = Store::open_for_test(&path, crate::feed::Feed::new(64)).unwrap();
        assert_eq!(mode(&path), 0o600, "the data file may hold secrets");
        assert_eq!(fs::read(&journal).unwrap(), b"", "folded in at start");
        let names: Vec<_> = reopened.all().keys().map(|n| n.to_string()).collect();
        assert_eq!(names, ["web"]);
        assert_eq!(
            reopened
                .get(&ServiceName::parse("web").unwrap())
                .unwrap()
                .image()
                .as_str(),
            "app:2"
        );
    }

    #[tokio::test]
    async fn a_failed_write_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("services.json");
        let store = Store::open_for_test(&path, crate::feed::Feed::new(64)).unwrap();
        store
            .create_for_test(definition("web", "app:1"))
            .await
            .unwrap();
        let before = on_disk(&path);
        store.break_journal_for_test();
        let err = store
            .create_for_test(definition("db", "db:1"))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Storage(_)), "{err:?}");
        assert_eq!(on_disk(&path), before);
        assert!(store.get(&ServiceName::parse("db").unwrap()).is_none());
        // The journal is opened again for the next write, which lands after
        // the last whole record.
        store
            .create_for_test(definition("db", "db:2"))
            .await
            .unwrap();
        let reopened = Store::read_back_for_test(&path);
        let names: Vec<_> = reopened.all().keys().map(|n| n.to_string()).collect();
        assert_eq!(names, ["db", "web"]);
    }

    #[test]
    fn refuses_a_file_that_does_not_parse() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("services.json");
        for junk in [
            "{",
            "[]",
            r#"{"format_version": 9, "services": {}}"#,
            r#"{"format_version": 1, "services": {"web": {"name": "web"}}}"#,
            r#"{"format_version": 2, "services": {"web": {"name": "web", "image": "a:1"}}}"#,
            r#"{"format_version": 2, "services": {"web": {"definition": {"name": "web", "image": "a:1"}, "desired": -1}}}"#,
        ] {
            fs::write(&path, junk).unwrap();
            let err = Store::open_for_test(&path, crate::feed::Feed::new(64))
                .err()
                .expect(junk);
            assert!(err.contains("services.json"), "{err}");
        }
    }

    #[tokio::test]
    async fn desired_counts_survive_reopening_and_replacing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("services.json");
        let store = Store::open_for_test(&path, crate::feed::Feed::new(64)).unwrap();
        let web = ServiceName::parse("web").unwrap();
        store
            .create_for_test(definition("web", "app:1"))
            .await
            .unwrap();
        assert_eq!(store.service(&web).unwrap().desired, Some(0));
        store.scale_for_test(&web, 3).await.unwrap();
        store
            .replace_for_test(definition("web", "app:2"))
            .await
            .unwrap();
        store
            .replace_for_test(definition("web", "app:2"))
            .await
            .unwrap();
        store
            .replace_for_test(definition("web", "app:3"))
            .await
            .unwrap();
        store
            .replace_for_test(definition("web", "app:1"))
            .await
            .unwrap();
        let reopened = Store::read_back_for_test(&path).service(&web).unwrap();
        assert_eq!(reopened.desired, Some(3));
        assert_eq!(reopened.definition.image().as_str(), "app:1");
        // Newest first, each hash once, the current one not repeated.
        let history: Vec<&str> = reopened
            .history
            .iter()
            .map(|d| d.image().as_str())
            .collect();
        assert_eq!(history, ["app:3", "app:2"]);
        for version in 4..12 {
            let image = format!("app:{version}");
            store
                .replace_for_test(definition("web", &image))
                .await
                .unwrap();
        }
        let kept = store.service(&web).unwrap().history;
        assert_eq!(kept.len(), HISTORY_LEN);
        assert_eq!(kept[0].image().as_str(), "app:10");
        let ghost = ServiceName::parse("ghost").unwrap();
        assert!(matches!(
            store.scale_for_test(&ghost, 1).await,
            Err(Error::ServiceNotFound(_))
        ));
    }

    #[tokio::test]
    async fn a_rollback_swaps_current_and_previous_and_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("services.json");
        let store = Store::open_for_test(&path, crate::feed::Feed::new(64)).unwrap();
        let web = ServiceName::parse("web").unwrap();
        store
            .create_for_test(definition("web", "app:1"))
            .await
            .unwrap();
        store.scale_for_test(&web, 2).await.unwrap();
        store
            .replace_for_test(definition("web", "app:2"))
            .await
            .unwrap();
        store
            .replace_for_test(definition("web", "app:3"))
            .await
            .unwrap();

        let now = store.roll_back_for_test(&web).await.unwrap();
        assert_eq!(now.0.image().as_str(), "app:2");
        let images = |stored: &StoredService| {
            let history: Vec<String> = stored
                .history
                .iter()
                .map(|d| d.image().as_str().to_owned())
                .collect();
            (stored.definition.image().as_str().to_owned(), history)
        };
        // Acknowledged means on disk: a fresh read of the file sees it.
        let reopened = Store::read_back_for_test(&path).service(&web).unwrap();
        assert_eq!(
            images(&reopened),
            (
                "app:2".to_owned(),
                vec!["app:3".to_owned(), "app:1".to_owned()]
            )
        );
        assert_eq!(reopened.desired, Some(2), "a rollback keeps the count");
        // A second rollback undoes the first, like `docker service rollback`.
        store.roll_back_for_test(&web).await.unwrap();
        assert_eq!(
            images(&Store::read_back_for_test(&path).service(&web).unwrap()),
            (
                "app:3".to_owned(),
                vec!["app:2".to_owned(), "app:1".to_owned()]
            )
        );
    }

    #[tokio::test]
    async fn a_rollback_without_an_earlier_definition_is_refused_and_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("services.json");
        let store = Store::open_for_test(&path, crate::feed::Feed::new(64)).unwrap();
        let web = ServiceName::parse("web").unwrap();
        store
            .create_for_test(definition("web", "app:1"))
            .await
            .unwrap();
        // The same definition again is no earlier one.
        store
            .replace_for_test(definition("web", "app:1"))
            .await
            .unwrap();
        let before = on_disk(&path);
        let err = store.roll_back_for_test(&web).await.unwrap_err();
        assert!(matches!(err, Error::NothingToRollBack(_)), "{err:?}");
        assert_eq!(err.status(), rocket::http::Status::Conflict);
        assert_eq!(on_disk(&path), before);
        let ghost = ServiceName::parse("ghost").unwrap();
        assert!(matches!(
            store.roll_back_for_test(&ghost).await,
            Err(Error::ServiceNotFound(_))
        ));
    }

    #[tokio::test]
    async fn a_rollback_decided_on_one_definition_leaves_a_later_one_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("services.json");
        let store = Store::open_for_test(&path, crate::feed::Feed::new(64)).unwrap();
        let web = ServiceName::parse("web").unwrap();
        let (one, two) = (definition("web", "app:1"), definition("web", "app:2"));
        store.create_for_test(one.clone()).await.unwrap();
        store.replace_for_test(two.clone()).await.unwrap();
        // A PUT came after the failure was seen: the rollback is moot.
        store
            .replace_for_test(definition("web", "app:3"))
            .await
            .unwrap();
        let before = on_disk(&path);
        let moot = store
            .roll_back_from(
                &web,
                two.config_hash(),
                one.config_hash(),
                &crate::store::Origin::connector("test"),
            )
            .await
            .unwrap();
        assert!(!moot);
        assert_eq!(on_disk(&path), before, "nothing was written");
        let done = store
            .roll_back_from(
                &web,
                store.get(&web).unwrap().config_hash(),
                two.config_hash(),
                &crate::store::Origin::connector("test"),
            )
            .await
            .unwrap();
        assert!(done);
        let reopened = Store::read_back_for_test(&path).service(&web).unwrap();
        assert_eq!(reopened.definition.image().as_str(), "app:2");
        assert_eq!(reopened.history[0].image().as_str(), "app:3");
    }

    #[tokio::test]
    async fn a_version_1_file_is_read_with_desired_counts_to_adopt() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("services.json");
        fs::write(
            &path,
            r#"{"format_version": 1, "services": {"web": {"name": "web", "image": "app:1"}}}"#,
        )
        .unwrap();
        let store = Store::open_for_test(&path, crate::feed::Feed::new(64)).unwrap();
        let web = ServiceName::parse("web").unwrap();
        assert_eq!(store.service(&web).unwrap().desired, None);
        assert_eq!(store.adopt_desired(&web, 2).await.unwrap(), 2);
        // Adopting again does not override what is recorded.
        assert_eq!(store.adopt_desired(&web, 5).await.unwrap(), 2);
        drop(store);
        assert_eq!(
            Store::open_for_test(&path, crate::feed::Feed::new(64))
                .unwrap()
                .service(&web)
                .unwrap()
                .desired,
            Some(2)
        );
        let text = fs::read_to_string(&path).unwrap();
        assert!(text.contains("\"format_version\": 4"), "{text}");
    }

    fn origin(caller: &str, reason: &str) -> Origin {
        Origin {
            caller: caller.to_owned(),
            reason: Some(reason.to_owned()),
        }
    }

    #[tokio::test]
    async fn revisions_are_never_given_twice_and_if_match_guards_every_write() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("services.json");
        let feed = Feed::new(64);
        let store = Store::open_for_test(&path, feed.clone()).unwrap();
        let web = ServiceName::parse("web").unwrap();
        let someone = origin("curl at 127.0.0.1", "test");
        let first = store
            .create(definition("web", "app:1"), &someone)
            .await
            .unwrap();
        let stale = Precondition::AtRevision(vec![first]);
        let (_, second) = store
            .replace(definition("web", "app:2"), &someone, Some(&stale))
            .await
            .unwrap();
        assert!(second > first);
        let before = on_disk(&path);
        for refused in [
            store
                .replace(definition("web", "app:3"), &someone, Some(&stale))
                .await
                .map(drop),
            store
                .scale(&web, &ScaleRequest::to(2), &someone, Some(&stale))
                .await
                .map(drop),
            store
                .roll_back(&web, &someone, Some(&stale))
                .await
                .map(drop),
            store.check(&web, Some(&stale)),
        ] {
            assert!(
                matches!(refused, Err(Error::PreconditionFailed { revision: Some(r), .. }) if r == second),
                "{refused:?}"
            );
        }
        assert_eq!(on_disk(&path), before, "nothing was written");
        // If-Match on a name that does not exist never matches, not even *.
        let ghost = store
            .replace(
                definition("db", "db:1"),
                &someone,
                Some(&Precondition::Exists),
            )
            .await;
        assert!(matches!(
            ghost,
            Err(Error::PreconditionFailed { revision: None, .. })
        ));
        // A deleted and re-created service does not get an old revision back.
        store.remove(&web, &someone).await.unwrap();
        let again = store
            .create(definition("web", "app:1"), &someone)
            .await
            .unwrap();
        assert!(again > second + 1, "the delete took a revision too");
        let reopened = Store::read_back_for_test(&path);
        assert_eq!(reopened.revision(&web), Some(again));
        let next = reopened
            .create(definition("db", "db:1"), &someone)
            .await
            .unwrap();
        assert_eq!(next, again + 1, "the counter survives a restart");
    }

    #[tokio::test]
    async fn scales_add_deltas_respect_bounds_and_leave_a_history() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("services.json");
        let feed = Feed::new(64);
        let store = Store::open_for_test(&path, feed.clone()).unwrap();
        let web = ServiceName::parse("web").unwrap();
        let bounded = ServiceDefinition::from_create_body(
            &json!({"name": "web", "image": "app:1", "scaling": {"max": 3}}),
        )
        .unwrap();
        store.create(bounded, &origin("a", "new")).await.unwrap();
        let delta = |d: i64| {
            ScaleRequest::from_body(&json!({"delta": d, "reason": format!("by {d}")}), 10).unwrap()
        };
        let up = store
            .scale(&web, &delta(2), &origin("a", "by 2"), None)
            .await
            .unwrap();
        assert_eq!((up.from, up.to, up.changed()), (Some(0), 2, true));
        let same = store
            .scale(&web, &delta(0), &origin("a", "x"), None)
            .await
            .unwrap();
        assert_eq!((same.revision, same.changed()), (up.revision, false));
        let over = store.scale(&web, &delta(2), &origin("a", "x"), None).await;
        assert!(matches!(over, Err(Error::OutOfBounds { ref field, .. }) if field == "delta"));
        // A PUT whose bounds exclude the count is refused, naming the bound.
        let narrower = ServiceDefinition::from_create_body(
            &json!({"name": "web", "image": "app:1", "scaling": {"max": 1}}),
        )
        .unwrap();
        let refused = store.replace(narrower, &origin("a", "x"), None).await;
        assert!(
            matches!(refused, Err(Error::OutOfBounds { ref field, .. }) if field == "scaling.max"),
            "{refused:?}"
        );
        store.settle(&web, up.revision, DONE).await.unwrap();
        let history = Store::read_back_for_test(&path)
            .service(&web)
            .unwrap()
            .changes;
        let kinds: Vec<(ChangeKind, &str, &str)> = history
            .iter()
            .map(|c| {
                (
                    c.kind,
                    c.reason.as_deref().unwrap_or(""),
                    c.outcome.as_str(),
                )
            })
            .collect();
        assert_eq!(
            kinds,
            [
                (ChangeKind::Scaled, "by 2", DONE),
                (ChangeKind::Created, "new", DONE)
            ]
        );
        assert_eq!(
            (history[0].from.clone(), history[0].to.clone()),
            (json!(0), json!(2))
        );
        assert_eq!(history[0].caller, "a");
        // Watchers heard of each change, in order.
        let mut cursor = feed.watch(Some(feed.service_index("nothing")));
        let crate::feed::Batch::Events(events) = cursor.next().await else {
            panic!("a reset")
        };
        let names: Vec<&str> = events.iter().map(|e| e.kind.name()).collect();
        assert_eq!(names, ["service.created", "service.scaled"]);
        assert_eq!(events[1].data["to"], 2);
        assert_eq!(events[1].data["reason"], "by 2");
    }

    fn settings(max_replicas: u32, after_bytes: u64) -> StoreSettings {
        StoreSettings {
            max_replicas,
            compaction: Compaction { after_bytes },
        }
    }

    fn journal_of(path: &Path) -> PathBuf {
        let mut journal = path.as_os_str().to_owned();
        journal.push(".journal");
        PathBuf::from(journal)
    }

    #[tokio::test]
    async fn compactions_during_writes_lose_nothing_and_bound_the_journal() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("services.json");
        let store = Store::open(&path, Feed::new(64), settings(100, 4096)).unwrap();
        for n in 0..40 {
            store
                .create_for_test(definition(&format!("s{n}"), "app:1"))
                .await
                .unwrap();
            let name = ServiceName::parse(&format!("s{}", n / 2)).unwrap();
            store.scale_for_test(&name, n % 7 + 1).await.unwrap();
        }
        // Compactions run beside the writes; let the last one end.
        let mut waited = 0;
        while store.disk.lock().unwrap().compacting() && waited < 100 {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            waited += 1;
        }
        let snapshot = fs::read_to_string(&path).expect("compacted at least once");
        assert!(snapshot.contains("\"journal_seq\""), "{snapshot}");
        let journal = fs::metadata(journal_of(&path)).unwrap().len();
        assert!(
            journal <= 4096 + 4096,
            "the journal was folded in: {journal} bytes"
        );
        let read = Store::read_back_for_test(&path);
        assert_eq!(*read.all(), *store.all());
        assert_eq!(read.revision.load(Ordering::SeqCst), 80);
    }

    #[tokio::test]
    async fn a_write_cut_short_is_dropped_and_a_gap_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("services.json");
        let store = Store::open_for_test(&path, Feed::new(64)).unwrap();
        store
            .create_for_test(definition("web", "app:1"))
            .await
            .unwrap();
        store
            .create_for_test(definition("db", "db:1"))
            .await
            .unwrap();
        drop(store);
        let journal = journal_of(&path);
        let whole = fs::read(&journal).unwrap();
        let lines: Vec<&[u8]> = whole.split_inclusive(|&b| b == b'\n').collect();
        assert_eq!(lines.len(), 2);

        // A crash in the middle of the second append: the first stands.
        fs::write(
            &journal,
            [lines[0], &lines[1][..lines[1].len() / 2]].concat(),
        )
        .unwrap();
        let store = Store::open_for_test(&path, Feed::new(64)).unwrap();
        let names: Vec<_> = store.all().keys().map(|n| n.to_string()).collect();
        assert_eq!(names, ["web"]);
        assert_eq!(
            fs::read(&journal).unwrap(),
            b"",
            "folded in, the torn bytes dropped"
        );
        store
            .create_for_test(definition("db", "db:2"))
            .await
            .unwrap();
        drop(store);
        let read = Store::read_back_for_test(&path);
        assert_eq!(read.all().len(), 2);

        // A journal whose records do not follow the snapshot's.
        let snapshot_seq = 2;
        let line = format::render_record(snapshot_seq + 5, 9, std::iter::empty());
        fs::write(&journal, line).unwrap();
        let err = Store::open_for_test(&path, Feed::new(64)).err().unwrap();
        assert!(err.contains("do not belong together"), "{err}");
    }

    #[tokio::test]
    async fn records_the_snapshot_holds_are_skipped() {
        // A compaction stopped by a crash after the snapshot's rename and
        // before the journal's: the journal repeats what the snapshot holds.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("services.json");
        let store = Store::open_for_test(&path, Feed::new(64)).unwrap();
        let web = ServiceName::parse("web").unwrap();
        store
            .create_for_test(definition("web", "app:1"))
            .await
            .unwrap();
        store.scale_for_test(&web, 2).await.unwrap();
        let journal = fs::read(journal_of(&path)).unwrap();
        store.compact_now().unwrap();
        store.scale_for_test(&web, 3).await.unwrap();
        let after = fs::read(journal_of(&path)).unwrap();
        drop(store);
        fs::write(journal_of(&path), [journal, after].concat()).unwrap();
        let store = Store::open_for_test(&path, Feed::new(64)).unwrap();
        assert_eq!(store.service(&web).unwrap().desired, Some(3));
    }

    #[tokio::test]
    async fn a_count_above_max_replicas_is_brought_down_with_a_history_entry() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("services.json");
        let store = Store::open_for_test(&path, Feed::new(64)).unwrap();
        let web = ServiceName::parse("web").unwrap();
        store
            .create_for_test(definition("web", "app:1"))
            .await
            .unwrap();
        store.scale_for_test(&web, 5).await.unwrap();
        drop(store);
        let store = Store::open(&path, Feed::new(64), settings(2, 4096)).unwrap();
        let stored = store.service(&web).unwrap();
        assert_eq!(stored.desired, Some(2));
        assert_eq!(stored.changes[0].from, json!(5));
        assert!(
            stored.changes[0]
                .reason
                .as_deref()
                .is_some_and(|r| r.contains("max_replicas is 2")),
            "{:?}",
            stored.changes[0]
        );
        drop(store);
        let read = Store::read_back_for_test(&path);
        assert_eq!(read.service(&web).unwrap().desired, Some(2), "on disk");
    }

    #[test]
    fn a_second_store_on_the_same_files_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("services.json");
        let _first = Store::open_for_test(&path, Feed::new(64)).unwrap();
        let err = Store::open_for_test(&path, Feed::new(64)).err().unwrap();
        assert!(err.contains("another connector"), "{err}");
    }
}
