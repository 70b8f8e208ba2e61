//! Rollbacks on the containers backend: on request, and by itself when a
//! roll of a new definition fails while an earlier one still runs.
//!
//! A rollback changes the stored definition, so that what `GET
//! /service/<name>` answers is what runs; the reconciler then rolls the
//! containers as it would after a PUT.

use super::progress::Tracker;
use super::scaler::Scaler;
use crate::backend::RolloutState;
use crate::docker::Container;
use crate::domain::{Precondition, ServiceDefinition, ServiceName};
use crate::error::Error;
use crate::store::{Origin, StoredService};

impl Scaler {
    /// `POST /service/<name>/rollback`: makes the previous definition
    /// current again (see [`crate::store::Store::roll_back`]) and clears
    /// what the service's progress said of the one it replaces, as a PUT
    /// does; the caller wakes the reconciler to roll it.
    ///
    /// # Errors
    /// [`Error::ServiceNotFound`], [`Error::PreconditionFailed`],
    /// [`Error::NothingToRollBack`], [`Error::Storage`].
    pub async fn roll_back(
        &self,
        service: &ServiceName,
        origin: &Origin,
        precondition: Option<&Precondition>,
    ) -> Result<(ServiceDefinition, u64), Error> {
        let rolled_back = self.store.roll_back(service, origin, precondition).await?;
        self.definition_replaced(service);
        log::info!("'{service}': rolled back to its previous definition on request");
        Ok(rolled_back)
    }

    /// After a roll of `stored`'s current definition failed with `failure`
    /// (already recorded in `progress`): makes the earlier definition the
    /// older containers run current again, so the service stops trying a
    /// definition that does not run and says so. Answers `Ok` once rolled
    /// back, else `failure`, and the roll stays `failed` with its backoff:
    /// when no earlier definition runs (there is nothing proven to go back
    /// to), when the current definition is itself the result of an
    /// automatic rollback (two definitions that both fail to start must not
    /// take turns), or when a PUT came meanwhile.
    ///
    /// # Errors
    /// `failure`, when it did not roll back.
    pub(super) async fn roll_back_by_itself(
        &self,
        service: &ServiceName,
        progress: &Tracker,
        stored: &StoredService,
        containers: &[Container],
        failure: Error,
    ) -> Result<(), Error> {
        let from = stored.definition.config_hash();
        let came_from_a_rollback = progress
            .get()
            .rolled_back
            .as_ref()
            .is_some_and(|(hash, _)| hash == from);
        // With the failure recorded, the filling names the earlier
        // definition that runs the most containers, if any runs.
        let filling = self.filling(stored, progress, containers);
        if came_from_a_rollback || !filling.falling_back {
            return Err(failure);
        }
        let to = filling.start.config_hash();
        let origin = Origin {
            caller: "connector".to_owned(),
            reason: Some(format!("automatic rollback: {failure}")),
        };
        match self.store.roll_back_from(service, from, to, &origin).await {
            Ok(true) => {}
            Ok(false) => return Err(failure),
            Err(e) => {
                log::error!("'{service}': could not roll back by itself: {e}");
                return Err(failure);
            }
        }
        let why = format!(
            "the service went back by itself to the definition its older containers run: \
             {failure}"
        );
        log::warn!("'{service}': {why}");
        self.announce_outcome(service, from, RolloutState::RolledBack, Some(&why));
        let mut progress = progress.get();
        progress.roll.succeeded();
        progress.failed_roll = None;
        progress.rolled_back = Some((to.to_owned(), why));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::containers::plan::tests::container;
    use crate::backend::containers::scaler::tests::{scaler_with, FakeEngine};

    fn web() -> ServiceName {
        ServiceName::parse("web").unwrap()
    }

    fn version(image: &str) -> ServiceDefinition {
        let body = serde_json::json!({"name": "web", "image": image});
        ServiceDefinition::from_create_body(&body).unwrap()
    }

    /// Records a failed roll of `stored`'s current definition, as
    /// `roll_outdated` does before it calls `roll_back_by_itself`.
    fn failed(progress: &Tracker, stored: &StoredService) {
        progress.get().failed_roll = Some((
            stored.definition.config_hash().to_owned(),
            "it exits".to_owned(),
        ));
    }

    #[tokio::test]
    async fn a_failed_roll_goes_back_to_what_the_old_containers_run_and_only_once() {
        // Stored: app:1 (created), then app:2 and app:3 put; app:1 runs.
        let (scaler, _engine, _dir) = scaler_with(FakeEngine::default(), &["web"]).await;
        scaler
            .store
            .replace_for_test(version("app:2"))
            .await
            .unwrap();
        scaler
            .store
            .replace_for_test(version("app:3"))
            .await
            .unwrap();
        let stored = scaler.store.service(&web()).unwrap();
        let one = version("app:1");
        let old = [
            container("a", "running", one.config_hash(), 1),
            container("b", "running", one.config_hash(), 2),
        ];
        let progress = Tracker::default();
        failed(&progress, &stored);
        let failure = Error::DockerFailed("the new container exits".into());
        scaler
            .roll_back_by_itself(&web(), &progress, &stored, &old, failure)
            .await
            .unwrap();
        // Not app:2, which never ran, but the definition that serves.
        let now = scaler.store.service(&web()).unwrap();
        assert_eq!(now.definition.image().as_str(), "app:1");
        assert_eq!(now.history[0].image().as_str(), "app:3");
        {
            let kept = progress.get();
            assert!(kept.failed_roll.is_none());
            let (hash, why) = kept.rolled_back.clone().unwrap();
            assert_eq!(hash, one.config_hash());
            assert!(why.contains("the new container exits"), "{why}");
        }

        // Should app:1 in turn fail to replace containers of app:3, it is
        // not rolled back again: the two would take turns.
        failed(&progress, &now);
        let newer = [container("c", "running", version("app:3").config_hash(), 3)];
        let failure = Error::DockerFailed("app:1 does not start".into());
        let kept = scaler
            .roll_back_by_itself(&web(), &progress, &now, &newer, failure)
            .await
            .unwrap_err();
        assert!(kept.to_string().contains("app:1 does not start"), "{kept}");
        assert_eq!(scaler.store.service(&web()).unwrap(), now);
    }

    #[tokio::test]
    async fn without_an_earlier_definition_running_a_failed_roll_stays_failed() {
        let (scaler, _engine, _dir) = scaler_with(FakeEngine::default(), &["web"]).await;
        scaler
            .store
            .replace_for_test(version("app:2"))
            .await
            .unwrap();
        let stored = scaler.store.service(&web()).unwrap();
        // The old containers run a definition the history no longer holds.
        let old = [container("a", "running", "forgotten", 1)];
        let progress = Tracker::default();
        failed(&progress, &stored);
        let failure = Error::DockerFailed("it exits".into());
        assert!(scaler
            .roll_back_by_itself(&web(), &progress, &stored, &old, failure)
            .await
            .is_err());
        assert_eq!(scaler.store.service(&web()).unwrap(), stored);
        assert!(progress.get().rolled_back.is_none());
        assert!(progress.get().failed_roll.is_some());
    }

    #[tokio::test]
    async fn a_put_that_came_meanwhile_is_not_undone() {
        let (scaler, _engine, _dir) = scaler_with(FakeEngine::default(), &["web"]).await;
        scaler
            .store
            .replace_for_test(version("app:2"))
            .await
            .unwrap();
        let stored = scaler.store.service(&web()).unwrap();
        let old = [container("a", "running", version("app:1").config_hash(), 1)];
        let progress = Tracker::default();
        failed(&progress, &stored);
        scaler
            .store
            .replace_for_test(version("app:3"))
            .await
            .unwrap();
        let failure = Error::DockerFailed("it exits".into());
        assert!(scaler
            .roll_back_by_itself(&web(), &progress, &stored, &old, failure)
            .await
            .is_err());
        let now = scaler.store.get(&web()).unwrap();
        assert_eq!(now.image().as_str(), "app:3");
    }
}
