//! What the containers backend tells the feed beyond docker's own events:
//! how a rollout goes and ends, and when a service's problem changes.
//! (Definitions and counts are announced by the store, containers by the
//! inventory, as docker reports them.)

use serde_json::json;

use super::progress::Tracker;
use super::scaler::Scaler;
use crate::backend::RolloutState;
use crate::domain::ServiceName;
use crate::feed::EventKind;
use crate::store::DONE;

impl Scaler {
    /// After a definition change or a rolled batch: how many containers
    /// run the definition with `hash` and how many an older one; once none
    /// is outdated, the rollout is complete (settled in the history and
    /// announced, once). From the live index only: a PUT must not wait for
    /// a docker that hangs to say so, and without the index the next
    /// reconcile pass settles it (see `roll_outdated`).
    pub(super) async fn announce_rollout(&self, service: &ServiceName, hash: &str) {
        let Some(containers) = self.inventory.indexed(service) else {
            return;
        };
        let places = containers.iter().filter(|c| c.holds_a_place());
        let (updated, outdated) = places.fold((0, 0), |(updated, outdated), c| {
            if c.config_hash == hash {
                (updated + 1, outdated)
            } else {
                (updated, outdated + 1)
            }
        });
        if outdated > 0 {
            self.feed.publish(
                EventKind::RolloutProgress,
                service.as_str(),
                json!({"config_hash": hash, "updated": updated, "outdated": outdated}),
            );
        } else {
            self.finish_rollout(service, hash).await;
        }
    }

    /// Settles a pending change to the definition with `hash` as done and
    /// announces the rollout complete; nothing if none is pending (the
    /// roll was announced already, or the definition ran all along).
    pub(super) async fn finish_rollout(&self, service: &ServiceName, hash: &str) {
        match self.store.settle_definition(service, hash, DONE).await {
            Ok(true) => self.announce_outcome(service, hash, RolloutState::Complete, None),
            Ok(false) => {}
            Err(e) => log::error!("'{service}': cannot record that its rollout is done: {e}"),
        }
    }

    /// Announces that the rollout of `hash` ended in `state`, for `error`.
    pub(super) fn announce_outcome(
        &self,
        service: &ServiceName,
        hash: &str,
        state: RolloutState,
        error: Option<&str>,
    ) {
        self.feed.publish(
            EventKind::RolloutOutcome,
            service.as_str(),
            json!({"config_hash": hash, "state": state, "error": error}),
        );
    }

    /// Announces the service's problem if it is not the one last
    /// announced: the last failure to fix its count, else to heal it;
    /// `null` once neither fails.
    pub(super) fn announce_problem(&self, service: &ServiceName, progress: &Tracker) {
        let problem = {
            let mut progress = progress.get();
            let problem = progress
                .count
                .last_error
                .clone()
                .or_else(|| progress.heal.last_error.clone());
            if problem == progress.announced_problem {
                return;
            }
            progress.announced_problem = problem.clone();
            problem
        };
        self.feed.publish(
            EventKind::Problem,
            service.as_str(),
            json!({ "problem": problem }),
        );
    }
}
