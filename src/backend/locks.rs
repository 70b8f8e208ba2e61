//! One lock per service, shared by both backends: two scales, a roll and a
//! delete of the same service never race each other, while different
//! services proceed in parallel.
//!
//! Each lock can carry what a backend remembers of its service while the
//! service exists (the containers backend keeps its backoffs there). A lock
//! lives as long as its service is defined or somebody holds or awaits it:
//! the last holder of a deleted (or never defined) service's lock drops it,
//! so requests for unknown names leave nothing behind and a name never has
//! two locks at once.

use std::collections::HashMap;
use std::ops::Deref;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::OwnedMutexGuard;

use crate::domain::ServiceName;
use crate::store::Store;

/// The lock of one service and what its backend keeps beside it.
#[derive(Default)]
struct Slot<T> {
    turn: Arc<tokio::sync::Mutex<()>>,
    kept: T,
}

/// The per-service locks of one backend, each carrying a `T`.
pub(crate) struct ServiceLocks<T> {
    /// Whether a service is defined: its lock outlives its holders only then.
    store: Arc<Store>,
    slots: Mutex<HashMap<ServiceName, Arc<Slot<T>>>>,
}

/// A hold on one service's slot: exclusive use of the service when it came
/// from [`ServiceLocks::lock`], a look at what is kept when it came from
/// [`ServiceLocks::peek`]. Dereferences to what is kept. Dropping it lets
/// the next holder in and forgets the slot of a service no longer defined.
pub(crate) struct ServiceHold<'a, T> {
    locks: &'a ServiceLocks<T>,
    service: ServiceName,
    slot: Option<Arc<Slot<T>>>,
    turn: Option<OwnedMutexGuard<()>>,
}

impl<T> ServiceLocks<T> {
    pub(crate) fn new(store: Arc<Store>) -> Self {
        ServiceLocks {
            store,
            slots: Mutex::new(HashMap::new()),
        }
    }

    fn table(&self) -> MutexGuard<'_, HashMap<ServiceName, Arc<Slot<T>>>> {
        self.slots.lock().expect("the lock table is never poisoned")
    }

    /// What is kept for `service`, without waiting for its lock; `None`
    /// (and no slot made) when it has none.
    pub(crate) fn peek(&self, service: &ServiceName) -> Option<ServiceHold<'_, T>> {
        let slot = self.table().get(service).cloned()?;
        Some(ServiceHold {
            locks: self,
            service: service.clone(),
            slot: Some(slot),
            turn: None,
        })
    }

    /// Calls `look` with what is kept for each service that has a slot.
    pub(crate) fn for_each(&self, mut look: impl FnMut(&T)) {
        for slot in self.table().values() {
            look(&slot.kept);
        }
    }

    /// How many services have a slot.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.table().len()
    }

    /// Drops the slot of `service` if it is not defined and only the table
    /// still refers to it.
    fn forget_if_unused(&self, service: &ServiceName) {
        if self.store.contains(service) {
            return;
        }
        let mut table = self.table();
        if table
            .get(service)
            .is_some_and(|slot| Arc::strong_count(slot) == 1)
        {
            table.remove(service);
        }
    }
}

impl<T: Default> ServiceLocks<T> {
    /// Waits for exclusive use of `service`, making its slot if it has none.
    pub(crate) async fn lock(&self, service: &ServiceName) -> ServiceHold<'_, T> {
        let slot = self.table().entry(service.clone()).or_default().clone();
        let turn = slot.turn.clone().lock_owned().await;
        ServiceHold {
            locks: self,
            service: service.clone(),
            slot: Some(slot),
            turn: Some(turn),
        }
    }
}

impl<T> Deref for ServiceHold<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.slot.as_ref().expect("held until dropped").kept
    }
}

impl<T> Drop for ServiceHold<'_, T> {
    fn drop(&mut self) {
        // The turn first, then this hold's reference: the check below then
        // counts only the table and the other holders and waiters.
        drop(self.turn.take());
        drop(self.slot.take());
        self.locks.forget_if_unused(&self.service);
    }
}
