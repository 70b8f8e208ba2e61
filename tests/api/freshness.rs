//! Status answers from the connector's in-memory index, fed by `docker
//! events`: it must never be staler than the events themselves. A scale's
//! answer is what the next status says; a container killed or removed behind
//! the connector's back shows within a second; when the event stream breaks,
//! status asks docker (one listing at a time, shared) until the stream runs
//! again; the stream dies with the connector.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::app::{AppOptions, TestApp};
use crate::support::docker::{docker, ForeignContainer, TEST_IMAGE};
use crate::support::figures::record_figures;
use crate::support::process::{real_docker, send_signal, Process};
use crate::support::rng::Rng;

/// The promise for a change made behind the connector's back.
const FRESHNESS: Duration = Duration::from_secs(1);

/// Whether `/health` says the index follows docker's events.
async fn index_is_live(app: &TestApp) -> bool {
    let health = app.get("/health").await;
    health.body["container_index"]["live"] == json!(true)
}

/// Waits up to `limit` for the index to be live; panics otherwise.
pub(crate) async fn wait_until_live(app: &TestApp, limit: Duration) {
    let started = Instant::now();
    while !index_is_live(app).await {
        assert!(
            started.elapsed() < limit,
            "the container index is not live after {limit:?}:\n{}",
            app.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// How long status took to report `expected` running containers of
/// `service` after `what`; panics past `FRESHNESS` (polling gives up later,
/// with a margin for a loaded machine's scheduling of the poll itself).
async fn time_until_status(app: &TestApp, service: &str, expected: usize, what: &str) -> Duration {
    let elapsed = app
        .wait_for_running(service, expected, FRESHNESS + Duration::from_secs(4), what)
        .await;
    assert!(
        elapsed < FRESHNESS,
        "{what}: status showed it after {elapsed:?}, more than {FRESHNESS:?}"
    );
    elapsed
}

/// The connector's running `docker events` children, by pid.
fn event_streams(connector: u32) -> Vec<u32> {
    Process::all()
        .into_iter()
        .filter(|p| p.parent == connector && p.has_arg("events") && p.is_running())
        .map(|p| p.pid)
        .collect()
}

#[tokio::test]
async fn every_scale_answer_is_what_the_next_status_says() {
    let app = TestApp::spawn_with(AppOptions::new().without_reconciler()).await;
    app.create_service("web", json!({})).await;
    wait_until_live(&app, Duration::from_secs(10)).await;
    let (mut rng, seed) = Rng::from_env_or_clock("FRESHNESS_SEED");
    println!("seed {seed} (set FRESHNESS_SEED={seed} to replay)");
    for _ in 0..8 {
        let target = rng.below(6);
        let reply = app.scale("web", json!(target)).await;
        assert_eq!(reply.status, 200, "{reply:?}");
        let status = app.status("web").await;
        assert_eq!(
            status.body["running_resources"], reply.body["running_resources"],
            "scale to {target} answered {:?}, the next status {:?}",
            reply.body, status.body
        );
        assert_eq!(app.running("web").len() as u64, target);
    }
    assert!(
        index_is_live(&app).await,
        "status came from listings, not the index"
    );
}

#[tokio::test]
async fn changes_behind_the_connectors_back_show_in_status_within_a_second() {
    let app = TestApp::spawn_with(AppOptions::new().without_reconciler()).await;
    app.create_service("web", json!({})).await;
    let reply = app.scale("web", json!(4)).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    wait_until_live(&app, Duration::from_secs(10)).await;

    let ids = app.running("web");
    let mut delays = Vec::new();
    docker(&["kill", &ids[0]]);
    delays.push(time_until_status(&app, "web", 3, "docker kill").await);
    docker(&["rm", "-f", &ids[1]]);
    delays.push(time_until_status(&app, "web", 2, "docker rm -f").await);
    docker(&["stop", "-t", "0", &ids[2]]);
    delays.push(time_until_status(&app, "web", 1, "docker stop").await);
    docker(&["pause", &ids[3]]);
    delays.push(time_until_status(&app, "web", 0, "docker pause").await);
    docker(&["unpause", &ids[3]]);
    delays.push(time_until_status(&app, "web", 1, "docker unpause").await);
    docker(&["start", &ids[0]]);
    delays.push(time_until_status(&app, "web", 2, "docker start").await);
    // A container someone else starts with the service's labels counts too:
    // the labels, not the connector's memory, say what belongs to a service.
    let instance_label = format!("docker-connector.instance={}", app.instance);
    docker(&[
        "run",
        "-d",
        "--label",
        &instance_label,
        "--label",
        "docker-connector.service=web",
        "--",
        TEST_IMAGE,
    ]);
    delays.push(time_until_status(&app, "web", 3, "docker run with the labels").await);

    let slowest = delays.iter().max().unwrap();
    record_figures(
        "freshness",
        &[(
            "changes behind the connector's back seen in status",
            format!(
                "{} of {}, slowest after {slowest:.0?}",
                delays.len(),
                delays.len()
            ),
        )],
    );
}

#[tokio::test]
async fn status_stays_right_while_the_event_stream_restarts_and_the_stream_dies_with_the_connector()
{
    let mut app = TestApp::spawn_with(AppOptions::new().without_reconciler()).await;
    app.create_service("web", json!({})).await;
    let reply = app.scale("web", json!(3)).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    wait_until_live(&app, Duration::from_secs(10)).await;
    let streams = event_streams(app.pid());
    assert_eq!(streams.len(), 1, "one docker events child: {streams:?}");

    // Break the stream and change something before it can run again.
    send_signal(streams[0], "KILL");
    let ids = app.running("web");
    docker(&["kill", &ids[0]]);
    time_until_status(&app, "web", 2, "a kill while the stream restarts").await;

    wait_until_live(&app, Duration::from_secs(10)).await;
    let restarted = event_streams(app.pid());
    assert_eq!(restarted.len(), 1, "{restarted:?}");
    assert_ne!(restarted, streams, "the stream was not restarted");
    assert!(
        app.log().contains("docker events stream ended"),
        "{}",
        app.log()
    );
    // The restarted stream keeps the index fresh.
    docker(&["rm", "-f", &ids[1]]);
    time_until_status(&app, "web", 1, "a removal after the restart").await;
    let reply = app.scale("web", json!(3)).await;
    assert_eq!(reply.body["running_resources"], 3, "{reply:?}");
    assert_eq!(app.status("web").await.body["running_resources"], 3);

    // SIGKILL leaves the connector no chance to clean up: the kernel must
    // take its docker events child down with it.
    app.stop();
    let started = Instant::now();
    while Process::read(restarted[0]).is_some_and(|p| p.is_running()) {
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "docker events {} outlived the connector",
            restarted[0]
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn without_the_event_stream_status_requests_share_one_listing_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let calls = dir.path().join("calls");
    // docker events fails at once, so the index is never live. A listing of
    // the whole instance (`ps` without a service filter) logs its start and
    // end and takes half a second, so concurrent requests overlap it.
    let script = format!(
        "if [ \"$1\" = events ]; then echo 'events are off in this test' >&2; exit 1; fi\n\
         if [ \"$1\" != ps ]; then exec {real} \"$@\"; fi\n\
         case \"$*\" in *docker-connector.service=*) exec {real} \"$@\";; esac\n\
         echo start >> {calls}\n\
         sleep 0.5\n\
         {real} \"$@\"\n\
         status=$?\n\
         echo end >> {calls}\n\
         exit $status",
        calls = calls.display(),
        real = real_docker()
    );
    let app = TestApp::spawn_with(
        AppOptions::new()
            .without_reconciler()
            .fake_docker(dir.path(), &script),
    )
    .await;
    app.create_service("web", json!({})).await;
    let reply = app.scale("web", json!(2)).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert!(!index_is_live(&app).await);

    let log = || std::fs::read_to_string(&calls).unwrap_or_default();
    let starts = |log: &str| log.lines().filter(|l| *l == "start").count();
    let before = starts(&log());
    let replies = futures::future::join_all((0..20).map(|_| app.status("web"))).await;
    for reply in &replies {
        assert_eq!(reply.status, 200, "{reply:?}");
        assert_eq!(reply.body["running_resources"], 2, "{reply:?}");
    }
    let log = log();
    let started = starts(&log) - before;
    // The requests join the listing in flight (the event follower starts
    // one at each retry of its stream) or start one; a second only if the
    // first had ended before the last request came.
    assert!(
        started <= 2,
        "20 concurrent status requests started {started} listings"
    );
    // Over the connector's whole run, listings never overlapped.
    let mut in_flight = 0;
    for line in log.lines() {
        in_flight += if line == "start" { 1 } else { -1 };
        assert!(in_flight <= 1, "two listings ran at once:\n{log}");
    }
    record_figures(
        "freshness-fallback",
        &[(
            "status without the event stream",
            format!(
                "20 concurrent requests answered right; {started} listing(s) started meanwhile, \
                 {} in the connector's run, never two at once",
                starts(&log)
            ),
        )],
    );
}

#[tokio::test]
async fn a_stranger_with_this_instances_label_and_odd_label_values_breaks_no_listing() {
    let mut app = TestApp::spawn_with(AppOptions::new().without_reconciler()).await;
    // Anyone may label a container with this instance: a tab, a newline and
    // a quote in its labels must not shift the fields of a listing.
    let instance_label = format!("docker-connector.instance={}", app.instance);
    let stranger = ForeignContainer::run(&[
        "--label",
        &instance_label,
        "--label",
        "docker-connector.service=we\tb",
        "--label",
        "docker-connector.config-hash=a\"b\nc",
        "--",
        TEST_IMAGE,
    ]);
    app.create_service("web", json!({})).await;
    let reply = app.scale("web", json!(2)).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    // A fresh start seeds the index from a listing that includes it.
    app.restart();
    wait_until_live(&app, Duration::from_secs(10)).await;
    assert_eq!(app.status("web").await.body["running_resources"], 2);
    assert_eq!(stranger.state(), "running");
}
