//! The services: each one's definition, desired count, revision and
//! history of changes, in an in-memory map backed by one JSON file. This is
//! the only code that touches the file.
//!
//! Every change is written to a temporary file in the same directory, synced,
//! renamed over the old file and the directory synced, before the change is
//! visible or acknowledged; so an acknowledged write survives `kill -9` and a
//! failed one leaves both the file and the map as they were. Once visible,
//! a change of a definition or desired count is published to the
//! [`Feed`], in the order the changes were written.
//!
//! Each change of a service's definition or desired count gives it a new
//! revision, from one counter kept in the file, so a revision (the
//! service's `ETag`) is never given twice, not even to a service deleted
//! and created again. A write with an `If-Match` ([`Precondition`]) is
//! checked against the revision under the writer's lock.

mod changes;

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use serde_json::{json, Value};

use crate::domain::{Precondition, ScaleRequest, ServiceDefinition, ServiceName};
use crate::error::Error;
use crate::feed::{EventKind, Feed};
pub use changes::{Change, Origin, DONE, PENDING};
use changes::{ChangeKind, CHANGES_KEPT};

/// Version of the file's layout, written into it so a later layout can be
/// told apart. Version 1 held definitions only, version 2 added desired
/// counts and earlier definitions; both are still read, and rewritten as
/// version 3 at the first change.
const FORMAT_VERSION: u64 = 3;

/// What the store keeps of one service.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredService {
    pub definition: ServiceDefinition,
    /// How many containers should run, as the last scale asked. `None` only
    /// for a service read from a version 1 file, which never recorded it: the
    /// reconciler then adopts the number running rather than guess.
    pub desired: Option<u32>,
    /// Earlier definitions, newest first, each with a config hash of its
    /// own, at most [`HISTORY_LEN`]: while a roll of the current definition
    /// fails, containers that die are replaced with the earlier definition
    /// the service still runs, so the old containers keep serving.
    pub history: Vec<ServiceDefinition>,
    /// Changed with every change of the definition or desired count.
    pub revision: u64,
    /// What changed the service, newest first (see [`changes`]).
    pub changes: Vec<Change>,
}

/// How many earlier definitions a service keeps.
pub const HISTORY_LEN: usize = 5;

impl StoredService {
    fn new(definition: ServiceDefinition, revision: u64) -> Self {
        StoredService {
            definition,
            desired: Some(0),
            history: Vec::new(),
            revision,
            changes: Vec::new(),
        }
    }

    /// Makes `definition` the current one; the one it replaces goes into
    /// the history if it ran something else. Returns whether it did.
    fn replace(&mut self, definition: ServiceDefinition) -> bool {
        let previous = std::mem::replace(&mut self.definition, definition);
        let (current, before) = (self.definition.config_hash(), previous.config_hash());
        if before == current {
            return false;
        }
        self.history
            .retain(|old| old.config_hash() != current && old.config_hash() != before);
        self.history.insert(0, previous);
        self.history.truncate(HISTORY_LEN);
        true
    }

    /// Makes `definition` current (see [`StoredService::replace`]) at
    /// `revision`, and records that as a change of `kind`; whether it runs
    /// something else. A definition that runs the same is done at once:
    /// no container changes for it.
    fn change_definition(
        &mut self,
        definition: ServiceDefinition,
        kind: ChangeKind,
        revision: u64,
        origin: &Origin,
    ) -> bool {
        let from = changes::summary(&self.definition);
        let to = changes::summary(&definition);
        let runs_differently = self.replace(definition);
        self.revision = revision;
        let outcome = if runs_differently { PENDING } else { DONE };
        changes::record(
            &mut self.changes,
            Change::new(kind, revision, from, to, origin, outcome),
        );
        runs_differently
    }
}

type Services = BTreeMap<ServiceName, StoredService>;

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

/// One write in the making: the map to edit, the revision it may give, and
/// the events it will publish once visible.
struct Edit {
    services: Services,
    /// The store's revision before the write.
    base: u64,
    /// Whether the write gave out `base + 1`.
    stamped: bool,
    events: Vec<(EventKind, String, Value)>,
}

impl Edit {
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
        self.services
            .get_mut(name)
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
    path: PathBuf,
    /// The current map. Readers clone the `Arc` and never wait for the disk;
    /// a writer swaps in a new map only after it is on disk.
    services: RwLock<Arc<Services>>,
    /// The newest revision given, as the file holds it.
    revision: AtomicU64,
    /// Serializes writers, held across the whole write, so changes apply in
    /// order and the temporary file has one writer.
    writer: tokio::sync::Mutex<()>,
    feed: Arc<Feed>,
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
    /// Loads the file at `path`, or starts empty (creating its directory) if
    /// there is none; changes are published to `feed`.
    ///
    /// # Errors
    /// A message naming the file when it cannot be read or does not hold valid
    /// definitions. The file is never overwritten in that case.
    pub fn open(path: &Path, feed: Arc<Feed>) -> Result<Self, String> {
        let (revision, services) = match fs::read(path) {
            Ok(bytes) => {
                parse_file(&bytes).map_err(|e| format!("data file {}: {e}", path.display()))?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    fs::create_dir_all(dir)
                        .map_err(|e| format!("cannot create directory {}: {e}", dir.display()))?;
                }
                (0, Services::new())
            }
            Err(e) => return Err(format!("cannot read data file {}: {e}", path.display())),
        };
        Ok(Store {
            path: path.to_path_buf(),
            services: RwLock::new(Arc::new(services)),
            revision: AtomicU64::new(revision),
            writer: tokio::sync::Mutex::new(()),
            feed,
        })
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
        self.all().get(name).cloned()
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
        edit.services.insert(name, stored);
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
        if !self.all().get(name).is_some_and(applies) {
            return Ok(false);
        }
        self.change(|edit| {
            let Some(stored) = edit.services.get_mut(name).filter(|stored| applies(stored)) else {
                return Ok(false);
            };
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
        let stored = edit.services.get_mut(name).expect("checked by the caller");
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
        if !self.all().get(name).is_some_and(pending) {
            return Ok(());
        }
        self.change(|edit| {
            if let Some(stored) = edit.services.get_mut(name) {
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
        if !self.all().get(name).is_some_and(pending) {
            return Ok(false);
        }
        self.change(|edit| {
            Ok(edit.services.get_mut(name).is_some_and(|stored| {
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
            edit.services
                .remove(name)
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
        if self.all().get(name).is_some_and(idle) {
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

    /// Applies `edit` to a copy of the map, writes the copy, and only then
    /// makes it the current map and publishes its events.
    async fn change<T>(
        &self,
        edit: impl FnOnce(&mut Edit) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let _writing = self.writer.lock().await;
        let mut next = Edit {
            services: Services::clone(&self.all()),
            base: self.revision.load(Ordering::SeqCst),
            stamped: false,
            events: Vec::new(),
        };
        let outcome = edit(&mut next)?;
        let revision = next.base + u64::from(next.stamped);
        let bytes = render_file(revision, &next.services);
        let path = self.path.clone();
        let written = tokio::task::spawn_blocking(move || write_atomically(&path, &bytes))
            .await
            .map_err(|e| Error::Storage(format!("writer task failed: {e}")))?;
        let unsynced = match written {
            Ok(()) => None,
            Err(WriteFailure::NotWritten(e)) => {
                return Err(Error::Storage(format!("{}: {e}", self.path.display())))
            }
            Err(WriteFailure::NotSynced(e)) => Some(e),
        };
        // The file holds the change: serve what it holds, and say so.
        self.revision.store(revision, Ordering::SeqCst);
        *self.services.write().expect("store lock poisoned") = Arc::new(next.services);
        for (kind, service, fields) in next.events {
            self.feed.publish(kind, &service, fields);
        }
        match unsynced {
            None => Ok(outcome),
            // Do not acknowledge a write that may not be durable.
            Some(e) => Err(Error::Storage(format!(
                "{}: the change was written but its directory could not be synced ({e}); \
                 it may not survive a power loss",
                self.path.display()
            ))),
        }
    }
}

/// The writes the unit tests make: by the connector, without `If-Match`.
#[cfg(test)]
impl Store {
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

    pub(crate) async fn remove_for_test(&self, name: &ServiceName) -> Result<(), Error> {
        self.remove(name, &Origin::connector("test")).await
    }
}

fn render_file(revision: u64, services: &Services) -> Vec<u8> {
    let services: BTreeMap<&ServiceName, Value> = services
        .iter()
        .map(|(name, stored)| {
            let entry = json!({
                "definition": stored.definition,
                "desired": stored.desired,
                "history": stored.history,
                "revision": stored.revision,
                "changes": stored.changes,
            });
            (name, entry)
        })
        .collect();
    let document = json!({
        "format_version": FORMAT_VERSION,
        "revision": revision,
        "services": services,
    });
    let mut bytes = serde_json::to_vec_pretty(&document).expect("definitions serialize");
    bytes.push(b'\n');
    bytes
}

/// Reads a file of any version: the store's revision and the services.
/// Services of a file before version 3 get revision 1, as does the store.
fn parse_file(bytes: &[u8]) -> Result<(u64, Services), String> {
    let document: Value =
        serde_json::from_slice(bytes).map_err(|e| format!("not valid JSON: {e}"))?;
    let version = document.get("format_version").and_then(Value::as_u64);
    let Some(version) = version.filter(|v| (1..=FORMAT_VERSION).contains(v)) else {
        return Err(format!(
            "unsupported format_version {version:?}, expected 1 to {FORMAT_VERSION}"
        ));
    };
    let Some(entries) = document.get("services").and_then(Value::as_object) else {
        return Err("\"services\" must be an object".into());
    };
    let revision = match document.get("revision") {
        None if version < 3 => 1,
        revision => revision
            .and_then(Value::as_u64)
            .ok_or_else(|| "\"revision\" must be a non-negative integer".to_owned())?,
    };
    let mut services = Services::new();
    for (key, entry) in entries {
        let stored = if version == 1 {
            read_definition(key, entry).map(|definition| StoredService {
                desired: None,
                ..StoredService::new(definition, 1)
            })
        } else {
            read_service(key, entry)
        }?;
        if stored.revision > revision {
            return Err(format!(
                "service {key:?}: revision {} is above the file's {revision}",
                stored.revision
            ));
        }
        services.insert(stored.definition.name().clone(), stored);
    }
    Ok((revision, services))
}

/// Reads a version 2 or 3 entry: `{"definition": {...}, "desired": N,
/// "history": [{...}, ...], "revision": R, "changes": [...]}` (`history`
/// and `changes` may be absent, `revision` too before version 3).
fn read_service(key: &str, entry: &Value) -> Result<StoredService, String> {
    let definition = read_definition(key, entry.get("definition").unwrap_or(&Value::Null))?;
    let desired = match entry.get("desired") {
        None | Some(Value::Null) => None,
        Some(value) => Some(
            value
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| format!("service {key:?}: desired {value} is not a count"))?,
        ),
    };
    let history = match entry.get("history") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(earlier)) => earlier
            .iter()
            .map(|old| read_definition(key, old))
            .collect::<Result<_, _>>()?,
        Some(other) => return Err(format!("service {key:?}: history {other} is not a list")),
    };
    let revision = match entry.get("revision") {
        None => 1,
        Some(value) => value
            .as_u64()
            .ok_or_else(|| format!("service {key:?}: revision {value} is not a number"))?,
    };
    let mut changes: Vec<Change> = match entry.get("changes") {
        None | Some(Value::Null) => Vec::new(),
        Some(list) => serde_json::from_value(list.clone())
            .map_err(|e| format!("service {key:?}: changes: {e}"))?,
    };
    changes.truncate(CHANGES_KEPT);
    Ok(StoredService {
        definition,
        desired,
        history,
        revision,
        changes,
    })
}

fn read_definition(key: &str, entry: &Value) -> Result<ServiceDefinition, String> {
    let definition =
        ServiceDefinition::from_create_body(entry).map_err(|e| format!("service {key:?}: {e}"))?;
    if definition.name().as_str() != key {
        return Err(format!("service {key:?} is stored under another name"));
    }
    Ok(definition)
}

/// How an atomic write fell short.
#[derive(Debug)]
enum WriteFailure {
    /// The old file is untouched.
    NotWritten(std::io::Error),
    /// The new file is in place, but its directory entry was not synced.
    NotSynced(std::io::Error),
}

/// Replaces the file at `path` with `bytes` so that a crash at any moment
/// leaves either the old or the new content, never a mix. The file is made
/// readable by its owner only: environment values are often secrets.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), WriteFailure> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temp = dir.join(format!(".{file_name}.tmp"));
    let replaced = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&temp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&temp, path)
    })();
    if let Err(e) = replaced {
        let _ = fs::remove_file(&temp);
        return Err(WriteFailure::NotWritten(e));
    }
    // The rename is durable only once the directory entry is.
    File::open(&dir)
        .and_then(|d| d.sync_all())
        .map_err(WriteFailure::NotSynced)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ScaleRequest;

    fn definition(name: &str, image: &str) -> ServiceDefinition {
        ServiceDefinition::from_create_body(&json!({"name": name, "image": image})).unwrap()
    }

    #[tokio::test]
    async fn changes_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/services.json");
        let store = Store::open(&path, crate::feed::Feed::new(64)).unwrap();
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
        let mode = fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the file may hold secrets");

        let reopened = Store::open(&path, crate::feed::Feed::new(64)).unwrap();
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
        let store = Store::open(&path, crate::feed::Feed::new(64)).unwrap();
        store
            .create_for_test(definition("web", "app:1"))
            .await
            .unwrap();
        let before = fs::read(&path).unwrap();
        // A directory where the temporary file should go makes the write fail.
        fs::create_dir(dir.path().join(".services.json.tmp")).unwrap();
        let err = store
            .create_for_test(definition("db", "db:1"))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Storage(_)), "{err:?}");
        assert_eq!(fs::read(&path).unwrap(), before);
        assert!(store.get(&ServiceName::parse("db").unwrap()).is_none());
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
            let err = Store::open(&path, crate::feed::Feed::new(64))
                .err()
                .expect(junk);
            assert!(err.contains("services.json"), "{err}");
        }
    }

    #[tokio::test]
    async fn desired_counts_survive_reopening_and_replacing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("services.json");
        let store = Store::open(&path, crate::feed::Feed::new(64)).unwrap();
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
        let reopened = Store::open(&path, crate::feed::Feed::new(64))
            .unwrap()
            .service(&web)
            .unwrap();
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
        let store = Store::open(&path, crate::feed::Feed::new(64)).unwrap();
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
        let reopened = Store::open(&path, crate::feed::Feed::new(64))
            .unwrap()
            .service(&web)
            .unwrap();
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
            images(
                &Store::open(&path, crate::feed::Feed::new(64))
                    .unwrap()
                    .service(&web)
                    .unwrap()
            ),
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
        let store = Store::open(&path, crate::feed::Feed::new(64)).unwrap();
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
        let before = fs::read(&path).unwrap();
        let err = store.roll_back_for_test(&web).await.unwrap_err();
        assert!(matches!(err, Error::NothingToRollBack(_)), "{err:?}");
        assert_eq!(err.status(), rocket::http::Status::Conflict);
        assert_eq!(fs::read(&path).unwrap(), before);
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
        let store = Store::open(&path, crate::feed::Feed::new(64)).unwrap();
        let web = ServiceName::parse("web").unwrap();
        let (one, two) = (definition("web", "app:1"), definition("web", "app:2"));
        store.create_for_test(one.clone()).await.unwrap();
        store.replace_for_test(two.clone()).await.unwrap();
        // A PUT came after the failure was seen: the rollback is moot.
        store
            .replace_for_test(definition("web", "app:3"))
            .await
            .unwrap();
        let before = fs::read(&path).unwrap();
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
        assert_eq!(fs::read(&path).unwrap(), before, "nothing was written");
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
        let reopened = Store::open(&path, crate::feed::Feed::new(64))
            .unwrap()
            .service(&web)
            .unwrap();
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
        let store = Store::open(&path, crate::feed::Feed::new(64)).unwrap();
        let web = ServiceName::parse("web").unwrap();
        assert_eq!(store.service(&web).unwrap().desired, None);
        assert_eq!(store.adopt_desired(&web, 2).await.unwrap(), 2);
        // Adopting again does not override what is recorded.
        assert_eq!(store.adopt_desired(&web, 5).await.unwrap(), 2);
        let text = fs::read_to_string(&path).unwrap();
        assert!(text.contains("\"format_version\": 3"), "{text}");
        assert_eq!(
            Store::open(&path, crate::feed::Feed::new(64))
                .unwrap()
                .service(&web)
                .unwrap()
                .desired,
            Some(2)
        );
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
        let store = Store::open(&path, feed.clone()).unwrap();
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
        let before = fs::read(&path).unwrap();
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
        assert_eq!(fs::read(&path).unwrap(), before, "nothing was written");
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
        let reopened = Store::open(&path, Feed::new(64)).unwrap();
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
        let store = Store::open(&path, feed.clone()).unwrap();
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
        let history = Store::open(&path, Feed::new(64))
            .unwrap()
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
}
