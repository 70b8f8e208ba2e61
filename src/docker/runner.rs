//! Runs the docker CLI: one argv element per argument, never a shell, a
//! deadline that kills the child, and failures sorted by cause.

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Output, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::deadline::{self, CallDeadline};
use crate::error::Error;
use crate::metrics::{CallOutcome, Metrics};

/// Most of docker's stderr an error message carries.
const MAX_MESSAGE_CHARS: usize = 600;

/// Longest line a stream may print: an event with many labels is a few KiB.
const MAX_LINE_BYTES: u64 = 1 << 20;

/// Lines a stream may print ahead of its reader.
const STREAM_BUFFER_LINES: usize = 1024;

/// How long a stream that closed its output has to exit before it is killed.
const STREAM_EXIT_GRACE: Duration = Duration::from_secs(1);

/// What docker prints when it cannot reach the engine at all, as opposed to
/// the engine refusing a request. The last: a CLI newer than the engine
/// that could not reach it to agree on an API version falls back to its
/// own newest; when the engine answers again, it refuses that version. Seen
/// with CLI 28 and engine 20.10 during the soak's outages; with the engine
/// reachable the CLI agrees on a version and never sends this.
const UNREACHABLE_MARKERS: [&str; 5] = [
    "Cannot connect to the Docker daemon",
    "error during connect",
    "permission denied while trying to connect",
    "Is the docker daemon running",
    "is too new. Maximum supported API version is",
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
    /// Where every call is counted, by verb and outcome.
    metrics: Arc<Metrics>,
}

impl DockerRunner {
    /// Looks `configured` up (a path, or a name on `PATH`). A CLI that cannot
    /// be found is not fatal: the connector still serves definitions, and
    /// docker-backed requests answer 503 until it appears.
    pub fn new(configured: &str, timeout: Duration, metrics: Arc<Metrics>) -> Self {
        let runner = DockerRunner {
            program: OnceLock::new(),
            configured: configured.to_owned(),
            timeout,
            metrics,
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
        self.run_tolerating(args, |_| false).await
    }

    /// [`run`](Self::run), but a failure whose every line of stderr is
    /// `tolerated` counts as success. Decided on docker's whole stderr, before
    /// it is shortened for an error message.
    ///
    /// # Errors
    /// As [`run`](Self::run).
    pub async fn run_tolerating(
        &self,
        args: &[String],
        tolerated: impl Fn(&str) -> bool,
    ) -> Result<String, Error> {
        self.run_tolerating_longer(args, tolerated, Duration::ZERO)
            .await
    }

    /// [`run_tolerating`](Self::run_tolerating) with its deadline lengthened
    /// by `extra`: for a call that honestly takes longer than docker's usual
    /// answer, such as a `docker stop` that waits out the containers' grace
    /// periods. The usual deadline still covers docker's own work, so a hung
    /// engine is caught no later than `extra` after it would be anyway.
    ///
    /// # Errors
    /// As [`run`](Self::run).
    pub async fn run_tolerating_longer(
        &self,
        args: &[String],
        tolerated: impl Fn(&str) -> bool,
        extra: Duration,
    ) -> Result<String, Error> {
        let mut call = CallRecord::begin(&self.metrics, args);
        // The request's budget grows by what this call honestly waits out.
        deadline::lengthen(extra);
        let result = match CallDeadline::starting_now(self.timeout.saturating_add(extra)) {
            Ok(deadline) => self.execute(args, tolerated, &deadline).await,
            Err(spent) => Err(spent),
        };
        call.finish(CallOutcome::of(&result));
        result
    }

    /// `docker inspect --type KIND --format FORMAT IDS...`: one line per
    /// object that still exists (one removed meanwhile is left out); empty
    /// without asking docker when there are no ids.
    ///
    /// # Errors
    /// As [`run`](Self::run).
    pub async fn inspect_existing(
        &self,
        kind: &str,
        format: &str,
        ids: impl IntoIterator<Item = String>,
    ) -> Result<String, Error> {
        let mut args: Vec<String> = ["inspect", "--type", kind, "--format", format]
            .map(str::to_owned)
            .into();
        let before = args.len();
        args.extend(ids);
        if args.len() == before {
            return Ok(String::new());
        }
        self.run_tolerating(&args, |complaint| complaint.contains("No such"))
            .await
    }

    /// The body of [`run_tolerating`](Self::run_tolerating), uncounted.
    async fn execute(
        &self,
        args: &[String],
        tolerated: impl Fn(&str) -> bool,
        deadline: &CallDeadline,
    ) -> Result<String, Error> {
        let program = self.program()?;
        log::debug!("running {} {}", program.display(), masked(args).join(" "));
        let mut child = spawn(&mut command(program, args)).await?;
        let mut stdout = child.stdout.take().expect("stdout is piped");
        let mut stderr = child.stderr.take().expect("stderr is piped");
        // Declared after `child`, so dropped before it: on timeout (or if the
        // request is abandoned) the group is killed before the child is
        // killed and reaped. Only if the child already exited while
        // something it started still holds its output has it been reaped;
        // that process then keeps the group's id in use.
        let mut group =
            ProcessGroup::new(child.id().expect("a child not yet waited for has an id"));
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
        let output = tokio::time::timeout(deadline.limit, finished)
            .await
            .map_err(|_| Error::DockerTimeout {
                seconds: deadline.seconds,
            })?
            .map_err(|e| Error::DockerUnavailable(format!("waiting for docker: {e}")))?;
        // It exited by itself and closed its output: leave its group alone.
        group.disarm();
        let stdout = || String::from_utf8_lossy(&output.stdout).into_owned();
        if output.status.success() {
            return Ok(stdout());
        }
        let stderr = String::from_utf8_lossy(&output.stderr);
        let mut complaints = stderr
            .lines()
            .filter(|line| !line.trim().is_empty())
            .peekable();
        if complaints.peek().is_some() && complaints.all(tolerated) {
            return Ok(stdout());
        }
        Err(failure(&output.stderr, output.status))
    }

    /// Starts `docker ARGS...` for as long as the returned stream lives, and
    /// hands out what it prints line by line. Dropping the stream kills the
    /// child and its process group. Like every docker child, it also dies
    /// with the connector (see [`command`]).
    ///
    /// # Errors
    /// [`Error::DockerUnavailable`] when the CLI is missing or cannot start.
    pub async fn stream(&self, args: &[String]) -> Result<OutputStream, Error> {
        let stream = self.start_stream(args).await;
        self.metrics.count_docker_call(
            verb(args),
            match &stream {
                Ok(_) => CallOutcome::Started,
                Err(e) => CallOutcome::of_error(e),
            },
        );
        stream
    }

    /// The body of [`stream`](Self::stream), uncounted.
    async fn start_stream(&self, args: &[String]) -> Result<OutputStream, Error> {
        let program = self.program()?;
        log::debug!("following {} {}", program.display(), masked(args).join(" "));
        let mut child = spawn(&mut command(program, args)).await?;
        let group = ProcessGroup::new(child.id().expect("a child not yet waited for has an id"));
        let stdout = child.stdout.take().expect("stdout is piped");
        let stderr = child.stderr.take().expect("stderr is piped");
        let (lines_in, lines) = mpsc::channel(STREAM_BUFFER_LINES);
        // Reading in tasks of their own keeps both pipes drained whatever the
        // reader does, and makes `next_line` safe to cancel.
        tokio::spawn(async move {
            let mut stdout = BufReader::new(stdout);
            let mut line = Vec::new();
            loop {
                line.clear();
                match (&mut stdout)
                    .take(MAX_LINE_BYTES)
                    .read_until(b'\n', &mut line)
                    .await
                {
                    Ok(0) | Err(_) => break,
                    Ok(_) if line.last() != Some(&b'\n') && line.len() as u64 == MAX_LINE_BYTES => {
                        let _ = lines_in
                            .send(Err(format!("a line longer than {MAX_LINE_BYTES} bytes")))
                            .await;
                        break;
                    }
                    Ok(_) => {
                        let text = String::from_utf8_lossy(&line).trim_end().to_owned();
                        if lines_in.send(Ok(text)).await.is_err() {
                            break;
                        }
                    }
                }
            }
        });
        let stderr = tokio::spawn(async move {
            let mut text = Vec::new();
            let _ = stderr.take(MAX_LINE_BYTES).read_to_end(&mut text).await;
            text
        });
        Ok(OutputStream {
            group,
            child,
            lines,
            stderr: Some(stderr),
            ended: None,
        })
    }
}

/// One argv element.
pub(super) fn arg(s: &str) -> String {
    s.to_owned()
}

/// The `verb` label of a docker command: its first argument (`run`, `ps`,
/// `rm`, `version`, `events`), or its first two for `service` commands.
/// The connector's own code builds every argv, so the set of verbs is
/// small and fixed.
fn verb(args: &[String]) -> &str {
    match args {
        // `service create` and `service rm` are different calls.
        [group, command, ..] if group == "service" => match command.as_str() {
            "create" => "service create",
            "update" => "service update",
            "inspect" => "service inspect",
            "ps" => "service ps",
            "rm" => "service rm",
            _ => "service",
        },
        _ => args.first().map_or("", String::as_str),
    }
}

/// One docker call being timed. Dropped before [`finish`](Self::finish) (its
/// caller stopped waiting and the child was killed), it counts as abandoned.
struct CallRecord<'a> {
    metrics: &'a Metrics,
    verb: &'a str,
    began: Instant,
    finished: bool,
}

impl<'a> CallRecord<'a> {
    fn begin(metrics: &'a Metrics, args: &'a [String]) -> Self {
        CallRecord {
            metrics,
            verb: verb(args),
            began: Instant::now(),
            finished: false,
        }
    }

    fn finish(&mut self, outcome: CallOutcome) {
        self.finished = true;
        self.metrics
            .observe_docker_call(self.verb, outcome, self.began.elapsed());
    }
}

impl Drop for CallRecord<'_> {
    fn drop(&mut self) {
        if !self.finished {
            self.metrics.observe_docker_call(
                self.verb,
                CallOutcome::Abandoned,
                self.began.elapsed(),
            );
        }
    }
}

/// A long-running docker command and what it prints. Its fields drop in
/// order: the process group is killed before the child is.
pub struct OutputStream {
    group: ProcessGroup,
    child: Child,
    lines: mpsc::Receiver<Result<String, String>>,
    stderr: Option<JoinHandle<Vec<u8>>>,
    /// Why it ended, once known.
    ended: Option<String>,
}

impl OutputStream {
    /// The next line the command printed, without its line break.
    ///
    /// # Errors
    /// Once the command has closed its output (or printed a line too long
    /// to read), why it ended: docker's message and exit status. Every later
    /// call answers the same. Safe to cancel.
    pub async fn next_line(&mut self) -> Result<String, String> {
        if let Some(reason) = &self.ended {
            return Err(reason.clone());
        }
        let unreadable = match self.lines.recv().await {
            Some(Ok(line)) => return Ok(line),
            Some(Err(unreadable)) => Some(unreadable),
            None => None,
        };
        let status = match tokio::time::timeout(STREAM_EXIT_GRACE, self.child.wait()).await {
            Ok(Ok(status)) => {
                // Reaped: its group id may be reused from now on (see `run`).
                self.group.disarm();
                Some(status)
            }
            _ => {
                let _ = self.child.start_kill();
                None
            }
        };
        let stderr = match self.stderr.take() {
            Some(task) => tokio::time::timeout(STREAM_EXIT_GRACE, task)
                .await
                .ok()
                .and_then(Result::ok)
                .unwrap_or_default(),
            None => Vec::new(),
        };
        let reason = match (unreadable, status) {
            (Some(unreadable), _) => format!("docker printed {unreadable}"),
            (None, Some(status)) => failure(&stderr, status).to_string(),
            (None, None) => "docker closed its output but did not exit".to_owned(),
        };
        self.ended = Some(reason.clone());
        Err(reason)
    }
}

/// `docker ARGS...` with nothing on stdin, both outputs captured, and a
/// process group of its own, so that killing the group also kills whatever it
/// started (CLI plugins, or a wrapper script's children).
///
/// The docker CLI dies with the connector, even when the connector is
/// SIGKILLed and runs no code of its own: otherwise a hung call would live
/// on, and such calls would pile up across restarts. That is right for
/// every kind of call. A listing, an inspect or the events stream has no
/// reader any more. A call that changes something (`run`, `stop`, `rm`,
/// `service update`) has no one to answer either, and whatever it leaves
/// half done, the engine or the next connector finishes: the engine
/// carries out a stop it was asked for by itself, grace period included;
/// a container created but never started carries the connector's labels,
/// and the reconciler removes it like any container that does not run; a
/// Swarm update either reached the engine or did not, and the stored
/// definition says what was asked.
///
/// The signal comes when the thread that started the child ends, not only
/// the process: children are started from the runtime's worker threads,
/// which live as long as the connector (never from `spawn_blocking`
/// threads, which end when idle).
fn command(program: &Path, args: &[String]) -> Command {
    let mut command = Command::new(program);
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let connector = std::process::id();
    // SAFETY: the closure runs in the forked child before exec and makes
    // only async-signal-safe system calls. PR_SET_PDEATHSIG survives the
    // exec of the docker CLI (it is not set-user-id).
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            // The connector died between the fork and the prctl: the
            // signal was missed, so go now.
            if libc::getppid() as u32 != connector {
                libc::_exit(1);
            }
            Ok(())
        });
    }
    command
}

async fn spawn(command: &mut Command) -> Result<Child, Error> {
    // ETXTBSY: the program was just written (a docker CLI being upgraded,
    // or a test's stand-in) and a process forked meanwhile still holds it
    // open for writing until it execs. That passes within milliseconds;
    // the wait yields, so the runtime's worker serves others meanwhile.
    const BUSY_RETRIES: u32 = 20;
    let mut attempt = 0;
    loop {
        match command.spawn() {
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) && attempt < BUSY_RETRIES => {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            result => {
                return result.map_err(|e| {
                    Error::DockerUnavailable(format!(
                        "cannot run {}: {e}",
                        command.as_std().get_program().to_string_lossy()
                    ))
                })
            }
        }
    }
}

/// Sorts a failed docker command by cause, from what it printed on stderr.
fn failure(stderr: &[u8], status: ExitStatus) -> Error {
    let stderr = String::from_utf8_lossy(stderr);
    let message = trim_message(&stderr, status);
    if UNREACHABLE_MARKERS
        .iter()
        .any(|marker| stderr.contains(marker))
    {
        Error::DockerUnavailable(message)
    } else {
        Error::DockerFailed(message)
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

    fn disarm(&mut self) {
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
fn trim_message(stderr: &str, status: ExitStatus) -> String {
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

/// The argv with the values of `-e KEY=VALUE` (also `--env`, and
/// `--env-add` of `docker service update`) hidden, for logs: environment
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
        after_env_flag = matches!(arg.as_str(), "-e" | "--env" | "--env-add");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_commands_are_named_by_two_words() {
        let argv = |words: &[&str]| words.iter().map(|w| w.to_string()).collect::<Vec<_>>();
        assert_eq!(verb(&argv(&["run", "-d"])), "run");
        assert_eq!(
            verb(&argv(&["service", "update", "--detach"])),
            "service update"
        );
        assert_eq!(verb(&argv(&["service", "ps", "x"])), "service ps");
        assert_eq!(verb(&argv(&["service", "scale"])), "service");
        assert_eq!(verb(&[]), "");
    }

    #[test]
    fn failures_to_reach_the_engine_are_told_from_the_engine_refusing() {
        use std::os::unix::process::ExitStatusExt;
        let exit_1 = ExitStatus::from_raw(1 << 8);
        for unreachable in [
            "Cannot connect to the Docker daemon at unix:///x.sock. Is the docker daemon running?",
            "Error response from daemon: client version 1.50 is too new. Maximum supported API version is 1.41",
        ] {
            let error = failure(unreachable.as_bytes(), exit_1);
            assert!(matches!(error, Error::DockerUnavailable(_)), "{unreachable}: {error:?}");
            assert!(error.is_engine_fault());
        }
        let refused = failure(b"Unable to find image 'app:1' locally", exit_1);
        assert!(matches!(refused, Error::DockerFailed(_)));
        assert!(!refused.is_engine_fault());
    }

    #[test]
    fn masks_the_values_of_service_environment_flags() {
        let args: Vec<String> = [
            "service",
            "update",
            "--env-add",
            "A=s3cret",
            "--env-rm",
            "B",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(
            masked(&args),
            ["service", "update", "--env-add", "A=***", "--env-rm", "B"]
        );
    }

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

    /// A runner whose docker CLI is a shell script with `body`, in `dir`.
    fn fake_runner(
        dir: &Path,
        body: &str,
        timeout: Duration,
        metrics: Arc<Metrics>,
    ) -> DockerRunner {
        use std::os::unix::fs::PermissionsExt;
        let script = dir.join("docker");
        std::fs::write(&script, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        DockerRunner::new(script.to_str().unwrap(), timeout, metrics)
    }

    #[tokio::test]
    async fn a_failure_made_only_of_tolerated_complaints_is_success_however_long() {
        let dir = tempfile::tempdir().unwrap();
        // Twenty complaints run far past what an error message keeps.
        let runner = fake_runner(
            dir.path(),
            "for i in $(seq 20); do\n\
             echo \"Error response from daemon: No such container: $(printf '%064d' $i)\" >&2\n\
             done\n[ \"$1\" = mixed ] && echo 'Error: device busy' >&2\nexit 1",
            Duration::from_secs(5),
            Arc::default(),
        );
        let gone = |line: &str| line.contains("No such container");
        let tolerated = runner.run_tolerating(&["rm".into()], gone).await;
        assert!(tolerated.is_ok(), "{tolerated:?}");
        let mixed = runner.run_tolerating(&["mixed".into()], gone).await;
        assert!(matches!(mixed, Err(Error::DockerFailed(_))), "{mixed:?}");
    }

    #[tokio::test]
    async fn a_call_given_extra_time_may_outlast_the_usual_deadline() {
        let dir = tempfile::tempdir().unwrap();
        let runner = fake_runner(
            dir.path(),
            "sleep 1.5",
            Duration::from_secs(1),
            Arc::default(),
        );
        let args = ["stop".to_owned()];
        let usual = runner.run(&args).await;
        assert!(
            matches!(usual, Err(Error::DockerTimeout { seconds: 1 })),
            "{usual:?}"
        );
        let longer = runner
            .run_tolerating_longer(&args, |_| false, Duration::from_secs(2))
            .await;
        assert!(longer.is_ok(), "{longer:?}");
    }

    #[tokio::test]
    async fn a_call_whose_caller_stopped_waiting_counts_as_abandoned() {
        let dir = tempfile::tempdir().unwrap();
        let metrics = Arc::new(Metrics::new());
        let runner = fake_runner(
            dir.path(),
            "sleep 30",
            Duration::from_secs(60),
            metrics.clone(),
        );
        let args = ["run".to_owned()];
        assert!(
            tokio::time::timeout(Duration::from_millis(200), runner.run(&args))
                .await
                .is_err()
        );
        let text = metrics.render(0, None);
        assert!(
            text.contains(r#"docker_calls_total{outcome="abandoned",verb="run"} 1"#),
            "{text}"
        );
    }

    #[tokio::test]
    async fn a_missing_cli_is_unavailable_not_a_crash() {
        let metrics = Arc::new(Metrics::new());
        let runner = DockerRunner::new(
            "/nonexistent/docker",
            Duration::from_secs(1),
            metrics.clone(),
        );
        let err = runner.run(&["ps".to_owned()]).await.unwrap_err();
        assert!(matches!(err, Error::DockerUnavailable(_)), "{err:?}");
        let text = metrics.render(0, None);
        assert!(
            text.contains(r#"docker_calls_total{outcome="unavailable",verb="ps"} 1"#),
            "{text}"
        );
    }
}
