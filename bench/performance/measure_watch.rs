//! Watching (issue 17): how soon a docker event reaches a client of the
//! connector's event stream and a blocked status request, next to the raw
//! `docker events` CLI reading the same event in the same run; and what
//! many open streams cost the connector: its memory, and the status
//! latency under load.
//!
//! The events come from containers killed behind the connector's back
//! (`docker kill`): each kill brings a `die`, then, as the connector
//! replaces the container, a `destroy` and a `start`, the three docker
//! actions the stream reports as `container.*` events. The `die` wakes the
//! connector's reconciler, which at once runs docker CLI processes to
//! replace the container; on a small machine they compete with the
//! delivery of that same `die` for the CPUs. That is part of what the
//! connector adds, so it is measured as it comes, not avoided.

use std::collections::HashSet;
use std::io;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::json;

use crate::control::Connector;
use crate::docker::{follow_docker_events, running_ids, DockerEvent};
use crate::event_stream::{EventStream, PendingStream, StreamEvent};
use crate::http::{request_bytes, Endpoint, HttpAnswer, HttpConnection};
use crate::load::{describe_load, hammer, LoadRound, StatusTarget};
use crate::machine::read_memory;
use crate::report::{format_seconds, Spread};
use crate::test_docker::docker;
use crate::{progress, workload_service, Plan, BUSY_CONNECTIONS};

const WATCH_SERVICE: &str = "watch";
const WATCH_REPLICAS: u64 = 3;
/// docker's container actions and the stream's event for each.
const STREAM_KINDS: [(&str, &str); 3] = [
    ("start", "container.started"),
    ("die", "container.died"),
    ("destroy", "container.removed"),
];
/// The blocked status request's `wait`: far longer than a kill takes to
/// be seen, so an answer at its end means the event never woke it.
const BLOCKED_WAIT: &str = "30s";
const BLOCKED_TIMEOUT: Duration = Duration::from_secs(60);
/// The time a blocked request is given to reach the connector and be
/// parked there before the kill it waits for.
const BLOCKED_HEAD_START: Duration = Duration::from_millis(100);
/// How long a kill may take to be seen, and its container to be replaced.
const SETTLE_DEADLINE: Duration = Duration::from_secs(30);
/// After a kill has settled, the connector may still send a last event or
/// two about it (a problem cleared, say); a blocked request sent before
/// those would be answered by them rather than by the next kill.
const SETTLE_PAUSE: Duration = Duration::from_millis(200);
const STREAM_TIMEOUT: Duration = Duration::from_secs(10);
/// How long every open stream together may take to show one kill.
const DELIVERY_DEADLINE: Duration = Duration::from_secs(10);

/// One docker event's way to a reader, in seconds from the engine's own
/// time of the event (`timeNano`).
pub struct Latency {
    /// docker's action: `die`, `destroy` or `start`.
    pub action: String,
    /// To the bench's own `docker events` read of it.
    pub raw: f64,
    /// To the read of the connector's client; `None` when it never came.
    pub ours: Option<f64>,
    /// From the connector's publishing of it (its feed event's `time`) to
    /// its client's read: the connector's own part, without docker's
    /// delivery of the event to the connector.
    pub own: Option<f64>,
}

impl Latency {
    /// `read` is when the connector's client had it, `feed_event` the
    /// stream event that carried it (or woke the blocked request).
    fn of(
        event: &DockerEvent,
        read: Option<SystemTime>,
        feed_event: Option<&StreamEvent>,
    ) -> Latency {
        let since_event =
            |read_at: SystemTime| (nanos_since_epoch(read_at) - event.time_nanos) as f64 / 1e9;
        let published = feed_event.and_then(published_at);
        Latency {
            action: event.action.clone(),
            raw: since_event(event.read_at),
            ours: read.map(since_event),
            own: read.zip(published).map(|(read, published)| {
                (nanos_since_epoch(read) - nanos_since_epoch(published)) as f64 / 1e9
            }),
        }
    }

    /// What the connector adds to docker's own delivery of the same event.
    pub fn added(&self) -> Option<f64> {
        Some(self.ours? - self.raw)
    }
}

/// What many open streams cost.
pub struct StreamsFigures {
    pub asked: usize,
    pub opened: usize,
    pub rss_before_mib: f64,
    /// The larger of the RSS right after opening them and after the load.
    pub rss_open_mib: f64,
    /// Status load over [`BUSY_CONNECTIONS`] connections before the streams
    /// were opened, and while they were open.
    pub without: Vec<LoadRound>,
    pub with: Vec<LoadRound>,
    /// How many of the open streams showed a kill after the load.
    pub delivered: usize,
}

/// Every figure of the watch section.
pub struct WatchFigures {
    pub kills: usize,
    /// Per docker `start`, `die` and `destroy` of the measured kills, the
    /// read of the matching event of a stream on `?service=`.
    pub stream: Vec<Latency>,
    /// Per kill, the answer of a status request blocked on the index
    /// before it, against the docker event behind the first stream event
    /// after that index.
    pub blocked: Vec<Latency>,
    pub streams: StreamsFigures,
    pub problems: Vec<String>,
}

/// Creates the watch service, measures the event latencies over
/// `plan.watch_kills` kills, then the cost of `plan.watch_streams` open
/// streams; deletes the service at the end.
pub fn measure_watch(plan: &Plan, connector: &Connector) -> WatchFigures {
    progress(format_args!(
        "watch: {} kills of a container of {WATCH_SERVICE} ({WATCH_REPLICAS} containers) \
         behind the connector's back, then {} open event streams",
        plan.watch_kills, plan.watch_streams
    ));
    connector.create_service(&workload_service(WATCH_SERVICE, json!({})));
    connector.scale(WATCH_SERVICE, WATCH_REPLICAS);
    let mut problems = Vec::new();
    let (stream, blocked) = measure_event_latency(plan, connector, &mut problems);
    let streams = measure_open_streams(plan, connector, &mut problems);
    connector.delete_service(WATCH_SERVICE);
    WatchFigures {
        kills: plan.watch_kills,
        stream,
        blocked,
        streams,
        problems,
    }
}

/// A status request parked on an index, and what came of it.
struct BlockedAnswer {
    answered_at: SystemTime,
    answer: Result<HttpAnswer, String>,
}

/// Sends a status request that waits for a change past `index`, on a
/// connection of its own, and returns when and what it answered.
fn blocked_status(port: u16, index: u64) -> BlockedAnswer {
    let path = format!("/service/{WATCH_SERVICE}/status?index={index}&wait={BLOCKED_WAIT}");
    let request = request_bytes(port, "GET", &path, None);
    let answer = HttpConnection::open(&Endpoint::plain(port), BLOCKED_TIMEOUT)
        .and_then(|mut connection| connection.exchange(&request));
    BlockedAnswer {
        answered_at: SystemTime::now(),
        answer: answer.map_err(|e| format!("GET {path}: {e}")),
    }
}

/// The kills, each with a stream on the service and the bench's own
/// `docker events` reading its events as they come, and a status request
/// blocked on the index before it. One kill first, not counted: it shows
/// both readers are subscribed, and warms the connector's paths.
fn measure_event_latency(
    plan: &Plan,
    connector: &Connector,
    problems: &mut Vec<String>,
) -> (Vec<Latency>, Vec<Latency>) {
    let (mut docker_events, raw_events) = follow_docker_events(connector.instance());
    let raw = Recorder::start(raw_events, move || {
        let _ = docker_events.kill();
        let _ = docker_events.wait();
    });
    let path = format!("/events?service={WATCH_SERVICE}");
    let mut stream = EventStream::open(connector.port(), &path, STREAM_TIMEOUT)
        .unwrap_or_else(|e| panic!("the stream of {WATCH_SERVICE}'s events: {e}"));
    // No timeout: the stream may be quiet for long; the recorder ends it by
    // shutting the socket down.
    stream
        .set_timeout(None)
        .expect("the stream's timeout can be set");
    let socket = stream.socket().expect("a handle on the stream's socket");
    let sse = Recorder::start(std::iter::from_fn(move || stream.next_event().ok()), {
        move || {
            let _ = socket.shutdown(std::net::Shutdown::Both);
        }
    });

    let mut stream_latencies = Vec::new();
    let mut blocked_latencies = Vec::new();
    for round in 0..=plan.watch_kills {
        let warm_up = round == 0;
        let kill = kill_one(connector, &raw, &sse, round);
        if warm_up {
            progress(format_args!(
                "watch: warm-up kill seen by both readers ({} docker events, {} stream events)",
                kill.raw_events.len(),
                kill.stream_events.len()
            ));
            continue;
        }
        let stream = match_stream_events(&kill, problems);
        let blocked = match_blocked_answer(&kill, problems);
        progress(format_args!(
            "watch kill {round}/{}: stream {}; blocked status woken by {}",
            plan.watch_kills,
            stream
                .iter()
                .map(describe_latency)
                .collect::<Vec<_>>()
                .join(", "),
            blocked
                .as_ref()
                .map_or("nothing".to_owned(), describe_latency)
        ));
        stream_latencies.extend(stream);
        blocked_latencies.extend(blocked);
    }
    // The table has one verdict for all three; a slow one shows here.
    for (action, _) in STREAM_KINDS {
        let added = Spread::of(
            stream_latencies
                .iter()
                .filter(|latency| latency.action == action)
                .filter_map(Latency::added),
        );
        progress(format_args!(
            "watch: {action} → stream, added over docker events: p50 / p99 {} over {} events",
            added.text(),
            added.count
        ));
    }
    (stream_latencies, blocked_latencies)
}

/// "die 1.2 ms (docker events 0.8 ms)"
fn describe_latency(latency: &Latency) -> String {
    format!(
        "{} {} (docker events {})",
        latency.action,
        latency
            .ours
            .map_or_else(|| "never".to_owned(), format_seconds),
        format_seconds(latency.raw)
    )
}

/// One kill and everything both readers saw from just before it until
/// its container was replaced.
struct Kill {
    victim: String,
    /// The index of the status read before the blocked request.
    index_before: u64,
    killed_at: SystemTime,
    blocked: BlockedAnswer,
    raw_events: Vec<DockerEvent>,
    stream_events: Vec<StreamEvent>,
}

/// Kills one running container of the service with a status request
/// blocked on the current index, and waits until docker reports its
/// replacement started and itself removed, and the stream has shown both.
fn kill_one(
    connector: &Connector,
    raw: &Recorder<DockerEvent>,
    sse: &Recorder<StreamEvent>,
    round: usize,
) -> Kill {
    let running: HashSet<String> = running_ids(connector.instance(), WATCH_SERVICE)
        .into_iter()
        .collect();
    assert_eq!(
        running.len() as u64,
        WATCH_REPLICAS,
        "{WATCH_SERVICE} before kill {round}: running {running:?}"
    );
    let mut sorted: Vec<&String> = running.iter().collect();
    sorted.sort();
    let victim = sorted[round % sorted.len()].clone();
    let (raw_start, sse_start) = (raw.len(), sse.len());

    let index_before = connector
        .status_answer(WATCH_SERVICE)
        .connector_index
        .unwrap_or_else(|| panic!("GET /service/{WATCH_SERVICE}/status: no X-Connector-Index"));
    let port = connector.port();
    let blocked = thread::spawn(move || blocked_status(port, index_before));
    thread::sleep(BLOCKED_HEAD_START);

    let killed_at = SystemTime::now();
    docker(&["kill", &victim]);
    let deadline = Instant::now() + SETTLE_DEADLINE;
    let replaced = |events: &[DockerEvent]| {
        let removed = events
            .iter()
            .any(|e| e.action == "destroy" && e.container == victim);
        let started = events
            .iter()
            .any(|e| e.action == "start" && !running.contains(&e.container));
        removed && started
    };
    assert!(
        raw.wait_for(raw_start, deadline, replaced),
        "{WATCH_SERVICE}: within {SETTLE_DEADLINE:?} of killing {victim}, docker did not report it \
         removed and a replacement started"
    );
    // A miss here is not fatal: the matching reports each event the stream
    // never showed.
    sse.wait_for(sse_start, deadline, |events| {
        let removed = events.iter().any(|e| {
            e.kind == "container.removed" && e.container().is_some_and(|c| same(c, &victim))
        });
        let started = events.iter().any(|e| {
            e.kind == "container.started"
                && e.container()
                    .is_some_and(|c| !running.iter().any(|old| same(c, old)))
        });
        removed && started
    });
    let blocked = blocked.join().expect("the blocked status thread panicked");
    thread::sleep(SETTLE_PAUSE);
    Kill {
        victim,
        index_before,
        killed_at,
        blocked,
        raw_events: raw.since(raw_start),
        stream_events: sse.since(sse_start),
    }
}

/// Whether two container ids name the same container: the stream may give
/// them full or shortened.
fn same(a: &str, b: &str) -> bool {
    !a.is_empty() && !b.is_empty() && (a.starts_with(b) || b.starts_with(a))
}

/// The stream event docker's `action` becomes, if any.
fn stream_kind(action: &str) -> Option<&'static str> {
    STREAM_KINDS
        .iter()
        .find(|(docker_action, _)| *docker_action == action)
        .map(|(_, kind)| *kind)
}

/// For each `start`, `die` and `destroy` docker reported during the kill,
/// its latency to the stream's matching event.
fn match_stream_events(kill: &Kill, problems: &mut Vec<String>) -> Vec<Latency> {
    kill.raw_events
        .iter()
        .filter_map(|event| {
            let kind = stream_kind(&event.action)?;
            let shown = kill.stream_events.iter().find(|e| {
                e.kind == kind && e.container().is_some_and(|c| same(c, &event.container))
            });
            if shown.is_none() {
                problems.push(format!(
                    "docker's {} of {} never showed as {kind} in the stream",
                    event.action, event.container
                ));
            }
            Some(Latency::of(event, shown.map(|e| e.read_at), shown))
        })
        .collect()
}

/// The blocked answer's latency against the docker event behind the first
/// stream event past its index: the event that should have woken it.
fn match_blocked_answer(kill: &Kill, problems: &mut Vec<String>) -> Option<Latency> {
    let woke = kill
        .stream_events
        .iter()
        .find(|e| e.id.is_some_and(|id| id > kill.index_before));
    let Some(woke) = woke else {
        problems.push(format!(
            "no stream event past index {} after killing {}",
            kill.index_before, kill.victim
        ));
        return None;
    };
    let cause = kill.raw_events.iter().find(|event| {
        stream_kind(&event.action) == Some(woke.kind.as_str())
            && woke.container().is_some_and(|c| same(c, &event.container))
    });
    let Some(cause) = cause else {
        problems.push(format!(
            "the first stream event past index {} is {} {}, from no docker event of the kill",
            kill.index_before, woke.kind, woke.data
        ));
        return None;
    };
    let answered = match &kill.blocked.answer {
        Err(e) => Err(e.clone()),
        Ok(answer) if answer.status != 200 => Err(format!("answered {}", answer.text())),
        Ok(answer) if answer.connector_index <= Some(kill.index_before) => Err(format!(
            "answered index {:?} at the end of its wait, not past {}",
            answer.connector_index, kill.index_before
        )),
        Ok(_) if kill.blocked.answered_at < kill.killed_at => {
            Err("answered before the kill".to_owned())
        }
        Ok(_) => Ok(kill.blocked.answered_at),
    };
    if let Err(e) = &answered {
        problems.push(format!(
            "the status blocked on index {} over killing {}: {e}",
            kill.index_before, kill.victim
        ));
    }
    Some(Latency::of(cause, answered.ok(), Some(woke)))
}

/// When the connector published a feed event: its data's `time`, taken by
/// the connector's clock, which is this host's.
fn published_at(event: &StreamEvent) -> Option<SystemTime> {
    let time = event.data.get("time")?.as_str()?;
    humantime::parse_rfc3339(time).ok()
}

fn nanos_since_epoch(time: SystemTime) -> i128 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_nanos() as i128)
}

/// Status load without streams, then `plan.watch_streams` streams opened
/// on `/events`, each on its own connection, the connector's memory with
/// them, the same load again, and one kill that every stream must show.
/// Without first, never after: a stream the bench closes stays in the
/// connector until it next writes to it (an event, or the keep-alive every
/// 15 s), so a load after closing them would not be without them.
fn measure_open_streams(
    plan: &Plan,
    connector: &Connector,
    problems: &mut Vec<String>,
) -> StreamsFigures {
    raise_open_files_limit(plan.watch_streams);
    let port = connector.port();
    let targets = [StatusTarget::new(port, WATCH_SERVICE, WATCH_REPLICAS)];
    let load = |label: &str| -> Vec<LoadRound> {
        (0..plan.status_rounds)
            .map(|round| {
                let load = hammer(
                    connector.endpoint(),
                    &targets,
                    BUSY_CONNECTIONS,
                    plan.busy_duration,
                );
                progress(format_args!(
                    "watch, {label}, round {}/{}: {}",
                    round + 1,
                    plan.status_rounds,
                    describe_load("64 connections", &load)
                ));
                load
            })
            .collect()
    };
    let without = load("no streams open");
    let rss_before_mib = read_memory(connector.pid()).rss_mib;

    // Every request sent before any answer is awaited, as clients arriving
    // together would.
    let opened_at = Instant::now();
    let pending: Vec<io::Result<PendingStream>> = (0..plan.watch_streams)
        .map(|_| PendingStream::request(port, "/events", STREAM_TIMEOUT))
        .collect();
    let sent_in = opened_at.elapsed();
    let mut streams = Vec::new();
    for stream in pending {
        match stream.and_then(PendingStream::read_head) {
            Ok(stream) => streams.push(stream),
            Err(e) => problems.push(format!("opening a stream: {e}")),
        }
    }
    let rss_opened = read_memory(connector.pid()).rss_mib;
    progress(format_args!(
        "watch: {} of {} streams open after {} (requests sent in {}); connector RSS \
         {rss_before_mib:.1} → {rss_opened:.1} MiB",
        streams.len(),
        plan.watch_streams,
        format_seconds(opened_at.elapsed().as_secs_f64()),
        format_seconds(sent_in.as_secs_f64())
    ));
    let label = format!("{} streams open", streams.len());
    let with = load(&label);
    let rss_loaded = read_memory(connector.pid()).rss_mib;
    progress(format_args!(
        "watch: connector RSS after the load with the streams: {rss_loaded:.1} MiB"
    ));
    let delivered = deliver_one_kill(connector, &mut streams, problems);
    for stream in &streams {
        stream.close();
    }
    StreamsFigures {
        asked: plan.watch_streams,
        opened: streams.len(),
        rss_before_mib,
        rss_open_mib: rss_opened.max(rss_loaded),
        without,
        with,
        delivered,
    }
}

/// Kills one container and counts the streams that show its
/// `container.died`: streams left unread through the load still carry
/// events.
fn deliver_one_kill(
    connector: &Connector,
    streams: &mut [EventStream],
    problems: &mut Vec<String>,
) -> usize {
    let running = running_ids(connector.instance(), WATCH_SERVICE);
    let Some(victim) = running.first() else {
        problems.push(format!("no running container of {WATCH_SERVICE} to kill"));
        return 0;
    };
    docker(&["kill", victim]);
    let deadline = Instant::now() + DELIVERY_DEADLINE;
    let mut first_failure = None;
    let mut delivered = 0;
    for stream in streams.iter_mut() {
        // Whatever is left of the deadline, but a short wait at least, for
        // the events already in the socket.
        let wait = deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(10));
        match show_death(stream, wait, victim) {
            Ok(()) => delivered += 1,
            Err(e) => {
                first_failure.get_or_insert_with(|| e.to_string());
            }
        }
    }
    if let Some(failure) = first_failure {
        problems.push(format!(
            "{} of {} streams did not show the kill of {victim} within {DELIVERY_DEADLINE:?}; the first: {failure}",
            streams.len() - delivered,
            streams.len()
        ));
    }
    progress(format_args!(
        "watch: {delivered} of {} open streams showed the kill of {victim}",
        streams.len()
    ));
    delivered
}

/// Reads `stream` until it shows the `container.died` of `victim`; an error
/// if it does not within `wait`, or resets.
fn show_death(stream: &mut EventStream, wait: Duration, victim: &str) -> io::Result<()> {
    stream.set_timeout(Some(wait))?;
    loop {
        let event = stream.next_event()?;
        if event.kind == "container.died" && event.container().is_some_and(|c| same(c, victim)) {
            return Ok(());
        }
        if event.kind == "reset" {
            return Err(io::Error::other(format!("reset {}", event.data)));
        }
    }
}

/// Each stream is a socket of this process, and a thousand pass the soft
/// limit of open files most systems start with (1024): the soft limit is
/// raised to the hard one.
fn raise_open_files_limit(streams: usize) {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct given.
    let raised = unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit) == 0
        }
    };
    // The load's connections and docker's pipes come on top of the streams.
    let needed = (streams + 2 * BUSY_CONNECTIONS) as libc::rlim_t;
    if !raised || limit.rlim_cur < needed {
        progress(format_args!(
            "watch: open files limited to {} (raised: {raised}); {streams} streams need about {needed}",
            limit.rlim_cur
        ));
    }
}

/// A thread reading events into a log as they come, so that each is
/// stamped as it is read while the measurement waits on the log. Dropping
/// it stops the source and joins the thread.
struct Recorder<T> {
    log: Arc<(Mutex<Vec<T>>, Condvar)>,
    /// Ends the source, so that the thread's next read returns.
    stop: Option<Box<dyn FnOnce() + Send>>,
    thread: Option<JoinHandle<()>>,
}

impl<T: Clone + Send + 'static> Recorder<T> {
    fn start(
        source: impl Iterator<Item = T> + Send + 'static,
        stop: impl FnOnce() + Send + 'static,
    ) -> Recorder<T> {
        let log = Arc::new((Mutex::new(Vec::new()), Condvar::new()));
        let sink = log.clone();
        let thread = thread::spawn(move || {
            let (events, arrived) = &*sink;
            for event in source {
                events.lock().unwrap().push(event);
                arrived.notify_all();
            }
        });
        Recorder {
            log,
            stop: Some(Box::new(stop)),
            thread: Some(thread),
        }
    }

    fn len(&self) -> usize {
        self.log.0.lock().unwrap().len()
    }

    /// The events from the `start`th on.
    fn since(&self, start: usize) -> Vec<T> {
        self.log.0.lock().unwrap()[start..].to_vec()
    }

    /// Waits until `seen` holds for the events from the `start`th on, at
    /// most until `deadline`; whether it held.
    fn wait_for(&self, start: usize, deadline: Instant, seen: impl Fn(&[T]) -> bool) -> bool {
        let (events, arrived) = &*self.log;
        let mut events = events.lock().unwrap();
        loop {
            if seen(&events[start..]) {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            events = arrived.wait_timeout(events, left).unwrap().0;
        }
    }
}

impl<T> Drop for Recorder<T> {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            stop();
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
