//! The connector under test: [`TestApp`] boots it with its own data
//! directory, its own `instance` label and a port of its choosing, talks to
//! it over HTTP, and removes the test's containers (and Swarm services) when
//! dropped; [`Backend`] and [`backend_suite!`] run one test on either backend.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use docker_connector::docker::{LABEL_INSTANCE, LABEL_SERVICE};
use serde_json::{json, Value};

use super::connector::{ConnectorCommand, ConnectorProcess, STARTUP_DEADLINE};
use super::docker::{docker, ensure_test_image, unique_instance, TEST_IMAGE};
use super::process::{send_signal, write_fake_docker, Process};

/// An HTTP answer, body parsed as JSON (`Value::Null` when empty).
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The `error` message of an error answer; panics if it has none.
    pub fn error(&self) -> &str {
        self.body["error"]
            .as_str()
            .unwrap_or_else(|| panic!("no JSON error in {self:?}"))
    }
}

/// What runs a test connector's services.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Containers,
    /// Needs the engine to be a Swarm manager: tests/swarm makes it one.
    Swarm,
}

impl Backend {
    /// Options for a connector of this backend. Swarm skips the registry
    /// lookup of the local test image, and new tasks must run 1 s (not 2 s)
    /// before an update goes on.
    pub fn options(self) -> AppOptions {
        match self {
            Backend::Containers => AppOptions::new(),
            Backend::Swarm => AppOptions::new()
                .env("ROCKET_BACKEND", "swarm")
                .env("ROCKET_SWARM_RESOLVE_IMAGE", "false")
                .env("ROCKET_UPDATE_SETTLE", "1"),
        }
    }

    /// [`Backend::options`] with `script` in place of the docker CLI. For
    /// Swarm, `docker info` answers as a manager's, so the connector starts
    /// and meets the script's fault on every other command.
    pub fn fake_docker(self, dir: &Path, script: &str) -> AppOptions {
        let script = match self {
            Backend::Containers => script.to_owned(),
            Backend::Swarm => format!(
                "if [ \"$1\" = info ]; then echo '{{\"LocalNodeState\":\"active\",\"ControlAvailable\":true}}'; exit 0; fi\n{script}"
            ),
        };
        self.options().fake_docker(dir, &script)
    }
}

/// The list of `tests` (async functions taking a [`Backend`]) that a
/// harness of its own runs: tests/swarm.
macro_rules! suite_of {
    ($($test:ident),* $(,)?) => {
        vec![$((
            stringify!($test),
            (|backend| -> std::pin::Pin<Box<dyn std::future::Future<Output = ()>>> {
                Box::pin($test(backend))
            }) as $crate::support::app::BackendTest,
        )),*]
    };
}
pub(crate) use suite_of;

/// Defines a suite of tests that take a [`Backend`]: `suite()` lists them
/// for tests/swarm, and a `#[tokio::test]` of each runs it here on the
/// containers backend.
macro_rules! backend_suite {
    ($($test:ident),* $(,)?) => {
        /// The tests of this module that run on either backend.
        #[allow(dead_code)] // read by tests/swarm only
        pub fn suite() -> Vec<(&'static str, $crate::support::app::BackendTest)> {
            $crate::support::app::suite_of!($($test),*)
        }

        mod on_containers {
            $(
                #[tokio::test]
                async fn $test() {
                    super::$test($crate::support::app::Backend::Containers).await
                }
            )*
        }
    };
}
pub(crate) use backend_suite;

/// One test of a [`backend_suite!`].
#[allow(dead_code)] // read by tests/swarm only
pub type BackendTest = fn(Backend) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()>>>;

/// Settings for one connector process: environment variables over the
/// launcher's defaults, and command-line arguments.
#[derive(Default)]
pub struct AppOptions {
    pub env: HashMap<String, String>,
    pub args: Vec<String>,
    /// Soft and hard `RLIMIT_NOFILE` for the process; the test's own when
    /// `None`.
    pub open_files: Option<u64>,
}

impl AppOptions {
    pub fn new() -> Self {
        Self::default()
    }

    /// Runs `script` (a `/bin/sh` body) in place of the docker CLI.
    pub fn fake_docker(self, dir: &Path, script: &str) -> Self {
        let path = write_fake_docker(dir, script);
        self.env("ROCKET_DOCKER", path.to_str().unwrap())
    }

    /// `reconcile = false`: the connector acts only when called, so a test
    /// can watch what it sees of changes made behind its back without the
    /// reconciler undoing them.
    pub fn without_reconciler(self) -> Self {
        self.env("ROCKET_RECONCILE", "false")
    }

    /// Starts the connector with `limit` descriptors, soft and hard, as a
    /// unit's `LimitNOFILE=` does.
    pub fn open_file_limit(mut self, limit: u64) -> Self {
        self.open_files = Some(limit);
        self
    }

    pub fn arg(mut self, arg: &str) -> Self {
        self.args.push(arg.to_owned());
        self
    }

    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.insert(key.to_owned(), value.to_owned());
        self
    }

    fn backend(&self) -> Backend {
        match self.env.get("ROCKET_BACKEND").map(String::as_str) {
            Some("swarm") => Backend::Swarm,
            _ => Backend::Containers,
        }
    }
}

/// A running connector and what it was started with.
pub struct TestApp {
    pub port: u16,
    pub instance: String,
    pub dir: tempfile::TempDir,
    options: AppOptions,
    process: ConnectorProcess,
    client: reqwest::Client,
}

impl TestApp {
    /// Starts a connector with default settings.
    pub async fn spawn() -> TestApp {
        Self::spawn_with(AppOptions::new()).await
    }

    pub async fn spawn_with(options: AppOptions) -> TestApp {
        ensure_test_image();
        let dir = tempfile::tempdir().unwrap();
        let instance = unique_instance();
        let process = launch(dir.path(), &instance, &options)
            .unwrap_or_else(|log| panic!("the connector did not start:\n{log}"));
        TestApp {
            port: process.port(),
            instance,
            dir,
            options,
            process,
            client: reqwest::Client::new(),
        }
    }

    /// The connector's process id.
    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    pub fn data_file(&self) -> PathBuf {
        self.dir.path().join("data/services.json")
    }

    /// What the store's files hold: `{"revision": R, "services": {...}}`.
    pub fn stored_state(&self) -> Value {
        super::store::stored_state(&self.data_file())
    }

    /// Everything the server wrote to stderr so far.
    pub fn log(&self) -> String {
        self.process.log()
    }

    /// Waits up to five seconds for the server to log a line containing
    /// `needle` (it logs a request after answering it); returns the log.
    pub async fn log_containing(&self, needle: &str) -> String {
        poll_until(Duration::from_secs(5), move || async move {
            let log = self.log();
            (log.contains(needle), log)
        })
        .await
    }

    /// Kills the server with SIGKILL and starts it again on the same data
    /// file and instance (on a new port).
    pub fn restart(&mut self) {
        self.stop();
        self.process = launch(self.dir.path(), &self.instance, &self.options)
            .unwrap_or_else(|log| panic!("restart failed:\n{log}"));
        self.port = self.process.port();
    }

    /// Kills the server with SIGKILL: no shutdown code runs.
    pub fn stop(&mut self) {
        self.process.kill();
    }

    /// Asks the server to stop with SIGTERM, as systemd does, and waits for
    /// it to exit; returns its exit code.
    pub fn terminate(&mut self) -> Option<i32> {
        self.send_sigterm();
        self.wait_for_exit()
    }

    /// Sends SIGTERM and returns at once.
    pub fn send_sigterm(&self) {
        send_signal(self.pid(), "TERM");
    }

    /// Waits for the server to exit after a signal; returns its exit code.
    pub fn wait_for_exit(&mut self) -> Option<i32> {
        let started = std::time::Instant::now();
        loop {
            if let Some(status) = self.process.try_wait() {
                return status.code();
            }
            assert!(
                started.elapsed() < STARTUP_DEADLINE,
                "the server did not exit after SIGTERM:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// The bearer token the server was started with, if any.
    pub fn token(&self) -> Option<&str> {
        self.options
            .env
            .get("ROCKET_AUTH_TOKEN")
            .map(String::as_str)
    }

    /// Sends `method path` with a raw body, and the server's token if it has
    /// one.
    pub async fn send(&self, method: &str, path: &str, body: Option<Vec<u8>>) -> Reply {
        let authorization = self.token().map(|token| format!("Bearer {token}"));
        let headers: Vec<(&str, &str)> = authorization
            .iter()
            .map(|value| ("authorization", value.as_str()))
            .collect();
        self.send_with_headers(method, path, &headers, body).await
    }

    /// Sends `method path` with exactly `headers` (no token is added) and a
    /// raw body.
    pub async fn send_with_headers(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Reply {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut request = self.client.request(method, self.url(path));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body);
        }
        let response = request.send().await.expect("the connector answers");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.unwrap();
        let is_text = headers
            .get("content-type")
            .and_then(|t| t.to_str().ok())
            .is_some_and(|t| t.starts_with("text/plain"));
        let body = if bytes.is_empty() {
            Value::Null
        } else if is_text {
            Value::String(String::from_utf8(bytes.to_vec()).expect("text answers are UTF-8"))
        } else {
            serde_json::from_slice(&bytes).unwrap_or_else(|_| {
                panic!(
                    "answer is neither JSON nor text: {}",
                    String::from_utf8_lossy(&bytes)
                )
            })
        };
        Reply {
            status,
            headers,
            body,
        }
    }

    pub async fn send_json(&self, method: &str, path: &str, body: &Value) -> Reply {
        self.send(method, path, Some(body.to_string().into_bytes()))
            .await
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.send("GET", path, None).await
    }

    pub async fn create(&self, body: Value) -> Reply {
        self.send_json("POST", "/service", &body).await
    }

    pub async fn show(&self, name: &str) -> Reply {
        self.get(&format!("/service/{name}")).await
    }

    pub async fn put(&self, name: &str, body: Value) -> Reply {
        self.send_json("PUT", &format!("/service/{name}"), &body)
            .await
    }

    pub async fn delete(&self, name: &str) -> Reply {
        self.send("DELETE", &format!("/service/{name}"), None).await
    }

    /// Creates `name` running the test image with `extra` fields; asserts 201.
    pub async fn create_service(&self, name: &str, extra: Value) -> Value {
        let mut body = json!({"name": name, "image": TEST_IMAGE});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().cloned().unwrap_or_default());
        let reply = self.create(body).await;
        assert_eq!(reply.status, 201, "{reply:?}");
        reply.body
    }

    pub async fn scale(&self, name: &str, number: Value) -> Reply {
        self.send_json(
            "POST",
            &format!("/service/{name}/scale"),
            &json!({ "number": number }),
        )
        .await
    }

    pub async fn status(&self, name: &str) -> Reply {
        self.get(&format!("/service/{name}/status")).await
    }

    /// Polls status every 5 ms until it reports `expected` running
    /// containers of `service` (the index learns of changes made behind the
    /// connector's back from docker's events, a moment after they happen);
    /// returns how long that took. Panics after `limit`, naming `what` and
    /// showing the connector's log.
    pub async fn wait_for_running(
        &self,
        service: &str,
        expected: usize,
        limit: Duration,
        what: &str,
    ) -> Duration {
        let started = std::time::Instant::now();
        loop {
            let reply = self.status(service).await;
            assert_eq!(reply.status, 200, "{reply:?}");
            if reply.body["running_resources"] == json!(expected) {
                return started.elapsed();
            }
            assert!(
                started.elapsed() < limit,
                "{what}: status still says {} instead of {expected} after {limit:?}; \
                 the connector's log:\n{}",
                reply.body["running_resources"],
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Ids of this test's containers of `service` (any service if `None`),
    /// in any state.
    pub fn containers(&self, service: Option<&str>) -> Vec<String> {
        self.containers_with(service, &["-a"])
    }

    /// Ids of this test's running containers of `service`.
    pub fn running(&self, service: &str) -> Vec<String> {
        self.containers_with(Some(service), &[])
    }

    /// Removes every object `docker <kind> ls -q` lists with this test's
    /// instance label (`container` with `-a`, `service`). Never panics: it
    /// runs in `drop`, perhaps while a failed test unwinds, where a panic
    /// would abort the run before tests/swarm leaves its Swarm.
    fn remove_labelled(&self, kind: &str, list_flags: &[&str], remove: &[&str]) {
        let instance = format!("label={LABEL_INSTANCE}={}", self.instance);
        let mut list = vec![kind, "ls", "-q", "--filter", &instance];
        list.extend(list_flags);
        let Ok(listed) = Command::new("docker").args(&list).output() else {
            return;
        };
        let listed = String::from_utf8_lossy(&listed.stdout);
        let ids: Vec<&str> = listed.split_whitespace().collect();
        if !ids.is_empty() {
            let mut args = remove.to_vec();
            args.extend(ids);
            let _ = Command::new("docker").args(&args).output();
        }
    }

    fn containers_with(&self, service: Option<&str>, flags: &[&str]) -> Vec<String> {
        let instance = format!("label={LABEL_INSTANCE}={}", self.instance);
        let service = service.map(|s| format!("label={LABEL_SERVICE}={s}"));
        let mut args = vec!["ps", "-q", "--no-trunc", "--filter", &instance];
        if let Some(filter) = &service {
            args.extend(["--filter", filter]);
        }
        args.extend(flags);
        docker(&args).lines().map(str::to_owned).collect()
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.stop();
        // A `docker run` the connector had in flight (a reconciler's retry,
        // say) outlives its SIGKILL by design and creates its container
        // after that: wait for it, or the container would be left behind.
        let label = format!("{LABEL_INSTANCE}={}", self.instance);
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while std::time::Instant::now() < deadline
            && Process::all()
                .iter()
                .any(|p| p.is_running() && p.has_arg("run") && p.has_arg(&label))
        {
            std::thread::sleep(Duration::from_millis(20));
        }
        // Swarm's services first, so that Swarm starts no task for the
        // containers removed next.
        if self.options.backend() == Backend::Swarm {
            self.remove_labelled("service", &[], &["service", "rm"]);
        }
        self.remove_labelled("container", &["-a", "--no-trunc"], &["rm", "-f"]);
    }
}

/// Runs `probe` every 20 ms until it says it is done, for at most `limit`,
/// and returns what it found last: the caller asserts on that, so a timeout
/// fails with the caller's own message.
pub async fn poll_until<T, Probe>(limit: Duration, mut probe: impl FnMut() -> Probe) -> T
where
    Probe: std::future::Future<Output = (bool, T)>,
{
    let started = std::time::Instant::now();
    loop {
        let (done, found) = probe().await;
        if done || started.elapsed() > limit {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Starts the binary in `dir` with `instance` and `options`, and waits for
/// it to announce its port. On failure returns what it logged.
fn launch(dir: &Path, instance: &str, options: &AppOptions) -> Result<ConnectorProcess, String> {
    let mut command = ConnectorCommand::new(dir, instance)
        .args(&options.args)
        .envs(&options.env);
    if let Some(limit) = options.open_files {
        command = command.open_file_limit(limit);
    }
    command.launch()
}

/// Starts the binary in `dir`, with `env` over a fresh instance, expecting
/// it to refuse to start; returns its exit code and what it logged. Panics
/// if it is still running after the startup deadline.
pub fn launch_expecting_failure(dir: &Path, env: &[(&str, &str)]) -> (Option<i32>, String) {
    ConnectorCommand::new(dir, &unique_instance())
        .envs(env.iter().copied())
        .expect_refusal()
}
