//! Rollbacks on the containers backend, against the real engine: the
//! `POST /service/<name>/rollback` endpoint, and a roll whose new
//! containers exit at once going back by itself.

use std::time::Duration;

use serde_json::{json, Value};

use crate::reconcile::status_until;
use crate::support::app::{AppOptions, TestApp};
use crate::support::docker::{docker, TEST_IMAGE};

/// Short settle times keep rolls quick in tests; the default is 2 s.
fn rolling_options() -> AppOptions {
    AppOptions::new().env("ROCKET_UPDATE_SETTLE", "0.5")
}

async fn roll_back(app: &TestApp, service: &str) -> crate::support::app::Reply {
    app.send("POST", &format!("/service/{service}/rollback"), None)
        .await
}

/// Whether every container of the status runs the current definition and
/// `count` of them run.
fn rolled_out(body: &Value, count: usize) -> bool {
    let containers = body["containers"].as_array().unwrap();
    body["rollout"]["state"] != "rolling"
        && body["rollout"]["outdated"] == 0
        && containers.len() == count
        && containers
            .iter()
            .all(|c| c["state"] == "running" && c["current"] == true)
}

/// The `VERSION` each running container of "web" was started with.
fn versions(app: &TestApp) -> Vec<String> {
    let mut versions: Vec<String> = app
        .running("web")
        .iter()
        .map(|id| {
            docker(&["inspect", "--format", "{{json .Config.Env}}", id])
                .split('"')
                .find_map(|entry| entry.strip_prefix("VERSION="))
                .unwrap_or("none")
                .to_owned()
        })
        .collect();
    versions.sort();
    versions
}

#[tokio::test]
async fn the_rollback_endpoint_goes_back_to_the_previous_definition_and_rolls_it_out() {
    let app = TestApp::spawn_with(rolling_options()).await;
    app.create_service("web", json!({"environment": {"VERSION": "1"}}))
        .await;
    assert_eq!(app.scale("web", json!(2)).await.status, 200);
    let put = json!({"image": TEST_IMAGE, "environment": {"VERSION": "2"}});
    assert_eq!(app.put("web", put).await.status, 200);
    status_until(&app, "web", Duration::from_secs(30), |b| rolled_out(b, 2)).await;
    assert_eq!(versions(&app), ["2", "2"]);

    let reply = roll_back(&app, "web").await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.body["environment"], json!({"VERSION": "1"}));
    assert_eq!(reply.body["name"], "web");
    assert_eq!(app.show("web").await.body, reply.body);
    let body = status_until(&app, "web", Duration::from_secs(30), |b| rolled_out(b, 2)).await;
    assert_eq!(body["rollout"]["state"], "complete", "{body:#}");
    assert_eq!(body["desired_resources"], 2, "{body:#}");
    assert_eq!(versions(&app), ["1", "1"]);

    // The definition rolled back from became the previous one: a second
    // rollback undoes the first, as `docker service rollback` does.
    let reply = roll_back(&app, "web").await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.body["environment"], json!({"VERSION": "2"}));
    status_until(&app, "web", Duration::from_secs(30), |b| rolled_out(b, 2)).await;
    assert_eq!(versions(&app), ["2", "2"]);

    // Acknowledged means stored: a restarted connector keeps it.
    let mut app = app;
    app.restart();
    assert_eq!(
        app.show("web").await.body["environment"],
        json!({"VERSION": "2"})
    );
}

#[tokio::test]
async fn a_rollback_with_nothing_to_go_back_to_is_409_and_an_unknown_service_404() {
    let app = TestApp::spawn().await;
    let created = app
        .create_service("web", json!({"environment": {"VERSION": "1"}}))
        .await;
    // The same definition again replaces nothing that ran differently.
    let same = json!({"image": TEST_IMAGE, "environment": {"VERSION": "1"}});
    assert_eq!(app.put("web", same).await.status, 200);
    let before = app.stored_state();

    let reply = roll_back(&app, "web").await;
    assert_eq!(reply.status, 409, "{reply:?}");
    assert!(reply.error().contains("no earlier definition"), "{reply:?}");
    assert_eq!(app.show("web").await.body, created);
    assert_eq!(app.stored_state(), before);

    for unknown in ["ghost", "not%20a%20name"] {
        let reply = roll_back(&app, unknown).await;
        assert_eq!(reply.status, 404, "{reply:?}");
        assert!(reply.error().contains("does not exist"), "{reply:?}");
    }
}

#[tokio::test]
async fn a_roll_whose_new_containers_exit_at_once_goes_back_by_itself() {
    let app = TestApp::spawn_with(rolling_options()).await;
    let original = app
        .create_service("web", json!({"environment": {"VERSION": "1"}}))
        .await;
    assert_eq!(app.scale("web", json!(2)).await.status, 200);
    let mut old = app.running("web");
    old.sort();

    let broken = json!({"image": TEST_IMAGE, "command": ["sh", "-c", "exit 7"],
                        "environment": {"VERSION": "2"}});
    assert_eq!(app.put("web", broken).await.status, 200);
    let body = status_until(&app, "web", Duration::from_secs(15), |b| {
        b["rollout"]["state"] == "rolled_back"
    })
    .await;
    let error = body["rollout"]["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("went back by itself") && error.contains("code 7"),
        "{body:#}"
    );
    assert_eq!(body["rollout"]["outdated"], 0, "{body:#}");
    assert_eq!(body["running_resources"], 2, "{body:#}");
    // What runs is what the store holds again.
    assert_eq!(app.show("web").await.body, original);

    // It stays that way: nothing retries the broken definition, and the
    // old containers keep serving.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let body = app.status("web").await.body;
    assert_eq!(body["rollout"]["state"], "rolled_back", "{body:#}");
    assert_eq!(body["failed_attempts"], 0, "{body:#}");
    let mut left = app.containers(Some("web"));
    left.sort();
    assert_eq!(left, old, "the old containers must keep serving");

    // The broken definition is the previous one now: the endpoint can go
    // to it on purpose, and it goes back by itself again.
    let reply = roll_back(&app, "web").await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.body["environment"], json!({"VERSION": "2"}));
    status_until(&app, "web", Duration::from_secs(15), |b| {
        b["rollout"]["state"] == "rolled_back"
    })
    .await;
    assert_eq!(app.show("web").await.body, original);

    // A PUT clears it.
    let fixed = json!({"image": TEST_IMAGE, "environment": {"VERSION": "3"}});
    assert_eq!(app.put("web", fixed).await.status, 200);
    let body = status_until(&app, "web", Duration::from_secs(30), |b| rolled_out(b, 2)).await;
    assert_eq!(body["rollout"]["state"], "complete", "{body:#}");
    assert_eq!(body["rollout"]["error"], Value::Null, "{body:#}");
    assert_eq!(versions(&app), ["3", "3"]);
}

/// The bytes of the data file and its journal, as one text.
fn files_text(app: &TestApp) -> String {
    let journal = crate::support::store::journal_of(&app.data_file());
    let mut text = std::fs::read_to_string(app.data_file()).unwrap();
    text.push_str(&std::fs::read_to_string(journal).unwrap_or_default());
    text
}

#[tokio::test]
async fn forgetting_earlier_definitions_drops_a_rotated_secret_from_the_files() {
    // Reconciling off: the container of the first definition keeps running
    // after the PUT, as it would during a roll.
    let app = TestApp::spawn_with(AppOptions::new().env("ROCKET_RECONCILE", "false")).await;
    let path = "/service/vault/earlier-definitions";
    app.create_service(
        "vault",
        json!({"command": "sleep 600", "environment": {"TOKEN": "old-secret-4711"}}),
    )
    .await;
    assert_eq!(app.scale("vault", json!(1)).await.status, 200);
    let rotated = json!({"name": "vault", "image": TEST_IMAGE, "command": "sleep 600",
                         "environment": {"TOKEN": "new-secret-0815"}});
    assert_eq!(app.put("vault", rotated).await.status, 200);
    assert!(
        files_text(&app).contains("old-secret-4711"),
        "the replaced definition is kept, value and all"
    );

    let refused = app.send("DELETE", path, None).await;
    assert_eq!(refused.status, 409, "{refused:?}");
    assert!(refused.error().contains("1 container(s)"), "{refused:?}");
    assert!(
        files_text(&app).contains("old-secret-4711"),
        "nothing changed"
    );

    assert_eq!(app.scale("vault", json!(0)).await.status, 200);
    let forgotten = app.send("DELETE", path, None).await;
    assert_eq!(forgotten.status, 200, "{forgotten:?}");
    assert_eq!(forgotten.body, json!({"service": "vault", "forgotten": 1}));
    let files = files_text(&app);
    assert!(!files.contains("old-secret-4711"), "{files}");
    assert!(
        files.contains("new-secret-0815"),
        "the current definition stays"
    );
    assert_eq!(
        roll_back(&app, "vault").await.status,
        409,
        "nothing to go back to"
    );
    let again = app.send("DELETE", path, None).await;
    assert_eq!(again.body["forgotten"], 0, "{again:?}");
    assert_eq!(
        app.send("DELETE", "/service/nobody/earlier-definitions", None)
            .await
            .status,
        404
    );
}
