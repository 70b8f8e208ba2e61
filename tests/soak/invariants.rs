//! The soak's invariants, each a function that adds what breaks it to
//! [`Violations`] under the invariant's name:
//!
//! - `contract`: every answer is documented for its operation in
//!   src/openapi.json, and every 4xx/5xx is a JSON error;
//! - `acknowledged writes`: the data files (read back with the connector
//!   stopped) and the served definitions hold each service's last
//!   acknowledged state, or for a write in doubt, the state before or after;
//! - `convergence`: within 5 s of the last fault, beyond the engine's own
//!   time for the work at the raw CLI's pace, every service runs exactly its
//!   desired count of its current definition, and nothing of ours is in any
//!   other state;
//! - `foreign containers`: untouched;
//! - `full disk`: writes answer a 5xx naming "No space left on device",
//!   reads keep answering;
//! - `resources`: RSS, descriptors and threads after the storm within 10%
//!   of after warm-up;
//! - `orphans`: every process with the proxy's `DOCKER_HOST` is the live
//!   connector or one of its children.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::connector::{Connector, Outcome};
use crate::figures::{Figures, Resources};
use crate::model::{describe, describe_all, version_of, Live, Models, State};
use crate::support::app::Reply;
use crate::support::openapi::answer_problems;
use crate::support::process::Process;
use crate::support::store::stored_state;

/// How long after the last fault every service must be as desired, beyond
/// the engine's own time for the work (see [`check_convergence`]).
pub const CONVERGENCE_BOUND: Duration = Duration::from_secs(5);

/// How long the soak watches a service that has not converged, to report
/// how long it took after all.
const CONVERGENCE_WATCH: Duration = Duration::from_secs(60);

/// What broke, by invariant; the first messages of each are kept.
#[derive(Default)]
pub struct Violations(Mutex<BTreeMap<String, (u64, Vec<String>)>>);

impl Violations {
    pub fn add(&self, invariant: &str, message: impl Into<String>) {
        let mut message = message.into();
        // Docker argv holds the padded environment: kept short, but long
        // enough for a convergence failure's log lines.
        if message.len() > 2000 {
            let mut end = 2000;
            while !message.is_char_boundary(end) {
                end -= 1;
            }
            message.truncate(end);
            message.push_str(" ...");
        }
        eprintln!("soak: VIOLATION of {invariant}: {message}");
        let mut all = self.0.lock().unwrap();
        let (count, kept) = all.entry(invariant.to_owned()).or_default();
        *count += 1;
        if kept.len() < 20 {
            kept.push(message);
        }
    }

    pub fn count(&self) -> usize {
        self.0
            .lock()
            .unwrap()
            .values()
            .map(|(n, _)| *n as usize)
            .sum()
    }

    pub fn report(&self) -> String {
        let mut out = String::new();
        for (invariant, (count, kept)) in self.0.lock().unwrap().iter() {
            out.push_str(&format!(
                "invariant '{invariant}' broken {count} time(s):\n"
            ));
            for message in kept {
                out.push_str(&format!("  - {message}\n"));
            }
        }
        out
    }
}

/// `contract`: the answer is documented, and an error is JSON with an
/// `error`.
pub fn check_answer(violations: &Violations, doc: &Value, method: &str, path: &str, reply: &Reply) {
    for problem in answer_problems(doc, method, path, reply) {
        violations.add("contract", problem);
    }
    if reply.status >= 400 && !reply.body["error"].is_string() {
        violations.add(
            "contract",
            format!(
                "{method} {path} -> {}: not a JSON error: {}",
                reply.status, reply.body
            ),
        );
    }
}

/// Why the connector went back to an earlier definition by itself, if the
/// newest change of the definition in `changes` (a service's history,
/// newest first, as served or stored) is such a rollback.
pub fn connector_rollback(changes: &Value) -> Option<String> {
    let newest = changes
        .as_array()?
        .iter()
        .find(|change| change["kind"] != "scaled")?;
    (newest["kind"] == "rolled_back" && newest["caller"] == "connector")
        .then(|| newest["reason"].as_str().unwrap_or_default().to_owned())
}

/// The served history's rollback, as [`connector_rollback`] reads it.
pub async fn served_rollback(
    connector: &Connector,
    doc: &Value,
    violations: &Violations,
    name: &str,
) -> Option<String> {
    let path = format!("/service/{name}/history");
    let Outcome::Answered(reply) = connector.send("GET", &path, None).await else {
        return None;
    };
    check_answer(violations, doc, "GET", &path, &reply);
    connector_rollback(&reply.body["changes"])
}

/// The state the connector serves for `name`: GET /service/<name>, and the
/// desired count from its status. `None` when it could not be read (the
/// status needs docker, which may be cut).
pub async fn served_state(
    connector: &Connector,
    doc: &Value,
    violations: &Violations,
    name: &str,
) -> Option<Result<State, String>> {
    let path = format!("/service/{name}");
    let Outcome::Answered(reply) = connector.send("GET", &path, None).await else {
        return None;
    };
    check_answer(violations, doc, "GET", &path, &reply);
    match reply.status {
        404 => return Some(Ok(None)),
        200 => {}
        _ => return None,
    }
    let Some(version) = version_of(name, &reply.body) else {
        return Some(Err(format!(
            "serves a definition the soak never wrote: {}",
            reply.body
        )));
    };
    let status_path = format!("/service/{name}/status");
    let Outcome::Answered(status) = connector.send("GET", &status_path, None).await else {
        return None;
    };
    check_answer(violations, doc, "GET", &status_path, &status);
    match status.status {
        200 => {}
        // Deleted meanwhile (no client writes now, but be exact).
        404 => return Some(Ok(None)),
        _ => return None,
    }
    let desired = status.body["desired_resources"].as_u64()? as u32;
    Some(Ok(Some(Live { version, desired })))
}

/// `acknowledged writes`, on the data files of a stopped connector: each
/// service's stored state is one its model allows (a write in flight at
/// the kill counts either way), and the files hold no other service.
pub fn check_store(violations: &Violations, models: &Models, data_file: &std::path::Path) {
    let read = std::panic::catch_unwind(|| stored_state(data_file));
    let stored = match read {
        Ok(stored) => stored,
        Err(panic) => {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            violations.add(
                "acknowledged writes",
                format!("the data files cannot be read back: {message}"),
            );
            return;
        }
    };
    let services = stored["services"].as_object().cloned().unwrap_or_default();
    for name in services.keys() {
        if !models.contains(name) {
            violations.add(
                "acknowledged writes",
                format!("the data files hold {name}, which no client wrote"),
            );
        }
    }
    for name in models.names() {
        let model = models.get(name).lock().unwrap();
        let state: Result<State, String> = match services.get(name) {
            None => Ok(None),
            Some(entry) => match version_of(name, &entry["definition"]) {
                None => Err(format!("a definition the soak never wrote: {entry}")),
                Some(version) => Ok(Some(Live {
                    version,
                    desired: entry["desired"].as_u64().unwrap_or(u64::MAX) as u32,
                })),
            },
        };
        let acceptable = model.acceptable();
        let rolled_back = |state: &State| {
            state.is_some_and(|live| {
                model.earlier.contains(&live.version)
                    && acceptable
                        .iter()
                        .flatten()
                        .any(|a| a.desired == live.desired)
                    && connector_rollback(&services[name]["changes"]).is_some()
            })
        };
        match state {
            Ok(state) if acceptable.contains(&state) => {}
            Ok(state) if rolled_back(&state) => {}
            Ok(state) => violations.add(
                "acknowledged writes",
                format!(
                    "{name}: the data files hold {}, the acknowledged writes say {}",
                    describe(&state),
                    describe_all(&acceptable)
                ),
            ),
            Err(e) => violations.add("acknowledged writes", format!("{name}: {e}")),
        }
    }
}

/// One container of ours as `docker ps -a` lists it.
struct Ours {
    id: String,
    state: String,
    service: String,
    hash: String,
}

/// Every container carrying the soak's instance label, in any state.
async fn our_containers(instance: &str) -> Result<Vec<Ours>, String> {
    let out = tokio::process::Command::new("docker")
        .args([
            "ps",
            "-a",
            "--no-trunc",
            "--filter",
            &format!("label=docker-connector.instance={instance}"),
            "--format",
            "{{.ID}} {{.State}} {{.Label \"docker-connector.service\"}} {{.Label \"docker-connector.config-hash\"}}",
        ])
        .output()
        .await
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| {
            let mut fields = line.split(' ');
            Some(Ours {
                id: fields.next()?.to_owned(),
                state: fields.next()?.to_owned(),
                service: fields.next().unwrap_or_default().to_owned(),
                hash: fields.next().unwrap_or_default().to_owned(),
            })
        })
        .collect())
}

/// The soak version a container runs, from its environment.
async fn version_in(id: &str) -> Option<u32> {
    let out = tokio::process::Command::new("docker")
        .args([
            "inspect",
            "--format",
            "{{range .Config.Env}}{{println .}}{{end}}",
            id,
        ])
        .output()
        .await
        .ok()?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|line| line.strip_prefix("SOAK_VERSION="))
        .and_then(|v| v.parse().ok())
}

/// Config hashes seen, and the soak version each was started from (read
/// from a container's environment the first time the hash is seen).
#[derive(Default)]
pub struct Hashes(Mutex<HashMap<String, u32>>);

impl Hashes {
    async fn version(&self, hash: &str, id: &str) -> Option<u32> {
        if let Some(version) = self.0.lock().unwrap().get(hash) {
            return Some(*version);
        }
        let version = version_in(id).await?;
        self.0.lock().unwrap().insert(hash.to_owned(), version);
        Some(version)
    }
}

/// The work between the engine's containers and the desired states: how
/// many containers of a current definition must start (each service's
/// desired count less its running containers of that definition), and how
/// many of ours must go (all the others, but for a service's running
/// containers of its current definition up to its desired count). A
/// listing that fails counts as no work.
async fn backlog(instance: &str, desired: &BTreeMap<String, State>, hashes: &Hashes) -> (u32, u32) {
    let Ok(containers) = our_containers(instance).await else {
        return (0, 0);
    };
    let mut current_running: BTreeMap<&str, u32> = BTreeMap::new();
    for c in containers.iter().filter(|c| c.state == "running") {
        let Some(Some(live)) = desired.get(&c.service) else {
            continue;
        };
        if hashes.version(&c.hash, &c.id).await == Some(live.version) {
            *current_running.entry(c.service.as_str()).or_default() += 1;
        }
    }
    let mut starts = 0;
    let mut kept = 0;
    for (name, state) in desired {
        let want = state.map_or(0, |live| live.desired);
        let have = current_running.get(name.as_str()).copied().unwrap_or(0);
        starts += want.saturating_sub(have);
        kept += want.min(have);
    }
    let total = u32::try_from(containers.len()).unwrap_or(u32::MAX);
    (starts, total.saturating_sub(kept))
}

/// What keeps the engine's containers from matching the desired states;
/// empty when they match.
async fn departures(
    instance: &str,
    desired: &BTreeMap<String, State>,
    hashes: &Hashes,
) -> Vec<(String, String)> {
    let containers = match our_containers(instance).await {
        Ok(containers) => containers,
        Err(e) => return vec![(String::new(), format!("docker ps failed: {e}"))],
    };
    let mut out = Vec::new();
    let mut running: BTreeMap<&str, u32> = BTreeMap::new();
    for c in &containers {
        let short = &c.id[..12.min(c.id.len())];
        if c.state != "running" {
            out.push((
                c.service.clone(),
                format!("{} container {short} is {}", c.service, c.state),
            ));
            continue;
        }
        let Some(state) = desired.get(&c.service) else {
            out.push((
                c.service.clone(),
                format!(
                    "container {short} runs for {:?}, no service of the soak",
                    c.service
                ),
            ));
            continue;
        };
        let Some(live) = state else {
            out.push((
                c.service.clone(),
                format!("{} is deleted, its container {short} runs", c.service),
            ));
            continue;
        };
        match hashes.version(&c.hash, &c.id).await {
            Some(version) if version == live.version => {
                *running.entry(c.service.as_str()).or_default() += 1;
            }
            Some(version) => out.push((
                c.service.clone(),
                format!(
                    "{} container {short} runs v{version}, the current definition is v{}",
                    c.service, live.version
                ),
            )),
            // Removed between the listing and the inspect.
            None => out.push((
                c.service.clone(),
                format!("{} container {short} vanished", c.service),
            )),
        }
    }
    for (name, state) in desired {
        let want = state.map_or(0, |live| live.desired);
        let have = running.get(name.as_str()).copied().unwrap_or(0);
        if want != have {
            out.push((
                name.clone(),
                format!(
                    "{name}: {have} running of v{}, desired {want}",
                    state.map_or(0, |l| l.version)
                ),
            ));
        }
    }
    out
}

/// `convergence`: with no client writing and no fault on, waits until the
/// engine runs exactly what every service's model says (each model made
/// exact first by what the connector serves); returns how long that took
/// and its bound, records both, and adds a violation if it was longer than
/// [`CONVERGENCE_BOUND`] plus the engine's own time for the work the
/// checkpoint found to do: the containers to start and to remove, at the
/// raw CLI's pace measured before the storm (see `engine_pace`).
pub async fn check_convergence(
    connector: &Connector,
    doc: &Value,
    violations: &Violations,
    figures: &Figures,
    models: &Models,
    instance: &str,
    hashes: &Hashes,
) -> (Duration, Duration) {
    let started = Instant::now();
    // Read all at once: the clock runs.
    let names: Vec<String> = models.names().cloned().collect();
    let states = futures::future::join_all(
        names
            .iter()
            .map(|name| resolve(connector, doc, violations, figures, models, name)),
    )
    .await;
    let mut desired: BTreeMap<String, State> = names.into_iter().zip(states).collect();
    let (starts, removals) = backlog(instance, &desired, hashes).await;
    let allowance = figures
        .pace()
        .map_or(Duration::ZERO, |pace| pace.allowance(starts, removals));
    let bound = CONVERGENCE_BOUND + allowance;
    let mut last = Vec::new();
    let mut believed: Vec<String> = Vec::new();
    let mut resolved = Instant::now();
    let took = loop {
        // Converged as of when the listing was asked for.
        let polled_at = started.elapsed();
        let now = departures(instance, &desired, hashes).await;
        if now.is_empty() {
            break polled_at;
        }
        // The connector may go back to an earlier definition by itself
        // meanwhile (a roll that failed): what it serves is read again.
        if resolved.elapsed() > Duration::from_secs(1) {
            resolved = Instant::now();
            let names: std::collections::BTreeSet<String> = now
                .iter()
                .map(|(name, _)| name.clone())
                .filter(|name| models.contains(name))
                .collect();
            let states = futures::future::join_all(
                names
                    .iter()
                    .map(|name| resolve(connector, doc, violations, figures, models, name)),
            )
            .await;
            desired.extend(names.into_iter().zip(states));
        }
        // Once over the bound, what the connector itself believes of each
        // service still wrong, once: tells a stale index (it believes all
        // is well) from a reconciler that knows and does not act.
        if started.elapsed() > bound && believed.is_empty() {
            for (name, _) in &now {
                let status = match connector
                    .send("GET", &format!("/service/{name}/status"), None)
                    .await
                {
                    Outcome::Answered(reply) => reply.body.to_string(),
                    Outcome::Lost(why) => format!("no answer: {why}"),
                };
                // What it did about the service comes first: the status
                // is long, and the message is cut short.
                believed.push(format!(
                    "{name}: its last log lines:\n{}\nits status: {status}",
                    connector.log_about(name, 6)
                ));
            }
        }
        last = now.into_iter().map(|(_, message)| message).collect();
        if started.elapsed() > CONVERGENCE_WATCH {
            violations.add(
                "convergence",
                format!(
                    "not converged {CONVERGENCE_WATCH:?} after the last fault: {}; \
                     the connector's status at {:.1} s: {}",
                    last.join("; "),
                    bound.as_secs_f64(),
                    believed.join("; ")
                ),
            );
            figures.convergence(started.elapsed(), bound);
            return (started.elapsed(), bound);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    figures.convergence(took, bound);
    if took > bound {
        violations.add(
            "convergence",
            format!(
                "took {:.1} s after the last fault (bound {:.1} s: {CONVERGENCE_BOUND:?} and \
                 {:.1} s of the engine's time for {starts} starts and {removals} removals); \
                 still wrong {:.1} s in: {}; the connector's status then: {}",
                took.as_secs_f64(),
                bound.as_secs_f64(),
                allowance.as_secs_f64(),
                bound.as_secs_f64(),
                last.join("; "),
                believed.join("; ")
            ),
        );
    }
    (took, bound)
}

/// Makes a model exact by what the connector serves, which must be one of
/// its states, or an earlier definition the connector went back to by
/// itself (its history says so).
pub async fn resolve(
    connector: &Connector,
    doc: &Value,
    violations: &Violations,
    figures: &Figures,
    models: &Models,
    name: &str,
) -> State {
    for _ in 0..50 {
        match served_state(connector, doc, violations, name).await {
            Some(Ok(state)) => {
                let fits = models.get(name).lock().unwrap().possible.contains(&state);
                if !fits {
                    if let Some(live) = state {
                        if let Some(reason) =
                            served_rollback(connector, doc, violations, name).await
                        {
                            let mut model = models.get(name).lock().unwrap();
                            if model.rolled_back(live.version) && model.possible.contains(&state) {
                                figures.rollback(&reason);
                                model.possible = vec![state];
                                return state;
                            }
                        }
                    }
                }
                let mut model = models.get(name).lock().unwrap();
                if !model.narrow(|s| *s == state) {
                    violations.add(
                        "acknowledged writes",
                        format!(
                            "{name}: the connector serves {}, the acknowledged writes say {}",
                            describe(&state),
                            describe_all(&model.possible)
                        ),
                    );
                    model.possible = vec![state];
                }
                return state;
            }
            Some(Err(e)) => {
                violations.add("acknowledged writes", format!("{name}: {e}"));
                return None;
            }
            None => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
    violations.add(
        "acknowledged writes",
        format!("{name}: its state could not be read for 10 s"),
    );
    models.get(name).lock().unwrap().possible[0]
}

/// A container started outside the connector, and how it was at the start.
pub struct Foreign {
    pub id: String,
    pub what: String,
    pub started_at: String,
    pub restarts: String,
}

impl Foreign {
    fn inspect(id: &str) -> Option<(String, String, String)> {
        let out = std::process::Command::new("docker")
            .args([
                "inspect",
                "--format",
                "{{.State.Status}} {{.State.StartedAt}} {{.RestartCount}}",
                id,
            ])
            .output()
            .ok()?;
        let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        let mut fields = text.split(' ');
        Some((
            fields.next()?.to_owned(),
            fields.next()?.to_owned(),
            fields.next()?.to_owned(),
        ))
    }

    pub fn watch(id: &str, what: &str) -> Foreign {
        let (_, started_at, restarts) = Self::inspect(id).expect("a foreign container to watch");
        Foreign {
            id: id.to_owned(),
            what: what.to_owned(),
            started_at,
            restarts,
        }
    }

    /// `foreign containers`: same id, running, same start and restarts.
    pub fn check(&self, violations: &Violations) {
        match Self::inspect(&self.id) {
            None => violations.add(
                "foreign containers",
                format!("{} ({}) is gone", self.what, self.id),
            ),
            Some((state, started_at, restarts)) => {
                if state != "running" || started_at != self.started_at || restarts != self.restarts
                {
                    violations.add(
                        "foreign containers",
                        format!(
                            "{} ({}) is {state}, started {started_at}, restarted {restarts} times; it was running, started {}, restarted {} times",
                            self.what, self.id, self.started_at, self.restarts
                        ),
                    );
                }
            }
        }
    }
}

/// `orphans`: every process whose environment carries `docker_host` is the
/// live connector or a descendant of it.
pub fn check_orphans(violations: &Violations, docker_host: &str, live: Option<u32>) {
    let needle = format!("DOCKER_HOST={docker_host}");
    for process in Process::all() {
        if !process.is_running() || Some(process.pid) == live {
            continue;
        }
        let carries = process
            .environ
            .split(|b| *b == 0)
            .any(|var| var == needle.as_bytes());
        if !carries {
            continue;
        }
        let mut ancestor = process.parent;
        let mut owned = false;
        for _ in 0..32 {
            if Some(ancestor) == live {
                owned = true;
                break;
            }
            match Process::read(ancestor) {
                Some(p) if p.pid > 1 => ancestor = p.parent,
                _ => break,
            }
        }
        if !owned {
            violations.add(
                "orphans",
                format!(
                    "{} carries the proxy's DOCKER_HOST, its parent is {} and the live connector {:?}",
                    process.describe().replace(&"p".repeat(64), ""),
                    process.parent,
                    live
                ),
            );
        }
    }
}

/// `resources`: each of RSS, descriptors and threads at the end within 10%
/// of after warm-up.
pub fn check_resources(violations: &Violations, warm: Resources, end: Resources) {
    let within = |name: &str, before: u64, after: u64| {
        let bound = before as f64 * 1.10;
        if after as f64 > bound {
            violations.add(
                "resources",
                format!(
                    "{name} grew from {before} after warm-up to {after} at the end (bound +10%)"
                ),
            );
        }
    };
    within("VmRSS (KiB)", warm.rss_kib, end.rss_kib);
    within("open descriptors", warm.fds, end.fds);
    within("threads", warm.threads, end.threads);
}
