//! The OpenAPI document (`src/openapi.json`, served at `/openapi.json`)
//! against the connector itself: it is served verbatim, it lists exactly the
//! operations the server routes, every operation documents its errors with the
//! shared `Error` schema, its examples fit its schemas, and real answers (each
//! documented status the tests can provoke, docker faults included) fit the
//! documented status, headers, content type and schema.
//!
//! The schemas are checked by a small validator of the OpenAPI 3.0 schema
//! keywords the document uses; a keyword it does not know fails the test, so
//! a constraint added to the document is never silently skipped.

use std::collections::{BTreeMap, BTreeSet};

use regex::Regex;
use serde_json::{json, Value};

use docker_connector::docker::swarm_service_name;
use docker_connector::domain::ServiceName;
use docker_connector::routes::GATE_ROUTE_NAME;

use crate::helpers::{
    documented_operations, record_figures, AppOptions, Backend, ForeignSwarmService, Reply,
    TestApp, TEST_IMAGE,
};

/// The document as the connector embeds it.
const DOCUMENT: &str = include_str!("../../src/openapi.json");

/// Methods tried on every documented path: an undocumented one must answer 405.
const PROBED_METHODS: [&str; 6] = ["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"];

/// The statuses each operation can answer, from its handler and the error
/// mapping in src/error.rs: 401 and 403 on everything but /health (the
/// access gate: auth_token, and requests from web pages), 400
/// and 413 where a body is read, 404 where a service is looked up, 409 where
/// a name is taken (by a service, or on the swarm backend by a Swarm service
/// that is not the connector's), 500 where the definitions file is written,
/// 502/503/504 where docker runs.
const STATUSES: [(&str, &str, &[u16]); 10] = [
    ("GET", "/service", &[200, 401, 403]),
    ("POST", "/service", &[201, 400, 401, 403, 409, 413, 500]),
    ("GET", "/service/{name}", &[200, 401, 403, 404]),
    (
        "PUT",
        "/service/{name}",
        &[200, 201, 400, 401, 403, 409, 413, 500, 502, 503, 504],
    ),
    (
        "DELETE",
        "/service/{name}",
        &[204, 401, 403, 404, 500, 502, 503, 504],
    ),
    (
        "POST",
        "/service/{name}/scale",
        &[200, 400, 401, 403, 404, 409, 413, 502, 503, 504],
    ),
    (
        "GET",
        "/service/{name}/status",
        &[200, 401, 403, 404, 409, 502, 503, 504],
    ),
    ("GET", "/health", &[200, 503]),
    ("GET", "/metrics", &[200, 401, 403]),
    ("GET", "/openapi.json", &[200, 401, 403]),
];

fn document() -> Value {
    serde_json::from_str(DOCUMENT).expect("src/openapi.json is JSON")
}

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

/// The operation object of `method path`.
fn operation<'a>(doc: &'a Value, method: &str, path: &str) -> &'a Value {
    let found = &doc["paths"][path][method.to_lowercase()];
    assert!(found.is_object(), "{method} {path} is not documented");
    found
}

/// The documented path template `path` falls under, if any.
fn template_of(doc: &Value, path: &str) -> Option<String> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    doc["paths"]
        .as_object()
        .unwrap()
        .keys()
        .find_map(|template| {
            let pattern: Vec<&str> = template.trim_matches('/').split('/').collect();
            let fits = pattern.len() == segments.len()
                && pattern
                    .iter()
                    .zip(&segments)
                    .all(|(want, got)| (want.starts_with('{') && !got.is_empty()) || want == got);
            fits.then(|| template.clone())
        })
}

/// Follows a local `$ref` ("#/components/...") to what it names.
fn resolve<'a>(doc: &'a Value, node: &'a Value) -> &'a Value {
    let Some(reference) = node.get("$ref").and_then(Value::as_str) else {
        return node;
    };
    let pointer = reference
        .strip_prefix('#')
        .unwrap_or_else(|| panic!("{reference} is not a local reference"));
    let target = doc
        .pointer(pointer)
        .unwrap_or_else(|| panic!("{reference} points at nothing"));
    resolve(doc, target)
}

/// Schema keywords that only describe.
const ANNOTATIONS: [&str; 3] = ["description", "example", "title"];

/// Adds to `problems` every way `value` breaks the OpenAPI 3.0 `schema`, each
/// as "`at`: reason".
fn check_schema(doc: &Value, schema: &Value, value: &Value, at: &str, problems: &mut Vec<String>) {
    if schema.get("$ref").is_some() {
        // OpenAPI 3.0: a reference's siblings are ignored.
        return check_schema(doc, resolve(doc, schema), value, at, problems);
    }
    let keywords = schema.as_object().expect("a schema is an object");
    if value.is_null() && schema["nullable"] == json!(true) {
        return;
    }
    let mut own = Vec::new();
    let mut fail = |reason: String| own.push(format!("{at}: {reason}"));
    for (keyword, rule) in keywords {
        match keyword.as_str() {
            "nullable" | "properties" => {}
            "type" => {
                let fits = match rule.as_str().expect("type is a string") {
                    "object" => value.is_object(),
                    "array" => value.is_array(),
                    "string" => value.is_string(),
                    "boolean" => value.is_boolean(),
                    "number" => value.is_number(),
                    "integer" => value.is_i64() || value.is_u64(),
                    other => panic!("unknown type {other}"),
                };
                if !fits {
                    fail(format!("{value} is not of type {rule}"));
                }
            }
            "enum" => {
                if !rule.as_array().unwrap().contains(value) {
                    fail(format!("{value} is not one of {rule}"));
                }
            }
            "pattern" => {
                if let Some(text) = value.as_str() {
                    let pattern = Regex::new(rule.as_str().unwrap()).expect("a valid pattern");
                    if !pattern.is_match(text) {
                        fail(format!("{value} does not match {rule}"));
                    }
                }
            }
            "minLength" | "maxLength" => {
                if let Some(text) = value.as_str() {
                    let length = text.chars().count() as u64;
                    let bound = rule.as_u64().unwrap();
                    if (keyword == "minLength" && length < bound)
                        || (keyword == "maxLength" && length > bound)
                    {
                        fail(format!("{value} breaks {keyword} {bound}"));
                    }
                }
            }
            "minimum" | "maximum" => {
                if let Some(number) = value.as_f64() {
                    let bound = rule.as_f64().unwrap();
                    if (keyword == "minimum" && number < bound)
                        || (keyword == "maximum" && number > bound)
                    {
                        fail(format!("{value} breaks {keyword} {bound}"));
                    }
                }
            }
            "required" => {
                if let Some(object) = value.as_object() {
                    for name in rule.as_array().unwrap() {
                        if !object.contains_key(name.as_str().unwrap()) {
                            fail(format!("required {name} is missing"));
                        }
                    }
                }
            }
            "additionalProperties" => {
                if let Some(object) = value.as_object() {
                    let declared = schema.get("properties").and_then(Value::as_object);
                    for (name, item) in object {
                        if declared.is_some_and(|d| d.contains_key(name)) {
                            continue;
                        }
                        match rule {
                            Value::Bool(false) => fail(format!("{name:?} is not allowed")),
                            Value::Bool(true) => {}
                            sub => check_schema(doc, sub, item, &format!("{at}.{name}"), problems),
                        }
                    }
                }
            }
            "items" => {
                if let Some(items) = value.as_array() {
                    for (i, item) in items.iter().enumerate() {
                        check_schema(doc, rule, item, &format!("{at}[{i}]"), problems);
                    }
                }
            }
            "uniqueItems" => {
                if let Some(items) = value.as_array() {
                    let unique: BTreeSet<String> = items.iter().map(Value::to_string).collect();
                    if rule == &json!(true) && unique.len() != items.len() {
                        fail(format!("{value} repeats an item"));
                    }
                }
            }
            "oneOf" | "anyOf" => {
                let fitting = rule
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|sub| {
                        let mut scratch = Vec::new();
                        check_schema(doc, sub, value, at, &mut scratch);
                        scratch.is_empty()
                    })
                    .count();
                if (keyword == "oneOf" && fitting != 1) || (keyword == "anyOf" && fitting == 0) {
                    fail(format!("{value} fits {fitting} of the {keyword} schemas"));
                }
            }
            annotation if ANNOTATIONS.contains(&annotation) => {}
            unknown => panic!("the contract validator does not know the keyword {unknown:?}"),
        }
    }
    problems.extend(own);
    if let (Some(properties), Some(object)) = (
        schema.get("properties").and_then(Value::as_object),
        value.as_object(),
    ) {
        for (name, sub) in properties {
            if let Some(item) = object.get(name) {
                check_schema(doc, sub, item, &format!("{at}.{name}"), problems);
            }
        }
    }
}

fn schema_problems(doc: &Value, schema: &Value, value: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    check_schema(doc, schema, value, "body", &mut problems);
    problems
}

/// The one media type a response documents, and its schema.
fn documented_media(response: &Value) -> Option<(&str, &Value)> {
    let content = response["content"].as_object()?;
    assert_eq!(content.len(), 1, "one media type per response: {response}");
    let (media_type, media) = content.iter().next()?;
    Some((media_type.as_str(), &media["schema"]))
}

/// Every way `reply`, the answer to `method path`, departs from the document:
/// an undocumented status, a missing or invalid documented header, a body
/// of another media type than documented (or present where none is), or a
/// body outside the schema. An answer outside every operation (a 405, a 404
/// for an unknown path) must still be the documented error body.
fn answer_problems(doc: &Value, method: &str, path: &str, reply: &Reply) -> Vec<String> {
    let label = format!("{method} {path} -> {}", reply.status);
    let error_schema = json!({"$ref": "#/components/schemas/Error"});
    let documented = template_of(doc, path).and_then(|template| {
        doc["paths"][&template]
            .get(method.to_lowercase())
            .map(|op| (template, op))
    });
    let Some((template, op)) = documented else {
        let mut problems = schema_problems(doc, &error_schema, &reply.body);
        if !reply
            .header("content-type")
            .is_some_and(|t| t.starts_with("application/json"))
        {
            problems.push("not JSON".into());
        }
        return problems
            .into_iter()
            .map(|p| format!("{label} (no operation): {p}"))
            .collect();
    };
    let label = format!("{method} {template} -> {}", reply.status);
    let Some(response) = op["responses"].get(reply.status.to_string()) else {
        return vec![format!("{label}: status not documented ({:?})", reply.body)];
    };
    let response = resolve(doc, response);
    let mut problems = Vec::new();
    for (name, header) in response["headers"].as_object().into_iter().flatten() {
        let header = resolve(doc, header);
        match reply.header(name) {
            None if header["required"] == json!(true) => {
                problems.push(format!("header {name} is missing"));
            }
            None => {}
            Some(value) => problems.extend(schema_problems(doc, &header["schema"], &json!(value))),
        }
    }
    match documented_media(response) {
        Some((media_type, schema)) => {
            if !reply
                .header("content-type")
                .is_some_and(|t| t.starts_with(media_type))
            {
                problems.push(format!(
                    "content type {:?}, documented {media_type}",
                    reply.header("content-type")
                ));
            }
            problems.extend(schema_problems(doc, schema, &reply.body));
        }
        None if !reply.body.is_null() => problems.push("a body where none is documented".into()),
        None => {}
    }
    problems
        .into_iter()
        .map(|p| format!("{label}: {p}"))
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
    assert_eq!(doc["security"], json!([{"bearerAuth": []}]));
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
            assert_eq!(security, &json!([{"bearerAuth": []}]), "{label}: security");
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
            matches!(method, "POST" | "PUT"),
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

/// A JSON value read only to find an object that repeats a key: the
/// document is hand-written, and a JSON parser silently keeps the last of
/// two `"409"` responses.
struct NoRepeatedKeys;

impl<'de> serde::Deserialize<'de> for NoRepeatedKeys {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(NoRepeatedKeys)
    }
}

impl<'de> serde::de::Visitor<'de> for NoRepeatedKeys {
    type Value = NoRepeatedKeys;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self, A::Error> {
        let mut seen = BTreeSet::new();
        while let Some(key) = map.next_key::<String>()? {
            if !seen.insert(key.clone()) {
                return Err(serde::de::Error::custom(format!("key {key:?} repeated")));
            }
            map.next_value::<NoRepeatedKeys>()?;
        }
        Ok(self)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self, A::Error> {
        while seq.next_element::<NoRepeatedKeys>()?.is_some() {}
        Ok(self)
    }

    fn visit_str<E>(self, _: &str) -> Result<Self, E> {
        Ok(self)
    }

    fn visit_bool<E>(self, _: bool) -> Result<Self, E> {
        Ok(self)
    }

    fn visit_u64<E>(self, _: u64) -> Result<Self, E> {
        Ok(self)
    }

    fn visit_i64<E>(self, _: i64) -> Result<Self, E> {
        Ok(self)
    }

    fn visit_f64<E>(self, _: f64) -> Result<Self, E> {
        Ok(self)
    }

    fn visit_unit<E>(self) -> Result<Self, E> {
        Ok(self)
    }
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

crate::backend_suite!(real_answers_fit_the_documented_statuses_headers_and_schemas);

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
