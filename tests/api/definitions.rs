//! Definitions docker would refuse at every start (issue 19, item 6): a
//! command that names no program, and more published ports than the cap.
//! Each is a 400 naming the field when defined, by POST or by PUT, and
//! nothing is stored; before, each was stored and failed only at scale.

use serde_json::{json, Value};

use crate::support::app::{Reply, TestApp};
use crate::support::docker::TEST_IMAGE;

/// `MAX_PORTS` in src/domain/port_spec.rs.
const MAX_PORTS: u16 = 64;

/// The `command` forms that split to no program: blank strings, a string
/// that is only a shell comment, an empty array, an empty program name.
fn commands_naming_no_program() -> Vec<Value> {
    vec![
        json!(""),
        json!(" "),
        json!("#x"),
        json!([]),
        json!([""]),
        json!(["", "-c", "echo hi"]),
    ]
}

/// Container ports 1..=count, as the strings the README uses.
fn ports(count: u16) -> Value {
    json!((1..=count).map(|port| port.to_string()).collect::<Vec<_>>())
}

fn assert_refused(reply: &Reply, field: &str, what: &Value) {
    assert_eq!(reply.status, 400, "{what}: {reply:?}");
    assert!(
        reply.error().starts_with(&format!("{field}: ")),
        "{what}: {reply:?}"
    );
}

#[tokio::test]
async fn a_command_that_names_no_program_is_refused_and_not_stored() {
    let app = TestApp::spawn().await;
    for command in commands_naming_no_program() {
        let reply = app
            .create(json!({"name": "blank", "image": TEST_IMAGE, "command": command}))
            .await;
        assert_refused(&reply, "command", &command);
        assert!(
            reply.error().contains("leave `command` out"),
            "{command}: {reply:?}"
        );
        assert_eq!(app.show("blank").await.status, 404, "{command}");
    }

    // A replace is parsed the same way, and leaves the definition as it was.
    let stored = app
        .create_service("web", json!({"command": "sleep 60"}))
        .await;
    for command in commands_naming_no_program() {
        let reply = app
            .put("web", json!({"image": TEST_IMAGE, "command": command}))
            .await;
        assert_refused(&reply, "command", &command);
        assert_eq!(app.show("web").await.body, stored, "{command}");
    }
}

#[tokio::test]
async fn more_ports_than_the_cap_are_refused_and_not_stored() {
    let app = TestApp::spawn().await;
    let too_many = ports(MAX_PORTS + 1);
    let reply = app
        .create(json!({"name": "wide", "image": TEST_IMAGE, "ports": too_many}))
        .await;
    assert_refused(&reply, "ports", &too_many);
    assert!(reply.error().contains("at most 64"), "{reply:?}");
    assert_eq!(app.show("wide").await.status, 404);

    // The cap itself is allowed; defining it starts nothing.
    let at_cap = app
        .create_service("wide", json!({"ports": ports(MAX_PORTS)}))
        .await;
    assert_eq!(at_cap["ports"], ports(MAX_PORTS));

    let reply = app
        .put("wide", json!({"image": TEST_IMAGE, "ports": too_many}))
        .await;
    assert_refused(&reply, "ports", &too_many);
    assert_eq!(app.show("wide").await.body, at_cap);
}
