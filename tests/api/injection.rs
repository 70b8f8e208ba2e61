//! Injection, proved against the real engine: text from a request reaches
//! docker as literal argv elements and `KEY=value` entries, never through a
//! shell on the host or in the container, never as a docker flag; and
//! whatever a definition says, its containers get no extra privileges.
//!
//! Every payload tries to create a marker file named for this run. The host
//! shares `/tmp` with the connector, so a host shell that evaluated anything
//! would leave the marker there; the test image's `/tmp` starts empty, so an
//! evaluation inside the container would leave it there.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::support::app::TestApp;
use crate::support::docker::{docker, unique_instance, TEST_IMAGE};
use crate::support::figures::record_figures;

/// How long a container may take to run its first command on a busy host.
/// Only an upper bound: the tests poll and go on as soon as it is done.
const PATIENCE: Duration = Duration::from_secs(60);

/// A path under `/tmp` no other test or run uses.
fn marker() -> String {
    format!("/tmp/pwned-{}", unique_instance())
}

/// `docker inspect` of one container.
fn inspect(id: &str) -> Value {
    let all: Value = serde_json::from_str(&docker(&["inspect", id])).unwrap();
    all[0].clone()
}

/// What `/tmp` inside the container holds, one name a line.
fn container_tmp(id: &str) -> String {
    docker(&["exec", id, "ls", "-A", "/tmp"])
}

/// Waits until `/tmp` in the container is no longer empty; returns it.
async fn wait_for_container_tmp(id: &str) -> String {
    let started = Instant::now();
    loop {
        let listing = container_tmp(id);
        if !listing.is_empty() || started.elapsed() > PATIENCE {
            return listing;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Scales `service` to one container and returns its id; asserts 200.
async fn run_one(app: &TestApp, service: &str) -> String {
    let reply = app.scale(service, json!(1)).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let running = app.running(service);
    assert_eq!(running.len(), 1, "{running:?}");
    running[0].clone()
}

fn as_strings(value: &Value) -> Vec<String> {
    serde_json::from_value(value.clone()).unwrap_or_else(|_| panic!("not strings: {value}"))
}

fn is_empty(value: &Value) -> bool {
    value.is_null() || value.as_array().is_some_and(Vec::is_empty)
}

/// Asserts that every container of `app` runs with docker's defaults: not
/// privileged, nothing mounted, no added capability or device, no relaxed
/// security option, the default network, its own PID, IPC and user
/// namespaces, and the image's user. Returns how many it checked.
fn assert_every_container_confined(app: &TestApp) -> usize {
    let ids = app.containers(None);
    assert!(!ids.is_empty(), "no container to check");
    for id in &ids {
        let container = inspect(id);
        let host = &container["HostConfig"];
        let context = format!("container {id}: {host}");
        assert_eq!(host["Privileged"], false, "{context}");
        assert!(is_empty(&container["Mounts"]), "{context}");
        assert!(is_empty(&host["Binds"]), "{context}");
        assert!(is_empty(&host["Mounts"]), "{context}");
        assert!(is_empty(&host["CapAdd"]), "{context}");
        assert!(is_empty(&host["Devices"]), "{context}");
        assert!(is_empty(&host["SecurityOpt"]), "{context}");
        // "default" is the default bridge network; newer engines say "bridge".
        let network = host["NetworkMode"].as_str().unwrap_or_default();
        assert!(["default", "bridge"].contains(&network), "{context}");
        assert_eq!(host["PidMode"], "", "{context}");
        assert_eq!(host["UsernsMode"], "", "{context}");
        let ipc = host["IpcMode"].as_str().unwrap_or_default();
        assert!(ipc != "host" && !ipc.starts_with("container:"), "{context}");
        assert_eq!(container["Config"]["User"], "", "{context}");
    }
    ids.len()
}

/// The name docker shows for the first container of `service`: always the
/// instance first, so neither part can ever be read as a flag.
fn expected_container_name(app: &TestApp, service: &str) -> String {
    format!("/{}-{service}-1", app.instance)
}

#[tokio::test]
async fn shell_syntax_in_a_command_string_or_array_is_literal_argv() {
    let app = TestApp::spawn().await;
    let m = marker();

    // A string: split like a shell would split it, then nothing more. The
    // quoted script marks that it ran and keeps the container running;
    // everything after it becomes `$0`, `$1`, ... of `sh -c`, which the
    // script never reads. A host shell would run every `touch`; docker would
    // read the trailing flags as its own if the command came before the image.
    let line = format!(
        "sh -c 'touch /tmp/ready; sleep 3600' $(touch {m}) \"$(touch {m})\" `touch {m}` ; touch {m} \
         && touch {m} | touch {m} > {m} --privileged -v /:/host --network=host"
    );
    let string_argv: Vec<String> = [
        "sh",
        "-c",
        "touch /tmp/ready; sleep 3600",
        "$(touch",
        &format!("{m})"),
        &format!("$(touch {m})"),
        "`touch",
        &format!("{m}`"),
        ";",
        "touch",
        &m,
        "&&",
        "touch",
        &m,
        "|",
        "touch",
        &m,
        ">",
        &m,
        "--privileged",
        "-v",
        "/:/host",
        "--network=host",
    ]
    .map(str::to_owned)
    .to_vec();
    app.create_service("line", json!({ "command": line })).await;

    // An array: used as argv exactly. The script hands `$1` to `echo` in
    // double quotes, so its text is printed, never evaluated; the file it
    // writes shows what the process received, byte for byte.
    let payload =
        format!("$(touch {m}); `touch {m}` && touch {m} | touch {m}\n'\"touch {m}\"' > {m}");
    let array_argv: Vec<String> = [
        "sh",
        "-c",
        r#"echo "$1" > /tmp/arg; sleep 3600"#,
        "sh",
        &payload,
        "--privileged",
        "-v",
        "/:/host",
    ]
    .map(str::to_owned)
    .to_vec();
    app.create_service("array", json!({ "command": array_argv }))
        .await;

    let mut elements_compared = 0;
    for (service, argv) in [("line", &string_argv), ("array", &array_argv)] {
        let id = run_one(&app, service).await;
        let container = inspect(&id);
        assert_eq!(&as_strings(&container["Config"]["Cmd"]), argv, "{service}");
        assert!(is_empty(&container["Config"]["Entrypoint"]), "{service}");
        assert_eq!(container["Path"], argv[0], "{service}");
        assert_eq!(as_strings(&container["Args"]), argv[1..], "{service}");
        assert_eq!(container["Name"], expected_container_name(&app, service));
        elements_compared += argv.len();
    }

    // Once each script has written its one file, any evaluation of the
    // arguments (which would come first) would have left the marker too.
    let id = app.running("line")[0].clone();
    let tmp = wait_for_container_tmp(&id).await;
    assert_eq!(
        tmp, "ready\n",
        "the arguments were evaluated in the container"
    );
    let id = app.running("array")[0].clone();
    let tmp = wait_for_container_tmp(&id).await;
    assert_eq!(
        tmp, "arg\n",
        "the arguments were evaluated in the container"
    );
    assert_eq!(
        docker(&["exec", &id, "cat", "/tmp/arg"]),
        format!("{payload}\n"),
        "the argument did not arrive verbatim"
    );
    assert!(
        !Path::new(&m).exists(),
        "a shell on the host ran the command"
    );
    let confined = assert_every_container_confined(&app);

    record_figures(
        "injection-command",
        &[
            ("commands checked (a string and an array)", "2".into()),
            (
                "argv elements equal to what was sent",
                elements_compared.to_string(),
            ),
            ("marker files created on the host", "0".into()),
            ("marker files created in the containers", "0".into()),
            ("containers confined", confined.to_string()),
        ],
    );
}

#[tokio::test]
async fn environment_values_arrive_verbatim_and_become_nothing_else() {
    let app = TestApp::spawn().await;
    let m = marker();
    let values: Vec<(&str, String)> = vec![
        ("FLAG", "--privileged".into()),
        ("VOLUME", "-v /:/host".into()),
        ("NETWORK", "--network=host".into()),
        ("DASH_E", "-e".into()),
        ("INJECTED_PAIR", "x -e LD_PRELOAD=/tmp/evil.so".into()),
        ("MULTILINE", "line one\nline two\nSECOND=entry".into()),
        ("SUBSTITUTION", format!("$(touch {m})")),
        ("BACKTICKS", format!("`touch {m}`")),
        (
            "CHAIN",
            format!("a; touch {m} && touch {m} | touch {m} > {m}"),
        ),
        ("QUOTES", r#"'single' "double" \"escaped\""#.into()),
        ("BACKSLASHES", r"C:\new\table\\".into()),
        ("EQUALS", "a=b=c".into()),
        ("EMPTY", String::new()),
        ("SPACES", "  padded  ".into()),
        ("UNICODE", "héllo ✓ 🐳".into()),
    ];
    let mut environment: serde_json::Map<String, Value> = values
        .iter()
        .map(|(key, value)| (key.to_string(), json!(value)))
        .collect();
    // Numbers and booleans are stored as the strings they were written as.
    environment.insert("NUMBER".into(), json!(8080));
    environment.insert("BOOLEAN".into(), json!(true));
    app.create_service("env", json!({ "environment": environment }))
        .await;
    let id = run_one(&app, "env").await;

    let mut expected: Vec<String> = values
        .iter()
        .map(|(key, value)| format!("{key}={value}"))
        .chain(["NUMBER=8080".to_owned(), "BOOLEAN=true".to_owned()])
        .collect();
    expected.sort();

    // What docker was told: exactly one entry per variable, besides the
    // image's own PATH. A value that smuggled in `-e` or a newline would
    // show up as an extra entry.
    let container = inspect(&id);
    let mut configured: Vec<String> = as_strings(&container["Config"]["Env"])
        .into_iter()
        .filter(|entry| entry != "PATH=/bin")
        .collect();
    configured.sort();
    assert_eq!(configured, expected);

    // What the container's process got: /proc/1/environ separates entries
    // with NUL, so values holding newlines compare exactly.
    let environ = docker(&["exec", &id, "cat", "/proc/1/environ"]);
    let received: Vec<&str> = environ.split('\0').collect();
    for entry in &expected {
        assert!(
            received.contains(&entry.as_str()),
            "{entry:?} not in the process environment {received:?}"
        );
    }
    assert!(
        !received.iter().any(|entry| entry.starts_with("SECOND=")),
        "a newline in a value made a variable of its own"
    );

    assert_eq!(
        container_tmp(&id),
        "",
        "a value was evaluated in the container"
    );
    assert!(!Path::new(&m).exists(), "a shell on the host ran a value");
    let confined = assert_every_container_confined(&app);

    record_figures(
        "injection-environment",
        &[
            (
                "values checked verbatim in docker inspect and /proc/1/environ",
                expected.len().to_string(),
            ),
            ("marker files created on the host", "0".into()),
            ("marker files created in the container", "0".into()),
            ("containers confined", confined.to_string()),
        ],
    );
}

#[tokio::test]
async fn nothing_in_a_request_can_become_a_docker_flag() {
    let app = TestApp::spawn().await;
    let mut refused = 0;

    // Images and names that look like flags are refused before docker runs.
    for image in ["--privileged", "-v", "-v=/:/host:1", "--network=host", "-d"] {
        let reply = app.create(json!({"name": "flag", "image": image})).await;
        assert_eq!(reply.status, 400, "{image}: {reply:?}");
        assert!(reply.error().starts_with("image: "), "{reply:?}");
        refused += 1;
    }
    for name in ["--privileged", "-d", "-v", "--rm"] {
        let reply = app.create(json!({"name": name, "image": TEST_IMAGE})).await;
        assert_eq!(reply.status, 400, "{name}: {reply:?}");
        assert!(reply.error().starts_with("name: "), "{reply:?}");
        let reply = app.put(name, json!({"image": TEST_IMAGE})).await;
        assert_eq!(reply.status, 400, "PUT {name}: {reply:?}");
        refused += 2;
    }
    for key in ["-e", "--privileged"] {
        let reply = app
            .create(json!({"name": "flag", "image": TEST_IMAGE, "environment": {key: "1"}}))
            .await;
        assert_eq!(reply.status, 400, "{key}: {reply:?}");
        assert!(reply.error().starts_with("environment: "), "{reply:?}");
        refused += 1;
    }
    let listed = app.get("/service").await;
    assert_eq!(listed.body, json!({}), "a refused definition was stored");

    // A command that is nothing but docker flags comes after the image, so
    // docker hands it to the container to execute: the start fails naming
    // the would-be flag as the program, and no container is left behind.
    app.create_service(
        "flags",
        json!({"command": ["--privileged", "-v", "/:/host", "--network=host"]}),
    )
    .await;
    let reply = app.scale("flags", json!(1)).await;
    assert_eq!(reply.status, 502, "{reply:?}");
    assert!(reply.error().contains("--privileged"), "{reply:?}");
    assert!(app.containers(Some("flags")).is_empty());
    // Its desired count stands, and the reconciler would try again: stop it.
    assert_eq!(app.scale("flags", json!(0)).await.status, 200);

    // And a valid service's container is named instance first: never a flag.
    app.create_service("plain", json!({})).await;
    let id = run_one(&app, "plain").await;
    assert_eq!(inspect(&id)["Name"], expected_container_name(&app, "plain"));
    let confined = assert_every_container_confined(&app);

    record_figures(
        "injection-flags",
        &[
            (
                "flag-like images, names and variable names refused",
                refused.to_string(),
            ),
            ("flag-only commands run as a flag by docker", "0".into()),
            ("containers confined", confined.to_string()),
        ],
    );
}

#[tokio::test]
async fn every_container_of_a_scaled_service_runs_with_dockers_defaults() {
    let app = TestApp::spawn().await;
    app.create_service(
        "web",
        json!({"command": "httpd -f -p 8080 -h /www",
               "ports": ["8080", "53/udp"],
               "environment": {"FLAG": "--privileged --cap-add=ALL --device=/dev/mem"}}),
    )
    .await;
    let reply = app.scale("web", json!(3)).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let confined = assert_every_container_confined(&app);
    assert_eq!(confined, 3);
    // Ports are published on ephemeral host ports only: no fixed host port,
    // and nothing beyond what the definition lists.
    for id in app.containers(None) {
        let bindings = &inspect(&id)["HostConfig"]["PortBindings"];
        let mut ports: Vec<&String> = bindings.as_object().unwrap().keys().collect();
        ports.sort();
        assert_eq!(ports, ["53/udp", "8080/tcp"], "{bindings}");
        for binding in bindings
            .as_object()
            .unwrap()
            .values()
            .flat_map(|b| b.as_array().unwrap())
        {
            assert_eq!(binding["HostPort"], "", "{bindings}");
        }
    }

    record_figures(
        "injection-isolation",
        &[(
            "containers of a 3-replica service confined",
            confined.to_string(),
        )],
    );
}
