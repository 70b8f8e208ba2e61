//! Status throughput and latency over 64 connections and over one, next to
//! sequential `docker ps` asking the same question.

use serde_json::json;

use crate::control::Connector;
use crate::docker::time_docker_ps;
use crate::load::{describe_load, hammer, LoadRound, StatusTarget};
use crate::report::{format_rate, format_seconds, rounds};
use crate::{progress, workload_service, Plan, BUSY_CONNECTIONS, STATUS_REPLICAS, STATUS_SERVICE};

/// Every round of the status load and of its docker ps baseline.
pub struct StatusFigures {
    /// Per round, the median duration of one `docker ps`.
    pub ps_seconds: Vec<f64>,
    pub busy: Vec<LoadRound>,
    pub idle: Vec<LoadRound>,
}

/// Creates the status service with its containers (left for the freshness
/// rounds) and loads its status, `docker ps` before or after by turns.
pub fn measure_status(plan: &Plan, connector: &Connector) -> StatusFigures {
    progress(format_args!(
        "status: {} of {} sequential docker ps, {BUSY_CONNECTIONS} connections for {:?}, 1 connection for {:?}",
        rounds(plan.status_rounds),
        plan.ps_calls,
        plan.busy_duration,
        plan.idle_duration
    ));
    connector.create_service(&workload_service(STATUS_SERVICE, json!({})));
    connector.scale(STATUS_SERVICE, STATUS_REPLICAS);
    let targets = [StatusTarget::new(
        connector.port(),
        STATUS_SERVICE,
        STATUS_REPLICAS,
    )];
    let mut figures = StatusFigures {
        ps_seconds: Vec::new(),
        busy: Vec::new(),
        idle: Vec::new(),
    };
    for round in 0..plan.status_rounds {
        let ps_first = round % 2 == 1;
        let ps_before =
            ps_first.then(|| time_docker_ps(connector.instance(), STATUS_SERVICE, plan.ps_calls));
        let busy = hammer(
            connector.port(),
            &targets,
            BUSY_CONNECTIONS,
            plan.busy_duration,
        );
        let idle = hammer(connector.port(), &targets, 1, plan.idle_duration);
        let ps = ps_before
            .unwrap_or_else(|| time_docker_ps(connector.instance(), STATUS_SERVICE, plan.ps_calls));
        progress(format_args!(
            "status round {}/{}: docker ps median {} ({} sequential)",
            round + 1,
            plan.status_rounds,
            format_seconds(ps),
            format_rate(1.0 / ps)
        ));
        progress(format_args!("  {}", describe_load("64 connections", &busy)));
        progress(format_args!("  {}", describe_load("1 connection", &idle)));
        figures.ps_seconds.push(ps);
        figures.busy.push(busy);
        figures.idle.push(idle);
    }
    figures
}
