//! The one launcher of the connector binary. The tests start it here (their
//! `TestApp`, and the tests that expect it to refuse to start), and so does
//! the performance bench, which includes this file alone with
//! `#[path = "../../tests/support/connector.rs"] mod connector;`: so it needs
//! nothing but std and libc and knows no other support module.
//!
//! A test lets the connector pick its port (port 0) and reads it from the
//! log line that announces it; the bench picks a free port itself, because
//! it times the start from the spawn to the first HTTP answer and must not
//! wait for a log line.

use std::ffi::OsStr;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

/// How long the connector may take to start listening, or to refuse to start.
pub const STARTUP_DEADLINE: Duration = Duration::from_secs(20);

/// What the connector logs once it listens, before `ADDRESS:PORT`.
const ANNOUNCE: &str = "docker-connector listening on ";

/// The connector binary, about to be started one of three ways:
/// [`launch`](ConnectorCommand::launch),
/// [`spawn_logging_to`](ConnectorCommand::spawn_logging_to) or
/// [`expect_refusal`](ConnectorCommand::expect_refusal).
pub struct ConnectorCommand {
    command: Command,
}

impl ConnectorCommand {
    /// The binary, run in `dir` (its relative data file lands there) with
    /// the label `instance`, on port 0, at log level `normal` (whose log
    /// announces the port), stdin and stdout closed. No `ROCKET_*` variable
    /// of the caller's environment reaches it: a token or another data file
    /// set there would change what is tested or measured.
    pub fn new(dir: &Path, instance: &str) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_docker-connector"));
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("ROCKET_") {
                command.env_remove(key);
            }
        }
        command
            .current_dir(dir)
            .env("ROCKET_PORT", "0")
            .env("ROCKET_INSTANCE", instance)
            .env("ROCKET_LOG_LEVEL", "normal")
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        ConnectorCommand { command }
    }

    /// Sets an environment variable; it overrides the settings of
    /// [`ConnectorCommand::new`], and a later one of the same key wins.
    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        self.command.env(key, value);
        self
    }

    /// [`ConnectorCommand::env`] for each pair.
    pub fn envs<K, V>(mut self, vars: impl IntoIterator<Item = (K, V)>) -> Self
    where
        K: AsRef<OsStr>,
        V: AsRef<OsStr>,
    {
        self.command.envs(vars);
        self
    }

    /// Starts it with soft and hard `RLIMIT_NOFILE` of `limit`, as the
    /// unit's `LimitNOFILE=` does under systemd.
    pub fn open_file_limit(mut self, limit: u64) -> Self {
        use std::os::unix::process::CommandExt;
        let limit = libc::rlimit {
            rlim_cur: limit,
            rlim_max: limit,
        };
        // SAFETY: between fork and exec the closure only calls setrlimit, a
        // system call that reads `limit` (copied into the closure) and is
        // async-signal-safe; it allocates nothing and takes no lock.
        unsafe {
            self.command.pre_exec(move || {
                if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) == 0 {
                    Ok(())
                } else {
                    Err(std::io::Error::last_os_error())
                }
            });
        }
        self
    }

    /// Adds command-line arguments.
    pub fn args(mut self, args: impl IntoIterator<Item = impl AsRef<OsStr>>) -> Self {
        self.command.args(args);
        self
    }

    /// Starts the connector and waits until its log announces the port it
    /// listens on. Its stderr is drained into memory for its whole life, so
    /// it never blocks on a full pipe; [`ConnectorProcess::log`] reads it.
    ///
    /// # Errors
    ///
    /// What it logged, if it exited, or did not announce a port within
    /// [`STARTUP_DEADLINE`] (it is killed then).
    ///
    /// # Panics
    ///
    /// If the binary cannot be run at all.
    pub fn launch(mut self) -> Result<ConnectorProcess, String> {
        let spawned_at = Instant::now();
        let mut child = self
            .command
            .stderr(Stdio::piped())
            .spawn()
            .expect("the connector binary starts");
        let log = Arc::new(Mutex::new(String::new()));
        let (port_tx, port_rx) = mpsc::channel();
        let stderr = child.stderr.take().expect("stderr is piped");
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                // Logged before the port is handed over, so that a test
                // reading the log once the start returns sees this line.
                {
                    let mut log = sink.lock().unwrap();
                    log.push_str(&line);
                    log.push('\n');
                }
                // "docker-connector listening on ADDRESS:PORT (...)"
                if let Some(announced) = line.split(ANNOUNCE).nth(1) {
                    let address = announced.split_whitespace().next().unwrap_or_default();
                    if let Some(Ok(port)) = address.rsplit(':').next().map(str::parse::<u16>) {
                        let _ = port_tx.send(port);
                    }
                }
            }
        });
        // Disconnected as soon as the drain ends: the connector exited.
        match port_rx.recv_timeout(STARTUP_DEADLINE) {
            Ok(port) => Ok(ConnectorProcess {
                child,
                port,
                spawned_at,
                log: Log::Captured(log),
            }),
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                // Lets the drain take in the last lines.
                std::thread::sleep(Duration::from_millis(100));
                let text = log.lock().unwrap().clone();
                Err(text)
            }
        }
    }

    /// Starts the connector on 127.0.0.1 and a port free a moment before,
    /// its stderr going to a new file at `log_path` (never into this
    /// process's memory), and returns at once: the caller times the start
    /// from [`ConnectorProcess::spawned_at`] to the first answer.
    ///
    /// # Panics
    ///
    /// If `log_path` cannot be created or the binary cannot be run.
    pub fn spawn_logging_to(mut self, log_path: &Path) -> ConnectorProcess {
        let port = free_port();
        let log = File::create(log_path)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", log_path.display()));
        self.command
            .env("ROCKET_ADDRESS", "127.0.0.1")
            .env("ROCKET_PORT", port.to_string())
            .stderr(log);
        let spawned_at = Instant::now();
        let child = self.command.spawn().expect("the connector binary starts");
        ConnectorProcess {
            child,
            port,
            spawned_at,
            log: Log::File(log_path.to_owned()),
        }
    }

    /// Starts the connector expecting it to refuse to start; returns its
    /// exit code and what it logged.
    ///
    /// # Panics
    ///
    /// If it is still running after [`STARTUP_DEADLINE`] (it is killed
    /// first), or the binary cannot be run.
    pub fn expect_refusal(mut self) -> (Option<i32>, String) {
        let mut child = self
            .command
            .stderr(Stdio::piped())
            .spawn()
            .expect("the connector binary runs");
        let started = Instant::now();
        while child.try_wait().unwrap().is_none() {
            if started.elapsed() > STARTUP_DEADLINE {
                let _ = child.kill();
                let _ = child.wait();
                panic!("the connector started although it should have refused");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let out = child.wait_with_output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

/// A port of 127.0.0.1 that nothing listened on a moment ago.
fn free_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("a free port on 127.0.0.1");
    listener.local_addr().expect("a bound address").port()
}

/// Where a connector's log goes.
enum Log {
    /// Drained from its stderr by a thread of this process.
    Captured(Arc<Mutex<String>>),
    /// Written by the connector itself.
    File(PathBuf),
}

/// A started connector; killed with SIGKILL when dropped.
pub struct ConnectorProcess {
    child: Child,
    port: u16,
    spawned_at: Instant,
    log: Log,
}

impl ConnectorProcess {
    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// When the process was spawned.
    pub fn spawned_at(&self) -> Instant {
        self.spawned_at
    }

    /// Everything it logged so far.
    pub fn log(&self) -> String {
        match &self.log {
            Log::Captured(log) => log.lock().unwrap().clone(),
            Log::File(path) => std::fs::read_to_string(path).unwrap_or_default(),
        }
    }

    /// The last `lines` lines of its log, for messages.
    pub fn log_tail(&self, lines: usize) -> String {
        let log = self.log();
        let all: Vec<&str> = log.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// The file its log goes to, if it goes to one.
    pub fn log_path(&self) -> Option<&Path> {
        match &self.log {
            Log::Captured(_) => None,
            Log::File(path) => Some(path),
        }
    }

    /// How it exited, if it has.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child
            .try_wait()
            .expect("the connector's state can be read")
    }

    /// Kills it with SIGKILL, so no shutdown code runs, and collects it.
    /// Does nothing if it has already been collected.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ConnectorProcess {
    fn drop(&mut self) {
        self.kill();
    }
}
