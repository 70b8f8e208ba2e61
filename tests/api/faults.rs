//! Docker missing, unreachable or hung: a JSON 5xx within the deadline, and
//! the definitions stay usable.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::helpers::{real_docker, AppOptions, TestApp, TEST_IMAGE};

async fn assert_docker_requests_fail(app: &TestApp, status: u16, within: Duration) {
    for (method, path, body) in [
        ("GET", "/service/web/status", None),
        ("POST", "/service/web/scale", Some(json!({"number": 1}))),
        ("DELETE", "/service/web", None),
    ] {
        let started = Instant::now();
        let reply = app
            .send(method, path, body.map(|b| b.to_string().into_bytes()))
            .await;
        assert_eq!(reply.status, status, "{method} {path}: {reply:?}");
        assert!(reply.error().contains("docker"), "{reply:?}");
        assert!(
            started.elapsed() < within,
            "{method} {path} took {:?}",
            started.elapsed()
        );
    }
    // Definitions stay readable and writable, and the failed delete kept its definition.
    assert_eq!(app.show("web").await.status, 200);
    let reply = app
        .put("web", json!({"image": TEST_IMAGE, "command": "sleep 9"}))
        .await;
    assert_eq!(reply.status, 200);
}

#[tokio::test]
async fn a_missing_docker_cli_answers_503_and_definitions_still_work() {
    let app =
        TestApp::spawn_with(AppOptions::new().env("ROCKET_DOCKER", "/nonexistent/docker")).await;
    assert!(
        app.log().contains("not found"),
        "no warning at start: {}",
        app.log()
    );
    app.create_service("web", json!({})).await;
    assert_docker_requests_fail(&app, 503, Duration::from_secs(2)).await;
}

#[tokio::test]
async fn an_unreachable_daemon_answers_503() {
    let app = TestApp::spawn_with(
        AppOptions::new().env("DOCKER_HOST", "unix:///nonexistent/docker.sock"),
    )
    .await;
    app.create_service("web", json!({})).await;
    assert_docker_requests_fail(&app, 503, Duration::from_secs(5)).await;
}

#[tokio::test]
async fn a_hung_docker_cli_is_killed_and_answers_504_within_the_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let pids = dir.path().join("pids");
    let script = format!("echo $$ >> {}\nexec sleep 60", pids.display());
    let app = TestApp::spawn_with(
        AppOptions::new()
            .fake_docker(dir.path(), &script)
            .env("ROCKET_DOCKER_TIMEOUT", "1"),
    )
    .await;
    app.create_service("web", json!({})).await;
    assert_docker_requests_fail(&app, 504, Duration::from_secs(2)).await;

    // Every hung child was killed, not left running.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let pids = std::fs::read_to_string(&pids).unwrap();
    assert_eq!(pids.lines().count(), 3);
    for pid in pids.lines() {
        let alive = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|stat| {
                !stat
                    .split_whitespace()
                    .nth(2)
                    .is_some_and(|state| state == "Z")
            })
            .unwrap_or(false);
        assert!(!alive, "docker child {pid} is still running");
    }
}

#[tokio::test]
async fn the_connector_recovers_by_itself_when_docker_works_again() {
    let dir = tempfile::tempdir().unwrap();
    let switch = dir.path().join("hang");
    let real = real_docker();
    let script = format!(
        "if [ -e {} ]; then exec sleep 60; fi\nexec {real} \"$@\"",
        switch.display()
    );
    // Long enough for real docker commands on a loaded machine.
    let app = TestApp::spawn_with(
        AppOptions::new()
            .fake_docker(dir.path(), &script)
            .env("ROCKET_DOCKER_TIMEOUT", "10"),
    )
    .await;
    app.create_service("web", json!({})).await;

    std::fs::write(&switch, "").unwrap();
    assert_eq!(app.scale("web", json!(1)).await.status, 504);
    std::fs::remove_file(&switch).unwrap();

    let reply = app.scale("web", json!(1)).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.body["running_resources"], 1);
}
