//! What operators watch: `/metrics` in Prometheus' text format, and the
//! request log as text or JSON lines, with no secret in either.

use std::collections::BTreeMap;
use std::time::Duration;

use regex::Regex;
use serde_json::{json, Value};

use crate::support::app::{poll_until, AppOptions, TestApp};
use crate::support::openapi::documented_operations;

/// One sample: metric name and labels as written, e.g.
/// `docker_connector_services` or `x_total{a="b",c="d"}`, mapped to its value.
type Samples = BTreeMap<String, f64>;

/// Parses the whole exposition, failing on any line that is neither a
/// `# HELP`/`# TYPE` comment nor a well-formed sample.
fn parse_exposition(text: &str) -> Samples {
    let sample = Regex::new(
        r#"^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*"(?:,[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*")*\})?) (\S+)$"#,
    )
    .unwrap();
    let comment = Regex::new(r"^# (HELP|TYPE) [a-zA-Z_:][a-zA-Z0-9_:]* .+$").unwrap();
    let mut samples = Samples::new();
    for line in text.lines() {
        if comment.is_match(line) {
            continue;
        }
        let captures = sample
            .captures(line)
            .unwrap_or_else(|| panic!("not the Prometheus text format: {line:?}\n{text}"));
        let value: f64 = match &captures[2] {
            "+Inf" => f64::INFINITY,
            number => number
                .parse()
                .unwrap_or_else(|_| panic!("value of {line:?}")),
        };
        samples.insert(captures[1].to_owned(), value);
    }
    samples
}

/// The values of every label named `label` across all samples.
fn label_values(samples: &Samples, label: &str) -> Vec<String> {
    let pattern = Regex::new(&format!(r#"[{{,]{label}="([^"]*)""#)).unwrap();
    samples
        .keys()
        .filter_map(|series| pattern.captures(series).map(|c| c[1].to_owned()))
        .collect()
}

async fn scrape(app: &TestApp) -> (String, Samples) {
    let reply = app.get("/metrics").await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let content_type = reply.header("content-type").unwrap_or_default();
    assert!(
        content_type.starts_with("text/plain") && content_type.contains("version=0.0.4"),
        "{content_type}"
    );
    let text = reply.body.as_str().expect("a text body").to_owned();
    let samples = parse_exposition(&text);
    (text, samples)
}

#[tokio::test]
async fn metrics_count_requests_by_route_template_docker_calls_and_running_containers() {
    let app = TestApp::spawn().await;
    app.create_service("web", json!({})).await;
    assert_eq!(app.scale("web", json!(2)).await.status, 200);
    for _ in 0..3 {
        assert_eq!(app.status("web").await.status, 200);
    }
    assert_eq!(app.get("/service/no-such-service").await.status, 404);
    assert_eq!(app.get("/no/such/path").await.status, 404);
    // Rocket answers HEAD with the GET route and rewrites the method.
    let head = app.send_with_headers("HEAD", "/service", &[], None).await;
    assert_eq!(head.status, 200);

    // The running gauge comes from the index, which goes live shortly
    // after the start; the request counts are already final.
    let app = &app;
    let (text, samples) = poll_until(Duration::from_secs(5), move || async move {
        let (text, samples) = scrape(app).await;
        let gauge = r#"docker_connector_service_running_containers{service="web"}"#;
        (samples.contains_key(gauge), (text, samples))
    })
    .await;
    let value = |series: &str| {
        *samples
            .get(series)
            .unwrap_or_else(|| panic!("no {series} in\n{text}"))
    };

    let status_route = r#"method="GET",route="/service/<name>/status""#;
    assert_eq!(
        value(&format!(
            "docker_connector_http_requests_total{{{status_route},status=\"200\"}}"
        )),
        3.0
    );
    assert_eq!(
        value(&format!(
            "docker_connector_http_request_duration_seconds_count{{{status_route}}}"
        )),
        3.0
    );
    assert_eq!(
        value(&format!(
            "docker_connector_http_request_duration_seconds_bucket{{{status_route},le=\"+Inf\"}}"
        )),
        3.0
    );
    assert_eq!(
        value(
            r#"docker_connector_http_requests_total{method="GET",route="/service/<name>",status="404"}"#
        ),
        1.0
    );
    assert_eq!(
        value(
            r#"docker_connector_http_requests_total{method="GET",route="unmatched",status="404"}"#
        ),
        1.0
    );
    assert_eq!(
        value(
            r#"docker_connector_http_requests_total{method="POST",route="/service/<name>/scale",status="200"}"#
        ),
        1.0
    );
    assert_eq!(
        value(
            r#"docker_connector_http_requests_total{method="HEAD",route="/service",status="200"}"#
        ),
        1.0
    );
    // Routes are the served templates, never the paths clients sent.
    let document = app.get("/openapi.json").await.body;
    let templates: Vec<String> = documented_operations(&document)
        .into_iter()
        .map(|(_, path)| path.replace("{name}", "<name>"))
        .collect();
    for route in label_values(&samples, "route") {
        assert!(
            route == "unmatched" || templates.contains(&route),
            "not a route template: {route} (templates: {templates:?})"
        );
    }

    assert!(value(r#"docker_connector_docker_calls_total{outcome="ok",verb="run"}"#) >= 2.0);
    assert!(value(r#"docker_connector_docker_call_duration_seconds_count{verb="run"}"#) >= 2.0);
    assert!(
        value(r#"docker_connector_docker_calls_total{outcome="started",verb="events"}"#) >= 1.0
    );
    assert_eq!(
        value(r#"docker_connector_service_running_containers{service="web"}"#),
        2.0
    );
    assert_eq!(value("docker_connector_container_index_live"), 1.0);
    assert_eq!(value("docker_connector_services"), 1.0);
    assert_eq!(
        value(&format!(
            "docker_connector_build_info{{version=\"{}\"}}",
            env!("CARGO_PKG_VERSION")
        )),
        1.0
    );
}

#[tokio::test]
async fn a_docker_that_fails_is_counted_by_outcome_and_metrics_still_answer() {
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::spawn_with(AppOptions::new().fake_docker(
        dir.path(),
        "echo 'Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?' >&2; exit 1",
    ))
    .await;
    app.create_service("web", json!({})).await;
    assert_eq!(app.status("web").await.status, 503);

    let (text, samples) = scrape(&app).await;
    let unavailable = samples
        .get(r#"docker_connector_docker_calls_total{outcome="unavailable",verb="ps"}"#)
        .copied()
        .unwrap_or_default();
    assert!(unavailable >= 1.0, "{text}");
    assert_eq!(
        samples.get("docker_connector_container_index_live"),
        Some(&0.0),
        "{text}"
    );
    assert!(
        !text.contains("service_running_containers{"),
        "counts are left out, not guessed, while the index is not live:\n{text}"
    );
}

#[tokio::test]
async fn json_log_lines_describe_each_request_and_carry_no_secret() {
    const TOKEN: &str = "json-log-token-5c2e8a1f7b3d9046";
    const SECRET: &str = "env-value-never-logged-81d3";
    let app = TestApp::spawn_with(
        AppOptions::new()
            .env("ROCKET_LOG_FORMAT", "json")
            .env("ROCKET_LOG_LEVEL", "debug")
            .env("ROCKET_AUTH_TOKEN", TOKEN),
    )
    .await;
    app.create_service("web", json!({"environment": {"SECRET": SECRET}}))
        .await;
    assert_eq!(app.scale("web", json!(1)).await.status, 200);
    let wrong = app
        .send_with_headers(
            "GET",
            "/service?token=query-secret-never-logged",
            &[("authorization", "Bearer wrong-token-never-logged")],
            None,
        )
        .await;
    assert_eq!(wrong.status, 401);
    let log = app.log_containing(r#""status":401"#).await;

    let lines: Vec<Value> = log
        .lines()
        .map(|line| {
            serde_json::from_str(line).unwrap_or_else(|_| panic!("not a JSON line: {line:?}"))
        })
        .collect();
    for line in &lines {
        for key in ["time", "level", "target", "message"] {
            assert!(line[key].is_string(), "{key} missing in {line}");
        }
    }
    let scale = lines
        .iter()
        .find(|line| line["path"] == "/service/web/scale")
        .unwrap_or_else(|| panic!("no request line for the scale in\n{log}"));
    assert_eq!(scale["method"], "POST");
    assert_eq!(scale["route"], "/service/<name>/scale");
    assert_eq!(scale["status"], 200);
    assert!(
        scale["duration_ms"].as_f64().is_some_and(|ms| ms > 0.0),
        "{scale}"
    );
    assert!(
        lines.iter().any(|line| line["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("running ") && m.contains("SECRET=***"))),
        "debug shows the docker argv, values masked:\n{log}"
    );
    for secret in [
        TOKEN,
        SECRET,
        "wrong-token-never-logged",
        "query-secret-never-logged",
    ] {
        assert!(!log.contains(secret), "{secret} reached the log:\n{log}");
    }
}

#[tokio::test]
async fn text_logs_write_one_line_per_request() {
    let app = TestApp::spawn().await;
    for _ in 0..5 {
        assert_eq!(app.get("/service").await.status, 200);
    }
    // The reader thread may not have passed the last lines on yet.
    let app = &app;
    let request_lines = poll_until(Duration::from_secs(5), move || async move {
        let lines: Vec<String> = app
            .log()
            .lines()
            .filter(|line| line.contains("GET /service "))
            .map(str::to_owned)
            .collect();
        (lines.len() >= 5, lines)
    })
    .await;
    assert_eq!(request_lines.len(), 5, "{request_lines:#?}");
    let shape = Regex::new(r"^\S+ INFO  GET /service 200 \d+\.\dms$").unwrap();
    assert!(
        request_lines.iter().all(|line| shape.is_match(line)),
        "{request_lines:#?}"
    );
}
