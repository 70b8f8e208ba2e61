//! The soak (issue 20): `cargo test --test soak -- SECONDS` (what
//! `scripts/soak SECONDS` runs). For SECONDS, 8 clients create, replace,
//! scale and delete services at random while faults strike at random
//! (containers killed, stopped, paused and removed behind the connector's
//! back; the connector SIGKILLed and restarted; the engine cut off or hung
//! at a socket proxy; the data file's filesystem full) and foreign
//! containers share the image. The invariants (see `invariants`) are
//! checked as it goes, at a checkpoint every so often (every client and
//! fault paused) and at the end. Prints its figures and writes them to
//! `target/soak/figures.txt`; exits 0 only if no invariant broke.
//!
//! `SOAK_SEED=<seed>` replays a run's random choices (not its timing).

#[allow(dead_code, unused_imports, unused_macros)] // shared with tests/api
#[path = "../support/mod.rs"]
mod support;

mod clients;
mod connector;
mod engine_pace;
mod faults;
mod figures;
mod invariants;
mod model;
mod proxy;
mod storm;

use std::path::Path;
use std::process::{Command, ExitCode};
use std::sync::Arc;
use std::time::{Duration, Instant};

use connector::Connector;
use engine_pace::EnginePace;
use figures::{Figures, Resources};
use invariants::{
    check_convergence, check_orphans, check_resources, check_store, resolve, Foreign, Hashes,
};
use model::Models;
use proxy::EngineProxy;
use storm::Storm;
use support::docker::{
    ensure_test_image, unique_instance, ForeignContainer, DEFAULT_COMMAND, TEST_IMAGE,
};
use support::rng::Rng;

/// Clients run this long before the first measurement, without faults.
const WARM_UP: Duration = Duration::from_secs(10);

/// How long nothing is asked of the connector before its resources are
/// measured: tokio's blocking pool lets idle threads go after 10 s.
const QUIET: Duration = Duration::from_secs(12);

/// The tmpfs the data file lives on: room for the padded definitions'
/// snapshot, journal and a fold's new snapshot, filled up on purpose.
const TMPFS_SIZE: &str = "16m";

fn main() -> ExitCode {
    let seconds: u64 = std::env::args()
        .skip(1)
        .find_map(|arg| arg.parse().ok())
        .unwrap_or(120);
    let (mut seed_rng, seed) = Rng::from_env_or_clock("SOAK_SEED");
    eprintln!("soak: {seconds} s, seed {seed}");
    ensure_test_image();

    let root = tempfile::tempdir().unwrap();
    let instance = unique_instance();
    let data_dir = root.path().join("data");
    std::fs::create_dir(&data_dir).unwrap();
    let cleanup = Cleanup {
        instance: instance.clone(),
        mount: Some(data_dir.clone()),
    };
    mount_tmpfs(&data_dir);

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap();
    let (report, failed) = runtime.block_on(soak(
        seconds,
        seed,
        &mut seed_rng,
        root.path(),
        &data_dir,
        &instance,
    ));
    runtime.shutdown_timeout(Duration::from_secs(5));
    drop(cleanup);
    println!("{report}");
    Figures::write(&report);
    if failed {
        eprintln!(
            "soak: FAILED (figures in target/soak/figures.txt, connector logs in target/soak/)"
        );
        ExitCode::FAILURE
    } else {
        eprintln!("soak: passed");
        ExitCode::SUCCESS
    }
}

async fn soak(
    seconds: u64,
    seed: u64,
    seed_rng: &mut Rng,
    root: &Path,
    data_dir: &Path,
    instance: &str,
) -> (String, bool) {
    // Foreign containers on the same image, running throughout: one with
    // no labels, one with the connector's service label but another
    // instance's.
    let mut command = vec![TEST_IMAGE];
    command.extend(DEFAULT_COMMAND);
    let plain = ForeignContainer::run(&command);
    let other_instance = format!("{instance}-other");
    let mut labelled_args = vec!["--label", "docker-connector.service=x", "--label"];
    let instance_label = format!("docker-connector.instance={other_instance}");
    labelled_args.push(&instance_label);
    labelled_args.extend(&command);
    let labelled = ForeignContainer::run(&labelled_args);
    let foreign = [
        Foreign::watch(&plain.0, "a foreign container without labels"),
        Foreign::watch(&labelled.0, "a foreign container of another instance"),
    ];

    let proxy = EngineProxy::start(&root.join("docker.sock"));
    let data_file = data_dir.join("services.json");
    let logs = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/soak");
    let _ = std::fs::remove_dir_all(&logs);
    let settings = connector::settings(&proxy.docker_host(), &data_file);
    let connector = Connector::start(root, instance, settings, &logs)
        .unwrap_or_else(|log| panic!("the connector did not start:\n{log}"));
    let doc = support::openapi::document();
    let storm = Arc::new(Storm::new(
        connector,
        proxy,
        Models::new(clients::CLIENTS, clients::SERVICES_PER_CLIENT),
        doc,
        instance.to_owned(),
        data_dir.to_owned(),
        data_file.clone(),
    ));
    let pace = EnginePace::measure(&pace_instance(instance)).await;
    eprintln!("soak: the engine's pace: {}", pace.describe());
    storm.figures.set_pace(pace);
    storm.figures.connector_started();
    let hashes = Hashes::default();

    let prefill: Vec<_> = (0..clients::CLIENTS)
        .map(|index| {
            tokio::spawn(clients::prefill(
                storm.clone(),
                index,
                Rng::new(seed_rng.next()),
            ))
        })
        .collect();
    for task in prefill {
        task.await.expect("the prefill runs");
    }
    eprintln!("soak: services created and their histories filled");

    let mut tasks = Vec::new();
    for index in 0..clients::CLIENTS {
        let rng = Rng::new(seed_rng.next());
        tasks.push(tokio::spawn(clients::run(storm.clone(), index, rng)));
    }

    // Warm-up: clients only, then a checkpoint.
    tokio::time::sleep(WARM_UP).await;
    {
        let _all = storm.gate.write().await;
        checkpoint(&storm, &foreign, &hashes).await;
    }

    // The storm, with a checkpoint every so often. The connector is killed
    // only in its first quarter; halfway, the connector that then runs (and
    // runs to the end) is measured after a quiet spell, the resources'
    // baseline.
    eprintln!("soak: the storm begins");
    storm.allow_kills_until(Instant::now() + Duration::from_secs(seconds / 4));
    tasks.push(tokio::spawn(faults::faults(
        storm.clone(),
        Rng::new(seed_rng.next()),
    )));
    tasks.push(tokio::spawn(faults::container_faults(
        storm.clone(),
        Rng::new(seed_rng.next()),
    )));
    let every = (seconds / 4).clamp(30, 120);
    let halfway = seconds / 2;
    let mut stops: Vec<u64> = (1..)
        .map(|k| k * every)
        .take_while(|t| *t < seconds)
        .collect();
    stops.push(halfway);
    stops.push(seconds);
    stops.sort_unstable();
    stops.dedup();
    let mut stormed = 0;
    for stop in stops {
        if storm.stopping() {
            break;
        }
        tokio::time::sleep(Duration::from_secs(stop - stormed)).await;
        stormed = stop;
        if stop == seconds {
            break;
        }
        let _all = storm.gate.write().await;
        eprintln!("soak: checkpoint at {stop} s of storm");
        checkpoint(&storm, &foreign, &hashes).await;
        if stop == halfway {
            if let Some(r) = quiet_resources(&storm).await {
                eprintln!(
                    "soak: baseline (halfway, after a quiet spell): {}",
                    r.describe()
                );
                storm.figures.warm(r);
            }
        }
    }

    // The end: every client and fault stopped.
    eprintln!("soak: the storm ends");
    storm.stop();
    {
        let _all = storm.gate.write().await;
    }
    for task in tasks {
        if let Err(e) = task.await {
            storm
                .violations
                .add("soak", format!("a task of the soak failed: {e}"));
        }
    }
    checkpoint(&storm, &foreign, &hashes).await;
    for name in storm.models.names() {
        resolve(
            &storm.connector,
            &storm.doc,
            &storm.violations,
            &storm.figures,
            &storm.models,
            name,
        )
        .await;
    }
    if let Some(end) = quiet_resources(&storm).await {
        eprintln!("soak: at the end: {}", end.describe());
        storm.figures.end(end);
        if let Some(warm) = storm.figures.warm_resources() {
            check_resources(&storm.violations, warm, end);
            if end.threads > warm.threads {
                if let Some(pid) = storm.connector.pid() {
                    storm.violations.add(
                        "resources",
                        format!("the threads at the end: {}", Resources::threads_of(pid)),
                    );
                }
            }
        }
    } else {
        storm
            .violations
            .add("availability", "no connector runs at the end");
    }
    storm.connector.stop();
    check_store(&storm.violations, &storm.models, &storm.data_file);
    tokio::time::sleep(Duration::from_secs(1)).await;
    check_orphans(&storm.violations, &storm.proxy.docker_host(), None);

    let failures = storm.violations.count();
    let mut report = storm.figures.report(seconds, seed, QUIET, failures);
    if failures > 0 {
        report.push_str(&storm.violations.report());
        report.push_str(&format!(
            "last lines of the connector's log:\n{}\n",
            storm.connector.log_tail(20)
        ));
    }
    (report, failures > 0)
}

/// The live connector's resources after [`QUIET`] without requests: of
/// three samples 5 s apart, the fewest threads and descriptors (the
/// connector's own background work, such as recording a roll's outcome,
/// may have woken a blocking thread that is let go 10 s later) and the last
/// RSS.
async fn quiet_resources(storm: &Storm) -> Option<Resources> {
    tokio::time::sleep(QUIET).await;
    let mut best: Option<Resources> = None;
    for sample in 0..3 {
        if sample > 0 {
            tokio::time::sleep(Duration::from_secs(5)).await;
        }
        let now = storm.connector.pid().and_then(Resources::of)?;
        best = Some(match best {
            None => now,
            Some(before) => Resources {
                rss_kib: now.rss_kib,
                fds: before.fds.min(now.fds),
                threads: before.threads.min(now.threads),
            },
        });
    }
    best
}

/// Every client and fault paused (the caller holds the gate): convergence,
/// foreign containers, orphans.
async fn checkpoint(storm: &Storm, foreign: &[Foreign], hashes: &Hashes) {
    let (took, bound) = check_convergence(
        &storm.connector,
        &storm.doc,
        &storm.violations,
        &storm.figures,
        &storm.models,
        &storm.instance,
        hashes,
    )
    .await;
    eprintln!(
        "soak: converged in {:.2} s (bound {:.2} s)",
        took.as_secs_f64(),
        bound.as_secs_f64()
    );
    for container in foreign {
        container.check(&storm.violations);
    }
    check_orphans(
        &storm.violations,
        &storm.proxy.docker_host(),
        storm.connector.pid(),
    );
}

fn mount_tmpfs(dir: &Path) {
    let out = Command::new("mount")
        .args([
            "-t",
            "tmpfs",
            "-o",
            &format!("size={TMPFS_SIZE},mode=0700"),
            "tmpfs",
        ])
        .arg(dir)
        .output()
        .expect("mount runs");
    assert!(
        out.status.success(),
        "the soak mounts a tmpfs on {} for its full disk (run as root): {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Removes what the soak made, also when it fails: every container of its
/// instance, and the tmpfs. (The connector, the proxy and the foreign
/// containers go with their own values; the temporary directory after
/// this.)
/// The instance label of the containers that measure the engine's pace:
/// not the soak's own, so neither the connector nor the checks see them.
fn pace_instance(instance: &str) -> String {
    format!("{instance}-pace")
}

struct Cleanup {
    instance: String,
    mount: Option<std::path::PathBuf>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        // The soak's containers, and those that measured the engine's pace.
        for instance in [self.instance.clone(), pace_instance(&self.instance)] {
            let filter = format!("label=docker-connector.instance={instance}");
            let Ok(out) = Command::new("docker")
                .args(["ps", "-aq", "--filter", &filter])
                .output()
            else {
                continue;
            };
            let ids: Vec<String> = String::from_utf8_lossy(&out.stdout)
                .split_whitespace()
                .map(str::to_owned)
                .collect();
            if !ids.is_empty() {
                let _ = Command::new("docker")
                    .args(["rm", "-f"])
                    .args(&ids)
                    .output();
            }
        }
        if let Some(dir) = self.mount.take() {
            let unmounted = Command::new("umount")
                .arg(&dir)
                .status()
                .is_ok_and(|s| s.success());
            if !unmounted {
                let _ = Command::new("umount").arg("-l").arg(&dir).status();
            }
        }
    }
}
