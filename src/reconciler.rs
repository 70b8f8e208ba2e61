//! Keeps every service at its desired state without being asked: one task
//! for the connector's life runs [`Scaler::reconcile`] for each service that
//! needs it, when docker reports a change to the instance's containers, when
//! a definition changes, when a backoff ends, and every [`SWEEP_INTERVAL`]
//! as a safety net. Services are reconciled in parallel, each by at most
//! one pass at a time. It works from the container index, so it acts only
//! while the index is live (see [`Scaler::needs_reconciling`]); the index's
//! own relisting every 30 s catches what events missed.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::{Id, JoinSet};

use crate::domain::ServiceName;
use crate::error::Error;
use crate::inventory::Inventory;
use crate::scaler::Scaler;
use crate::store::Store;

/// How often every service is looked at over the index even when nothing
/// woke the reconciler. (An event docker never delivered is caught by the
/// index's own relisting every 30 s, which also wakes the reconciler.)
const SWEEP_INTERVAL: Duration = Duration::from_secs(5);

/// The background reconciler.
pub struct Reconciler {
    scaler: Arc<Scaler>,
    store: Arc<Store>,
    inventory: Arc<Inventory>,
    /// Woken when a definition changes. One waiter; a wake-up while it is
    /// busy is kept.
    wake: tokio::sync::Notify,
}

impl Reconciler {
    pub fn new(scaler: Arc<Scaler>, store: Arc<Store>, inventory: Arc<Inventory>) -> Arc<Self> {
        Arc::new(Reconciler {
            scaler,
            store,
            inventory,
            wake: tokio::sync::Notify::new(),
        })
    }

    /// Asks for a look at every service soon (a definition changed).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Runs until the runtime stops.
    pub async fn run(self: Arc<Self>) {
        let mut passes: JoinSet<Result<(), Error>> = JoinSet::new();
        // The service each pass in flight works on, by task.
        let mut busy: HashMap<Id, ServiceName> = HashMap::new();
        let mut next_sweep = Instant::now();
        loop {
            if Instant::now() >= next_sweep {
                next_sweep = Instant::now() + SWEEP_INTERVAL;
            }
            for (service, stored) in self.store.all().iter() {
                if busy.values().any(|s| s == service)
                    || !self.scaler.needs_reconciling(service, stored)
                {
                    continue;
                }
                let (scaler, name) = (self.scaler.clone(), service.clone());
                let task = passes.spawn(async move { scaler.reconcile(&name).await });
                busy.insert(task.id(), service.clone());
            }
            let wake_at = self
                .scaler
                .next_retry()
                .map_or(next_sweep, |retry| retry.min(next_sweep));
            tokio::select! {
                _ = self.inventory.changed() => {}
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep_until(wake_at.into()) => {}
                Some(done) = passes.join_next_with_id(), if !passes.is_empty() => {
                    let id = match done {
                        Ok((id, _)) => id,
                        Err(e) => {
                            log::error!("a reconcile pass failed: {e}");
                            e.id()
                        }
                    };
                    busy.remove(&id);
                }
            }
        }
    }
}
