//! Hostile input: every case answers a 4xx JSON error whose message starts by
//! naming the problem, changes nothing on disk, starts nothing, and leaves the
//! server serving.
//!
//! The cases go out over a plain TCP socket, byte for byte as written here: an
//! HTTP client library would turn `/service/%2e%2e` into `/` and drop `/../`
//! before the connector ever saw them, which would make the traversal cases
//! prove nothing.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use serde_json::{json, Value};

use crate::support::app::TestApp;
use crate::support::docker::TEST_IMAGE;
use crate::support::figures::record_figures;

/// `(method, path, raw body, expected status, text the error must start with)`.
type Case = (&'static str, String, Option<Vec<u8>>, u16, String);

/// The service the cases aim at. It exists and runs nothing, so a case that
/// were wrongly accepted would show up as a changed store or a container.
const EXISTING: &str = "web";

/// Enough nesting to overflow a recursive parser's stack, yet well under the
/// body limit: 10 000 `[` and 10 000 `]` are 20 KB.
const DEEP: usize = 10_000;

/// The connector's body limit (`routes::BODY_LIMIT`).
const LIMIT: usize = 64 * 1024;

fn case(
    method: &'static str,
    path: impl Into<String>,
    body: Option<Vec<u8>>,
    status: u16,
    needle: impl Into<String>,
) -> Case {
    (method, path.into(), body, status, needle.into())
}

/// A raw body, sent exactly as written.
fn text(raw: &str) -> Option<Vec<u8>> {
    Some(raw.as_bytes().to_vec())
}

/// A JSON body.
fn body(value: Value) -> Option<Vec<u8>> {
    Some(value.to_string().into_bytes())
}

/// `fields` laid over `base`, serialized.
fn merged(mut base: Value, fields: Value) -> Option<Vec<u8>> {
    let extra = fields.as_object().cloned().unwrap_or_default();
    base.as_object_mut().unwrap().extend(extra);
    body(base)
}

/// `POST /service` of a valid new definition (`fresh`, the test image) with
/// `fields` laid over it, so the only fault is the one under test. Answers
/// 400 naming `field`.
fn create(fields: Value, field: &str) -> Case {
    let body = merged(json!({"name": "fresh", "image": TEST_IMAGE}), fields);
    case("POST", "/service", body, 400, format!("{field}: "))
}

/// `POST /service` with a raw body.
fn create_raw(raw: impl AsRef<[u8]>, status: u16, needle: &str) -> Case {
    let raw = raw.as_ref().to_vec();
    case("POST", "/service", Some(raw), status, needle)
}

/// `POST /service` of a valid new definition plus `field` spelled exactly as
/// the JSON text `raw`.
fn create_field_raw(field: &str, raw: &str, needle: &str) -> Case {
    let img = TEST_IMAGE;
    let body = format!(r#"{{"name": "fresh", "image": "{img}", "{field}": {raw}}}"#);
    create_raw(body, 400, needle)
}

/// `PUT /service/web` of a valid definition with `fields` laid over it.
fn replace(fields: Value, field: &str) -> Case {
    let body = merged(json!({"image": TEST_IMAGE}), fields);
    case("PUT", "/service/web", body, 400, format!("{field}: "))
}

/// `PUT /service/web` with a raw body.
fn replace_raw(raw: impl AsRef<[u8]>, status: u16, needle: &str) -> Case {
    let raw = raw.as_ref().to_vec();
    case("PUT", "/service/web", Some(raw), status, needle)
}

/// `POST /service/web/scale` whose `number` is the JSON text `number`, spelled
/// exactly so (`1e30`, `18446744073709551616` and `-0` survive no round trip
/// through a `Value`). Answers 400 naming `number`.
fn scale(number: &str) -> Case {
    scale_raw(format!("{{\"number\": {number}}}"), 400, "number: ")
}

/// `POST /service/web/scale` with a raw body.
fn scale_raw(raw: impl AsRef<[u8]>, status: u16, needle: &str) -> Case {
    let raw = raw.as_ref().to_vec();
    case("POST", "/service/web/scale", Some(raw), status, needle)
}

/// `method path`, with a body that would be valid there (a definition, or
/// `{"number": 1}` for a scale), so only the URL or the method is wrong.
fn url(
    method: &'static str,
    path: impl Into<String>,
    status: u16,
    needle: impl Into<String>,
) -> Case {
    let path = path.into();
    let body = match method {
        "GET" | "DELETE" | "OPTIONS" | "TRACE" | "FOO" => None,
        _ if path.ends_with("/scale") => text(r#"{"number": 1}"#),
        _ => body(json!({"image": TEST_IMAGE})),
    };
    case(method, path, body, status, needle)
}

/// A URL naming a service that cannot exist: looked up as a name, never as
/// a path, and not found.
fn missing(method: &'static str, path: impl Into<String>, name: &str) -> Case {
    url(
        method,
        path,
        404,
        format!("service '{name}' does not exist"),
    )
}

/// A path no route serves.
fn no_route(method: &'static str, path: &str) -> Case {
    url(method, path, 404, "no such resource: ")
}

/// A known path asked with a method it does not serve: 405 with `Allow`.
fn not_allowed(method: &'static str, path: &str) -> Case {
    url(method, path, 405, format!("method {method} is not allowed"))
}

/// `inner` inside `depth` arrays.
fn nested(depth: usize, inner: &str) -> String {
    format!("{}{inner}{}", "[".repeat(depth), "]".repeat(depth))
}

/// `body` padded with trailing spaces to exactly `len` bytes.
fn padded(body: &str, len: usize) -> Vec<u8> {
    let mut bytes = body.as_bytes().to_vec();
    bytes.resize(len, b' ');
    bytes
}

const NOT_JSON: &str = "request body: is not valid JSON";
const NOT_OBJECT: &str = "request body: must be a JSON object";
const EMPTY: &str = "request body: is empty";
const TOO_LARGE: &str = "request body: larger than the limit";

fn malformed_and_empty_bodies() -> Vec<Case> {
    let img = TEST_IMAGE;
    let definition = format!(r#"{{"name": "fresh", "image": "{img}"}}"#);
    vec![
        // Malformed and truncated JSON.
        create_raw("{", 400, NOT_JSON),
        create_raw(&definition[..definition.len() - 1], 400, NOT_JSON),
        create_raw(r#"{"name": "fr"#, 400, NOT_JSON),
        create_raw(r#"{"name": "fresh",}"#, 400, NOT_JSON),
        create_raw(r#"{'name': 'fresh'}"#, 400, NOT_JSON),
        create_raw(r#"{"name": "fresh" "image": "a:1"}"#, 400, NOT_JSON),
        create_raw(format!("{definition} {{}}"), 400, NOT_JSON),
        create_raw(r#"{"name": "fresh" /* comment */}"#, 400, NOT_JSON),
        create_raw(r#"{"name": "a\u12"}"#, 400, NOT_JSON),
        create_raw(r#"{"name": "\ud800", "image": "a:1"}"#, 400, NOT_JSON),
        create_raw("{\"name\": \"a\tb\", \"image\": \"a:1\"}", 400, NOT_JSON),
        create_raw(b"{\"name\": \"\xff\xfe\"}", 400, NOT_JSON),
        create_raw(
            [b"\xef\xbb\xbf", definition.as_bytes()].concat(),
            400,
            NOT_JSON,
        ),
        replace_raw("nope", 400, NOT_JSON),
        replace_raw(r#"{"image": "#, 400, NOT_JSON),
        scale_raw(r#"{"number": "#, 400, NOT_JSON),
        scale_raw(r#"{"number": 1"#, 400, NOT_JSON),
        scale_raw(r#"{"number": NaN}"#, 400, NOT_JSON),
        scale_raw(r#"{"number": Infinity}"#, 400, NOT_JSON),
        scale_raw(r#"{"number": 0x10}"#, 400, NOT_JSON),
        // Valid JSON, but not the object every endpoint expects.
        create_raw("null", 400, NOT_OBJECT),
        create_raw(r#""fresh""#, 400, NOT_OBJECT),
        create_raw(format!("[{definition}]"), 400, NOT_OBJECT),
        replace_raw("[]", 400, NOT_OBJECT),
        scale_raw("3", 400, NOT_OBJECT),
        scale_raw("[3]", 400, NOT_OBJECT),
        // Empty bodies, or none at all.
        create_raw("", 400, EMPTY),
        create_raw(" \r\n\t ", 400, EMPTY),
        case("POST", "/service", None, 400, EMPTY),
        replace_raw("", 400, EMPTY),
        case("POST", "/service/web/scale", None, 400, EMPTY),
        // Oversized bodies: refused before they are parsed, even when valid.
        create_raw(
            format!(
                r#"{{"name": "a", "image": "b:1", "command": "{}"}}"#,
                "x".repeat(70_000)
            ),
            413,
            TOO_LARGE,
        ),
        create_raw(padded(&definition, LIMIT + 1), 413, TOO_LARGE),
        replace_raw(
            padded(&format!(r#"{{"image": "{img}"}}"#), 1 << 20),
            413,
            TOO_LARGE,
        ),
        scale_raw(padded(r#"{"number": 1}"#, LIMIT + 1), 413, TOO_LARGE),
        // Exactly at the limit the body is read and judged: no off-by-one.
        scale_raw(padded(r#"{"number": -1}"#, LIMIT), 400, "number: "),
        // Deep nesting: a parse error, not a stack overflow, at the top and
        // inside every field.
        create_raw(nested(DEEP, ""), 400, NOT_JSON),
        create_raw(
            format!("{}1{}", r#"{"a":"#.repeat(DEEP), "}".repeat(DEEP)),
            400,
            NOT_JSON,
        ),
        create_raw("[".repeat(DEEP), 400, NOT_JSON),
        create_raw(
            format!(
                r#"{{"name": {}, "image": "{img}"}}"#,
                nested(DEEP, "\"web\"")
            ),
            400,
            NOT_JSON,
        ),
        create_field_raw("command", &nested(DEEP, "\"sh\""), NOT_JSON),
        create_field_raw(
            "environment",
            &format!(r#"{{"A": {}}}"#, nested(DEEP, "")),
            NOT_JSON,
        ),
        create_field_raw("ports", &nested(DEEP, "80"), NOT_JSON),
        scale_raw(
            format!(r#"{{"number": {}}}"#, nested(DEEP, "1")),
            400,
            NOT_JSON,
        ),
        // Nesting the parser does accept still ends at the field's type check.
        create_field_raw("command", &nested(100, "\"sh\""), "command[0]: "),
    ]
}

fn bad_fields() -> Vec<Case> {
    let digest = "a".repeat(64);
    let put_name = |path: String| url("PUT", path, 400, "name: ");
    vec![
        // name: wrong types, missing.
        create(json!({"name": 5}), "name"),
        create(json!({"name": ["web"]}), "name"),
        create(json!({"name": {"a": 1}}), "name"),
        create(json!({"name": true}), "name"),
        create(json!({"name": null}), "name"),
        create_raw(json!({"image": TEST_IMAGE}).to_string(), 400, "name: "),
        // name: unsafe in a path, a label, a container name or an argv.
        create(json!({"name": "a/b"}), "name"),
        create(json!({"name": ".."}), "name"),
        create(json!({"name": "."}), "name"),
        create(json!({"name": "../../etc/passwd"}), "name"),
        create(json!({"name": "a\u{0}b"}), "name"),
        create(json!({"name": "a b"}), "name"),
        create(json!({"name": " web"}), "name"),
        create(json!({"name": "web\n"}), "name"),
        create(json!({"name": "é"}), "name"),
        create(json!({"name": "ＷＥＢ"}), "name"),
        create(json!({"name": "web🐳"}), "name"),
        create(json!({"name": "-web"}), "name"),
        create(json!({"name": "--privileged"}), "name"),
        create(json!({"name": ".hidden"}), "name"),
        create(json!({"name": "_x"}), "name"),
        create(json!({"name": ""}), "name"),
        create(json!({"name": "x".repeat(64)}), "name"),
        create(json!({"name": "x".repeat(10_000)}), "name"),
        create(json!({"name": "web;rm -rf /"}), "name"),
        create(json!({"name": "$(id)"}), "name"),
        // name in a PUT: from the URL, and a body name must equal it.
        put_name("/service/bad%20name".into()),
        put_name("/service/-rf".into()),
        put_name("/service/%00".into()),
        put_name(format!("/service/{}", "x".repeat(64))),
        replace(json!({"name": "other"}), "name"),
        replace(json!({"name": "WEB"}), "name"),
        replace(json!({"name": 5}), "name"),
        // image: wrong types, missing.
        create(json!({"image": 5}), "image"),
        create(json!({"image": ["a:1"]}), "image"),
        create(json!({"image": {"a": 1}}), "image"),
        create(json!({"image": true}), "image"),
        create(json!({"image": null}), "image"),
        create_raw(r#"{"name": "fresh"}"#, 400, "image: "),
        replace(json!({"image": null}), "image"),
        // image: no tag, spaces, uppercase, flags, bad digests, shell text.
        create(json!({"image": "busybox"}), "image"),
        create(json!({"image": "team/app"}), "image"),
        create(json!({"image": "busy box:1"}), "image"),
        create(json!({"image": "Busybox:1"}), "image"),
        create(json!({"image": "team/App:1"}), "image"),
        create(json!({"image": "--privileged"}), "image"),
        create(json!({"image": "-v"}), "image"),
        create(json!({"image": "-v=/:/host:1"}), "image"),
        create(json!({"image": "app@sha256:abc"}), "image"),
        create(json!({"image": format!("app@sha256:{digest}0")}), "image"),
        create(
            json!({"image": format!("app@sha256:{}", digest.to_uppercase())}),
            "image",
        ),
        create(json!({"image": format!("app@md5:{digest}")}), "image"),
        create(json!({"image": "app:"}), "image"),
        create(json!({"image": ":1"}), "image"),
        create(json!({"image": "app:1\n"}), "image"),
        create(json!({"image": "app:1 --privileged"}), "image"),
        create(json!({"image": "app:$(id)"}), "image"),
        create(json!({"image": "app:1;rm"}), "image"),
        create(json!({"image": "../../etc:1"}), "image"),
        create(json!({"image": "http://registry/app:1"}), "image"),
        create(json!({"image": format!("{}:1", "a".repeat(300))}), "image"),
        create(json!({"image": ""}), "image"),
        replace(json!({"image": "busybox"}), "image"),
        // command: wrong types, unbalanced quotes, NUL.
        create(json!({"command": 5}), "command"),
        create(json!({"command": true}), "command"),
        create(json!({"command": {"sh": "-c"}}), "command"),
        create(json!({"command": "echo 'a"}), "command"),
        create(json!({"command": "echo \"a"}), "command"),
        create(json!({"command": "a\u{0}b"}), "command"),
        create(json!({"command": ["a\u{0}"]}), "command"),
        create(json!({"command": [1]}), "command[0]"),
        create(json!({"command": ["sh", null]}), "command[1]"),
        create(json!({"command": ["sh", ["-c"]]}), "command[1]"),
        create(json!({"command": ["sh", {"-c": "id"}]}), "command[1]"),
        replace(json!({"command": 5}), "command"),
        // environment: wrong types, bad names, structured or NUL values.
        create(json!({"environment": "A=1"}), "environment"),
        create(json!({"environment": ["A=1"]}), "environment"),
        create(json!({"environment": 5}), "environment"),
        create(json!({"environment": true}), "environment"),
        create(json!({"environment": {"A=B": "1"}}), "environment"),
        create(json!({"environment": {"A\nB": "1"}}), "environment"),
        create(json!({"environment": {"": "1"}}), "environment"),
        create(json!({"environment": {"1A": "1"}}), "environment"),
        create(json!({"environment": {"A B": "1"}}), "environment"),
        create(json!({"environment": {"-e": "1"}}), "environment"),
        create(json!({"environment": {"ÄB": "1"}}), "environment"),
        create(json!({"environment": {"A": {"x": 1}}}), "environment.A"),
        create(json!({"environment": {"A": [1]}}), "environment.A"),
        create(
            json!({"environment": {"A": ["--privileged"]}}),
            "environment.A",
        ),
        create(json!({"environment": {"A": null}}), "environment.A"),
        create(json!({"environment": {"A": "x\u{0}y"}}), "environment.A"),
        replace(json!({"environment": {"A": {}}}), "environment.A"),
        // ports: wrong types, out of range, duplicates, malformed.
        create(json!({"ports": "80"}), "ports"),
        create(json!({"ports": 80}), "ports"),
        create(json!({"ports": {"80": 80}}), "ports"),
        create(json!({"ports": true}), "ports"),
        create(json!({"ports": [0]}), "ports[0]"),
        create(json!({"ports": [65536]}), "ports[0]"),
        create(json!({"ports": ["70000"]}), "ports[0]"),
        create(json!({"ports": [-1]}), "ports[0]"),
        create(json!({"ports": ["-1"]}), "ports[0]"),
        create(json!({"ports": [80, "80"]}), "ports[1]"),
        create(json!({"ports": ["80/tcp", "80"]}), "ports[1]"),
        create(json!({"ports": ["53/udp", 8080, "53/udp"]}), "ports[2]"),
        create(json!({"ports": ["80/http"]}), "ports[0]"),
        create(json!({"ports": ["80/TCP"]}), "ports[0]"),
        create(json!({"ports": ["80/"]}), "ports[0]"),
        create(json!({"ports": ["/tcp"]}), "ports[0]"),
        create(json!({"ports": ["80/udp/tcp"]}), "ports[0]"),
        create(json!({"ports": [""]}), "ports[0]"),
        create(json!({"ports": [" 80"]}), "ports[0]"),
        create(json!({"ports": ["+80"]}), "ports[0]"),
        create(json!({"ports": [8.5]}), "ports[0]"),
        create(json!({"ports": ["000080"]}), "ports[0]"),
        create(json!({"ports": ["8080:80"]}), "ports[0]"),
        create(json!({"ports": ["0.0.0.0:80:80"]}), "ports[0]"),
        create(json!({"ports": ["80-90"]}), "ports[0]"),
        create(json!({"ports": [null]}), "ports[0]"),
        create(json!({"ports": [true]}), "ports[0]"),
        create(json!({"ports": [["80"]]}), "ports[0]"),
        create(json!({"ports": [{"port": 80}]}), "ports[0]"),
        create_field_raw("ports", "[1e2]", "ports[0]: "),
        create_field_raw("ports", "[99999999999999999999]", "ports[0]: "),
        replace(json!({"ports": [8080, 8080]}), "ports[1]"),
    ]
}

fn dangerous_extra_fields() -> Vec<Case> {
    // Each docker option the connector does not offer is refused by name,
    // whatever its value (even `false` or `null`), never silently dropped.
    let mut cases: Vec<Case> = [
        ("privileged", json!(true)),
        ("privileged", json!(false)),
        ("Privileged", json!(true)),
        (
            "mounts",
            json!([{"type": "bind", "source": "/", "target": "/host"}]),
        ),
        ("network_mode", json!("host")),
        ("cap_add", json!(["ALL"])),
        ("devices", json!(["/dev/sda"])),
        ("user", json!("root")),
        ("pid", json!("host")),
        ("ipc", json!("host")),
        ("security_opt", json!(["seccomp=unconfined"])),
        ("entrypoint", json!("/bin/sh")),
        ("restart", json!("always")),
        ("enviroment", json!({})),
        ("", json!(1)),
    ]
    .into_iter()
    .map(|(field, value)| create(json!({ field: value }), field))
    .collect();
    cases.extend([
        create(
            json!({"privileged": true, "cap_add": ["ALL"]}),
            "cap_add, privileged",
        ),
        replace(json!({"privileged": true}), "privileged"),
        replace(json!({"network_mode": "host"}), "network_mode"),
        // The workload keys refuse what docker would make dangerous
        // (tests/api/workloads.rs has the rest).
        create(json!({"volumes": ["/:/host"]}), "volumes[0]"),
        replace(
            json!({"volumes": [{"source": "/", "target": "/host"}]}),
            "volumes[0].source",
        ),
        create(
            json!({"labels": {"docker-connector.instance": "other"}}),
            "labels.docker-connector.instance",
        ),
        scale_raw(r#"{"number": 1, "privileged": true}"#, 400, "privileged: "),
        scale_raw(r#"{"number": 1, "force": true}"#, 400, "force: "),
        scale_raw(r#"{"Number": 1}"#, 400, "Number: "),
    ]);
    cases
}

fn bad_numbers() -> Vec<Case> {
    let mut cases: Vec<Case> = [
        "-1",
        "-0",
        "1.5",
        "3.0",
        "1e2",
        "1e30",
        "true",
        "false",
        "null",
        "101",
        "4294967296",
        "18446744073709551615",
        "18446744073709551616",
        "99999999999999999999999",
        "[3]",
        r#"{"n": 3}"#,
        r#""101""#,
        r#""0x10""#,
        r#"" 3""#,
        r#""3 ""#,
        r#""3\n""#,
        r#""+3""#,
        r#""-1""#,
        r#""""#,
        r#""1e2""#,
        r#""3.0""#,
        r#""٣""#,
        r#""３""#,
        r#""99999999999999999999999""#,
    ]
    .into_iter()
    .map(scale)
    .collect();
    cases.push(scale_raw("{}", 400, "number: "));
    cases
}

fn hostile_urls_and_methods() -> Vec<Case> {
    let long = "x".repeat(64);
    vec![
        // Encoded traversal: decoded once, then only ever a (missing) name.
        missing("GET", "/service/%2e%2e", ".."),
        missing("GET", "/service/.%2e", ".."),
        missing("GET", "/service/%2E%2E", ".."),
        missing("GET", "/service/%2e", "."),
        missing("GET", "/service/..%2F..%2Fetc%2Fpasswd", "../../etc/passwd"),
        missing("GET", "/service/%2e%2e%2f%2e%2e%2fetc", "../../etc"),
        missing("GET", "/service/%252e%252e%252fetc", "%2e%2e%2fetc"),
        missing("GET", "/service/..%252F..%252Fetc", "..%2F..%2Fetc"),
        missing("GET", "/service/%2e%2e/status", ".."),
        missing("GET", "/service/web%2Fstatus", "web/status"),
        missing("DELETE", "/service/%2e%2e", ".."),
        missing("DELETE", "/service/..%2F..%2Fetc", "../../etc"),
        missing("POST", "/service/%2e%2e/scale", ".."),
        url("PUT", "/service/%2e%2e", 400, "name: "),
        url("PUT", "/service/..%2F..%2Fweb", 400, "name: "),
        // Raw traversal: never resolved, so it matches no route.
        no_route("GET", "/service/../service"),
        no_route("GET", "/service/web/../../etc/passwd"),
        no_route("GET", "/%2e%2e/service"),
        // Names no service can have: flags, NUL, newline, unicode, too long.
        missing("GET", "/service/-rf", "-rf"),
        missing("DELETE", "/service/--privileged", "--privileged"),
        missing("GET", "/service/--privileged/status", "--privileged"),
        missing("POST", "/service/-d/scale", "-d"),
        missing("GET", "/service/web%00", "web\u{0}"),
        missing("DELETE", "/service/web%0a", "web\n"),
        missing("GET", "/service/%C3%A9", "é"),
        missing("GET", format!("/service/{long}"), &long),
        missing("DELETE", format!("/service/{long}"), &long),
        // Paths no route serves.
        no_route("GET", "/nothing-here"),
        no_route("GET", "/service/web/logs"),
        no_route("GET", "/service/web/status/x"),
        no_route("POST", "/service/web/scale/x"),
        no_route("POST", "/containers/create"),
        no_route("POST", "/v1.41/containers/create"),
        // Known paths, wrong methods: 405 with Allow (checked in `judge`).
        not_allowed("PATCH", "/service/web"),
        not_allowed("POST", "/service/web"),
        not_allowed("DELETE", "/service"),
        not_allowed("PUT", "/service"),
        not_allowed("PATCH", "/service"),
        not_allowed("OPTIONS", "/service"),
        not_allowed("TRACE", "/service"),
        not_allowed("GET", "/service/web/scale"),
        not_allowed("PUT", "/service/web/scale"),
        not_allowed("DELETE", "/service/web/scale"),
        not_allowed("POST", "/service/web/status"),
        not_allowed("DELETE", "/service/web/status"),
        // A method Rocket does not know: it cannot tell the catcher which
        // one it was, so the message says only what went wrong.
        url("FOO", "/service", 400, "Bad Request"),
    ]
}

fn cases() -> Vec<Case> {
    let mut all = malformed_and_empty_bodies();
    all.extend(bad_fields());
    all.extend(dangerous_extra_fields());
    all.extend(bad_numbers());
    all.extend(hostile_urls_and_methods());
    all
}

/// An answer read straight off the socket.
pub(crate) struct RawReply {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
}

impl RawReply {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

/// Sends one request with exactly this method, path and body, and reads the
/// answer to the end (`Connection: close`). Blocking is fine: the server is
/// another process.
///
/// # Errors
/// A description when no HTTP answer came back.
fn send_raw(
    app: &TestApp,
    method: &str,
    path: &str,
    body: Option<&[u8]>,
) -> Result<RawReply, String> {
    let mut stream = TcpStream::connect(("127.0.0.1", app.port)).map_err(|e| e.to_string())?;
    let patience = Some(Duration::from_secs(60));
    stream.set_read_timeout(patience).unwrap();
    stream.set_write_timeout(patience).unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n",
        app.port
    );
    if let Some(token) = app.token() {
        head.push_str(&format!("Authorization: Bearer {token}\r\n"));
    }
    if let Some(body) = body {
        head.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    head.push_str("\r\n");
    let mut request = head.into_bytes();
    request.extend_from_slice(body.unwrap_or_default());
    // A server that answers 413 may close before reading an oversized body
    // to its end; the answer it sent is what counts, so a failed write is not
    // the test's verdict, and neither is a reset after the answer arrived.
    let _ = stream.write_all(&request);
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    parse_answer(&answer)
}

pub(crate) fn parse_answer(answer: &[u8]) -> Result<RawReply, String> {
    let split = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| format!("no HTTP answer: {:?}", String::from_utf8_lossy(answer)))?;
    let head = String::from_utf8_lossy(&answer[..split]);
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|line| line.split(' ').nth(1))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| format!("no status line: {head:?}"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(key, value)| (key.trim().to_owned(), value.trim().to_owned()))
        .collect();
    let mut reply = RawReply {
        status,
        headers,
        body: answer[split + 4..].to_vec(),
    };
    if reply.header("transfer-encoding") == Some("chunked") {
        reply.body = dechunk(&reply.body)?;
    }
    Ok(reply)
}

fn dechunk(mut chunked: &[u8]) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    loop {
        let end = chunked
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("chunk size line missing")?;
        let size_line = String::from_utf8_lossy(&chunked[..end]);
        let size = usize::from_str_radix(size_line.split(';').next().unwrap().trim(), 16)
            .map_err(|_| format!("bad chunk size {size_line:?}"))?;
        if size == 0 {
            return Ok(body);
        }
        let data = chunked
            .get(end + 2..end + 2 + size)
            .ok_or("chunk shorter than its size")?;
        body.extend_from_slice(data);
        chunked = chunked
            .get(end + 4 + size..)
            .ok_or("chunk not terminated")?;
    }
}

/// What is wrong with `reply` as the answer to a case, if anything.
fn judge(reply: &RawReply, method: &str, status: u16, needle: &str) -> Option<String> {
    if reply.status != status || !(400..500).contains(&reply.status) {
        return Some(format!("status {} instead of {status}", reply.status));
    }
    if reply.header("content-type") != Some("application/json") {
        return Some(format!(
            "content-type {:?} instead of application/json",
            reply.header("content-type")
        ));
    }
    let body: Value = match serde_json::from_slice(&reply.body) {
        Ok(body) => body,
        Err(_) => return Some("the answer is not JSON".into()),
    };
    let Some(message) = body["error"].as_str() else {
        return Some(format!("no error message in {body}"));
    };
    if !message.starts_with(needle) {
        return Some(format!(
            "message {message:?} does not start with {needle:?}"
        ));
    }
    if status == 405 {
        let allow = reply.header("allow").unwrap_or_default();
        if allow.is_empty() || allow.contains(method) {
            return Some(format!("Allow {allow:?} does not list other methods"));
        }
    }
    None
}

#[tokio::test]
async fn bad_requests_get_a_json_4xx_naming_the_problem_and_change_nothing() {
    let app = TestApp::spawn().await;
    let original = app
        .create_service(EXISTING, json!({"command": "sleep 100"}))
        .await;
    let stored = app.stored_state();

    let cases = cases();
    let mut failures = Vec::new();
    let mut answered_well = 0;
    let mut last_store = stored.clone();
    for (method, path, body, status, needle) in &cases {
        let shown = format!("{method} {}", shorten(path));
        match send_raw(&app, method, path, body.as_deref()) {
            Ok(reply) => match judge(&reply, method, *status, needle) {
                None => answered_well += 1,
                Some(fault) => {
                    let answer = String::from_utf8_lossy(&reply.body);
                    failures.push(format!("{shown}: {fault}; answer {}", shorten(&answer)));
                }
            },
            Err(fault) => failures.push(format!("{shown}: {fault}")),
        }
        // Compared after every case, so a failure names the case that wrote.
        let now = app.stored_state();
        if now != last_store {
            failures.push(format!("{shown}: changed the store"));
            last_store = now;
        }
    }
    let started = app.containers(None).len();
    let store_changed = last_store != stored || failures.iter().any(|f| f.ends_with("store"));

    record_figures(
        "hostile-input",
        &[
            ("requests tried", cases.len().to_string()),
            ("answered 4xx naming the problem", answered_well.to_string()),
            (
                "store changed",
                if store_changed { "yes" } else { "no" }.into(),
            ),
            ("containers started", started.to_string()),
        ],
    );
    assert!(cases.len() >= 80, "only {} hostile requests", cases.len());
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    assert_eq!(started, 0, "a rejected request started a container");
    // Still serving, with the one definition it had.
    let reply = app.show(EXISTING).await;
    assert_eq!(reply.status, 200, "the server stopped serving: {reply:?}");
    assert_eq!(reply.body, original);
    let list = app.get("/service").await;
    assert_eq!(list.body, json!({ EXISTING: original }));
    assert!(!app.log().contains("panicked"), "{}", app.log());
}

/// The start and end of a long path or answer, enough to tell cases apart.
fn shorten(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    if chars.len() <= 120 {
        return text.to_owned();
    }
    let head: String = chars[..80].iter().collect();
    let tail: String = chars[chars.len() - 30..].iter().collect();
    format!("{head}...({} chars)...{tail}", chars.len())
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

/// Duplicate keys, as in `{"name": "a", "name": "b"}`: JSON leaves their
/// meaning open, and serde_json keeps the last. A proxy, an audit log or a
/// reviewer reading the first would be told one thing while the connector
/// does another, so they are refused by name like any other ambiguity.
#[tokio::test]
async fn duplicate_keys_are_refused_rather_than_resolved_silently() {
    let app = TestApp::spawn().await;
    app.create_service(EXISTING, json!({})).await;
    let stored = app.stored_state();
    let img = TEST_IMAGE;
    let cases = [
        create_raw(
            format!(r#"{{"name": "audited", "name": "fresh", "image": "{img}"}}"#),
            400,
            "name: ",
        ),
        create_raw(
            format!(
                r#"{{"name": "second", "image": "{img}", "environment": {{"A": "1", "A": "2"}}}}"#
            ),
            400,
            "environment.A: ",
        ),
        replace_raw(
            format!(r#"{{"image": "{img}", "image": "other:1"}}"#),
            400,
            "image: ",
        ),
        // Scales to 0 if accepted, so a failure here starts nothing.
        scale_raw(r#"{"number": 1, "number": 0}"#, 400, "number: "),
    ];
    let faults: Vec<String> = cases
        .iter()
        .filter_map(|(method, path, body, status, needle)| {
            let reply = send_raw(&app, method, path, body.as_deref()).unwrap();
            judge(&reply, method, *status, needle).map(|fault| format!("{method} {path}: {fault}"))
        })
        .collect();
    assert!(faults.is_empty(), "{}", faults.join("\n"));
    assert_eq!(app.stored_state(), stored);
}

#[tokio::test]
async fn a_request_rocket_cannot_parse_is_still_logged_and_counted() {
    let app = TestApp::spawn().await;
    let reply = send_raw(&app, "FOO", "/service", None).unwrap();
    assert_eq!(reply.status, 400);
    let log = app.log_containing("unparsable request 400").await;
    assert!(log.contains("unparsable request 400"), "{log}");
    let metrics = app.get("/metrics").await;
    let text = metrics.body.as_str().unwrap();
    assert!(
        text.contains(
            r#"docker_connector_http_requests_total{method="unparsed",route="unmatched",status="400"} 1"#
        ),
        "{text}"
    );
}
