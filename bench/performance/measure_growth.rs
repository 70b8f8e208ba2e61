//! Cost growth and memory: status latency of the same service while the
//! instance holds 10 and 500 containers, with the host equally loaded in
//! both cases; then the connector's memory after all the load.

use std::time::Instant;

use serde_json::json;

use crate::control::Connector;
use crate::docker::{remove_raw_containers, run_raw_containers};
use crate::load::{describe_load, hammer, LoadRound, StatusTarget};
use crate::machine::{read_memory, Memory};
use crate::report::format_seconds;
use crate::{
    for_each_in_parallel, progress, workload_service, Plan, BUSY_CONNECTIONS, PARALLEL_RUNS,
};

/// The services the large case spreads its containers over.
pub const GROWTH_SERVICES: usize = 50;
/// How many of the growth services are asked for their status: the same
/// ones, of the same size, in both cases. A status lists its service's
/// containers, so its answer grows with them; what must stay flat is the
/// cost of the rest of the instance.
pub const GROWTH_PROBES: usize = 1;
/// Different services scale in parallel inside the connector; a few at a time
/// fills 500 containers faster without drowning a 2-core engine.
const GROWTH_SCALES_IN_FLIGHT: usize = 4;
const DELETES_IN_FLIGHT: usize = 4;
/// The load rounds at one size of the instance.
pub struct SizeFigures {
    pub containers: u64,
    pub busy: Vec<LoadRound>,
    pub idle: Vec<LoadRound>,
}

/// The same load with the instance small and large.
pub struct GrowthFigures {
    pub small: SizeFigures,
    pub large: SizeFigures,
}

/// Status latency with few and with many containers in the connector's
/// index. Idle containers still cost the host (each has a containerd shim
/// that wakes up now and then), which shows in tail latencies whatever the
/// connector does. So the small case runs beside ballast: containers of
/// another instance, as many as the large case adds, which the connector
/// never sees. Both cases then carry the same host load, and only the index
/// differs.
pub fn measure_growth(
    plan: &Plan,
    connector: &Connector,
    ballast_instance: &str,
) -> (GrowthFigures, Memory) {
    let services: Vec<String> = (0..GROWTH_SERVICES).map(|i| format!("g{i:02}")).collect();
    progress(format_args!(
        "cost growth: creating {GROWTH_SERVICES} services"
    ));
    for service in &services {
        connector.create_service(&workload_service(service, json!({})));
    }

    let small_counts: Vec<u64> = (0..GROWTH_SERVICES)
        .map(|i| {
            if i < GROWTH_PROBES {
                plan.growth_replicas
            } else {
                0
            }
        })
        .collect();
    let large_counts = vec![plan.growth_replicas; GROWTH_SERVICES];
    scale_services(connector, &services, &small_counts);
    let ballast_size = large_counts.iter().sum::<u64>() - small_counts.iter().sum::<u64>();
    let ballast_names: Vec<String> = (0..ballast_size)
        .map(|i| format!("{ballast_instance}-{i}"))
        .collect();
    progress(format_args!(
        "cost growth: starting {ballast_size} ballast containers of instance {ballast_instance}, \
         {PARALLEL_RUNS} in parallel"
    ));
    let ballast = run_raw_containers(&ballast_names, ballast_instance, "ballast", &[]);
    let small = measure_size(plan, connector, &services, &small_counts);
    assert_eq!(small_counts[..GROWTH_PROBES], large_counts[..GROWTH_PROBES]);
    progress(format_args!("cost growth: removing the ballast"));
    remove_raw_containers(&ballast);

    scale_services(connector, &services, &large_counts);
    let large = measure_size(plan, connector, &services, &large_counts);

    let memory = read_memory(connector.pid());
    progress(format_args!(
        "connector memory after the load: VmRSS {:.1} MiB, VmHWM {:.1} MiB",
        memory.rss_mib, memory.peak_mib
    ));
    progress(format_args!(
        "cost growth: deleting the {GROWTH_SERVICES} services, {DELETES_IN_FLIGHT} at a time"
    ));
    for_each_in_parallel(&services, DELETES_IN_FLIGHT, |service| {
        connector.delete_service(service)
    });
    (GrowthFigures { small, large }, memory)
}

/// Scales each service with a nonzero count to it, a few services at a time.
fn scale_services(connector: &Connector, services: &[String], counts: &[u64]) {
    let work: Vec<(&String, u64)> = services
        .iter()
        .zip(counts.iter().copied())
        .filter(|&(_, count)| count > 0)
        .collect();
    let total: u64 = counts.iter().sum();
    progress(format_args!(
        "cost growth: scaling {} services to {total} containers, {GROWTH_SCALES_IN_FLIGHT} scales in flight",
        work.len()
    ));
    let started = Instant::now();
    for_each_in_parallel(&work, GROWTH_SCALES_IN_FLIGHT, |&(service, count)| {
        connector.scale(service, count);
    });
    progress(format_args!(
        "cost growth: {total} containers running after {}",
        format_seconds(started.elapsed().as_secs_f64())
    ));
}

/// The status load of [`crate::measure_status`], spread round-robin over the status
/// paths of the first [`GROWTH_PROBES`] services.
fn measure_size(
    plan: &Plan,
    connector: &Connector,
    services: &[String],
    counts: &[u64],
) -> SizeFigures {
    let targets: Vec<StatusTarget> = services
        .iter()
        .zip(counts)
        .take(GROWTH_PROBES)
        .map(|(service, &count)| StatusTarget::new(connector.port(), service, count))
        .collect();
    let containers = counts.iter().sum();
    let mut figures = SizeFigures {
        containers,
        busy: Vec::new(),
        idle: Vec::new(),
    };
    for round in 0..plan.status_rounds {
        let idle_first = round % 2 == 1;
        let idle_before =
            idle_first.then(|| hammer(connector.endpoint(), &targets, 1, plan.idle_duration));
        let busy = hammer(
            connector.endpoint(),
            &targets,
            BUSY_CONNECTIONS,
            plan.busy_duration,
        );
        let idle = idle_before
            .unwrap_or_else(|| hammer(connector.endpoint(), &targets, 1, plan.idle_duration));
        progress(format_args!(
            "cost growth, {containers} containers, round {}/{}",
            round + 1,
            plan.status_rounds
        ));
        progress(format_args!("  {}", describe_load("64 connections", &busy)));
        progress(format_args!("  {}", describe_load("1 connection", &idle)));
        figures.busy.push(busy);
        figures.idle.push(idle);
    }
    figures
}
