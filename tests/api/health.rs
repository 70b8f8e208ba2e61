//! Health checks on the containers backend, against the real engine:
//! health in status, `?wait=healthy`, unhealthy containers replaced, and
//! rolls that wait for the new containers to pass their check.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::support::app::{backend_suite, poll_until, AppOptions, Backend, TestApp};
use crate::support::docker::{docker, TEST_IMAGE};

backend_suite!(a_scale_waiting_for_health_answers_once_as_many_pass);

/// The check: a file the container creates, so a test makes it fail with
/// `rm`. One second apart, two failures in a row make it unhealthy.
const INTERVAL_S: u64 = 1;
const RETRIES: u64 = 2;

fn healthcheck() -> Value {
    json!({"test": "test -f /tmp/ok", "interval": "1s", "timeout": "1s", "retries": RETRIES})
}

/// A definition whose containers pass the check once `delay` seconds after
/// they start.
fn checked_after(delay: u64, environment: Value) -> Value {
    json!({
        "image": TEST_IMAGE,
        "command": ["sh", "-c", format!("sleep {delay}; touch /tmp/ok; exec sleep 86400")],
        "environment": environment,
        "healthcheck": healthcheck(),
    })
}

async fn create_checked(app: &TestApp, delay: u64) {
    create_web(app, checked_after(delay, json!({}))).await;
}

async fn create_web(app: &TestApp, mut body: Value) {
    body["name"] = json!("web");
    let reply = app.create(body).await;
    assert_eq!(reply.status, 201, "{reply:?}");
}

async fn scale_waiting(app: &TestApp, number: u32, query: &str) -> crate::support::app::Reply {
    app.send_json(
        "POST",
        &format!("/service/web/scale?{query}"),
        &json!({ "number": number }),
    )
    .await
}

async fn status(app: &TestApp) -> Value {
    let reply = app.status("web").await;
    assert_eq!(reply.status, 200, "{reply:?}");
    reply.body
}

fn ids(status: &Value) -> Vec<String> {
    status["containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_owned())
        .collect()
}

/// On Swarm too: there a task with a check stays `starting` until it
/// passes, so the scale's own wait for running tasks already waits for it.
pub async fn a_scale_waiting_for_health_answers_once_as_many_pass(backend: Backend) {
    let app = TestApp::spawn_with(backend.options()).await;
    // It passes 2 s after it starts; the start period keeps the failures
    // before that from counting.
    let mut body = checked_after(2, json!({}));
    body["healthcheck"]["start_period"] = json!("30s");
    create_web(&app, body).await;
    let started = Instant::now();
    let reply = scale_waiting(&app, 2, "wait=healthy&timeout=60").await;
    assert_eq!(reply.status, 200, "{reply:?}\n{}", app.log());
    assert_eq!(
        reply.body,
        json!({"running_resources": 2, "desired_resources": 2})
    );
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "answered before the check could pass: {:?}",
        started.elapsed()
    );
    let now = status(&app).await;
    assert_eq!(now["healthy_resources"], 2, "{now}");
    for container in now["containers"].as_array().unwrap() {
        assert_eq!(container["health"], "healthy", "{now}");
    }
}

#[tokio::test]
async fn an_unhealthy_container_is_replaced_within_interval_times_retries_plus_two_seconds() {
    let app = TestApp::spawn().await;
    create_checked(&app, 0).await;
    let reply = scale_waiting(&app, 2, "wait=healthy&timeout=20").await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let before = status(&app).await;
    assert_eq!(before["healthy_resources"], 2, "{before}");
    assert_eq!(before["running_resources"], 2, "{before}");
    for container in before["containers"].as_array().unwrap() {
        assert_eq!(container["health"], "healthy", "{before}");
    }
    let before_ids = ids(&before);
    let victim = before_ids[0].clone();
    let victim_name = before["containers"][0]["name"].as_str().unwrap().to_owned();

    let broken = Instant::now();
    docker(&["exec", &victim, "/bin/busybox", "rm", "/tmp/ok"]);
    // Docker calls it unhealthy after `retries` failed checks, the first
    // of which may come up to an interval after the rm: the replacement
    // has interval x retries + 2 s from then. Replaced means the new
    // container runs (start-first); the unhealthy one's removal follows,
    // after its stop grace.
    let limit = Duration::from_secs(INTERVAL_S * (RETRIES + 1) + 2);
    let fresh = |status: &Value| ids(status).iter().any(|id| !before_ids.contains(id));
    // The problem is said while the unhealthy container is replaced, and
    // cleared once every container is healthy again, which on a fast host
    // can come before the unhealthy one's removal is seen: it is looked
    // for in every status read meanwhile.
    let said: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);
    let note_problem = |status: &Value| {
        let problem = status["problem"].as_str().unwrap_or_default();
        if problem.contains(&victim_name)
            && problem.contains("unhealthy")
            && problem.contains("replaced")
        {
            *said.lock().unwrap() = Some(problem.to_owned());
        }
    };
    let (took, replaced) = poll_until(limit + Duration::from_secs(5), || async {
        let now = status(&app).await;
        note_problem(&now);
        (fresh(&now), (broken.elapsed(), now))
    })
    .await;
    assert!(
        fresh(&replaced),
        "never replaced: {replaced}\n{}",
        app.log()
    );
    assert!(
        took <= limit,
        "replaced after {took:?}, over {limit:?}\n{}",
        app.log()
    );
    let now = poll_until(Duration::from_secs(15), || async {
        let now = status(&app).await;
        note_problem(&now);
        (!ids(&now).contains(&victim), now)
    })
    .await;
    assert!(!ids(&now).contains(&victim), "never removed: {now}");
    assert!(
        !app.containers(Some("web")).contains(&victim),
        "the unhealthy container is gone from docker too"
    );
    assert!(
        said.lock().unwrap().is_some(),
        "status never said {victim_name} was replaced for being unhealthy: {now}\n{}",
        app.log()
    );
    assert_eq!(
        now["running_resources"], 2,
        "start-first: never fewer: {now}"
    );
    // The replacement passes its check; the problem then clears.
    let settled = poll_until(Duration::from_secs(10), || async {
        let now = status(&app).await;
        (
            now["healthy_resources"] == 2 && now["problem"].is_null(),
            now,
        )
    })
    .await;
    assert_eq!(settled["healthy_resources"], 2, "{settled}");
    assert!(settled["problem"].is_null(), "{settled}");
}

#[tokio::test]
async fn a_scale_waiting_for_health_answers_504_with_the_counts_when_the_check_has_not_passed() {
    let app = TestApp::spawn().await;
    // In its start period, failed checks do not count: it stays starting.
    let mut body = checked_after(600, json!({}));
    body["healthcheck"]["start_period"] = json!("60s");
    create_web(&app, body).await;
    let started = Instant::now();
    let reply = scale_waiting(&app, 1, "wait=healthy&timeout=2s").await;
    assert_eq!(reply.status, 504, "{reply:?}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(reply.body["healthy_resources"], 0, "{reply:?}");
    assert_eq!(reply.body["running_resources"], 1, "{reply:?}");
    assert_eq!(reply.body["desired_resources"], 1, "{reply:?}");
    assert!(
        reply
            .error()
            .contains("0 of 1 containers are healthy after 2 s"),
        "{reply:?}"
    );
    let now = status(&app).await;
    assert_eq!(now["desired_resources"], 1, "the scale stands: {now}");
    assert_eq!(now["running_resources"], 1, "{now}");
    assert_eq!(now["healthy_resources"], 0, "{now}");
    assert_eq!(now["containers"][0]["health"], "starting", "{now}");
}

#[tokio::test]
async fn bad_wait_or_timeout_values_are_refused_naming_them_and_change_nothing() {
    let app = TestApp::spawn_with(AppOptions::new().without_reconciler()).await;
    create_checked(&app, 0).await;
    for (query, field) in [
        ("wait=running", "wait"),
        ("wait=", "wait"),
        ("timeout=5", "timeout"),
        ("wait=healthy&timeout=0", "timeout"),
        ("wait=healthy&timeout=601", "timeout"),
        ("wait=healthy&timeout=--5s", "timeout"),
    ] {
        let reply = scale_waiting(&app, 1, query).await;
        assert_eq!(reply.status, 400, "{query}: {reply:?}");
        assert!(
            reply.error().starts_with(&format!("{field}:")),
            "{query}: {reply:?}"
        );
    }
    assert!(app.containers(Some("web")).is_empty());
    assert_eq!(status(&app).await["desired_resources"], 0);
}

#[tokio::test]
async fn a_roll_removes_an_old_container_only_once_the_new_one_is_healthy() {
    // A settle time far shorter than the new container takes to pass: a
    // roll that only waited for it would leave nothing healthy meanwhile.
    let app = TestApp::spawn_with(AppOptions::new().env("ROCKET_UPDATE_SETTLE", "0.5")).await;
    create_checked(&app, 0).await;
    let reply = scale_waiting(&app, 1, "wait=healthy&timeout=20").await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let old = ids(&status(&app).await);

    // Its first checks fail: in a start period, they do not count.
    let mut new = checked_after(3, json!({"VERSION": "2"}));
    new["healthcheck"]["start_period"] = json!("20s");
    let reply = app.put("web", new).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let started = Instant::now();
    let mut saw_starting = false;
    loop {
        let now = status(&app).await;
        assert!(
            now["healthy_resources"].as_u64() >= Some(1),
            "nothing healthy during the roll after {:?}: {now}",
            started.elapsed()
        );
        saw_starting |= now["containers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["current"] == true && c["health"] == "starting");
        let rolled = now["rollout"]["state"] == "complete" && !ids(&now).contains(&old[0]);
        if rolled && now["healthy_resources"] == 1 {
            assert!(saw_starting, "the new container was seen starting: {now}");
            // It took its 3 s to pass, and the old one served meanwhile.
            assert!(
                started.elapsed() >= Duration::from_secs(3),
                "{:?}",
                started.elapsed()
            );
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the roll did not complete: {now}\n{}",
            app.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_roll_whose_new_container_turns_unhealthy_stops_and_the_old_one_serves_on() {
    let app = TestApp::spawn_with(AppOptions::new().env("ROCKET_UPDATE_SETTLE", "0.5")).await;
    create_checked(&app, 0).await;
    let reply = scale_waiting(&app, 1, "wait=healthy&timeout=20").await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let old = ids(&status(&app).await);
    let reply = app
        .put("web", checked_after(600, json!({"VERSION": "2"})))
        .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    // The roll fails; the service then goes back by itself (see rollback.rs).
    let stopped = poll_until(Duration::from_secs(20), || async {
        let now = status(&app).await;
        let state = now["rollout"]["state"].clone();
        (state == "failed" || state == "rolled_back", now)
    })
    .await;
    let error = stopped["rollout"]["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("did not become healthy") && error.contains("is unhealthy"),
        "{stopped}\n{}",
        app.log()
    );
    assert!(
        ids(&stopped).contains(&old[0]),
        "the old container serves on: {stopped}"
    );
    assert_eq!(stopped["healthy_resources"], 1, "{stopped}");
}
