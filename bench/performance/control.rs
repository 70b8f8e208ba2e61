//! The connector under test: one process of the release binary on a free
//! port with a fresh data file, and the control calls the measurements
//! make to it (create, scale, delete a service).

use std::fs::File;
use std::net::{Ipv4Addr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::docker::remove_containers_of;
use crate::http::{request_bytes, HttpAnswer, HttpConnection};
use crate::PARALLEL_RUNS;

/// How long a connector may take to answer at all before the run gives up.
const STARTUP_DEADLINE: Duration = Duration::from_secs(20);
/// Scaling many containers on a loaded engine can take minutes.
const CONTROL_TIMEOUT: Duration = Duration::from_secs(300);

fn free_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("a free port on 127.0.0.1");
    listener.local_addr().expect("a bound address").port()
}

/// A connector process. Dropping it kills the process, then removes every
/// container of `owned_instances`, so that neither a finished run nor a
/// panic leaves anything running; no other container is ever touched.
pub struct Connector {
    child: Child,
    pub port: u16,
    spawned_at: Instant,
    owned_instances: Vec<String>,
    pub log_path: PathBuf,
    _data_dir: tempfile::TempDir,
}

impl Connector {
    /// Starts the binary with a fresh data file, `instance` and a free port;
    /// its stderr goes to `log_path`, never into this process's memory.
    pub fn spawn(instance: &str, log_path: PathBuf, owned_instances: Vec<String>) -> Connector {
        let data_dir = tempfile::tempdir().expect("a temporary directory");
        let port = free_port();
        let log = File::create(&log_path)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", log_path.display()));
        let mut command = Command::new(env!("CARGO_BIN_EXE_docker-connector"));
        // Settings from the caller's environment (a token, another data file)
        // would change what is measured.
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("ROCKET_") {
                command.env_remove(key);
            }
        }
        command
            .current_dir(data_dir.path())
            .env("ROCKET_ADDRESS", "127.0.0.1")
            .env("ROCKET_PORT", port.to_string())
            .env("ROCKET_INSTANCE", instance)
            .env("ROCKET_DATA_FILE", data_dir.path().join("services.json"))
            .env("ROCKET_MAX_REPLICAS", "1000")
            .env("ROCKET_SCALE_CONCURRENCY", PARALLEL_RUNS.to_string())
            .env("ROCKET_LOG_LEVEL", "normal")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        let spawned_at = Instant::now();
        let child = command.spawn().expect("the connector binary starts");
        Connector {
            child,
            port,
            spawned_at,
            owned_instances,
            log_path,
            _data_dir: data_dir,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Polls `GET /service` about every millisecond until it is answered;
    /// returns the time from spawning to that answer.
    pub fn wait_for_first_answer(&mut self) -> Duration {
        let request = request_bytes(self.port, "GET", "/service", None);
        loop {
            let answer = HttpConnection::open(self.port, STARTUP_DEADLINE)
                .and_then(|mut connection| connection.exchange(&request));
            if let Ok(answer) = answer {
                let elapsed = self.spawned_at.elapsed();
                assert_eq!(
                    answer.status,
                    200,
                    "GET /service answered {}",
                    answer.text()
                );
                return elapsed;
            }
            if let Ok(Some(exit)) = self.child.try_wait() {
                panic!(
                    "the connector exited ({exit}) before answering; its log ends:\n{}",
                    self.log_tail()
                );
            }
            assert!(
                self.spawned_at.elapsed() < STARTUP_DEADLINE,
                "the connector did not answer within {STARTUP_DEADLINE:?}; its log ends:\n{}",
                self.log_tail()
            );
            thread::sleep(Duration::from_millis(1));
        }
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log_path).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// One control request on a connection of its own, so that no keep-alive
    /// expiry between phases can break it. Panics if nothing answers.
    fn call(&self, method: &str, path: &str, body: Option<&Value>) -> HttpAnswer {
        let body = body.map(Value::to_string);
        let request = request_bytes(self.port, method, path, body.as_deref());
        HttpConnection::open(self.port, CONTROL_TIMEOUT)
            .and_then(|mut connection| connection.exchange(&request))
            .unwrap_or_else(|e| {
                panic!(
                    "{method} {path}: no answer: {e}; the connector's log ends:\n{}",
                    self.log_tail()
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
        let _ = self.child.kill();
        let _ = self.child.wait();
        for instance in &self.owned_instances {
            remove_containers_of(instance);
        }
    }
}
