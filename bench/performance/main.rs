//! The performance benchmark of issue 4: drives the release `docker-connector`
//! binary and the real docker CLI on this host and compares the two.
//!
//! In one run it measures every target of the issue next to the raw docker
//! CLI doing the same work, over several rounds that alternate which side
//! goes first, because the machine is shared and noisy: only medians and
//! ratios taken in the same run mean anything.
//!
//! * startup: from spawning the binary to the first answer of `GET /service`;
//! * scale 0→100 and 100→0 of a service that asks for no stop grace period
//!   (issue 21), against 100 `docker run -d` (8 in parallel) and one
//!   `docker rm -f` of the same 100 containers (every container runs
//!   [`WORKLOAD`]);
//! * status throughput and latency over 64 keep-alive connections and over
//!   one, against sequential `docker ps --filter label=...`; the throughput
//!   over 64 connections of a second connector with logging off and of a
//!   constant Rocket route answering the same body (issue 21: the floor),
//!   and over 64 TLS connections (issue 18) to a connector started with
//!   `tls.*`, all against the plain one's in the same rounds;
//! * freshness: how soon a container removed or killed behind the
//!   connector's back shows in status, and whether the status right after a
//!   scale says what the scale answered;
//! * cost growth: the status latency of one service with 10 containers
//!   while the instance holds 10 and 500 containers (across 50 services),
//!   the 10 beside 490 containers of another instance so that the host
//!   carries the same load in both; a status lists its own service's
//!   containers, so the asked-for service is the same size in both;
//! * health: status p50 of a service of 20 containers with a health check
//!   against one without, the host carrying the same health checks in both;
//! * memory: the connector's resident set after all that load;
//! * watch (issue 17): how soon a docker event reaches a client of the
//!   connector's event stream and a status request blocked on its index,
//!   each against the bench's own `docker events` reading the same event;
//!   and the connector's memory and status p99 over 64 connections with
//!   1,000 event streams open, against the same load without them;
//! * store (issue 19): the median create and scale latency with 10 and with
//!   2,000 services defined, on two connectors whose docker CLI is a
//!   stand-in that answers at once, so that the store's writes are what is
//!   timed; against a bare synced append on the same disk.
//!
//! ```sh
//! cargo bench --bench performance              # the full run, about 8 minutes
//! cargo bench --bench performance -- --quick   # a short smoke run for CI
//! cargo bench --bench performance -- --only scale,health   # some sections
//! ```
//!
//! `--only` takes the sections `startup`, `scale`, `status`, `freshness`
//! (which runs on the status section's service, so brings it along),
//! `health`, `growth` (which includes memory), `watch` and `store`; the table then
//! has only their rows.
//!
//! It needs a Docker engine and a static busybox, from which the tests' image
//! is built (`tests/support/docker.rs`), and, for the status section, the
//! `openssl` CLI, which makes the TLS connector's certificates at run time
//! (`tests/support/tls.rs`). The machine description and a markdown
//! table go to stdout, progress to stderr, the connector's log to
//! `target/bench/connector.log` (the TLS one's to `connector-tls.log`, the
//! logging-off one's to `connector-quiet.log`). It exits 1 if a target is
//! missed; `--quick`
//! exits 0 unless an operation failed, and then panics. Its containers carry
//! their own instance labels and are removed when it ends, even on a panic.

//!
//! This file holds the plan (how much of each measurement, `--quick` or
//! not), runs the measurements in order and prints the table; each of its
//! modules does one job:
//!
//! * `http`: the small keep-alive HTTP/1.1 client every request goes through,
//!   in clear or over TLS;
//! * `event_stream`: a client of the connector's event stream, reading its
//!   chunked body event by event;
//! * `floor`: the constant Rocket route the status load is held against,
//!   served by this binary started again with `--constant-route`;
//! * `control`: the connector process, started by the launcher the tests
//!   share (`tests/support/connector.rs`), and its control calls (create,
//!   scale, delete), which clean up its containers on drop;
//! * `docker`: the raw docker CLI side, the baseline and the cleanup;
//! * `load`: status requests back to back over kept connections, and what
//!   one round of them saw;
//! * `measure_startup_scale`, `measure_status`, `measure_freshness`,
//!   `measure_health`, `measure_growth`, `measure_watch`, `measure_store`: one family of
//!   measurements each;
//! * `machine`: what /proc says about the host and the connector's memory;
//! * `report`: medians, rows, verdicts and the table.

/// The tests' docker helpers: the test image, `docker()`, unique instance
/// labels. Included alone; the bench uses a few of them.
#[path = "../../tests/support/docker.rs"]
#[allow(dead_code)]
mod test_docker;

/// The one launcher of the connector binary, shared with the tests.
#[path = "../../tests/support/connector.rs"]
#[allow(dead_code)]
mod connector;

/// The tests' CA made with the openssl CLI, for the TLS connector.
#[path = "../../tests/support/tls.rs"]
#[allow(dead_code)]
mod test_tls;

mod control;
mod docker;
mod event_stream;
mod floor;
mod http;
mod load;
mod machine;
mod measure_freshness;
mod measure_growth;
mod measure_health;
mod measure_startup_scale;
mod measure_status;
mod measure_store;
mod measure_watch;
mod report;

use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

use control::Connector;
use docker::report_leftovers;
use machine::describe_machine;
use measure_freshness::measure_freshness;
use measure_growth::measure_growth;
use measure_health::measure_health;
use measure_startup_scale::{measure_scale, measure_startup};
use measure_status::measure_status;
use measure_store::measure_store;
use measure_watch::measure_watch;
use report::{build_table, rounds_note, Results};

/// The service whose status is loaded, then used by the freshness rounds,
/// which delete it.
const STATUS_SERVICE: &str = "status";
const STATUS_REPLICAS: u64 = 5;
/// What every container of the bench runs, the connector's and the raw
/// baseline's alike, given explicitly so both sides run the same argv: the
/// test image's default, a shell that waits on a sleep and exits at
/// SIGTERM. Containers are stopped gracefully (`docker stop`, then SIGKILL
/// after the grace); with a command that ignored SIGTERM every stop would
/// wait out the whole 10 s grace, and the bench would time a timer on both
/// sides. A real server exits at SIGTERM; this does too.
pub const WORKLOAD: [&str; 3] = test_docker::DEFAULT_COMMAND;

/// A service of [`WORKLOAD`] on the tests' image, to which `extra` keys are
/// added.
pub fn workload_service(name: &str, extra: serde_json::Value) -> serde_json::Value {
    let mut definition = serde_json::json!({
        "name": name,
        "image": test_docker::TEST_IMAGE,
        "command": WORKLOAD,
    });
    if let (Some(definition), serde_json::Value::Object(extra)) =
        (definition.as_object_mut(), extra)
    {
        definition.extend(extra);
    }
    definition
}

/// The connector's own default `scale_concurrency`, so that the raw baseline
/// starts containers with the same parallelism as the connector.
const PARALLEL_RUNS: usize = 8;
/// The keep-alive connections of the busy status load.
const BUSY_CONNECTIONS: usize = 64;

fn main() -> ExitCode {
    // The bench's binary started again to serve the status load's floor.
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some(floor::FLOOR_FLAG) {
        return floor::serve(&args[1..]);
    }
    let plan = Plan::from_args();
    progress(format_args!(
        "docker-connector performance bench ({})",
        if plan.quick { "--quick" } else { "full run" }
    ));
    println!("{}", describe_machine());
    test_docker::ensure_test_image();

    let log_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench");
    std::fs::create_dir_all(&log_dir).expect("target/bench can be created");
    let instance = format!("bench-{}", test_docker::unique_instance());
    let raw_instance = format!("{instance}-raw");
    let ballast_instance = format!("{instance}-ballast");
    let tls_instance = format!("{instance}-tls");
    let quiet_instance = format!("{instance}-quiet");
    let mut connector = Connector::spawn(
        &instance,
        &log_dir.join("connector.log"),
        vec![
            instance.clone(),
            raw_instance.clone(),
            ballast_instance.clone(),
        ],
    );
    connector.wait_for_first_answer();
    progress(format_args!(
        "connector pid {} on port {}, instance {instance}, log {}",
        connector.pid(),
        connector.port(),
        connector.log_path().display()
    ));

    let startup = plan
        .runs(Section::Startup)
        .then(|| measure_startup(&plan, &log_dir));
    let scale = plan
        .runs(Section::Scale)
        .then(|| measure_scale(&plan, &connector, &raw_instance));
    let status = plan
        .runs(Section::Status)
        .then(|| measure_status(&plan, &connector, &quiet_instance, &tls_instance, &log_dir));
    let freshness = plan
        .runs(Section::Freshness)
        .then(|| measure_freshness(&plan, &connector));
    let health = plan
        .runs(Section::Health)
        .then(|| measure_health(&plan, &connector, &ballast_instance));
    let (growth, memory) = match plan.runs(Section::Growth) {
        true => {
            let (growth, memory) = measure_growth(&plan, &connector, &ballast_instance);
            (Some(growth), Some(memory))
        }
        false => (None, None),
    };
    // Last: its thousand streams would weigh on the memory row otherwise.
    let watch = plan
        .runs(Section::Watch)
        .then(|| measure_watch(&plan, &connector));
    drop(connector);
    let store = plan
        .runs(Section::Store)
        .then(|| measure_store(&plan, &log_dir, &instance));
    report_leftovers(&[
        &instance,
        &raw_instance,
        &ballast_instance,
        &tls_instance,
        &quiet_instance,
    ]);

    let results = Results {
        startup,
        scale,
        status,
        freshness,
        health,
        growth,
        memory,
        watch,
        store,
    };
    let table = build_table(&results);
    println!();
    table.print();
    println!();
    println!("{}", rounds_note(&plan));
    for problem in results.problems() {
        println!("problem seen: {problem}");
    }

    let failed_requests = results.failed_requests();
    if plan.quick {
        assert!(
            failed_requests == 0,
            "--quick: {failed_requests} status requests failed (errors or non-200 answers); see the problems above"
        );
        return ExitCode::SUCCESS;
    }
    if table.all_pass() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// One family of measurements, as `--only` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Section {
    Startup,
    Scale,
    Status,
    Freshness,
    Health,
    Growth,
    Watch,
    Store,
}

impl Section {
    const ALL: [Section; 8] = [
        Section::Startup,
        Section::Scale,
        Section::Status,
        Section::Freshness,
        Section::Health,
        Section::Growth,
        Section::Watch,
        Section::Store,
    ];

    fn parse(name: &str) -> Option<Section> {
        Section::ALL
            .into_iter()
            .find(|section| format!("{section:?}").eq_ignore_ascii_case(name))
    }
}

/// How much of each measurement to do.
struct Plan {
    quick: bool,
    /// The sections to run, all unless `--only` named some.
    sections: Vec<Section>,
    startup_rounds: usize,
    scale_rounds: usize,
    status_rounds: usize,
    ps_calls: usize,
    busy_duration: Duration,
    idle_duration: Duration,
    freshness_rounds: usize,
    growth_replicas: u64,
    health_replicas: u64,
    /// Containers killed behind the connector's back, each timed from its
    /// docker events to the stream and to a blocked status request.
    watch_kills: usize,
    /// Event streams held open while the connector's memory and status
    /// latency are measured.
    watch_streams: usize,
    /// Rounds of the store section, and the creates and scales of each.
    store_rounds: usize,
    store_writes: usize,
}

impl Plan {
    fn from_args() -> Plan {
        let mut quick = false;
        let mut sections = Section::ALL.to_vec();
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--quick" => quick = true,
                "--only" => {
                    let names = args.next().unwrap_or_default();
                    sections = names
                        .split(',')
                        .map(|name| {
                            Section::parse(name.trim()).unwrap_or_else(|| {
                                panic!(
                                    "--only: no section {name:?}; the sections are {:?}",
                                    Section::ALL
                                )
                            })
                        })
                        .collect();
                    // Freshness removes containers of the status service.
                    if sections.contains(&Section::Freshness)
                        && !sections.contains(&Section::Status)
                    {
                        sections.push(Section::Status);
                    }
                }
                // cargo passes it to every bench that has no libtest harness.
                "--bench" => {}
                other => eprintln!("performance: ignoring argument {other:?}"),
            }
        }
        if quick {
            Plan {
                quick,
                sections,
                startup_rounds: 2,
                scale_rounds: 2,
                status_rounds: 1,
                ps_calls: 5,
                busy_duration: Duration::from_secs(1),
                idle_duration: Duration::from_secs(1),
                freshness_rounds: 3,
                growth_replicas: 2,
                health_replicas: 4,
                watch_kills: 5,
                watch_streams: 100,
                store_rounds: 2,
                store_writes: 10,
            }
        } else {
            Plan {
                quick,
                sections,
                startup_rounds: 5,
                scale_rounds: 5,
                status_rounds: 3,
                ps_calls: 20,
                busy_duration: Duration::from_secs(3),
                idle_duration: Duration::from_secs(2),
                freshness_rounds: 10,
                growth_replicas: 10,
                health_replicas: 20,
                watch_kills: 30,
                watch_streams: 1000,
                store_rounds: 5,
                store_writes: 30,
            }
        }
    }
}

impl Plan {
    fn runs(&self, section: Section) -> bool {
        self.sections.contains(&section)
    }
}

/// Prints a progress line to stderr, stamped with the time since the bench
/// started, so that someone watching a five-minute run sees it is alive.
fn progress(message: std::fmt::Arguments<'_>) {
    static START: OnceLock<Instant> = OnceLock::new();
    let since_start = START.get_or_init(Instant::now).elapsed();
    eprintln!("[{:>6.1} s] {message}", since_start.as_secs_f64());
}

/// Runs `work` on every item, at most `workers` at a time, each worker
/// taking the next item off a shared counter; a panic in one is re-raised.
fn for_each_in_parallel<T: Sync>(items: &[T], workers: usize, work: impl Fn(&T) + Sync) {
    let next = AtomicUsize::new(0);
    thread::scope(|scope| {
        for _ in 0..workers.min(items.len()) {
            scope.spawn(|| {
                while let Some(item) = items.get(next.fetch_add(1, Ordering::Relaxed)) {
                    work(item);
                }
            });
        }
    });
}
