//! One docker deadline per request: the time a request spends waiting on
//! docker, over all its calls, is bounded by `docker_timeout`.
//!
//! Without it each call had the whole deadline to itself, so a scale that
//! met a hung engine twice (a listing, then a start) answered after twice
//! the deadline. A request's calls now draw on one budget, kept in a task
//! local that the routes set up (`routes::deadline`). The budget counts
//! only time during which at least one of the request's docker calls is in
//! flight: waiting for another request's lock, writing the store, or a
//! wait the client asked for (`wait=healthy`) does not use it up, and calls
//! running side by side use it up once, not once each.
//!
//! Work that honestly takes longer than one docker answer lengthens the
//! budget by what it needs: a stop by the grace periods it waits out, a
//! scale by one deadline for each further round of parallel starts, a wait
//! for Swarm or for health by its own timeout. Outside a request (the
//! reconciler, the events stream) there is no budget and each call keeps
//! its own deadline.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use crate::error::Error;

tokio::task_local! {
    static REQUEST_BUDGET: Arc<Mutex<Budget>>;
}

/// Runs `request` with `allowed` as the docker time its calls share.
pub async fn within_budget<F: Future>(allowed: Duration, request: F) -> F::Output {
    let budget = Arc::new(Mutex::new(Budget {
        per_call: allowed,
        allowed,
        spent: Duration::ZERO,
        in_flight: 0,
        busy_since: None,
    }));
    REQUEST_BUDGET.scope(budget, request).await
}

/// Lengthens the current request's budget by `extra`; nothing outside a
/// request.
pub fn lengthen(extra: Duration) {
    let _ = REQUEST_BUDGET.try_with(|budget| {
        let mut budget = budget.lock().expect("budget poisoned");
        budget.allowed = budget.allowed.saturating_add(extra);
    });
}

/// Lengthens the current request's budget by `calls` times the deadline
/// of one call: for work that runs that many more docker calls one after
/// another (a scale's further rounds of parallel starts).
pub fn lengthen_by_calls(calls: u32) {
    let _ = REQUEST_BUDGET.try_with(|budget| {
        let mut budget = budget.lock().expect("budget poisoned");
        budget.allowed = budget.allowed.saturating_add(budget.per_call * calls);
    });
}

/// Waits for `docker_work` (a call this task does not run itself, such as
/// a listing shared with other requests) as a call of the current request:
/// for no longer than what is left of its budget.
///
/// # Errors
/// [`Error::DockerTimeout`] when the budget runs out first (or had run out
/// already); otherwise `docker_work`'s own result.
pub async fn waiting_on<T>(
    docker_work: impl Future<Output = Result<T, Error>>,
) -> Result<T, Error> {
    let Some(lease) = Lease::take()? else {
        return docker_work.await;
    };
    let seconds = lease.allowed_seconds();
    tokio::time::timeout(lease.left, docker_work)
        .await
        .unwrap_or(Err(Error::DockerTimeout { seconds }))
}

/// The time the current request's budget gives a docker call starting now,
/// if less than `own` (the call's own deadline); the lease must be held
/// for as long as the call runs.
pub(super) struct CallDeadline {
    pub limit: Duration,
    /// What an overrun reports as the deadline, in seconds.
    pub seconds: u64,
    _lease: Option<Lease>,
}

impl CallDeadline {
    /// # Errors
    /// [`Error::DockerTimeout`] when the request's budget is spent.
    pub(super) fn starting_now(own: Duration) -> Result<Self, Error> {
        let lease = Lease::take()?;
        Ok(match lease {
            Some(lease) if lease.left < own => CallDeadline {
                limit: lease.left,
                seconds: lease.allowed_seconds(),
                _lease: Some(lease),
            },
            lease => CallDeadline {
                limit: own,
                seconds: own.as_secs(),
                _lease: lease,
            },
        })
    }
}

struct Budget {
    /// The deadline of one docker call (`docker_timeout`).
    per_call: Duration,
    allowed: Duration,
    /// Docker time used by calls that have finished, counted once however
    /// many ran side by side.
    spent: Duration,
    in_flight: usize,
    /// Since when at least one call has been in flight.
    busy_since: Option<Instant>,
}

impl Budget {
    fn used(&self, now: Instant) -> Duration {
        self.spent + self.busy_since.map_or(Duration::ZERO, |since| now - since)
    }
}

/// One call's share of a request's budget, from its start to its end.
struct Lease {
    budget: Arc<Mutex<Budget>>,
    /// How long the call may run: the budget left when it started (the
    /// budget is used up at one second a second while any call runs).
    left: Duration,
}

impl Lease {
    /// `None` outside a request.
    fn take() -> Result<Option<Lease>, Error> {
        let Ok(budget) = REQUEST_BUDGET.try_with(Arc::clone) else {
            return Ok(None);
        };
        let now = Instant::now();
        let left = {
            let mut state = budget.lock().expect("budget poisoned");
            let left = state.allowed.saturating_sub(state.used(now));
            if left.is_zero() {
                return Err(Error::DockerTimeout {
                    seconds: state.allowed.as_secs(),
                });
            }
            state.in_flight += 1;
            state.busy_since.get_or_insert(now);
            left
        };
        Ok(Some(Lease { budget, left }))
    }

    fn allowed_seconds(&self) -> u64 {
        self.budget
            .lock()
            .expect("budget poisoned")
            .allowed
            .as_secs()
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let now = Instant::now();
        let mut state = self.budget.lock().expect("budget poisoned");
        state.in_flight -= 1;
        if state.in_flight == 0 {
            if let Some(since) = state.busy_since.take() {
                state.spent += now - since;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    #[tokio::test(start_paused = true)]
    async fn calls_one_after_another_share_one_budget() {
        within_budget(10 * SECOND, async {
            let first = CallDeadline::starting_now(30 * SECOND).unwrap();
            assert_eq!(first.limit, 10 * SECOND);
            tokio::time::sleep(7 * SECOND).await;
            drop(first);
            let second = CallDeadline::starting_now(30 * SECOND).unwrap();
            assert_eq!(second.limit, 3 * SECOND);
            assert_eq!(second.seconds, 10);
            tokio::time::sleep(3 * SECOND).await;
            drop(second);
            assert!(matches!(
                CallDeadline::starting_now(30 * SECOND),
                Err(Error::DockerTimeout { seconds: 10 })
            ));
        })
        .await;
    }

    #[tokio::test(start_paused = true)]
    async fn calls_side_by_side_use_the_budget_once() {
        within_budget(10 * SECOND, async {
            let a = CallDeadline::starting_now(30 * SECOND).unwrap();
            tokio::time::sleep(2 * SECOND).await;
            let b = CallDeadline::starting_now(30 * SECOND).unwrap();
            assert_eq!(b.limit, 8 * SECOND);
            tokio::time::sleep(2 * SECOND).await;
            drop(a);
            drop(b);
            // Waiting without docker uses none of it.
            tokio::time::sleep(60 * SECOND).await;
            let c = CallDeadline::starting_now(30 * SECOND).unwrap();
            assert_eq!(c.limit, 6 * SECOND);
        })
        .await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_call_keeps_its_own_deadline_when_shorter_or_outside_a_request() {
        let outside = CallDeadline::starting_now(5 * SECOND).unwrap();
        assert_eq!((outside.limit, outside.seconds), (5 * SECOND, 5));
        within_budget(10 * SECOND, async {
            let inside = CallDeadline::starting_now(5 * SECOND).unwrap();
            assert_eq!((inside.limit, inside.seconds), (5 * SECOND, 5));
        })
        .await;
    }

    #[tokio::test(start_paused = true)]
    async fn lengthening_gives_more_and_waiting_on_shared_work_is_bounded() {
        within_budget(2 * SECOND, async {
            lengthen(SECOND);
            lengthen_by_calls(1);
            let hung = waiting_on(async {
                tokio::time::sleep(60 * SECOND).await;
                Ok(())
            });
            let began = tokio::time::Instant::now();
            assert!(matches!(
                hung.await,
                Err(Error::DockerTimeout { seconds: 5 })
            ));
            assert_eq!(began.elapsed(), 5 * SECOND);
            assert!(waiting_on(async { Ok(()) }).await.is_err(), "spent");
        })
        .await;
        lengthen(SECOND); // outside a request: nothing to lengthen
    }
}
