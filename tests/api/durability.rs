//! The definitions on disk: every acknowledged write survives `kill -9` at any
//! moment, and a write the disk refuses (full) answers 500 and changes
//! neither the files nor what is served.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Map, Value};

use crate::support::app::{AppOptions, TestApp};
use crate::support::docker::TEST_IMAGE;
use crate::support::figures::record_figures;
use crate::support::rng::Rng;
use crate::support::store::{journal_of, stored_state};

/// Writers hammering the connector at once in the crash test.
const CLIENTS: usize = 16;
/// Names each writer owns. Writers never share a name, so each name has one
/// write outstanding at a time and "its last acknowledged write" is well
/// defined.
const NAMES_PER_CLIENT: u64 = 4;
/// Kills, each followed by a check of the file and a restart.
const ROUNDS: usize = 8;
/// How long writes flow before each kill, in milliseconds.
const KILL_AFTER_MS: std::ops::Range<u64> = 100..700;

/// One write a client sends, and what its name holds if it lands.
#[derive(Debug, Clone)]
struct Write {
    method: &'static str,
    path: String,
    name: String,
    body: Option<Value>,
    /// The definition as `GET /service` shows it once the write landed;
    /// `None` for a delete.
    lands_as: Option<Value>,
    /// The status that acknowledges it.
    acked_by: u16,
}

/// What one writer saw between a start of the connector and its kill.
#[derive(Default)]
struct Outcome {
    acked: u64,
    /// The write sent but not answered when the connector died: it may or
    /// may not have landed.
    in_flight: Option<Write>,
    /// Answers a correct connector never gives here.
    surprises: Vec<String>,
}

/// A client writing definitions of its own names as fast as it can.
struct Writer {
    client: usize,
    rng: Rng,
    /// Numbers every write, so no two writes store the same definition and a
    /// stored one tells which write it came from.
    seq: u64,
    /// What each of its names holds: exact at the start of a round (it is
    /// read back from the file after each kill), then updated by every
    /// acknowledged write.
    known: BTreeMap<String, Option<Value>>,
}

impl Writer {
    fn new(client: usize, seed: u64) -> Self {
        let known = (0..NAMES_PER_CLIENT)
            .map(|k| (format!("w{client:02}-{k}"), None))
            .collect();
        Writer {
            client,
            rng: Rng::new(seed),
            seq: 0,
            known,
        }
    }

    /// The next write: create an absent name (by POST, or PUT now and then),
    /// replace a present one with another command and environment, or delete
    /// it.
    fn next_write(&mut self) -> Write {
        let name = format!("w{:02}-{}", self.client, self.rng.below(NAMES_PER_CLIENT));
        self.seq += 1;
        let seq = self.seq;
        let command = if seq % 2 == 0 {
            json!(format!("sleep {seq}"))
        } else {
            json!(["sleep", seq.to_string()])
        };
        let mut environment = Map::new();
        environment.insert("CLIENT".into(), json!(self.client.to_string()));
        environment.insert("SEQ".into(), json!(seq.to_string()));
        // Definitions of very different sizes, so the file grows and shrinks
        // and a torn write would show as a file that does not parse.
        for i in 0..self.rng.below(8) {
            environment.insert(format!("PAD_{i}"), json!("x".repeat(200)));
        }
        let definition = json!({
            "name": name,
            "image": TEST_IMAGE,
            "command": command,
            "environment": environment,
            "ports": null,
        });
        let by_name = format!("/service/{name}");
        let (method, path, body, lands_as, acked_by) = match self.known[&name] {
            None if self.rng.below(3) == 0 => (
                "PUT",
                by_name,
                Some(definition.clone()),
                Some(definition),
                201,
            ),
            None => (
                "POST",
                "/service".to_owned(),
                Some(definition.clone()),
                Some(definition),
                201,
            ),
            Some(_) if self.rng.below(4) == 0 => ("DELETE", by_name, None, None, 204),
            Some(_) => (
                "PUT",
                by_name,
                Some(definition.clone()),
                Some(definition),
                200,
            ),
        };
        Write {
            method,
            path,
            name,
            body,
            lands_as,
            acked_by,
        }
    }

    /// Writes until the connector is killed. A failed request is the write in
    /// flight at the kill only if the kill had begun; before that, any
    /// failure is a surprise.
    async fn run(
        mut self,
        http: reqwest::Client,
        base: String,
        token: Option<String>,
        killed: Arc<AtomicBool>,
    ) -> (Writer, Outcome) {
        let mut outcome = Outcome::default();
        // Checked before each request: once the kill begins no new request
        // goes out, so none can reach another test's server that happens to
        // be given the dead one's port.
        while !killed.load(Ordering::SeqCst) {
            let write = self.next_write();
            let method = reqwest::Method::from_bytes(write.method.as_bytes()).unwrap();
            let mut request = http.request(method, format!("{base}{}", write.path));
            if let Some(token) = &token {
                request = request.bearer_auth(token);
            }
            if let Some(body) = &write.body {
                request = request
                    .header("content-type", "application/json")
                    .body(body.to_string());
            }
            match request.send().await {
                Ok(response) if response.status().as_u16() == write.acked_by => {
                    self.known.insert(write.name, write.lands_as);
                    outcome.acked += 1;
                }
                Ok(response) => {
                    let status = response.status();
                    let text = response.text().await.unwrap_or_default();
                    outcome.surprises.push(format!(
                        "{} {} answered {status} {text}, expected {}",
                        write.method, write.path, write.acked_by
                    ));
                    break;
                }
                Err(e) if killed.load(Ordering::SeqCst) && !e.is_timeout() => {
                    outcome.in_flight = Some(write);
                    break;
                }
                Err(e) => {
                    outcome.surprises.push(format!(
                        "{} {} failed while the connector should be up: {e:?}",
                        write.method, write.path
                    ));
                    break;
                }
            }
        }
        (self, outcome)
    }
}

/// The definitions the store's files hold, after checking their layout.
fn services_on_disk(path: &Path) -> Map<String, Value> {
    let state = stored_state(path);
    let services = state["services"]
        .as_object()
        .unwrap_or_else(|| panic!("\"services\" is not an object: {state}"));
    services
        .iter()
        .map(|(name, entry)| {
            assert!(entry["desired"].is_u64(), "{name}: {entry}");
            (name.clone(), entry["definition"].clone())
        })
        .collect()
}

/// The journal record the data file holds everything up to.
fn folded_up_to(path: &Path) -> u64 {
    let snapshot: Value = serde_json::from_slice(&fs::read(path).unwrap()).unwrap();
    snapshot["journal_seq"].as_u64().unwrap_or(0)
}

/// A stored state, briefly: the command tells which write stored it.
fn describe(state: &Option<Value>) -> String {
    state
        .as_ref()
        .map_or("absent".to_owned(), |d| d["command"].to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_kill_9_at_random_moments() {
    let (mut rng, seed) = Rng::from_env_or_clock("CRASH_SEED");
    println!("crash test seed {seed}: CRASH_SEED={seed} replays its kill delays and writes");
    // A small journal limit, so compactions run all through the storm and
    // the kills land in them too.
    let mut app =
        TestApp::spawn_with(AppOptions::new().env("ROCKET_JOURNAL_COMPACTION_BYTES", "8192")).await;
    let mut compactions = 0;
    let mut folded = folded_up_to(&app.data_file());
    // Nobody writes it again: rewriting the file for other names must keep it.
    let untouched = app
        .create_service("untouched", json!({"environment": {"A": "1"}}))
        .await;
    let mut writers: Vec<Writer> = (0..CLIENTS).map(|c| Writer::new(c, rng.next())).collect();

    let (mut acked, mut in_flight, mut landed, mut checked) = (0u64, 0u64, 0u64, 0u64);
    let mut lost = Vec::new();
    let mut surprises = Vec::new();
    for round in 1..=ROUNDS {
        let killed = Arc::new(AtomicBool::new(false));
        // A fresh client per round: no pooled connection to a dead port.
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        let token = app.token().map(str::to_owned);
        let tasks: Vec<_> = writers
            .drain(..)
            .map(|w| tokio::spawn(w.run(http.clone(), app.url(""), token.clone(), killed.clone())))
            .collect();
        let delay = KILL_AFTER_MS.start + rng.below(KILL_AFTER_MS.end - KILL_AFTER_MS.start);
        tokio::time::sleep(Duration::from_millis(delay)).await;
        killed.store(true, Ordering::SeqCst);
        app.stop();

        let mut round_acked = 0;
        let mut outcomes = Vec::new();
        for task in tasks {
            let (writer, outcome) = task.await.unwrap();
            round_acked += outcome.acked;
            surprises.extend(
                outcome
                    .surprises
                    .iter()
                    .map(|s| format!("round {round}: {s}")),
            );
            writers.push(writer);
            outcomes.push(outcome);
        }
        acked += round_acked;

        // The dead connector's file: each name holds its last acknowledged
        // state, or the state of the write in flight on it at the kill.
        let services = services_on_disk(&app.data_file());
        let now_folded = folded_up_to(&app.data_file());
        compactions += usize::from(now_folded != folded);
        let mut names = vec!["untouched".to_owned()];
        if services.get("untouched") != Some(&untouched) {
            lost.push(format!(
                "round {round}: 'untouched' is {:?}",
                services.get("untouched")
            ));
        }
        for (writer, outcome) in writers.iter_mut().zip(&outcomes) {
            in_flight += u64::from(outcome.in_flight.is_some());
            for (name, known) in writer.known.iter_mut() {
                names.push(name.clone());
                checked += 1;
                let actual = services.get(name).cloned();
                let pending = outcome.in_flight.as_ref().filter(|w| &w.name == name);
                if actual == *known {
                    continue;
                }
                if pending.is_some_and(|w| w.lands_as == actual) {
                    landed += 1;
                } else {
                    lost.push(format!(
                        "round {round} (killed after {delay} ms): {name} holds {}, \
                         but its last acknowledged write left {} and the one in flight {}",
                        describe(&actual),
                        describe(known),
                        pending.map_or("none".to_owned(), |w| format!(
                            "{} {}",
                            w.method,
                            describe(&w.lands_as)
                        )),
                    ));
                }
                // What the file holds is what the next round starts from.
                *known = actual;
            }
        }
        for name in services.keys().filter(|n| !names.contains(n)) {
            lost.push(format!("round {round}: {name} was never written"));
        }
        println!(
            "round {round}: killed after {delay} ms, {round_acked} writes acknowledged, {} in flight",
            outcomes.iter().filter(|o| o.in_flight.is_some()).count()
        );

        // The restarted connector serves exactly what the file holds.
        app.restart();
        // The restart folds the journal in; what the next storm folds counts.
        folded = folded_up_to(&app.data_file());
        let listed = app.get("/service").await;
        assert_eq!(listed.status, 200, "{listed:?}");
        if listed.body != Value::Object(services.clone()) {
            lost.push(format!(
                "round {round}: after the restart GET /service shows {} but the file holds {}",
                listed.body,
                Value::Object(services)
            ));
        }
    }

    record_figures(
        "crash",
        &[
            ("seed", seed.to_string()),
            ("kill -9 rounds", ROUNDS.to_string()),
            ("concurrent writers", CLIENTS.to_string()),
            ("writes acknowledged", acked.to_string()),
            ("writes in flight at a kill", in_flight.to_string()),
            ("of which landed", landed.to_string()),
            ("definitions checked after kills", checked.to_string()),
            ("acknowledged writes lost", lost.len().to_string()),
            (
                "rounds in which the journal was folded into the data file",
                format!("{compactions} of {ROUNDS}"),
            ),
        ],
    );
    assert!(surprises.is_empty(), "{}", surprises.join("\n"));
    assert!(lost.is_empty(), "seed {seed}:\n{}", lost.join("\n"));
    // Otherwise the kills hit an idle connector and proved nothing.
    assert!(
        acked > 0 && in_flight > 0,
        "acked {acked}, in flight {in_flight}"
    );
    assert!(compactions > 0, "no compaction ran during the storm");
}

/// Undoes a mount or a file attribute when dropped, so a failing test leaves
/// neither behind.
pub(crate) struct Undo(Option<Box<dyn FnOnce() + Send>>);

impl Undo {
    fn new(undo: impl FnOnce() + Send + 'static) -> Self {
        Undo(Some(Box::new(undo)))
    }
}

impl Drop for Undo {
    fn drop(&mut self) {
        if let Some(undo) = self.0.take() {
            undo();
        }
    }
}

/// Runs a system command; its stderr on failure.
fn run(program: &str, args: &[&str]) -> Result<(), String> {
    match Command::new(program).args(args).output() {
        Ok(out) if out.status.success() => Ok(()),
        Ok(out) => Err(String::from_utf8_lossy(&out.stderr).trim().to_owned()),
        Err(e) => Err(format!("{program}: {e}")),
    }
}

fn unmount(dir: &Path) {
    let dir = dir.to_str().unwrap();
    // Lazily if something still holds it, so the mount never outlives the test.
    if run("umount", &[dir]).is_err() {
        let _ = run("umount", &["-l", dir]);
    }
}

/// Mounts a 256 KiB tmpfs on `dir`: a disk that fills in milliseconds and
/// never touches the host's. Mounting needs root (or CAP_SYS_ADMIN), as
/// `.ci/run` has; there is no other honest way to get ENOSPC, so without it
/// the test fails rather than skipping.
fn mount_tiny_filesystem(dir: &Path) -> Undo {
    let path = dir.to_str().unwrap();
    if let Err(e) = run(
        "mount",
        &["-t", "tmpfs", "-o", "size=256k,mode=0700", "tmpfs", path],
    ) {
        panic!("the full-disk check needs to mount a 256 KiB tmpfs on {path} (run as root): {e}");
    }
    let dir = dir.to_path_buf();
    Undo::new(move || unmount(&dir))
}

/// Fills the filesystem holding `dir` and returns the file that fills it.
fn fill_up(dir: &Path) -> PathBuf {
    const ENOSPC: i32 = 28;
    let filler = dir.join("filler");
    let mut file = File::create(&filler).unwrap();
    loop {
        match file.write_all(&[0; 4096]) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(ENOSPC) => break,
            Err(e) => panic!("filling {}: {e}", dir.display()),
        }
    }
    // Not one more byte fits, wherever it goes.
    let probe = dir.join("probe");
    let result = File::create(&probe).and_then(|mut f| f.write_all(b"x"));
    let _ = fs::remove_file(&probe);
    assert!(result.is_err(), "{} is not full", dir.display());
    filler
}

/// Whether creating a file in `dir` fails.
fn refuses_new_files(dir: &Path) -> bool {
    let probe = dir.join("probe");
    match File::create(&probe) {
        Ok(_) => {
            let _ = fs::remove_file(&probe);
            false
        }
        Err(_) => true,
    }
}

/// Makes the journal beside `data_file` immutable (`chattr +i`), so that
/// every write of the store fails, appends through the descriptor it holds
/// open included (ext4 refuses them with EPERM), and so does replacing the
/// file. Needs root, as `.ci/run` has; fails loudly without it.
pub(crate) fn make_journal_immutable(data_file: &Path) -> Undo {
    let journal = journal_of(data_file);
    let path = journal.to_str().unwrap().to_owned();
    if let Err(e) = run("chattr", &["+i", &path]) {
        panic!("making the journal {path} immutable needs root and chattr: {e}");
    }
    Undo::new(move || {
        let _ = run("chattr", &["-i", &path]);
    })
}

/// A directory made read-only, and how.
pub(crate) struct ReadOnly {
    how: &'static str,
    _undo: Undo,
}

/// Makes `dir` refuse new entries by the first means that works here. Root
/// ignores permission bits, so root gets the immutable flag (or, on a
/// filesystem without one, a read-only bind mount); any other user gets mode
/// 0555. Fails loudly if nothing works.
pub(crate) fn make_read_only(dir: &Path) -> ReadOnly {
    let path = dir.to_str().unwrap().to_owned();
    let mut tried = Vec::new();

    match run("chattr", &["+i", &path]) {
        Ok(()) => {
            let undo = {
                let path = path.clone();
                Undo::new(move || {
                    let _ = run("chattr", &["-i", &path]);
                })
            };
            if refuses_new_files(dir) {
                return ReadOnly {
                    how: "immutable directory (chattr +i)",
                    _undo: undo,
                };
            }
            tried.push("chattr +i: files could still be created".to_owned());
        }
        Err(e) => tried.push(format!("chattr +i: {e}")),
    }

    match run("mount", &["--bind", &path, &path]) {
        Ok(()) => {
            let undo = {
                let dir = dir.to_path_buf();
                Undo::new(move || unmount(&dir))
            };
            match run("mount", &["-o", "remount,bind,ro", &path]) {
                Ok(()) if refuses_new_files(dir) => {
                    return ReadOnly {
                        how: "read-only bind mount",
                        _undo: undo,
                    }
                }
                Ok(()) => tried.push("read-only bind mount: files could still be created".into()),
                Err(e) => tried.push(format!("mount -o remount,bind,ro: {e}")),
            }
        }
        Err(e) => tried.push(format!("mount --bind: {e}")),
    }

    use std::os::unix::fs::PermissionsExt;
    let mode = fs::metadata(dir).unwrap().permissions().mode();
    fs::set_permissions(dir, fs::Permissions::from_mode(0o555)).unwrap();
    let undo = {
        let dir = dir.to_path_buf();
        Undo::new(move || {
            let _ = fs::set_permissions(&dir, fs::Permissions::from_mode(mode));
        })
    };
    if refuses_new_files(dir) {
        return ReadOnly {
            how: "directory mode 0555",
            _undo: undo,
        };
    }
    tried.push("chmod 0555: files could still be created (root ignores it)".into());
    panic!("could not make {path} read-only; tried: {tried:#?}");
}

/// An environment value large enough that a journal line holding it needs
/// a fresh page of a full tmpfs: a small line could land in the unused end
/// of the journal's last page, which a full disk still accepts.
fn padding() -> String {
    "p".repeat(6 * 1024)
}

/// A connector keeping its definitions in `data_file`, holding `web` and
/// `db` (one container).
async fn app_with_definitions(data_file: &Path) -> TestApp {
    let app =
        TestApp::spawn_with(AppOptions::new().env("ROCKET_DATA_FILE", data_file.to_str().unwrap()))
            .await;
    app.create_service(
        "web",
        json!({"command": "sleep 1", "environment": {"PAD": padding()}}),
    )
    .await;
    app.create_service("db", json!({"environment": {"PAD": padding()}}))
        .await;
    // Running, so that a DELETE's first write (the count 0) has something
    // to record: a delete of a service at count 0 writes only a short line.
    let reply = app.scale("db", json!(1)).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    app
}

fn definition(name: &str, command: &str) -> Value {
    json!({"name": name, "image": TEST_IMAGE, "command": command,
           "environment": {"PAD": padding()}})
}

fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name != "filler")
        .collect();
    names.sort();
    names
}

/// Both files' bytes: the data file and its journal.
fn files_of(data_file: &Path) -> (Vec<u8>, Vec<u8>) {
    (
        fs::read(data_file).unwrap(),
        fs::read(journal_of(data_file)).unwrap(),
    )
}

/// Sends a create, a create by PUT, a replace and a delete, each of which must
/// answer 500 naming `cause` (and not the file, which is the log's
/// business), and leave the files (byte for byte: a failed append is cut
/// back), the directory and the served definitions as they were. Returns
/// how many were refused.
async fn assert_writes_are_refused(app: &TestApp, data_file: &Path, cause: &str) -> usize {
    let dir = data_file.parent().unwrap();
    let bytes = files_of(data_file);
    let files = entries(dir);
    let served = app.get("/service").await.body;
    let writes = [
        ("POST", "/service", Some(definition("extra", "sleep 2"))),
        (
            "PUT",
            "/service/extra",
            Some(definition("extra", "sleep 3")),
        ),
        ("PUT", "/service/web", Some(definition("web", "sleep 4"))),
        // Records the count 0 first, which the disk refuses: nothing is
        // removed.
        ("DELETE", "/service/db", None),
    ];
    for (method, path, body) in &writes {
        let reply = app
            .send(
                method,
                path,
                body.as_ref().map(|b| b.to_string().into_bytes()),
            )
            .await;
        assert_eq!(reply.status, 500, "{method} {path}: {reply:?}");
        assert!(
            reply
                .header("content-type")
                .is_some_and(|t| t.starts_with("application/json")),
            "{reply:?}"
        );
        let message = reply.error();
        assert!(
            message.contains(cause),
            "{method} {path}: the error should say {cause:?}: {message}"
        );
        assert!(
            !message.contains(dir.to_str().unwrap()),
            "{method} {path}: the error shows where the files are: {message}"
        );
        assert!(
            files_of(data_file) == bytes,
            "{method} {path} changed the files"
        );
        assert_eq!(entries(dir), files, "{method} {path} left files behind");
        assert_eq!(
            app.get("/service").await.body,
            served,
            "{method} {path} changed the served definitions"
        );
    }
    assert!(
        app.log().contains(data_file.to_str().unwrap()),
        "the log names the file the disk refused"
    );
    assert_eq!(
        app.show("extra").await.status,
        404,
        "the failed create shows"
    );
    assert_eq!(
        app.show("db").await.status,
        200,
        "the failed delete took effect"
    );
    writes.len()
}

/// Once the disk takes writes again they work, and survive a restart.
/// Returns how many were accepted.
async fn assert_writes_work_again(app: &mut TestApp, data_file: &Path) -> usize {
    let reply = app.create(definition("extra", "sleep 5")).await;
    assert_eq!(reply.status, 201, "{reply:?}");
    let reply = app.put("web", definition("web", "sleep 6")).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let reply = app.delete("db").await;
    assert_eq!(reply.status, 204, "{reply:?}");

    let on_disk = Value::Object(services_on_disk(data_file));
    assert_eq!(app.get("/service").await.body, on_disk);
    let names: Vec<&String> = on_disk.as_object().unwrap().keys().collect();
    assert_eq!(names, ["extra", "web"]);
    assert_eq!(on_disk["web"]["command"], "sleep 6");
    app.restart();
    assert_eq!(app.get("/service").await.body, on_disk);
    3
}

#[tokio::test]
async fn a_write_the_disk_refuses_answers_500_and_changes_nothing() {
    // Full disk. Dropped in reverse order: the connector, the mount, the
    // mount point.
    let mount_point = tempfile::tempdir().unwrap();
    let _mounted = mount_tiny_filesystem(mount_point.path());
    let data_file = mount_point.path().join("services.json");
    let mut app = app_with_definitions(&data_file).await;
    let filler = fill_up(mount_point.path());
    let full_refused = assert_writes_are_refused(&app, &data_file, "No space left on device").await;
    fs::remove_file(filler).unwrap();
    let full_accepted = assert_writes_work_again(&mut app, &data_file).await;
    drop(app);

    // Read-only directory: no file can be created or renamed there, but the
    // journal exists already, so writes go on; the data file waits until
    // the journal can be folded into it.
    let dir = tempfile::tempdir().unwrap();
    let data_file = dir.path().join("services.json");
    let mut app = app_with_definitions(&data_file).await;
    let read_only = make_read_only(dir.path());
    let how = read_only.how;
    let ro_accepted = assert_writes_work_again(&mut app, &data_file).await;
    assert!(
        app.log()
            .contains("cannot fold the journal into the data file at start"),
        "the restart in a read-only directory says it could not fold the journal in"
    );
    drop(read_only);

    record_figures(
        "failing-writes",
        &[
            (
                "full disk (256 KiB tmpfs): writes answered 500, files and served definitions unchanged",
                format!("{full_refused} of {full_refused}"),
            ),
            (
                "full disk: writes accepted once space is freed",
                full_accepted.to_string(),
            ),
            (
                "read-only directory: how",
                how.to_owned(),
            ),
            (
                "read-only directory: writes accepted into the existing journal, and served after a restart",
                ro_accepted.to_string(),
            ),
        ],
    );
}
