//! The browser rules as docs/operations.md ("Web pages") states them (issue
//! 19, item 8): without a token only a literal Host passes; a request with
//! no Host is a 400; HTTP/2's `:authority` is held to the same rules;
//! `Sec-Fetch-Site: none` may only read; and a body must say it is JSON.
//!
//! Requests go out over a socket of the test's own, byte for byte: reqwest
//! always sends a Host, and always one that names the host it connects to.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};

use crate::support::app::{AppOptions, TestApp};
use crate::support::docker::TEST_IMAGE;

const TOKEN: &str = "browser-token-2c8e4a6f0b1d3957";

/// A status code and the JSON error message of an answer (empty when the
/// answer has no error).
#[derive(Debug)]
struct Answer {
    status: u16,
    error: String,
}

/// Sends `head` (the request line and headers, without the blank line
/// that ends them) and `body` on a connection of its own, and reads the
/// answer up to the server's close.
fn exchange(app: &TestApp, head: &str, body: &str) -> Answer {
    let mut stream = TcpStream::connect(("127.0.0.1", app.port)).expect("the connector listens");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let length = if body.is_empty() {
        String::new()
    } else {
        format!("Content-Length: {}\r\n", body.len())
    };
    let request = format!("{head}\r\n{length}Connection: close\r\n\r\n{body}");
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = Vec::new();
    // A refusal may come before the body is read; the answer is what counts.
    let _ = stream.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP answer to {head:?}: {answer:?}"));
    let error = answer
        .split_once("\r\n\r\n")
        .and_then(|(_, body)| serde_json::from_str::<Value>(body).ok())
        .and_then(|body| body["error"].as_str().map(str::to_owned))
        .unwrap_or_default();
    Answer { status, error }
}

fn definition(name: &str) -> String {
    json!({"name": name, "image": TEST_IMAGE}).to_string()
}

#[tokio::test]
async fn without_a_token_only_an_ip_address_or_localhost_may_be_the_host() {
    let app = TestApp::spawn().await;
    let port = app.port;
    for host in [
        "evil.localhost".to_owned(),
        format!("evil.localhost:{port}"),
        "localhost.".to_owned(),
        format!("localhost.:{port}"),
        "box.internal".to_owned(),
    ] {
        let answer = exchange(&app, &format!("GET /service HTTP/1.1\r\nHost: {host}"), "");
        assert_eq!(answer.status, 403, "{host}: {answer:?}");
        assert!(
            answer
                .error
                .starts_with(&format!("forbidden: Host {host:?}")),
            "{host}: {answer:?}"
        );
    }
    for host in [
        format!("127.0.0.1:{port}"),
        "localhost".to_owned(),
        format!("LOCALHOST:{port}"),
        "[::1]".to_owned(),
    ] {
        let answer = exchange(&app, &format!("GET /service HTTP/1.1\r\nHost: {host}"), "");
        assert_eq!(answer.status, 200, "{host}: {answer:?}");
    }
}

#[tokio::test]
async fn a_request_without_a_host_is_refused_with_or_without_a_token() {
    let open = TestApp::spawn().await;
    let guarded = TestApp::spawn_with(AppOptions::new().env("ROCKET_AUTH_TOKEN", TOKEN)).await;
    let authorization = format!("Authorization: Bearer {TOKEN}");
    for (app, extra) in [(&open, ""), (&guarded, authorization.as_str())] {
        for head in [
            format!("GET /service HTTP/1.1\r\n{extra}"),
            format!("POST /service HTTP/1.1\r\nContent-Type: application/json\r\n{extra}"),
            format!("GET /health HTTP/1.1\r\n{extra}"),
        ] {
            let head = head.trim_end().to_owned();
            let body = if head.starts_with("POST") {
                definition("hostless")
            } else {
                String::new()
            };
            let answer = exchange(app, &head, &body);
            assert_eq!(answer.status, 400, "{head:?}: {answer:?}");
            assert!(answer.error.starts_with("Host: "), "{head:?}: {answer:?}");
        }
        assert_eq!(app.show("hostless").await.status, 404);
    }
}

/// `curl` over HTTP/2 without TLS (prior knowledge), which names the host
/// in `:authority` and sends no Host header; `connect_to` makes it name
/// `host` while it connects to the connector. Returns the status code.
fn http2_status(app: &TestApp, host: &str) -> String {
    let port = app.port;
    let output = Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_version} %{http_code}",
        ])
        .args(["--http2-prior-knowledge", "--max-time", "10"])
        .arg("--connect-to")
        .arg(format!("{host}:{port}:127.0.0.1:{port}"))
        .arg(format!("http://{host}:{port}/service"))
        .output()
        .expect("curl runs");
    String::from_utf8(output.stdout).unwrap()
}

#[tokio::test]
async fn http2_authority_is_held_to_the_host_rules() {
    let app = TestApp::spawn().await;
    assert_eq!(http2_status(&app, "127.0.0.1"), "2 200");
    assert_eq!(http2_status(&app, "localhost"), "2 200");
    assert_eq!(http2_status(&app, "evil.example"), "2 403");
    assert_eq!(http2_status(&app, "evil.localhost"), "2 403");
}

#[tokio::test]
async fn a_navigation_the_user_made_may_read_but_not_write() {
    let app = TestApp::spawn().await;
    let host = format!("Host: 127.0.0.1:{}", app.port);
    let answer = exchange(
        &app,
        &format!("GET /service HTTP/1.1\r\n{host}\r\nSec-Fetch-Site: none"),
        "",
    );
    assert_eq!(answer.status, 200, "{answer:?}");
    let answer = exchange(
        &app,
        &format!(
            "POST /service HTTP/1.1\r\n{host}\r\nSec-Fetch-Site: none\r\nContent-Type: application/json"
        ),
        &definition("typed"),
    );
    assert_eq!(answer.status, 403, "{answer:?}");
    assert!(answer.error.contains("Sec-Fetch-Site: none"), "{answer:?}");
    assert_eq!(app.show("typed").await.status, 404);
    // Same-origin fetches, as a page of the connector's own would make, may write.
    let answer = exchange(
        &app,
        &format!(
            "POST /service HTTP/1.1\r\n{host}\r\nSec-Fetch-Site: same-origin\r\nContent-Type: application/json"
        ),
        &definition("typed"),
    );
    assert_eq!(answer.status, 201, "{answer:?}");
}

#[tokio::test]
async fn a_body_not_labelled_json_is_refused_before_it_is_read() {
    let app = TestApp::spawn().await;
    let stored = app.create_service("web", json!({})).await;
    let host = format!("Host: 127.0.0.1:{}", app.port);
    let bodies_of_simple_requests = [
        Some("text/plain"),
        Some("text/plain;charset=UTF-8"),
        Some("application/x-www-form-urlencoded"),
        Some("multipart/form-data; boundary=x"),
        None,
    ];
    for content_type in bodies_of_simple_requests {
        let label = content_type
            .map(|t| format!("\r\nContent-Type: {t}"))
            .unwrap_or_default();
        for (request_line, body) in [
            ("POST /service HTTP/1.1", definition("simple")),
            (
                "PUT /service/web HTTP/1.1",
                json!({"image": TEST_IMAGE, "command": "sleep 5"}).to_string(),
            ),
            (
                "POST /service/web/scale HTTP/1.1",
                r#"{"number": 1}"#.to_owned(),
            ),
        ] {
            let answer = exchange(&app, &format!("{request_line}\r\n{host}{label}"), &body);
            assert_eq!(
                answer.status, 415,
                "{request_line} {content_type:?}: {answer:?}"
            );
            assert!(
                answer.error.starts_with("Content-Type: "),
                "{request_line} {content_type:?}: {answer:?}"
            );
        }
    }
    assert_eq!(app.show("simple").await.status, 404);
    assert_eq!(app.show("web").await.body, stored);
    assert_eq!(app.status("web").await.body["desired_resources"], 0);

    // JSON with a charset passes, and a request without a body needs no type.
    let answer = exchange(
        &app,
        &format!(
            "POST /service HTTP/1.1\r\n{host}\r\nContent-Type: application/json; charset=utf-8"
        ),
        &definition("labelled"),
    );
    assert_eq!(answer.status, 201, "{answer:?}");
    let answer = exchange(
        &app,
        &format!("POST /service/web/rollback HTTP/1.1\r\n{host}"),
        "",
    );
    assert_eq!(answer.status, 409, "{answer:?}");
}
