//! The connector under soak: one process at a time on one port, its docker
//! calls through the proxy, its data file on the small tmpfs; SIGKILLed and
//! started again on the same port and data file. Requests to it wait while
//! it is down: a refused connection is not an answer.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::app::Reply;
use crate::support::connector::{ConnectorCommand, ConnectorProcess};

/// How long a request waits for a connector that refuses connections
/// before the soak calls that a failure (it is down for well under this).
const DOWN_LIMIT: Duration = Duration::from_secs(60);

/// How long one request may take: scales wait for their containers, and a
/// docker call meets its 3 s deadline.
const REQUEST_LIMIT: Duration = Duration::from_secs(90);

/// The settings the soak runs the connector with, over the launcher's.
pub fn settings(docker_host: &str, data_file: &Path) -> Vec<(String, String)> {
    [
        ("DOCKER_HOST", docker_host.to_owned()),
        ("ROCKET_DATA_FILE", data_file.display().to_string()),
        // A hung engine meets the deadline soon.
        ("ROCKET_DOCKER_TIMEOUT", "3".into()),
        // Rolls finish within the 5 s the convergence check allows.
        ("ROCKET_UPDATE_SETTLE", "0.5".into()),
        ("ROCKET_UPDATE_PARALLELISM", "3".into()),
        // The journal is folded often enough to fit the small tmpfs.
        ("ROCKET_JOURNAL_COMPACTION_BYTES", "65536".into()),
        // A small ring of events (bounded, not a leak) fills during the
        // warm-up, so the resources compared after it are not its growth.
        ("ROCKET_EVENT_RING", "64".into()),
        // `SOAK_LOG_LEVEL=debug` logs every docker call, to see why a
        // service converged late.
        (
            "ROCKET_LOG_LEVEL",
            std::env::var("SOAK_LOG_LEVEL").unwrap_or_else(|_| "normal".into()),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// What a request got.
pub enum Outcome {
    Answered(Reply),
    /// Sent, but no answer came (the connection broke or the request took
    /// too long): it may or may not have been carried out.
    Lost(String),
}

pub struct Connector {
    workdir: PathBuf,
    instance: String,
    settings: Vec<(String, String)>,
    port: u16,
    process: Mutex<Option<ConnectorProcess>>,
    starts: AtomicU32,
    client: reqwest::Client,
    logs: PathBuf,
}

impl Connector {
    /// Starts the first connector.
    pub fn start(
        workdir: &Path,
        instance: &str,
        settings: Vec<(String, String)>,
        logs: &Path,
    ) -> Result<Connector, String> {
        let process = ConnectorCommand::new(workdir, instance)
            .envs(settings.iter().cloned())
            .launch()?;
        let client = reqwest::Client::builder()
            // A new connection per request: a pooled one may belong to a
            // connector that was killed, and its error would look like a
            // request lost in flight.
            .pool_max_idle_per_host(0)
            .timeout(REQUEST_LIMIT)
            .build()
            .unwrap();
        Ok(Connector {
            workdir: workdir.to_owned(),
            instance: instance.to_owned(),
            settings,
            port: process.port(),
            process: Mutex::new(Some(process)),
            starts: AtomicU32::new(1),
            client,
            logs: logs.to_owned(),
        })
    }

    /// The live connector's pid, if one runs.
    pub fn pid(&self) -> Option<u32> {
        self.process
            .lock()
            .unwrap()
            .as_ref()
            .map(ConnectorProcess::pid)
    }

    /// SIGKILLs it (no shutdown code runs) and keeps its log.
    pub fn kill(&self) {
        if let Some(mut process) = self.process.lock().unwrap().take() {
            process.kill();
            self.keep_log(&process);
        }
    }

    fn keep_log(&self, process: &ConnectorProcess) {
        let n = self.starts.load(Ordering::SeqCst);
        let _ = std::fs::create_dir_all(&self.logs);
        let _ = std::fs::write(self.logs.join(format!("connector-{n}.log")), process.log());
    }

    /// Starts a connector again on the same port and data file.
    pub fn restart(&self) -> Result<(), String> {
        let mut last = String::new();
        // The port may be held a moment by the killed process's sockets.
        for _ in 0..20 {
            let launched = ConnectorCommand::new(&self.workdir, &self.instance)
                .envs(self.settings.iter().cloned())
                .env("ROCKET_PORT", self.port.to_string())
                .launch();
            match launched {
                Ok(process) => {
                    self.starts.fetch_add(1, Ordering::SeqCst);
                    *self.process.lock().unwrap() = Some(process);
                    return Ok(());
                }
                Err(log) => last = log,
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        Err(format!("the connector did not start again:\n{last}"))
    }

    /// The last lines the live connector logged.
    pub fn log_tail(&self, lines: usize) -> String {
        self.process
            .lock()
            .unwrap()
            .as_ref()
            .map_or_else(|| "(not running)".into(), |p| p.log_tail(lines))
    }

    /// The last `lines` lines the live connector logged about `service`,
    /// other than reads (which say nothing of why it acts or not).
    pub fn log_about(&self, service: &str, lines: usize) -> String {
        let Some(log) = self.process.lock().unwrap().as_ref().map(|p| p.log()) else {
            return "(not running)".into();
        };
        let (quoted, path) = (format!("'{service}'"), format!("/service/{service}"));
        let about: Vec<&str> = log
            .lines()
            .filter(|line| line.contains(&quoted) || line.contains(&path))
            .filter(|line| !line.contains(" GET ") && !line.contains("\"method\":\"GET\""))
            .collect();
        about[about.len().saturating_sub(lines)..]
            .iter()
            .map(|line| line.chars().take(240).collect::<String>())
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Stops it for good, keeping its log.
    pub fn stop(&self) {
        self.kill();
    }

    /// Sends `method path` with a JSON `body`, waiting while the connector
    /// refuses connections (it is being restarted).
    pub async fn send(&self, method: &str, path: &str, body: Option<&Value>) -> Outcome {
        let url = format!("http://127.0.0.1:{}{path}", self.port);
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let started = Instant::now();
        loop {
            let mut request = self.client.request(method.clone(), &url);
            if let Some(body) = body {
                request = request
                    .header("content-type", "application/json")
                    .body(body.to_string());
            }
            match request.send().await {
                Ok(response) => {
                    let status = response.status().as_u16();
                    let headers = response.headers().clone();
                    let bytes = match response.bytes().await {
                        Ok(bytes) => bytes,
                        Err(e) => return Outcome::Lost(format!("body cut short: {e}")),
                    };
                    let body = if bytes.is_empty() {
                        Value::Null
                    } else {
                        serde_json::from_slice(&bytes).unwrap_or_else(|_| {
                            // Not JSON: kept as text, which the checks refuse
                            // where JSON is due.
                            Value::String(format!("NOT JSON: {}", String::from_utf8_lossy(&bytes)))
                        })
                    };
                    return Outcome::Answered(Reply {
                        status,
                        headers,
                        body,
                    });
                }
                Err(e) if e.is_connect() && started.elapsed() < DOWN_LIMIT => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) if e.is_connect() => {
                    return Outcome::Lost(format!("refused for {DOWN_LIMIT:?}: {e}"));
                }
                Err(e) => return Outcome::Lost(format!("{e:?}")),
            }
        }
    }
}

impl Drop for Connector {
    fn drop(&mut self) {
        self.kill();
    }
}
