//! Scoped tokens (issue 18): every route against every scope, services
//! limited by name, HTTP Basic (curl, Python `requests` as Genisys uses
//! it), tokens by digest and from a file, the audit log, and guessing
//! slowed down without starving other clients.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::support::app::{launch_expecting_failure, AppOptions, Reply, TestApp};
use crate::support::docker::TEST_IMAGE;
use crate::support::openapi::{document, documented_operations};
use crate::support::sse::EventStream;

const ADMIN: &str = "admin-token-5d1c7a9e3f2b4860";
const READER: &str = "reader-token-8b2e6f0a4c1d3957";
const SCALER: &str = "scaler-token-3a9f1e7c5b0d2648";
const WRITER: &str = "writer-token-6c4a2e8f0b1d3579";
const SKYNET: &str = "skynet-token-1f3b5d7a9c0e2468";

/// The table every test here starts with: an admin with every scope, one
/// token per scope, and one limited to `skynet_*`.
fn tokens_table() -> String {
    format!(
        "{{admin={{token=\"{ADMIN}\",scopes=[\"read\",\"scale\",\"write\"]}},\
          reader={{token=\"{READER}\",scopes=[\"read\"]}},\
          scaler={{token=\"{SCALER}\",scopes=[\"scale\"]}},\
          writer={{token=\"{WRITER}\",scopes=[\"write\"]}},\
          skynet={{token=\"{SKYNET}\",scopes=[\"read\",\"scale\",\"write\"],services=[\"skynet_*\"]}}}}"
    )
}

async fn spawn_with_tokens(options: AppOptions) -> TestApp {
    TestApp::spawn_with(options.env("ROCKET_TOKENS", &tokens_table())).await
}

/// `method path` with `token` as a bearer token and a JSON body.
async fn call(app: &TestApp, token: &str, method: &str, path: &str, body: Option<&Value>) -> Reply {
    let authorization = format!("Bearer {token}");
    app.send_with_headers(
        method,
        path,
        &[("authorization", &authorization)],
        body.map(|b| b.to_string().into_bytes()),
    )
    .await
}

/// The status of `GET path` as `token`, without reading a body that may
/// never end (the event stream).
async fn status_of_stream(app: &TestApp, token: &str, path: &str) -> u16 {
    reqwest::Client::new()
        .get(app.url(path))
        .bearer_auth(token)
        .send()
        .await
        .expect("the connector answers")
        .status()
        .as_u16()
}

fn scope_of(method: &str, path: &str) -> &'static str {
    match method {
        "GET" => "read",
        "POST" if path.ends_with("/scale") || path.ends_with("/rollback") => "scale",
        _ => "write",
    }
}

#[tokio::test]
async fn every_route_against_every_scope() {
    let app = spawn_with_tokens(AppOptions::new()).await;
    let ensure_web = || async {
        if call(&app, ADMIN, "GET", "/service/web", None).await.status == 404 {
            let body = json!({"name": "web", "image": TEST_IMAGE});
            let created = call(&app, ADMIN, "POST", "/service", Some(&body)).await;
            assert_eq!(created.status, 201, "{created:?}");
        }
    };
    let operations: Vec<(String, String)> = documented_operations(&document())
        .into_iter()
        .map(|(method, path)| (method, path.replace("{name}", "web")))
        .collect();
    assert!(operations.len() >= 10, "{operations:?}");
    let bodies = |method: &str, path: &str| -> Option<Value> {
        match (method, path) {
            ("POST", "/service") => Some(json!({"name": "web2", "image": TEST_IMAGE})),
            ("PUT", _) => Some(json!({"image": TEST_IMAGE, "command": "sleep 1000"})),
            ("POST", p) if p.ends_with("/scale") => Some(json!({"number": 0})),
            _ => None,
        }
    };
    // Each token has exactly the scope it is named after here.
    let tokens = [("read", READER), ("scale", SCALER), ("write", WRITER)];
    let mut checked = 0;
    for (method, path) in &operations {
        let needed = scope_of(method, path);
        for (name, token) in tokens {
            ensure_web().await;
            let before = app.stored_state();
            let status = if path.starts_with("/events") {
                status_of_stream(&app, token, path).await
            } else {
                let body = bodies(method, path);
                let reply = call(&app, token, method, path, body.as_ref()).await;
                if path == "/health" {
                    assert_eq!(reply.status, 200, "{name} {method} {path}: {reply:?}");
                    continue;
                }
                if name != needed && reply.status == 403 {
                    assert!(
                        reply.error().contains(&format!("'{needed}'")),
                        "{name} {method} {path}: the refusal names the scope: {reply:?}"
                    );
                    assert!(
                        !reply.error().contains("admin") && !reply.error().contains("skynet"),
                        "a refusal hints at other tokens: {reply:?}"
                    );
                }
                reply.status
            };
            if name == needed {
                assert!(
                    ![401, 403].contains(&status),
                    "{name} may {method} {path}, got {status}"
                );
            } else {
                assert_eq!(status, 403, "{name} may not {method} {path}");
                assert_eq!(
                    app.stored_state(),
                    before,
                    "a refused {method} {path} by {name} changed the store"
                );
            }
            checked += 1;
        }
    }
    assert!(checked >= 30, "{checked}");
}

#[tokio::test]
async fn a_token_limited_by_name_prefix_touches_only_those_services() {
    let app = spawn_with_tokens(AppOptions::new()).await;
    for name in ["skynet_a", "other"] {
        let body = json!({"name": name, "image": TEST_IMAGE});
        assert_eq!(
            call(&app, ADMIN, "POST", "/service", Some(&body))
                .await
                .status,
            201
        );
    }
    let listed = call(&app, SKYNET, "GET", "/service", None).await;
    assert_eq!(listed.status, 200);
    let names: Vec<&String> = listed.body.as_object().unwrap().keys().collect();
    assert_eq!(names, ["skynet_a"], "{listed:?}");

    for (method, path) in [
        ("GET", "/service/other"),
        ("GET", "/service/other/status"),
        ("GET", "/service/other/history"),
        ("DELETE", "/service/other"),
        ("GET", "/metrics"),
    ] {
        let reply = call(&app, SKYNET, method, path, None).await;
        assert_eq!(reply.status, 403, "{method} {path}: {reply:?}");
    }
    let scale = call(
        &app,
        SKYNET,
        "POST",
        "/service/other/scale",
        Some(&json!({"number": 1})),
    )
    .await;
    assert_eq!(scale.status, 403, "{scale:?}");
    assert!(scale.error().contains("'other'"), "{scale:?}");
    let before = app.stored_state();
    let foreign = json!({"name": "other2", "image": TEST_IMAGE});
    let refused = call(&app, SKYNET, "POST", "/service", Some(&foreign)).await;
    assert_eq!(refused.status, 403, "{refused:?}");
    assert_eq!(app.stored_state(), before);
    let own = json!({"name": "skynet_b", "image": TEST_IMAGE});
    assert_eq!(
        call(&app, SKYNET, "POST", "/service", Some(&own))
            .await
            .status,
        201
    );
    assert_eq!(
        status_of_stream(&app, SKYNET, "/events?service=other").await,
        403
    );
    // The history says which token made a change.
    let history = call(&app, SKYNET, "GET", "/service/skynet_b/history", None).await;
    let caller = history.body["changes"][0]["caller"]
        .as_str()
        .unwrap_or_default();
    assert!(caller.ends_with("(token skynet)"), "{history:?}");

    // The unfiltered stream leaves the other services' events out.
    let auth = format!("Bearer {SKYNET}");
    let mut stream = EventStream::open(&app, "/events", &[("authorization", &auth)]).await;
    for name in ["other", "skynet_b"] {
        let reply = call(&app, ADMIN, "DELETE", &format!("/service/{name}"), None).await;
        assert_eq!(reply.status, 204, "{reply:?}");
    }
    let event = stream
        .expect_event(Duration::from_secs(10), "skynet_b's delete")
        .await;
    assert_eq!(event.service(), Some("skynet_b"), "{event:?}");
}

/// `user:password` as an `Authorization: Basic` value.
fn basic(user_password: &str) -> String {
    use base64::Engine as _;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(user_password)
    )
}

#[tokio::test]
async fn http_basic_carries_the_token_for_curl_and_genisys() {
    let app = spawn_with_tokens(AppOptions::new()).await;
    let body = json!({"name": "web", "image": TEST_IMAGE});
    assert_eq!(
        call(&app, ADMIN, "POST", "/service", Some(&body))
            .await
            .status,
        201
    );

    let right = basic(&format!("anyone:{READER}"));
    let wrong = basic(&format!("anyone:{READER}x"));
    let reply = app
        .send_with_headers("GET", "/service", &[("authorization", &right)], None)
        .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let reply = app
        .send_with_headers("GET", "/service", &[("authorization", &wrong)], None)
        .await;
    assert_eq!(reply.status, 401, "{reply:?}");
    assert!(reply.header("www-authenticate").unwrap().contains("Basic"));

    let curl = |credentials: String| {
        let output = std::process::Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-u"])
            .arg(credentials)
            .arg(app.url("/service/web"))
            .output()
            .expect("curl runs");
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    assert_eq!(curl(format!("x:{READER}")), "200");
    assert_eq!(curl(format!("x:{SCALER}")), "403");
    assert_eq!(curl("x:not-a-token-at-all".into()), "401");

    // What Genisys does: credentials in the connector URL, which requests
    // turns into Basic auth; it checks for exactly 200.
    let script = r#"
import json, sys, requests
base = sys.argv[1]
status = requests.get(base + "/service/web/status")
scale = requests.post(base + "/service/web/scale", json={"number": 1})
again = requests.get(base + "/service/web/status")
print(json.dumps([status.status_code, scale.status_code, again.status_code, again.json()]))
"#;
    let autoscaler = format!("http://genisys:{SKYNET}@127.0.0.1:{}", app.port);
    let full = format!("http://genisys:{ADMIN}@127.0.0.1:{}", app.port);
    let genisys = |base: &str| {
        let output = std::process::Command::new("python3")
            .args(["-c", script, base])
            .output()
            .expect("python3 runs");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice::<Value>(&output.stdout).unwrap()
    };
    let seen = genisys(&full);
    assert_eq!(seen[0], 200, "{seen}");
    assert_eq!(seen[1], 200, "{seen}");
    assert_eq!(seen[2], 200, "{seen}");
    assert_eq!(seen[3]["desired_resources"], 1, "{seen}");
    // A token limited to skynet_* gets 403 on web, as it should.
    let limited = genisys(&autoscaler);
    assert_eq!(limited[0], 403, "{limited}");
}

#[tokio::test]
async fn tokens_by_digest_and_from_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let file_token = "file-token-0e2c4a6b8d1f3579";
    let digest_token = "digest-token-7b9d1f3a5c0e2468";
    let hex: String = Sha256::digest(digest_token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let file = dir.path().join("tokens.toml");
    std::fs::write(
        &file,
        format!("[dashboard]\ntoken = \"{file_token}\"\nscopes = [\"read\"]\n"),
    )
    .unwrap();
    let app = TestApp::spawn_with(
        AppOptions::new()
            .env(
                "ROCKET_TOKENS",
                &format!("{{ops={{sha256=\"{hex}\",scopes=[\"read\",\"write\"]}}}}"),
            )
            .env("ROCKET_TOKENS_FILE", file.to_str().unwrap()),
    )
    .await;
    assert_eq!(
        call(&app, digest_token, "GET", "/service", None)
            .await
            .status,
        200
    );
    assert_eq!(call(&app, &hex, "GET", "/service", None).await.status, 401);
    assert_eq!(
        call(&app, file_token, "GET", "/service", None).await.status,
        200
    );
    let body = json!({"name": "web", "image": TEST_IMAGE});
    assert_eq!(
        call(&app, file_token, "POST", "/service", Some(&body))
            .await
            .status,
        403
    );

    // Mistakes stop the start, naming the key, never showing a token.
    for (key, value, named) in [
        (
            "ROCKET_TOKENS_FILE",
            "/nonexistent/tokens.toml".to_owned(),
            "tokens_file",
        ),
        (
            "ROCKET_TOKENS",
            format!("{{a={{token=\"{file_token}\",scopes=[\"admin\"]}}}}"),
            "tokens.a.scopes",
        ),
        (
            "ROCKET_TOKENS",
            "{a={sha256=\"00\",scopes=[\"read\"]}}".to_owned(),
            "tokens.a.sha256",
        ),
    ] {
        let (code, log) = launch_expecting_failure(dir.path(), &[(key, &value)]);
        assert_eq!(code, Some(1), "{log}");
        assert!(log.contains(named), "{log}");
        assert!(!log.contains(file_token), "{log}");
    }
}

#[tokio::test]
async fn every_write_and_every_refusal_leaves_one_audit_line_without_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.log");
    let app = spawn_with_tokens(
        AppOptions::new()
            .env("ROCKET_AUTH_TOKEN", "legacy-token-2d4f6a8c0e1b3579")
            .env("ROCKET_AUDIT_LOG", audit.to_str().unwrap()),
    )
    .await;
    let body = json!({"name": "web", "image": TEST_IMAGE});
    // (token, method, path, body, the status expected)
    type Step<'a> = (Option<&'a str>, &'a str, String, Option<Value>, u16);
    let steps: Vec<Step<'_>> = vec![
        (
            Some(WRITER),
            "POST",
            "/service".into(),
            Some(body.clone()),
            201,
        ),
        (
            Some(SCALER),
            "POST",
            "/service/web/scale".into(),
            Some(json!({"number": 0})),
            200,
        ),
        (Some(READER), "GET", "/service/web".into(), None, 200),
        (Some(READER), "DELETE", "/service/web".into(), None, 403),
        (
            Some("wrong-token-9a8b7c6d5e4f3210"),
            "GET",
            "/service".into(),
            None,
            401,
        ),
        (None, "GET", "/service".into(), None, 401),
        (
            Some(SKYNET),
            "POST",
            "/service".into(),
            Some(body.clone()),
            403,
        ),
        (
            Some(WRITER),
            "PUT",
            "/service/web".into(),
            Some(json!({"image": ""})),
            400,
        ),
        (
            Some("legacy-token-2d4f6a8c0e1b3579"),
            "DELETE",
            "/service/web".into(),
            None,
            204,
        ),
    ];
    for (token, method, path, body, expected) in &steps {
        let reply = match token {
            Some(token) => call(&app, token, method, path, body.as_ref()).await,
            None => app.send_with_headers(method, path, &[], None).await,
        };
        assert_eq!(reply.status, *expected, "{method} {path}: {reply:?}");
    }
    // Audit lines are written as the answer leaves; give the last one a moment.
    let text = crate::support::app::poll_until(Duration::from_secs(5), || async {
        let text = std::fs::read_to_string(&audit).unwrap_or_default();
        (text.lines().count() >= 8, text)
    })
    .await;
    let lines: Vec<Value> = text
        .lines()
        .map(|line| serde_json::from_str(line).expect("each audit line is JSON"))
        .collect();
    let summary: Vec<(Value, Value, Value, Value, Value)> = lines
        .iter()
        .map(|l| {
            (
                l["token"].clone(),
                l["method"].clone(),
                l["service"].clone(),
                l["outcome"].clone(),
                l["status"].clone(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (
                json!("writer"),
                json!("POST"),
                json!("web"),
                json!("done"),
                json!(201)
            ),
            (
                json!("scaler"),
                json!("POST"),
                json!("web"),
                json!("done"),
                json!(200)
            ),
            (
                json!("reader"),
                json!("DELETE"),
                json!("web"),
                json!("refused"),
                json!(403)
            ),
            (
                json!(null),
                json!("GET"),
                json!(null),
                json!("refused"),
                json!(401)
            ),
            (
                json!(null),
                json!("GET"),
                json!(null),
                json!("refused"),
                json!(401)
            ),
            (
                json!("skynet"),
                json!("POST"),
                json!("web"),
                json!("refused"),
                json!(403)
            ),
            (
                json!("writer"),
                json!("PUT"),
                json!("web"),
                json!("failed"),
                json!(400)
            ),
            (
                json!("auth_token"),
                json!("DELETE"),
                json!("web"),
                json!("done"),
                json!(204)
            ),
        ],
        "{text}"
    );
    for line in &lines {
        assert!(
            line["time"].as_str().is_some_and(|t| t.ends_with('Z')),
            "{line}"
        );
        assert_eq!(line["remote"], "127.0.0.1", "{line}");
    }
    assert!(
        lines[2]["reason"].as_str().unwrap().contains("'write'"),
        "{}",
        lines[2]
    );
    for secret in [
        ADMIN,
        READER,
        SCALER,
        WRITER,
        SKYNET,
        "legacy-token",
        "wrong-token",
    ] {
        assert!(
            !text.contains(secret),
            "the audit log holds a token:\n{text}"
        );
        assert!(!app.log().contains(secret), "the log holds a token");
    }
}

#[tokio::test]
async fn guessing_is_slowed_without_starving_other_clients() {
    let app = spawn_with_tokens(AppOptions::new()).await;
    let mut refused_unread = 0;
    let mut retry_after = None;
    for attempt in 0..30 {
        let guess = format!("guess-{attempt:04}-0123456789abcdef");
        let reply = call(&app, &guess, "GET", "/service", None).await;
        match reply.status {
            401 => assert!(attempt < 10, "attempt {attempt} was still looked at"),
            429 => {
                refused_unread += 1;
                retry_after = reply.header("retry-after").map(str::to_owned);
            }
            other => panic!("{other}: {reply:?}"),
        }
    }
    assert_eq!(refused_unread, 20);
    let wait: u64 = retry_after.unwrap().parse().unwrap();
    assert!((1..=6).contains(&wait), "{wait}");
    // The right token from the guessing address waits too: otherwise the
    // guesser could still tell right from wrong at full speed.
    assert_eq!(
        call(&app, READER, "GET", "/service", None).await.status,
        429
    );

    // Another address is served at once.
    let client = reqwest::Client::builder()
        .local_address(std::net::IpAddr::from([127, 0, 0, 2]))
        .build()
        .unwrap();
    let started = Instant::now();
    let reply = client
        .get(app.url("/service"))
        .bearer_auth(READER)
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 200);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn plain_http_off_loopback_needs_allow_plain_http() {
    let dir = tempfile::tempdir().unwrap();
    let (code, log) = launch_expecting_failure(
        dir.path(),
        &[
            ("ROCKET_ADDRESS", "0.0.0.0"),
            ("ROCKET_AUTH_TOKEN", "some-token-0123456789abcdef"),
        ],
    );
    assert_eq!(code, Some(1), "{log}");
    assert!(
        log.contains("allow_plain_http") && log.contains("tls.certs"),
        "{log}"
    );
}
