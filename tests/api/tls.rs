//! TLS through Rocket's own listener (`tls.certs`, `tls.key`,
//! `tls.mutual`): httpie and curl reach the connector over https when they
//! trust the test CA made at test time, plain HTTP and an untrusted CA get
//! nothing, and client certificates are required or merely accepted as
//! `tls.mutual.mandatory` says.

use std::path::PathBuf;
use std::process::Command;

use crate::support::app::{AppOptions, TestApp};
use crate::support::tls::{ClientCertificates, TestCa};

/// Seconds a client gets for one request, handshake included, so that a
/// connection the server holds open fails the test instead of hanging it.
const CLIENT_TIMEOUT: &str = "10";

async fn spawn_with_tls(ca: &TestCa, clients: ClientCertificates) -> TestApp {
    TestApp::spawn_with(AppOptions::new().env("ROCKET_TLS", &ca.rocket_tls(clients))).await
}

fn https_url(app: &TestApp, host: &str, path: &str) -> String {
    format!("https://{host}:{}{path}", app.port)
}

/// What a client command did: its exit code and what it printed.
#[derive(Debug)]
struct Outcome {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn run(program: &str, args: &[&str]) -> Outcome {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    Outcome {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `curl` with `options` before `url`; its stdout is the HTTP status code
/// alone (`000` when no answer came).
fn curl(url: &str, options: &[&str]) -> Outcome {
    let mut args = vec![
        "--silent",
        "--show-error",
        "--max-time",
        CLIENT_TIMEOUT,
        "--output",
        "/dev/null",
        "--write-out",
        "%{http_code}",
    ];
    args.extend(options);
    args.push(url);
    run("curl", &args)
}

/// httpie's `http` with `options` before `url`, printing the answer's
/// headers; it exits 0 only on a 2xx answer (`--check-status`).
fn httpie(url: &str, options: &[&str]) -> Outcome {
    let mut args = vec![
        "--ignore-stdin",
        "--check-status",
        "--print=h",
        "--timeout",
        CLIENT_TIMEOUT,
    ];
    args.extend(options);
    args.push(url);
    run("http", &args)
}

/// A path as a command-line argument.
fn arg(path: PathBuf) -> String {
    path.into_os_string()
        .into_string()
        .expect("temporary paths are UTF-8")
}

/// Asserts that curl got a 200.
fn assert_ok(what: &str, outcome: &Outcome) {
    assert_eq!(
        (outcome.code, outcome.stdout.as_str()),
        (Some(0), "200"),
        "{what}: {outcome:?}"
    );
}

/// Asserts that curl got no HTTP answer at all.
fn assert_no_answer(what: &str, outcome: &Outcome) {
    assert_ne!(outcome.code, Some(0), "{what}: {outcome:?}");
    assert_eq!(outcome.stdout, "000", "{what}: {outcome:?}");
}

#[tokio::test]
async fn https_answers_httpie_and_curl_that_trust_the_test_ca() {
    let ca = TestCa::new();
    let app = spawn_with_tls(&ca, ClientCertificates::Off).await;
    let ca_cert = &arg(ca.ca_cert());
    // The certificate names both, as an IP address and as a DNS name.
    for host in ["127.0.0.1", "localhost"] {
        let url = https_url(&app, host, "/service");
        assert_ok(&format!("curl {url}"), &curl(&url, &["--cacert", ca_cert]));
        let verify = format!("--verify={ca_cert}");
        let reply = httpie(&url, &[&verify]);
        assert_eq!(reply.code, Some(0), "http {url}: {reply:?}");
        assert!(
            reply.stdout.starts_with("HTTP/1.1 200 OK"),
            "http {url}: {reply:?}"
        );
    }
}

#[tokio::test]
async fn plain_http_and_an_untrusted_certificate_get_no_answer_from_the_tls_port() {
    let ca = TestCa::new();
    let app = spawn_with_tls(&ca, ClientCertificates::Off).await;
    let ca_cert = &arg(ca.ca_cert());
    let https = https_url(&app, "127.0.0.1", "/service");

    let plain = app.url("/service");
    assert_no_answer(&format!("curl {plain}"), &curl(&plain, &[]));

    // Without the CA, neither client trusts the server: curl's exit code 60
    // is "peer certificate cannot be authenticated".
    let untrusted = curl(&https, &[]);
    assert_no_answer("curl without --cacert", &untrusted);
    assert_eq!(
        untrusted.code,
        Some(60),
        "curl without --cacert: {untrusted:?}"
    );
    let untrusted = httpie(&https, &[]);
    assert_ne!(
        untrusted.code,
        Some(0),
        "http without --verify: {untrusted:?}"
    );
    assert!(
        untrusted.stderr.contains("CERTIFICATE_VERIFY_FAILED"),
        "http without --verify: {untrusted:?}"
    );

    // The failed handshakes left the listener serving.
    assert_ok(
        "curl --cacert after the refusals",
        &curl(&https, &["--cacert", ca_cert]),
    );
}

#[tokio::test]
async fn mandatory_client_certificates_refuse_a_client_without_one_of_the_ca() {
    let ca = TestCa::new();
    let other_ca = TestCa::new();
    let app = spawn_with_tls(&ca, ClientCertificates::Mandatory).await;
    let url = https_url(&app, "127.0.0.1", "/service");
    let ca_cert = &arg(ca.ca_cert());
    let (cert, key) = (&arg(ca.client_cert()), &arg(ca.client_key()));
    let (other_cert, other_key) = (&arg(other_ca.client_cert()), &arg(other_ca.client_key()));

    assert_no_answer(
        "curl without a client certificate",
        &curl(&url, &["--cacert", ca_cert]),
    );
    // Refused in the handshake, which Rocket logs, not by a route.
    let log = app.log_containing("peer sent no certificates").await;
    assert!(log.contains("tls handshake"), "{log}");
    assert_no_answer(
        "curl with a client certificate of another CA",
        &curl(
            &url,
            &[
                "--cacert", ca_cert, "--cert", other_cert, "--key", other_key,
            ],
        ),
    );
    assert_ok(
        "curl with the client certificate",
        &curl(&url, &["--cacert", ca_cert, "--cert", cert, "--key", key]),
    );

    let verify = format!("--verify={ca_cert}");
    let refused = httpie(&url, &[&verify]);
    assert_ne!(refused.code, Some(0), "http without --cert: {refused:?}");
    let reply = httpie(&url, &[&verify, "--cert", cert, "--cert-key", key]);
    assert_eq!(reply.code, Some(0), "http --cert: {reply:?}");
    assert!(
        reply.stdout.starts_with("HTTP/1.1 200 OK"),
        "http --cert: {reply:?}"
    );
}

#[tokio::test]
async fn optional_client_certificates_let_clients_in_with_or_without_one() {
    let ca = TestCa::new();
    let app = spawn_with_tls(&ca, ClientCertificates::Optional).await;
    let url = https_url(&app, "127.0.0.1", "/service");
    let ca_cert = &arg(ca.ca_cert());
    let (cert, key) = (&arg(ca.client_cert()), &arg(ca.client_key()));

    assert_ok(
        "curl without a client certificate",
        &curl(&url, &["--cacert", ca_cert]),
    );
    assert_ok(
        "curl with the client certificate",
        &curl(&url, &["--cacert", ca_cert, "--cert", cert, "--key", key]),
    );
}

#[tokio::test]
async fn off_loopback_tls_and_a_token_start_without_a_warning_and_basic_works_over_it() {
    let ca = TestCa::new();
    let token = "tls-token-4b6d8f0a2c1e3579";
    let app = TestApp::spawn_with(
        AppOptions::new()
            .env("ROCKET_ADDRESS", "0.0.0.0")
            .env("ROCKET_AUTH_TOKEN", token)
            .env("ROCKET_TLS", &ca.rocket_tls(ClientCertificates::Off)),
    )
    .await;
    let log = app.log();
    assert!(!log.contains("allow_plain_http"), "{log}");
    assert!(log.contains(", TLS"), "the start line says TLS: {log}");
    let url = https_url(&app, "127.0.0.1", "/service");
    let user = format!("genisys:{token}");
    assert_ok(
        "curl -u over TLS",
        &curl(&url, &["--cacert", &arg(ca.ca_cert()), "-u", &user]),
    );
}
