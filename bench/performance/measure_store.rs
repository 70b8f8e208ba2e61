//! What a write costs as the store grows (issue 19): the median latency of
//! a create and of a scale while the connector holds 10 services, and while
//! it holds 2,000, in the same run.
//!
//! Two connectors run side by side, one filled with 10 services and one
//! with 2,000, and the rounds alternate between them (and which goes first),
//! so that both sizes see the same noise. Both run a stand-in docker CLI, a
//! shell script that answers at once (a `run` prints an id, `events` waits,
//! everything else prints nothing): a scale's time is then the connector's
//! own work, its two store writes (the count, then the outcome) most of it,
//! instead of the engine starting a container. Each create is deleted again
//! after the round (not timed), so the sizes stay put.
//!
//! The raw column is the floor of a durable write on the same disk: one
//! line of the size of a create's journal record appended to a file in the
//! connectors' temporary directory and synced with `fdatasync`.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde_json::{json, Value};

use crate::control::Connector;
use crate::report::median;
use crate::{for_each_in_parallel, progress, Plan};

/// The store sizes compared.
pub const SMALL_STORE: usize = 10;
pub const LARGE_STORE: usize = 2_000;
/// Clients filling the large store.
const FILL_WORKERS: usize = 4;

/// The stand-in docker CLI.
const STAND_IN_DOCKER: &str = "#!/bin/sh
case \"$1\" in
  events) exec sleep 86400 ;;
  run) od -An -tx1 -N32 /dev/urandom | tr -d ' \\n'; echo ;;
  version) echo 20.10.24 ;;
esac
";

/// The medians of every round, per store size.
pub struct StoreFigures {
    pub small: Latencies,
    pub large: Latencies,
    /// Per round: the median of the fsync'd appends.
    pub raw_append: Vec<f64>,
}

/// Per round, the median create and scale latency, in seconds.
#[derive(Default)]
pub struct Latencies {
    pub create: Vec<f64>,
    pub scale: Vec<f64>,
}

/// A connector with the stand-in docker and `services` services.
struct Sized {
    connector: Connector,
    services: usize,
    latencies: Latencies,
}

pub fn measure_store(plan: &Plan, log_dir: &Path, instance: &str) -> StoreFigures {
    let scratch = tempfile::tempdir().expect("a temporary directory");
    let docker = scratch.path().join("docker");
    std::fs::write(&docker, STAND_IN_DOCKER).expect("the stand-in docker is written");
    std::fs::set_permissions(&docker, std::fs::Permissions::from_mode(0o755))
        .expect("the stand-in docker is made executable");
    let mut sizes: Vec<Sized> = [SMALL_STORE, LARGE_STORE]
        .into_iter()
        .map(|services| {
            let mut connector = Connector::spawn_with_docker(
                &format!("{instance}-store-{services}"),
                &log_dir.join(format!("connector-store-{services}.log")),
                &docker,
            );
            connector.wait_for_first_answer();
            fill(&connector, services);
            Sized {
                connector,
                services,
                latencies: Latencies::default(),
            }
        })
        .collect();
    progress(format_args!(
        "store: {} of {} creates and {} scales on each of the stores of {SMALL_STORE} and \
         {LARGE_STORE} services",
        crate::report::rounds(plan.store_rounds),
        plan.store_writes,
        plan.store_writes
    ));
    let mut raw_append = Vec::new();
    for round in 0..plan.store_rounds {
        let order: Vec<usize> = if round % 2 == 0 {
            vec![0, 1]
        } else {
            vec![1, 0]
        };
        for index in order {
            let sized = &mut sizes[index];
            let (create, scale) = write_round(plan, &sized.connector, round);
            progress(format_args!(
                "store of {} services, round {}/{}: create p50 {:.2} ms, scale p50 {:.2} ms",
                sized.services,
                round + 1,
                plan.store_rounds,
                create * 1e3,
                scale * 1e3
            ));
            sized.latencies.create.push(create);
            sized.latencies.scale.push(scale);
        }
        raw_append.push(synced_appends(scratch.path(), plan.store_writes));
    }
    let large = sizes.pop().expect("two sizes").latencies;
    let small = sizes.pop().expect("two sizes").latencies;
    StoreFigures {
        small,
        large,
        raw_append,
    }
}

/// A service of the stand-in docker; its image is never pulled.
fn definition(name: &str) -> Value {
    json!({"name": name, "image": "bench/store:1", "command": ["serve", "--port", "8080"],
           "environment": {"MODE": "bench", "REGION": "local"}, "ports": ["8080"]})
}

fn fill(connector: &Connector, services: usize) {
    let started = Instant::now();
    let names: Vec<String> = (0..services).map(|n| format!("filler-{n}")).collect();
    for_each_in_parallel(&names, FILL_WORKERS, |name| {
        connector.create_service(&definition(name));
    });
    progress(format_args!(
        "store: {services} services created in {:.1} s",
        started.elapsed().as_secs_f64()
    ));
}

/// One round's creates and scales; their median latencies.
fn write_round(plan: &Plan, connector: &Connector, round: usize) -> (f64, f64) {
    let mut creates = Vec::new();
    let names: Vec<String> = (0..plan.store_writes)
        .map(|n| format!("timed-{round}-{n}"))
        .collect();
    for name in &names {
        let started = Instant::now();
        connector.create_service(&definition(name));
        creates.push(started.elapsed().as_secs_f64());
    }
    let mut scales = Vec::new();
    for n in 0..plan.store_writes {
        // Services of the fill, up and down again, so every scale changes
        // the count and writes.
        let name = format!("filler-{}", n % SMALL_STORE);
        let number = u64::from(round % 2 == n % 2);
        let number = if scaled_to(connector, &name) == number {
            1 - number
        } else {
            number
        };
        let started = Instant::now();
        connector.scale(&name, number);
        scales.push(started.elapsed().as_secs_f64());
    }
    for name in &names {
        connector.delete_service(name);
    }
    (median(creates), median(scales))
}

/// The desired count of `service`.
fn scaled_to(connector: &Connector, service: &str) -> u64 {
    connector.status(service)["desired_resources"]
        .as_u64()
        .unwrap_or(0)
}

/// The median of `count` appends of a create-sized line, each synced.
fn synced_appends(dir: &Path, count: usize) -> f64 {
    let path: PathBuf = dir.join("raw-journal");
    let mut file = OpenOptions::new()
        .append(true)
        .create(true)
        .open(&path)
        .expect("the raw journal opens");
    let mut line = serde_json::to_vec(&json!({"seq": 1, "revision": 1, "services": {
        "timed": {"definition": definition("timed"), "desired": 0, "history": [],
                  "revision": 1, "changes": []}}}))
    .expect("serializes");
    line.push(b'\n');
    let mut times = Vec::new();
    for _ in 0..count {
        let started = Instant::now();
        file.write_all(&line).expect("the raw append");
        file.sync_data().expect("the raw sync");
        times.push(started.elapsed().as_secs_f64());
    }
    median(times)
}
