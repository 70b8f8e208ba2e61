//! Freshness: how soon a container removed or killed behind the
//! connector's back shows in status, and whether the status right after a
//! scale says what the scale answered.

use std::time::{Duration, Instant};

use crate::control::Connector;
use crate::docker::running_ids;
use crate::http::{Endpoint, HttpConnection};
use crate::load::{exchange_on, StatusTarget};
use crate::report::format_seconds;
use crate::test_docker::docker;
use crate::{progress, Plan, STATUS_REPLICAS, STATUS_SERVICE};

/// A removal status has not shown after this long counts as never seen.
pub const FRESHNESS_GIVE_UP: Duration = Duration::from_secs(5);

/// Every removal's delay and the scale/status disagreements seen.
pub struct FreshnessFigures {
    /// Seconds from the external removal to the first status showing it;
    /// `None` where it never showed within `FRESHNESS_GIVE_UP`.
    pub delays: Vec<Option<f64>>,
    pub scale_status_mismatches: usize,
}

/// Status polls on one kept connection, reconnecting if the connector
/// closed it while idle.
struct StatusPoller {
    pub endpoint: Endpoint,
    pub target: StatusTarget,
    pub connection: Option<HttpConnection>,
}

impl StatusPoller {
    pub fn new(port: u16, service: &str) -> StatusPoller {
        StatusPoller {
            endpoint: Endpoint::plain(port),
            // The count is checked by the caller, not against the target.
            target: StatusTarget::new(port, service, 0),
            connection: None,
        }
    }

    /// The running count; panics on anything but a 200 with a count.
    fn running(&mut self) -> u64 {
        let answer = exchange_on(&mut self.connection, &self.endpoint, &self.target.request)
            .or_else(|_| exchange_on(&mut self.connection, &self.endpoint, &self.target.request))
            .unwrap_or_else(|e| panic!("GET {}: {e}", self.target.path));
        assert_eq!(
            answer.status,
            200,
            "GET {}: {}",
            self.target.path,
            answer.text()
        );
        answer
            .running_resources()
            .unwrap_or_else(|| panic!("GET {}: {}", self.target.path, answer.text()))
    }

    /// Polls back to back until status says `expected`; returns the seconds
    /// since `since`, or `None` after `FRESHNESS_GIVE_UP`.
    fn wait_for(&mut self, expected: u64, since: Instant) -> Option<f64> {
        while since.elapsed() < FRESHNESS_GIVE_UP {
            if self.running() == expected {
                return Some(since.elapsed().as_secs_f64());
            }
        }
        None
    }
}

/// Removes one container of the status service behind the connector's
/// back per round, times until status shows it, then scales back up and
/// checks the next status agrees; deletes the service at the end.
pub fn measure_freshness(plan: &Plan, connector: &Connector) -> FreshnessFigures {
    progress(format_args!(
        "freshness: {} containers of {STATUS_REPLICAS} removed behind the connector's back (docker rm -f and docker kill alternating)",
        plan.freshness_rounds
    ));
    let mut figures = FreshnessFigures {
        delays: Vec::new(),
        scale_status_mismatches: 0,
    };
    for round in 0..plan.freshness_rounds {
        let running = running_ids(connector.instance(), STATUS_SERVICE);
        assert!(
            !running.is_empty(),
            "no running container of {STATUS_SERVICE} to remove"
        );
        let victim = running[round % running.len()].as_str();
        let mut poller = StatusPoller::new(connector.port(), STATUS_SERVICE);
        let before = poller.running();
        assert_eq!(
            before, STATUS_REPLICAS,
            "status before removing a container"
        );

        let how = if round % 2 == 0 {
            ["rm", "-f"].as_slice()
        } else {
            ["kill"].as_slice()
        };
        let mut removal = how.to_vec();
        removal.push(victim);
        docker(&removal);
        let removed_at = Instant::now();
        let delay = poller.wait_for(STATUS_REPLICAS - 1, removed_at);

        let answered = connector.scale(STATUS_SERVICE, STATUS_REPLICAS);
        let status_after = poller.running();
        let agrees = status_after == answered;
        if !agrees {
            figures.scale_status_mismatches += 1;
        }
        progress(format_args!(
            "freshness round {}/{} (docker {}): status showed it after {}; scale answered {answered}, next status {status_after}{}",
            round + 1,
            plan.freshness_rounds,
            how.join(" "),
            delay.map_or_else(|| format!("never ({FRESHNESS_GIVE_UP:?})"), format_seconds),
            if agrees { "" } else { " MISMATCH" }
        ));
        figures.delays.push(delay);
    }
    connector.delete_service(STATUS_SERVICE);
    figures
}
