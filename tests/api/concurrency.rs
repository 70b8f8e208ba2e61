//! Many requests at once against the real engine: per-service serialization
//! under random load, other services kept responsive during a big scale, and
//! races on one name that must have exactly one winner.

use std::collections::BTreeMap;
use std::future::Future;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::future::join_all;
use serde_json::{json, Value};

use crate::support::app::{AppOptions, Reply, TestApp};
use crate::support::docker::{docker, TEST_IMAGE};
use crate::support::figures::record_figures;
use crate::support::rng::Rng;

fn unix_seconds() -> String {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    format!("{}.{:09}", now.as_secs(), now.subsec_nanos())
}

fn sorted(mut ids: Vec<String>) -> Vec<String> {
    ids.sort();
    ids
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

/// Median and maximum of some latencies.
fn median_max(latencies: &[Duration]) -> (Duration, Duration) {
    let mut sorted = latencies.to_vec();
    sorted.sort();
    match sorted.len() {
        0 => (Duration::ZERO, Duration::ZERO),
        n => (sorted[n / 2], sorted[n - 1]),
    }
}

/// A reply as `status body`, without the headers, for messages about many.
fn brief(reply: &Reply) -> String {
    format!("{} {}", reply.status, reply.body)
}

/// Asserts `reply` is a scale answer that reached exactly `target`.
fn assert_scaled(reply: &Reply, target: u64, what: &str) {
    assert_eq!(reply.status, 200, "{what}: {}", brief(reply));
    assert_eq!(
        reply.body,
        json!({"running_resources": target, "desired_resources": target}),
        "{what}: a 200 must report the target as measured"
    );
}

/// The engine's create and destroy events for one app's containers, streamed
/// live. (`docker events --since ... --until ...` alone replays from the
/// engine's buffer of only 256 events, which a batch this size overflows.)
struct ContainerEvents {
    child: Child,
    lines: mpsc::Receiver<String>,
    instance_label: String,
}

impl ContainerEvents {
    fn watch(app: &TestApp) -> Self {
        let instance_label = format!("docker-connector.instance={}", app.instance);
        // `--since` covers the moment between spawning and subscribing.
        let mut child = Command::new("docker")
            .args(["events", "--since", &unix_seconds(), "--filter", "type=container"])
            .args(["--filter", &format!("label={instance_label}"), "--format"])
            .arg(r#"{{.Action}} {{.Actor.ID}} {{index .Actor.Attributes "docker-connector.service"}}"#)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("docker events runs");
        let stdout = child.stdout.take().unwrap();
        let (sender, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        ContainerEvents {
            child,
            lines,
            instance_label,
        }
    }

    /// Every create and destroy so far, in the engine's order, as
    /// `(action, service)`. A marker container made now ends the list, so no
    /// event still in transit is missed.
    fn so_far(&self) -> Vec<(String, String)> {
        let marker = docker(&[
            "create",
            "--label",
            &self.instance_label,
            "--label",
            "docker-connector.service=end-of-watch",
            "--",
            TEST_IMAGE,
        ]);
        let marker = marker.trim();
        docker(&["rm", marker]);
        let mut events = Vec::new();
        loop {
            let line = self
                .lines
                .recv_timeout(Duration::from_secs(30))
                .expect("docker events delivers the marker's creation");
            let fields: Vec<&str> = line.splitn(3, ' ').collect();
            let [action, id, service] = fields[..] else {
                panic!("unexpected event line {line:?}");
            };
            if id == marker {
                return events;
            }
            if matches!(action, "create" | "destroy") {
                events.push((action.to_owned(), service.to_owned()));
            }
        }
    }
}

impl Drop for ContainerEvents {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The most containers of `service` that existed at once, how many exist at
/// the end, and how many were created, replayed from `events`.
fn replay(events: &[(String, String)], service: &str) -> (i64, i64, usize) {
    let (mut live, mut peak, mut created) = (0i64, 0i64, 0usize);
    for (action, _) in events.iter().filter(|(_, s)| s == service) {
        if action == "create" {
            live += 1;
            created += 1;
        } else {
            live -= 1;
        }
        peak = peak.max(live);
    }
    (peak, live, created)
}

#[tokio::test]
async fn forty_random_scales_beside_another_service_all_succeed_and_settle_exactly() {
    let (mut rng, seed) = Rng::from_env_or_clock("CONCURRENCY_SEED");
    println!("seed {seed} (set CONCURRENCY_SEED={seed} to replay these targets)");
    // A reference, so that each request's `async move` can share the app.
    let app = &TestApp::spawn().await;
    app.create_service("a", json!({})).await;
    app.create_service("b", json!({})).await;

    // Small targets keep the shared engine's load sane; forty of them still
    // queue deep on a's lock.
    let a_targets: Vec<u64> = (0..40).map(|_| rng.below(5)).collect();
    let b_targets: Vec<u64> = (0..10).map(|_| rng.below(5)).collect();
    println!("a targets {a_targets:?}\nb targets {b_targets:?}");
    // b's requests are spread through a's, so that under one global lock
    // they would queue among them rather than all go first.
    let mut requests: Vec<(&str, u64)> = Vec::new();
    for (i, &n) in a_targets.iter().enumerate() {
        requests.push(("a", n));
        if i % 4 == 3 {
            requests.push(("b", b_targets[i / 4]));
        }
    }

    let events = ContainerEvents::watch(app);
    let began = Instant::now();
    let batch_done = AtomicBool::new(false);
    let batch = async {
        let replies = join_all(requests.iter().map(|&(service, n)| async move {
            let reply = app.scale(service, json!(n)).await;
            (service, n, reply, began.elapsed())
        }))
        .await;
        batch_done.store(true, Ordering::SeqCst);
        replies
    };
    // Status takes no lock; while a's scales run one after another it must
    // never see more of a than the largest target, nor fail.
    let watch = async {
        let mut seen = Vec::new();
        while !batch_done.load(Ordering::SeqCst) {
            let reply = app.status("a").await;
            assert_eq!(
                reply.status,
                200,
                "status during the batch: {}",
                brief(&reply)
            );
            seen.push(reply.body["running_resources"].as_u64().unwrap());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        seen
    };
    let (replies, statuses) = tokio::join!(batch, watch);
    let batch_took = began.elapsed();
    let events = events.so_far();

    let failures: Vec<String> = replies
        .iter()
        .filter(|(_, _, reply, _)| reply.status != 200)
        .map(|(service, n, reply, _)| format!("scale {service} to {n}: {}", brief(reply)))
        .collect();
    for failure in &failures {
        println!("non-200: {failure}");
    }
    assert!(
        failures.is_empty(),
        "{} of {} scales failed (seed {seed})",
        failures.len(),
        replies.len()
    );
    for (service, n, reply, _) in &replies {
        assert_scaled(reply, *n, &format!("scale {service} to {n} (seed {seed})"));
    }

    let a_max = *a_targets.iter().max().unwrap();
    assert!(
        statuses.iter().all(|&n| n <= a_max),
        "status saw more of a than any target ({a_max}): {statuses:?}"
    );
    // If two of a's scales overlapped, both would start their shortfall from
    // the same listing and more containers would exist at once than any
    // single target asks for.
    let (a_peak, a_left, a_created) = replay(&events, "a");
    let (b_peak, b_left, b_created) = replay(&events, "b");
    // The replay is complete only if it accounts for what exists now.
    assert_eq!(
        a_left as usize,
        app.containers(Some("a")).len(),
        "{events:?}"
    );
    assert_eq!(
        b_left as usize,
        app.containers(Some("b")).len(),
        "{events:?}"
    );
    assert!(
        a_peak <= a_max as i64,
        "{a_peak} containers of a existed at once, the largest target is {a_max} (seed {seed})"
    );
    let b_max = *b_targets.iter().max().unwrap();
    assert!(b_peak <= b_max as i64, "{b_peak} of b at once, max {b_max}");
    // Whichever scale ran last decided each service's state, and left only
    // running containers behind.
    for (service, targets) in [("a", &a_targets), ("b", &b_targets)] {
        let all = sorted(app.containers(Some(service)));
        assert!(
            targets.contains(&(all.len() as u64)),
            "{} containers of {service} after the batch, no target asked for that",
            all.len()
        );
        assert_eq!(sorted(app.running(service)), all, "{service}: leftovers");
    }

    // b's ten scales queue only behind each other, not behind a's forty.
    let last = |svc: &str| {
        replies
            .iter()
            .filter(|(service, ..)| *service == svc)
            .map(|(.., at)| *at)
            .max()
            .unwrap()
    };
    let (a_last, b_last) = (last("a"), last("b"));
    println!(
        "batch of {} scales took {}; b's last answer at {}, a's at {} ({:.0}% of a's)",
        replies.len(),
        ms(batch_took),
        ms(b_last),
        ms(a_last),
        100.0 * b_last.as_secs_f64() / a_last.as_secs_f64()
    );
    assert!(
        b_last < a_last,
        "b's scales waited for all of a's: b done at {b_last:?}, a at {a_last:?}"
    );

    // A final explicit scale of each decides the state, whatever the batch
    // left: exactly that many run and nothing else is left in any state.
    let (n, m) = (1 + rng.below(4), 1 + rng.below(4));
    let (ra, rb) = tokio::join!(app.scale("a", json!(n)), app.scale("b", json!(m)));
    assert_scaled(&ra, n, "final scale of a");
    assert_scaled(&rb, m, "final scale of b");
    for (service, want) in [("a", n), ("b", m)] {
        let running = sorted(app.running(service));
        assert_eq!(
            running.len() as u64,
            want,
            "running containers of {service}"
        );
        assert_eq!(
            sorted(app.containers(Some(service))),
            running,
            "{service} left containers that are not running"
        );
        let status = app.status(service).await.body;
        assert_eq!(status["running_resources"], json!(want), "{status}");
        assert_eq!(status["desired_resources"], json!(want), "{status}");
    }
    println!(
        "final a={n} b={m}; peak live a={a_peak} b={b_peak}; created a={a_created} b={b_created}; \
         {} status polls",
        statuses.len()
    );

    record_figures(
        "concurrency-scales",
        &[
            ("seed", seed.to_string()),
            (
                "scale requests",
                format!("{} concurrent (a 40, b 10), all 200", replies.len()),
            ),
            ("batch duration", ms(batch_took)),
            (
                "b's last answer",
                format!("{} (a's last at {})", ms(b_last), ms(a_last)),
            ),
            (
                "peak live containers",
                format!("a {a_peak} (max target {a_max}), b {b_peak} (max target {b_max})"),
            ),
            (
                "containers created",
                format!("a {a_created}, b {b_created}"),
            ),
        ],
    );
}

/// Latencies of probe requests, by kind.
#[derive(Default)]
struct Timings(Mutex<Vec<(&'static str, Instant, Duration)>>);

impl Timings {
    async fn time<T>(&self, kind: &'static str, request: impl Future<Output = T>) -> T {
        let sent = Instant::now();
        let out = request.await;
        self.0.lock().unwrap().push((kind, sent, sent.elapsed()));
        out
    }

    fn latencies(&self, kind: &str) -> Vec<Duration> {
        let samples = self.0.lock().unwrap();
        samples
            .iter()
            .filter(|(k, ..)| *k == kind)
            .map(|(.., took)| *took)
            .collect()
    }

    /// How many requests of `kind` were answered by `deadline`.
    fn answered_by(&self, kind: &str, deadline: Instant) -> usize {
        let samples = self.0.lock().unwrap();
        samples
            .iter()
            .filter(|(k, sent, took)| *k == kind && *sent + *took <= deadline)
            .count()
    }
}

/// The probes: each one concerns a service other than `a`.
const PROBES: [&str; 6] = ["status", "scale", "create", "show", "replace", "delete"];
/// The probes that touch only the definitions file, never docker.
const DEFINITION_PROBES: [&str; 3] = ["create", "show", "replace"];

/// Runs three probe loops side by side while `keep_going(round)` holds:
/// status of `b`; a scale of `b` to the 2 it already runs (takes b's lock,
/// lists twice, starts nothing); and create, show, replace, delete of fresh
/// services named after `phase`.
async fn probe_other_services(
    app: &TestApp,
    phase: &str,
    timings: &Timings,
    keep_going: &(dyn Fn(usize) -> bool + Sync),
) {
    let status = async {
        let mut round = 0;
        while keep_going(round) {
            let reply = timings.time("status", app.status("b")).await;
            assert_eq!(
                reply.body["running_resources"],
                json!(2),
                "{}",
                brief(&reply)
            );
            round += 1;
        }
    };
    let scale = async {
        let mut round = 0;
        while keep_going(round) {
            let reply = timings.time("scale", app.scale("b", json!(2))).await;
            assert_scaled(&reply, 2, "no-op scale of b");
            round += 1;
        }
    };
    let definitions = async {
        let mut round = 0;
        while keep_going(round) {
            let name = format!("{phase}-{round}");
            let body = json!({"name": name, "image": TEST_IMAGE, "command": "sleep 5"});
            let reply = timings.time("create", app.create(body)).await;
            assert_eq!(reply.status, 201, "{}", brief(&reply));
            let reply = timings.time("show", app.show(&name)).await;
            assert_eq!(reply.status, 200, "{}", brief(&reply));
            let reply = timings
                .time("replace", app.put(&name, json!({"image": TEST_IMAGE})))
                .await;
            assert_eq!(reply.status, 200, "{}", brief(&reply));
            let reply = timings.time("delete", app.delete(&name)).await;
            assert_eq!(reply.status, 204, "{}", brief(&reply));
            round += 1;
        }
    };
    tokio::join!(status, scale, definitions);
}

#[tokio::test]
async fn a_big_scale_of_one_service_does_not_delay_status_scale_or_crud_of_others() {
    const BIG: u64 = 16;
    const PARALLEL_RUNS: &str = "8";
    let app =
        TestApp::spawn_with(AppOptions::new().env("ROCKET_SCALE_CONCURRENCY", PARALLEL_RUNS)).await;
    app.create_service("a", json!({})).await;
    app.create_service("b", json!({})).await;
    assert_scaled(&app.scale("b", json!(2)).await, 2, "scale of b");

    // Baseline: the same probes with nothing else going on.
    let baseline = Timings::default();
    probe_other_services(&app, "before", &baseline, &|round| round < 6).await;

    let during = Timings::default();
    let big_done = AtomicBool::new(false);
    let big = async {
        let sent = Instant::now();
        let reply = app.scale("a", json!(BIG)).await;
        big_done.store(true, Ordering::SeqCst);
        (reply, sent.elapsed(), Instant::now())
    };
    let probes = async {
        // By then the big scale holds a's lock and its `docker run`s are in
        // flight; a lock shared by all services would be held too.
        tokio::time::sleep(Duration::from_millis(300)).await;
        probe_other_services(&app, "during", &during, &|_| {
            !big_done.load(Ordering::SeqCst)
        })
        .await;
    };
    let ((big_reply, big_took, big_answered), ()) = tokio::join!(big, probes);
    assert_scaled(&big_reply, BIG, "the big scale");

    let mut figures = vec![
        ("big scale", format!("{BIG} containers in {}", ms(big_took))),
        ("docker runs in parallel", PARALLEL_RUNS.to_owned()),
    ];
    println!("big scale of a to {BIG}: {}", ms(big_took));
    println!("probe     baseline n/median/max        during n/median/max (answered before the big scale)");
    let mut summary = BTreeMap::new();
    for kind in PROBES {
        let (base_median, base_max) = median_max(&baseline.latencies(kind));
        let during_latencies = during.latencies(kind);
        let (median, max) = median_max(&during_latencies);
        let in_time = during.answered_by(kind, big_answered);
        println!(
            "{kind:<9} {:>2} / {:>7} / {:>7}    {:>3} / {:>7} / {:>7} ({in_time})",
            baseline.latencies(kind).len(),
            ms(base_median),
            ms(base_max),
            during_latencies.len(),
            ms(median),
            ms(max),
        );
        summary.insert(kind, (median, max, in_time));
        figures.push((
            kind,
            format!(
                "baseline median {} max {}; during median {} max {}, {in_time} answered within the big scale",
                ms(base_median),
                ms(base_max),
                ms(median),
                ms(max)
            ),
        ));
    }
    record_figures("concurrency-latency", &figures);

    // Under a lock shared by all services, the first scale or delete of
    // another service sent during the big scale would be answered only after
    // it, and so none in time; a lock around the engine, or docker waited on
    // in a blocking call that starves the server's workers, would do the same
    // to status and to everything else. Two of each answered while a's scale
    // still ran proves they went through beside it, with room for a slow
    // engine.
    for kind in PROBES {
        let (.., in_time) = summary[kind];
        assert!(
            in_time >= 2,
            "only {in_time} '{kind}' probes of other services were answered during the {} big scale",
            ms(big_took)
        );
    }
    // Create, show and replace touch only the definitions file, so nothing
    // of the big scale may hold them up: their median stays under a quarter
    // of the big scale's time (the median, so one slow disk flush on a
    // loaded machine cannot fail it), and none waits as long as the scale.
    for kind in DEFINITION_PROBES {
        let (median, max, _) = summary[kind];
        assert!(
            median < big_took / 4 && max < big_took,
            "'{kind}' took a median {} (slowest {}) during a {} scale of another service",
            ms(median),
            ms(max),
            ms(big_took)
        );
    }

    assert_eq!(app.running("a").len() as u64, BIG);
    assert_eq!(app.running("b").len(), 2, "the big scale touched b");
    let listed = app.get("/service").await.body;
    assert_eq!(
        listed.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["a", "b"],
        "the probes' services were all deleted"
    );
}

#[tokio::test]
async fn racing_posts_of_one_name_create_it_once_and_store_the_winners_body() {
    const WRITERS: usize = 32;
    let app = TestApp::spawn().await;
    let bodies: Vec<Value> = (0..WRITERS)
        .map(|i| {
            json!({"name": "race", "image": TEST_IMAGE, "command": format!("sleep {}", 1000 + i),
                   "environment": {"WRITER": i.to_string()}})
        })
        .collect();
    let began = Instant::now();
    let replies = join_all(bodies.iter().map(|body| app.create(body.clone()))).await;
    let took = began.elapsed();

    let winners: Vec<usize> = (0..WRITERS).filter(|&i| replies[i].status == 201).collect();
    assert_eq!(winners.len(), 1, "201s: {winners:?}");
    let winner = winners[0];
    for (i, reply) in replies.iter().enumerate().filter(|&(i, _)| i != winner) {
        assert_eq!(reply.status, 409, "writer {i}: {}", brief(reply));
        assert_eq!(reply.error(), "service 'race' already exists");
    }
    let expected = json!({"name": "race", "image": TEST_IMAGE,
                          "command": format!("sleep {}", 1000 + winner),
                          "environment": {"WRITER": winner.to_string()}, "ports": null});
    assert_eq!(
        replies[winner].body, expected,
        "the 201 answers its own body"
    );
    assert_eq!(
        app.show("race").await.body,
        expected,
        "a loser overwrote the winner"
    );
    // The file was written before the 201, and no loser wrote after it.
    let file = app.stored_state();
    let stored = &file["services"]["race"];
    assert_eq!(
        file["services"].as_object().map(|services| services.len()),
        Some(1)
    );
    assert_eq!(
        (
            &stored["definition"],
            &stored["desired"],
            &stored["history"]
        ),
        (&expected, &json!(0), &json!([]))
    );
    assert_eq!(
        stored["changes"].as_array().map(Vec::len),
        Some(1),
        "one creation in the history: {stored}"
    );
    record_figures(
        "concurrency-post-race",
        &[(
            "racing POSTs of one name",
            format!(
                "{WRITERS}: one 201, {} 409, all answered in {}",
                WRITERS - 1,
                ms(took)
            ),
        )],
    );
}

#[tokio::test]
async fn racing_puts_of_a_new_name_create_it_once_and_replace_it_after() {
    const WRITERS: usize = 32;
    let app = TestApp::spawn().await;
    let bodies: Vec<Value> = (0..WRITERS)
        .map(|i| json!({"image": TEST_IMAGE, "environment": {"WRITER": i.to_string()}}))
        .collect();
    let began = Instant::now();
    let replies = join_all(bodies.iter().map(|body| app.put("race", body.clone()))).await;
    let took = began.elapsed();

    let mut by_status = BTreeMap::new();
    for reply in &replies {
        *by_status.entry(reply.status).or_insert(0) += 1;
    }
    assert_eq!(
        by_status,
        BTreeMap::from([(200, WRITERS - 1), (201, 1)]),
        "{:?}",
        replies.iter().map(brief).collect::<Vec<_>>()
    );
    for (i, reply) in replies.iter().enumerate() {
        assert_eq!(reply.body["environment"]["WRITER"], i.to_string());
    }
    // Writes are applied one after another, so the stored definition is one
    // writer's whole body, never a mix, and the file holds the same.
    let stored = app.show("race").await.body;
    assert!(
        replies.iter().any(|reply| reply.body == stored),
        "stored {stored} is no writer's body"
    );
    let file = app.stored_state();
    let services = file["services"].as_object().unwrap();
    assert_eq!(services.keys().collect::<Vec<_>>(), ["race"]);
    assert_eq!(services["race"]["definition"], stored);
    assert_eq!(services["race"]["desired"], 0);
    record_figures(
        "concurrency-put-race",
        &[(
            "racing PUTs of a new name",
            format!(
                "{WRITERS}: one 201, {} 200, all answered in {}",
                WRITERS - 1,
                ms(took)
            ),
        )],
    );
}

#[tokio::test]
async fn racing_deletes_of_one_service_delete_it_once_and_leave_no_container() {
    const DELETERS: usize = 32;
    let app = TestApp::spawn().await;
    app.create_service("doomed", json!({})).await;
    // Containers make the winning delete slow, so the others queue behind it.
    assert_scaled(&app.scale("doomed", json!(3)).await, 3, "scale");

    let began = Instant::now();
    let replies = join_all((0..DELETERS).map(|_| app.delete("doomed"))).await;
    let took = began.elapsed();
    let deleted = replies.iter().filter(|r| r.status == 204).count();
    assert_eq!(
        deleted,
        1,
        "{:?}",
        replies.iter().map(brief).collect::<Vec<_>>()
    );
    for reply in replies.iter().filter(|r| r.status != 204) {
        assert_eq!(reply.status, 404, "{}", brief(reply));
        assert_eq!(reply.error(), "service 'doomed' does not exist");
    }
    assert!(app.containers(Some("doomed")).is_empty());
    assert_eq!(app.show("doomed").await.status, 404);
    assert_eq!(app.status("doomed").await.status, 404);

    // The name is usable again: the losers' wait left no stuck lock behind.
    app.create_service("doomed", json!({})).await;
    assert_scaled(&app.scale("doomed", json!(1)).await, 1, "scale after");
    assert_eq!(app.delete("doomed").await.status, 204);
    assert!(app.containers(Some("doomed")).is_empty());
    record_figures(
        "concurrency-delete-race",
        &[(
            "racing DELETEs of a service with 3 containers",
            format!(
                "{DELETERS}: one 204, {} 404, all answered in {}",
                DELETERS - 1,
                ms(took)
            ),
        )],
    );
}

#[tokio::test]
async fn a_delete_racing_scales_of_its_service_leaves_no_container_behind() {
    let app = &TestApp::spawn().await;
    app.create_service("contested", json!({})).await;
    assert_scaled(&app.scale("contested", json!(1)).await, 1, "scale");

    // Scales queued before the delete run and are then undone by it; those
    // queued after it find no service. Either way nothing may survive.
    let scales = join_all((0..12u64).map(|i| async move {
        tokio::time::sleep(Duration::from_millis(50 * i)).await;
        (i, app.scale("contested", json!(1 + i % 3)).await)
    }));
    let delete = async {
        tokio::time::sleep(Duration::from_millis(250)).await;
        app.delete("contested").await
    };
    let (scales, deleted) = tokio::join!(scales, delete);

    assert_eq!(deleted.status, 204, "{}", brief(&deleted));
    let mut outcomes = BTreeMap::new();
    for (i, reply) in &scales {
        match reply.status {
            200 => assert_scaled(reply, 1 + i % 3, "scale before the delete"),
            404 => assert_eq!(reply.error(), "service 'contested' does not exist"),
            _ => panic!("scale {i}: {}", brief(reply)),
        }
        *outcomes.entry(reply.status).or_insert(0) += 1;
    }
    println!("scales racing a delete: {outcomes:?}");
    // The delete was sent mid-stream, so some scales must have gone first
    // and some after, or the race was not exercised.
    assert!(
        outcomes.contains_key(&200) && outcomes.contains_key(&404),
        "{outcomes:?}"
    );
    assert!(
        app.containers(Some("contested")).is_empty(),
        "containers outlived their service's delete: {:?}",
        app.containers(Some("contested"))
    );
    assert_eq!(app.show("contested").await.status, 404);
    record_figures(
        "concurrency-delete-vs-scales",
        &[(
            "12 scales racing a delete",
            format!(
                "{} ran before it (200), {} found no service (404); no container left",
                outcomes.get(&200).unwrap_or(&0),
                outcomes.get(&404).unwrap_or(&0)
            ),
        )],
    );
}
