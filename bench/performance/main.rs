//! The performance benchmark of issue 4: drives the release `docker-connector`
//! binary and the real docker CLI on this host and compares the two.
//!
//! In one run it measures every target of the issue next to the raw docker
//! CLI doing the same work, over several rounds that alternate which side
//! goes first, because the machine is shared and noisy: only medians and
//! ratios taken in the same run mean anything.
//!
//! * startup: from spawning the binary to the first answer of `GET /service`;
//! * scale 0→20 and 20→0, against 20 `docker run -d` (8 in parallel) and one
//!   `docker rm -f` of the same 20 containers;
//! * status throughput and latency over 64 keep-alive connections and over
//!   one, against sequential `docker ps --filter label=...`;
//! * freshness: how soon a container removed or killed behind the
//!   connector's back shows in status, and whether the status right after a
//!   scale says what the scale answered;
//! * cost growth: the status latency of one service with 10 containers
//!   while the instance holds 10 and 500 containers (across 50 services),
//!   the 10 beside 490 containers of another instance so that the host
//!   carries the same load in both; a status lists its own service's
//!   containers, so the asked-for service is the same size in both;
//! * memory: the connector's resident set after all that load.
//!
//! ```sh
//! cargo bench --bench performance              # the full run, about 6 minutes
//! cargo bench --bench performance -- --quick   # a short smoke run for CI
//! ```
//!
//! It needs a Docker engine and a static busybox, from which the tests' image
//! is built (`tests/api/helpers.rs`). The machine description and a markdown
//! table go to stdout, progress to stderr, the connector's log to
//! `target/bench/connector.log`. It exits 1 if a target is missed; `--quick`
//! exits 0 unless an operation failed, and then panics. Its containers carry
//! their own instance labels and are removed when it ends, even on a panic.

#[path = "../../tests/api/helpers.rs"]
#[allow(dead_code)]
mod helpers;

use std::fmt::Write as _;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Barrier, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use docker_connector::docker::{LABEL_CONFIG_HASH, LABEL_INSTANCE, LABEL_SERVICE};
use serde_json::{json, Value};

use helpers::{docker, TEST_IMAGE};

/// The raw baseline's containers need some config hash to carry the same
/// labels as the connector's; its value does not matter.
const RAW_CONFIG_HASH: &str = "0123456789abcdef";

const SCALE_SERVICE: &str = "scale";
const STATUS_SERVICE: &str = "status";
const SCALE_REPLICAS: u64 = 20;
const STATUS_REPLICAS: u64 = 5;

/// The connector's own default `scale_concurrency`, so that the raw baseline
/// starts containers with the same parallelism as the connector.
const PARALLEL_RUNS: usize = 8;
const BUSY_CONNECTIONS: usize = 64;
const GROWTH_SERVICES: usize = 50;
/// How many of the growth services are asked for their status: the same
/// ones, of the same size, in both cases. A status lists its service's
/// containers, so its answer grows with them; what must stay flat is the
/// cost of the rest of the instance.
const GROWTH_PROBES: usize = 1;
/// Different services scale in parallel inside the connector; a few at a time
/// fills 500 containers faster without drowning a 2-core engine.
const GROWTH_SCALES_IN_FLIGHT: usize = 4;
const DELETES_IN_FLIGHT: usize = 4;

const STARTUP_DEADLINE: Duration = Duration::from_secs(20);
/// Scaling many containers on a loaded engine can take minutes.
const CONTROL_TIMEOUT: Duration = Duration::from_secs(300);
/// A status request slower than this counts as an error rather than a latency.
const STATUS_TIMEOUT: Duration = Duration::from_secs(60);
const FRESHNESS_GIVE_UP: Duration = Duration::from_secs(5);

// The issue's targets.
const STARTUP_LIMIT: f64 = 0.200;
const SCALE_RATIO_LIMIT: f64 = 1.25;
const THROUGHPUT_RATIO_MIN: f64 = 150.0;
const BUSY_P99_LIMIT: f64 = 0.010;
/// "Well under 1 ms", made concrete as half of it.
const IDLE_P50_LIMIT: f64 = 0.000_5;
const FRESHNESS_LIMIT: f64 = 1.0;
/// "Flat" cost growth: latency at 500 containers at most this times that at 10.
const FLAT_RATIO_LIMIT: f64 = 1.5;
const RSS_LIMIT_MIB: f64 = 20.0;

fn main() -> ExitCode {
    let plan = Plan::from_args();
    progress(format_args!(
        "docker-connector performance bench ({})",
        if plan.quick { "--quick" } else { "full run" }
    ));
    println!("{}", describe_machine());
    helpers::ensure_test_image();

    let log_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench");
    std::fs::create_dir_all(&log_dir).expect("target/bench can be created");
    let instance = format!("bench-{}", helpers::unique_instance());
    let raw_instance = format!("{instance}-raw");
    let ballast_instance = format!("{instance}-ballast");
    let mut connector = Connector::spawn(
        &instance,
        log_dir.join("connector.log"),
        vec![
            instance.clone(),
            raw_instance.clone(),
            ballast_instance.clone(),
        ],
    );
    connector.wait_for_first_answer();
    progress(format_args!(
        "connector pid {} on port {}, instance {instance}, log {}",
        connector.pid(),
        connector.port,
        connector.log_path.display()
    ));

    let startup = measure_startup(&plan, &log_dir);
    let scale = measure_scale(&plan, &connector, &raw_instance);
    let status = measure_status(&plan, &connector);
    let freshness = measure_freshness(&plan, &connector);
    let (growth, memory) = measure_growth(&plan, &connector, &ballast_instance);
    drop(connector);
    report_leftovers(&[&instance, &raw_instance, &ballast_instance]);

    let results = Results {
        startup,
        scale,
        status,
        freshness,
        growth,
        memory,
    };
    let table = build_table(&results);
    println!();
    table.print();
    println!();
    println!("{}", rounds_note(&plan));
    for problem in results.problems() {
        println!("problem seen: {problem}");
    }

    let failed_requests = results.failed_requests();
    if plan.quick {
        assert!(
            failed_requests == 0,
            "--quick: {failed_requests} status requests failed (errors or non-200 answers); see the problems above"
        );
        return ExitCode::SUCCESS;
    }
    if table.all_pass() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// How much of each measurement to do.
struct Plan {
    quick: bool,
    startup_rounds: usize,
    scale_rounds: usize,
    status_rounds: usize,
    ps_calls: usize,
    busy_duration: Duration,
    idle_duration: Duration,
    freshness_rounds: usize,
    growth_replicas: u64,
}

impl Plan {
    fn from_args() -> Plan {
        let mut quick = false;
        for arg in std::env::args().skip(1) {
            match arg.as_str() {
                "--quick" => quick = true,
                // cargo passes it to every bench that has no libtest harness.
                "--bench" => {}
                other => eprintln!("performance: ignoring argument {other:?}"),
            }
        }
        if quick {
            Plan {
                quick,
                startup_rounds: 2,
                scale_rounds: 2,
                status_rounds: 1,
                ps_calls: 5,
                busy_duration: Duration::from_secs(1),
                idle_duration: Duration::from_secs(1),
                freshness_rounds: 3,
                growth_replicas: 2,
            }
        } else {
            Plan {
                quick,
                startup_rounds: 5,
                scale_rounds: 5,
                status_rounds: 3,
                ps_calls: 20,
                busy_duration: Duration::from_secs(3),
                idle_duration: Duration::from_secs(2),
                freshness_rounds: 10,
                growth_replicas: 10,
            }
        }
    }
}

/// Prints a progress line to stderr, stamped with the time since the bench
/// started, so that someone watching a five-minute run sees it is alive.
fn progress(message: std::fmt::Arguments<'_>) {
    static START: OnceLock<Instant> = OnceLock::new();
    let since_start = START.get_or_init(Instant::now).elapsed();
    eprintln!("[{:>6.1} s] {message}", since_start.as_secs_f64());
}

// ---------------------------------------------------------------------------
// The machine

fn describe_machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu_model = cpuinfo
        .lines()
        .find(|line| line.starts_with("model name"))
        .and_then(|line| line.split_once(':'))
        .map_or("unknown CPU", |(_, model)| model.trim());
    let cpus = cpuinfo
        .lines()
        .filter(|line| line.starts_with("processor"))
        .count();
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let memory_gib = kib_field(&meminfo, "MemTotal:").map_or(f64::NAN, |kib| kib / 1024.0 / 1024.0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let docker_versions = docker(&[
        "version",
        "--format",
        "client {{.Client.Version}}, server {{.Server.Version}} (API {{.Server.APIVersion}})",
    ]);
    format!(
        "## docker-connector performance\n\n\
         machine: {cpu_model}, {cpus} CPUs, {memory_gib:.1} GiB memory, kernel {}\n\
         docker: {}",
        kernel.trim(),
        docker_versions.trim()
    )
}

/// A `Name:   1234 kB` field of a /proc file, in KiB.
fn kib_field(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(name))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
}

// ---------------------------------------------------------------------------
// HTTP: a minimal keep-alive client, so the load measures the connector
// rather than connection setup or a client library's overhead.

struct HttpAnswer {
    status: u16,
    body: Vec<u8>,
}

impl HttpAnswer {
    fn text(&self) -> String {
        format!("{} {}", self.status, String::from_utf8_lossy(&self.body))
    }

    fn running_resources(&self) -> Option<u64> {
        serde_json::from_slice::<Value>(&self.body)
            .ok()?
            .get("running_resources")?
            .as_u64()
    }
}

/// The bytes of one request. `Host` names the address, as the connector
/// refuses DNS names without a token.
fn request_bytes(port: u16, method: &str, path: &str, body: Option<&str>) -> Vec<u8> {
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n");
    if let Some(body) = body {
        let _ = write!(
            head,
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        );
    }
    head.push_str("\r\n");
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(body.unwrap_or_default().as_bytes());
    bytes
}

struct HttpConnection {
    reader: BufReader<TcpStream>,
    line: Vec<u8>,
}

impl HttpConnection {
    fn open(port: u16, timeout: Duration) -> io::Result<HttpConnection> {
        let stream = TcpStream::connect((Ipv4Addr::LOCALHOST, port))?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(timeout))?;
        Ok(HttpConnection {
            reader: BufReader::new(stream),
            line: Vec::new(),
        })
    }

    /// Sends one request and reads its whole answer, leaving the connection
    /// ready for the next.
    fn exchange(&mut self, request: &[u8]) -> io::Result<HttpAnswer> {
        self.reader.get_mut().write_all(request)?;
        let status = self.read_status_line()?;
        let length = self.read_headers()?;
        let mut body = vec![0; length];
        self.reader.read_exact(&mut body)?;
        Ok(HttpAnswer { status, body })
    }

    fn read_line(&mut self) -> io::Result<&[u8]> {
        self.line.clear();
        if self.reader.read_until(b'\n', &mut self.line)? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        Ok(self.line.trim_ascii_end())
    }

    fn read_status_line(&mut self) -> io::Result<u16> {
        let line = self.read_line()?;
        std::str::from_utf8(line)
            .ok()
            .and_then(|line| line.split(' ').nth(1))
            .and_then(|code| code.parse().ok())
            .ok_or_else(|| {
                invalid_answer(format!("status line {:?}", String::from_utf8_lossy(line)))
            })
    }

    /// Reads the header lines up to the blank one; returns the body's length.
    fn read_headers(&mut self) -> io::Result<usize> {
        let mut length = 0;
        loop {
            let line = self.read_line()?;
            if line.is_empty() {
                return Ok(length);
            }
            let Some(colon) = line.iter().position(|&byte| byte == b':') else {
                return Err(invalid_answer(format!(
                    "header {:?}",
                    String::from_utf8_lossy(line)
                )));
            };
            let (name, value) = (&line[..colon], &line[colon + 1..]);
            if name.eq_ignore_ascii_case(b"content-length") {
                length = std::str::from_utf8(value)
                    .ok()
                    .and_then(|value| value.trim().parse().ok())
                    .ok_or_else(|| invalid_answer("Content-Length".to_owned()))?;
            } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
                // The connector's answers are small JSON with a known size.
                return Err(invalid_answer("unexpected Transfer-Encoding".to_owned()));
            }
        }
    }
}

fn invalid_answer(what: String) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("malformed answer: {what}"),
    )
}

fn free_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("a free port on 127.0.0.1");
    listener.local_addr().expect("a bound address").port()
}

// ---------------------------------------------------------------------------
// The connector process

/// A connector process. Dropping it kills the process, then removes every
/// container of `owned_instances`, so that neither a finished run nor a
/// panic leaves anything running; no other container is ever touched.
struct Connector {
    child: Child,
    port: u16,
    spawned_at: Instant,
    owned_instances: Vec<String>,
    log_path: PathBuf,
    _data_dir: tempfile::TempDir,
}

impl Connector {
    /// Starts the binary with a fresh data file, `instance` and a free port;
    /// its stderr goes to `log_path`, never into this process's memory.
    fn spawn(instance: &str, log_path: PathBuf, owned_instances: Vec<String>) -> Connector {
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

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Polls `GET /service` about every millisecond until it is answered;
    /// returns the time from spawning to that answer.
    fn wait_for_first_answer(&mut self) -> Duration {
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

    fn create_service(&self, definition: &Value) {
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
    fn scale(&self, service: &str, number: u64) -> u64 {
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

    fn delete_service(&self, service: &str) {
        let path = format!("/service/{service}");
        let answer = self.call("DELETE", &path, None);
        assert_eq!(answer.status, 204, "DELETE {path}: {}", answer.text());
    }

    fn instance(&self) -> &str {
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

fn instance_filter(instance: &str) -> String {
    format!("label={LABEL_INSTANCE}={instance}")
}

/// Ids of every container (any state) labelled with `instance`, or `None`
/// if docker could not be asked. Never panics: it runs during unwinding.
fn containers_of(instance: &str) -> Option<Vec<String>> {
    let listed = Command::new("docker")
        .args([
            "ps",
            "-aq",
            "--no-trunc",
            "--filter",
            &instance_filter(instance),
        ])
        .output()
        .ok()
        .filter(|out| out.status.success())?;
    let ids = String::from_utf8_lossy(&listed.stdout);
    Some(ids.split_whitespace().map(str::to_owned).collect())
}

fn remove_containers_of(instance: &str) {
    let Some(ids) = containers_of(instance) else {
        eprintln!("performance: could not list the containers of instance {instance}");
        return;
    };
    if ids.is_empty() {
        return;
    }
    let removed = Command::new("docker")
        .args(["rm", "-f"])
        .args(&ids)
        .stdout(Stdio::null())
        .status();
    if !matches!(removed, Ok(status) if status.success()) {
        eprintln!("performance: could not remove every container of instance {instance}: {ids:?}");
    }
}

fn report_leftovers(instances: &[&str]) {
    for instance in instances {
        let left = containers_of(instance)
            .map_or_else(|| "unknown".to_owned(), |ids| ids.len().to_string());
        progress(format_args!(
            "containers left with {LABEL_INSTANCE}={instance}: {left}"
        ));
    }
}

/// Runs `work` on every item, at most `workers` at a time, each worker
/// taking the next item off a shared counter; a panic in one is re-raised.
fn for_each_in_parallel<T: Sync>(items: &[T], workers: usize, work: impl Fn(&T) + Sync) {
    let next = AtomicUsize::new(0);
    thread::scope(|scope| {
        for _ in 0..workers.min(items.len()) {
            scope.spawn(|| {
                while let Some(item) = items.get(next.fetch_add(1, Ordering::Relaxed)) {
                    work(item);
                }
            });
        }
    });
}

// ---------------------------------------------------------------------------
// Startup

fn measure_startup(plan: &Plan, log_dir: &Path) -> Vec<f64> {
    progress(format_args!(
        "startup: {}, spawn to first answer of GET /service",
        rounds(plan.startup_rounds)
    ));
    (0..plan.startup_rounds)
        .map(|round| {
            let instance = format!("bench-startup-{}", helpers::unique_instance());
            let log_path = log_dir.join(format!("startup-{round}.log"));
            let mut connector = Connector::spawn(&instance, log_path, vec![instance.clone()]);
            let startup = connector.wait_for_first_answer().as_secs_f64();
            progress(format_args!(
                "startup round {}: {}",
                round + 1,
                format_seconds(startup)
            ));
            startup
        })
        .collect()
}

// ---------------------------------------------------------------------------
// Scale

struct UpDown {
    up: f64,
    down: f64,
}

#[derive(Default)]
struct ScaleFigures {
    connector: Vec<UpDown>,
    raw: Vec<UpDown>,
}

fn measure_scale(plan: &Plan, connector: &Connector, raw_instance: &str) -> ScaleFigures {
    progress(format_args!(
        "scale: {} of 0 → {SCALE_REPLICAS} → 0, connector and raw docker CLI alternating first",
        rounds(plan.scale_rounds)
    ));
    connector.create_service(&json!({
        "name": SCALE_SERVICE,
        "image": TEST_IMAGE,
        "command": "sleep 86400",
        "environment": {"A": "1", "B": "2"},
    }));
    let mut figures = ScaleFigures::default();
    for round in 0..plan.scale_rounds {
        let connector_first = round % 2 == 0;
        let (ours, raw) = if connector_first {
            let ours = scale_through_connector(connector);
            (
                ours,
                scale_with_raw_cli(connector.instance(), raw_instance, round),
            )
        } else {
            let raw = scale_with_raw_cli(connector.instance(), raw_instance, round);
            (scale_through_connector(connector), raw)
        };
        progress(format_args!(
            "scale round {}/{} ({} first): connector up {} down {}; raw up {} down {}",
            round + 1,
            plan.scale_rounds,
            if connector_first { "connector" } else { "raw" },
            format_seconds(ours.up),
            format_seconds(ours.down),
            format_seconds(raw.up),
            format_seconds(raw.down)
        ));
        figures.connector.push(ours);
        figures.raw.push(raw);
    }
    connector.delete_service(SCALE_SERVICE);
    figures
}

fn scale_through_connector(connector: &Connector) -> UpDown {
    let started = Instant::now();
    connector.scale(SCALE_SERVICE, SCALE_REPLICAS);
    let up = started.elapsed().as_secs_f64();
    let started = Instant::now();
    connector.scale(SCALE_SERVICE, 0);
    let down = started.elapsed().as_secs_f64();
    UpDown { up, down }
}

/// What the connector does for a scale, done by hand: the same image,
/// command, labels and environment, `PARALLEL_RUNS` starts in flight, then
/// one `docker rm -f`.
fn scale_with_raw_cli(instance: &str, raw_instance: &str, round: usize) -> UpDown {
    let names: Vec<String> = (0..SCALE_REPLICAS)
        .map(|i| format!("{instance}-raw-{round}-{i}"))
        .collect();
    let started = Instant::now();
    let ids = run_raw_containers(&names, raw_instance, "raw");
    let up = started.elapsed().as_secs_f64();
    let started = Instant::now();
    remove_raw_containers(&ids);
    let down = started.elapsed().as_secs_f64();
    UpDown { up, down }
}

/// `docker run -d` of one container per name, labelled as the connector
/// labels its own but with `instance`, `PARALLEL_RUNS` at a time; their ids.
fn run_raw_containers(names: &[String], instance: &str, service: &str) -> Vec<String> {
    let instance_label = format!("{LABEL_INSTANCE}={instance}");
    let service_label = format!("{LABEL_SERVICE}={service}");
    let hash_label = format!("{LABEL_CONFIG_HASH}={RAW_CONFIG_HASH}");
    let ids = Mutex::new(Vec::new());
    for_each_in_parallel(names, PARALLEL_RUNS, |name| {
        let id = docker(&[
            "run",
            "-d",
            "--name",
            name,
            "--label",
            &instance_label,
            "--label",
            &service_label,
            "--label",
            &hash_label,
            "-e",
            "A=1",
            "-e",
            "B=2",
            "--",
            TEST_IMAGE,
            "sleep",
            "86400",
        ]);
        ids.lock().unwrap().push(id.trim().to_owned());
    });
    ids.into_inner().unwrap()
}

/// One `docker rm -f` of all `ids`.
fn remove_raw_containers(ids: &[String]) {
    let mut remove = vec!["rm", "-f"];
    remove.extend(ids.iter().map(String::as_str));
    docker(&remove);
}

// ---------------------------------------------------------------------------
// Status load

/// One status path to ask and the count it must answer.
struct StatusTarget {
    path: String,
    request: Vec<u8>,
    expected: u64,
}

impl StatusTarget {
    fn new(port: u16, service: &str, expected: u64) -> StatusTarget {
        let path = format!("/service/{service}/status");
        let request = request_bytes(port, "GET", &path, None);
        StatusTarget {
            path,
            request,
            expected,
        }
    }
}

/// What one round of load saw. Latencies are in seconds; NaN when nothing
/// was answered, so that such a round can never pass a target.
struct LoadRound {
    p50: f64,
    p99: f64,
    throughput: f64,
    answered: usize,
    errors: usize,
    mismatches: usize,
    first_problem: Option<String>,
}

#[derive(Default)]
struct ConnectionOutcome {
    latencies: Vec<Duration>,
    errors: usize,
    mismatches: usize,
    first_problem: Option<String>,
}

impl ConnectionOutcome {
    fn note_problem(&mut self, problem: String) {
        self.first_problem.get_or_insert(problem);
    }
}

/// `connections` keep-alive connections asking the `targets` round-robin,
/// back to back, for `duration`; every answer is checked.
fn hammer(
    port: u16,
    targets: &[StatusTarget],
    connections: usize,
    duration: Duration,
) -> LoadRound {
    let start_line = Barrier::new(connections + 1);
    let (outcomes, elapsed) = thread::scope(|scope| {
        let workers: Vec<_> = (0..connections)
            .map(|offset| {
                let start_line = &start_line;
                scope.spawn(move || drive_connection(port, targets, offset, start_line, duration))
            })
            .collect();
        start_line.wait();
        let started = Instant::now();
        let outcomes: Vec<ConnectionOutcome> = workers
            .into_iter()
            .map(|worker| worker.join().expect("a load thread panicked"))
            .collect();
        (outcomes, started.elapsed())
    });
    summarize_load(outcomes, elapsed)
}

fn drive_connection(
    port: u16,
    targets: &[StatusTarget],
    offset: usize,
    start_line: &Barrier,
    duration: Duration,
) -> ConnectionOutcome {
    // Connected before the start, so the load measures requests, not handshakes.
    let mut connection = HttpConnection::open(port, STATUS_TIMEOUT).ok();
    start_line.wait();
    let deadline = Instant::now() + duration;
    let mut outcome = ConnectionOutcome::default();
    let mut next = offset % targets.len();
    while Instant::now() < deadline {
        let target = &targets[next];
        next = (next + 1) % targets.len();
        let sent = Instant::now();
        let answer = exchange_on(&mut connection, port, &target.request);
        let latency = sent.elapsed();
        match answer {
            Ok(answer) => {
                outcome.latencies.push(latency);
                check_status_answer(&mut outcome, target, &answer);
            }
            Err(e) => {
                outcome.errors += 1;
                outcome.note_problem(format!("GET {}: {e}", target.path));
                // Do not spin on a connector that refuses connections.
                thread::sleep(Duration::from_millis(10));
            }
        }
    }
    outcome
}

/// Sends on the kept connection, opening a new one if the last failed.
fn exchange_on(
    connection: &mut Option<HttpConnection>,
    port: u16,
    request: &[u8],
) -> io::Result<HttpAnswer> {
    let open = match connection {
        Some(open) => open,
        None => connection.insert(HttpConnection::open(port, STATUS_TIMEOUT)?),
    };
    let answer = open.exchange(request);
    if answer.is_err() {
        *connection = None;
    }
    answer
}

fn check_status_answer(
    outcome: &mut ConnectionOutcome,
    target: &StatusTarget,
    answer: &HttpAnswer,
) {
    if answer.status != 200 {
        outcome.errors += 1;
        outcome.note_problem(format!("GET {} answered {}", target.path, answer.text()));
    } else if answer.running_resources() != Some(target.expected) {
        outcome.mismatches += 1;
        outcome.note_problem(format!(
            "GET {} answered {} where {} run",
            target.path,
            answer.text(),
            target.expected
        ));
    }
}

fn summarize_load(outcomes: Vec<ConnectionOutcome>, elapsed: Duration) -> LoadRound {
    let mut latencies = Vec::new();
    let (mut errors, mut mismatches, mut first_problem) = (0, 0, None);
    for outcome in outcomes {
        latencies.extend(outcome.latencies);
        errors += outcome.errors;
        mismatches += outcome.mismatches;
        first_problem = first_problem.or(outcome.first_problem);
    }
    latencies.sort_unstable();
    LoadRound {
        p50: percentile(&latencies, 0.50),
        p99: percentile(&latencies, 0.99),
        throughput: latencies.len() as f64 / elapsed.as_secs_f64(),
        answered: latencies.len(),
        errors,
        mismatches,
        first_problem,
    }
}

/// The nearest-rank percentile of sorted latencies, in seconds.
fn percentile(sorted: &[Duration], fraction: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (fraction * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1].as_secs_f64()
}

fn describe_load(label: &str, round: &LoadRound) -> String {
    format!(
        "{label}: {}, p50 {}, p99 {}, {} answers, {} errors, {} mismatches",
        format_rate(round.throughput),
        format_seconds(round.p50),
        format_seconds(round.p99),
        round.answered,
        round.errors,
        round.mismatches
    )
}

struct StatusFigures {
    /// Per round, the median duration of one `docker ps`.
    ps_seconds: Vec<f64>,
    busy: Vec<LoadRound>,
    idle: Vec<LoadRound>,
}

fn measure_status(plan: &Plan, connector: &Connector) -> StatusFigures {
    progress(format_args!(
        "status: {} of {} sequential docker ps, {BUSY_CONNECTIONS} connections for {:?}, 1 connection for {:?}",
        rounds(plan.status_rounds),
        plan.ps_calls,
        plan.busy_duration,
        plan.idle_duration
    ));
    connector.create_service(&json!({"name": STATUS_SERVICE, "image": TEST_IMAGE}));
    connector.scale(STATUS_SERVICE, STATUS_REPLICAS);
    let targets = [StatusTarget::new(
        connector.port,
        STATUS_SERVICE,
        STATUS_REPLICAS,
    )];
    let mut figures = StatusFigures {
        ps_seconds: Vec::new(),
        busy: Vec::new(),
        idle: Vec::new(),
    };
    for round in 0..plan.status_rounds {
        let ps_first = round % 2 == 1;
        let ps_before =
            ps_first.then(|| time_docker_ps(connector.instance(), STATUS_SERVICE, plan.ps_calls));
        let busy = hammer(
            connector.port,
            &targets,
            BUSY_CONNECTIONS,
            plan.busy_duration,
        );
        let idle = hammer(connector.port, &targets, 1, plan.idle_duration);
        let ps = ps_before
            .unwrap_or_else(|| time_docker_ps(connector.instance(), STATUS_SERVICE, plan.ps_calls));
        progress(format_args!(
            "status round {}/{}: docker ps median {} ({} sequential)",
            round + 1,
            plan.status_rounds,
            format_seconds(ps),
            format_rate(1.0 / ps)
        ));
        progress(format_args!("  {}", describe_load("64 connections", &busy)));
        progress(format_args!("  {}", describe_load("1 connection", &idle)));
        figures.ps_seconds.push(ps);
        figures.busy.push(busy);
        figures.idle.push(idle);
    }
    figures
}

/// The median duration of `calls` sequential `docker ps` asking what the
/// connector's status answers: the running containers of one service.
fn time_docker_ps(instance: &str, service: &str, calls: usize) -> f64 {
    let instance_filter = instance_filter(instance);
    let service_filter = format!("label={LABEL_SERVICE}={service}");
    let durations = (0..calls).map(|_| {
        let started = Instant::now();
        docker(&[
            "ps",
            "-q",
            "--no-trunc",
            "--filter",
            &instance_filter,
            "--filter",
            &service_filter,
        ]);
        started.elapsed().as_secs_f64()
    });
    median(durations.collect())
}

// ---------------------------------------------------------------------------
// Freshness

struct FreshnessFigures {
    /// Seconds from the external removal to the first status showing it;
    /// `None` where it never showed within `FRESHNESS_GIVE_UP`.
    delays: Vec<Option<f64>>,
    scale_status_mismatches: usize,
}

/// Status polls on one kept connection, reconnecting if the connector
/// closed it while idle.
struct StatusPoller {
    port: u16,
    target: StatusTarget,
    connection: Option<HttpConnection>,
}

impl StatusPoller {
    fn new(port: u16, service: &str) -> StatusPoller {
        StatusPoller {
            port,
            // The count is checked by the caller, not against the target.
            target: StatusTarget::new(port, service, 0),
            connection: None,
        }
    }

    /// The running count; panics on anything but a 200 with a count.
    fn running(&mut self) -> u64 {
        let answer = exchange_on(&mut self.connection, self.port, &self.target.request)
            .or_else(|_| exchange_on(&mut self.connection, self.port, &self.target.request))
            .unwrap_or_else(|e| panic!("GET {}: {e}", self.target.path));
        assert_eq!(
            answer.status,
            200,
            "GET {}: {}",
            self.target.path,
            answer.text()
        );
        answer
            .running_resources()
            .unwrap_or_else(|| panic!("GET {}: {}", self.target.path, answer.text()))
    }

    /// Polls back to back until status says `expected`; returns the seconds
    /// since `since`, or `None` after `FRESHNESS_GIVE_UP`.
    fn wait_for(&mut self, expected: u64, since: Instant) -> Option<f64> {
        while since.elapsed() < FRESHNESS_GIVE_UP {
            if self.running() == expected {
                return Some(since.elapsed().as_secs_f64());
            }
        }
        None
    }
}

fn measure_freshness(plan: &Plan, connector: &Connector) -> FreshnessFigures {
    progress(format_args!(
        "freshness: {} containers of {STATUS_REPLICAS} removed behind the connector's back (docker rm -f and docker kill alternating)",
        plan.freshness_rounds
    ));
    let mut figures = FreshnessFigures {
        delays: Vec::new(),
        scale_status_mismatches: 0,
    };
    let instance_filter = instance_filter(connector.instance());
    let service_filter = format!("label={LABEL_SERVICE}={STATUS_SERVICE}");
    for round in 0..plan.freshness_rounds {
        let running = docker(&[
            "ps",
            "-q",
            "--no-trunc",
            "--filter",
            &instance_filter,
            "--filter",
            &service_filter,
        ]);
        let running: Vec<&str> = running.lines().collect();
        assert!(
            !running.is_empty(),
            "no running container of {STATUS_SERVICE} to remove"
        );
        let victim = running[round % running.len()];
        let mut poller = StatusPoller::new(connector.port, STATUS_SERVICE);
        let before = poller.running();
        assert_eq!(
            before, STATUS_REPLICAS,
            "status before removing a container"
        );

        let how = if round % 2 == 0 {
            ["rm", "-f"].as_slice()
        } else {
            ["kill"].as_slice()
        };
        let mut removal = how.to_vec();
        removal.push(victim);
        docker(&removal);
        let removed_at = Instant::now();
        let delay = poller.wait_for(STATUS_REPLICAS - 1, removed_at);

        let answered = connector.scale(STATUS_SERVICE, STATUS_REPLICAS);
        let status_after = poller.running();
        let agrees = status_after == answered;
        if !agrees {
            figures.scale_status_mismatches += 1;
        }
        progress(format_args!(
            "freshness round {}/{} (docker {}): status showed it after {}; scale answered {answered}, next status {status_after}{}",
            round + 1,
            plan.freshness_rounds,
            how.join(" "),
            delay.map_or_else(|| format!("never ({FRESHNESS_GIVE_UP:?})"), format_seconds),
            if agrees { "" } else { " MISMATCH" }
        ));
        figures.delays.push(delay);
    }
    connector.delete_service(STATUS_SERVICE);
    figures
}

// ---------------------------------------------------------------------------
// Cost growth and memory

struct SizeFigures {
    containers: u64,
    busy: Vec<LoadRound>,
    idle: Vec<LoadRound>,
}

struct GrowthFigures {
    small: SizeFigures,
    large: SizeFigures,
}

struct Memory {
    rss_mib: f64,
    peak_mib: f64,
}

/// Status latency with few and with many containers in the connector's
/// index. Idle containers still cost the host (each has a containerd shim
/// that wakes up now and then), which shows in tail latencies whatever the
/// connector does. So the small case runs beside ballast: containers of
/// another instance, as many as the large case adds, which the connector
/// never sees. Both cases then carry the same host load, and only the index
/// differs.
fn measure_growth(
    plan: &Plan,
    connector: &Connector,
    ballast_instance: &str,
) -> (GrowthFigures, Memory) {
    let services: Vec<String> = (0..GROWTH_SERVICES).map(|i| format!("g{i:02}")).collect();
    progress(format_args!(
        "cost growth: creating {GROWTH_SERVICES} services"
    ));
    for service in &services {
        connector.create_service(&json!({"name": service, "image": TEST_IMAGE}));
    }

    let small_counts: Vec<u64> = (0..GROWTH_SERVICES)
        .map(|i| {
            if i < GROWTH_PROBES {
                plan.growth_replicas
            } else {
                0
            }
        })
        .collect();
    let large_counts = vec![plan.growth_replicas; GROWTH_SERVICES];
    scale_services(connector, &services, &small_counts);
    let ballast_size = large_counts.iter().sum::<u64>() - small_counts.iter().sum::<u64>();
    let ballast_names: Vec<String> = (0..ballast_size)
        .map(|i| format!("{ballast_instance}-{i}"))
        .collect();
    progress(format_args!(
        "cost growth: starting {ballast_size} ballast containers of instance {ballast_instance}, \
         {PARALLEL_RUNS} in parallel"
    ));
    let ballast = run_raw_containers(&ballast_names, ballast_instance, "ballast");
    let small = measure_size(plan, connector, &services, &small_counts);
    assert_eq!(small_counts[..GROWTH_PROBES], large_counts[..GROWTH_PROBES]);
    progress(format_args!("cost growth: removing the ballast"));
    remove_raw_containers(&ballast);

    scale_services(connector, &services, &large_counts);
    let large = measure_size(plan, connector, &services, &large_counts);

    let memory = read_memory(connector.pid());
    progress(format_args!(
        "connector memory after the load: VmRSS {:.1} MiB, VmHWM {:.1} MiB",
        memory.rss_mib, memory.peak_mib
    ));
    progress(format_args!(
        "cost growth: deleting the {GROWTH_SERVICES} services, {DELETES_IN_FLIGHT} at a time"
    ));
    for_each_in_parallel(&services, DELETES_IN_FLIGHT, |service| {
        connector.delete_service(service)
    });
    (GrowthFigures { small, large }, memory)
}

/// Scales each service with a nonzero count to it, a few services at a time.
fn scale_services(connector: &Connector, services: &[String], counts: &[u64]) {
    let work: Vec<(&String, u64)> = services
        .iter()
        .zip(counts.iter().copied())
        .filter(|&(_, count)| count > 0)
        .collect();
    let total: u64 = counts.iter().sum();
    progress(format_args!(
        "cost growth: scaling {} services to {total} containers, {GROWTH_SCALES_IN_FLIGHT} scales in flight",
        work.len()
    ));
    let started = Instant::now();
    for_each_in_parallel(&work, GROWTH_SCALES_IN_FLIGHT, |&(service, count)| {
        connector.scale(service, count);
    });
    progress(format_args!(
        "cost growth: {total} containers running after {}",
        format_seconds(started.elapsed().as_secs_f64())
    ));
}

/// The status load of `measure_status`, spread round-robin over the status
/// paths of the first [`GROWTH_PROBES`] services.
fn measure_size(
    plan: &Plan,
    connector: &Connector,
    services: &[String],
    counts: &[u64],
) -> SizeFigures {
    let targets: Vec<StatusTarget> = services
        .iter()
        .zip(counts)
        .take(GROWTH_PROBES)
        .map(|(service, &count)| StatusTarget::new(connector.port, service, count))
        .collect();
    let containers = counts.iter().sum();
    let mut figures = SizeFigures {
        containers,
        busy: Vec::new(),
        idle: Vec::new(),
    };
    for round in 0..plan.status_rounds {
        let idle_first = round % 2 == 1;
        let idle_before =
            idle_first.then(|| hammer(connector.port, &targets, 1, plan.idle_duration));
        let busy = hammer(
            connector.port,
            &targets,
            BUSY_CONNECTIONS,
            plan.busy_duration,
        );
        let idle =
            idle_before.unwrap_or_else(|| hammer(connector.port, &targets, 1, plan.idle_duration));
        progress(format_args!(
            "cost growth, {containers} containers, round {}/{}",
            round + 1,
            plan.status_rounds
        ));
        progress(format_args!("  {}", describe_load("64 connections", &busy)));
        progress(format_args!("  {}", describe_load("1 connection", &idle)));
        figures.busy.push(busy);
        figures.idle.push(idle);
    }
    figures
}

fn read_memory(pid: u32) -> Memory {
    let path = format!("/proc/{pid}/status");
    let status =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"));
    let mib = |field: &str| {
        kib_field(&status, field).unwrap_or_else(|| panic!("no {field} in {path}")) / 1024.0
    };
    Memory {
        rss_mib: mib("VmRSS:"),
        peak_mib: mib("VmHWM:"),
    }
}

// ---------------------------------------------------------------------------
// Results

struct Results {
    startup: Vec<f64>,
    scale: ScaleFigures,
    status: StatusFigures,
    freshness: FreshnessFigures,
    growth: GrowthFigures,
    memory: Memory,
}

impl Results {
    fn load_rounds(&self) -> impl Iterator<Item = &LoadRound> {
        let growth = &self.growth;
        self.status
            .busy
            .iter()
            .chain(&self.status.idle)
            .chain(&growth.small.busy)
            .chain(&growth.small.idle)
            .chain(&growth.large.busy)
            .chain(&growth.large.idle)
    }

    /// Status requests that got no answer or an answer other than 200.
    fn failed_requests(&self) -> usize {
        self.load_rounds().map(|round| round.errors).sum()
    }

    fn problems(&self) -> Vec<&str> {
        self.load_rounds()
            .filter_map(|round| round.first_problem.as_deref())
            .collect()
    }
}

/// Medians across the rounds of one load, with the wrong answers summed.
struct LoadMedians {
    p50: f64,
    p99: f64,
    throughput: f64,
    answered: usize,
    errors: usize,
    mismatches: usize,
}

impl LoadMedians {
    fn of(rounds: &[LoadRound]) -> LoadMedians {
        LoadMedians {
            p50: median(rounds.iter().map(|r| r.p50).collect()),
            p99: median(rounds.iter().map(|r| r.p99).collect()),
            throughput: median(rounds.iter().map(|r| r.throughput).collect()),
            answered: rounds.iter().map(|r| r.answered).sum(),
            errors: rounds.iter().map(|r| r.errors).sum(),
            mismatches: rounds.iter().map(|r| r.mismatches).sum(),
        }
    }

    fn all_right(&self) -> bool {
        self.errors == 0 && self.mismatches == 0
    }
}

/// The median; NaN for no values, which fails every target it is held to.
fn median(mut values: Vec<f64>) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(f64::total_cmp);
    let middle = values.len() / 2;
    if values.len() % 2 == 1 {
        values[middle]
    } else {
        (values[middle - 1] + values[middle]) / 2.0
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Verdict {
    Pass,
    Miss,
    Info,
}

impl Verdict {
    fn of(met: bool) -> Verdict {
        if met {
            Verdict::Pass
        } else {
            Verdict::Miss
        }
    }

    fn label(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Miss => "MISS",
            Verdict::Info => "info",
        }
    }
}

struct Row {
    what: String,
    connector: String,
    raw: String,
    ratio: String,
    target: String,
    verdict: Verdict,
}

impl Row {
    fn new(what: &str, connector: String, target: &str, verdict: Verdict) -> Row {
        Row {
            what: what.to_owned(),
            connector,
            raw: "–".to_owned(),
            ratio: "–".to_owned(),
            target: target.to_owned(),
            verdict,
        }
    }

    fn against(mut self, raw: String, ratio: f64) -> Row {
        self.raw = raw;
        self.ratio = format_ratio(ratio);
        self
    }
}

#[derive(Default)]
struct Table {
    rows: Vec<Row>,
}

impl Table {
    fn add(&mut self, row: Row) {
        self.rows.push(row);
    }

    fn all_pass(&self) -> bool {
        self.rows.iter().all(|row| row.verdict != Verdict::Miss)
    }

    fn print(&self) {
        println!("| what | docker-connector | raw docker CLI | ratio | target | |");
        println!("|---|---|---|---|---|---|");
        for row in &self.rows {
            println!(
                "| {} | {} | {} | {} | {} | {} |",
                row.what,
                row.connector,
                row.raw,
                row.ratio,
                row.target,
                row.verdict.label()
            );
        }
    }
}

fn build_table(results: &Results) -> Table {
    let mut table = Table::default();
    let startup = median(results.startup.clone());
    table.add(Row::new(
        "startup to first answer",
        format_seconds(startup),
        "≤ 200 ms",
        Verdict::of(startup <= STARTUP_LIMIT),
    ));
    add_scale_rows(&mut table, &results.scale);
    add_status_rows(&mut table, &results.status);
    add_freshness_rows(&mut table, &results.freshness);
    add_growth_rows(&mut table, &results.growth);
    let memory = &results.memory;
    table.add(Row::new(
        "memory: RSS after the load (peak)",
        format!("{:.1} MiB ({:.1} MiB)", memory.rss_mib, memory.peak_mib),
        "≤ 20 MiB",
        Verdict::of(memory.rss_mib <= RSS_LIMIT_MIB),
    ));
    table
}

fn add_scale_rows(table: &mut Table, scale: &ScaleFigures) {
    let up = |times: &[UpDown]| median(times.iter().map(|t| t.up).collect());
    let down = |times: &[UpDown]| median(times.iter().map(|t| t.down).collect());
    table.add(scale_row(
        "scale 0→20",
        up(&scale.connector),
        up(&scale.raw),
        "20 × docker run, 8 parallel",
    ));
    table.add(scale_row(
        "scale 20→0",
        down(&scale.connector),
        down(&scale.raw),
        "one docker rm -f",
    ));
}

fn scale_row(what: &str, ours: f64, raw: f64, raw_did: &str) -> Row {
    let ratio = ours / raw;
    Row::new(
        what,
        format_seconds(ours),
        "≤ 1.25 × raw",
        Verdict::of(ratio <= SCALE_RATIO_LIMIT),
    )
    .against(format!("{} ({raw_did})", format_seconds(raw)), ratio)
}

fn add_status_rows(table: &mut Table, status: &StatusFigures) {
    let busy = LoadMedians::of(&status.busy);
    let idle = LoadMedians::of(&status.idle);
    let ps_seconds = median(status.ps_seconds.clone());
    let ps_rate = 1.0 / ps_seconds;
    let throughput_ratio = busy.throughput / ps_rate;
    table.add(
        Row::new(
            "status throughput, 64 connections",
            format_rate(busy.throughput),
            "≥ 150 × raw",
            Verdict::of(busy.all_right() && throughput_ratio >= THROUGHPUT_RATIO_MIN),
        )
        .against(
            format!("{} (sequential docker ps)", format_rate(ps_rate)),
            throughput_ratio,
        ),
    );
    table.add(Row::new(
        "status p99, 64 connections",
        format_seconds(busy.p99),
        "≤ 10 ms",
        Verdict::of(busy.all_right() && busy.p99 <= BUSY_P99_LIMIT),
    ));
    table.add(
        Row::new(
            "status p50, 1 connection",
            format_seconds(idle.p50),
            "≤ 0.5 ms (well under 1 ms)",
            Verdict::of(idle.all_right() && idle.p50 <= IDLE_P50_LIMIT),
        )
        .against(
            format!("{} (one docker ps)", format_seconds(ps_seconds)),
            idle.p50 / ps_seconds,
        ),
    );
    table.add(Row::new(
        "status p99, 1 connection",
        format_seconds(idle.p99),
        "–",
        Verdict::Info,
    ));
    table.add(wrong_answers_row("status: wrong answers", &[&busy, &idle]));
}

fn wrong_answers_row(what: &str, loads: &[&LoadMedians]) -> Row {
    let answered: usize = loads.iter().map(|load| load.answered).sum();
    let errors: usize = loads.iter().map(|load| load.errors).sum();
    let mismatches: usize = loads.iter().map(|load| load.mismatches).sum();
    Row::new(
        what,
        format!("{errors} errors, {mismatches} count mismatches in {answered} answers"),
        "none",
        Verdict::of(errors == 0 && mismatches == 0),
    )
}

fn add_freshness_rows(table: &mut Table, freshness: &FreshnessFigures) {
    let seen: Vec<f64> = freshness.delays.iter().flatten().copied().collect();
    let never = freshness.delays.len() - seen.len();
    let slowest = seen.iter().copied().fold(f64::NAN, f64::max);
    let never_note = if never == 0 {
        String::new()
    } else {
        format!(", {never} never seen within {FRESHNESS_GIVE_UP:?}")
    };
    table.add(Row::new(
        "freshness: removed or killed behind its back → status (median / max)",
        format!(
            "{} / {}{never_note}",
            format_seconds(median(seen)),
            format_seconds(slowest)
        ),
        "max ≤ 1 s",
        Verdict::of(never == 0 && slowest <= FRESHNESS_LIMIT),
    ));
    let mismatches = freshness.scale_status_mismatches;
    table.add(Row::new(
        "freshness: scale's answer = next status",
        format!(
            "{mismatches} mismatches in {} scales",
            freshness.delays.len()
        ),
        "0 mismatches",
        Verdict::of(mismatches == 0),
    ));
}

fn add_growth_rows(table: &mut Table, growth: &GrowthFigures) {
    let sizes = format!(
        "{} → {} containers",
        growth.small.containers, growth.large.containers
    );
    let probe = growth.small.containers / GROWTH_PROBES as u64;
    let (small_busy, small_idle) = (
        LoadMedians::of(&growth.small.busy),
        LoadMedians::of(&growth.small.idle),
    );
    let (large_busy, large_idle) = (
        LoadMedians::of(&growth.large.busy),
        LoadMedians::of(&growth.large.idle),
    );
    let all_right = [&small_busy, &small_idle, &large_busy, &large_idle]
        .iter()
        .all(|load| load.all_right());
    let flat_rows: [(&str, f64, f64); 2] = [
        ("p50, 1 connection", small_idle.p50, large_idle.p50),
        ("p99, 64 connections", small_busy.p99, large_busy.p99),
    ];
    for (what, small, large) in flat_rows {
        let ratio = large / small;
        let mut row = Row::new(
            &format!("cost growth: status of a {probe}-container service, {what}, {sizes}"),
            format!("{} → {}", format_seconds(small), format_seconds(large)),
            "large/small ≤ 1.5 (flat)",
            Verdict::of(all_right && ratio <= FLAT_RATIO_LIMIT),
        );
        row.ratio = format_ratio(ratio);
        table.add(row);
    }
    let mut throughput = Row::new(
        &format!("cost growth: status of a {probe}-container service, throughput, 64 connections, {sizes}"),        format!(
            "{} → {}",
            format_rate(small_busy.throughput),
            format_rate(large_busy.throughput)
        ),
        "–",
        Verdict::Info,
    );
    throughput.ratio = format_ratio(large_busy.throughput / small_busy.throughput);
    table.add(throughput);
    table.add(wrong_answers_row(
        "cost growth: wrong answers",
        &[&small_busy, &small_idle, &large_busy, &large_idle],
    ));
}

fn rounds_note(plan: &Plan) -> String {
    format!(
        "Each figure is the median of: startup {}; scale {} (alternating which side went first); \
         status {} (each: the median of {} sequential docker ps, {BUSY_CONNECTIONS} connections for {:?}, \
         1 connection for {:?}; percentiles over all requests of a round); freshness {} removals \
         (docker rm -f and docker kill alternating); cost growth {} per size.\n\
         Flat rule: the status latency of a service with {} containers, while the instance \
         holds {} containers across {GROWTH_SERVICES} services, at most {FLAT_RATIO_LIMIT} × that \
         while the instance holds only that service's {}, with as many containers on the host \
         (the small case beside ballast containers of another instance).",
        rounds(plan.startup_rounds),
        rounds(plan.scale_rounds),
        rounds(plan.status_rounds),
        plan.ps_calls,
        plan.busy_duration,
        plan.idle_duration,
        plan.freshness_rounds,
        rounds(plan.status_rounds),
        plan.growth_replicas,
        plan.growth_replicas * GROWTH_SERVICES as u64,
        plan.growth_replicas * GROWTH_PROBES as u64,
    )
}

fn rounds(count: usize) -> String {
    if count == 1 {
        "1 round".to_owned()
    } else {
        format!("{count} rounds")
    }
}

fn format_seconds(seconds: f64) -> String {
    if seconds.is_nan() {
        "n/a".to_owned()
    } else if seconds >= 1.0 {
        format!("{seconds:.2} s")
    } else if seconds >= 0.001 {
        format!("{:.1} ms", seconds * 1e3)
    } else {
        format!("{:.0} µs", seconds * 1e6)
    }
}

fn format_rate(per_second: f64) -> String {
    if per_second >= 100.0 {
        format!("{per_second:.0} req/s")
    } else {
        format!("{per_second:.1} req/s")
    }
}

fn format_ratio(ratio: f64) -> String {
    if ratio.is_nan() {
        "n/a".to_owned()
    } else if ratio >= 100.0 {
        format!("{ratio:.0}")
    } else if ratio >= 0.1 {
        format!("{ratio:.2}")
    } else {
        // A tiny ratio reads better as "how many times faster".
        format!("1/{:.0}", 1.0 / ratio)
    }
}
