//! Replacing containers whose health check failed: a reconcile pass that
//! finds running containers docker calls unhealthy starts a replacement
//! for each, and removes an unhealthy one only once its replacement has
//! started (start-first), so a service whose new containers cannot start
//! keeps what it has. Docker itself never does this (moby/moby#28400): it
//! only reports the verdict.

use super::plan::{Filling, NameAllocator};
use super::progress::Tracker;
use super::scaler::{Caller, Scaler};
use crate::docker::Container;
use crate::domain::ServiceName;
use crate::error::Error;

/// Whether `containers` has one to replace.
pub(super) fn has_unhealthy(containers: &[Container]) -> bool {
    containers.iter().any(Container::is_unhealthy)
}

/// Whether every running container of `containers` serves: none is
/// unhealthy or still starting. The replacements in a row then end.
pub(super) fn all_settled(containers: &[Container]) -> bool {
    containers
        .iter()
        .filter(|c| c.is_running())
        .all(Container::is_healthy)
}

impl Scaler {
    /// Replaces every unhealthy container of `containers` start-first with
    /// one of `filling.start`, and counts that as a failed round of
    /// `progress.heal` (the reconciler calls it only once that backoff
    /// has ended, and clears it once every running container serves).
    ///
    /// # Errors
    /// The docker failure of a start (its unhealthy container stays) or of
    /// a removal.
    pub(super) async fn replace_unhealthy(
        &self,
        service: &ServiceName,
        progress: &Tracker,
        containers: &[Container],
        filling: &Filling<'_>,
    ) -> Result<(), Error> {
        let unhealthy: Vec<&Container> = containers.iter().filter(|c| c.is_unhealthy()).collect();
        let names = NameAllocator::new(format!("{}-{}-", self.instance, service), containers);
        // One at a time: unhealthy containers come one or two at once, and
        // each start is checked before its container goes.
        let mut replaced: Vec<&Container> = Vec::new();
        let mut kept: Vec<(&Container, Error)> = Vec::new();
        for old in unhealthy {
            match self
                .start_one(filling.start, &names, Caller::Reconciler)
                .await
            {
                Ok(_) => replaced.push(old),
                Err(e) => kept.push((old, e)),
            }
        }
        let names_of = |list: &[&Container]| {
            list.iter()
                .map(|c| c.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        // Recorded before the removal, so that status says so even if
        // docker fails to remove them (the next round removes them then).
        {
            let mut progress = progress.get();
            if !replaced.is_empty() {
                let why = format!(
                    "container(s) {} turned unhealthy (the health check failed `retries` times \
                     in a row) and were replaced, start-first; {} replacement round(s) since \
                     all were last healthy",
                    names_of(&replaced),
                    progress.heal.failures + 1
                );
                log::warn!("'{service}': {why}");
                progress.heal.failed_because(why);
            }
            if let Some((old, e)) = kept.first() {
                progress.heal.failed_because(format!(
                    "container {} is unhealthy and stays, as starting its replacement failed: {e}",
                    old.name
                ));
            }
        }
        self.remove(service, replaced.iter().copied()).await?;
        match kept.into_iter().next() {
            None => Ok(()),
            Some((_, e)) => Err(e),
        }
    }
}
