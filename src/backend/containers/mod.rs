//! The containers backend: the connector runs each service's containers
//! itself on one engine, through the docker CLI. The [`Scaler`] acts on
//! requests; the [`Reconciler`] (when on) keeps the desired state in the
//! background.
//!
//! - `scaler`: scale, fill a shortfall, start one, remove, delete.
//! - `plan`: pure planning: what holds a place, what goes, the names.
//! - `progress`: failed attempts and their backoff, per service.
//! - `heal`: replacing containers that turned unhealthy, start-first.
//! - `rollout`: rolling a definition change, start-first.
//! - `rollback`: going back to the previous definition, asked or by itself.
//! - `status`: the status report (read-only).
//! - `announce`: rollouts and problems, told to the feed.
//! - `reconciler`: the background loop and the pass it runs per service.

mod announce;
mod heal;
mod plan;
mod progress;
mod reconciler;
mod rollback;
mod rollout;
mod scaler;
mod status;

use std::sync::Arc;

use async_trait::async_trait;

use crate::backend::{Backend, ScaleReport, ServiceStatus};
use crate::domain::{Precondition, ScaleRequest, ServiceDefinition, ServiceName};
use crate::error::Error;
use crate::store::Origin;
pub(crate) use reconciler::Reconciler;
pub(crate) use scaler::{Scaler, UpdatePolicy};

/// The connector's own containers on one engine: the scaler acts, the
/// reconciler (when on) keeps the desired state in the background.
pub struct ContainersBackend {
    pub scaler: Arc<Scaler>,
    pub reconciler: Arc<Reconciler>,
}

#[async_trait]
impl Backend for ContainersBackend {
    async fn scale(
        &self,
        service: &ServiceName,
        request: &ScaleRequest,
        origin: &Origin,
        precondition: Option<&Precondition>,
    ) -> Result<ScaleReport, Error> {
        self.scaler
            .scale(service, request, origin, precondition)
            .await
    }

    async fn wait_healthy(
        &self,
        service: &ServiceName,
        target: u32,
        timeout: std::time::Duration,
    ) -> Result<ScaleReport, Error> {
        self.scaler.wait_healthy(service, target, timeout).await
    }

    async fn status(&self, service: &ServiceName) -> Result<ServiceStatus, Error> {
        self.scaler.status(service).await
    }

    async fn delete(
        &self,
        service: &ServiceName,
        origin: &Origin,
        precondition: Option<&Precondition>,
    ) -> Result<(), Error> {
        self.scaler.delete(service, origin, precondition).await
    }

    /// A changed definition is rolled out in the background, at once: what
    /// failed before says nothing about it. The same definition again keeps
    /// its backoff, so repeating a broken one cannot hammer the engine.
    async fn definition_replaced(
        &self,
        definition: &ServiceDefinition,
        runs_differently: bool,
    ) -> Result<(), Error> {
        if runs_differently {
            self.scaler.definition_replaced(definition.name());
            self.reconciler.wake();
            self.scaler
                .announce_rollout(definition.name(), definition.config_hash())
                .await;
        }
        Ok(())
    }

    /// The store goes back to the previous definition; the reconciler
    /// rolls it as after a PUT.
    async fn roll_back(
        &self,
        service: &ServiceName,
        origin: &Origin,
        precondition: Option<&Precondition>,
    ) -> Result<(ServiceDefinition, u64), Error> {
        let rolled_back = self.scaler.roll_back(service, origin, precondition).await?;
        self.reconciler.wake();
        self.scaler
            .announce_rollout(service, rolled_back.0.config_hash())
            .await;
        Ok(rolled_back)
    }
}
