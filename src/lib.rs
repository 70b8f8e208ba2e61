//! docker-connector: keeps N containers of each defined service running on a
//! Docker host, driven over HTTP (the Genisys connector's API).
//!
//! Requests flow one way: a route parses its input into a `domain` type
//! and calls the `backend`, which works through the `inventory`, the
//! `store` and the `docker` runner. No module imports, directly or through
//! others, a module that imports it (the README's Development section says
//! how that is checked).
//!
//! - [`config`]: the connector's keys in Rocket's figment.
//! - `auth`: tokens (`auth_token` and the scoped `tokens`), bearer or HTTP Basic, the slow-down
//!   of guessing, keeping web pages out, and who may listen without a token or TLS.
//! - `audit`: the audit log, a JSON line per change and per refusal.
//! - [`domain`]: validated types (service name, image, ports, scale body, ...); built valid or not at all.
//! - `error`: the one error type and its mapping to HTTP.
//! - `json`: strict JSON reading (no key given twice), for request bodies and the data file.
//! - `store`: the definitions, and the JSON files they live in (a snapshot and a journal).
//! - [`docker`]: the only code that spawns `docker`: the runner, containers and their events, Swarm services.
//! - `inventory`: which containers run, kept live from docker's events (its index private to it).
//! - `backend`: what the routes ask of whatever runs the services, the per-service locks,
//!   and the two backends: `containers` (scale, plan, rollout, status, reconciler) and `swarm` (policy, status).
//! - `feed`: the change feed: numbered events in one ring, which `GET /events` streams and a
//!   blocking status waits on; the store, the inventory and the backends publish to it.
//! - `health`: whether the engine answers, checked at most once a second.
//! - [`routes`]: the HTTP endpoints, the JSON catchers, the access gate and the request log.
//! - `metrics`: the Prometheus metrics `/metrics` exposes.
//! - [`logging`]: the fern logger, plain or JSON lines.
//! - [`memory`]: glibc's malloc kept to two arenas, its free pages handed back now and then.
//! - `shutdown`: on SIGTERM, lets requests in flight finish, and stops nothing else.
//! - `warden`: ends connections that deliver no request head in time, caps them per address, and
//!   keeps file descriptors in reserve (Rocket 0.5 has neither a header timeout nor a listener hook).
//!
//! Public are only what the binary and the integration tests use; the rest
//! is the crate's own.

mod audit;
mod auth;
mod backend;
pub mod config;
pub mod docker;
pub mod domain;
mod error;
mod feed;
mod health;
mod inventory;
mod json;
pub mod logging;
pub mod memory;
mod metrics;
pub mod routes;
mod shutdown;
mod store;
mod warden;

use std::sync::Arc;
use std::time::Duration;

use rocket::fairing::AdHoc;
use rocket::figment::Figment;
use rocket::{Build, Rocket};

use audit::AuditLog;
use auth::AccessPolicy;
use backend::containers::{ContainersBackend, Reconciler, Scaler, UpdatePolicy};
use backend::swarm::SwarmBackend;
use backend::Backend;
use config::{AppConfig, BackendKind};
use docker::{DockerCli, DockerRunner, Engine, NetworkCheck, SwarmCli, SwarmSettings};
use domain::BindPolicy;
use feed::Feed;
use health::HealthCheck;
use inventory::Inventory;
use metrics::Metrics;
use store::{Compaction, Store, StoreSettings};
use warden::{Warden, WardenSettings};

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
    let access = AccessPolicy::from_settings(
        config.auth_token.as_ref(),
        &config.tokens,
        config.tokens_file.as_deref(),
        config.auth_failures_per_minute,
    )
    .map_err(|e| format!("configuration: {e}"))?;
    auth::check_exposure(
        server.address,
        &access,
        config.allow_unauthenticated,
        server.tls_enabled(),
        config.allow_plain_http,
    )?;
    let audit = AuditLog::open(config.audit_log.as_deref())?;
    let feed = Feed::new(config.event_ring);
    let store_settings = StoreSettings {
        max_replicas: config.max_replicas,
        compaction: Compaction {
            after_bytes: config.journal_compaction_bytes,
        },
    };
    let store = Arc::new(Store::open(
        &config.data_file,
        feed.clone(),
        store_settings,
    )?);
    let metrics = Arc::new(Metrics::new());
    let docker_timeout = Duration::from_secs(config.docker_timeout);
    let runner = DockerRunner::new(&config.docker, docker_timeout, metrics.clone());
    let bind_policy = BindPolicy::new(&config.allowed_bind_paths)?;
    let networks = NetworkCheck::new(runner.clone(), config.backend == BackendKind::Swarm);
    let mut docker_cli =
        DockerCli::new(runner.clone(), config.instance.clone(), bind_policy.clone());
    if config.reconcile && config.backend == BackendKind::Containers {
        docker_cli = docker_cli.with_restart_policy();
    }
    let engine: Arc<dyn Engine> = Arc::new(docker_cli);
    let health = HealthCheck::new(
        engine.clone(),
        Duration::from_secs(config.docker_timeout.min(HEALTH_DEADLINE_SECONDS)),
    );
    let inventory = Inventory::new(engine.clone(), feed.clone());
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
                feed.clone(),
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
            let cli = SwarmCli::new(
                runner,
                config.instance.clone(),
                settings,
                bind_policy.clone(),
            );
            let swarm = Arc::new(SwarmBackend::new(
                cli,
                store.clone(),
                Duration::from_secs(config.swarm_scale_timeout),
                feed.clone(),
            ));
            (swarm.clone(), Background::Swarm(swarm))
        }
    };
    let warden = Warden::new(WardenSettings {
        header_timeout: Duration::from_secs(config.header_timeout),
        per_address: config.max_connections_per_address,
    });
    let summary = format!(
        "instance {:?}, {} services from {}, {}, {}, {}",
        config.instance,
        store.all().len(),
        store.path().display(),
        match (config.backend, config.reconcile) {
            (BackendKind::Swarm, _) => "Swarm services, healed and rolled by Swarm",
            (BackendKind::Containers, true) => "containers, reconciling",
            (BackendKind::Containers, false) => "containers, acting only when called",
        },
        match access.token_count() {
            0 => "no authentication".to_owned(),
            n => format!("{n} token(s)"),
        },
        if server.tls_enabled() {
            "TLS"
        } else {
            "plain HTTP"
        }
    );
    Ok(rocket::custom(figment)
        .manage(store)
        .manage(feed)
        .manage(backend)
        .manage(config)
        .manage(access)
        .manage(audit)
        .manage(bind_policy)
        .manage(networks)
        .manage(health)
        .manage(inventory)
        .manage(metrics)
        .mount("/", routes::routes(docker_timeout))
        .register("/", routes::catchers())
        .attach(routes::RequestLogger)
        .attach(routes::AuditTrail)
        .attach(warden)
        .attach(shutdown::DrainOnShutdown::default())
        .attach(background.fairing())
        .attach(memory::trimmer())
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
    /// Swarm heals and rolls; the backend watches the updates it hands
    /// over, to follow Swarm's rollbacks. The engine must be a Swarm manager,
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
                        Ok(()) => {
                            tokio::spawn(swarm.follow_updates());
                            Ok(rocket)
                        }
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
