//! Status throughput and latency over 64 connections and over one, next to
//! sequential `docker ps` asking the same question; and the throughput over
//! 64 TLS connections (issue 18), next to the plain one of the same round.

use std::path::Path;

use serde_json::json;

use crate::control::Connector;
use crate::docker::time_docker_ps;
use crate::load::{describe_load, hammer, LoadRound, StatusTarget};
use crate::report::{format_rate, format_seconds, rounds};
use crate::test_tls::TestCa;
use crate::{progress, workload_service, Plan, BUSY_CONNECTIONS, STATUS_REPLICAS, STATUS_SERVICE};

/// Every round of the status load and of its docker ps baseline.
pub struct StatusFigures {
    /// Per round, the median duration of one `docker ps`.
    pub ps_seconds: Vec<f64>,
    pub busy: Vec<LoadRound>,
    pub idle: Vec<LoadRound>,
    /// The busy load over TLS, to the TLS connector.
    pub busy_tls: Vec<LoadRound>,
}

/// Creates the status service with its containers (left for the freshness
/// rounds) and loads its status, `docker ps` before or after by turns.
///
/// A second connector, of `tls_instance`, serves the same service over
/// TLS with a certificate made now (`tests/support/tls.rs`); each round
/// loads it with as many connections as the plain one, right before or
/// after it by turns, and it is stopped, its containers removed, at the
/// end. Its own process rather than the plain connector restarted: the
/// freshness rounds go on with the plain one.
pub fn measure_status(
    plan: &Plan,
    connector: &Connector,
    tls_instance: &str,
    log_dir: &Path,
) -> StatusFigures {
    progress(format_args!(
        "status: {} of {} sequential docker ps, {BUSY_CONNECTIONS} connections for {:?} in \
         clear and over TLS, 1 connection for {:?}",
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

    let ca = TestCa::new();
    let mut tls_connector = Connector::spawn_tls(
        tls_instance,
        &log_dir.join("connector-tls.log"),
        vec![tls_instance.to_owned()],
        &ca,
    );
    tls_connector.wait_for_first_answer();
    tls_connector.create_service(&workload_service(STATUS_SERVICE, json!({})));
    tls_connector.scale(STATUS_SERVICE, STATUS_REPLICAS);
    progress(format_args!(
        "TLS connector pid {} on port {}, instance {tls_instance}, log {}",
        tls_connector.pid(),
        tls_connector.port(),
        tls_connector.log_path().display()
    ));
    let tls_targets = [StatusTarget::new(
        tls_connector.port(),
        STATUS_SERVICE,
        STATUS_REPLICAS,
    )];

    let mut figures = StatusFigures {
        ps_seconds: Vec::new(),
        busy: Vec::new(),
        idle: Vec::new(),
        busy_tls: Vec::new(),
    };
    for round in 0..plan.status_rounds {
        let ps_first = round % 2 == 1;
        let ps_before =
            ps_first.then(|| time_docker_ps(connector.instance(), STATUS_SERVICE, plan.ps_calls));
        let tls_busy = || {
            hammer(
                tls_connector.endpoint(),
                &tls_targets,
                BUSY_CONNECTIONS,
                plan.busy_duration,
            )
        };
        // TLS after the plain load in even rounds, before it in odd ones.
        let busy_tls_before = ps_first.then(tls_busy);
        let busy = hammer(
            connector.endpoint(),
            &targets,
            BUSY_CONNECTIONS,
            plan.busy_duration,
        );
        let busy_tls = busy_tls_before.unwrap_or_else(tls_busy);
        let idle = hammer(connector.endpoint(), &targets, 1, plan.idle_duration);
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
        progress(format_args!(
            "  {}",
            describe_load("64 connections over TLS", &busy_tls)
        ));
        progress(format_args!("  {}", describe_load("1 connection", &idle)));
        figures.ps_seconds.push(ps);
        figures.busy.push(busy);
        figures.idle.push(idle);
        figures.busy_tls.push(busy_tls);
    }
    drop(tls_connector);
    figures
}
