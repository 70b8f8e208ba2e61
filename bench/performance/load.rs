//! Status load: keep-alive connections asking status back to back for a
//! while, every answer checked, and the latencies and errors one round saw.
//! The status and cost-growth measurements both drive it.

use std::io;
use std::sync::Barrier;
use std::thread;
use std::time::{Duration, Instant};

use crate::http::{request_bytes, Endpoint, HttpAnswer, HttpConnection};
use crate::report::{format_rate, format_seconds, percentile};

/// A status request slower than this counts as an error rather than a latency.
const STATUS_TIMEOUT: Duration = Duration::from_secs(60);
/// One status path to ask and the count it must answer.
pub struct StatusTarget {
    pub path: String,
    pub request: Vec<u8>,
    pub expected: u64,
}

impl StatusTarget {
    pub fn new(port: u16, service: &str, expected: u64) -> StatusTarget {
        let path = format!("/service/{service}/status");
        let request = request_bytes(port, "GET", &path, None);
        StatusTarget {
            path,
            request,
            expected,
        }
    }
}

/// What one round of load saw. Latencies are in seconds; NaN when nothing
/// was answered, so that such a round can never pass a target.
pub struct LoadRound {
    pub p50: f64,
    pub p99: f64,
    pub throughput: f64,
    pub answered: usize,
    pub errors: usize,
    pub mismatches: usize,
    pub first_problem: Option<String>,
}

#[derive(Default)]
struct ConnectionOutcome {
    latencies: Vec<Duration>,
    errors: usize,
    mismatches: usize,
    first_problem: Option<String>,
}

impl ConnectionOutcome {
    fn note_problem(&mut self, problem: String) {
        self.first_problem.get_or_insert(problem);
    }
}

/// `connections` keep-alive connections to `endpoint` asking the `targets`
/// round-robin, back to back, for `duration`; every answer is checked.
pub fn hammer(
    endpoint: &Endpoint,
    targets: &[StatusTarget],
    connections: usize,
    duration: Duration,
) -> LoadRound {
    let start_line = Barrier::new(connections + 1);
    let (outcomes, elapsed) = thread::scope(|scope| {
        let workers: Vec<_> = (0..connections)
            .map(|offset| {
                let start_line = &start_line;
                scope.spawn(move || {
                    drive_connection(endpoint, targets, offset, start_line, duration)
                })
            })
            .collect();
        start_line.wait();
        let started = Instant::now();
        let outcomes: Vec<ConnectionOutcome> = workers
            .into_iter()
            .map(|worker| worker.join().expect("a load thread panicked"))
            .collect();
        (outcomes, started.elapsed())
    });
    summarize_load(outcomes, elapsed)
}

fn drive_connection(
    endpoint: &Endpoint,
    targets: &[StatusTarget],
    offset: usize,
    start_line: &Barrier,
    duration: Duration,
) -> ConnectionOutcome {
    // Connected (TLS handshake done) before the start, so the load measures
    // requests, not handshakes.
    let mut connection = HttpConnection::open(endpoint, STATUS_TIMEOUT).ok();
    start_line.wait();
    let deadline = Instant::now() + duration;
    let mut outcome = ConnectionOutcome::default();
    let mut next = offset % targets.len();
    while Instant::now() < deadline {
        let target = &targets[next];
        next = (next + 1) % targets.len();
        let sent = Instant::now();
        let answer = exchange_on(&mut connection, endpoint, &target.request);
        let latency = sent.elapsed();
        match answer {
            Ok(answer) => {
                outcome.latencies.push(latency);
                check_status_answer(&mut outcome, target, &answer);
            }
            Err(e) => {
                outcome.errors += 1;
                outcome.note_problem(format!("GET {}: {e}", target.path));
                // Do not spin on a connector that refuses connections.
                thread::sleep(Duration::from_millis(10));
            }
        }
    }
    outcome
}

/// Sends on the kept connection, opening a new one if the last failed.
pub fn exchange_on(
    connection: &mut Option<HttpConnection>,
    endpoint: &Endpoint,
    request: &[u8],
) -> io::Result<HttpAnswer> {
    let open = match connection {
        Some(open) => open,
        None => connection.insert(HttpConnection::open(endpoint, STATUS_TIMEOUT)?),
    };
    let answer = open.exchange(request);
    if answer.is_err() {
        *connection = None;
    }
    answer
}

fn check_status_answer(
    outcome: &mut ConnectionOutcome,
    target: &StatusTarget,
    answer: &HttpAnswer,
) {
    if answer.status != 200 {
        outcome.errors += 1;
        outcome.note_problem(format!("GET {} answered {}", target.path, answer.text()));
    } else if answer.running_resources() != Some(target.expected) {
        outcome.mismatches += 1;
        outcome.note_problem(format!(
            "GET {} answered {} where {} run",
            target.path,
            answer.text(),
            target.expected
        ));
    }
}

fn summarize_load(outcomes: Vec<ConnectionOutcome>, elapsed: Duration) -> LoadRound {
    let mut latencies = Vec::new();
    let (mut errors, mut mismatches, mut first_problem) = (0, 0, None);
    for outcome in outcomes {
        latencies.extend(outcome.latencies);
        errors += outcome.errors;
        mismatches += outcome.mismatches;
        first_problem = first_problem.or(outcome.first_problem);
    }
    let mut seconds: Vec<f64> = latencies.iter().map(Duration::as_secs_f64).collect();
    seconds.sort_by(f64::total_cmp);
    LoadRound {
        p50: percentile(&seconds, 0.50),
        p99: percentile(&seconds, 0.99),
        throughput: seconds.len() as f64 / elapsed.as_secs_f64(),
        answered: seconds.len(),
        errors,
        mismatches,
        first_problem,
    }
}

/// One progress line for a round of load.
pub fn describe_load(label: &str, round: &LoadRound) -> String {
    format!(
        "{label}: {}, p50 {}, p99 {}, {} answers, {} errors, {} mismatches",
        format_rate(round.throughput),
        format_seconds(round.p50),
        format_seconds(round.p99),
        round.answered,
        round.errors,
        round.mismatches
    )
}
