//! `/service` and `/service/<name>`: create, read, replace, delete, the
//! seed's contract, on either backend (tests/swarm runs them on Swarm).

use serde_json::json;

use crate::support::app::{backend_suite, Backend, TestApp};
use crate::support::docker::TEST_IMAGE;

backend_suite!(
    create_answers_201_with_location_and_the_stored_definition,
    list_returns_every_definition_with_all_five_keys,
    creating_an_existing_name_is_a_conflict_that_keeps_the_original,
    unknown_services_are_404_on_every_endpoint,
    put_creates_with_201_then_replaces_with_200,
    put_refuses_a_body_name_that_differs_from_the_url,
    delete_answers_204_and_forgets_the_definition,
);

pub async fn create_answers_201_with_location_and_the_stored_definition(backend: Backend) {
    let app = TestApp::spawn_with(backend.options()).await;
    let reply = app
        .create(
            json!({"name": "web", "image": TEST_IMAGE, "command": "sleep 100",
                       "environment": {"A": "x", "N": 2}, "ports": ["8080", 53]}),
        )
        .await;
    assert_eq!(reply.status, 201);
    assert_eq!(reply.header("location"), Some("/service/web"));
    assert_eq!(
        reply.body,
        json!({"name": "web", "image": TEST_IMAGE, "command": "sleep 100",
               "environment": {"A": "x", "N": "2"}, "ports": ["8080", 53]})
    );
    assert_eq!(app.show("web").await.body, reply.body);
}

pub async fn list_returns_every_definition_with_all_five_keys(backend: Backend) {
    let app = TestApp::spawn_with(backend.options()).await;
    assert_eq!(app.get("/service").await.body, json!({}));
    app.create_service("a", json!({})).await;
    app.create_service("b", json!({"ports": [80]})).await;
    let reply = app.get("/service").await;
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.body,
        json!({
            "a": {"name": "a", "image": TEST_IMAGE, "command": null, "environment": null, "ports": null},
            "b": {"name": "b", "image": TEST_IMAGE, "command": null, "environment": null, "ports": [80]},
        })
    );
}

pub async fn creating_an_existing_name_is_a_conflict_that_keeps_the_original(backend: Backend) {
    let app = TestApp::spawn_with(backend.options()).await;
    app.create_service("web", json!({})).await;
    let reply = app.create(json!({"name": "web", "image": "other:2"})).await;
    assert_eq!(reply.status, 409);
    assert!(reply.error().contains("web"), "{reply:?}");
    assert_eq!(app.show("web").await.body["image"], TEST_IMAGE);
}

pub async fn unknown_services_are_404_on_every_endpoint(backend: Backend) {
    let app = TestApp::spawn_with(backend.options()).await;
    for (method, path, body) in [
        ("GET", "/service/ghost", None),
        ("DELETE", "/service/ghost", None),
        ("GET", "/service/ghost/status", None),
        ("POST", "/service/ghost/scale", Some(json!({"number": 1}))),
    ] {
        let reply = app
            .send(method, path, body.map(|b| b.to_string().into_bytes()))
            .await;
        assert_eq!(reply.status, 404, "{method} {path}: {reply:?}");
        assert!(reply.error().contains("ghost"), "{reply:?}");
    }
}

pub async fn put_creates_with_201_then_replaces_with_200(backend: Backend) {
    let app = TestApp::spawn_with(backend.options()).await;
    let reply = app.put("web", json!({"image": TEST_IMAGE})).await;
    assert_eq!(reply.status, 201);
    assert_eq!(reply.body["name"], "web");

    let replacement =
        json!({"name": "web", "image": "other:2", "command": ["sleep", "5"], "ports": ["80/udp"]});
    let reply = app.put("web", replacement).await;
    assert_eq!(reply.status, 200);
    assert_eq!(
        app.show("web").await.body,
        json!({"name": "web", "image": "other:2", "command": ["sleep", "5"], "environment": null, "ports": ["80/udp"]})
    );
}

pub async fn put_refuses_a_body_name_that_differs_from_the_url(backend: Backend) {
    let app = TestApp::spawn_with(backend.options()).await;
    app.create_service("web", json!({})).await;
    let reply = app
        .put("web", json!({"name": "db", "image": "other:2"}))
        .await;
    assert_eq!(reply.status, 400);
    assert!(reply.error().starts_with("name:"), "{reply:?}");
    assert_eq!(app.show("web").await.body["image"], TEST_IMAGE);
    assert_eq!(app.show("db").await.status, 404);
}

pub async fn delete_answers_204_and_forgets_the_definition(backend: Backend) {
    let app = TestApp::spawn_with(backend.options()).await;
    app.create_service("web", json!({})).await;
    let reply = app.delete("web").await;
    assert_eq!(reply.status, 204);
    assert_eq!(app.show("web").await.status, 404);
    assert_eq!(app.get("/service").await.body, json!({}));
}
