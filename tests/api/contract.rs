//! The OpenAPI document (`src/openapi.json`, served at `/openapi.json`)
//! against the connector itself: it is served verbatim, it lists exactly the
//! operations the server routes, every operation documents its errors with the
//! shared `Error` schema, its examples fit its schemas, and real answers (each
//! documented status the tests can provoke, docker faults included) fit the
//! documented status, headers, content type and schema.
//!
//! The checks themselves (the schema validator, what an answer must fit)
//! are in tests/support/openapi.rs.

use std::collections::{BTreeMap, BTreeSet};

use regex::Regex;
use serde_json::{json, Value};

use docker_connector::docker::swarm_service_name;
use docker_connector::domain::ServiceName;
use docker_connector::routes::GATE_ROUTE_NAME;

use crate::support::app::{backend_suite, AppOptions, Backend, Reply, TestApp};
use crate::support::docker::{ForeignSwarmService, TEST_IMAGE};
use crate::support::figures::record_figures;
use crate::support::openapi::{
    answer_problems, document, documented_operations, operation, resolve, schema_problems,
    template_of, NoRepeatedKeys, DOCUMENT,
};
use crate::support::sse::EventStream;

/// Methods tried on every documented path: an undocumented one must answer 405.
const PROBED_METHODS: [&str; 6] = ["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"];

/// The statuses each operation can answer, from its handler and the error
/// mapping in src/error.rs: 401 and 403 on everything but /health (the
/// access gate: auth_token, and requests from web pages), 400
/// and 413 where a body is read (400 also for a bad query or header), 415
/// on every POST and PUT (the gate refuses a body not sent as JSON), 404
/// where a service is looked up, 409 where a name is taken (by a service, or
/// on the swarm backend by a Swarm service that is not the connector's),
/// where a rollback has nothing to go back to and where a count leaves its
/// bounds, 412 where If-Match is honoured, 500 where the definitions file
/// is written, 502/503/504 where docker runs.
const STATUSES: [(&str, &str, &[u16]); 14] = [
    ("GET", "/service", &[200, 401, 403, 429]),
    (
        "POST",
        "/service",
        &[201, 400, 401, 403, 409, 413, 415, 429, 500],
    ),
    ("GET", "/service/{name}", &[200, 401, 403, 404, 429]),
    (
        "PUT",
        "/service/{name}",
        &[
            200, 201, 400, 401, 403, 409, 412, 413, 415, 429, 500, 502, 503, 504,
        ],
    ),
    (
        "DELETE",
        "/service/{name}",
        &[204, 400, 401, 403, 404, 412, 429, 500, 502, 503, 504],
    ),
    (
        "POST",
        "/service/{name}/rollback",
        &[
            200, 400, 401, 403, 404, 409, 412, 415, 429, 500, 502, 503, 504,
        ],
    ),
    (
        "POST",
        "/service/{name}/scale",
        &[
            200, 400, 401, 403, 404, 409, 412, 413, 415, 429, 500, 502, 503, 504,
        ],
    ),
    (
        "GET",
        "/service/{name}/status",
        &[200, 400, 401, 403, 404, 409, 429, 502, 503, 504],
    ),
    ("GET", "/service/{name}/history", &[200, 401, 403, 404, 429]),
    (
        "DELETE",
        "/service/{name}/earlier-definitions",
        &[200, 401, 403, 404, 409, 429, 500, 502, 503, 504],
    ),
    ("GET", "/events", &[200, 400, 401, 403, 429]),
    ("GET", "/health", &[200, 503]),
    ("GET", "/metrics", &[200, 401, 403, 429]),
    ("GET", "/openapi.json", &[200, 401, 403, 429]),
];

/// Every route the connector mounts, as (METHOD, path template), from the
/// server its binary builds.
fn served_routes() -> BTreeSet<(String, String)> {
    let dir = tempfile::tempdir().unwrap();
    let no_toml = dir.path().join("Rocket.toml");
    let figment = docker_connector::config::figment(Some(no_toml.as_path()))
        .merge(("address", "127.0.0.1"))
        .merge(("data_file", dir.path().join("services.json")))
        .merge(("instance", "contract"));
    let rocket = docker_connector::rocket(figment).expect("the server builds");
    let param = Regex::new(r"<([A-Za-z_][A-Za-z0-9_]*)>").unwrap();
    rocket
        .routes()
        .filter(|route| route.name.as_deref() != Some(GATE_ROUTE_NAME))
        .map(|route| {
            let path = param.replace_all(route.uri.path(), "{$1}").into_owned();
            (route.method.as_str().to_owned(), path)
        })
        .collect()
}

#[tokio::test]
async fn the_document_is_served_verbatim_and_lists_exactly_the_served_routes() {
    let app = TestApp::spawn().await;
    let served = reqwest::get(app.url("/openapi.json")).await.unwrap();
    assert_eq!(served.status(), 200);
    assert_eq!(
        served.headers()["content-type"].to_str().unwrap(),
        "application/json"
    );
    assert_eq!(served.text().await.unwrap(), DOCUMENT);

    let doc = document();
    let documented = documented_operations(&doc);
    let routes = served_routes();
    assert_eq!(
        documented,
        routes,
        "documented but not served: {:?}; served but not documented: {:?}",
        documented.difference(&routes).collect::<Vec<_>>(),
        routes.difference(&documented).collect::<Vec<_>>()
    );

    // The running server agrees: a documented operation is routed (neither 405
    // nor a 404 for an unknown path), and any other method on a documented path
    // answers 405 whose Allow lists exactly the documented methods.
    let mut by_path: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (method, path) in &documented {
        by_path.entry(path).or_default().insert(method);
    }
    for (template, methods) in &by_path {
        let path = template.replace("{name}", "contract-probe");
        for method in PROBED_METHODS {
            if path == "/events" && method == "GET" {
                // A stream never ends: opening it shows it is routed.
                EventStream::open(&app, &path, &[]).await;
                continue;
            }
            let body = matches!(method, "POST" | "PUT" | "PATCH").then(|| b"{}".to_vec());
            let reply = app.send(method, &path, body).await;
            if methods.contains(method) {
                let unrouted = reply.status == 405
                    || (reply.status == 404 && reply.error().starts_with("no such resource"));
                assert!(!unrouted, "{method} {path} is documented but: {reply:?}");
                continue;
            }
            assert_eq!(reply.status, 405, "{method} {path}: {reply:?}");
            let allow: BTreeSet<&str> = reply
                .header("allow")
                .unwrap_or_else(|| panic!("405 without Allow: {reply:?}"))
                .split(',')
                .map(str::trim)
                .collect();
            assert_eq!(&allow, methods, "Allow of {method} {path}");
            let problems = answer_problems(&doc, method, &path, &reply);
            assert!(problems.is_empty(), "{problems:#?}");
        }
    }
    for path in ["/", "/services", "/service/contract-probe/logs", "/healthz"] {
        let reply = app.get(path).await;
        assert_eq!(reply.status, 404, "{path}: {reply:?}");
        assert!(reply.error().starts_with("no such resource"), "{reply:?}");
    }
}

#[test]
fn every_operation_documents_its_statuses_and_its_errors_use_the_error_schema() {
    let doc = document();
    assert_eq!(doc["openapi"], "3.0.3");
    assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));
    let bearer = &doc["components"]["securitySchemes"]["bearerAuth"];
    assert_eq!(
        (&bearer["type"], &bearer["scheme"]),
        (&json!("http"), &json!("bearer"))
    );
    let basic = &doc["components"]["securitySchemes"]["basicAuth"];
    assert_eq!(
        (&basic["type"], &basic["scheme"]),
        (&json!("http"), &json!("basic"))
    );
    assert_eq!(
        doc["security"],
        json!([{"bearerAuth": []}, {"basicAuth": []}])
    );
    let error_schema = json!({"$ref": "#/components/schemas/Error"});

    let expected: BTreeSet<(String, String)> = STATUSES
        .iter()
        .map(|(method, path, _)| (method.to_string(), path.to_string()))
        .collect();
    assert_eq!(documented_operations(&doc), expected);

    for (method, path, statuses) in STATUSES {
        let op = operation(&doc, method, path);
        let label = format!("{method} {path}");
        assert!(op["operationId"].is_string(), "{label} has no operationId");
        let responses = op["responses"].as_object().unwrap();
        let mut documented: Vec<u16> = responses.keys().map(|s| s.parse().unwrap()).collect();
        documented.sort_unstable();
        assert_eq!(documented, statuses, "{label}: documented statuses");

        for (status, response) in responses {
            let response = resolve(&doc, response);
            let schema = &response["content"]["application/json"]["schema"];
            if path == "/metrics" && status == "200" {
                assert_eq!(
                    response["content"]["text/plain"]["schema"],
                    json!({"type": "string"}),
                    "{label} {status}: the Prometheus text format"
                );
                continue;
            }
            if path == "/events" && status == "200" {
                assert_eq!(
                    response["content"]["text/event-stream"]["schema"],
                    json!({"type": "string"}),
                    "{label} {status}: a server-sent event stream"
                );
                continue;
            }
            let code: u16 = status.parse().unwrap();
            assert!(
                response["description"].is_string(),
                "{label} {status}: no description"
            );
            if code >= 400 && path != "/health" {
                assert_eq!(
                    schema, &error_schema,
                    "{label} {status}: not the Error schema"
                );
            } else if code == 204 {
                assert!(response.get("content").is_none(), "{label} 204 has a body");
            } else {
                assert!(schema.is_object(), "{label} {status}: no JSON schema");
            }
        }

        let security = op.get("security").unwrap_or(&doc["security"]);
        if path == "/health" {
            assert_eq!(security, &json!([]), "/health must need no token");
        } else {
            assert_eq!(
                security,
                &json!([{"bearerAuth": []}, {"basicAuth": []}]),
                "{label}: security"
            );
            let unauthorized = resolve(&doc, &op["responses"]["401"]);
            assert_eq!(
                resolve(&doc, &unauthorized["headers"]["WWW-Authenticate"])["required"],
                true,
                "{label}: 401 without WWW-Authenticate"
            );
        }
        let has_body = op.get("requestBody").is_some();
        assert_eq!(
            has_body,
            matches!(method, "POST" | "PUT") && !path.ends_with("/rollback"),
            "{label}: request body"
        );
        if has_body {
            let body = &op["requestBody"];
            assert_eq!(body["required"], true, "{label}: request body required");
            let schema = resolve(&doc, &body["content"]["application/json"]["schema"]);
            assert_eq!(
                schema["additionalProperties"], false,
                "{label}: unknown fields are refused"
            );
        }
    }
    let location = |method, status: &str| {
        resolve(
            &doc,
            &operation(&doc, method, "/service")["responses"][status],
        )["headers"]["Location"]
            .clone()
    };
    assert!(location("POST", "201").is_object(), "201 without Location");
    assert!(location("POST", "409").is_object(), "409 without Location");
}

#[test]
fn no_object_in_the_document_repeats_a_key() {
    if let Err(e) = serde_json::from_str::<NoRepeatedKeys>(DOCUMENT) {
        panic!("src/openapi.json: {e}");
    }
    let repeated = r#"{"responses": {"409": {}, "200": [1, "x", null, {"a": 1.5}], "409": {}}}"#;
    assert!(serde_json::from_str::<NoRepeatedKeys>(repeated).is_err());
}

#[test]
fn every_example_in_the_document_fits_its_schema() {
    fn walk<'a>(node: &'a Value, at: String, found: &mut Vec<(String, &'a Value, &'a Value)>) {
        match node {
            Value::Object(object) => {
                if let Some(example) = object.get("example") {
                    // A media type, parameter or header holds a schema; a schema is one.
                    found.push((at.clone(), object.get("schema").unwrap_or(node), example));
                }
                for (key, child) in object {
                    if key != "example" {
                        walk(child, format!("{at}/{key}"), found);
                    }
                }
            }
            Value::Array(items) => {
                for (i, child) in items.iter().enumerate() {
                    walk(child, format!("{at}/{i}"), found);
                }
            }
            _ => {}
        }
    }
    let doc = document();
    let mut examples = Vec::new();
    walk(&doc, String::new(), &mut examples);
    assert!(examples.len() >= 20, "only {} examples", examples.len());
    let problems: Vec<String> = examples
        .iter()
        .flat_map(|(at, schema, example)| {
            schema_problems(&doc, schema, example)
                .into_iter()
                .map(move |p| format!("{at}: {p}"))
        })
        .collect();
    assert!(problems.is_empty(), "{problems:#?}");

    // The validator is not vacuous: it refuses what the schemas exclude.
    let schema = |name: &str| json!({ "$ref": format!("#/components/schemas/{name}") });
    for (name, bad) in [
        ("Error", json!({"error": 1})),
        ("Error", json!({"error": "x", "more": 1})),
        ("Status", json!({})),
        ("Status", json!({"running_resources": -1})),
        ("Status", json!({"running_resources": "1"})),
        ("ServiceName", json!("-web")),
        ("ImageRef", json!("demo/hello")),
        ("Port", json!(0)),
        ("Port", json!("8080/http")),
        ("Ports", json!([80, 80])),
        ("Command", json!(5)),
        ("EnvironmentIn", json!({"A": null})),
        ("CreateBody", json!({"name": "web"})),
        (
            "CreateBody",
            json!({"name": "web", "image": "a:1", "enviroment": {}}),
        ),
        ("ScaleBody", json!({"number": -1})),
        ("Definition", json!({"name": "web", "image": "a:1"})),
    ] {
        assert!(
            !schema_problems(&doc, &schema(name), &bad).is_empty(),
            "{name} accepts {bad}"
        );
    }
}

/// Sends each request and collects how its answer departs from the document;
/// asserts the status each request is there to provoke.
struct Exercise<'a> {
    doc: &'a Value,
    problems: Vec<String>,
    /// Documented (operation, status) pairs seen.
    covered: BTreeSet<String>,
    answers: usize,
}

impl Exercise<'_> {
    async fn send(
        &mut self,
        app: &TestApp,
        method: &str,
        path: &str,
        body: Option<Vec<u8>>,
        want: u16,
    ) {
        let reply = app.send(method, path, body).await;
        self.check(method, path, &reply, want);
    }

    async fn json(&mut self, app: &TestApp, method: &str, path: &str, body: Value, want: u16) {
        self.send(app, method, path, Some(body.to_string().into_bytes()), want)
            .await;
    }

    fn check(&mut self, method: &str, path: &str, reply: &Reply, want: u16) {
        assert_eq!(reply.status, want, "{method} {path}: {reply:?}");
        self.answers += 1;
        self.problems
            .extend(answer_problems(self.doc, method, path, reply));
        if let Some(template) = template_of(self.doc, path) {
            self.covered.insert(format!("{method} {template} {want}"));
        }
    }
}

/// A body over the 64 KiB limit.
fn oversized() -> Option<Vec<u8>> {
    let filler = "x".repeat(70 * 1024);
    Some(
        json!({"name": "big", "image": "big:1", "command": filler})
            .to_string()
            .into_bytes(),
    )
}

backend_suite!(real_answers_fit_the_documented_statuses_headers_and_schemas);

pub async fn real_answers_fit_the_documented_statuses_headers_and_schemas(backend: Backend) {
    let doc = document();
    let mut run = Exercise {
        doc: &doc,
        problems: Vec::new(),
        covered: BTreeSet::new(),
        answers: 0,
    };

    let app = TestApp::spawn_with(backend.options()).await;
    let hello = json!({"name": "helloworld", "image": TEST_IMAGE, "ports": ["8080", "8081"],
                       "environment": {"VAR_A": "value", "VAR_B": "value"}});
    run.send(&app, "GET", "/service", None, 200).await;
    run.json(&app, "POST", "/service", hello.clone(), 201).await;
    run.json(&app, "POST", "/service", hello, 409).await;
    run.send(&app, "GET", "/service", None, 200).await;
    run.send(&app, "GET", "/service/helloworld", None, 200)
        .await;
    let replaced = json!({"image": TEST_IMAGE, "command": "sleep 300", "ports": ["8080", 8082, "53/udp"],
                          "environment": {"VAR_A": "value", "WORKERS": 4, "DEBUG": false}});
    run.json(&app, "PUT", "/service/helloworld", replaced, 200)
        .await;
    let second = json!({"name": "second", "image": TEST_IMAGE, "command": ["sleep", "300"]});
    run.json(&app, "PUT", "/service/second", second, 201).await;
    run.send(&app, "GET", "/service", None, 200).await;
    for bad in [
        json!({"name": "other", "image": "demo/hello"}),
        json!({"name": "other", "image": "a:1", "enviroment": {}}),
        json!({"name": "other", "image": "a:1", "ports": [0]}),
        json!(["not", "an", "object"]),
    ] {
        run.json(&app, "POST", "/service", bad, 400).await;
    }
    run.send(&app, "POST", "/service", Some(b"{not json".to_vec()), 400)
        .await;
    run.send(&app, "POST", "/service", oversized(), 413).await;
    run.json(&app, "PUT", "/service/-bad", json!({"image": "a:1"}), 400)
        .await;
    run.json(
        &app,
        "PUT",
        "/service/second",
        json!({"name": "x", "image": "a:1"}),
        400,
    )
    .await;
    run.send(&app, "PUT", "/service/helloworld", oversized(), 413)
        .await;
    run.send(&app, "GET", "/service/nothing", None, 404).await;
    run.json(
        &app,
        "POST",
        "/service/helloworld/scale",
        json!({"number": 1}),
        200,
    )
    .await;
    run.send(&app, "GET", "/service/helloworld/status", None, 200)
        .await;
    run.json(
        &app,
        "POST",
        "/service/helloworld/scale",
        json!({"number": "0"}),
        200,
    )
    .await;
    run.json(
        &app,
        "POST",
        "/service/helloworld/scale",
        json!({"number": -1}),
        400,
    )
    .await;
    run.json(
        &app,
        "POST",
        "/service/helloworld/scale",
        json!({"number": 1, "x": 1}),
        400,
    )
    .await;
    run.send(&app, "POST", "/service/helloworld/scale", oversized(), 413)
        .await;
    run.json(
        &app,
        "POST",
        "/service/nothing/scale",
        json!({"number": 0}),
        404,
    )
    .await;
    run.send(&app, "GET", "/service/nothing/status", None, 404)
        .await;
    run.send(&app, "POST", "/service/helloworld/rollback", None, 200)
        .await;
    run.send(&app, "POST", "/service/second/rollback", None, 409)
        .await;
    run.send(&app, "POST", "/service/nothing/rollback", None, 404)
        .await;
    if backend == Backend::Swarm {
        // A Swarm service of the name the connector would use, not its own.
        let taken = ServiceName::parse("taken").unwrap();
        let _foreign = ForeignSwarmService::create(&swarm_service_name(&app.instance, &taken));
        app.create_service("taken", json!({})).await;
        run.json(
            &app,
            "POST",
            "/service/taken/scale",
            json!({"number": 1}),
            409,
        )
        .await;
        run.send(&app, "GET", "/service/taken/status", None, 409)
            .await;
        let replaced = json!({"image": TEST_IMAGE, "command": "sleep 5"});
        run.json(&app, "PUT", "/service/taken", replaced, 409).await;
    }
    // Issue 17: blocking status, history, compare-and-set, bounds, events.
    run.send(
        &app,
        "GET",
        "/service/helloworld/status?index=1&wait=1s",
        None,
        200,
    )
    .await;
    run.send(&app, "GET", "/service/helloworld/status?wait=1s", None, 400)
        .await;
    run.send(&app, "GET", "/service/helloworld/history", None, 200)
        .await;
    run.send(&app, "GET", "/service/nothing/history", None, 404)
        .await;
    let stale = [("if-match", "\"999999999\"")];
    for (method, path, body) in [
        ("PUT", "/service/second", Some(json!({"image": TEST_IMAGE}))),
        ("DELETE", "/service/second", None),
        ("POST", "/service/second/scale", Some(json!({"number": 0}))),
        ("POST", "/service/helloworld/rollback", None),
    ] {
        let body = body.map(|b| b.to_string().into_bytes());
        let reply = app.send_with_headers(method, path, &stale, body).await;
        run.check(method, path, &reply, 412);
    }
    // An If-Match that is no entity tag of the connector's is a 400 even
    // where no body is read.
    let malformed = [("if-match", "W/\"1\"")];
    for (method, path) in [
        ("DELETE", "/service/second"),
        ("POST", "/service/helloworld/rollback"),
    ] {
        let reply = app.send_with_headers(method, path, &malformed, None).await;
        run.check(method, path, &reply, 400);
    }
    app.create_service("bounded", json!({"scaling": {"max": 1}}))
        .await;
    run.json(
        &app,
        "POST",
        "/service/bounded/scale",
        json!({"number": 2}),
        409,
    )
    .await;
    run.json(
        &app,
        "POST",
        "/service/bounded/scale",
        json!({"delta": -1}),
        409,
    )
    .await;
    let excluding = json!({"image": TEST_IMAGE, "scaling": {"min": 1}});
    run.json(&app, "PUT", "/service/bounded", excluding, 409)
        .await;
    match EventStream::try_open(&app, "/events?service=-x", &[]).await {
        Ok(_) => panic!("GET /events with an invalid service opened a stream"),
        Err(reply) => run.check("GET", "/events?service=-x", &reply, 400),
    }
    // A stream never ends, so it is only opened: its status and media
    // type are what EventStream checks.
    EventStream::open(&app, "/events", &[]).await;
    run.covered.insert("GET /events 200".to_owned());
    run.answers += 1;
    run.send(&app, "DELETE", "/service/second", None, 204).await;
    run.send(&app, "DELETE", "/service/second", None, 404).await;
    run.send(&app, "GET", "/health", None, 200).await;
    run.send(&app, "GET", "/openapi.json", None, 200).await;
    run.send(&app, "GET", "/metrics", None, 200).await;
    run.send(&app, "PATCH", "/service", None, 405).await;
    run.send(&app, "GET", "/nope", None, 404).await;

    // Docker faults: a missing CLI, or an engine that does not answer (503;
    // the swarm backend refuses to start without an engine that says it is
    // a manager), a CLI that fails (502), one that hangs past docker_timeout
    // (504). A PUT hands the definition to docker only on the swarm backend.
    let dir = tempfile::tempdir().unwrap();
    let fake = |name: &str, script: &str| {
        let fake_dir = dir.path().join(name);
        std::fs::create_dir(&fake_dir).unwrap();
        backend.fake_docker(&fake_dir, script)
    };
    let missing = TestApp::spawn_with(match backend {
        Backend::Containers => AppOptions::new().env("ROCKET_DOCKER", "/nonexistent/docker"),
        Backend::Swarm => fake(
            "unreachable",
            "echo 'Cannot connect to the Docker daemon at unix:///var/run/docker.sock. \
             Is the docker daemon running?' >&2; exit 1",
        ),
    })
    .await;
    let failing = TestApp::spawn_with(fake(
        "failing",
        "echo 'Error response from daemon: injected failure' >&2; exit 1",
    ))
    .await;
    let hanging =
        TestApp::spawn_with(fake("hanging", "exec sleep 10").env("ROCKET_DOCKER_TIMEOUT", "1"))
            .await;
    let put_status = |fault: u16| match backend {
        Backend::Containers => 200,
        Backend::Swarm => fault,
    };
    for (faulty, status) in [(&missing, 503), (&failing, 502)] {
        faulty.create_service("web", json!({})).await;
        let replaced = json!({"image": TEST_IMAGE, "command": "sleep 5"});
        run.json(faulty, "PUT", "/service/web", replaced, put_status(status))
            .await;
        run.send(faulty, "GET", "/service/web/status", None, status)
            .await;
        run.json(
            faulty,
            "POST",
            "/service/web/scale",
            json!({"number": 1}),
            status,
        )
        .await;
        run.send(faulty, "DELETE", "/service/web", None, status)
            .await;
        run.send(faulty, "GET", "/health", None, 503).await;
    }
    hanging.create_service("web", json!({})).await;
    run.send(&hanging, "GET", "/service/web/status", None, 504)
        .await;
    let replaced = json!({"image": TEST_IMAGE, "command": "sleep 5"});
    run.json(&hanging, "PUT", "/service/web", replaced, put_status(504))
        .await;

    // With auth_token set, no token (or a wrong one) is 401 everywhere but /health.
    let guarded = TestApp::spawn_with(
        backend
            .options()
            .env("ROCKET_AUTH_TOKEN", "contract-token-4b8e1d7c9a2f3605"),
    )
    .await;
    for (method, path) in [
        ("GET", "/service"),
        ("POST", "/service/web/scale"),
        ("DELETE", "/service/web"),
        ("GET", "/openapi.json"),
        ("GET", "/metrics"),
        ("GET", "/events"),
    ] {
        let reply = guarded.send_with_headers(method, path, &[], None).await;
        run.check(method, path, &reply, 401);
    }
    let wrong = [("authorization", "Bearer not-the-token")];
    let reply = guarded
        .send_with_headers("GET", "/service/web", &wrong, None)
        .await;
    run.check("GET", "/service/web", &reply, 401);
    let reply = guarded.send_with_headers("GET", "/health", &[], None).await;
    run.check("GET", "/health", &reply, 200);

    assert!(run.problems.is_empty(), "{:#?}", run.problems);
    let documented_responses: usize = STATUSES.iter().map(|(_, _, s)| s.len()).sum();
    let area = match backend {
        Backend::Containers => "contract",
        Backend::Swarm => "contract-swarm",
    };
    record_figures(
        area,
        &[
            (
                "operations documented = operations served",
                documented_operations(&doc).len().to_string(),
            ),
            (
                "real answers checked against the document",
                run.answers.to_string(),
            ),
            (
                "documented (operation, status) pairs provoked",
                format!("{} of {documented_responses}", run.covered.len()),
            ),
        ],
    );
}
