//! What the soak's tasks share: the connector, the proxy, the models,
//! the figures and violations, and the gate that lets the soak stop every
//! client and fault for a checkpoint.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use serde_json::Value;
use tokio::sync::RwLock;

use crate::connector::Connector;
use crate::figures::Figures;
use crate::invariants::Violations;
use crate::model::Models;
use crate::proxy::EngineProxy;

pub struct Storm {
    pub connector: Connector,
    pub proxy: EngineProxy,
    pub models: Models,
    pub figures: Figures,
    pub violations: Violations,
    /// The OpenAPI document answers are checked against.
    pub doc: Value,
    pub instance: String,
    /// The directory of the data file: the small tmpfs.
    pub data_dir: PathBuf,
    pub data_file: PathBuf,
    /// Each client's operation and each fault (with its undoing) runs
    /// holding a read guard; a checkpoint takes the write guard, so it
    /// starts once every operation has been answered and every fault
    /// undone, and none starts before it ends.
    pub gate: RwLock<()>,
    stopping: AtomicBool,
    /// Whether the data file's filesystem is full (set once it is, cleared
    /// before it is freed).
    pub disk_full: AtomicBool,
    /// Until when connector kills may happen: the last part of the storm
    /// has none, so the connector measured at the end has lived through it.
    kills_until: std::sync::Mutex<Instant>,
}

impl Storm {
    pub fn new(
        connector: Connector,
        proxy: EngineProxy,
        models: Models,
        doc: Value,
        instance: String,
        data_dir: PathBuf,
        data_file: PathBuf,
    ) -> Storm {
        Storm {
            connector,
            proxy,
            models,
            figures: Figures::default(),
            violations: Violations::default(),
            doc,
            instance,
            data_dir,
            data_file,
            gate: RwLock::new(()),
            stopping: AtomicBool::new(false),
            disk_full: AtomicBool::new(false),
            kills_until: std::sync::Mutex::new(Instant::now()),
        }
    }

    pub fn stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    pub fn stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
    }

    /// Whether the connector may be killed now.
    pub fn kills_allowed(&self) -> bool {
        Instant::now() < *self.kills_until.lock().unwrap()
    }

    pub fn allow_kills_until(&self, until: Instant) {
        *self.kills_until.lock().unwrap() = until;
    }

    pub fn disk_is_full(&self) -> bool {
        self.disk_full.load(Ordering::SeqCst)
    }
}
