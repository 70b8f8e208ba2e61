//! Startup and scale: how long the connector takes to answer after it is
//! spawned, and to scale 0 → 100 → 0 next to the raw docker CLI doing the
//! same at its best, rounds alternating which side goes first.

use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::control::Connector;
use crate::docker::{remove_raw_containers, run_raw_containers};
use crate::report::{format_seconds, rounds};
use crate::test_docker;
use crate::{progress, workload_service, Plan};

const SCALE_SERVICE: &str = "scale";
pub const SCALE_REPLICAS: u64 = 100;
/// The untimed pause between a scale up and the scale down, on both sides.
/// A container's shell sets its SIGTERM trap a moment after `docker run`
/// returns; a SIGTERM that comes sooner is lost (PID 1 ignores signals it
/// has no handler for yet), and its stop waits out the 10 s grace. On this
/// busy host that happened to one side's freshest container in 2 of 5
/// rounds without the pause.
const SETTLE_BEFORE_DOWN: Duration = Duration::from_secs(1);
/// Per round, the seconds from spawning a fresh connector to its first
/// answer; each round starts its own, beside the one under load.
pub fn measure_startup(plan: &Plan, log_dir: &Path) -> Vec<f64> {
    progress(format_args!(
        "startup: {}, spawn to first answer of GET /service",
        rounds(plan.startup_rounds)
    ));
    (0..plan.startup_rounds)
        .map(|round| {
            let instance = format!("bench-startup-{}", test_docker::unique_instance());
            let log_path = log_dir.join(format!("startup-{round}.log"));
            let mut connector = Connector::spawn(&instance, &log_path, vec![instance.clone()]);
            let startup = connector.wait_for_first_answer().as_secs_f64();
            progress(format_args!(
                "startup round {}: {}",
                round + 1,
                format_seconds(startup)
            ));
            startup
        })
        .collect()
}

/// The seconds of one scale up and the scale down after it.
pub struct UpDown {
    pub up: f64,
    pub down: f64,
}

/// Every round's times, through the connector and by hand.
#[derive(Default)]
pub struct ScaleFigures {
    pub connector: Vec<UpDown>,
    pub raw: Vec<UpDown>,
}

/// Scales one service 0 → 100 → 0 through the connector and the same
/// through the raw CLI, each round, then deletes the service. The service
/// asks for no stop grace period (`"stop_grace_period": "0s"`), as a worker that
/// keeps no state may: the connector then removes its containers at once,
/// as one `docker rm -f` of them all does by hand.
pub fn measure_scale(plan: &Plan, connector: &Connector, raw_instance: &str) -> ScaleFigures {
    progress(format_args!(
        "scale: {} of 0 → {SCALE_REPLICAS} → 0, connector and raw docker CLI alternating first",
        rounds(plan.scale_rounds)
    ));
    connector.create_service(&workload_service(
        SCALE_SERVICE,
        json!({"environment": {"A": "1", "B": "2"}, "stop_grace_period": "0s"}),
    ));
    let mut figures = ScaleFigures::default();
    for round in 0..plan.scale_rounds {
        let connector_first = round % 2 == 0;
        let (ours, raw) = if connector_first {
            let ours = scale_through_connector(connector);
            (
                ours,
                scale_with_raw_cli(connector.instance(), raw_instance, round),
            )
        } else {
            let raw = scale_with_raw_cli(connector.instance(), raw_instance, round);
            (scale_through_connector(connector), raw)
        };
        progress(format_args!(
            "scale round {}/{} ({} first): connector up {} down {}; raw up {} down {}",
            round + 1,
            plan.scale_rounds,
            if connector_first { "connector" } else { "raw" },
            format_seconds(ours.up),
            format_seconds(ours.down),
            format_seconds(raw.up),
            format_seconds(raw.down)
        ));
        figures.connector.push(ours);
        figures.raw.push(raw);
    }
    connector.delete_service(SCALE_SERVICE);
    figures
}

fn scale_through_connector(connector: &Connector) -> UpDown {
    let started = Instant::now();
    connector.scale(SCALE_SERVICE, SCALE_REPLICAS);
    let up = started.elapsed().as_secs_f64();
    thread::sleep(SETTLE_BEFORE_DOWN);
    let started = Instant::now();
    connector.scale(SCALE_SERVICE, 0);
    let down = started.elapsed().as_secs_f64();
    UpDown { up, down }
}

/// What the connector does for a scale, done by hand at its best: the same
/// image, command, labels and environment, `PARALLEL_RUNS` starts in
/// flight; then one `docker rm -f` of them all, the end a service without a
/// stop grace period asks for.
fn scale_with_raw_cli(instance: &str, raw_instance: &str, round: usize) -> UpDown {
    let names: Vec<String> = (0..SCALE_REPLICAS)
        .map(|i| format!("{instance}-raw-{round}-{i}"))
        .collect();
    let started = Instant::now();
    let ids = run_raw_containers(&names, raw_instance, "raw", &[]);
    let up = started.elapsed().as_secs_f64();
    thread::sleep(SETTLE_BEFORE_DOWN);
    let started = Instant::now();
    remove_raw_containers(&ids);
    let down = started.elapsed().as_secs_f64();
    UpDown { up, down }
}
