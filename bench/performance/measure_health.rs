//! What health checks cost status: the status latency of a service whose
//! containers have a health check, against a service of as many
//! containers without one.

use std::thread;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::control::Connector;
use crate::docker::{remove_raw_containers, run_raw_containers};
use crate::load::{describe_load, hammer, LoadRound, StatusTarget};
use crate::report::rounds;
use crate::{progress, workload_service, Plan};

const PLAIN_SERVICE: &str = "health-off";
const CHECKED_SERVICE: &str = "health-on";
/// The check: a command that always passes, every second, so that the
/// engine reports each container's health early and runs checks (and sends
/// their events) all through the measurement.
const CHECK_COMMAND: &str = "true";
const CHECK_INTERVAL: &str = "1s";
/// How long the checked containers may take to be reported healthy.
const HEALTHY_DEADLINE: Duration = Duration::from_secs(60);

/// Every round's status load of each service.
pub struct HealthFigures {
    pub replicas: u64,
    pub without: Vec<LoadRound>,
    pub with: Vec<LoadRound>,
}

/// Status over one connection of a service without a health check, then of
/// one with, each the same number of containers. A health check costs the
/// host (docker runs each check as an exec in the container), whoever looks
/// at it; the question is what it costs the connector. So the first half
/// runs beside ballast: containers of another instance, as many and with the
/// same check, whose events the connector never sees. Both halves then carry
/// the same host load, and only what the connector follows differs.
pub fn measure_health(plan: &Plan, connector: &Connector, ballast_instance: &str) -> HealthFigures {
    let replicas = plan.health_replicas;
    progress(format_args!(
        "health: {} of status over 1 connection for {:?}, a service of {replicas} containers \
         without a health check, then one with",
        rounds(plan.status_rounds),
        plan.idle_duration
    ));
    connector.create_service(&workload_service(PLAIN_SERVICE, json!({})));
    connector.scale(PLAIN_SERVICE, replicas);
    let ballast_names: Vec<String> = (0..replicas)
        .map(|i| format!("{ballast_instance}-health-{i}"))
        .collect();
    let ballast = run_raw_containers(
        &ballast_names,
        ballast_instance,
        "health-ballast",
        &[
            "--health-cmd",
            CHECK_COMMAND,
            "--health-interval",
            CHECK_INTERVAL,
        ],
    );
    let without = load_rounds(plan, connector, PLAIN_SERVICE, replicas, "without");
    remove_raw_containers(&ballast);

    connector.create_service(&workload_service(
        CHECKED_SERVICE,
        json!({"healthcheck": {"test": CHECK_COMMAND, "interval": CHECK_INTERVAL}}),
    ));
    connector.scale(CHECKED_SERVICE, replicas);
    wait_until_healthy(connector, CHECKED_SERVICE, replicas);
    let with = load_rounds(plan, connector, CHECKED_SERVICE, replicas, "with");
    connector.delete_service(CHECKED_SERVICE);
    connector.delete_service(PLAIN_SERVICE);
    HealthFigures {
        replicas,
        without,
        with,
    }
}

fn load_rounds(
    plan: &Plan,
    connector: &Connector,
    service: &str,
    replicas: u64,
    label: &str,
) -> Vec<LoadRound> {
    let targets = [StatusTarget::new(connector.port(), service, replicas)];
    (0..plan.status_rounds)
        .map(|round| {
            let load = hammer(connector.endpoint(), &targets, 1, plan.idle_duration);
            progress(format_args!(
                "health, {label} a health check, round {}/{}: {}",
                round + 1,
                plan.status_rounds,
                describe_load("1 connection", &load)
            ));
            load
        })
        .collect()
}

/// Polls the status of `service` until it reports `replicas` healthy
/// containers; panics at [`HEALTHY_DEADLINE`], with the last status.
fn wait_until_healthy(connector: &Connector, service: &str, replicas: u64) {
    let started = Instant::now();
    loop {
        let status = connector.status(service);
        if status["healthy_resources"].as_u64() == Some(replicas) {
            progress(format_args!(
                "health: {replicas} containers of {service} healthy after {:.1} s",
                started.elapsed().as_secs_f64()
            ));
            return;
        }
        assert!(
            started.elapsed() < HEALTHY_DEADLINE,
            "{service}: not {replicas} healthy containers within {HEALTHY_DEADLINE:?}: {status}"
        );
        thread::sleep(Duration::from_millis(200));
    }
}
