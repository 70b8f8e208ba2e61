//! The docker CLI as the tests use it behind the connector's back: the
//! test image, containers and Swarm services of their own, host ports and
//! the pages served on them, and a label value per test. It depends on no
//! other support module, so the performance bench can include it alone
//! (by `#[path]`) for the test image and instance labels.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;

/// The locally built image every test runs: a static busybox, so no registry
/// is needed. Its default command is [`DEFAULT_COMMAND`]. (Version 2: version
/// 1's plain sleep ignored SIGTERM.)
pub const TEST_IMAGE: &str = "docker-connector-test:2";

/// What [`TEST_IMAGE`] runs by default: a shell that waits on a sleep and
/// exits at SIGTERM. The connector stops containers gracefully, and a plain
/// `sleep` as PID 1 ignores SIGTERM (the kernel spares a namespace's init
/// every signal it has no handler for), so each stop of it would wait out
/// the whole grace period, 10 s unless the definition says otherwise.
pub const DEFAULT_COMMAND: [&str; 3] = ["sh", "-c", "trap 'exit 0' TERM; sleep 86400 & wait"];

/// A command of [`TEST_IMAGE`] that serves [`PAGE`] on port 8080.
pub const HTTPD: &str = "httpd -f -p 8080 -h /www";

/// The page [`HTTPD`] serves.
pub const PAGE: &str = "hello from docker-connector\n";

/// How long a container that runs may take to answer on its port.
const ANSWER_DEADLINE: Duration = Duration::from_secs(5);

/// Runs the real docker CLI and returns its stdout; panics on failure.
pub fn docker(args: &[&str]) -> String {
    let out = Command::new("docker")
        .args(args)
        .output()
        .expect("docker CLI runs");
    assert!(
        out.status.success(),
        "docker {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A host port as status reports it.
pub fn host_port(port: &Value) -> u16 {
    port.as_u64()
        .and_then(|port| u16::try_from(port).ok())
        .unwrap_or_else(|| panic!("no host port: {port}"))
}

/// The host ports docker bound for `port` (`8080/tcp`) of container `id`:
/// the IPv4 one, and the IPv6 one if it bound one. Told apart by address,
/// not by order, as docker 20.10 may put them on different ports.
pub fn host_bindings(id: &str, port: &str) -> (u16, Option<u16>) {
    let format = format!("{{{{json (index .NetworkSettings.Ports {port:?})}}}}");
    let bindings: Value =
        serde_json::from_str(&docker(&["inspect", "--format", &format, id])).unwrap();
    let port_on = |ipv6: bool| {
        bindings
            .as_array()
            .unwrap_or_else(|| panic!("container {id}: {port} unpublished"))
            .iter()
            .find(|binding| binding["HostIp"].as_str().unwrap().contains(':') == ipv6)
            .map(|binding| binding["HostPort"].as_str().unwrap().parse().unwrap())
    };
    let ipv4 = port_on(false)
        .unwrap_or_else(|| panic!("container {id}: no IPv4 binding of {port}: {bindings}"));
    (ipv4, port_on(true))
}

/// The page served on `host_port` of this host, over IPv4. A container
/// runs a moment before its server listens, so connection errors are
/// retried up to [`ANSWER_DEADLINE`]; the last is named in the panic.
pub async fn page_on(host_port: u16) -> String {
    let url = format!("http://127.0.0.1:{host_port}/");
    let started = std::time::Instant::now();
    loop {
        match reqwest::get(&url).await {
            Ok(response) => return response.text().await.unwrap(),
            Err(e) if started.elapsed() > ANSWER_DEADLINE => {
                panic!("{url} did not answer within {ANSWER_DEADLINE:?}: {e:?}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// Builds [`TEST_IMAGE`] once per test run from the host's static busybox.
pub fn ensure_test_image() {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let present = Command::new("docker")
            .args(["image", "inspect", TEST_IMAGE])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("docker CLI runs")
            .success();
        if present {
            return;
        }
        let busybox = ["/bin/busybox", "/usr/bin/busybox"]
            .into_iter()
            .map(Path::new)
            .find(|p| p.exists())
            .expect("a static busybox is needed to build the test image: apt-get install busybox-static");
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("bin")).unwrap();
        std::fs::create_dir_all(root.path().join("www")).unwrap();
        std::fs::create_dir_all(root.path().join("tmp")).unwrap();
        std::fs::copy(busybox, root.path().join("bin/busybox")).unwrap();
        for applet in ["sh", "sleep", "httpd", "echo", "cat", "env", "touch", "ls", "true", "false"] {
            std::os::unix::fs::symlink("busybox", root.path().join("bin").join(applet)).unwrap();
        }
        std::fs::write(root.path().join("www/index.html"), PAGE).unwrap();
        let mut tar = Command::new("tar")
            .args(["-C", root.path().to_str().unwrap(), "-c", "."])
            .stdout(Stdio::piped())
            .spawn()
            .expect("tar runs");
        let cmd = format!("CMD {}", serde_json::json!(DEFAULT_COMMAND));
        let status = Command::new("docker")
            .args(["import", "--change", &cmd, "--change", "ENV PATH=/bin", "-", TEST_IMAGE])
            .stdin(tar.stdout.take().unwrap())
            .stdout(Stdio::null())
            .status()
            .expect("docker import runs");
        assert!(tar.wait().unwrap().success(), "tar of the test image's root failed");
        assert!(status.success(), "docker import of the test image failed");
    });
}

/// A label value no other test (or test run) uses.
pub fn unique_instance() -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "t{}-{}-{:x}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst),
        nanos
    )
}

/// A container the test started without the connector's labels; removed
/// when dropped, even if the test panics.
pub struct ForeignContainer(pub String);

impl ForeignContainer {
    /// `docker run -d ARGS...`.
    pub fn run(args: &[&str]) -> Self {
        let mut argv = vec!["run", "-d"];
        argv.extend(args);
        ForeignContainer(docker(&argv).trim().to_owned())
    }

    pub fn state(&self) -> String {
        docker(&["inspect", "--format", "{{.State.Status}}", &self.0])
            .trim()
            .to_owned()
    }
}

impl Drop for ForeignContainer {
    fn drop(&mut self) {
        let _ = Command::new("docker").args(["rm", "-f", &self.0]).output();
    }
}

/// A Swarm service the test made without the connector's labels; removed
/// when dropped, even if the test panics.
pub struct ForeignSwarmService(pub String);

impl ForeignSwarmService {
    /// One replica of the test image, named `name`.
    pub fn create(name: &str) -> Self {
        docker(&[
            "service",
            "create",
            "--detach",
            "--quiet",
            "--name",
            name,
            "--replicas",
            "1",
            "--no-resolve-image",
            TEST_IMAGE,
        ]);
        ForeignSwarmService(name.to_owned())
    }
}

impl Drop for ForeignSwarmService {
    fn drop(&mut self) {
        let _ = Command::new("docker")
            .args(["service", "rm", &self.0])
            .output();
    }
}

/// A docker network or volume a test made; removed when dropped, even if
/// the test panics. Declare it before the [`crate::support::app::TestApp`]
/// whose containers use it: those are removed first, and a network or
/// volume in use cannot be.
pub struct Scratch {
    kind: &'static str,
    pub name: String,
}

impl Scratch {
    /// `docker network create ARGS... NAME`.
    pub fn network(name: &str, args: &[&str]) -> Self {
        let mut argv = vec!["network", "create"];
        argv.extend(args);
        argv.push(name);
        docker(&argv);
        Scratch {
            kind: "network",
            name: name.to_owned(),
        }
    }

    /// A named volume, made by docker on first use; only removed here.
    pub fn volume(name: &str) -> Self {
        Scratch {
            kind: "volume",
            name: name.to_owned(),
        }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        // Swarm removes a service's task containers a moment after the
        // service: until then the object is in use.
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let removed = Command::new("docker")
                .args([self.kind, "rm", &self.name])
                .output()
                .map(|out| {
                    out.status.success()
                        || String::from_utf8_lossy(&out.stderr).contains("No such")
                        || String::from_utf8_lossy(&out.stderr).contains("not found")
                })
                .unwrap_or(true);
            if removed || std::time::Instant::now() > deadline {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}
