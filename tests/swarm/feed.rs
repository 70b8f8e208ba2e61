//! The swarm backend's part of the change feed on a real Swarm: its tasks
//! polled while a stream watches (started, healthy, died, removed), and
//! the progress and outcome of the updates it hands over, whether Swarm
//! completes one or rolls it back.

use std::cell::Cell;
use std::time::Duration;

use serde_json::{json, Value};

use crate::events::assert_stream_fits;
use crate::lifecycle::{swarm_name, SWARM_LIMIT};
use crate::support::app::{suite_of, Backend, BackendTest, TestApp};
use crate::support::docker::{docker, TEST_IMAGE};
use crate::support::sse::{summary, Event, EventStream};

pub fn suite() -> Vec<(&'static str, BackendTest)> {
    suite_of!(
        a_stream_sees_swarm_tasks_start_turn_healthy_die_and_go,
        a_stream_sees_a_swarm_update_roll_and_complete,
        a_stream_sees_swarm_roll_back_an_update_that_fails,
    )
}

/// Long enough for the watcher's first look at the tasks after a stream
/// opens (it checks every 0.1 s whether anyone watches).
const FIRST_LOOK: Duration = Duration::from_millis(1500);

/// Opens `/events?service=web` and waits for the watcher's first look.
async fn watch_web(app: &TestApp) -> EventStream {
    let stream = EventStream::open(app, "/events?service=web", &[]).await;
    tokio::time::sleep(FIRST_LOOK).await;
    stream
}

/// Events until `count` of them are of `kind`, each as src/openapi.json
/// documents its type.
async fn until_count(stream: &mut EventStream, kind: &str, count: usize, what: &str) -> Vec<Event> {
    let seen = Cell::new(0);
    let events = stream
        .until(SWARM_LIMIT, what, |event| {
            if event.kind == kind {
                seen.set(seen.get() + 1);
            }
            seen.get() == count
        })
        .await;
    assert_stream_fits(&events);
    events
}

fn of_kind<'a>(events: &'a [Event], kind: &str) -> Vec<&'a Value> {
    events
        .iter()
        .filter(|e| e.kind == kind)
        .map(|e| &e.data)
        .collect()
}

/// Serves `web` from 2 tasks of the test image's default command.
async fn two_tasks(app: &TestApp) {
    app.create_service("web", json!({})).await;
    let reply = app.scale("web", json!(2)).await;
    assert_eq!(reply.status, 200, "{reply:?}");
}

pub async fn a_stream_sees_swarm_tasks_start_turn_healthy_die_and_go(backend: Backend) {
    let app = TestApp::spawn_with(backend.options()).await;
    app.create_service(
        "web",
        json!({
            "command": ["sh", "-c", "trap 'exit 0' TERM; sleep 2 & wait; touch /tmp/ok; sleep 86400 & wait"],
            "healthcheck": {"test": "test -f /tmp/ok", "interval": "1s", "timeout": "1s", "retries": 2},
        }),
    )
    .await;
    let mut stream = watch_web(&app).await;

    let reply = app.scale("web", json!(2)).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let events = until_count(&mut stream, "container.health", 2, "2 healthy tasks").await;
    let started = of_kind(&events, "container.started");
    assert_eq!(started.len(), 2, "{:#?}", summary(&events));
    let swarm = swarm_name(&app, "web");
    for task in &started {
        assert_eq!(task["health"], "starting", "{task}");
        assert!(
            task["name"]
                .as_str()
                .unwrap()
                .starts_with(&format!("{swarm}.")),
            "{task}"
        );
    }
    for healthy in of_kind(&events, "container.health") {
        assert_eq!(healthy["health"], "healthy", "{healthy}");
        assert!(started.iter().any(|s| s["id"] == healthy["id"]));
    }
    let status = app.status("web").await.body;
    let ids: Vec<&Value> = status["containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| &c["id"])
        .collect();
    assert!(
        started.iter().all(|s| ids.contains(&&s["id"])),
        "{status:#}"
    );

    // Its container killed, a task fails with the code and Swarm replaces it.
    let victim = started[0]["id"].as_str().unwrap().to_owned();
    let container = docker(&[
        "ps",
        "-q",
        "--filter",
        &format!("label=com.docker.swarm.task.id={victim}"),
    ]);
    docker(&["kill", container.trim()]);
    let events = until_count(&mut stream, "container.started", 1, "a replacement").await;
    let died = of_kind(&events, "container.died");
    assert_eq!(died.len(), 1, "{:#?}", summary(&events));
    assert_eq!(died[0]["id"], victim.as_str());
    assert_eq!(died[0]["exit_code"], 137);
    assert_eq!(died[0]["restarts_itself"], false);
    let removed = of_kind(&events, "container.removed");
    assert!(
        removed.iter().any(|r| r["id"] == victim.as_str()),
        "{:#?}",
        summary(&events)
    );

    // Scaled away: both die (stopped, no code to tell) and go.
    let reply = app.scale("web", json!(0)).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let events = until_count(&mut stream, "container.removed", 2, "2 tasks gone").await;
    let died = of_kind(&events, "container.died");
    assert_eq!(died.len(), 2, "{:#?}", summary(&events));
    assert!(died.iter().all(|d| d["exit_code"].is_null()), "{died:?}");
    assert_eq!(app.delete("web").await.status, 204);
}

pub async fn a_stream_sees_a_swarm_update_roll_and_complete(backend: Backend) {
    let app = TestApp::spawn_with(backend.options()).await;
    two_tasks(&app).await;
    let mut stream = watch_web(&app).await;

    let reply = app
        .put(
            "web",
            json!({"image": TEST_IMAGE, "environment": {"VERSION": "2"}}),
        )
        .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let events = until_count(&mut stream, "rollout.outcome", 1, "the outcome").await;
    let told = summary(&events);
    assert_eq!(events[0].kind, "service.replaced", "{told:#?}");
    let outcome = &events.last().unwrap().data;
    assert_eq!(outcome["state"], "complete", "{told:#?}");
    assert_eq!(outcome["error"], Value::Null);
    let hash = &outcome["config_hash"];
    let progress = of_kind(&events, "rollout.progress");
    assert!(!progress.is_empty(), "{told:#?}");
    assert!(
        progress.iter().all(|p| &p["config_hash"] == hash),
        "{told:#?}"
    );
    assert!(
        progress.iter().all(|p| p["outdated"].as_u64() > Some(0)),
        "told only while older tasks remain: {told:#?}"
    );
    // Start-first: the new tasks start, the old ones stop.
    let started = of_kind(&events, "container.started");
    assert_eq!(started.len(), 2, "{told:#?}");
    assert!(
        started.iter().all(|s| &s["config_hash"] == hash),
        "{told:#?}"
    );
    let died = of_kind(&events, "container.died");
    assert_eq!(died.len(), 2, "{told:#?}");
    assert!(died.iter().all(|d| &d["config_hash"] != hash), "{told:#?}");
}

pub async fn a_stream_sees_swarm_roll_back_an_update_that_fails(backend: Backend) {
    let app = TestApp::spawn_with(backend.options()).await;
    two_tasks(&app).await;
    let mut stream = watch_web(&app).await;

    let broken = json!({"image": TEST_IMAGE, "command": "sh -c 'sleep 0.3; exit 7'"});
    assert_eq!(app.put("web", broken).await.status, 200);
    let events = until_count(&mut stream, "rollout.outcome", 1, "the outcome").await;
    let told = summary(&events);
    let outcome = &events.last().unwrap().data;
    assert_eq!(outcome["state"], "rolled_back", "{told:#?}");
    let error = outcome["error"].as_str().unwrap_or_default();
    assert!(error.contains("non-zero exit (7)"), "{told:#?}");
    // The broken definition's task ran and died with its code.
    let hash = &outcome["config_hash"];
    let died = of_kind(&events, "container.died");
    assert!(
        died.iter()
            .any(|d| &d["config_hash"] == hash && d["exit_code"] == 7),
        "{told:#?}"
    );
    // The PUT, then the store following Swarm back, before the outcome.
    let replaced = of_kind(&events, "service.replaced");
    assert_eq!(replaced.len(), 2, "{told:#?}");
    let shown = app.show("web").await.body;
    assert_eq!(shown["command"], Value::Null, "{shown:#}");
}
