//! Keeps every service at its desired state without being asked: the loop
//! and the pass it runs. One task for the connector's life runs a pass for
//! each service that needs it, when docker reports a change to the
//! instance's containers, when a definition changes, when a backoff ends,
//! and every [`SWEEP_INTERVAL`] as a safety net. Services are reconciled in
//! parallel, each by at most one pass at a time. A pass adopts the count of
//! a service from an old data file, fixes the count, or else rolls one
//! batch of outdated containers (see `rollout`). It works from the
//! container index, so it acts only while the index is live (see
//! [`Scaler::needs_reconciling`]); the index's own relisting every 30 s
//! catches what events missed.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::{Id, JoinSet};

use super::heal::{all_settled, has_unhealthy};
use super::plan::Plan;
use super::progress::Tracker;
use super::scaler::{Caller, Scaler};
use crate::domain::ServiceName;
use crate::error::Error;
use crate::inventory::Inventory;
use crate::store::{Store, StoredService};

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

/// The reconcile pass: what the loop above runs for one service.
impl Scaler {
    /// Whether the reconciler should look at `service` now: the index is
    /// live, and the index shows work whose backoff (if any) has ended: a
    /// count to fix, a desired count to adopt, or outdated containers to
    /// roll. Without a live index (docker's event stream is down, so docker
    /// is likely down or hung) the reconciler waits: a pass would only hold
    /// the service's lock against requests while docker times out.
    fn needs_reconciling(&self, service: &ServiceName, stored: &StoredService) -> bool {
        let Some(containers) = self.inventory.indexed(service) else {
            return false;
        };
        let Some(desired) = stored.desired else {
            return true;
        };
        // A service never locked yet has no backoff.
        let kept = self.locks.peek(service);
        let fresh = Tracker::default();
        let tracker = kept.as_deref().unwrap_or(&fresh);
        let filling = self.filling(stored, tracker, &containers);
        let progress = tracker.get();
        let count_work = !Plan::new(&containers, &filling, desired as usize).is_empty();
        let roll_work = containers
            .iter()
            .any(|c| c.holds_a_place() && c.config_hash != filling.current_hash);
        let heal_work = has_unhealthy(&containers);
        let heal_settled = progress.heal.failures > 0 && all_settled(&containers);
        // As the pass decides: a count to fix comes first, and while it
        // waits out its backoff the pass does nothing else; then unhealthy
        // containers, then the roll.
        if count_work {
            !progress.count.waiting()
        } else {
            (heal_work && !progress.heal.waiting())
                || heal_settled
                || (roll_work && !progress.roll.waiting())
        }
    }

    /// When the earliest backoff still running ends.
    fn next_retry(&self) -> Option<Instant> {
        let now = Instant::now();
        let mut earliest: Option<Instant> = None;
        self.locks.for_each(|tracker| {
            let progress = tracker.get();
            for at in [
                progress.count.retry_at,
                progress.heal.retry_at,
                progress.roll.retry_at,
            ]
            .into_iter()
            .flatten()
            .filter(|at| *at > now)
            {
                earliest = Some(earliest.map_or(at, |e| e.min(at)));
            }
        });
        earliest
    }

    /// One reconcile pass over `service`: adopt the running count of a
    /// service from an old data file, fix the count (with the roll's first
    /// batch when the service is both short and outdated), else replace
    /// unhealthy containers, else roll one batch of outdated containers. Each kind of
    /// work waits out its own backoff.
    ///
    /// # Errors
    /// [`Error::ServiceNotFound`] if it was deleted meanwhile; the failure
    /// of the pass, which also starts (or lengthens) that work's backoff.
    pub(super) async fn reconcile(&self, service: &ServiceName) -> Result<(), Error> {
        // A service deleted meanwhile is not worth a warning.
        let (held, stored) = self.lock(service).await?;
        let result = self.reconcile_locked(service, &held, &stored).await;
        self.announce_problem(service, &held);
        if let Err(e) = &result {
            log::warn!("reconciling '{service}': {e}");
        }
        result
    }

    async fn reconcile_locked(
        &self,
        service: &ServiceName,
        slot: &Tracker,
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
        let plan = Plan::new(&containers, &filling, desired as usize);
        if !plan.is_empty() {
            if slot.get().count.waiting() {
                return Ok(());
            }
            // Short, with nothing to remove, and outdated: the roll's batch
            // starts the shortfall with its replacements (see
            // `roll_outdated`). Once the roll waits out a backoff, or the
            // service falls back to an earlier definition, the count is
            // fixed alone.
            let outdated = containers
                .iter()
                .any(|c| c.holds_a_place() && c.config_hash != filling.current_hash);
            if plan.remove.is_empty()
                && outdated
                && !filling.falling_back
                && !slot.get().roll.waiting()
            {
                let result = self
                    .roll_outdated(service, slot, stored, &containers, &filling, desired)
                    .await;
                if result.is_ok() {
                    slot.get().count.succeeded();
                }
                return result;
            }
            let result = self
                .fix_count(service, &containers, &filling, desired, Caller::Reconciler)
                .await;
            self.record_count(slot, &filling, &containers, &result);
            return result.map(drop);
        }
        slot.get().count.succeeded();
        if has_unhealthy(&containers) {
            if !slot.get().heal.waiting() {
                return self
                    .replace_unhealthy(service, slot, &containers, &filling)
                    .await;
            }
        } else if all_settled(&containers) {
            slot.get().heal.succeeded();
        }
        self.roll_outdated(service, slot, stored, &containers, &filling, desired)
            .await
    }
}
