//! The soak's faults, at random: containers of ours killed, stopped,
//! paused and removed behind the connector's back (a loop of their own,
//! overlapping the rest), and one at a time: the connector SIGKILLed and
//! started again on the same data file, the engine cut off or hung at the
//! proxy, the data file's filesystem filled up.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::invariants::{check_orphans, check_store};
use crate::proxy::Mode;
use crate::storm::Storm;
use crate::support::rng::Rng;

/// Runs `docker ARGS` on the real engine; its stdout, empty on failure (a
/// container may be gone by the time the soak acts on it).
async fn docker(args: &[&str]) -> String {
    match tokio::process::Command::new("docker")
        .args(args)
        .output()
        .await
    {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout).into_owned(),
        _ => String::new(),
    }
}

/// A random pause in `from..to` milliseconds.
fn pause(rng: &mut Rng, from: u64, to: u64) -> Duration {
    Duration::from_millis(from + rng.below(to - from))
}

/// Containers of ours, killed, stopped, paused or removed every 1-3 s.
pub async fn container_faults(storm: Arc<Storm>, mut rng: Rng) {
    let filter = format!("label=docker-connector.instance={}", storm.instance);
    while !storm.stopping() {
        tokio::time::sleep(pause(&mut rng, 1000, 3000)).await;
        let _turn = storm.gate.read().await;
        if storm.stopping() {
            break;
        }
        let listed = docker(&["ps", "-q", "--filter", &filter]).await;
        let ids: Vec<&str> = listed.split_whitespace().collect();
        if ids.is_empty() {
            continue;
        }
        let id = ids[rng.below(ids.len() as u64) as usize];
        let (kind, args): (&str, Vec<&str>) = match rng.below(4) {
            0 => ("container killed", vec!["kill", id]),
            1 => ("container stopped", vec!["stop", "-t", "1", id]),
            2 => ("container paused", vec!["pause", id]),
            _ => ("container removed", vec!["rm", "-f", id]),
        };
        docker(&args).await;
        storm.figures.fault(kind);
    }
}

/// One fault at a time, each lasting 2-6 s, 1-4 s apart: first each kind
/// once, in a random order, then at random.
pub async fn faults(storm: Arc<Storm>, mut rng: Rng) {
    let mut first_round = vec![0, 1, 2, 3];
    loop {
        tokio::time::sleep(pause(&mut rng, 1000, 4000)).await;
        let _turn = storm.gate.read().await;
        if storm.stopping() {
            break;
        }
        let hold = pause(&mut rng, 2000, 6000);
        let kills = storm.kills_allowed();
        let kind = if first_round.is_empty() {
            rng.below(if kills { 4 } else { 3 })
        } else {
            first_round.remove(rng.below(first_round.len() as u64) as usize)
        };
        match kind {
            0 => engine(&storm, Mode::Cut, hold).await,
            1 => engine(&storm, Mode::Hung, hold).await,
            2 => full_disk(&storm, hold).await,
            _ => {
                if !kill_and_restart(&storm, &mut rng).await {
                    return;
                }
            }
        }
    }
}

async fn engine(storm: &Storm, mode: Mode, hold: Duration) {
    storm.figures.fault(match mode {
        Mode::Cut => "engine cut off",
        _ => "engine hung",
    });
    storm.proxy.set(mode);
    tokio::time::sleep(hold).await;
    storm.proxy.set(Mode::Forward);
}

/// The connector SIGKILLed; with it down, its data files are read back and
/// held against the acknowledged writes; then it starts again on the same
/// port and data file, and a second later nothing of the killed one may
/// still call docker.
async fn kill_and_restart(storm: &Storm, rng: &mut Rng) -> bool {
    storm.figures.fault("connector killed");
    storm.connector.kill();
    check_store(&storm.violations, &storm.models, &storm.data_file);
    tokio::time::sleep(pause(rng, 100, 1500)).await;
    if let Err(e) = storm.connector.restart() {
        storm.violations.add("availability", e);
        storm.stop();
        return false;
    }
    storm.figures.connector_started();
    tokio::time::sleep(Duration::from_secs(1)).await;
    check_orphans(
        &storm.violations,
        &storm.proxy.docker_host(),
        storm.connector.pid(),
    );
    true
}

/// Fills the data file's filesystem for `hold`, then frees it. Space the
/// connector frees meanwhile (a fold of its journal that fails removes its
/// half-written snapshot) is taken again every 10 ms.
async fn full_disk(storm: &Storm, hold: Duration) {
    storm.figures.fault("disk full");
    let filler = fill_up(&storm.data_dir);
    storm.disk_full.store(true, Ordering::SeqCst);
    let until = Instant::now() + hold;
    while Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(10)).await;
        top_up(&filler);
    }
    storm.disk_full.store(false, Ordering::SeqCst);
    let _ = std::fs::remove_file(&filler);
}

/// Appends to `filler` until not one more byte fits.
fn top_up(filler: &Path) {
    let Ok(mut file) = std::fs::OpenOptions::new().append(true).open(filler) else {
        return;
    };
    let block = [0u8; 4096];
    while file.write_all(&block).is_ok() {}
    for _ in 0..4096 {
        if file.write_all(&[0]).is_err() {
            break;
        }
    }
}

/// Fills the filesystem holding `dir`, to its last byte, and returns the
/// file that fills it.
pub fn fill_up(dir: &Path) -> PathBuf {
    const ENOSPC: i32 = 28;
    let filler = dir.join("filler");
    let mut file = File::create(&filler).unwrap();
    let block = vec![0u8; 64 * 1024];
    loop {
        match file.write_all(&block) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(ENOSPC) => break,
            Err(e) => panic!("filling {}: {e}", dir.display()),
        }
    }
    drop(file);
    top_up(&filler);
    filler
}
