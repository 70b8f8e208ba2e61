//! Runs the docker CLI: one argv element per argument, never a shell, a
//! deadline that kills the child, and failures sorted by cause.

use std::path::PathBuf;
use std::process::{Output, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::process::Command;

use crate::error::Error;

/// Most of docker's stderr an error message carries.
const MAX_MESSAGE_CHARS: usize = 600;

/// What docker prints when it cannot reach the engine at all, as opposed to
/// the engine refusing a request.
const UNREACHABLE_MARKERS: [&str; 4] = [
    "Cannot connect to the Docker daemon",
    "error during connect",
    "permission denied while trying to connect",
    "Is the docker daemon running",
];

/// Runs docker commands with a deadline.
#[derive(Debug, Clone)]
pub struct DockerRunner {
    /// The resolved CLI, once found. Until then every run looks for it
    /// again, so installing docker after the connector started needs no
    /// restart.
    program: OnceLock<PathBuf>,
    /// What the configuration asked for: a path, or a name to find on `PATH`.
    configured: String,
    timeout: Duration,
}

impl DockerRunner {
    /// Looks `configured` up (a path, or a name on `PATH`). A CLI that cannot
    /// be found is not fatal: the connector still serves definitions, and
    /// docker-backed requests answer 503 until it appears.
    pub fn new(configured: &str, timeout: Duration) -> Self {
        let runner = DockerRunner {
            program: OnceLock::new(),
            configured: configured.to_owned(),
            timeout,
        };
        if let Err(e) = runner.program() {
            log::warn!("{e}; docker-backed requests will answer 503 until it is installed");
        }
        runner
    }

    fn program(&self) -> Result<&PathBuf, Error> {
        if let Some(path) = self.program.get() {
            return Ok(path);
        }
        let found = which::which(&self.configured).map_err(|e| {
            Error::DockerUnavailable(format!("docker CLI {:?} not found ({e})", self.configured))
        })?;
        Ok(self.program.get_or_init(|| found))
    }

    /// Runs `docker ARGS...` and returns its stdout.
    ///
    /// # Errors
    /// [`Error::DockerUnavailable`] when the CLI is missing or cannot reach the
    /// engine, [`Error::DockerTimeout`] when it overran its deadline (it is
    /// killed), [`Error::DockerFailed`] with its trimmed stderr otherwise.
    pub async fn run(&self, args: &[String]) -> Result<String, Error> {
        let program = self.program()?;
        log::debug!("running {} {}", program.display(), masked(args).join(" "));
        let mut child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own process group, so that a deadline can kill whatever it
            // started too (CLI plugins, or a wrapper script's children).
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| {
                Error::DockerUnavailable(format!("cannot run {}: {e}", program.display()))
            })?;
        let mut stdout = child.stdout.take().expect("stdout is piped");
        let mut stderr = child.stderr.take().expect("stderr is piped");
        // Declared after `child`, so dropped before it: on timeout (or if the
        // request is abandoned) the group is killed before the child is
        // killed and reaped. Only if the child already exited while
        // something it started still holds its output has it been reaped;
        // that process then keeps the group's id in use.
        let group = ProcessGroup::new(child.id().expect("a child not yet waited for has an id"));
        let finished = async {
            let (mut out, mut err) = (Vec::new(), Vec::new());
            let (status, _, _) = tokio::try_join!(
                child.wait(),
                stdout.read_to_end(&mut out),
                stderr.read_to_end(&mut err)
            )?;
            Ok::<_, std::io::Error>(Output {
                status,
                stdout: out,
                stderr: err,
            })
        };
        let output = tokio::time::timeout(self.timeout, finished)
            .await
            .map_err(|_| Error::DockerTimeout {
                seconds: self.timeout.as_secs(),
            })?
            .map_err(|e| Error::DockerUnavailable(format!("waiting for docker: {e}")))?;
        // It exited by itself and closed its output: leave its group alone.
        group.disarm();
        if output.status.success() {
            return Ok(String::from_utf8_lossy(&output.stdout).into_owned());
        }
        let stderr = String::from_utf8_lossy(&output.stderr);
        let message = trim_message(&stderr, output.status);
        if UNREACHABLE_MARKERS
            .iter()
            .any(|marker| stderr.contains(marker))
        {
            Err(Error::DockerUnavailable(message))
        } else {
            Err(Error::DockerFailed(message))
        }
    }
}

/// The process group of one docker child. Dropped while armed (the deadline
/// passed, or the request was abandoned), it sends SIGKILL to the whole group,
/// so nothing the child started outlives it.
struct ProcessGroup {
    id: libc::pid_t,
    armed: bool,
}

impl ProcessGroup {
    fn new(leader: u32) -> Self {
        ProcessGroup {
            id: libc::pid_t::try_from(leader).expect("process ids fit pid_t"),
            armed: true,
        }
    }

    fn disarm(mut self) {
        self.armed = false;
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        if self.armed {
            // SAFETY: killpg only sends a signal. The group was created for
            // this child (process_group(0)) and its id stays reserved while
            // the child is unreaped or a member lives (see `run`); only a
            // member that left for a session of its own could free it
            // early, which the docker CLI does not do. An error (the group
            // is already gone) needs no handling.
            unsafe {
                libc::killpg(self.id, libc::SIGKILL);
            }
        }
    }
}

/// Folds docker's stderr into one bounded line.
fn trim_message(stderr: &str, status: std::process::ExitStatus) -> String {
    // Docker appends a pointer to its help to usage errors; it helps nobody here.
    let joined = stderr
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with("Run '") && !line.starts_with("See '"))
        .collect::<Vec<_>>()
        .join("; ");
    if joined.is_empty() {
        return format!("docker exited with {status} and printed nothing");
    }
    match joined.char_indices().nth(MAX_MESSAGE_CHARS) {
        Some((cut, _)) => format!("{}...", &joined[..cut]),
        None => joined,
    }
}

/// The argv with the values of `-e KEY=VALUE` hidden, for logs: environment
/// values are often secrets.
fn masked(args: &[String]) -> Vec<String> {
    let mut out = Vec::with_capacity(args.len());
    let mut after_env_flag = false;
    for arg in args {
        if after_env_flag {
            let key = arg.split_once('=').map_or(arg.as_str(), |(key, _)| key);
            out.push(format!("{key}=***"));
        } else {
            out.push(arg.clone());
        }
        after_env_flag = arg == "-e" || arg == "--env";
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_environment_values_only() {
        let args: Vec<String> = [
            "run",
            "-e",
            "TOKEN=s3cret=x",
            "--name",
            "web",
            "--",
            "img:1",
            "-e",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(
            masked(&args),
            [
                "run",
                "-e",
                "TOKEN=***",
                "--name",
                "web",
                "--",
                "img:1",
                "-e"
            ]
        );
    }

    #[tokio::test]
    async fn a_missing_cli_is_unavailable_not_a_crash() {
        let runner = DockerRunner::new("/nonexistent/docker", Duration::from_secs(1));
        let err = runner.run(&["ps".to_owned()]).await.unwrap_err();
        assert!(matches!(err, Error::DockerUnavailable(_)), "{err:?}");
    }
}
