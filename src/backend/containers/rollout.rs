//! Rolling updates on the containers backend: a reconcile pass that finds
//! containers of an older definition replaces one batch of them,
//! start-first, and keeps the old ones serving when the new ones do not
//! hold. A failed roll goes back to the earlier definition by itself (see
//! [`super::rollback`]), or waits out its own backoff (see
//! [`super::progress`]).

use std::time::{Duration, Instant};

use futures::stream::{self, StreamExt};

use super::plan::{Filling, NameAllocator, Plan};
use super::progress::Tracker;
use super::scaler::{Caller, Scaler};
use super::status::crash_loop;
use crate::backend::RolloutState;
use crate::docker::{Container, ContainerState, Health};
use crate::domain::{HealthProbe, ServiceDefinition, ServiceName};
use crate::error::Error;
use crate::store::StoredService;

/// Why a batch of a roll did not go through.
enum BatchFailure {
    /// The new definition's containers did not hold: the roll failed, and
    /// may go back by itself.
    OfTheDefinition(Error),
    /// Nothing says the definition is at fault: the engine was hung or
    /// unreachable, or a new container was stopped, paused or removed from
    /// outside. The roll is tried again soon.
    Interrupted(Error),
}

impl From<Error> for BatchFailure {
    fn from(error: Error) -> Self {
        if error.is_engine_fault() {
            BatchFailure::Interrupted(error)
        } else {
            BatchFailure::OfTheDefinition(error)
        }
    }
}

impl Scaler {
    /// The rolling part of a reconcile pass: replaces one batch of outdated
    /// containers unless the roll waits out its backoff, and records how it
    /// went. Should the service be short of `desired` too (a scale and a
    /// new definition written while docker was away), the shortfall starts
    /// with the batch's replacements: one round of starts and one settle,
    /// rather than a round to fill and then another to roll.
    ///
    /// # Errors
    /// Why the batch did not hold, or the docker failure.
    pub(super) async fn roll_outdated(
        &self,
        service: &ServiceName,
        progress: &Tracker,
        stored: &StoredService,
        containers: &[Container],
        filling: &Filling<'_>,
        desired: u32,
    ) -> Result<(), Error> {
        let hash = filling.current_hash;
        let mut outdated: Vec<&Container> = containers
            .iter()
            .filter(|c| c.holds_a_place() && c.config_hash != hash)
            .collect();
        if outdated.is_empty() {
            {
                let mut progress = progress.get();
                progress.roll.succeeded();
                progress.failed_roll = None;
            }
            // A roll that ended without a batch (a PUT back to what runs)
            // or before a restart is settled here.
            self.finish_rollout(service, hash).await;
            return Ok(());
        }
        if progress.get().roll.waiting() {
            return Ok(());
        }
        // Not running first, then the newest: the tail of the keep order.
        outdated.sort_by_key(|c| (c.is_running(), std::cmp::Reverse(c.created)));
        let batch: Vec<Container> = outdated
            .into_iter()
            .take(self.update.parallelism)
            .cloned()
            .collect();
        let shortfall = Plan::new(containers, filling, desired as usize).start;
        let result = self
            .roll_batch(&stored.definition, containers, &batch, shortfall, desired)
            .await;
        // A PUT during the batch (it does not wait for the service's lock)
        // made this outcome moot, and cleared the progress for its own roll.
        let replaced = self
            .store
            .get(service)
            .map_or(true, |now| now.config_hash() != hash);
        let result = match result {
            Ok(()) => Ok(()),
            Err(BatchFailure::OfTheDefinition(e)) => Err(e),
            // A hung or unreachable engine, or a new container stopped,
            // paused or removed from outside, says nothing of the new
            // definition: the roll is neither failed nor rolled back, only
            // tried again soon.
            Err(BatchFailure::Interrupted(e)) => {
                if !replaced {
                    progress.get().roll.interrupted(&e);
                }
                return Err(e);
            }
        };
        if replaced {
            return result;
        }
        {
            let mut progress = progress.get();
            progress.roll.record(&result);
            progress.failed_roll = match &result {
                Ok(()) => None,
                Err(e) => Some((hash.to_owned(), e.to_string())),
            };
        }
        match result {
            Err(failure) => {
                let why = failure.to_string();
                let outcome = self
                    .roll_back_by_itself(service, progress, stored, containers, failure)
                    .await;
                match &outcome {
                    // Announced by the rollback, which knows where it went.
                    Ok(()) => {}
                    Err(_) => {
                        self.announce_outcome(service, hash, RolloutState::Failed, Some(&why))
                    }
                }
                outcome
            }
            Ok(()) => {
                self.announce_rollout(service, hash).await;
                Ok(())
            }
        }
    }

    /// Replaces `outdated` start-first: starts as many containers of
    /// `definition` and `shortfall` more, waits the settle time, and, only
    /// if every new one ran all along, removes as many outdated ones as keep
    /// `desired` running (one of the others may have died meanwhile).
    /// Otherwise removes the new ones that `desired` does not need, and
    /// leaves the outdated ones serving.
    ///
    /// # Errors
    /// [`BatchFailure::OfTheDefinition`] with an [`Error::DockerFailed`]
    /// saying why the new containers did not hold; [`BatchFailure::Interrupted`]
    /// when nothing says the definition is at fault.
    async fn roll_batch(
        &self,
        definition: &ServiceDefinition,
        containers: &[Container],
        outdated: &[Container],
        shortfall: usize,
        desired: u32,
    ) -> Result<(), BatchFailure> {
        let service = definition.name();
        let names = NameAllocator::new(format!("{}-{}-", self.instance, service), containers);
        let started: Vec<Result<String, Error>> = stream::iter(0..outdated.len() + shortfall)
            .map(|_| self.start_one(definition, &names, Caller::Reconciler))
            .buffer_unordered(self.concurrency)
            .collect()
            .await;
        let new_ids: Vec<String> = started.iter().filter_map(|r| r.clone().ok()).collect();
        let start_error = started.into_iter().find_map(Result::err);
        let probe = definition.health_probe();
        let health_deadline = probe.map(health_deadline);
        if start_error.is_none() {
            match health_deadline {
                Some(deadline) => self.await_health(service, &new_ids, deadline).await?,
                None => tokio::time::sleep(self.update.settle).await,
            }
        }
        // A hung or unreachable engine proves nothing about the definition,
        // and a listing would only meet it again: the caller tries again
        // soon, and the pass then cleans up what the failed start left.
        if let Some(e) = start_error.as_ref().filter(|e| e.is_engine_fault()) {
            return Err(BatchFailure::Interrupted(e.clone()));
        }
        let after = match start_error {
            Some(_) => self.engine.list(service).await?,
            None => self.inventory.containers(service).await?,
        };
        // With a health check, running is not enough: it must pass.
        let holds = |c: &Container| {
            c.is_running()
                && c.restarts == 0
                && (probe.is_none() || c.health == Some(Health::Healthy))
        };
        let held = |id: &String| after.iter().any(|c| c.id == *id && holds(c));
        if start_error.is_none() && new_ids.iter().all(held) {
            let running = after.iter().filter(|c| c.is_running()).count();
            let spare = running.saturating_sub(desired as usize);
            // As `after` shows them: one may have stopped meanwhile.
            let old: Vec<&Container> = outdated
                .iter()
                .filter_map(|old| after.iter().find(|c| c.id == old.id))
                .take(spare)
                .collect();
            let replaced = old.len();
            self.remove(service, old).await?;
            log::info!(
                "'{service}': replaced {replaced} outdated container(s) with the current definition"
            );
            return Ok(());
        }
        // What this batch started goes again, and any container a failed
        // start left created; but a new container that runs goes only as far
        // as the desired count stays running (an old one may have died
        // meanwhile), and is then kept like any surplus.
        let (new_running, mut failed): (Vec<&Container>, Vec<&Container>) = after
            .iter()
            .filter(|c| {
                new_ids.contains(&c.id)
                    || (c.config_hash == definition.config_hash() && !c.holds_a_place())
            })
            .partition(|c| c.is_running());
        let running = after.iter().filter(|c| c.is_running()).count();
        let spare = running.saturating_sub(desired as usize);
        failed.extend(new_running.iter().take(spare));
        // Stopped, paused or removed by someone else during the settle: a
        // container that exits by itself is restarted by its restart policy
        // (the reconciler, the only one that rolls, starts every container
        // with it), so one that stays exited was stopped on purpose.
        let interference = match start_error {
            Some(_) => None,
            None => new_ids
                .iter()
                .filter(|id| !held(id))
                .map(|id| match after.iter().find(|c| c.id == *id) {
                    None => Some(format!("container {id:.12} was removed meanwhile")),
                    Some(c) if c.state == ContainerState::Paused => {
                        Some(format!("container {} was paused meanwhile", c.name))
                    }
                    Some(c) if c.state == ContainerState::Exited && c.restarts == 0 => {
                        Some(format!("container {} was stopped meanwhile", c.name))
                    }
                    Some(_) => None,
                })
                .collect::<Option<Vec<String>>>()
                .filter(|whys| !whys.is_empty()),
        };
        if let Some(whys) = interference {
            self.remove(service, failed).await?;
            return Err(BatchFailure::Interrupted(Error::DockerFailed(format!(
                "the update of '{service}' was interrupted, and will go on: {}",
                whys.join("; ")
            ))));
        }
        let why = match start_error {
            Some(e) => e.to_string(),
            None => after
                .iter()
                .filter(|c| new_ids.contains(&c.id))
                .find(|c| !holds(c))
                .map_or_else(
                    || "the new container vanished".to_owned(),
                    |c| match c.health {
                        Some(Health::Starting) if c.is_running() && c.restarts == 0 => {
                            format!("container {} had not passed its check yet", c.name)
                        }
                        Some(health) if c.is_running() && c.restarts == 0 => {
                            format!("container {} is {}", c.name, health.as_str())
                        }
                        _ => crash_loop(c),
                    },
                ),
        };
        self.remove(service, failed).await?;
        let condition = match health_deadline {
            Some(deadline) => format!("become healthy within {deadline:?}"),
            None => format!("keep running for {:?}", self.update.settle),
        };
        Err(BatchFailure::OfTheDefinition(Error::DockerFailed(format!(
            "the update of '{service}' stopped and its older containers keep serving: \
             a container of the new definition did not {condition} ({why})"
        ))))
    }

    /// Waits until every container of `new_ids` is healthy, or one of them
    /// is unhealthy, stopped or restarted (then waiting longer is
    /// pointless), or `deadline` has passed; the caller judges which.
    /// Polls the index: it follows docker's health events.
    ///
    /// # Errors
    /// The docker failure of a listing while the index is not live.
    async fn await_health(
        &self,
        service: &ServiceName,
        new_ids: &[String],
        deadline: Duration,
    ) -> Result<(), Error> {
        let until = Instant::now() + deadline;
        loop {
            let containers = self.inventory.containers(service).await?;
            let new: Vec<&Container> = containers
                .iter()
                .filter(|c| new_ids.contains(&c.id))
                .collect();
            let all_healthy =
                new.len() == new_ids.len() && new.iter().all(|c| c.health == Some(Health::Healthy));
            let one_failed = new.len() < new_ids.len()
                || new
                    .iter()
                    .any(|c| !c.is_running() || c.restarts > 0 || c.is_unhealthy());
            if all_healthy || one_failed || Instant::now() >= until {
                return Ok(());
            }
            tokio::time::sleep(HEALTH_POLL).await;
        }
    }
}

/// How often a roll looks at the index for its new containers' health.
const HEALTH_POLL: Duration = Duration::from_millis(100);

/// The longest a roll waits for a new container's health: the service's
/// lock is held meanwhile, so scales of it wait too.
const LONGEST_HEALTH_WAIT: Duration = Duration::from_secs(300);

/// By when a container of `probe` that will ever pass has passed: its start
/// period, then `retries + 1` checks that may each take their timeout
/// (docker's defaults where the definition gives none: 30 s interval and
/// timeout, 3 retries), and 2 s for the verdict to reach the index; at most
/// [`LONGEST_HEALTH_WAIT`].
fn health_deadline(probe: &HealthProbe) -> Duration {
    let interval = probe.interval.unwrap_or(Duration::from_secs(30));
    let timeout = probe.timeout.unwrap_or(Duration::from_secs(30));
    let checks = probe.retries.unwrap_or(3).saturating_add(1);
    probe
        .start_period
        .unwrap_or_default()
        .saturating_add((interval.saturating_add(timeout)).saturating_mul(checks))
        .saturating_add(Duration::from_secs(2))
        .min(LONGEST_HEALTH_WAIT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_health_deadline_covers_the_start_period_and_every_check_within_a_bound() {
        let probe = |interval: u64, retries: u32, start_period: u64| HealthProbe {
            shell: "true".into(),
            interval: Some(Duration::from_secs(interval)),
            timeout: Some(Duration::from_secs(1)),
            start_period: Some(Duration::from_secs(start_period)),
            retries: Some(retries),
        };
        assert_eq!(health_deadline(&probe(1, 2, 0)), Duration::from_secs(8));
        assert_eq!(health_deadline(&probe(2, 3, 10)), Duration::from_secs(24));
        assert_eq!(health_deadline(&probe(3600, 3, 0)), LONGEST_HEALTH_WAIT);
        let defaults = HealthProbe {
            shell: "true".into(),
            interval: None,
            timeout: None,
            start_period: None,
            retries: None,
        };
        assert_eq!(health_deadline(&defaults), Duration::from_secs(242));
    }
}
