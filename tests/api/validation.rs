//! Bad input: every case answers a 4xx JSON error that names the problem,
//! changes nothing on disk and starts nothing.

use serde_json::json;

use crate::helpers::{TestApp, TEST_IMAGE};

/// `(method, path, raw body, expected status, text the error must contain)`.
type Case = (
    &'static str,
    &'static str,
    Option<String>,
    u16,
    &'static str,
);

fn body(value: serde_json::Value) -> Option<String> {
    Some(value.to_string())
}

fn cases() -> Vec<Case> {
    let img = TEST_IMAGE;
    vec![
        ("POST", "/service", Some("{".into()), 400, "not valid JSON"),
        ("POST", "/service", Some("".into()), 400, "empty"),
        ("POST", "/service", body(json!([1])), 400, "JSON object"),
        ("POST", "/service", body(json!({"image": img})), 400, "name"),
        (
            "POST",
            "/service",
            body(json!({"name": "web"})),
            400,
            "image",
        ),
        (
            "POST",
            "/service",
            body(json!({"name": 5, "image": img})),
            400,
            "name",
        ),
        (
            "POST",
            "/service",
            body(json!({"name": "a/b", "image": img})),
            400,
            "name",
        ),
        (
            "POST",
            "/service",
            body(json!({"name": "-web", "image": img})),
            400,
            "name",
        ),
        (
            "POST",
            "/service",
            body(json!({"name": "a b", "image": img})),
            400,
            "name",
        ),
        (
            "POST",
            "/service",
            body(json!({"name": "x".repeat(64), "image": img})),
            400,
            "name",
        ),
        (
            "POST",
            "/service",
            body(json!({"name": "web", "image": "busybox"})),
            400,
            "image",
        ),
        (
            "POST",
            "/service",
            body(json!({"name": "web", "image": "--privileged"})),
            400,
            "image",
        ),
        (
            "POST",
            "/service",
            body(json!({"name": "web", "image": "Busy Box:1"})),
            400,
            "image",
        ),
        (
            "POST",
            "/service",
            body(json!({"name": "web", "image": "app@sha256:12"})),
            400,
            "image",
        ),
        (
            "POST",
            "/service",
            body(json!({"name": "web", "image": img, "command": "echo 'a"})),
            400,
            "command",
        ),
        (
            "POST",
            "/service",
            body(json!({"name": "web", "image": img, "command": [1]})),
            400,
            "command[0]",
        ),
        (
            "POST",
            "/service",
            body(json!({"name": "web", "image": img, "command": {}})),
            400,
            "command",
        ),
        (
            "POST",
            "/service",
            body(json!({"name": "web", "image": img, "environment": ["A=1"]})),
            400,
            "environment",
        ),
        (
            "POST",
            "/service",
            body(json!({"name": "web", "image": img, "environment": {"A=B": "1"}})),
            400,
            "environment",
        ),
        (
            "POST",
            "/service",
            body(json!({"name": "web", "image": img, "environment": {"": "1"}})),
            400,
            "environment",
        ),
        (
            "POST",
            "/service",
            body(json!({"name": "web", "image": img, "environment": {"A": {"x": 1}}})),
            400,
            "environment.A",
        ),
        (
            "POST",
            "/service",
            body(json!({"name": "web", "image": img, "environment": {"A": [1]}})),
            400,
            "environment.A",
        ),
        (
            "POST",
            "/service",
            body(json!({"name": "web", "image": img, "ports": [0]})),
            400,
            "ports[0]",
        ),
        (
            "POST",
            "/service",
            body(json!({"name": "web", "image": img, "ports": ["70000"]})),
            400,
            "ports[0]",
        ),
        (
            "POST",
            "/service",
            body(json!({"name": "web", "image": img, "ports": [80, "80"]})),
            400,
            "ports[1]",
        ),
        (
            "POST",
            "/service",
            body(json!({"name": "web", "image": img, "ports": ["80/http"]})),
            400,
            "ports[0]",
        ),
        (
            "POST",
            "/service",
            body(json!({"name": "web", "image": img, "ports": "80"})),
            400,
            "ports",
        ),
        (
            "POST",
            "/service",
            body(json!({"name": "web", "image": img, "enviroment": {}})),
            400,
            "enviroment",
        ),
        (
            "POST",
            "/service",
            body(json!({"name": "web", "image": img, "privileged": true})),
            400,
            "privileged",
        ),
        (
            "POST",
            "/service",
            body(json!({"name": "web", "image": img, "volumes": ["/:/host"]})),
            400,
            "volumes",
        ),
        (
            "POST",
            "/service",
            Some(format!(
                "{{\"name\": \"web\", \"image\": \"{img}\", \"command\": \"{}\"}}",
                "x".repeat(70_000)
            )),
            413,
            "limit",
        ),
        (
            "PUT",
            "/service/web",
            body(json!({"command": "sleep 1"})),
            400,
            "image",
        ),
        (
            "PUT",
            "/service/web",
            body(json!({"name": "other", "image": img})),
            400,
            "name",
        ),
        (
            "PUT",
            "/service/bad%20name",
            body(json!({"image": img})),
            400,
            "name",
        ),
        (
            "PUT",
            "/service/web",
            Some("nope".into()),
            400,
            "not valid JSON",
        ),
        ("POST", "/service/web/scale", body(json!({})), 400, "number"),
        (
            "POST",
            "/service/web/scale",
            body(json!({"number": -1})),
            400,
            "number",
        ),
        (
            "POST",
            "/service/web/scale",
            body(json!({"number": 1.5})),
            400,
            "number",
        ),
        (
            "POST",
            "/service/web/scale",
            body(json!({"number": true})),
            400,
            "number",
        ),
        (
            "POST",
            "/service/web/scale",
            body(json!({"number": 101})),
            400,
            "number",
        ),
        (
            "POST",
            "/service/web/scale",
            body(json!({"number": "0x2"})),
            400,
            "number",
        ),
        (
            "POST",
            "/service/web/scale",
            body(json!({"number": " 2"})),
            400,
            "number",
        ),
        (
            "POST",
            "/service/web/scale",
            body(json!({"number": 1, "force": true})),
            400,
            "force",
        ),
        (
            "POST",
            "/service/web/scale",
            body(json!(3)),
            400,
            "JSON object",
        ),
        ("GET", "/nothing-here", None, 404, "no such resource"),
        ("GET", "/service/web/logs", None, 404, "no such resource"),
        (
            "GET",
            "/service/..%2F..%2Fetc%2Fpasswd",
            None,
            404,
            "does not exist",
        ),
        (
            "PATCH",
            "/service/web",
            body(json!({"image": img})),
            405,
            "PATCH",
        ),
        ("DELETE", "/service", None, 405, "DELETE"),
        ("GET", "/service/web/scale", None, 405, "GET"),
    ]
}

#[tokio::test]
async fn bad_requests_get_a_json_4xx_naming_the_problem_and_change_nothing() {
    let app = TestApp::spawn().await;
    app.create_service("web", json!({"command": "sleep 100"}))
        .await;
    let stored = std::fs::read(app.data_file()).unwrap();

    for (method, path, raw, status, needle) in cases() {
        let reply = app.send(method, path, raw.map(String::into_bytes)).await;
        assert_eq!(reply.status, status, "{method} {path}: {reply:?}");
        assert_eq!(
            reply.header("content-type"),
            Some("application/json"),
            "{method} {path}"
        );
        assert!(
            reply.error().contains(needle),
            "{method} {path}: {:?} lacks {needle:?}",
            reply.error()
        );
    }

    assert_eq!(
        std::fs::read(app.data_file()).unwrap(),
        stored,
        "a rejected request changed the store"
    );
    assert!(
        app.containers(None).is_empty(),
        "a rejected request started a container"
    );
    assert_eq!(
        app.get("/service/web").await.status,
        200,
        "the server stopped serving"
    );
}

#[tokio::test]
async fn method_not_allowed_lists_the_allowed_methods() {
    let app = TestApp::spawn().await;
    let reply = app.send("PATCH", "/service/web", None).await;
    assert_eq!(reply.status, 405);
    let allow = reply.header("allow").unwrap();
    for method in ["GET", "PUT", "DELETE"] {
        assert!(allow.contains(method), "{allow}");
    }
}
