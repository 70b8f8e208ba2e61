//! The desired state, the reconciler and rolling updates, against the real
//! engine: what a user of Swarm or Kubernetes expects of a single host.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::support::app::{poll_until, AppOptions, TestApp};
use crate::support::docker::{docker, host_bindings, TEST_IMAGE};
use crate::support::figures::record_figures;
use crate::support::process::real_docker;

/// Short settle times keep rolls quick in tests; the default is 2 s.
const SETTLE: &str = "0.5";

fn rolling_options() -> AppOptions {
    AppOptions::new().env("ROCKET_UPDATE_SETTLE", SETTLE)
}

/// Options whose docker CLI appends each call's time and verb to
/// `calls.log` in `dir`, then runs the real CLI.
fn counting_docker(dir: &Path) -> AppOptions {
    let log = dir.join("calls.log");
    AppOptions::new().fake_docker(
        dir,
        &format!(
            "echo \"$(date +%s.%N) $1\" >> '{}'\nexec '{}' \"$@\"",
            log.display(),
            real_docker()
        ),
    )
}

/// The docker calls so far, from [`counting_docker`]'s log: (seconds since
/// the epoch, verb).
fn calls(dir: &Path) -> Vec<(f64, String)> {
    std::fs::read_to_string(dir.join("calls.log"))
        .unwrap_or_default()
        .lines()
        .filter_map(|line| {
            let (at, verb) = line.split_once(' ')?;
            Some((at.parse().ok()?, verb.to_owned()))
        })
        .collect()
}

/// The verbs of [`calls`] from the `from`th on.
fn verbs_since(dir: &Path, from: usize) -> Vec<String> {
    calls(dir)
        .into_iter()
        .skip(from)
        .map(|(_, verb)| verb)
        .collect()
}

/// The hash label of a container.
fn hash_of(id: &str) -> String {
    docker(&[
        "inspect",
        "--format",
        "{{index .Config.Labels \"docker-connector.config-hash\"}}",
        id,
    ])
    .trim()
    .to_owned()
}

/// Polls status until `done` holds for its body; returns that body.
pub(crate) async fn status_until(
    app: &TestApp,
    service: &str,
    limit: Duration,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let body = poll_until(limit, || async {
        let body = app.status(service).await.body;
        (done(&body), body)
    })
    .await;
    assert!(
        done(&body),
        "status never got there within {limit:?}: {body:#}\nlog:\n{}",
        app.log()
    );
    body
}

fn current_running(body: &Value) -> usize {
    body["containers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["state"] == "running" && c["current"] == true)
        .count()
}

/// Replaces the definition of "web" with the test image and `environment`
/// (a change that rolls); asserts the PUT succeeded.
async fn replace_environment(app: &TestApp, environment: Value) {
    let body = json!({"image": TEST_IMAGE, "environment": environment});
    let reply = app.put("web", body).await;
    assert_eq!(reply.status, 200, "{reply:?}");
}

/// How many containers of "web" docker lists in any state, once that is
/// `expected` or 5 s have passed: a removal the status already reflects
/// may still be finishing.
async fn all_settled(app: &TestApp, expected: usize) -> usize {
    poll_until(Duration::from_secs(5), || async {
        let all = app.containers(Some("web")).len();
        (all == expected, all)
    })
    .await
}

/// `docker ps` of the test's running containers of `service`, sampled
/// every 20 ms until `stop` is set; returns the fewest seen and how many
/// samples were taken.
fn sample_running(
    app: &TestApp,
    service: &str,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<(usize, usize)> {
    let instance = format!("label=docker-connector.instance={}", app.instance);
    let service = format!("label=docker-connector.service={service}");
    std::thread::spawn(move || {
        let (mut fewest, mut samples) = (usize::MAX, 0);
        while !stop.load(Ordering::SeqCst) {
            let out = docker(&["ps", "-q", "--filter", &instance, "--filter", &service]);
            fewest = fewest.min(out.lines().count());
            samples += 1;
            std::thread::sleep(Duration::from_millis(20));
        }
        (fewest, samples)
    })
}

#[tokio::test]
async fn a_killed_or_removed_container_is_replaced_within_5_seconds_and_none_is_left_exited() {
    let app = TestApp::spawn().await;
    app.create_service("web", json!({})).await;
    assert_eq!(app.scale("web", json!(2)).await.status, 200);

    let mut figures = Vec::new();
    for (how, verb) in [
        ("docker kill", "kill"),
        ("docker rm -f", "rm"),
        ("docker stop", "stop"),
    ] {
        let before = app.running("web");
        let victim = before[0].clone();
        let killed = Instant::now();
        match verb {
            "rm" => docker(&["rm", "-f", &victim]),
            "stop" => docker(&["stop", "-t", "0", &victim]),
            _ => docker(&["kill", &victim]),
        };
        let running = poll_until(Duration::from_secs(5), || async {
            let running = app.running("web");
            (running.len() == 2 && !running.contains(&victim), running)
        })
        .await;
        assert!(
            running.len() == 2 && !running.contains(&victim),
            "after {how}, still {running:?} after 5 s; log:\n{}",
            app.log()
        );
        let replaced_after = killed.elapsed();
        let all = poll_until(Duration::from_secs(5), || async {
            let all = app.containers(Some("web"));
            (all.len() == 2, all)
        })
        .await;
        assert_eq!(
            all.len(),
            2,
            "after {how}, a dead container was left: {all:?}"
        );
        let status = app.status("web").await.body;
        assert_eq!(status["running_resources"], 2, "{status:#}");
        assert_eq!(status["desired_resources"], 2, "{status:#}");
        figures.push((
            how,
            format!("replaced after {} ms", replaced_after.as_millis()),
        ));
    }
    record_figures("self-healing", &figures);
}

#[tokio::test]
async fn status_lists_each_container_with_its_published_ports_and_restart_policy() {
    let app = TestApp::spawn().await;
    app.create_service("web", json!({"ports": ["8080", "5353/udp"]}))
        .await;
    assert_eq!(app.scale("web", json!(2)).await.status, 200);
    let body = app.status("web").await.body;
    assert_eq!(body["running_resources"], 2, "{body:#}");
    assert_eq!(body["desired_resources"], 2, "{body:#}");
    assert_eq!(body["rollout"]["state"], "complete", "{body:#}");
    assert_eq!(body["problem"], Value::Null, "{body:#}");
    let containers = body["containers"].as_array().unwrap();
    assert_eq!(containers.len(), 2, "{body:#}");
    let mut ids = app.running("web");
    ids.sort();
    let mut listed: Vec<String> = containers
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_owned())
        .collect();
    listed.sort();
    assert_eq!(listed, ids);
    for container in containers {
        let id = container["id"].as_str().unwrap();
        assert_eq!(container["state"], "running");
        assert_eq!(container["current"], true);
        // What brings it back after an engine restart (not restarted here:
        // the engine is shared).
        let policy = docker(&[
            "inspect",
            "--format",
            "{{.HostConfig.RestartPolicy.Name}}",
            id,
        ]);
        assert_eq!(policy.trim(), "unless-stopped");
        assert!(container["name"]
            .as_str()
            .unwrap()
            .starts_with(&app.instance));
        let created = container["created"].as_i64().unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        assert!((now - 120..=now + 5).contains(&created), "{created}");
        for port in ["8080/tcp", "5353/udp"] {
            let (host_port, _) = host_bindings(id, port);
            assert_eq!(container["ports"][port], json!(host_port), "{container:#}");
        }
    }
}

#[tokio::test]
async fn a_crash_loop_is_restarted_by_the_engine_with_backoff_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::spawn_with(counting_docker(dir.path())).await;
    app.create_service("web", json!({"command": ["sh", "-c", "exit 3"]}))
        .await;
    app.scale("web", json!(2)).await;
    let body = status_until(&app, "web", Duration::from_secs(10), |b| {
        b["problem"].as_str().is_some_and(|p| p.contains("code 3"))
    })
    .await;
    assert_eq!(body["desired_resources"], 2, "{body:#}");

    // Over a 10 s window, the connector leaves the restarting containers to
    // the engine, and the engine's restarts slow down.
    let ids = app.containers(Some("web"));
    assert_eq!(
        ids.len(),
        2,
        "the crashing containers were replaced: {ids:?}"
    );
    let restarts = |id: &str| -> u64 {
        docker(&["inspect", "--format", "{{.RestartCount}}", id])
            .trim()
            .parse()
            .unwrap()
    };
    let calls_before = calls(dir.path()).len();
    let restarts_before = restarts(&ids[0]);
    tokio::time::sleep(Duration::from_secs(10)).await;
    let window = verbs_since(dir.path(), calls_before);
    let restarts_in_window = restarts(&ids[0]) - restarts_before;
    record_figures(
        "self-healing-crash-loop",
        &[(
            "a command exiting at once, over 10 s",
            format!(
                "{} docker calls by the connector ({}), {restarts_in_window} engine restarts",
                window.len(),
                window.join(" ")
            ),
        )],
    );
    assert!(
        window
            .iter()
            .filter(|verb| *verb == "run" || *verb == "rm")
            .count()
            == 0,
        "the connector fought the engine's restarts: {window:?}"
    );
    // Listings are the index's own (ten a second apart after its event
    // stream starts, which is when this window begins, then one every
    // 30 s), not the connector acting on the crash loop.
    let acting: Vec<&String> = window.iter().filter(|verb| *verb != "ps").collect();
    assert!(
        acting.len() <= 4,
        "too many docker calls in 10 s: {window:?}"
    );
    // 0.1 s doubling: at most 7 restarts fit in 10 s (0.1 + ... + 6.4 s).
    assert!(
        restarts_in_window <= 7,
        "{restarts_in_window} restarts in 10 s"
    );
    assert_eq!(app.containers(Some("web")), ids);
    let body = app.status("web").await.body;
    let restarted = body["containers"]
        .as_array()
        .unwrap()
        .iter()
        .all(|c| c["last_exit_code"] == 3 && c["restarts"].as_u64() >= Some(1));
    assert!(restarted, "{body:#}");
}

#[tokio::test]
async fn a_missing_image_backs_off_exponentially_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::spawn_with(counting_docker(dir.path())).await;
    app.create(json!({"name": "web", "image": "docker-connector-absent:1"}))
        .await;
    let reply = app.scale("web", json!(2)).await;
    assert_eq!(reply.status, 502, "{reply:?}");
    tokio::time::sleep(Duration::from_secs(12)).await;
    // Each attempt runs both starts at once; attempts are what the backoff
    // spaces out: the scale's own, then the reconciler's after about 1, 2
    // and 4 s more.
    let mut attempts: Vec<f64> = Vec::new();
    for (at, _) in calls(dir.path()).iter().filter(|(_, verb)| verb == "run") {
        if attempts.last().map_or(true, |last| at - last > 0.5) {
            attempts.push(*at);
        }
    }
    let gaps: Vec<f64> = attempts.windows(2).map(|w| w[1] - w[0]).collect();
    record_figures(
        "self-healing-missing-image",
        &[(
            "waits between start attempts",
            gaps.iter()
                .map(|g| format!("{g:.1} s"))
                .collect::<Vec<_>>()
                .join(", "),
        )],
    );
    assert!(
        (3..=5).contains(&gaps.len()),
        "{} attempts in 12 s: {gaps:?}",
        attempts.len()
    );
    assert!(
        gaps[0] >= 0.9,
        "the first retry came after {:.2} s",
        gaps[0]
    );
    assert!(
        gaps.windows(2).all(|w| w[1] >= 1.5 * w[0]),
        "the waits between attempts do not grow: {gaps:?}"
    );
    let body = app.status("web").await.body;
    assert_eq!(body["desired_resources"], 2, "{body:#}");
    assert_eq!(body["running_resources"], 0, "{body:#}");
    assert!(
        body["problem"]
            .as_str()
            .is_some_and(|p| p.contains("docker-connector-absent")),
        "{body:#}"
    );
    assert!(body["failed_attempts"].as_u64() >= Some(3), "{body:#}");
    assert!(app.containers(Some("web")).is_empty());
}

#[tokio::test]
async fn a_roll_replaces_every_container_start_first_never_dropping_below_desired() {
    let app = TestApp::spawn_with(rolling_options()).await;
    app.create_service("web", json!({"environment": {"VERSION": "1"}}))
        .await;
    assert_eq!(app.scale("web", json!(3)).await.status, 200);
    let old = app.running("web");

    let stop = Arc::new(AtomicBool::new(false));
    let sampler = sample_running(&app, "web", stop.clone());
    let statuses = Arc::new(AtomicUsize::new(usize::MAX));
    let rolled = Instant::now();
    replace_environment(&app, json!({"VERSION": "2"})).await;
    let body = poll_until(Duration::from_secs(30), || async {
        let body = app.status("web").await.body;
        let running = body["running_resources"].as_u64().unwrap() as usize;
        statuses.fetch_min(running, Ordering::SeqCst);
        (body["rollout"]["state"] == "complete", body)
    })
    .await;
    stop.store(true, Ordering::SeqCst);
    let (fewest, samples) = sampler.join().unwrap();
    record_figures(
        "rolling-update",
        &[(
            "a roll of 3 containers, one at a time, settle 0.5 s",
            format!(
                "took {} ms; fewest running in {samples} docker ps samples: {fewest}",
                rolled.elapsed().as_millis()
            ),
        )],
    );
    assert_eq!(
        body["rollout"]["state"],
        "complete",
        "{body:#}\n{}",
        app.log()
    );
    assert!(
        fewest >= 3,
        "docker ps saw only {fewest} running during the roll"
    );
    assert!(
        statuses.load(Ordering::SeqCst) >= 3,
        "status said {} running during the roll",
        statuses.load(Ordering::SeqCst)
    );
    // The last old container's removal may still be under way: docker's
    // listing lags its events by a few tens of milliseconds.
    let new = poll_until(Duration::from_secs(5), || async {
        let new = app.running("web");
        (new.len() == 3, new)
    })
    .await;
    assert_eq!(new.len(), 3, "{body:#}\n{}", app.log());
    assert!(
        new.iter().all(|id| !old.contains(id)),
        "old containers remain"
    );
    for id in &new {
        let env = docker(&["inspect", "--format", "{{json .Config.Env}}", id]);
        assert!(env.contains("VERSION=2"), "{env}");
    }
    assert_eq!(all_settled(&app, 3).await, 3);
}

/// A new container stopped by someone else while its batch settles is no
/// proof against the definition (the soak of issue 20 saw such rolls go
/// back by themselves): the roll goes on, and nothing goes back.
#[tokio::test]
async fn a_roll_whose_new_container_is_stopped_from_outside_goes_on_and_does_not_go_back() {
    let app = TestApp::spawn_with(AppOptions::new().env("ROCKET_UPDATE_SETTLE", "3")).await;
    app.create_service("web", json!({"environment": {"VERSION": "1"}}))
        .await;
    assert_eq!(app.scale("web", json!(1)).await.status, 200);
    let old = app.running("web");
    replace_environment(&app, json!({"VERSION": "2"})).await;
    // The batch's new container, found while it settles.
    let new = poll_until(Duration::from_secs(10), || async {
        let new: Vec<String> = app
            .running("web")
            .into_iter()
            .filter(|id| !old.contains(id))
            .collect();
        (!new.is_empty(), new)
    })
    .await;
    assert_eq!(new.len(), 1, "no new container settled:\n{}", app.log());
    docker(&["stop", "-t", "0", &new[0]]);

    let body = status_until(&app, "web", Duration::from_secs(30), |body| {
        body["rollout"]["state"] != "rolling" && current_running(body) == 1
    })
    .await;
    assert_eq!(
        body["rollout"]["state"],
        "complete",
        "{body:#}\n{}",
        app.log()
    );
    assert!(
        !app.log().contains("went back by itself"),
        "the roll went back:\n{}",
        app.log()
    );
    let running = poll_until(Duration::from_secs(5), || async {
        let running = app.running("web");
        (running.len() == 1, running)
    })
    .await;
    let env = docker(&["inspect", "--format", "{{json .Config.Env}}", &running[0]]);
    assert!(env.contains("VERSION=2"), "{env}");
}

#[tokio::test]
async fn a_roll_whose_new_definition_cannot_run_goes_back_and_the_old_containers_keep_serving() {
    let app = TestApp::spawn_with(rolling_options()).await;
    let original = app.create_service("web", json!({})).await;
    assert_eq!(app.scale("web", json!(2)).await.status, 200);
    let mut old = app.running("web");
    old.sort();
    let old_hash = hash_of(&old[0]);

    for (broken, why) in [
        (
            json!({"image": TEST_IMAGE, "command": ["sh", "-c", "exit 7"]}),
            "code 7",
        ),
        (
            json!({"image": "docker-connector-absent:2"}),
            "docker-connector-absent",
        ),
    ] {
        assert_eq!(app.put("web", broken).await.status, 200);
        // The roll stops, and the service goes back by itself to the
        // definition its old containers run (see tests/api/rollback.rs).
        let body = status_until(&app, "web", Duration::from_secs(15), |b| {
            b["rollout"]["state"] == "rolled_back"
        })
        .await;
        let error = body["rollout"]["error"].as_str().unwrap_or_default();
        assert!(error.contains(why), "{body:#}");
        assert_eq!(body["running_resources"], 2, "{body:#}");
        assert_eq!(body["rollout"]["outdated"], 0, "{body:#}");
        assert_eq!(app.show("web").await.body, original);
        // Whatever the failed attempt started is gone again.
        let mut left = poll_until(Duration::from_secs(5), || async {
            let left = app.containers(Some("web"));
            (left.len() == 2, left)
        })
        .await;
        left.sort();
        assert_eq!(left, old, "the old containers must keep serving");
    }

    // A container that dies is replaced from the definition that runs, not
    // the broken one.
    docker(&["kill", &old[0]]);
    let running = poll_until(Duration::from_secs(5), || async {
        let running = app.running("web");
        (running.len() == 2 && !running.contains(&old[0]), running)
    })
    .await;
    assert!(
        running.len() == 2 && !running.contains(&old[0]),
        "{running:?}\n{}",
        app.log()
    );
    for id in &running {
        assert_eq!(hash_of(id), old_hash, "{id} runs another definition");
    }
    // Scales keep to the old definition too, and never cost a serving
    // container.
    for target in [3, 2] {
        let reply = app.scale("web", json!(target)).await;
        assert_eq!(reply.status, 200, "{reply:?}");
        assert_eq!(reply.body["running_resources"], target, "{reply:?}");
        let running = app.running("web");
        assert!(
            running.iter().all(|id| hash_of(id) == old_hash),
            "{running:?}"
        );
    }

    // A fixed definition rolls at once and clears the rollback's report.
    let fixed = Instant::now();
    replace_environment(&app, json!({"FIXED": "1"})).await;
    let body = status_until(&app, "web", Duration::from_secs(6), |b| {
        b["rollout"]["state"] == "complete" && current_running(b) == 2
    })
    .await;
    println!("fixed definition rolled out in {:?}", fixed.elapsed());
    assert_eq!(body["failed_attempts"], 0, "{body:#}");
    assert_eq!(body["problem"], Value::Null, "{body:#}");
    assert_eq!(body["rollout"]["error"], Value::Null, "{body:#}");
}

#[tokio::test]
async fn a_scale_up_that_cannot_start_the_new_definition_is_filled_from_the_old_one() {
    let app = TestApp::spawn_with(rolling_options()).await;
    let original = app.create_service("web", json!({})).await;
    assert_eq!(app.scale("web", json!(2)).await.status, 200);
    let old_hash = hash_of(&app.running("web")[0]);
    let reply = app
        .put("web", json!({"image": "docker-connector-absent:3"}))
        .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    // Before the roll has tried the new image, a scale does, and fails.
    let reply = app.scale("web", json!(3)).await;
    if reply.status != 200 {
        assert_eq!(reply.status, 502, "{reply:?}");
        assert!(
            reply.error().contains("docker-connector-absent"),
            "{reply:?}"
        );
    }
    // The reconciler then fills the place from the definition that runs.
    let running = poll_until(Duration::from_secs(8), || async {
        let running = app.running("web");
        (running.len() == 3, running)
    })
    .await;
    assert_eq!(running.len(), 3, "{}", app.log());
    for id in &running {
        assert_eq!(hash_of(id), old_hash, "{id} runs another definition");
    }
    // The scale's failure alone changes no definition; the roll's own
    // attempt, after its backoff, fails too and goes back.
    let body = status_until(&app, "web", Duration::from_secs(10), |b| {
        b["rollout"]["state"] == "rolled_back"
    })
    .await;
    assert_eq!(body["desired_resources"], 3, "{body:#}");
    assert_eq!(app.show("web").await.body, original);
}

/// A connector rolling 3 containers of "web" to a new environment, one at
/// a time with a 1 s settle: slow enough to act in the middle of.
async fn start_a_slow_roll() -> TestApp {
    let app = TestApp::spawn_with(rolling_options().env("ROCKET_UPDATE_SETTLE", "1")).await;
    app.create_service("web", json!({"environment": {"V": "1"}}))
        .await;
    app.scale("web", json!(3)).await;
    replace_environment(&app, json!({"V": "2"})).await;
    app
}

#[tokio::test]
async fn a_scale_during_a_roll_is_honoured_and_the_roll_completes() {
    let app = start_a_slow_roll().await;
    status_until(&app, "web", Duration::from_secs(10), |b| {
        b["rollout"]["updated"].as_u64() >= Some(1)
    })
    .await;
    let reply = app.scale("web", json!(5)).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.body["running_resources"], 5, "{reply:?}");
    let body = status_until(&app, "web", Duration::from_secs(30), |b| {
        b["rollout"]["state"] == "complete" && current_running(b) == 5
    })
    .await;
    assert_eq!(body["desired_resources"], 5);
    assert_eq!(all_settled(&app, 5).await, 5);
}

#[tokio::test]
async fn after_a_kill_mid_roll_the_restarted_connector_finishes_the_roll() {
    let mut app = start_a_slow_roll().await;
    // Killed as the first new container settles, before an old one goes.
    status_until(&app, "web", Duration::from_secs(10), |b| {
        b["containers"].as_array().unwrap().len() == 4
    })
    .await;
    app.restart();
    let body = status_until(&app, "web", Duration::from_secs(30), |b| {
        b["rollout"]["state"] == "complete"
            && current_running(b) == 3
            && b["containers"].as_array().unwrap().len() == 3
    })
    .await;
    assert_eq!(body["desired_resources"], 3, "{body:#}");
    assert_eq!(all_settled(&app, 3).await, 3);
    assert_eq!(app.running("web").len(), 3);
}

#[tokio::test]
async fn on_start_the_connector_brings_services_back_to_their_desired_counts() {
    let mut app = TestApp::spawn().await;
    app.create_service("web", json!({})).await;
    app.create_service("db", json!({})).await;
    app.scale("web", json!(2)).await;
    app.scale("db", json!(1)).await;
    app.stop();
    // While it is down, its containers go.
    let mut all = app.containers(None);
    all.insert(0, "-f".into());
    all.insert(0, "rm".into());
    docker(&all.iter().map(String::as_str).collect::<Vec<_>>());
    app.restart();
    for (service, desired) in [("web", 2), ("db", 1)] {
        let body = status_until(&app, service, Duration::from_secs(10), |b| {
            b["running_resources"] == desired
        })
        .await;
        assert_eq!(body["desired_resources"], desired);
    }
}

#[tokio::test]
async fn with_reconcile_off_the_connector_acts_only_when_called() {
    let app = TestApp::spawn_with(AppOptions::new().without_reconciler()).await;
    app.create_service("web", json!({})).await;
    app.scale("web", json!(2)).await;
    let victim = app.running("web")[0].clone();
    docker(&["kill", &victim]);
    app.wait_for_running("web", 1, Duration::from_secs(5), "a kill")
        .await;
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(app.running("web").len(), 1, "something replaced it");
    assert_eq!(app.containers(Some("web")).len(), 2, "something removed it");
    let body = app.status("web").await.body;
    assert_eq!(body["desired_resources"], 2);
    // A change of definition waits for a scale, too.
    replace_environment(&app, json!({"V": "2"})).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let body = app.status("web").await.body;
    assert_eq!(body["rollout"]["state"], "manual", "{body:#}");
    assert_eq!(body["rollout"]["outdated"], 1, "{body:#}");
    let reply = app.scale("web", json!(2)).await;
    assert_eq!(reply.body["running_resources"], 2, "{reply:?}");
    assert_eq!(app.containers(Some("web")).len(), 2);
}
