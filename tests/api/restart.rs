//! What survives a restart of the connector, and what stops it starting.

use std::time::Duration;

use serde_json::json;

use crate::support::app::{launch_expecting_failure, AppOptions, TestApp};
use crate::support::process::real_docker;

#[tokio::test]
async fn definitions_and_containers_survive_a_kill_and_restart() {
    let mut app = TestApp::spawn().await;
    let definition = app
        .create_service("web", json!({"environment": {"A": "1"}}))
        .await;
    app.scale("web", json!(2)).await;
    let before = app.running("web");

    app.restart();

    assert_eq!(app.show("web").await.body, definition);
    assert_eq!(
        app.running("web"),
        before,
        "the restart touched the containers"
    );
    assert_eq!(app.status("web").await.body["running_resources"], 2);
    // It still manages the containers it started before the restart.
    let reply = app.scale("web", json!(1)).await;
    assert_eq!(reply.body["running_resources"], 1);
    assert_eq!(app.containers(Some("web")).len(), 1);
}

#[tokio::test]
async fn sigterm_stops_the_connector_cleanly_and_never_its_containers() {
    let mut app = TestApp::spawn().await;
    app.create_service("web", json!({})).await;
    app.scale("web", json!(2)).await;
    let before = app.running("web");
    assert_eq!(app.terminate(), Some(0), "{}", app.log());
    assert_eq!(app.running("web"), before);
}

#[tokio::test]
async fn sigterm_lets_a_scale_in_flight_finish_and_answer_before_exiting() {
    let dir = tempfile::tempdir().unwrap();
    // Each `docker run` marks that it began and then takes two seconds, so
    // SIGTERM surely arrives while the scale is in flight.
    let began = dir.path().join("run-began");
    let script = format!(
        "[ \"$1\" = run ] && touch {} && sleep 2\nexec {} \"$@\"",
        began.display(),
        real_docker()
    );
    let mut app = TestApp::spawn_with(AppOptions::new().fake_docker(dir.path(), &script)).await;
    app.create_service("web", json!({})).await;

    let (reply, ()) = tokio::join!(app.scale("web", json!(2)), async {
        while !began.exists() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        app.send_sigterm();
    });

    assert_eq!(reply.status, 200, "{reply:?}\n{}", app.log());
    assert_eq!(reply.body["running_resources"], 2);
    // wait_for_exit allows 20 s, less than the 30 s shutdown grace: the
    // connector leaves as soon as its last request has answered.
    assert_eq!(app.wait_for_exit(), Some(0), "{}", app.log());
    assert_eq!(
        app.running("web").len(),
        2,
        "stopping the connector stopped its containers"
    );
}

#[test]
fn a_data_file_that_does_not_parse_stops_the_start_and_is_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("data")).unwrap();
    let file = dir.path().join("data/services.json");
    std::fs::write(&file, "{\"format_version\": 1, \"services\": {").unwrap();

    let (code, log) = launch_expecting_failure(dir.path(), &[]);

    assert_ne!(code, Some(0), "{log}");
    assert!(
        log.contains("data/services.json"),
        "the error must name the file: {log}"
    );
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        "{\"format_version\": 1, \"services\": {"
    );
}

#[test]
fn an_invalid_instance_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let (code, log) = launch_expecting_failure(dir.path(), &[("ROCKET_INSTANCE", "bad instance!")]);
    assert_ne!(code, Some(0));
    assert!(log.contains("instance"), "{log}");
}

#[test]
fn a_bad_rocket_setting_stops_the_start_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let (code, log) = launch_expecting_failure(dir.path(), &[("ROCKET_PORT", "not-a-port")]);
    assert_eq!(code, Some(1), "{log}");
    assert!(log.contains("PORT") && log.contains("not-a-port"), "{log}");
}
