//! The connector under test: one process of the release binary on a free
//! port with a fresh data file, in clear or over TLS, and the control calls
//! the measurements make to it (create, scale, delete a service).

use std::ffi::OsStr;
use std::path::Path;
use std::thread;
use std::time::Duration;

use serde_json::{json, Value};

use crate::connector::{ConnectorCommand, ConnectorProcess, STARTUP_DEADLINE};
use crate::docker::remove_containers_of;
use crate::http::{request_bytes, Endpoint, HttpAnswer, HttpConnection};
use crate::test_tls::{ClientCertificates, TestCa};
use crate::PARALLEL_RUNS;

/// Scaling many containers on a loaded engine can take minutes.
const CONTROL_TIMEOUT: Duration = Duration::from_secs(300);
/// The lines of the connector's log a panic message quotes.
const LOG_TAIL_LINES: usize = 30;

/// A connector process, started by the launcher the tests share
/// (`tests/support/connector.rs`), with the bench's HTTP calls on top.
/// Dropping it kills the process, then removes every container of
/// `owned_instances`, so that neither a finished run nor a panic leaves
/// anything running; no other container is ever touched.
pub struct Connector {
    process: ConnectorProcess,
    /// Its port, and the TLS client settings if it speaks TLS.
    endpoint: Endpoint,
    owned_instances: Vec<String>,
    _data_dir: tempfile::TempDir,
}

impl Connector {
    /// Starts the binary with a fresh data file, `instance` and a free port;
    /// its stderr goes to `log_path`, never into this process's memory.
    /// Returns at once, so that [`Connector::wait_for_first_answer`] can
    /// time the start from the spawn.
    pub fn spawn(instance: &str, log_path: &Path, owned_instances: Vec<String>) -> Connector {
        Self::spawn_configured(instance, log_path, owned_instances, None, &[])
    }

    /// [`Connector::spawn`] with `log_level = "off"`: the status load's
    /// logging costs (issue 21) are what it and a logging connector differ
    /// in.
    pub fn spawn_without_logging(
        instance: &str,
        log_path: &Path,
        owned_instances: Vec<String>,
    ) -> Connector {
        let off = OsStr::new("off");
        Self::spawn_configured(
            instance,
            log_path,
            owned_instances,
            None,
            &[("ROCKET_LOG_LEVEL", off)],
        )
    }

    /// [`Connector::spawn`] with Rocket's TLS listener serving the server
    /// certificate of `ca` (no client certificates); every call of the
    /// bench then goes over TLS, trusting `ca`.
    pub fn spawn_tls(
        instance: &str,
        log_path: &Path,
        owned_instances: Vec<String>,
        ca: &TestCa,
    ) -> Connector {
        Self::spawn_configured(instance, log_path, owned_instances, Some(ca), &[])
    }

    /// [`Connector::spawn`] running `docker` as its docker CLI, for
    /// measurements of the connector's own work (its store's writes) that
    /// the engine's time would drown.
    pub fn spawn_with_docker(instance: &str, log_path: &Path, docker: &Path) -> Connector {
        Self::spawn_configured(
            instance,
            log_path,
            Vec::new(),
            None,
            &[("ROCKET_DOCKER", docker.as_os_str())],
        )
    }

    /// Spawns with the bench's settings, TLS if `tls`, and `settings` on top.
    fn spawn_configured(
        instance: &str,
        log_path: &Path,
        owned_instances: Vec<String>,
        tls: Option<&TestCa>,
        settings: &[(&str, &OsStr)],
    ) -> Connector {
        let data_dir = tempfile::tempdir().expect("a temporary directory");
        let mut command = ConnectorCommand::new(data_dir.path(), instance)
            .env("ROCKET_DATA_FILE", data_dir.path().join("services.json"))
            .env("ROCKET_MAX_REPLICAS", "1000")
            .env("ROCKET_SCALE_CONCURRENCY", PARALLEL_RUNS.to_string())
            // Every client of the bench is 127.0.0.1, and the watch section
            // holds 1,000 streams and 64 status connections at once: above
            // the default cap of 256 a remote address, the warden (issue 18)
            // would close the newest.
            .env("ROCKET_MAX_CONNECTIONS_PER_ADDRESS", "4096")
            .envs(settings.iter().copied());
        if let Some(ca) = tls {
            command = command.env("ROCKET_TLS", ca.rocket_tls(ClientCertificates::Off));
        }
        let process = command.spawn_logging_to(log_path);
        let endpoint = match tls {
            Some(ca) => Endpoint::tls(process.port(), &ca.ca_cert()),
            None => Endpoint::plain(process.port()),
        };
        Connector {
            process,
            endpoint,
            owned_instances,
            _data_dir: data_dir,
        }
    }

    pub fn port(&self) -> u16 {
        self.process.port()
    }

    /// Where the load goes: its port, over TLS if it was started with it.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// The file the connector logs to.
    pub fn log_path(&self) -> &Path {
        self.process
            .log_path()
            .expect("spawn_logging_to logs to a file")
    }

    /// Polls `GET /service` about every millisecond until it is answered;
    /// returns the time from spawning to that answer.
    pub fn wait_for_first_answer(&mut self) -> Duration {
        let spawned_at = self.process.spawned_at();
        let request = request_bytes(self.port(), "GET", "/service", None);
        loop {
            let answer = HttpConnection::open(&self.endpoint, STARTUP_DEADLINE)
                .and_then(|mut connection| connection.exchange(&request));
            if let Ok(answer) = answer {
                let elapsed = spawned_at.elapsed();
                assert_eq!(
                    answer.status,
                    200,
                    "GET /service answered {}",
                    answer.text()
                );
                return elapsed;
            }
            if let Some(exit) = self.process.try_wait() {
                panic!(
                    "the connector exited ({exit}) before answering; its log ends:\n{}",
                    self.process.log_tail(LOG_TAIL_LINES)
                );
            }
            assert!(
                spawned_at.elapsed() < STARTUP_DEADLINE,
                "the connector did not answer within {STARTUP_DEADLINE:?}; its log ends:\n{}",
                self.process.log_tail(LOG_TAIL_LINES)
            );
            thread::sleep(Duration::from_millis(1));
        }
    }

    /// One control request on a connection of its own, so that no keep-alive
    /// expiry between phases can break it. Panics if nothing answers.
    pub fn call(&self, method: &str, path: &str, body: Option<&Value>) -> HttpAnswer {
        let body = body.map(Value::to_string);
        let request = request_bytes(self.port(), method, path, body.as_deref());
        HttpConnection::open(&self.endpoint, CONTROL_TIMEOUT)
            .and_then(|mut connection| connection.exchange(&request))
            .unwrap_or_else(|e| {
                panic!(
                    "{method} {path}: no answer: {e}; the connector's log ends:\n{}",
                    self.process.log_tail(LOG_TAIL_LINES)
                )
            })
    }

    pub fn create_service(&self, definition: &Value) {
        let answer = self.call("POST", "/service", Some(definition));
        assert_eq!(
            answer.status,
            201,
            "POST /service {definition}: {}",
            answer.text()
        );
    }

    /// Scales `service` to `number`; panics unless the answer is 200 with
    /// `number` running, and returns the running count it answered.
    pub fn scale(&self, service: &str, number: u64) -> u64 {
        let path = format!("/service/{service}/scale");
        let answer = self.call("POST", &path, Some(&json!({ "number": number })));
        assert_eq!(
            answer.status,
            200,
            "POST {path} {number}: {}",
            answer.text()
        );
        let running = answer.running_resources();
        assert_eq!(
            running,
            Some(number),
            "POST {path} {number}: {}",
            answer.text()
        );
        number
    }

    /// The status of `service`; panics unless it answers 200 with JSON.
    pub fn status(&self, service: &str) -> Value {
        let answer = self.status_answer(service);
        serde_json::from_slice(&answer.body)
            .unwrap_or_else(|e| panic!("GET /service/{service}/status: {e}: {}", answer.text()))
    }

    /// The whole status answer of `service`, headers read; panics unless
    /// it is a 200.
    pub fn status_answer(&self, service: &str) -> HttpAnswer {
        let path = format!("/service/{service}/status");
        let answer = self.call("GET", &path, None);
        assert_eq!(answer.status, 200, "GET {path}: {}", answer.text());
        answer
    }

    pub fn delete_service(&self, service: &str) {
        let path = format!("/service/{service}");
        let answer = self.call("DELETE", &path, None);
        assert_eq!(answer.status, 204, "DELETE {path}: {}", answer.text());
    }

    pub fn instance(&self) -> &str {
        &self.owned_instances[0]
    }
}

impl Drop for Connector {
    fn drop(&mut self) {
        // Killed first, so that it starts nothing while its containers go.
        self.process.kill();
        for instance in &self.owned_instances {
            remove_containers_of(instance);
        }
    }
}
