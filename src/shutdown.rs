//! A clean stop on SIGTERM: requests in flight finish and answer, nothing
//! else is stopped (containers belong to the engine, not to this process).
//!
//! Rocket stops accepting connections at the signal, and lets connections
//! run for `shutdown.grace` seconds. But if any connection is still open at
//! the moment its accept loop ends, it waits out the whole grace, even when
//! the request finishes a moment later. This fairing waits for exactly the
//! requests in flight instead, so a stop takes as long as they do.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use rocket::fairing::{Fairing, Info, Kind};
use rocket::{Data, Orbit, Request, Response, Rocket};
use tokio::sync::Notify;

/// How long, after the last answer, connections get to be written and
/// closed before Rocket checks that none is left.
const SETTLE: Duration = Duration::from_millis(100);

/// Counts requests between arrival and answer, and waits for none at
/// shutdown.
#[derive(Default)]
pub struct DrainOnShutdown {
    in_flight: AtomicUsize,
    idle: Notify,
}

/// Marks a request that was counted. Rocket runs both request and response
/// fairings or neither, but a response uncounted without its request would
/// wrap the count and hold every later shutdown for the whole grace, so the
/// response side checks.
struct Counted(bool);

#[rocket::async_trait]
impl Fairing for DrainOnShutdown {
    fn info(&self) -> Info {
        Info {
            name: "drain requests on shutdown",
            kind: Kind::Request | Kind::Response | Kind::Shutdown,
        }
    }

    async fn on_request(&self, request: &mut Request<'_>, _: &mut Data<'_>) {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        request.local_cache(|| Counted(true));
    }

    async fn on_response<'r>(&self, request: &'r Request<'_>, _: &mut Response<'r>) {
        if request.local_cache(|| Counted(false)).0
            && self.in_flight.fetch_sub(1, Ordering::SeqCst) == 1
        {
            self.idle.notify_waiters();
        }
    }

    async fn on_shutdown(&self, rocket: &Rocket<Orbit>) {
        let grace = Duration::from_secs(u64::from(rocket.config().shutdown.grace));
        let pending = self.in_flight.load(Ordering::SeqCst);
        log::info!("stopping: {pending} requests in flight; containers keep running");
        let drained = tokio::time::timeout(grace, async {
            loop {
                let idle = self.idle.notified();
                if self.in_flight.load(Ordering::SeqCst) == 0 {
                    return;
                }
                idle.await;
            }
        })
        .await;
        if drained.is_err() {
            log::warn!(
                "stopping: {} requests still in flight after the {} s grace are cut off",
                self.in_flight.load(Ordering::SeqCst),
                grace.as_secs()
            );
        }
        tokio::time::sleep(SETTLE).await;
    }
}
