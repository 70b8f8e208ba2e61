//! docker-connector: keeps N containers of each defined service running on a
//! Docker host, driven over HTTP (the Genisys connector's API).
//!
//! - [`config`]: the connector's keys in Rocket's figment.
//! - [`auth`]: the optional bearer token, keeping web pages out, and who may listen without a token.
//! - [`domain`]: validated types (service name, image, ports, ...); built valid or not at all.
//! - [`error`]: the one error type and its mapping to HTTP.
//! - [`store`]: the definitions and the JSON file they live in.
//! - [`docker`]: the docker CLI runner, the engine interface over it, and Swarm services.
//! - [`index`]: the in-memory picture of the instance's containers.
//! - [`inventory`]: keeps the index live from docker's events; lists when it is not.
//! - [`backend`]: what the routes ask of whatever runs the services; the containers backend.
//! - [`scaler`]: turns a service's desired state into docker removals and starts, and rolls updates.
//! - [`reconciler`]: keeps every service at its desired state without being asked.
//! - [`swarm`]: the swarm backend, one Swarm service per service.
//! - [`health`]: whether the engine answers, checked at most once a second.
//! - [`routes`]: the HTTP endpoints and JSON catchers.
//! - [`metrics`]: the Prometheus metrics `/metrics` exposes.
//! - [`logging`]: the fern logger, and the log line and metrics of every request.
//! - [`shutdown`]: on SIGTERM, lets requests in flight finish, and stops nothing else.

pub mod auth;
pub mod backend;
pub mod config;
pub mod docker;
pub mod domain;
pub mod error;
pub mod health;
pub mod index;
pub mod inventory;
pub mod logging;
pub mod metrics;
pub mod reconciler;
pub mod routes;
pub mod scaler;
pub mod shutdown;
pub mod store;
pub mod swarm;

use std::sync::Arc;
use std::time::Duration;

use rocket::fairing::AdHoc;
use rocket::figment::Figment;
use rocket::{Build, Rocket};

use auth::AccessPolicy;
use backend::{Backend, ContainersBackend};
use config::{AppConfig, BackendKind};
use docker::{DockerCli, DockerRunner, Engine, SwarmCli, SwarmSettings};
use health::HealthCheck;
use inventory::Inventory;
use metrics::Metrics;
use reconciler::Reconciler;
use scaler::{Scaler, UpdatePolicy};
use store::Store;
use swarm::SwarmBackend;

/// Longest a health check waits for docker: monitors time out sooner than
/// docker_timeout's default.
const HEALTH_DEADLINE_SECONDS: u64 = 5;

/// Builds the server from `figment`: loads the definitions, finds the docker
/// CLI, and mounts the routes.
///
/// # Errors
/// A message when the configuration is invalid or the data file cannot be
/// loaded; the server must not start then.
pub fn rocket(figment: Figment) -> Result<Rocket<Build>, String> {
    // Rocket would refuse a bad key of its own too, but only say so through
    // its logger; extracting here names the key and the value.
    let server = figment
        .extract::<rocket::Config>()
        .map_err(|e| format!("configuration: {e}"))?;
    let config = AppConfig::from_figment(&figment)?;
    let access = AccessPolicy::new(config.auth_token.as_ref());
    auth::check_exposure(server.address, &access, config.allow_unauthenticated)?;
    let store = Arc::new(Store::open(&config.data_file)?);
    let metrics = Arc::new(Metrics::new());
    let runner = DockerRunner::new(
        &config.docker,
        Duration::from_secs(config.docker_timeout),
        metrics.clone(),
    );
    let mut docker_cli = DockerCli::new(runner.clone(), config.instance.clone());
    if config.reconcile && config.backend == BackendKind::Containers {
        docker_cli = docker_cli.with_restart_policy();
    }
    let engine: Arc<dyn Engine> = Arc::new(docker_cli);
    let health = HealthCheck::new(
        engine.clone(),
        Duration::from_secs(config.docker_timeout.min(HEALTH_DEADLINE_SECONDS)),
    );
    let inventory = Inventory::new(engine.clone());
    let update = UpdatePolicy {
        parallelism: config.update_parallelism,
        settle: Duration::from_secs_f64(config.update_settle),
    };
    let (backend, background): (Arc<dyn Backend>, _) = match config.backend {
        BackendKind::Containers => {
            let mut scaler = Scaler::new(
                engine,
                inventory.clone(),
                store.clone(),
                config.instance.clone(),
                config.scale_concurrency,
            );
            if config.reconcile {
                scaler = scaler.reconciling(update);
            }
            let scaler = Arc::new(scaler);
            let reconciler = Reconciler::new(scaler.clone(), store.clone(), inventory.clone());
            let background = Background::Containers {
                inventory: inventory.clone(),
                reconciler: config.reconcile.then(|| reconciler.clone()),
            };
            (
                Arc::new(ContainersBackend { scaler, reconciler }),
                background,
            )
        }
        BackendKind::Swarm => {
            let settings = SwarmSettings {
                publish_mode: config.swarm_publish_mode,
                resolve_image: config.swarm_resolve_image,
                parallelism: update.parallelism,
                monitor: update.settle,
            };
            let cli = SwarmCli::new(runner, config.instance.clone(), settings);
            let swarm = Arc::new(SwarmBackend::new(
                cli,
                store.clone(),
                Duration::from_secs(config.swarm_scale_timeout),
            ));
            (swarm.clone(), Background::Swarm(swarm))
        }
    };
    let summary = format!(
        "instance {:?}, {} services from {}, {}, {}",
        config.instance,
        store.all().len(),
        store.path().display(),
        match (config.backend, config.reconcile) {
            (BackendKind::Swarm, _) => "Swarm services, healed and rolled by Swarm",
            (BackendKind::Containers, true) => "containers, reconciling",
            (BackendKind::Containers, false) => "containers, acting only when called",
        },
        if access.requires_token() {
            "bearer token required"
        } else {
            "no authentication"
        }
    );
    Ok(rocket::custom(figment)
        .manage(store)
        .manage(backend)
        .manage(config)
        .manage(access)
        .manage(health)
        .manage(inventory)
        .manage(metrics)
        .mount("/", routes::routes())
        .register("/", routes::catchers())
        .attach(logging::RequestLogger)
        .attach(shutdown::DrainOnShutdown::default())
        .attach(background.fairing())
        .attach(AdHoc::on_liftoff("announce", move |rocket| {
            Box::pin(async move {
                let cfg = rocket.config();
                log::info!(
                    "docker-connector listening on {}:{} ({summary})",
                    cfg.address,
                    cfg.port
                );
            })
        })))
}

/// What runs beside the requests, by backend.
enum Background {
    /// The container index follows docker's events, and the reconciler (when
    /// on) keeps the desired state.
    Containers {
        inventory: Arc<Inventory>,
        reconciler: Option<Arc<Reconciler>>,
    },
    /// Nothing: Swarm heals and rolls. The engine must be a Swarm manager,
    /// checked before the server listens. (The container index stays idle,
    /// so `/metrics` leaves the running counts out: this engine sees only
    /// its own node's tasks.)
    Swarm(Arc<SwarmBackend>),
}

impl Background {
    fn fairing(self) -> AdHoc {
        match self {
            Background::Containers {
                inventory,
                reconciler,
            } => AdHoc::on_liftoff("follow docker events and reconcile", move |_| {
                Box::pin(async move {
                    // Both run until the runtime stops; dropping the event
                    // follower kills `docker events`.
                    tokio::spawn(inventory.follow_events());
                    if let Some(reconciler) = reconciler {
                        tokio::spawn(reconciler.run());
                    }
                })
            }),
            Background::Swarm(swarm) => AdHoc::try_on_ignite("Swarm manager", move |rocket| {
                Box::pin(async move {
                    match swarm.check_manager().await {
                        Ok(()) => Ok(rocket),
                        Err(message) => {
                            log::error!("{message}");
                            Err(rocket)
                        }
                    }
                })
            }),
        }
    }
}
