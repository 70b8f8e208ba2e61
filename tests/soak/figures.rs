//! What the soak counts and measures, printed at the end and written to
//! `target/soak/figures.txt`.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use crate::engine_pace::EnginePace;

/// A process's resources as `/proc` shows them.
#[derive(Clone, Copy, Debug, Default)]
pub struct Resources {
    pub rss_kib: u64,
    pub fds: u64,
    pub threads: u64,
}

impl Resources {
    /// Process `pid`'s VmRSS, open descriptors and threads.
    pub fn of(pid: u32) -> Option<Resources> {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let field = |name: &str| {
            status
                .lines()
                .find_map(|line| line.strip_prefix(name))
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|value| value.parse::<u64>().ok())
        };
        let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count() as u64;
        Some(Resources {
            rss_kib: field("VmRSS:")?,
            fds,
            threads: field("Threads:")?,
        })
    }

    /// Each thread of `pid` as `name (kernel wait, user+system ticks)`, for
    /// a message about threads that stayed.
    pub fn threads_of(pid: u32) -> String {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
            return String::new();
        };
        let mut out: Vec<String> = tasks
            .map_while(Result::ok)
            .map(|task| {
                let path = task.path();
                let read = |file: &str| {
                    std::fs::read_to_string(path.join(file))
                        .unwrap_or_default()
                        .trim()
                        .to_owned()
                };
                let stat = read("stat");
                let ticks: u64 = stat
                    .rsplit_once(')')
                    .map(|(_, rest)| {
                        rest.split_whitespace()
                            .skip(11)
                            .take(2)
                            .filter_map(|t| t.parse::<u64>().ok())
                            .sum()
                    })
                    .unwrap_or_default();
                format!("{} ({}, {ticks})", read("comm"), read("wchan"))
            })
            .collect();
        out.sort();
        out.join(", ")
    }

    pub fn describe(&self) -> String {
        format!(
            "RSS {} KiB, {} fds, {} threads",
            self.rss_kib, self.fds, self.threads
        )
    }
}

#[derive(Default)]
struct Counts {
    /// (operation, status or outcome) -> how many.
    operations: BTreeMap<(String, String), u64>,
    faults: BTreeMap<String, u64>,
    writes_in_doubt: u64,
    checkpoints: u64,
    /// Each check's time, and its bound (5 s and the engine's allowance).
    convergence: Vec<(Duration, Duration)>,
    pace: Option<EnginePace>,
    warm: Option<Resources>,
    end: Option<Resources>,
    connector_starts: u64,
    /// Why the connector went back to an earlier definition by itself.
    rollbacks: BTreeMap<String, u64>,
    /// Writes sent and answered while the data file's filesystem was full:
    /// refused naming the cause, or landed (in space the connector's own
    /// failed fold had just freed).
    full_disk_refused: u64,
    full_disk_landed: u64,
}

/// The soak's figures, shared by its tasks.
#[derive(Default)]
pub struct Figures(Mutex<Counts>);

impl Figures {
    pub fn operation(&self, kind: &str, outcome: &str) {
        *self
            .0
            .lock()
            .unwrap()
            .operations
            .entry((kind.to_owned(), outcome.to_owned()))
            .or_default() += 1;
    }

    pub fn fault(&self, kind: &str) {
        *self
            .0
            .lock()
            .unwrap()
            .faults
            .entry(kind.to_owned())
            .or_default() += 1;
    }

    pub fn write_in_doubt(&self) {
        self.0.lock().unwrap().writes_in_doubt += 1;
    }

    pub fn convergence(&self, took: Duration, bound: Duration) {
        let mut counts = self.0.lock().unwrap();
        counts.checkpoints += 1;
        counts.convergence.push((took, bound));
    }

    pub fn set_pace(&self, pace: EnginePace) {
        self.0.lock().unwrap().pace = Some(pace);
    }

    /// The engine's pace, measured before the storm.
    pub fn pace(&self) -> Option<EnginePace> {
        self.0.lock().unwrap().pace
    }

    pub fn rollback(&self, reason: &str) {
        // The reason without container ids, so alike ones add up.
        let reason: String = reason
            .split_whitespace()
            .filter(|word| !(word.len() >= 12 && word.chars().all(|c| c.is_ascii_hexdigit())))
            .collect::<Vec<_>>()
            .join(" ");
        // Docker's messages name the proxy's socket and URLs: the start says
        // enough.
        let reason: String = reason
            .split(['"', '('])
            .next()
            .unwrap_or_default()
            .trim()
            .to_owned();
        *self.0.lock().unwrap().rollbacks.entry(reason).or_default() += 1;
    }

    pub fn full_disk_write(&self, refused: bool) {
        let mut counts = self.0.lock().unwrap();
        if refused {
            counts.full_disk_refused += 1;
        } else {
            counts.full_disk_landed += 1;
        }
    }

    pub fn connector_started(&self) {
        self.0.lock().unwrap().connector_starts += 1;
    }

    pub fn warm(&self, resources: Resources) {
        self.0.lock().unwrap().warm = Some(resources);
    }

    pub fn warm_resources(&self) -> Option<Resources> {
        self.0.lock().unwrap().warm
    }

    pub fn end(&self, resources: Resources) {
        self.0.lock().unwrap().end = Some(resources);
    }

    /// The figures as text, one `label: value` line each.
    pub fn report(&self, seconds: u64, seed: u64, quiet: Duration, failures: usize) -> String {
        let counts = self.0.lock().unwrap();
        let mut out = String::new();
        out.push_str(&format!(
            "soak: {seconds} s of storm, seed {seed} (SOAK_SEED={seed} replays the choices)\n"
        ));
        let total: u64 = counts.operations.values().sum();
        out.push_str(&format!("operations: {total}\n"));
        for ((kind, outcome), n) in &counts.operations {
            out.push_str(&format!("  {kind} {outcome}: {n}\n"));
        }
        let faults: u64 = counts.faults.values().sum();
        out.push_str(&format!("faults: {faults}\n"));
        for (kind, n) in &counts.faults {
            out.push_str(&format!("  {kind}: {n}\n"));
        }
        out.push_str(&format!("connector starts: {}\n", counts.connector_starts));
        out.push_str(&format!(
            "writes in doubt (in flight at a kill or fault, accepted either way): {}\n",
            counts.writes_in_doubt
        ));
        out.push_str(&format!(
            "writes on the full disk: {} refused naming the cause, {} landed\n",
            counts.full_disk_refused, counts.full_disk_landed
        ));
        let rollbacks: u64 = counts.rollbacks.values().sum();
        out.push_str(&format!(
            "definitions the connector went back from by itself: {rollbacks}\n"
        ));
        for (reason, n) in &counts.rollbacks {
            out.push_str(&format!("  {n} x {reason}\n"));
        }
        if let Some(pace) = counts.pace {
            out.push_str(&format!("the engine's pace: {}\n", pace.describe()));
        }
        let (worst, its_bound) = counts.convergence.iter().max().copied().unwrap_or_default();
        let closest = counts
            .convergence
            .iter()
            .map(|(took, bound)| took.as_secs_f64() / bound.as_secs_f64())
            .fold(0.0, f64::max);
        out.push_str(&format!(
            "convergence checks: {}, worst {:.2} s (its bound {:.2} s: 5 s and the engine's \
             allowance), closest to its bound {:.0}%\n",
            counts.checkpoints,
            worst.as_secs_f64(),
            its_bound.as_secs_f64(),
            closest * 100.0
        ));
        let describe = |r: &Option<Resources>| r.map_or("not measured".into(), |r| r.describe());
        out.push_str(&format!(
            "resources after warm-up (halfway through the storm, after {} s without requests): {}\n",
            quiet.as_secs(),
            describe(&counts.warm)
        ));
        out.push_str(&format!(
            "resources at the end (after {} s without requests): {}\n",
            quiet.as_secs(),
            describe(&counts.end)
        ));
        out.push_str(&format!("invariant failures: {failures}\n"));
        out
    }

    /// Writes `report` to `target/soak/figures.txt`.
    pub fn write(report: &str) {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/soak");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("figures.txt"), report).unwrap();
    }
}
