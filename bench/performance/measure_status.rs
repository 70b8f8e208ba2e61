//! Status throughput and latency over 64 connections and over one, next to
//! sequential `docker ps` asking the same question; and the throughput over
//! 64 connections of the same status from a connector with logging off and
//! from a constant Rocket route (issue 21), and over TLS (issue 18), next to
//! the plain one of the same round.

use std::path::Path;

use serde_json::json;

use crate::control::Connector;
use crate::docker::time_docker_ps;
use crate::floor::Floor;
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
    /// The busy load on a connector with logging off (issue 21).
    pub busy_quiet: Vec<LoadRound>,
    /// The busy load on the constant route (issue 21): the framework's floor.
    pub busy_floor: Vec<LoadRound>,
    /// The busy load over TLS, to the TLS connector.
    pub busy_tls: Vec<LoadRound>,
}

/// The busy loads of a round, each on its own server.
#[derive(Clone, Copy)]
enum Busy {
    Plain,
    Quiet,
    Floor,
    Tls,
}

/// Creates the status service with its containers (left for the freshness
/// rounds) and loads its status, `docker ps` before or after by turns.
///
/// Beside the connector, each round loads with as many connections three
/// other servers of the same service: a connector with logging off, of
/// `quiet_instance`; the constant route (see `floor`), answering the status
/// the connector answered; and a connector of `tls_instance` serving over
/// TLS with a certificate made now (`tests/support/tls.rs`). The four busy
/// loads run one after another, in an order that turns by one each round,
/// and the three extra servers are stopped (their containers removed) at
/// the end. Processes of their own rather than the plain connector
/// restarted: the freshness rounds go on with the plain one.
pub fn measure_status(
    plan: &Plan,
    connector: &Connector,
    quiet_instance: &str,
    tls_instance: &str,
    log_dir: &Path,
) -> StatusFigures {
    progress(format_args!(
        "status: {} of {} sequential docker ps, {BUSY_CONNECTIONS} connections for {:?} to the \
         connector with logging on and off, the constant route and over TLS, 1 connection for {:?}",
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

    let mut quiet_connector = Connector::spawn_without_logging(
        quiet_instance,
        &log_dir.join("connector-quiet.log"),
        vec![quiet_instance.to_owned()],
    );
    quiet_connector.wait_for_first_answer();
    quiet_connector.create_service(&workload_service(STATUS_SERVICE, json!({})));
    quiet_connector.scale(STATUS_SERVICE, STATUS_REPLICAS);
    let quiet_targets = [StatusTarget::new(
        quiet_connector.port(),
        STATUS_SERVICE,
        STATUS_REPLICAS,
    )];

    let floor = Floor::start(
        &connector.status_answer(STATUS_SERVICE).body,
        &log_dir.join("constant-route.log"),
    );
    let floor_targets = [StatusTarget::new(
        floor.port(),
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
        "logging-off connector pid {} on port {}; constant route on port {}; TLS connector pid \
         {} on port {}, instance {tls_instance}",
        quiet_connector.pid(),
        quiet_connector.port(),
        floor.port(),
        tls_connector.pid(),
        tls_connector.port(),
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
        busy_quiet: Vec::new(),
        busy_floor: Vec::new(),
        busy_tls: Vec::new(),
    };
    let load = |busy: Busy| match busy {
        Busy::Plain => (connector.endpoint(), &targets[..]),
        Busy::Quiet => (quiet_connector.endpoint(), &quiet_targets[..]),
        Busy::Floor => (floor.endpoint(), &floor_targets[..]),
        Busy::Tls => (tls_connector.endpoint(), &tls_targets[..]),
    };
    for round in 0..plan.status_rounds {
        let ps_first = round % 2 == 1;
        let ps_before =
            ps_first.then(|| time_docker_ps(connector.instance(), STATUS_SERVICE, plan.ps_calls));
        let mut order = [Busy::Plain, Busy::Quiet, Busy::Floor, Busy::Tls];
        order.rotate_left(round % 4);
        for busy in order {
            let (endpoint, targets) = load(busy);
            let loaded = hammer(endpoint, targets, BUSY_CONNECTIONS, plan.busy_duration);
            match busy {
                Busy::Plain => figures.busy.push(loaded),
                Busy::Quiet => figures.busy_quiet.push(loaded),
                Busy::Floor => figures.busy_floor.push(loaded),
                Busy::Tls => figures.busy_tls.push(loaded),
            }
        }
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
        for (label, loads) in [
            ("64 connections", &figures.busy),
            ("64 connections, logging off", &figures.busy_quiet),
            ("64 connections, constant route", &figures.busy_floor),
            ("64 connections over TLS", &figures.busy_tls),
        ] {
            let last = loads.last().expect("loaded this round");
            progress(format_args!("  {}", describe_load(label, last)));
        }
        progress(format_args!("  {}", describe_load("1 connection", &idle)));
        figures.ps_seconds.push(ps);
        figures.idle.push(idle);
    }
    drop(tls_connector);
    drop(quiet_connector);
    figures
}
