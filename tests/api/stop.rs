//! Containers end gracefully on the containers backend: scale-down and
//! delete send SIGTERM and wait for the container to exit, SIGKILL comes
//! only after the definition's `stop_grace_period`, and a slow but honest
//! exit is waited for even past `docker_timeout`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::support::app::{poll_until, AppOptions, TestApp};
use crate::support::docker::{docker, unique_instance, Scratch, TEST_IMAGE};

/// A command that writes `ready` to a file named after its container
/// (docker sets `HOSTNAME` to the short id) in `/out` once it handles
/// SIGTERM, and at SIGTERM waits `seconds`, writes `bye` there and exits.
/// The shell runs as PID 1, which the kernel spares every signal it has no
/// handler for, hence the trap, and a SIGTERM before the trap is set is
/// lost, hence `ready`; the sleep runs in the background so the shell is
/// free to run the trap when the signal comes.
fn leaves_a_note_at_sigterm(seconds: u32) -> Value {
    json!([
        "sh",
        "-c",
        format!(
            "trap 'sleep {seconds}; echo bye > /out/$HOSTNAME; exit 0' TERM; \
             echo ready > /out/$HOSTNAME; sleep 1000 & wait"
        )
    ])
}

/// Waits until each of `ids` has noted that it handles SIGTERM.
async fn wait_until_ready(volume: &Scratch, ids: &[String]) {
    let notes = poll_until(Duration::from_secs(10), || async {
        let notes = notes_in(volume);
        let ready = ids
            .iter()
            .all(|id| notes.get(&short(id)).map(String::as_str) == Some("ready"));
        (ready, notes)
    })
    .await;
    for id in ids {
        assert_eq!(
            notes.get(&short(id)).map(String::as_str),
            Some("ready"),
            "{id} never set its trap: {notes:?}"
        );
    }
}

/// The notes the containers left in `volume`: short container id → text.
fn notes_in(volume: &Scratch) -> BTreeMap<String, String> {
    let mount = format!("type=volume,source={},target=/out", volume.name);
    let listing = docker(&[
        "run",
        "--rm",
        "--mount",
        &mount,
        TEST_IMAGE,
        "sh",
        "-c",
        r#"for f in /out/*; do [ -f "$f" ] && echo "${f#/out/} $(cat "$f")"; done; true"#,
    ]);
    listing
        .lines()
        .filter_map(|line| line.split_once(' '))
        .map(|(id, text)| (id.to_owned(), text.to_owned()))
        .collect()
}

fn short(id: &str) -> String {
    id[..12].to_owned()
}

#[tokio::test]
async fn sigterm_reaches_containers_on_scale_down_and_on_delete() {
    // Declared first, so removed last: after the app's containers.
    let volume = Scratch::volume(&format!("{}-notes", unique_instance()));
    let app = TestApp::spawn().await;
    app.create_service(
        "web",
        json!({
            "command": leaves_a_note_at_sigterm(0),
            "volumes": [{"source": volume.name, "target": "/out"}],
        }),
    )
    .await;
    let reply = app.scale("web", json!(3)).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let before = app.running("web");
    wait_until_ready(&volume, &before).await;

    let reply = app.scale("web", json!(1)).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    // The answer comes once the surplus is gone, not merely signalled.
    let kept = app.containers(Some("web"));
    assert_eq!(kept.len(), 1, "containers left in any state: {kept:?}");
    let stopped: Vec<String> = before
        .iter()
        .filter(|id| !kept.contains(id))
        .map(|id| short(id))
        .collect();
    let notes = notes_in(&volume);
    for id in &stopped {
        assert_eq!(
            notes.get(id).map(String::as_str),
            Some("bye"),
            "no SIGTERM seen by {id} on scale-down: {notes:?}"
        );
    }
    assert_eq!(
        notes.get(&short(&kept[0])).map(String::as_str),
        Some("ready"),
        "the kept container was signalled: {notes:?}"
    );

    let reply = app.delete("web").await;
    assert_eq!(reply.status, 204, "{reply:?}");
    assert!(app.containers(Some("web")).is_empty());
    let notes = notes_in(&volume);
    assert_eq!(
        notes.get(&short(&kept[0])).map(String::as_str),
        Some("bye"),
        "no SIGTERM seen on delete: {notes:?}"
    );
}

#[tokio::test]
async fn a_container_ignoring_sigterm_is_killed_after_its_grace_not_dockers_ten_seconds() {
    let app = TestApp::spawn().await;
    // A plain sleep as PID 1 never reacts to SIGTERM.
    app.create_service(
        "stubborn",
        json!({"command": "sleep 1000", "stop_grace_period": "2s"}),
    )
    .await;
    let reply = app.scale("stubborn", json!(1)).await;
    assert_eq!(reply.status, 200, "{reply:?}");

    let started = Instant::now();
    let reply = app.scale("stubborn", json!(0)).await;
    let took = started.elapsed();
    assert_eq!(reply.status, 200, "{reply:?}");
    assert!(app.containers(Some("stubborn")).is_empty());
    assert!(
        took >= Duration::from_millis(1900),
        "gone after {took:?}: killed before its 2 s grace"
    );
    assert!(
        took < Duration::from_secs(8),
        "gone after {took:?}: its 2 s grace was not what it got"
    );
}

#[tokio::test]
async fn a_slow_graceful_exit_is_waited_for_past_the_docker_timeout() {
    let volume = Scratch::volume(&format!("{}-notes", unique_instance()));
    // Every docker call must answer within 8 s (ample for a start on a busy
    // host); the exit takes 11 s, which the 20 s grace allows.
    let app = TestApp::spawn_with(AppOptions::new().env("ROCKET_DOCKER_TIMEOUT", "8")).await;
    app.create_service(
        "patient",
        json!({
            "command": leaves_a_note_at_sigterm(11),
            "stop_grace_period": "20s",
            "volumes": [{"source": volume.name, "target": "/out"}],
        }),
    )
    .await;
    let reply = app.scale("patient", json!(1)).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let running = app.running("patient");
    wait_until_ready(&volume, &running).await;
    let id = short(&running[0]);

    let started = Instant::now();
    let reply = app.delete("patient").await;
    let took = started.elapsed();
    assert_eq!(reply.status, 204, "after {took:?}: {reply:?}");
    assert!(took >= Duration::from_secs(11), "gone after {took:?}");
    assert!(app.containers(Some("patient")).is_empty());
    let notes = notes_in(&volume);
    assert_eq!(
        notes.get(&id).map(String::as_str),
        Some("bye"),
        "killed before its exit finished: {notes:?}"
    );
}
