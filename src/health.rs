//! Whether the connector can do its job: the engine answers. Monitoring polls
//! this often, so one docker call serves every check for a second.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::sync::Mutex;

use crate::docker::Engine;

/// How long one engine check answers for.
const CACHE_FOR: Duration = Duration::from_secs(1);

/// The outcome of one check of the engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EngineHealth {
    /// `docker version` answered with the engine's version.
    Reachable { server_version: String },
    /// It did not, for this reason.
    Unreachable { error: String },
}

impl EngineHealth {
    pub fn is_reachable(&self) -> bool {
        matches!(self, EngineHealth::Reachable { .. })
    }

    /// The `docker` part of the health answer.
    pub fn to_json(&self) -> Value {
        match self {
            EngineHealth::Reachable { server_version } => {
                json!({ "reachable": true, "server_version": server_version })
            }
            EngineHealth::Unreachable { error } => json!({ "reachable": false, "error": error }),
        }
    }
}

/// Checks the engine at most once per [`CACHE_FOR`].
pub struct HealthCheck {
    engine: Arc<dyn Engine>,
    /// How long one check may wait for docker before calling it unreachable.
    deadline: Duration,
    /// The last outcome and when it was taken. Held across a check, so
    /// concurrent callers wait for one docker call instead of each making one.
    last: Mutex<Option<(Instant, EngineHealth)>>,
}

impl HealthCheck {
    /// Checks through `engine`, giving docker at most `deadline`.
    pub fn new(engine: Arc<dyn Engine>, deadline: Duration) -> Self {
        HealthCheck {
            engine,
            deadline,
            last: Mutex::new(None),
        }
    }

    /// The engine's health, at most [`CACHE_FOR`] old.
    pub async fn engine(&self) -> EngineHealth {
        let mut last = self.last.lock().await;
        if let Some((taken, health)) = last.as_ref() {
            if taken.elapsed() < CACHE_FOR {
                return health.clone();
            }
        }
        // Dropping the call at the deadline kills the docker child.
        let health = match tokio::time::timeout(self.deadline, self.engine.server_version()).await {
            Ok(Ok(server_version)) => EngineHealth::Reachable { server_version },
            Ok(Err(e)) => EngineHealth::Unreachable {
                error: e.to_string(),
            },
            Err(_) => EngineHealth::Unreachable {
                error: format!("docker did not answer within {} s", self.deadline.as_secs()),
            },
        };
        *last = Some((Instant::now(), health.clone()));
        health
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use async_trait::async_trait;

    use super::*;
    use crate::docker::{Container, EventStream, EventTime, StartOutcome};
    use crate::domain::{ServiceDefinition, ServiceName};
    use crate::error::Error;

    /// Answers `server_version` and counts how often it was asked.
    #[derive(Default)]
    struct CountingEngine {
        calls: AtomicUsize,
    }

    #[async_trait]
    impl Engine for CountingEngine {
        async fn list(&self, _: &ServiceName) -> Result<Vec<Container>, Error> {
            unreachable!("health only asks for the version")
        }

        async fn list_all(&self) -> Result<Vec<Container>, Error> {
            unreachable!("health only asks for the version")
        }

        async fn watch(&self, _: EventTime) -> Result<Box<dyn EventStream>, Error> {
            unreachable!("health only asks for the version")
        }

        async fn start(&self, _: &ServiceDefinition, _: &str) -> Result<StartOutcome, Error> {
            unreachable!("health only asks for the version")
        }

        async fn stop(&self, _: &[String], _: std::time::Duration) -> Result<(), Error> {
            unreachable!("health only asks for the version")
        }

        async fn remove(&self, _: &[String]) -> Result<(), Error> {
            unreachable!("health only asks for the version")
        }

        async fn published_ports(
            &self,
            _: &[String],
        ) -> Result<std::collections::HashMap<String, crate::docker::PublishedPorts>, Error>
        {
            unreachable!("health only asks for the version")
        }

        async fn server_version(&self) -> Result<String, Error> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            // Takes a while, as docker does, so that the checks overlap.
            tokio::time::sleep(Duration::from_millis(50)).await;
            Ok("27.0.0".into())
        }
    }

    #[tokio::test]
    async fn concurrent_checks_within_a_second_share_one_docker_call() {
        let engine = Arc::new(CountingEngine::default());
        let check = HealthCheck::new(engine.clone(), Duration::from_secs(5));
        let answers = futures::future::join_all((0..20).map(|_| check.engine())).await;
        assert!(answers.iter().all(|a| a
            == &EngineHealth::Reachable {
                server_version: "27.0.0".into()
            }));
        assert_eq!(engine.calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_docker_slower_than_the_deadline_is_unreachable() {
        let check = HealthCheck::new(
            Arc::new(CountingEngine::default()),
            Duration::from_millis(10),
        );
        assert!(!check.engine().await.is_reachable());
    }
}
