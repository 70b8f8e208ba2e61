//! The containers backend: the connector runs each service's containers
//! itself on one engine, through the docker CLI. The [`Scaler`] acts on
//! requests; the [`Reconciler`] (when on) keeps the desired state in the
//! background.
//!
//! - `scaler`: scale, fill a shortfall, start one, remove, delete.
//! - `plan`: pure planning: what holds a place, what goes, the names.
//! - `progress`: failed attempts and their backoff, per service.
//! - `rollout`: rolling a definition change, start-first.
//! - `rollback`: going back to the previous definition, asked or by itself.
//! - `status`: the status report (read-only).
//! - `reconciler`: the background loop and the pass it runs per service.

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
use crate::domain::{ReplicaCount, ServiceDefinition, ServiceName};
use crate::error::Error;
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
        target: ReplicaCount,
    ) -> Result<ScaleReport, Error> {
        self.scaler.scale(service, target).await
    }

    async fn status(&self, service: &ServiceName) -> Result<ServiceStatus, Error> {
        self.scaler.status(service).await
    }

    async fn delete(&self, service: &ServiceName) -> Result<(), Error> {
        self.scaler.delete(service).await
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
        }
        Ok(())
    }

    /// The store goes back to the previous definition; the reconciler
    /// rolls it as after a PUT.
    async fn roll_back(&self, service: &ServiceName) -> Result<ServiceDefinition, Error> {
        let definition = self.scaler.roll_back(service).await?;
        self.reconciler.wake();
        Ok(definition)
    }
}
