//! What the containers backend remembers of each service's progress, in
//! memory: failed attempts in a row and the backoff they set, apart for
//! fixing the count and for rolling.

use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::error::Error;

/// The wait before the reconciler tries a service again after a failed
/// attempt doubles from this ...
const RETRY_FIRST: Duration = Duration::from_secs(1);
/// ... up to this, so a service that cannot start costs the engine one
/// attempt a minute.
const RETRY_LONGEST: Duration = Duration::from_secs(60);

/// Failed attempts in a row at one kind of work, and the backoff they set.
#[derive(Debug, Default)]
pub(super) struct Attempts {
    pub(super) failures: u32,
    pub(super) last_error: Option<String>,
    /// The reconciler does not try again before then.
    pub(super) retry_at: Option<Instant>,
}

impl Attempts {
    pub(super) fn succeeded(&mut self) {
        *self = Attempts::default();
    }

    /// A failed attempt. One that met a hung or unreachable engine is tried
    /// again after the first wait, without doubling it: the service is not
    /// at fault, and once docker answers again every service should be
    /// fixed within a second, not after the minute a long outage would
    /// otherwise have built up.
    pub(super) fn failed(&mut self, error: &Error) {
        if error.is_engine_fault() {
            self.interrupted(error);
            return;
        }
        self.failed_because(error.to_string());
    }

    /// An attempt that failed for a reason that is not the service's (see
    /// [`failed`](Self::failed)): tried again after the first wait, and
    /// the failures in a row stay as they were.
    pub(super) fn interrupted(&mut self, error: &Error) {
        self.last_error = Some(error.to_string());
        self.retry_at = Some(Instant::now() + RETRY_FIRST);
    }

    /// A failure that is no docker error (a container turned unhealthy),
    /// said by `why`.
    pub(super) fn failed_because(&mut self, why: String) {
        self.failures += 1;
        self.last_error = Some(why);
        let doublings = self.failures.saturating_sub(1).min(16);
        let wait = (RETRY_FIRST * 2u32.pow(doublings)).min(RETRY_LONGEST);
        self.retry_at = Some(Instant::now() + wait);
    }

    pub(super) fn record<T>(&mut self, result: &Result<T, Error>) {
        match result {
            Ok(_) => self.succeeded(),
            Err(e) => self.failed(e),
        }
    }

    pub(super) fn waiting(&self) -> bool {
        self.retry_at.is_some_and(|at| at > Instant::now())
    }
}

/// What the reconciler knows of one service's progress, kept in memory.
/// Fixing the count, replacing unhealthy containers and rolling back off
/// separately: a failing roll must not delay replacing a container that
/// died, nor one that turned unhealthy.
#[derive(Debug, Default)]
pub(super) struct Progress {
    pub(super) count: Attempts,
    /// Replacements of unhealthy containers since every container of the
    /// service was last seen healthy: each counts as a failure, so a
    /// definition whose containers keep turning unhealthy is replaced at
    /// the crash-loop pace (1 s doubling to a minute), not in a tight loop.
    pub(super) heal: Attempts,
    pub(super) roll: Attempts,
    /// The config hash whose roll failed, and why.
    pub(super) failed_roll: Option<(String, String)>,
    /// The config hash an automatic rollback made current, and why it
    /// rolled back: status says `rolled_back` while that definition stays
    /// current, until a PUT or a rollback clears the progress. In memory
    /// only: after a restart the store alone tells what is current.
    pub(super) rolled_back: Option<(String, String)>,
    /// The problem the feed was last told of, so that it hears of each
    /// change once.
    pub(super) announced_problem: Option<String>,
}

/// A service's [`Progress`], kept beside its lock.
#[derive(Debug, Default)]
pub(super) struct Tracker(Mutex<Progress>);

impl Tracker {
    pub(super) fn get(&self) -> MutexGuard<'_, Progress> {
        self.0.lock().expect("progress poisoned")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_attempts_back_off_doubling_to_a_minute_and_a_success_resets() {
        let mut attempts = Attempts::default();
        let error = Error::DockerFailed("no".into());
        let waits: Vec<u64> = (0..9)
            .map(|_| {
                attempts.failed(&error);
                let wait = attempts.retry_at.unwrap() - Instant::now();
                // Rounded up: a little time passed since the failure.
                wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
            })
            .collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
        assert!(attempts.waiting());
        assert_eq!(attempts.last_error.as_deref(), Some("docker failed: no"));
        attempts.succeeded();
        assert!(!attempts.waiting());
        assert_eq!(attempts.failures, 0);
    }

    #[test]
    fn a_hung_or_unreachable_engine_is_tried_again_after_a_second_however_long_it_lasts() {
        let mut attempts = Attempts::default();
        for _ in 0..6 {
            attempts.failed(&Error::DockerUnavailable("cannot connect".into()));
            attempts.failed(&Error::DockerTimeout { seconds: 3 });
        }
        let wait = attempts.retry_at.unwrap() - Instant::now();
        assert!(wait <= RETRY_FIRST, "{wait:?}");
        assert_eq!(attempts.failures, 0);
        assert!(attempts.last_error.unwrap().contains("did not answer"));
    }
}
