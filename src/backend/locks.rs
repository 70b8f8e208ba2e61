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
use crate::error::Error;
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
    /// still refers to it. Both are decided under the table's mutex: a
    /// service created again meanwhile, with a new holder's progress in
    /// the slot, keeps it.
    fn forget_if_unused(&self, service: &ServiceName) {
        let mut table = self.table();
        if !self.store.contains(service)
            && table
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
        let turn = slot.turn.clone();
        // The hold exists before the wait, so a request dropped while it
        // waits still forgets the slot of a name that is not defined.
        let mut hold = ServiceHold {
            locks: self,
            service: service.clone(),
            slot: Some(slot),
            turn: None,
        };
        hold.turn = Some(turn.lock_owned().await);
        hold
    }

    /// [`Error::ServiceNotFound`] if `service` is gone once its lock is
    /// free. A delete, on either backend, records the count 0, removes the
    /// containers (or the Swarm service), then the definition, all under
    /// the lock: a wait that sees the count drop to 0, or the Swarm service
    /// vanish, asks this way whether the service is being deleted rather
    /// than scaled down.
    pub(crate) async fn deleted_meanwhile(&self, service: &ServiceName) -> Result<(), Error> {
        drop(self.lock(service).await);
        if self.store.contains(service) {
            Ok(())
        } else {
            Err(Error::ServiceNotFound(service.to_string()))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ServiceDefinition;

    fn name(raw: &str) -> ServiceName {
        ServiceName::parse(raw).unwrap()
    }

    async fn store_with(services: &[&str]) -> (Arc<Store>, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(
            Store::open_for_test(&dir.path().join("s.json"), crate::feed::Feed::new(64)).unwrap(),
        );
        for service in services {
            let body = serde_json::json!({"name": service, "image": "app:1"});
            store
                .create_for_test(ServiceDefinition::from_create_body(&body).unwrap())
                .await
                .unwrap();
        }
        (store, dir)
    }

    #[tokio::test]
    async fn a_defined_service_keeps_its_slot_and_what_it_holds() {
        let (store, _dir) = store_with(&["web"]).await;
        let locks: ServiceLocks<Mutex<u32>> = ServiceLocks::new(store);
        *locks.lock(&name("web")).await.lock().unwrap() = 7;
        assert_eq!(locks.len(), 1);
        assert_eq!(*locks.peek(&name("web")).unwrap().lock().unwrap(), 7);
        assert!(locks.peek(&name("db")).is_none());
        assert_eq!(locks.len(), 1, "a peek makes no slot");
    }

    #[tokio::test]
    async fn an_undefined_name_leaves_nothing_once_its_last_holder_is_gone() {
        let (store, _dir) = store_with(&[]).await;
        let locks: Arc<ServiceLocks<()>> = Arc::new(ServiceLocks::new(store));
        let held = locks.lock(&name("ghost")).await;
        let waiter = {
            let locks = locks.clone();
            tokio::spawn(async move {
                drop(locks.lock(&name("ghost")).await);
            })
        };
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        drop(held);
        assert_eq!(locks.len(), 1, "kept while a waiter needs it");
        waiter.await.unwrap();
        assert_eq!(locks.len(), 0);
    }

    #[tokio::test]
    async fn a_waiter_dropped_while_it_waits_forgets_the_slot_too() {
        let (store, _dir) = store_with(&[]).await;
        let locks: ServiceLocks<()> = ServiceLocks::new(store);
        let held = locks.lock(&name("ghost")).await;
        let gave_up = tokio::time::timeout(
            std::time::Duration::from_millis(20),
            locks.lock(&name("ghost")),
        )
        .await;
        assert!(gave_up.is_err());
        drop(held);
        assert_eq!(locks.len(), 0);
    }

    #[tokio::test]
    async fn one_name_is_held_by_one_holder_at_a_time() {
        let (store, _dir) = store_with(&["web"]).await;
        let locks: Arc<ServiceLocks<Mutex<(u32, u32)>>> = Arc::new(ServiceLocks::new(store));
        let holders: Vec<_> = (0..8)
            .map(|_| {
                let locks = locks.clone();
                tokio::spawn(async move {
                    let held = locks.lock(&name("web")).await;
                    held.lock().unwrap().0 += 1;
                    let inside = held.lock().unwrap().0;
                    tokio::task::yield_now().await;
                    let mut seen = held.lock().unwrap();
                    // Nobody else entered while this one held the lock.
                    assert_eq!(seen.0, inside);
                    seen.1 += 1;
                })
            })
            .collect();
        for holder in holders {
            holder.await.unwrap();
        }
        assert_eq!(*locks.peek(&name("web")).unwrap().lock().unwrap(), (8, 8));
    }
}
