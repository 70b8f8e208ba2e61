//! Errors about the request's head are JSON too: a target over 8 KiB (414),
//! more than 64 header fields or more than 16 KiB of them (431), and a
//! target that is not percent-encoded UTF-8 (400) are answered by the
//! connector with `{"error": ...}`, where hyper answered the larger ones
//! with an empty body and Rocket served the rest as if nothing were wrong.
//!
//! Sent over a plain TCP socket, byte for byte: an HTTP client library
//! would refuse or re-encode most of these requests before sending them.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use serde_json::Value;

use crate::support::app::TestApp;
use crate::validation::{parse_answer, RawReply};

/// Sends `GET target` with a Host header, `Connection: close` and `extra`
/// header lines, and reads the answer to its end.
fn get(app: &TestApp, target: &str, extra: &[String]) -> RawReply {
    let mut stream = TcpStream::connect(("127.0.0.1", app.port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut head = format!(
        "GET {target} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n",
        app.port
    );
    for line in extra {
        head.push_str(line);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    let mut answer = Vec::new();
    // A reset after the whole answer arrived is no failure of the answer.
    let _ = stream.read_to_end(&mut answer);
    parse_answer(&answer).unwrap_or_else(|e| panic!("GET {}: {e}", shorten(target)))
}

/// The first 60 characters of a long target, for messages.
fn shorten(target: &str) -> String {
    target.chars().take(60).collect()
}

/// Asserts that `reply` is a JSON error with `status` whose message
/// contains `needle`.
fn assert_json_error(what: &str, reply: &RawReply, status: u16, needle: &str) {
    let body: String = String::from_utf8_lossy(&reply.body)
        .chars()
        .take(200)
        .collect();
    assert_eq!(reply.status, status, "{what}: {body}");
    assert_eq!(
        reply.header("content-type"),
        Some("application/json"),
        "{what}: {body}"
    );
    let parsed: Value = serde_json::from_slice(&reply.body)
        .unwrap_or_else(|_| panic!("{what}: the body is not JSON: {body:?}"));
    let message = parsed["error"].as_str().unwrap_or_default();
    assert!(
        message.contains(needle),
        "{what}: {message:?} lacks {needle:?}"
    );
}

#[tokio::test]
async fn a_target_over_8_kib_answers_414_in_json() {
    let app = TestApp::spawn().await;
    let long_name = format!("/service/{}", "x".repeat(9 * 1024));
    let long_query = format!("/service?filler={}", "x".repeat(9 * 1024));
    for target in [long_name, long_query] {
        let reply = get(&app, &target, &[]);
        assert_json_error(&shorten(&target), &reply, 414, "more than the 8192");
    }
    // Just under the limit is served as usual (a name that does not exist).
    let fits = format!("/service/{}", "x".repeat(8 * 1024 - "/service/".len()));
    assert_eq!(get(&app, &fits, &[]).status, 404);
}

#[tokio::test]
async fn more_than_64_header_fields_or_16_kib_of_them_answer_431_in_json() {
    let app = TestApp::spawn().await;
    // 70 fields with the Host and Connection lines: below hyper's 100.
    let many: Vec<String> = (0..68).map(|i| format!("X-Filler-{i}: x")).collect();
    let reply = get(&app, "/service", &many);
    assert_json_error("70 header fields", &reply, 431, "70 header fields");

    // Three fields of 6 KiB: few, but 18 KiB together.
    let large: Vec<String> = (0..3)
        .map(|i| format!("X-Filler-{i}: {}", "x".repeat(6 * 1024)))
        .collect();
    let reply = get(&app, "/service", &large);
    assert_json_error(
        "18 KiB of header fields",
        &reply,
        431,
        "more than the 16384",
    );

    // 64 fields of modest size are served.
    let fits: Vec<String> = (0..62).map(|i| format!("X-Filler-{i}: x")).collect();
    assert_eq!(get(&app, "/service", &fits).status, 200);
}

#[tokio::test]
async fn a_target_that_is_not_percent_encoded_utf_8_answers_400_in_json() {
    let app = TestApp::spawn().await;
    for (target, needle) in [
        (
            "/service/%zz",
            "path has '%' not followed by two hex digits",
        ),
        (
            "/service/web%",
            "path has '%' not followed by two hex digits",
        ),
        ("/service/%4", "path has '%' not followed by two hex digits"),
        ("/service/%FF", "path does not decode to UTF-8"),
        ("/service/%C3/status", "path does not decode to UTF-8"),
        (
            "/service?x=%zz",
            "query has '%' not followed by two hex digits",
        ),
        ("/service?x=%FE", "query does not decode to UTF-8"),
    ] {
        let reply = get(&app, target, &[]);
        assert_json_error(target, &reply, 400, needle);
    }
    // Valid escapes still decode as before: é is a name no service has.
    assert_eq!(get(&app, "/service/%C3%A9", &[]).status, 404);
}
