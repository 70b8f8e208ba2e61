//! How fast this host's engine starts and removes containers, measured with
//! the raw docker CLI before the storm, so that the convergence bound can
//! allow for the engine's own work (see `invariants::check_convergence`).
//!
//! After an engine outage, the writes accepted meanwhile leave a backlog:
//! on the 2-core machine the soak was written on, a dozen services to roll
//! at once needed 40 `docker run` and as many removals, 4-5 s of the
//! engine's time however quickly the connector asked. The bound is 5 s for
//! the connector plus what the raw CLI needs for the same starts and
//! removals at the connector's parallelism: a ratio against the CLI
//! measured in the same run, as the benchmark reports, rather than a figure
//! that holds on a fast host and fails on a slow one.

use std::time::{Duration, Instant};

use crate::support::docker::{DEFAULT_COMMAND, TEST_IMAGE};

/// Containers started and removed to measure the pace.
const SAMPLE: usize = 16;
/// `docker run` in flight at once: the connector's `scale_concurrency`.
const PARALLEL: usize = 8;

/// The engine's time per container, at the connector's parallelism.
#[derive(Clone, Copy, Debug)]
pub struct EnginePace {
    pub per_start: Duration,
    pub per_removal: Duration,
}

impl EnginePace {
    /// Starts [`SAMPLE`] containers of the test image with its default
    /// command, [`PARALLEL`] at a time, labelled with `instance` (not the
    /// soak's own, so they are never taken for the connector's), then
    /// removes them as the connector removes a running container: one
    /// `docker stop`, then one `docker rm`.
    pub async fn measure(instance: &str) -> EnginePace {
        let label = format!("docker-connector.instance={instance}");
        let started = Instant::now();
        let mut ids = Vec::new();
        for round in 0..SAMPLE.div_ceil(PARALLEL) {
            let runs = (0..PARALLEL.min(SAMPLE - round * PARALLEL)).map(|_| {
                let mut args = vec!["run", "-d", "--label", &label, TEST_IMAGE];
                args.extend(DEFAULT_COMMAND);
                docker(args)
            });
            ids.extend(futures::future::join_all(runs).await);
        }
        let per_start = started.elapsed() / SAMPLE as u32;
        let started = Instant::now();
        for verb in ["stop", "rm"] {
            let mut args = vec![verb];
            args.extend(ids.iter().map(String::as_str));
            docker(args).await;
        }
        let per_removal = started.elapsed() / SAMPLE as u32;
        EnginePace {
            per_start,
            per_removal,
        }
    }

    /// The engine's time for `starts` containers started and `removals`
    /// removed.
    pub fn allowance(&self, starts: u32, removals: u32) -> Duration {
        self.per_start * starts + self.per_removal * removals
    }

    pub fn describe(&self) -> String {
        format!(
            "{:.0} ms a start and {:.0} ms a removal ({SAMPLE} containers, {PARALLEL} starts in \
             flight; one docker stop and one docker rm)",
            self.per_start.as_secs_f64() * 1000.0,
            self.per_removal.as_secs_f64() * 1000.0
        )
    }
}

/// Runs the docker CLI; panics unless it succeeds. Returns its stdout,
/// trimmed.
async fn docker(args: Vec<&str>) -> String {
    let out = tokio::process::Command::new("docker")
        .args(&args)
        .output()
        .await
        .expect("docker runs");
    assert!(
        out.status.success(),
        "docker {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}
