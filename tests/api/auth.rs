//! `auth_token`: every endpoint but `/health` needs the bearer token, a
//! refused request changes nothing, the token never reaches a log, and a
//! connector reachable from other hosts needs a token unless told otherwise.
//! (Scoped tokens, Basic auth, the slow-down and the audit log: access.rs.)

use serde_json::json;

use crate::support::app::{launch_expecting_failure, AppOptions, TestApp};
use crate::support::docker::TEST_IMAGE;
use crate::support::figures::record_figures;
use crate::support::openapi::documented_operations;

const TOKEN: &str = "test-token-7f3a9c1e5b2d4068";

async fn spawn_with_token() -> TestApp {
    TestApp::spawn_with(AppOptions::new().env("ROCKET_AUTH_TOKEN", TOKEN)).await
}

/// Every `(method, path)` the served OpenAPI document lists, with `{name}`
/// filled in.
async fn documented_requests(app: &TestApp) -> Vec<(String, String)> {
    let document = app.get("/openapi.json").await;
    assert_eq!(document.status, 200, "{document:?}");
    documented_operations(&document.body)
        .into_iter()
        .map(|(method, path)| (method, path.replace("{name}", "web")))
        .collect()
}

#[tokio::test]
async fn every_endpoint_but_health_answers_401_without_the_right_token() {
    // Dozens of wrong tokens from one address: slowing them down is
    // tested in access.rs, here every one must reach the check.
    let app = TestApp::spawn_with(
        AppOptions::new()
            .env("ROCKET_AUTH_TOKEN", TOKEN)
            .env("ROCKET_AUTH_FAILURES_PER_MINUTE", "100000"),
    )
    .await;
    app.create_service("web", json!({})).await;
    let stored = app.stored_state();
    let operations = documented_requests(&app).await;
    assert!(operations.len() >= 9, "too few operations: {operations:?}");
    let body = Some(json!({"name": "x", "image": TEST_IMAGE, "number": 1}).to_string());

    let longer = format!("Bearer {TOKEN}x");
    let basic = format!("Basic {TOKEN}");
    // (Authorization header, whether the token itself is wrong rather than absent)
    let attempts: [(Option<&str>, bool); 5] = [
        (None, false),
        (Some("Bearer wrong-token"), true),
        (Some(&longer), true),
        (Some(&basic), false),
        (Some(TOKEN), false),
    ];

    let mut refused = 0;
    for (method, path) in &operations {
        for (authorization, wrong_token) in attempts {
            let headers: Vec<(&str, &str)> = authorization
                .map(|value| ("authorization", value))
                .into_iter()
                .collect();
            let reply = app
                .send_with_headers(method, path, &headers, body.clone().map(String::into_bytes))
                .await;
            if path == "/health" {
                assert_eq!(reply.status, 200, "{method} {path} {headers:?}: {reply:?}");
                continue;
            }
            assert_eq!(reply.status, 401, "{method} {path} {headers:?}: {reply:?}");
            assert_eq!(reply.header("content-type"), Some("application/json"));
            assert!(reply.error().contains("auth"), "{reply:?}");
            let challenge = reply.header("www-authenticate").unwrap();
            assert!(challenge.starts_with("Bearer "), "{challenge}");
            assert_eq!(
                challenge.contains("invalid_token"),
                wrong_token,
                "{method} {path} {headers:?}: {challenge}"
            );
            refused += 1;
        }
    }
    // Paths no route knows, and methods none serves, do not reveal that.
    for (method, path) in [
        ("GET", "/nothing-here"),
        ("GET", "/service/web/logs"),
        ("GET", "/"),
        ("PATCH", "/service/web"),
        ("OPTIONS", "/service"),
        ("TRACE", "/service"),
    ] {
        let reply = app.send_with_headers(method, path, &[], None).await;
        assert_eq!(reply.status, 401, "{method} {path}: {reply:?}");
        refused += 1;
    }

    assert_eq!(app.stored_state(), stored);
    assert!(
        app.containers(None).is_empty(),
        "a refused scale started something"
    );
    record_figures(
        "access-control",
        &[
            (
                "documented operations checked",
                operations.len().to_string(),
            ),
            (
                "unauthenticated requests refused with 401",
                refused.to_string(),
            ),
            ("store changed by a refused request", "no".into()),
        ],
    );
}

#[tokio::test]
async fn the_right_token_is_served_normally_and_checked_before_the_body_is_read() {
    let app = spawn_with_token().await;
    // With the token: the usual answers.
    let created = app.create_service("web", json!({})).await;
    assert_eq!(created["name"], "web");
    assert_eq!(app.scale("web", json!(1)).await.status, 200);
    assert_eq!(app.status("web").await.body["running_resources"], 1);
    // The scheme is case-insensitive (RFC 7235).
    let reply = app
        .send_with_headers(
            "GET",
            "/service/web",
            &[("authorization", &format!("bearer {TOKEN}"))],
            None,
        )
        .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    // Without it, even an oversized or broken body gets 401, not 413 or 400:
    // nothing is read before the caller is known.
    for body in ["x".repeat(200_000), "{".to_owned()] {
        let reply = app
            .send_with_headers("POST", "/service", &[], Some(body.into_bytes()))
            .await;
        assert_eq!(reply.status, 401, "{reply:?}");
    }
}

#[tokio::test]
async fn health_is_open_and_shows_details_only_to_token_holders() {
    let app = spawn_with_token().await;
    // Anyone gets the verdict, nothing more: versions and docker's errors
    // are of use to an attacker.
    let reply = app.send_with_headers("GET", "/health", &[], None).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.body, json!({"status": "pass"}));
    // The token holder gets the details.
    let reply = app.get("/health").await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.body["status"], "pass");
    assert_eq!(reply.body["docker"]["reachable"], true);
    assert!(!reply.body["docker"]["server_version"]
        .as_str()
        .unwrap()
        .is_empty());
    assert_eq!(reply.body["services"], 0);
}

#[tokio::test]
async fn near_misses_of_the_open_path_still_need_the_token() {
    let app = spawn_with_token().await;
    for (method, path) in [
        ("GET", "/%68ealth"),
        ("GET", "/health/"),
        ("GET", "//health"),
        ("GET", "/health/..%2fservice"),
        ("GET", "/HEALTH"),
        ("HEAD", "/service"),
    ] {
        let reply = app.send_with_headers(method, path, &[], None).await;
        assert_eq!(reply.status, 401, "{method} {path}: {reply:?}");
    }
    // The open path is open to every method, but it only serves GET.
    let reply = app.send_with_headers("POST", "/health", &[], None).await;
    assert_eq!(reply.status, 405, "{reply:?}");
}

#[tokio::test]
async fn web_pages_cannot_drive_a_connector_without_a_token() {
    let app = TestApp::spawn().await;
    let stored_before = app.get("/service").await.body;
    let create = json!({"name": "csrf", "image": TEST_IMAGE}).to_string();
    let cross_site: [&[(&str, &str)]; 5] = [
        // A form or fetch on another site: the browser names that site.
        &[("origin", "http://evil.example")],
        &[("origin", "null")],
        &[("sec-fetch-site", "cross-site")],
        // A page whose DNS name was pointed at 127.0.0.1 (DNS rebinding): the
        // browser thinks it is same-origin, but the Host header gives it away.
        &[("host", "evil.example:7051")],
        &[
            ("host", "evil.example:7051"),
            ("origin", "http://evil.example:7051"),
        ],
    ];
    for headers in cross_site {
        for (method, path, body) in [
            ("POST", "/service", Some(create.clone())),
            ("GET", "/service", None),
            (
                "POST",
                "/service/web/scale",
                Some(r#"{"number": 1}"#.to_owned()),
            ),
        ] {
            let reply = app
                .send_with_headers(method, path, headers, body.map(String::into_bytes))
                .await;
            assert_eq!(reply.status, 403, "{method} {path} {headers:?}: {reply:?}");
            assert!(reply.error().starts_with("forbidden: "), "{reply:?}");
        }
    }
    assert_eq!(app.get("/service").await.body, stored_before);
    // /health answers a rebound page too, but tells it nothing more.
    let reply = app
        .send_with_headers("GET", "/health", &[("host", "evil.example:7051")], None)
        .await;
    assert_eq!(reply.body, json!({"status": "pass"}), "{reply:?}");

    // Clients name the connector's own address, or send no Origin at all.
    let host = format!("127.0.0.1:{}", app.port);
    let origin = format!("http://{host}");
    for headers in [
        vec![],
        vec![("host", host.as_str()), ("origin", origin.as_str())],
        vec![("host", "localhost")],
    ] {
        let reply = app
            .send_with_headers("GET", "/service", &headers, None)
            .await;
        assert_eq!(reply.status, 200, "{headers:?}: {reply:?}");
    }
}

#[tokio::test]
async fn health_fails_with_503_and_the_reason_when_the_engine_is_unreachable() {
    let app = TestApp::spawn_with(
        AppOptions::new().env("DOCKER_HOST", "unix:///nonexistent/docker.sock"),
    )
    .await;
    let reply = app.get("/health").await;
    assert_eq!(reply.status, 503, "{reply:?}");
    assert_eq!(reply.body["status"], "fail");
    assert_eq!(reply.body["docker"]["reachable"], false);
    assert!(reply.body["docker"]["error"]
        .as_str()
        .unwrap()
        .contains("docker"));
}

#[tokio::test]
async fn tokens_never_reach_the_log_even_at_debug_level() {
    let app = TestApp::spawn_with(
        AppOptions::new()
            .env("ROCKET_AUTH_TOKEN", TOKEN)
            .env("ROCKET_LOG_LEVEL", "debug"),
    )
    .await;
    app.create_service(
        "web",
        json!({"environment": {"SECRET": "env-value-not-for-logs"}}),
    )
    .await;
    assert_eq!(app.scale("web", json!(1)).await.status, 200);
    let wrong = "wrong-token-that-must-not-be-logged";
    app.send_with_headers(
        "GET",
        "/service",
        &[("authorization", &format!("Bearer {wrong}"))],
        None,
    )
    .await;
    let log = app.log_containing("GET /service 401").await;
    assert!(log.contains("1 token(s)"), "{log}");
    assert!(log.contains("GET /service 401"), "{log}");
    assert!(!log.contains(TOKEN), "the token is in the log:\n{log}");
    assert!(
        !log.contains(wrong),
        "a presented token is in the log:\n{log}"
    );
    // Debug level logs docker's argv, with environment values masked.
    assert!(log.contains("SECRET=***"), "{log}");
    assert!(!log.contains("env-value-not-for-logs"), "{log}");
}

#[test]
fn listening_beyond_loopback_without_a_token_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    for address in ["0.0.0.0", "::"] {
        let (code, log) = launch_expecting_failure(dir.path(), &[("ROCKET_ADDRESS", address)]);
        assert_eq!(code, Some(1), "{log}");
        assert!(log.contains("auth_token"), "{log}");
        assert!(log.contains("allow_unauthenticated"), "{log}");
    }
    let (code, log) = launch_expecting_failure(dir.path(), &[("ROCKET_AUTH_TOKEN", "")]);
    assert_eq!(code, Some(1), "{log}");
    assert!(log.contains("auth_token"), "{log}");
}

#[tokio::test]
async fn allow_unauthenticated_starts_beyond_loopback_with_a_warning() {
    let app = TestApp::spawn_with(
        AppOptions::new()
            .env("ROCKET_ADDRESS", "0.0.0.0")
            .env("ROCKET_ALLOW_UNAUTHENTICATED", "true")
            .env("ROCKET_ALLOW_PLAIN_HTTP", "true"),
    )
    .await;
    assert_eq!(app.get("/service").await.status, 200);
    let log = app.log();
    assert!(
        log.contains("WARN") && log.contains("allow_unauthenticated"),
        "no warning:\n{log}"
    );
    assert!(
        log.contains("WARN") && log.contains("allow_plain_http = true"),
        "no warning about plain HTTP:\n{log}"
    );
    // Reached by address it serves; a DNS name could be a rebound page.
    let by_name = [("host", "evil.example"), ("origin", "http://evil.example")];
    let body = json!({"name": "rebound", "image": TEST_IMAGE}).to_string();
    let reply = app
        .send_with_headers("POST", "/service", &by_name, Some(body.into_bytes()))
        .await;
    assert_eq!(reply.status, 403, "{reply:?}");

    // With a token there is nothing to warn about.
    let app = TestApp::spawn_with(
        AppOptions::new()
            .env("ROCKET_ADDRESS", "0.0.0.0")
            .env("ROCKET_AUTH_TOKEN", TOKEN)
            .env("ROCKET_ALLOW_PLAIN_HTTP", "true"),
    )
    .await;
    assert_eq!(app.get("/service").await.status, 200);
    assert!(
        !app.log().contains("allow_unauthenticated"),
        "{}",
        app.log()
    );
}
