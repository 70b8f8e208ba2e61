//! The raw docker CLI side: the baseline that does by hand what the
//! connector does (start, remove, list containers, follow their events),
//! and the cleanup of every container the bench labelled.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use docker_connector::docker::{LABEL_CONFIG_HASH, LABEL_INSTANCE, LABEL_SERVICE};

use crate::report::median;
use crate::test_docker::{docker, TEST_IMAGE};
use crate::{for_each_in_parallel, progress, PARALLEL_RUNS, WORKLOAD};

/// The raw baseline's containers need some config hash to carry the same
/// labels as the connector's; its value does not matter.
const RAW_CONFIG_HASH: &str = "0123456789abcdef";
/// The `docker ps --filter` argument selecting one instance's containers.
pub fn instance_filter(instance: &str) -> String {
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

/// Removes every container of `instance`, saying on stderr what it could
/// not remove. Never panics: it runs while a failed run unwinds.
pub fn remove_containers_of(instance: &str) {
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

/// Says how many containers each instance still has after the cleanup, so
/// a run that leaked some shows it.
pub fn report_leftovers(instances: &[&str]) {
    for instance in instances {
        let left = containers_of(instance)
            .map_or_else(|| "unknown".to_owned(), |ids| ids.len().to_string());
        progress(format_args!(
            "containers left with {LABEL_INSTANCE}={instance}: {left}"
        ));
    }
}

/// `docker run -d` of one container per name running [`WORKLOAD`],
/// labelled as the connector labels its own but with `instance`, with
/// `flags` added, `PARALLEL_RUNS` at a time; their ids.
pub fn run_raw_containers(
    names: &[String],
    instance: &str,
    service: &str,
    flags: &[&str],
) -> Vec<String> {
    let instance_label = format!("{LABEL_INSTANCE}={instance}");
    let service_label = format!("{LABEL_SERVICE}={service}");
    let hash_label = format!("{LABEL_CONFIG_HASH}={RAW_CONFIG_HASH}");
    let ids = Mutex::new(Vec::new());
    for_each_in_parallel(names, PARALLEL_RUNS, |name| {
        let mut args = vec![
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
        ];
        args.extend(flags);
        args.extend(["--", TEST_IMAGE]);
        args.extend(WORKLOAD);
        let id = docker(&args);
        ids.lock().unwrap().push(id.trim().to_owned());
    });
    ids.into_inner().unwrap()
}

/// One `docker rm -f` of all `ids`: the quick end of containers whose
/// removal is not measured.
pub fn remove_raw_containers(ids: &[String]) {
    let mut remove = vec!["rm", "-f"];
    remove.extend(ids.iter().map(String::as_str));
    docker(&remove);
}

/// The full ids of the running containers of `service` of `instance`, as
/// one `docker ps` lists them: what the connector's status answers.
pub fn running_ids(instance: &str, service: &str) -> Vec<String> {
    docker(&[
        "ps",
        "-q",
        "--no-trunc",
        "--filter",
        &instance_filter(instance),
        "--filter",
        &format!("label={LABEL_SERVICE}={service}"),
    ])
    .lines()
    .map(str::to_owned)
    .collect()
}

/// The median duration of `calls` sequential `docker ps` asking what the
/// connector's status answers: the running containers of one service.
pub fn time_docker_ps(instance: &str, service: &str, calls: usize) -> f64 {
    let durations = (0..calls).map(|_| {
        let started = Instant::now();
        running_ids(instance, service);
        started.elapsed().as_secs_f64()
    });
    median(durations.collect())
}

/// One container event as `docker events --format '{{json .}}'` printed it.
#[derive(Clone)]
pub struct DockerEvent {
    pub container: String,
    /// Its `Action`: `start`, `die`, `destroy`, `kill`...
    pub action: String,
    /// When the engine says it happened (`timeNano`), in nanoseconds since
    /// the epoch.
    pub time_nanos: i128,
    /// When the bench read its line.
    pub read_at: SystemTime,
}

/// `docker events` of the containers of `instance`, as the connector itself
/// follows them: the raw CLI's own delay from the engine to a reader. The
/// process runs until it is killed; the events come as their lines are read.
/// It asks for the events since its own start, so that none is lost while
/// it subscribes.
///
/// # Panics
///
/// If docker cannot be run.
pub fn follow_docker_events(instance: &str) -> (Child, impl Iterator<Item = DockerEvent>) {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let mut process = Command::new("docker")
        .args([
            "events",
            "--since",
            &format!("{}.{:09}", since.as_secs(), since.subsec_nanos()),
            "--format",
            "{{json .}}",
            "--filter",
            "type=container",
            "--filter",
            &instance_filter(instance),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("docker events starts");
    let stdout = process.stdout.take().expect("stdout is piped");
    let events = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .filter_map(|line| parse_docker_event(&line, SystemTime::now()));
    (process, events)
}

fn parse_docker_event(line: &str, read_at: SystemTime) -> Option<DockerEvent> {
    let event: serde_json::Value = serde_json::from_str(line).ok()?;
    Some(DockerEvent {
        container: event["Actor"]["ID"].as_str()?.to_owned(),
        action: event["Action"].as_str()?.to_owned(),
        time_nanos: event["timeNano"].as_i64()?.into(),
        read_at,
    })
}
