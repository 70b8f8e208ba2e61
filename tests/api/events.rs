//! The event stream, `GET /events` (issue 17), read by a real SSE client
//! (tests/support/sse.rs) against the real engine: every kind of event and
//! its documented data, ids that only grow, the `service` filter, a
//! reconnect with `Last-Event-ID` that loses nothing within the ring, a
//! `reset` for an id older than the ring and for a consumer that stopped
//! reading, keep-alive comments, and streams ended by SIGTERM.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use regex::Regex;
use serde_json::{json, Value};

use crate::support::app::{backend_suite, AppOptions, Backend, Reply, TestApp};
use crate::support::docker::{docker, TEST_IMAGE};
use crate::support::figures::record_figures;
use crate::support::openapi::{document, schema_problems};
use crate::support::sse::{summary, Event, EventStream, Next};

backend_suite!(
    the_service_filter_passes_exactly_that_services_events,
    a_reconnect_with_last_event_id_gets_exactly_the_missed_events_in_order,
    a_last_event_id_older_than_the_ring_gets_a_reset_and_the_stream_ends,
    sigterm_ends_open_streams_and_the_connector_exits_promptly,
);

/// How long an event caused by an answered request may take to arrive.
const PROMPT: Duration = Duration::from_secs(5);

/// How long to listen for events that should not come.
const SILENCE: Duration = Duration::from_millis(500);

/// The event types a stream of one service's life shows, `reset` aside.
const EVERY_KIND: [&str; 11] = [
    "service.created",
    "service.replaced",
    "service.deleted",
    "service.scaled",
    "container.started",
    "container.died",
    "container.removed",
    "container.health",
    "rollout.progress",
    "rollout.outcome",
    "problem",
];

/// The schema src/openapi.json gives the data of events of type `kind`:
/// `container.died` is `ContainerDiedEvent`.
fn schema_of(kind: &str) -> Value {
    let name: String = kind
        .split(['.', '_'])
        .map(|word| {
            let mut chars = word.chars();
            chars
                .next()
                .map(|first| first.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        })
        .collect();
    json!({ "$ref": format!("#/components/schemas/{name}Event") })
}

/// Every way `events` break the document or the stream's rules: data
/// outside its type's documented schema, a `time` that is not RFC 3339
/// UTC, ids that do not grow. A `reset` has no id: it is no place in the
/// stream to resume from.
fn stream_problems(events: &[Event]) -> Vec<String> {
    let doc = document();
    let rfc3339 = Regex::new(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$").unwrap();
    let mut problems = Vec::new();
    for event in events {
        let label = match event.kind.as_str() {
            "reset" => "reset".to_owned(),
            kind => format!("event {} {kind}", event.id()),
        };
        problems.extend(
            schema_problems(&doc, &schema_of(&event.kind), &event.data)
                .into_iter()
                .map(|p| format!("{label}: {p}")),
        );
        if event.kind != "reset" {
            let time = event.data["time"].as_str().unwrap_or_default();
            if !rfc3339.is_match(time) {
                problems.push(format!("{label}: time {time:?} is not RFC 3339 UTC"));
            }
        }
    }
    let numbered: Vec<&Event> = events.iter().filter(|e| e.kind != "reset").collect();
    for pair in numbered.windows(2) {
        if pair[1].id() <= pair[0].id() {
            problems.push(format!(
                "id {} ({}) follows id {} ({})",
                pair[1].id(),
                pair[1].kind,
                pair[0].id(),
                pair[0].kind
            ));
        }
    }
    problems
}

pub fn assert_stream_fits(events: &[Event]) {
    let problems = stream_problems(events);
    assert!(
        problems.is_empty(),
        "{problems:#?}\nevents: {:#?}",
        summary(events)
    );
}

/// Microseconds since the Unix epoch, the unit of a lifetime's first id.
fn micros_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64
}

/// A definition of the test image whose containers pass their health
/// check from the start, one second apart, unhealthy after two failures.
fn checked(version: &str) -> Value {
    json!({
        "image": TEST_IMAGE,
        "command": ["sh", "-c", "touch /tmp/ok; exec sleep 86400"],
        "environment": {"VERSION": version},
        "healthcheck": {"test": "test -f /tmp/ok", "interval": "1s", "timeout": "1s", "retries": 2},
    })
}

async fn scale_with_reason(app: &TestApp, number: u32, reason: &str, query: &str) -> Reply {
    app.send_json(
        "POST",
        &format!("/service/web/scale{query}"),
        &json!({"number": number, "reason": reason}),
    )
    .await
}

/// Events until the stream has been quiet for [`SILENCE`].
async fn drain(stream: &mut EventStream) -> Vec<Event> {
    let mut seen = Vec::new();
    loop {
        match stream.next(SILENCE).await {
            Next::Event(event) => seen.push(event),
            Next::Quiet => return seen,
            other => panic!("the stream stopped: {other:?}; seen: {:#?}", summary(&seen)),
        }
    }
}

#[tokio::test]
async fn a_stream_shows_every_kind_of_event_with_ids_that_only_grow() {
    let before_start = micros_now();
    let app = TestApp::spawn_with(AppOptions::new().env("ROCKET_UPDATE_SETTLE", "0.5")).await;
    let mut stream = EventStream::open(&app, "/events", &[]).await;
    let mut seen = Vec::new();

    let mut web = checked("1");
    web["name"] = json!("web");
    let reply = app.create(web).await;
    assert_eq!(reply.status, 201, "{reply:?}");
    seen.extend(
        stream
            .until(PROMPT, "service.created", |e| e.kind == "service.created")
            .await,
    );

    let reply = scale_with_reason(&app, 1, "events test", "?wait=healthy&timeout=20").await;
    assert_eq!(reply.status, 200, "{reply:?}");
    seen.extend(
        stream
            .until(PROMPT, "the container's health", |e| {
                e.kind == "container.health" && e.data["health"] == "healthy"
            })
            .await,
    );

    // A changed definition rolls start-first: the old container goes.
    let reply = app.put("web", checked("2")).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    seen.extend(
        stream
            .until(Duration::from_secs(30), "the roll's outcome", |e| {
                e.kind == "rollout.outcome"
            })
            .await,
    );
    let outcome = seen.last().unwrap();
    assert_eq!(outcome.data["state"], "complete", "{outcome:?}");

    // A container that turns unhealthy is a problem until it is replaced.
    let status = app.status("web").await.body;
    let current = status["containers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["current"] == true && c["state"] == "running")
        .unwrap_or_else(|| panic!("no current container: {status}"))["id"]
        .as_str()
        .unwrap()
        .to_owned();
    docker(&["exec", &current, "/bin/busybox", "rm", "/tmp/ok"]);
    seen.extend(
        stream
            .until(
                Duration::from_secs(30),
                "the unhealthy container's problem",
                |e| {
                    e.kind == "problem"
                        && e.data["problem"]
                            .as_str()
                            .is_some_and(|p| p.contains("unhealthy"))
                },
            )
            .await,
    );
    seen.extend(
        stream
            .until(Duration::from_secs(30), "the problem cleared", |e| {
                e.kind == "problem" && e.data["problem"].is_null()
            })
            .await,
    );

    let reply = app.delete("web").await;
    assert_eq!(reply.status, 204, "{reply:?}");
    seen.extend(
        stream
            .until(PROMPT, "service.deleted", |e| e.kind == "service.deleted")
            .await,
    );
    // Docker reports the removal of the last container a moment after
    // the delete answered.
    let kinds =
        |seen: &[Event]| -> BTreeSet<String> { seen.iter().map(|e| e.kind.clone()).collect() };
    if !EVERY_KIND.iter().all(|k| kinds(&seen).contains(*k)) {
        seen.extend(drain(&mut stream).await);
    }

    let missing: Vec<&str> = EVERY_KIND
        .into_iter()
        .filter(|k| !kinds(&seen).contains(*k))
        .collect();
    assert!(
        missing.is_empty(),
        "never seen: {missing:?}; seen: {:#?}",
        summary(&seen)
    );
    assert_stream_fits(&seen);
    for event in &seen {
        assert_eq!(event.service(), Some("web"), "{event:?}");
    }
    // A lifetime's ids start at its boot time in microseconds, so a later
    // lifetime's are larger.
    assert!(
        seen[0].id() > before_start && seen[0].id() < micros_now(),
        "the first id {} is not a boot time in microseconds after {before_start}",
        seen[0].id()
    );
    let of = |kind: &str| seen.iter().find(|e| e.kind == kind).unwrap();
    let scaled = of("service.scaled");
    assert_eq!(
        (
            &scaled.data["from"],
            &scaled.data["to"],
            &scaled.data["reason"]
        ),
        (&json!(0), &json!(1), &json!("events test")),
        "{scaled:?}"
    );
    assert!(
        scaled.data["caller"]
            .as_str()
            .is_some_and(|c| c.contains("127.0.0.1")),
        "{scaled:?}"
    );
    let replaced = of("service.replaced");
    assert_eq!(replaced.data["runs_differently"], true, "{replaced:?}");
    assert!(
        seen.iter()
            .any(|e| e.kind == "container.health" && e.data["health"] == "unhealthy"),
        "{:#?}",
        summary(&seen)
    );
}

pub async fn the_service_filter_passes_exactly_that_services_events(backend: Backend) {
    let app = TestApp::spawn_with(backend.options().without_reconciler()).await;
    let refused = match EventStream::try_open(&app, "/events?service=-web", &[]).await {
        Ok(_) => panic!("an invalid service name opened a stream"),
        Err(reply) => reply,
    };
    assert_eq!(refused.status, 400, "{refused:?}");
    assert!(refused.error().starts_with("service"), "{refused:?}");

    // A name not defined yet is fine: its events show once it is.
    let mut only_web = EventStream::open(&app, "/events?service=web", &[]).await;
    let mut everything = EventStream::open(&app, "/events", &[]).await;
    app.create_service("web", json!({})).await;
    app.create_service("db", json!({})).await;
    for (name, version) in [("web", "2"), ("db", "2")] {
        let body = json!({"image": TEST_IMAGE, "environment": {"VERSION": version}});
        assert_eq!(app.put(name, body).await.status, 200);
    }
    assert_eq!(app.delete("db").await.status, 204);
    assert_eq!(app.delete("web").await.status, 204);

    let web_deleted = |e: &Event| e.kind == "service.deleted" && e.service() == Some("web");
    let mut all = everything
        .until(PROMPT, "web's deletion", web_deleted)
        .await;
    all.extend(drain(&mut everything).await);
    let mut filtered = only_web.until(PROMPT, "web's deletion", web_deleted).await;
    filtered.extend(drain(&mut only_web).await);

    assert_stream_fits(&all);
    let of_web: Vec<&Event> = all.iter().filter(|e| e.service() == Some("web")).collect();
    assert_eq!(
        filtered
            .iter()
            .map(|e| (e.id(), &e.kind))
            .collect::<Vec<_>>(),
        of_web.iter().map(|e| (e.id(), &e.kind)).collect::<Vec<_>>(),
        "the filtered stream: {:#?}\nthe whole stream: {:#?}",
        summary(&filtered),
        summary(&all)
    );
    let definition_changes: Vec<&str> = filtered
        .iter()
        .filter(|e| e.kind.starts_with("service."))
        .map(|e| e.kind.as_str())
        .collect();
    assert_eq!(
        definition_changes,
        ["service.created", "service.replaced", "service.deleted"]
    );
    assert!(
        all.iter().any(|e| e.service() == Some("db")),
        "{:#?}",
        summary(&all)
    );
}

pub async fn a_reconnect_with_last_event_id_gets_exactly_the_missed_events_in_order(
    backend: Backend,
) {
    let app = TestApp::spawn_with(backend.options().without_reconciler()).await;
    // Sees everything, so it knows what the other one missed.
    let mut witness = EventStream::open(&app, "/events", &[]).await;
    let mut client = EventStream::open(&app, "/events", &[]).await;
    app.create_service("web", json!({})).await;
    let last_read = client
        .until(PROMPT, "service.created", |e| e.kind == "service.created")
        .await
        .pop()
        .unwrap();
    drop(client);

    for version in ["2", "3", "4"] {
        let body = json!({"image": TEST_IMAGE, "environment": {"VERSION": version}});
        assert_eq!(app.put("web", body).await.status, 200);
    }
    app.create_service("db", json!({})).await;
    assert_eq!(app.delete("db").await.status, 204);
    let mut missed = witness
        .until(PROMPT, "db's deletion", |e| {
            e.kind == "service.deleted" && e.service() == Some("db")
        })
        .await;
    missed.extend(drain(&mut witness).await);
    missed.retain(|e| e.id() > last_read.id());

    let last_id = last_read.id().to_string();
    let mut again = EventStream::open(&app, "/events", &[("last-event-id", &last_id)]).await;
    let mut replayed = Vec::new();
    for _ in &missed {
        replayed.push(again.expect_event(PROMPT, "a missed event").await);
    }
    let brief = |events: &[Event]| -> Vec<(u64, String, Value)> {
        events
            .iter()
            .map(|e| (e.id(), e.kind.clone(), e.data.clone()))
            .collect()
    };
    assert_eq!(brief(&replayed), brief(&missed));
    match again.next(SILENCE).await {
        Next::Quiet => {}
        other => panic!("after the missed events: {other:?}"),
    }
    // Then it goes on live.
    let body = json!({"image": TEST_IMAGE, "environment": {"VERSION": "5"}});
    assert_eq!(app.put("web", body).await.status, 200);
    let live = again.expect_event(PROMPT, "a live event").await;
    let witnessed = witness.expect_event(PROMPT, "a live event").await;
    assert_eq!((live.id(), &live.kind), (witnessed.id(), &witnessed.kind));
    assert_eq!(live.kind, "service.replaced", "{live:?}");
}

/// Reads a `reset` as the next event, then the end of the stream.
async fn expect_reset_and_end(stream: &mut EventStream, why: &str) -> Event {
    let reset = stream.expect_event(PROMPT, why).await;
    assert_eq!(reset.kind, "reset", "{why}: {reset:?}");
    assert_stream_fits(std::slice::from_ref(&reset));
    match stream.next(PROMPT).await {
        Next::Ended => reset,
        other => panic!("{why}: after the reset: {other:?}"),
    }
}

pub async fn a_last_event_id_older_than_the_ring_gets_a_reset_and_the_stream_ends(
    backend: Backend,
) {
    let mut app = TestApp::spawn_with(backend.options().without_reconciler()).await;
    app.create_service("web", json!({})).await;
    let mut stale = EventStream::open(&app, "/events", &[("last-event-id", "1")]).await;
    expect_reset_and_end(&mut stale, "Last-Event-ID 1").await;

    // An id of an earlier lifetime is older than any ring of a later one.
    let mut stream = EventStream::open(&app, "/events", &[]).await;
    let body = json!({"image": TEST_IMAGE, "environment": {"VERSION": "2"}});
    assert_eq!(app.put("web", body.clone()).await.status, 200);
    let earlier = stream
        .until(PROMPT, "the PUT's event", |e| e.kind == "service.replaced")
        .await
        .pop()
        .unwrap();
    drop(stream);
    app.restart();
    let mut stream = EventStream::open(&app, "/events", &[]).await;
    let body = json!({"image": TEST_IMAGE, "environment": {"VERSION": "3"}});
    assert_eq!(app.put("web", body).await.status, 200);
    // The PUT's event, and the rollout's that follow it.
    let later = stream
        .until(PROMPT, "the PUT's event", |e| e.kind == "service.replaced")
        .await
        .into_iter()
        .chain(drain(&mut stream).await)
        .last()
        .unwrap();
    assert!(
        later.id() > earlier.id(),
        "a later lifetime's id {} is not above an earlier one's {}",
        later.id(),
        earlier.id()
    );
    let earlier_id = earlier.id().to_string();
    let mut stale = EventStream::open(&app, "/events", &[("last-event-id", &earlier_id)]).await;
    expect_reset_and_end(&mut stale, "a Last-Event-ID of the earlier lifetime").await;
    // A client that saw the latest event misses nothing: no reset.
    let later_id = later.id().to_string();
    let mut current = EventStream::open(&app, "/events", &[("last-event-id", &later_id)]).await;
    match current.next(SILENCE).await {
        Next::Quiet => {}
        other => panic!("a client up to date got {other:?}"),
    }
}

/// The ring of the slow-consumer test: small, so that falling a ring
/// behind takes few writes, but not so small that the reading consumer
/// could fall that far behind while the test process waits for a CPU.
const SMALL_RING: usize = 128;

/// The bytes a stalled narrow connection ([`EventStream::open_narrow`]) may
/// hold before the server has to keep its events: hyper's write buffer
/// (about 400 KiB), the server's send buffer, which Linux sizes by the
/// peer's 536-byte segments, and the client's 4 KiB receive buffer.
const NARROW_CONNECTION_BUFFERS: usize = 1 << 20;

/// What the reading consumer received.
struct Arrival {
    kind: String,
    revision: Option<u64>,
    /// From the event's `time` (when the connector published it) to its
    /// arrival: the same host's clock on both ends.
    delay: Duration,
}

/// How long ago `event` was published, by its `time`.
fn delay_of(event: &Event) -> Duration {
    let time = event.data["time"].as_str().unwrap_or_default();
    let published = humantime::parse_rfc3339(time)
        .unwrap_or_else(|e| panic!("time {time:?} is not RFC 3339: {e}"));
    SystemTime::now()
        .duration_since(published)
        .unwrap_or_default()
}

/// The revision an `ETag: "<revision>"` names.
fn revision_of(reply: &Reply) -> u64 {
    let tag = reply
        .header("etag")
        .unwrap_or_else(|| panic!("no ETag: {reply:?}"));
    tag.trim_matches('"')
        .parse()
        .unwrap_or_else(|_| panic!("ETag {tag:?} is not a quoted revision"))
}

/// An image reference with nearly the longest name and tag a definition
/// takes, another for each `n`: each service.replaced event carries it, so
/// fewer writes fill a connection's buffers.
fn long_image(n: usize) -> String {
    format!(
        "{}/{}:{n}-{}",
        "p".repeat(120),
        "q".repeat(120),
        "t".repeat(100)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_consumer_that_reads_nothing_is_dropped_with_reset_while_another_keeps_up() {
    // The data file on tmpfs: on a disk each write's fsync takes
    // milliseconds, and this test needs tens of thousands of writes. It
    // tests the stream, not durability. Declared first, so removed last.
    let tmpfs = tempfile::tempdir_in("/dev/shm").expect("a tmpfs at /dev/shm");
    let data_file = tmpfs.path().join("services.json");
    let app = TestApp::spawn_with(
        AppOptions::new()
            .without_reconciler()
            .env("ROCKET_DATA_FILE", data_file.to_str().unwrap())
            .env("ROCKET_EVENT_RING", &SMALL_RING.to_string()),
    )
    .await;
    app.create_service("web", json!({})).await;
    let mut stalled = EventStream::open_narrow(&app, "/events").await;
    let mut reader = EventStream::open(&app, "/events", &[]).await;

    // The reading consumer, in a task of its own, notes what arrives when.
    let arrivals: Arc<Mutex<Vec<Arrival>>> = Arc::default();
    let bytes_read = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let reading = {
        let (arrivals, bytes_read, done) = (arrivals.clone(), bytes_read.clone(), done.clone());
        tokio::spawn(async move {
            while !done.load(Ordering::SeqCst) {
                match reader.next(Duration::from_millis(100)).await {
                    Next::Event(event) => {
                        bytes_read.fetch_add(event.size, Ordering::SeqCst);
                        arrivals.lock().unwrap().push(Arrival {
                            revision: event.data["revision"].as_u64(),
                            delay: delay_of(&event),
                            kind: event.kind,
                        });
                    }
                    Next::Quiet => {}
                    other => panic!("the reading consumer's stream stopped: {other:?}"),
                }
            }
        })
    };

    // Writers replace the definition as fast as they can, each answer noted
    // by the revision its ETag names. A User-Agent as long as a caller
    // keeps (80 characters) makes each event larger too.
    let user_agent = format!("flood/{}", "x".repeat(74));
    let answered: Arc<Mutex<BTreeSet<u64>>> = Arc::default();
    let sequence = Arc::new(AtomicUsize::new(0));
    let enough = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..8)
        .map(|_| {
            let (answered, sequence, enough) = (answered.clone(), sequence.clone(), enough.clone());
            let url = app.url("/service/web");
            let user_agent = user_agent.clone();
            tokio::spawn(async move {
                let http = reqwest::Client::new();
                while !enough.load(Ordering::SeqCst) {
                    let n = sequence.fetch_add(1, Ordering::SeqCst);
                    let body = json!({ "image": long_image(n) });
                    let response = http
                        .put(&url)
                        .header("user-agent", &user_agent)
                        .header("content-type", "application/json")
                        .body(body.to_string())
                        .send()
                        .await
                        .expect("the connector answers");
                    let status = response.status().as_u16();
                    let headers = response.headers().clone();
                    let body = response.json().await.unwrap_or(Value::Null);
                    let reply = Reply {
                        status,
                        headers,
                        body,
                    };
                    assert_eq!(reply.status, 200, "{reply:?}");
                    answered.lock().unwrap().insert(revision_of(&reply));
                }
            })
        })
        .collect();

    // Enough: the stalled consumer's connection is full, the events it was
    // handed but could not send are held (at most a ring's worth: a stream
    // may take everything the ring holds at once), and more than a ring's
    // worth wait behind them.
    let started = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        if reading.is_finished() || writers.iter().any(|w| w.is_finished()) {
            // One of them failed: its panic says why.
            enough.store(true, Ordering::SeqCst);
            done.store(true, Ordering::SeqCst);
            for writer in writers {
                writer.await.unwrap();
            }
            reading.await.unwrap();
            panic!("a writer or the reading consumer stopped early");
        }
        let received = arrivals.lock().unwrap().len();
        let bytes = bytes_read.load(Ordering::SeqCst);
        let average = bytes / received.max(1);
        if received > 100
            && received >= 2 * SMALL_RING + 1 + NARROW_CONNECTION_BUFFERS / average.max(1)
        {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(180),
            "only {received} events ({bytes} bytes) after 3 minutes"
        );
    }
    enough.store(true, Ordering::SeqCst);
    for writer in writers {
        writer.await.unwrap();
    }
    let flood = started.elapsed();
    // The last write's event reaches the reading consumer, too.
    let last = app
        .put(
            "web",
            json!({"image": TEST_IMAGE, "environment": {"N": "last"}}),
        )
        .await;
    assert_eq!(last.status, 200, "{last:?}");
    let last_revision = revision_of(&last);
    answered.lock().unwrap().insert(last_revision);
    let got_last = crate::support::app::poll_until(PROMPT, || async {
        let arrived = arrivals
            .lock()
            .unwrap()
            .iter()
            .any(|a| a.revision == Some(last_revision));
        (arrived, arrived)
    })
    .await;
    assert!(got_last, "the reading consumer never got the last write");
    done.store(true, Ordering::SeqCst);
    reading.await.unwrap();

    // Every write reached the reading consumer, once, and promptly.
    let arrivals = std::mem::take(&mut *arrivals.lock().unwrap());
    let answered = std::mem::take(&mut *answered.lock().unwrap());
    let replaced: Vec<Option<u64>> = arrivals
        .iter()
        .filter(|a| a.kind == "service.replaced")
        .map(|a| a.revision)
        .collect();
    let expected: Vec<Option<u64>> = answered.iter().copied().map(Some).collect();
    assert_eq!(
        replaced, expected,
        "the reading consumer's service.replaced events are not the writes' revisions in order"
    );
    let mut lags: Vec<Duration> = arrivals.iter().map(|a| a.delay).collect();
    lags.sort();
    let percentile = |p: usize| lags[(lags.len() - 1) * p / 100];
    let (p50, p99, max) = (percentile(50), percentile(99), *lags.last().unwrap());
    assert!(
        max < Duration::from_secs(1),
        "the reading consumer fell behind while the other stalled: p50 {p50:?}, p99 {p99:?}, max {max:?}"
    );

    // The stalled consumer gets what its connection held, in order, then a
    // reset, and its stream ends.
    let mut before_reset = Vec::new();
    let reset = loop {
        match stalled.next(PROMPT).await {
            Next::Event(event) if event.kind == "reset" => break event,
            Next::Event(event) => before_reset.push(event),
            other => panic!(
                "the stalled consumer got {other:?} after {} events, never a reset",
                before_reset.len()
            ),
        }
    };
    assert!(
        before_reset.len() < arrivals.len(),
        "it was sent everything: {} events",
        before_reset.len()
    );
    assert!(
        before_reset
            .windows(2)
            .all(|pair| pair[1].id() > pair[0].id()),
        "what it got before the reset is out of order"
    );
    assert_stream_fits(std::slice::from_ref(&reset));
    match stalled.next(PROMPT).await {
        Next::Ended => {}
        other => panic!("after the reset: {other:?}"),
    }

    record_figures(
        "events-slow-consumer",
        &[
            (
                "events sent while one consumer read nothing",
                arrivals.len().to_string(),
            ),
            ("writes", answered.len().to_string()),
            ("flood took", format!("{flood:.1?}")),
            (
                "the stalled consumer got before its reset",
                before_reset.len().to_string(),
            ),
            (
                "the reading consumer's delay from each event's publication (p50, p99, max)",
                format!("{p50:.1?}, {p99:.1?}, {max:.1?}"),
            ),
        ],
    );
}

#[tokio::test]
async fn an_idle_stream_gets_a_keep_alive_comment_every_15_seconds() {
    let app = TestApp::spawn_with(AppOptions::new().without_reconciler()).await;
    let mut stream = EventStream::open(&app, "/events", &[]).await;
    let opened = Instant::now();
    // Listened to for 20 s: the second comment is due at 15 s, and a
    // loaded machine may deliver it a little late.
    match stream.next(Duration::from_secs(20)).await {
        Next::Quiet => {}
        other => panic!("an idle connector sent {other:?}"),
    }
    let after: Vec<Duration> = stream
        .keep_alives()
        .iter()
        .map(|at| at.duration_since(opened))
        .collect();
    // One may come at once; the next must come 15 s later.
    assert!(
        after.iter().any(|d| *d >= Duration::from_secs(14)) && after.len() <= 3,
        "keep-alive comments came {after:?} after the stream opened"
    );
}

pub async fn sigterm_ends_open_streams_and_the_connector_exits_promptly(backend: Backend) {
    let mut app = TestApp::spawn_with(backend.options().without_reconciler()).await;
    app.create_service("web", json!({})).await;
    let mut streams = [
        EventStream::open(&app, "/events", &[]).await,
        EventStream::open(&app, "/events?service=web", &[]).await,
        EventStream::open(&app, "/events?service=other", &[]).await,
    ];
    // The streams are live: the first two get the PUT's event.
    let body = json!({"image": TEST_IMAGE, "environment": {"VERSION": "2"}});
    assert_eq!(app.put("web", body).await.status, 200);
    for stream in &mut streams[..2] {
        let event = stream.expect_event(PROMPT, "the PUT's event").await;
        assert_eq!(event.kind, "service.replaced", "{event:?}");
        // What follows it (the rollout's events) is not what SIGTERM ends.
        drain(stream).await;
    }

    // Unless the streams end, Rocket would hold the exit for its whole
    // shutdown grace, 30 s.
    let signalled = Instant::now();
    app.send_sigterm();
    for (i, stream) in streams.iter_mut().enumerate() {
        match stream.next(Duration::from_secs(3)).await {
            Next::Ended => {}
            other => panic!("stream {i} after SIGTERM: {other:?}\n{}", app.log()),
        }
    }
    assert_eq!(app.wait_for_exit(), Some(0), "{}", app.log());
    assert!(
        signalled.elapsed() < Duration::from_secs(5),
        "the connector took {:?} to exit with streams open",
        signalled.elapsed()
    );
}
