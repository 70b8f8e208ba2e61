//! The status report of one service on the containers backend: read-only,
//! from the inventory, and the progress the scaler and reconciler keep.

use std::time::{Duration, Instant};

use super::plan::name_number;
use super::scaler::Scaler;
use crate::backend::{ContainerStatus, Rollout, RolloutState, ScaleReport, ServiceStatus};
use crate::docker::{deadline, Container, ContainerState, PublishedPorts};
use crate::domain::ServiceName;
use crate::error::Error;

impl Scaler {
    /// Where `service` stands: its counts, each container, the rollout and
    /// the last problem. Ports come from the index, or one `docker inspect`
    /// of containers whose ports are not known yet; if that fails, they are
    /// reported unknown rather than failing the whole status.
    ///
    /// # Errors
    /// [`Error::ServiceNotFound`], or the docker failure of a listing.
    pub async fn status(&self, service: &ServiceName) -> Result<ServiceStatus, Error> {
        // Borrowed, not copied: a service's history and changes are far
        // bigger than what a status reads of them.
        let all = self.store.all();
        let stored = all
            .get(service)
            .ok_or_else(|| Error::ServiceNotFound(service.to_string()))?;
        let mut containers = self.inventory.snapshot(service).await?;
        containers.sort_by(|a, b| {
            (name_number(&a.name), a.created).cmp(&(name_number(&b.name), b.created))
        });
        let current_hash = stored.definition.config_hash();
        // A running container publishes ports unless it runs the current
        // definition and that has none: only those are worth a lookup.
        let publishes_nothing = stored.definition.ports().is_empty();
        let may_publish =
            |c: &Container| c.is_running() && !(publishes_nothing && c.config_hash == current_hash);
        let lookup: Vec<&str> = containers
            .iter()
            .filter(|c| may_publish(c))
            .map(|c| c.id.as_str())
            .collect();
        let looked_up = match self.inventory.published_ports(&lookup).await {
            Ok(ports) => Some(ports),
            Err(e) => {
                log::warn!("cannot read the ports of '{service}': {e}");
                None
            }
        };
        let ports_of = |c: &Container| -> Option<PublishedPorts> {
            if !may_publish(c) {
                return Some(PublishedPorts::new());
            }
            looked_up.as_ref()?.get(&c.id).cloned()
        };
        let places: Vec<&Container> = containers.iter().filter(|c| c.holds_a_place()).collect();
        let updated = places
            .iter()
            .filter(|c| c.config_hash == current_hash)
            .count();
        let outdated = places.len() - updated;
        let kept = self.locks.peek(service);
        let progress = kept.as_ref().map(|tracker| tracker.get());
        let progress = progress.as_deref();
        let failed_roll = progress
            .and_then(|p| p.failed_roll.as_ref())
            .filter(|(hash, _)| *hash == current_hash)
            .map(|(_, why)| why.clone());
        let rolled_back = progress
            .and_then(|p| p.rolled_back.as_ref())
            .filter(|(hash, _)| *hash == current_hash)
            .map(|(_, why)| why.clone());
        // A failing roll is news even after a rollback: what the rollback
        // went to does not roll either.
        let state = match (outdated, &failed_roll, &rolled_back) {
            (1.., Some(_), _) => RolloutState::Failed,
            (_, _, Some(_)) => RolloutState::RolledBack,
            (0, _, _) => RolloutState::Complete,
            _ if !self.reconciling => RolloutState::Manual,
            _ => RolloutState::Rolling,
        };
        let rollout = Rollout {
            error: match state {
                RolloutState::RolledBack => rolled_back,
                _ => failed_roll,
            },
            state,
            updated,
            outdated,
        };
        let problem = progress
            .and_then(|p| p.count.last_error.clone())
            .or_else(|| {
                places
                    .iter()
                    .find(|c| c.state == ContainerState::Restarting)
                    .map(|c| crash_loop(c))
            })
            .or_else(|| progress.and_then(|p| p.heal.last_error.clone()));
        let running_resources = containers.iter().filter(|c| c.is_running()).count();
        let healthy_resources = containers.iter().filter(|c| c.is_healthy()).count();
        // Moved, not copied, into the answer.
        let entries: Vec<ContainerStatus> = containers
            .into_iter()
            .map(|c| ContainerStatus {
                ports: ports_of(&c),
                current: c.config_hash == current_hash,
                health: c.health.filter(|_| c.is_running()),
                state: c.state.as_str().to_owned(),
                id: c.id,
                name: c.name,
                created: c.created,
                node: None,
                restarts: c.restarts,
                last_exit_code: c.last_exit_code,
            })
            .collect();
        Ok(ServiceStatus {
            running_resources,
            healthy_resources,
            desired_resources: stored.desired,
            containers: entries,
            rollout,
            problem,
            failed_attempts: progress
                .map_or(0, |p| p.count.failures + p.heal.failures + p.roll.failures),
        })
    }
}

/// How often a health wait looks at the index: a map lookup, so often
/// enough that the answer follows the verdict closely.
const HEALTH_POLL: Duration = Duration::from_millis(100);

impl Scaler {
    /// Polls the inventory (the index while it is live: no docker call)
    /// until `target` containers of `service` are healthy, or `timeout`.
    ///
    /// # Errors
    /// [`Error::NotHealthy`] at the deadline, [`Error::ServiceNotFound`]
    /// once it is deleted, or the docker failure of a listing.
    pub async fn wait_healthy(
        &self,
        service: &ServiceName,
        target: u32,
        timeout: Duration,
    ) -> Result<ScaleReport, Error> {
        // Listings while the index is not live are part of the wait the
        // client asked for, not of the request's docker deadline.
        deadline::lengthen(timeout);
        let deadline = Instant::now() + timeout;
        loop {
            let stored = self
                .store
                .service(service)
                .ok_or_else(|| Error::ServiceNotFound(service.to_string()))?;
            let desired = stored.desired;
            let containers = self.inventory.snapshot(service).await?;
            let running = containers.iter().filter(|c| c.is_running()).count();
            let healthy = containers.iter().filter(|c| c.is_healthy()).count();
            let superseded = desired.filter(|&desired| desired != target);
            if superseded == Some(0) {
                self.locks.deleted_meanwhile(service).await?;
            }
            if healthy == target as usize || superseded.is_some() {
                return Ok(ScaleReport {
                    running_resources: running,
                    desired_resources: superseded.unwrap_or(target),
                    revision: stored.revision,
                });
            }
            if Instant::now() >= deadline {
                return Err(Error::NotHealthy {
                    healthy,
                    running,
                    desired: target,
                    seconds: timeout.as_secs(),
                });
            }
            tokio::time::sleep(HEALTH_POLL).await;
        }
    }
}

/// Says why a container is not serving: how it last exited, and how often
/// the engine restarted it.
pub(super) fn crash_loop(container: &Container) -> String {
    let exit = container.last_exit_code.map_or_else(
        || "an unknown code".to_owned(),
        |code| format!("code {code}"),
    );
    format!(
        "container {} exits right after starting (last with {exit}; restarted {} times); \
         the engine restarts it with a growing delay",
        container.name, container.restarts
    )
}
