//! A DELETE on a disk that refuses writes never leaves a service to be
//! started again by itself: the count 0 is recorded first, then the
//! containers go, then the definition. The disk failing at the first write
//! changes nothing; failing at the last leaves the service defined at
//! count 0 with no containers; either way a retry once the disk takes
//! writes again finishes the delete. The first case runs on both
//! backends (tests/swarm runs it on Swarm); the second needs the window
//! that stopping containers one by one gives, which Swarm, stopping tasks
//! after `docker service rm` has returned, does not.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::durability::make_journal_immutable;
use crate::support::app::{backend_suite, poll_until, Backend, TestApp};

backend_suite!(a_delete_whose_first_write_fails_leaves_the_containers_running);

/// Longer than the reconciler's sweep (5 s): it would have started any
/// container the desired count still asked for by then (it acts on
/// docker's events at once, and sweeps every service besides).
const RECONCILE_PERIODS: Duration = Duration::from_secs(7);

/// The desired count of `service` in the store's files.
fn desired_on_disk(app: &TestApp, service: &str) -> Value {
    app.stored_state()["services"][service]["desired"].clone()
}

fn sorted(mut ids: Vec<String>) -> Vec<String> {
    ids.sort();
    ids
}

/// Once the disk takes writes again, a DELETE finishes and leaves nothing
/// (Swarm stops the tasks within their grace period, 10 s).
async fn assert_a_retry_finishes(app: &TestApp) {
    let reply = app.delete("web").await;
    assert_eq!(reply.status, 204, "{reply:?}");
    assert_eq!(app.show("web").await.status, 404);
    let left: Vec<String> = poll_until(Duration::from_secs(30), || async {
        let left = app.containers(Some("web"));
        (left.is_empty(), left)
    })
    .await;
    assert_eq!(left, Vec::<String>::new());
}

pub async fn a_delete_whose_first_write_fails_leaves_the_containers_running(backend: Backend) {
    let app = TestApp::spawn_with(backend.options()).await;
    // A short grace, so that containers a delete did stop are gone before
    // the check (Swarm stops a removed service's tasks in the background).
    app.create_service(
        "web",
        json!({"command": "sleep 1000", "stop_grace_period": "1s"}),
    )
    .await;
    assert_eq!(app.scale("web", json!(2)).await.status, 200);
    let running = sorted(app.running("web"));
    assert_eq!(running.len(), 2);

    let read_only = make_journal_immutable(&app.data_file());
    let reply = app.delete("web").await;
    assert_eq!(reply.status, 500, "{reply:?}");
    tokio::time::sleep(RECONCILE_PERIODS).await;
    assert_eq!(
        sorted(app.running("web")),
        running,
        "the containers were touched"
    );
    assert_eq!(app.status("web").await.body["desired_resources"], 2);
    assert_eq!(desired_on_disk(&app, "web"), 2);

    drop(read_only);
    assert_a_retry_finishes(&app).await;
}

#[tokio::test]
async fn a_delete_whose_last_write_fails_leaves_the_service_at_0_and_nothing_starts_again() {
    let app = TestApp::spawn().await;
    // `sleep` as PID 1 ignores SIGTERM, so removing each container takes
    // its whole grace period: the window in which the disk turns read-only.
    app.create_service(
        "web",
        json!({"command": "sleep 1000", "stop_grace_period": "4s"}),
    )
    .await;
    assert_eq!(app.scale("web", json!(2)).await.status, 200);

    let data_file = app.data_file();
    let ((reply, answered), (read_only, refusing)) = tokio::join!(
        async {
            let reply = app.delete("web").await;
            (reply, Instant::now())
        },
        async {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let read_only = make_journal_immutable(&data_file);
            (read_only, Instant::now())
        }
    );
    assert!(
        answered > refusing,
        "the delete answered before the disk refused writes: {reply:?}"
    );
    assert_eq!(reply.status, 500, "{reply:?}");

    tokio::time::sleep(RECONCILE_PERIODS).await;
    assert_eq!(
        app.containers(Some("web")),
        Vec::<String>::new(),
        "containers came back"
    );
    assert_eq!(app.show("web").await.status, 200, "the definition stays");
    let status = app.status("web").await.body;
    assert_eq!(
        (&status["desired_resources"], &status["running_resources"]),
        (&json!(0), &json!(0)),
        "{status:#}"
    );
    assert_eq!(desired_on_disk(&app, "web"), 0);

    drop(read_only);
    assert_a_retry_finishes(&app).await;
}
