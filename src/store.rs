//! The services: each one's definition and desired container count, in an
//! in-memory map backed by one JSON file. This is the only code that touches
//! the file.
//!
//! Every change is written to a temporary file in the same directory, synced,
//! renamed over the old file and the directory synced, before the change is
//! visible or acknowledged; so an acknowledged write survives `kill -9` and a
//! failed one leaves both the file and the map as they were.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use serde_json::{json, Value};

use crate::domain::{ServiceDefinition, ServiceName};
use crate::error::Error;

/// Version of the file's layout, written into it so a later layout can be
/// told apart. Version 1 held definitions only; it is still read, and
/// rewritten as version 2 at the first change.
const FORMAT_VERSION: u64 = 2;

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
}

/// How many earlier definitions a service keeps.
pub const HISTORY_LEN: usize = 5;

impl StoredService {
    fn new(definition: ServiceDefinition) -> Self {
        StoredService {
            definition,
            desired: Some(0),
            history: Vec::new(),
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
}

type Services = BTreeMap<ServiceName, StoredService>;

/// The definitions, readable without waiting on disk writes.
pub struct Store {
    path: PathBuf,
    /// The current map. Readers clone the `Arc` and never wait for the disk;
    /// a writer swaps in a new map only after it is on disk.
    services: RwLock<Arc<Services>>,
    /// Serializes writers, held across the whole write, so changes apply in
    /// order and the temporary file has one writer.
    writer: tokio::sync::Mutex<()>,
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
    /// there is none.
    ///
    /// # Errors
    /// A message naming the file when it cannot be read or does not hold valid
    /// definitions. The file is never overwritten in that case.
    pub fn open(path: &Path) -> Result<Self, String> {
        let services = match fs::read(path) {
            Ok(bytes) => {
                parse_file(&bytes).map_err(|e| format!("data file {}: {e}", path.display()))?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    fs::create_dir_all(dir)
                        .map_err(|e| format!("cannot create directory {}: {e}", dir.display()))?;
                }
                Services::new()
            }
            Err(e) => return Err(format!("cannot read data file {}: {e}", path.display())),
        };
        Ok(Store {
            path: path.to_path_buf(),
            services: RwLock::new(Arc::new(services)),
            writer: tokio::sync::Mutex::new(()),
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

    /// Adds a new definition, with no container desired yet.
    ///
    /// # Errors
    /// [`Error::ServiceExists`] if the name is taken, [`Error::Storage`] if the
    /// file could not be written.
    pub async fn create(&self, definition: ServiceDefinition) -> Result<(), Error> {
        self.change(|services| {
            if services.contains_key(definition.name()) {
                return Err(Error::ServiceExists(definition.name().to_string()));
            }
            services.insert(definition.name().clone(), StoredService::new(definition));
            Ok(())
        })
        .await
    }

    /// Adds or replaces a definition. A replaced service keeps its desired
    /// count; a new one desires none.
    ///
    /// # Errors
    /// [`Error::Storage`] if the file could not be written.
    pub async fn replace(&self, definition: ServiceDefinition) -> Result<Replaced, Error> {
        self.change(|services| {
            Ok(match services.get_mut(definition.name()) {
                Some(stored) => Replaced::Updated {
                    runs_differently: stored.replace(definition),
                },
                None => {
                    services.insert(definition.name().clone(), StoredService::new(definition));
                    Replaced::Created
                }
            })
        })
        .await
    }

    /// Makes the previous definition of `name` (the head of its history)
    /// the current one again, and answers it. The definition it replaces
    /// goes to the head of the history, as `docker service rollback` swaps
    /// a service's spec and previous spec: a second rollback undoes the
    /// first. One write, like any other change.
    ///
    /// # Errors
    /// [`Error::ServiceNotFound`] if there is no such service,
    /// [`Error::NothingToRollBack`] if it has no earlier definition,
    /// [`Error::Storage`] if the file could not be written.
    pub async fn roll_back(&self, name: &ServiceName) -> Result<ServiceDefinition, Error> {
        self.change(|services| {
            let stored = services
                .get_mut(name)
                .ok_or_else(|| Error::ServiceNotFound(name.to_string()))?;
            let previous = stored
                .history
                .first()
                .cloned()
                .ok_or_else(|| Error::NothingToRollBack(name.to_string()))?;
            stored.replace(previous.clone());
            Ok(previous)
        })
        .await
    }

    /// Makes the earlier definition of `name` whose config hash is `to` the
    /// current one, as [`Store::roll_back`] does, but only while the current
    /// definition's hash is still `from`: a rollback decided on what `from`
    /// did must not undo a PUT that came meanwhile. Answers whether it did;
    /// a service deleted meanwhile, or without that earlier definition, is
    /// left alone.
    ///
    /// # Errors
    /// [`Error::Storage`] if the file could not be written.
    pub async fn roll_back_from(
        &self,
        name: &ServiceName,
        from: &str,
        to: &str,
    ) -> Result<bool, Error> {
        let applies = |stored: &StoredService| {
            stored.definition.config_hash() == from
                && stored.history.iter().any(|old| old.config_hash() == to)
        };
        // Most passes find nothing to do: decide that without a write.
        if !self.all().get(name).is_some_and(applies) {
            return Ok(false);
        }
        self.change(|services| {
            let Some(stored) = services.get_mut(name).filter(|stored| applies(stored)) else {
                return Ok(false);
            };
            let earlier = stored
                .history
                .iter()
                .find(|old| old.config_hash() == to)
                .cloned()
                .expect("checked above");
            Ok(stored.replace(earlier))
        })
        .await
    }

    /// Records how many containers of `name` should run.
    ///
    /// # Errors
    /// [`Error::ServiceNotFound`] if there is no such service,
    /// [`Error::Storage`] if the file could not be written.
    pub async fn set_desired(&self, name: &ServiceName, desired: u32) -> Result<(), Error> {
        self.change(|services| {
            let stored = services
                .get_mut(name)
                .ok_or_else(|| Error::ServiceNotFound(name.to_string()))?;
            stored.desired = Some(desired);
            Ok(())
        })
        .await
    }

    /// Records `desired` for `name` unless a count is recorded already (a
    /// scale may have come first). Returns the count now recorded.
    ///
    /// # Errors
    /// As [`Store::set_desired`].
    pub async fn adopt_desired(&self, name: &ServiceName, desired: u32) -> Result<u32, Error> {
        if let Some(Some(recorded)) = self.all().get(name).map(|stored| stored.desired) {
            return Ok(recorded);
        }
        self.change(|services| {
            let stored = services
                .get_mut(name)
                .ok_or_else(|| Error::ServiceNotFound(name.to_string()))?;
            Ok(*stored.desired.get_or_insert(desired))
        })
        .await
    }

    /// Removes a definition.
    ///
    /// # Errors
    /// [`Error::ServiceNotFound`] if there is none, [`Error::Storage`] if the
    /// file could not be written.
    pub async fn remove(&self, name: &ServiceName) -> Result<(), Error> {
        self.change(|services| {
            services
                .remove(name)
                .map(drop)
                .ok_or_else(|| Error::ServiceNotFound(name.to_string()))
        })
        .await
    }

    /// Applies `edit` to a copy of the map, writes the copy, and only then
    /// makes it the current map.
    async fn change<T>(
        &self,
        edit: impl FnOnce(&mut Services) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let _writing = self.writer.lock().await;
        let mut next = Services::clone(&self.all());
        let outcome = edit(&mut next)?;
        let bytes = render_file(&next);
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
        // The file holds the change: serve what it holds.
        *self.services.write().expect("store lock poisoned") = Arc::new(next);
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

fn render_file(services: &Services) -> Vec<u8> {
    let services: BTreeMap<&ServiceName, Value> = services
        .iter()
        .map(|(name, stored)| {
            let entry = json!({
                "definition": stored.definition,
                "desired": stored.desired,
                "history": stored.history,
            });
            (name, entry)
        })
        .collect();
    let document = json!({ "format_version": FORMAT_VERSION, "services": services });
    let mut bytes = serde_json::to_vec_pretty(&document).expect("definitions serialize");
    bytes.push(b'\n');
    bytes
}

fn parse_file(bytes: &[u8]) -> Result<Services, String> {
    let document: Value =
        serde_json::from_slice(bytes).map_err(|e| format!("not valid JSON: {e}"))?;
    let version = document.get("format_version").and_then(Value::as_u64);
    if !matches!(version, Some(1 | FORMAT_VERSION)) {
        return Err(format!(
            "unsupported format_version {version:?}, expected 1 or {FORMAT_VERSION}"
        ));
    }
    let Some(entries) = document.get("services").and_then(Value::as_object) else {
        return Err("\"services\" must be an object".into());
    };
    let mut services = Services::new();
    for (key, entry) in entries {
        let stored = if version == Some(1) {
            read_definition(key, entry).map(|definition| StoredService {
                definition,
                desired: None,
                history: Vec::new(),
            })
        } else {
            read_service(key, entry)
        }?;
        services.insert(stored.definition.name().clone(), stored);
    }
    Ok(services)
}

/// Reads a version 2 entry: `{"definition": {...}, "desired": N,
/// "history": [{...}, ...]}` (`history` may be absent).
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
    Ok(StoredService {
        definition,
        desired,
        history,
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

    fn definition(name: &str, image: &str) -> ServiceDefinition {
        ServiceDefinition::from_create_body(&json!({"name": name, "image": image})).unwrap()
    }

    #[tokio::test]
    async fn changes_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/services.json");
        let store = Store::open(&path).unwrap();
        store.create(definition("web", "app:1")).await.unwrap();
        store.create(definition("db", "db:1")).await.unwrap();
        assert_eq!(
            store.replace(definition("web", "app:2")).await.unwrap(),
            Replaced::Updated {
                runs_differently: true
            }
        );
        store
            .remove(&ServiceName::parse("db").unwrap())
            .await
            .unwrap();

        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the file may hold secrets");

        let reopened = Store::open(&path).unwrap();
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
        let store = Store::open(&path).unwrap();
        store.create(definition("web", "app:1")).await.unwrap();
        let before = fs::read(&path).unwrap();
        // A directory where the temporary file should go makes the write fail.
        fs::create_dir(dir.path().join(".services.json.tmp")).unwrap();
        let err = store.create(definition("db", "db:1")).await.unwrap_err();
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
            let err = Store::open(&path).err().expect(junk);
            assert!(err.contains("services.json"), "{err}");
        }
    }

    #[tokio::test]
    async fn desired_counts_survive_reopening_and_replacing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("services.json");
        let store = Store::open(&path).unwrap();
        let web = ServiceName::parse("web").unwrap();
        store.create(definition("web", "app:1")).await.unwrap();
        assert_eq!(store.service(&web).unwrap().desired, Some(0));
        store.set_desired(&web, 3).await.unwrap();
        store.replace(definition("web", "app:2")).await.unwrap();
        store.replace(definition("web", "app:2")).await.unwrap();
        store.replace(definition("web", "app:3")).await.unwrap();
        store.replace(definition("web", "app:1")).await.unwrap();
        let reopened = Store::open(&path).unwrap().service(&web).unwrap();
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
            store.replace(definition("web", &image)).await.unwrap();
        }
        let kept = store.service(&web).unwrap().history;
        assert_eq!(kept.len(), HISTORY_LEN);
        assert_eq!(kept[0].image().as_str(), "app:10");
        let ghost = ServiceName::parse("ghost").unwrap();
        assert!(matches!(
            store.set_desired(&ghost, 1).await,
            Err(Error::ServiceNotFound(_))
        ));
    }

    #[tokio::test]
    async fn a_rollback_swaps_current_and_previous_and_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("services.json");
        let store = Store::open(&path).unwrap();
        let web = ServiceName::parse("web").unwrap();
        store.create(definition("web", "app:1")).await.unwrap();
        store.set_desired(&web, 2).await.unwrap();
        store.replace(definition("web", "app:2")).await.unwrap();
        store.replace(definition("web", "app:3")).await.unwrap();

        let now = store.roll_back(&web).await.unwrap();
        assert_eq!(now.image().as_str(), "app:2");
        let images = |stored: &StoredService| {
            let history: Vec<String> = stored
                .history
                .iter()
                .map(|d| d.image().as_str().to_owned())
                .collect();
            (stored.definition.image().as_str().to_owned(), history)
        };
        // Acknowledged means on disk: a fresh read of the file sees it.
        let reopened = Store::open(&path).unwrap().service(&web).unwrap();
        assert_eq!(
            images(&reopened),
            (
                "app:2".to_owned(),
                vec!["app:3".to_owned(), "app:1".to_owned()]
            )
        );
        assert_eq!(reopened.desired, Some(2), "a rollback keeps the count");
        // A second rollback undoes the first, like `docker service rollback`.
        store.roll_back(&web).await.unwrap();
        assert_eq!(
            images(&Store::open(&path).unwrap().service(&web).unwrap()),
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
        let store = Store::open(&path).unwrap();
        let web = ServiceName::parse("web").unwrap();
        store.create(definition("web", "app:1")).await.unwrap();
        // The same definition again is no earlier one.
        store.replace(definition("web", "app:1")).await.unwrap();
        let before = fs::read(&path).unwrap();
        let err = store.roll_back(&web).await.unwrap_err();
        assert!(matches!(err, Error::NothingToRollBack(_)), "{err:?}");
        assert_eq!(err.status(), rocket::http::Status::Conflict);
        assert_eq!(fs::read(&path).unwrap(), before);
        let ghost = ServiceName::parse("ghost").unwrap();
        assert!(matches!(
            store.roll_back(&ghost).await,
            Err(Error::ServiceNotFound(_))
        ));
    }

    #[tokio::test]
    async fn a_rollback_decided_on_one_definition_leaves_a_later_one_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("services.json");
        let store = Store::open(&path).unwrap();
        let web = ServiceName::parse("web").unwrap();
        let (one, two) = (definition("web", "app:1"), definition("web", "app:2"));
        store.create(one.clone()).await.unwrap();
        store.replace(two.clone()).await.unwrap();
        // A PUT came after the failure was seen: the rollback is moot.
        store.replace(definition("web", "app:3")).await.unwrap();
        let before = fs::read(&path).unwrap();
        let moot = store
            .roll_back_from(&web, two.config_hash(), one.config_hash())
            .await
            .unwrap();
        assert!(!moot);
        assert_eq!(fs::read(&path).unwrap(), before, "nothing was written");
        let done = store
            .roll_back_from(
                &web,
                store.get(&web).unwrap().config_hash(),
                two.config_hash(),
            )
            .await
            .unwrap();
        assert!(done);
        let reopened = Store::open(&path).unwrap().service(&web).unwrap();
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
        let store = Store::open(&path).unwrap();
        let web = ServiceName::parse("web").unwrap();
        assert_eq!(store.service(&web).unwrap().desired, None);
        assert_eq!(store.adopt_desired(&web, 2).await.unwrap(), 2);
        // Adopting again does not override what is recorded.
        assert_eq!(store.adopt_desired(&web, 5).await.unwrap(), 2);
        let text = fs::read_to_string(&path).unwrap();
        assert!(text.contains("\"format_version\": 2"), "{text}");
        assert_eq!(
            Store::open(&path).unwrap().service(&web).unwrap().desired,
            Some(2)
        );
    }
}
