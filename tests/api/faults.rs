//! Docker missing, unreachable or hung: every docker-backed request answers a
//! JSON 5xx within `docker_timeout` + 1 s, a hung docker command is killed with
//! everything it started, definitions stay readable and writable meanwhile,
//! and the connector recovers by itself once docker answers again.
//!
//! A docker command that runs and fails (a start whose image is not present
//! locally) answers 502 with docker's own message and leaves no container
//! behind: `scale::a_missing_image_answers_502_with_dockers_message_and_leaves_nothing`.

use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::freshness::wait_until_live;
use crate::support::app::{poll_until, AppOptions, Reply, TestApp};
use crate::support::docker::{unique_instance, TEST_IMAGE};
use crate::support::figures::record_figures;
use crate::support::process::{real_docker, Process};

/// The requests that need docker. Under a fault the container index is not
/// live, so each lists containers through docker (status may share the
/// listing in flight) and fails with it.
const DOCKER_REQUESTS: [(&str, &str, Option<&str>); 3] = [
    ("GET", "/service/web/status", None),
    ("POST", "/service/web/scale", Some(r#"{"number": 1}"#)),
    ("DELETE", "/service/web", None),
];

/// The promise for a docker-backed request: its docker command's deadline,
/// plus one second for everything around it.
fn deadline(docker_timeout: Duration) -> Duration {
    docker_timeout + Duration::from_secs(1)
}

/// This file's figures, summed over its tests. Each test rewrites the figures
/// with the totals so far, so the last one to finish leaves the sum.
struct Totals {
    faults: usize,
    within_deadline: usize,
    /// The answer closest to its deadline: how long it took, and the deadline.
    closest: Option<(Duration, Duration)>,
    hung_left: usize,
}

static TOTALS: Mutex<Totals> = Mutex::new(Totals {
    faults: 0,
    within_deadline: 0,
    closest: None,
    hung_left: 0,
});

/// How long one docker-backed request under a fault took, and its deadline.
struct Answer {
    elapsed: Duration,
    deadline: Duration,
}

fn tally(answers: &[Answer], hung_left: usize) {
    let mut totals = TOTALS.lock().unwrap();
    totals.faults += answers.len();
    totals.within_deadline += answers.iter().filter(|a| a.elapsed < a.deadline).count();
    for answer in answers {
        let share = |(elapsed, deadline): (Duration, Duration)| {
            elapsed.as_secs_f64() / deadline.as_secs_f64()
        };
        let this = (answer.elapsed, answer.deadline);
        match totals.closest {
            Some(closest) if share(closest) >= share(this) => {}
            _ => totals.closest = Some(this),
        }
    }
    let (closest_elapsed, closest_deadline) = totals.closest.unwrap_or_default();
    totals.hung_left += hung_left;
    record_figures(
        "docker-faults",
        &[
            (
                "docker-backed requests under an injected fault",
                totals.faults.to_string(),
            ),
            (
                "answered 5xx within docker_timeout + 1 s",
                totals.within_deadline.to_string(),
            ),
            (
                "answer closest to its deadline",
                format!(
                    "{:.2} s of {} s",
                    closest_elapsed.as_secs_f64(),
                    closest_deadline.as_secs()
                ),
            ),
            (
                "hung docker processes left running",
                totals.hung_left.to_string(),
            ),
        ],
    );
}

/// Reads and writes definitions, as a client would while docker is in trouble.
async fn definitions_still_work(app: &TestApp, round: usize) {
    assert_eq!(app.show("web").await.status, 200);
    let reply = app
        .put(
            "web",
            json!({"image": TEST_IMAGE, "command": format!("sleep {round}")}),
        )
        .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let name = format!("other-{round}");
    let reply = app.create(json!({"name": name, "image": TEST_IMAGE})).await;
    assert_eq!(reply.status, 201, "{reply:?}");
    assert!(app.get("/service").await.body.get(&name).is_some());
}

/// Sends each docker-backed request while reading and writing definitions
/// alongside it. Each must answer `status` with a JSON error naming docker
/// within the deadline; the definitions must work meanwhile (and, when docker
/// hangs, be done before the docker request is), and the failed delete must
/// leave its definition.
async fn assert_docker_requests_fail(
    app: &TestApp,
    status: u16,
    docker_timeout: Duration,
    hangs: bool,
) -> Vec<Answer> {
    let mut answers = Vec::new();
    for (round, (method, path, body)) in DOCKER_REQUESTS.into_iter().enumerate() {
        let started = Instant::now();
        let docker_request = async {
            let reply = app
                .send(method, path, body.map(|b| b.as_bytes().to_vec()))
                .await;
            (reply, started.elapsed())
        };
        let definitions = async {
            definitions_still_work(app, round).await;
            started.elapsed()
        };
        let ((reply, elapsed), definitions_done) = tokio::join!(docker_request, definitions);

        assert_eq!(reply.status, status, "{method} {path}: {reply:?}");
        assert!(
            reply
                .header("content-type")
                .is_some_and(|t| t.starts_with("application/json")),
            "{method} {path}: {reply:?}"
        );
        assert!(reply.error().contains("docker"), "{reply:?}");
        let deadline = deadline(docker_timeout);
        assert!(
            elapsed < deadline,
            "{method} {path} answered after {elapsed:?}, deadline {deadline:?}"
        );
        if hangs {
            assert!(
                definitions_done < elapsed,
                "definitions waited for the hung docker command: done after \
                 {definitions_done:?}, docker answered after {elapsed:?}"
            );
        }
        answers.push(Answer { elapsed, deadline });
    }
    assert_eq!(
        app.show("web").await.status,
        200,
        "the failed delete took effect"
    );
    answers.push(assert_health_fails(app, docker_timeout).await);
    answers
}

/// `/health` asks docker too, with a deadline of its own (at most 5 s, never
/// more than `docker_timeout`): a monitor must get its 503 in time.
async fn assert_health_fails(app: &TestApp, docker_timeout: Duration) -> Answer {
    // A check within the last second is reused; wait it out.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let started = Instant::now();
    let reply = app.get("/health").await;
    let elapsed = started.elapsed();
    assert_eq!(reply.status, 503, "{reply:?}");
    assert_eq!(reply.body["status"], "fail", "{reply:?}");
    assert_eq!(reply.body["docker"]["reachable"], false, "{reply:?}");
    assert!(
        reply.body["docker"]["error"]
            .as_str()
            .is_some_and(|e| e.contains("docker")),
        "{reply:?}"
    );
    let deadline = deadline(docker_timeout.min(Duration::from_secs(5)));
    assert!(
        elapsed < deadline,
        "/health answered after {elapsed:?}, deadline {deadline:?}"
    );
    Answer { elapsed, deadline }
}

/// Starts a connector with `fault` in its environment and a 10 s docker
/// timeout, and checks every docker-backed request answers 503. The docker
/// CLI fails by itself in these faults; the generous timeout only keeps a
/// slow start of it on a loaded machine from turning 503 into 504.
async fn assert_fault_answers_503(fault: (&str, &str)) -> TestApp {
    let timeout = Duration::from_secs(10);
    let app = TestApp::spawn_with(
        AppOptions::new()
            .env(fault.0, fault.1)
            .env("ROCKET_DOCKER_TIMEOUT", "10"),
    )
    .await;
    app.create_service("web", json!({})).await;
    let answers = assert_docker_requests_fail(&app, 503, timeout, false).await;
    tally(&answers, 0);
    app
}

#[tokio::test]
async fn a_missing_docker_cli_answers_503_and_definitions_still_work() {
    let app = assert_fault_answers_503(("ROCKET_DOCKER", "/nonexistent/docker")).await;
    assert!(
        app.log().contains("not found"),
        "no warning at start: {}",
        app.log()
    );
}

#[tokio::test]
async fn an_unreachable_daemon_answers_503() {
    assert_fault_answers_503(("DOCKER_HOST", "unix:///nonexistent/docker.sock")).await;
}

/// Scales `web` to 1 with docker hung; asserts the 504 and returns the
/// reply and how long it took.
async fn scale_meeting_a_hung_docker(app: &TestApp, timeout: Duration) -> (Reply, Answer) {
    let started = Instant::now();
    let reply = app.scale("web", json!(1)).await;
    let answer = Answer {
        elapsed: started.elapsed(),
        deadline: deadline(timeout),
    };
    assert_eq!(reply.status, 504, "{reply:?}");
    (reply, answer)
}

/// A connector whose docker is `script` (see `AppOptions::fake_docker`),
/// with a `docker_timeout` of `seconds`, and a service `web` defined.
async fn app_with_web(dir: &Path, script: &str, seconds: u64) -> TestApp {
    let app = TestApp::spawn_with(
        AppOptions::new()
            .fake_docker(dir, script)
            .env("ROCKET_DOCKER_TIMEOUT", &seconds.to_string()),
    )
    .await;
    app.create_service("web", json!({})).await;
    app
}

/// Running processes of this test's hang: those whose command line names the
/// wrapper, or whose environment carries `marker`. The check by content, not
/// only by recorded pid, also finds a child started just before the deadline
/// whose pid never made it into the file, and ignores a pid reused since.
fn hung_processes(wrapper: &Path, marker: &str) -> Vec<Process> {
    let wrapper = wrapper.to_str().unwrap().as_bytes();
    let marker = marker.as_bytes();
    let contains = |hay: &[u8], needle: &[u8]| hay.windows(needle.len()).any(|w| w == needle);
    Process::all()
        .into_iter()
        .filter(|p| contains(&p.cmdline, wrapper) || contains(&p.environ, marker))
        .filter(Process::is_running)
        .collect()
}

#[tokio::test]
async fn a_hung_docker_cli_is_killed_with_its_children_and_answers_504_within_the_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let pids = dir.path().join("pids");
    let marker = format!("DOCKER_CONNECTOR_HANG={}", unique_instance());
    // No `exec`: the sleep is the wrapper's child, as a CLI plugin's or a
    // wrapper script's work would be, so killing only the direct child is
    // not enough to leave nothing running.
    let script = format!(
        "echo \"shell $$ $*\" >> {pids}\n{marker} sleep 60 &\necho \"sleep $!\" >> {pids}\nwait",
        pids = pids.display()
    );
    // Short, but long enough for the definition requests that must finish
    // while docker hangs, on a loaded machine.
    let timeout = Duration::from_secs(3);
    let app = app_with_web(dir.path(), &script, 3).await;
    let answers = assert_docker_requests_fail(&app, 504, timeout, true).await;

    let recorded = std::fs::read_to_string(&pids).unwrap();
    let shells = |verb: &str| -> Vec<u32> {
        recorded
            .lines()
            .filter_map(|l| l.strip_prefix("shell "))
            .filter_map(|l| l.split_once(' '))
            .filter(|(_, args)| args.split(' ').next() == Some(verb))
            .map(|(pid, _)| pid.parse().unwrap())
            .collect()
    };
    let service_listings = recorded
        .lines()
        .filter(|l| {
            l.starts_with("shell ")
                && l.contains(" ps ")
                && l.contains("docker-connector.service=web")
        })
        .count();
    // The event stream hangs too but has no deadline: it is the one docker
    // command meant to run for the connector's whole life.
    let streams = shells("events");
    assert_eq!(
        streams.len(),
        1,
        "one event stream, never restarted while it runs:\n{recorded}"
    );
    assert_eq!(
        shells("version").len(),
        1,
        "one check for /health:\n{recorded}"
    );
    // With the index not live, the scale and the delete each list their
    // service afresh rather than trust a shared listing.
    assert_eq!(service_listings, 2, "{recorded}");
    assert!(
        recorded.lines().any(|l| l.starts_with("sleep ")),
        "{recorded}"
    );
    // The recorded pids are among those the scan looks at. SIGKILL takes
    // effect when the killed process is next scheduled: give a loaded machine
    // a moment before calling anything a survivor.
    let wrapper = dir.path().join("fake-docker");
    let started = Instant::now();
    let deadline_bound = || -> Vec<String> {
        hung_processes(&wrapper, &marker)
            .into_iter()
            .filter(|process| !streams.contains(&process.group))
            .map(|process| process.describe())
            .collect()
    };
    let mut survivors = deadline_bound();
    while !survivors.is_empty() && started.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(100)).await;
        survivors = deadline_bound();
    }
    tally(&answers, survivors.len());
    assert!(
        survivors.is_empty(),
        "hung docker processes still run after the deadline (the whole process \
         group of the docker child must be killed): {survivors:?}\nrecorded:\n{recorded}"
    );
}

#[tokio::test]
async fn the_connector_recovers_by_itself_when_docker_works_again() {
    let dir = tempfile::tempdir().unwrap();
    let switch = dir.path().join("hang");
    let real = real_docker();
    let script = format!(
        "if [ -e {} ]; then exec sleep 60; fi\nexec {real} \"$@\"",
        switch.display()
    );
    // Long enough for real docker commands on a loaded machine.
    let timeout = Duration::from_secs(10);
    let app = app_with_web(dir.path(), &script, 10).await;
    // With the index live the scale reaches `docker run` without a listing
    // first: the hung run must then be its only wait.
    wait_until_live(&app, Duration::from_secs(10)).await;

    std::fs::write(&switch, "").unwrap();
    let (_, answer) = scale_meeting_a_hung_docker(&app, timeout).await;
    assert!(
        answer.elapsed < answer.deadline,
        "took {:?}",
        answer.elapsed
    );
    let health = assert_health_fails(&app, timeout).await;
    std::fs::remove_file(&switch).unwrap();

    let reply = app.scale("web", json!(1)).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.body["running_resources"], 1);
    // Health passes again once its one-second cache has lapsed.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let reply = app.get("/health").await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.body["status"], "pass");
    tally(&[answer, health], 0);
}

/// The docker calls of one request share `docker_timeout`: a scale whose
/// listing is slow and whose start then hangs answers within one deadline,
/// not the listing's time plus a whole deadline more.
#[tokio::test]
async fn the_docker_calls_of_one_request_share_one_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let real = real_docker();
    // The events stream fails, so the index is never live and the scale
    // lists its service first: slowly, two thirds of the deadline. Then
    // `docker run` hangs.
    let script = format!(
        "case \"$1\" in\n  events) exit 1 ;;\n  ps) sleep 2 ;;\n  run) exec sleep 60 ;;\nesac\nexec {real} \"$@\""
    );
    let timeout = Duration::from_secs(3);
    let app = app_with_web(dir.path(), &script, 3).await;

    let (reply, answer) = scale_meeting_a_hung_docker(&app, timeout).await;
    assert!(
        reply.error().contains("within 3 s"),
        "the error names the request's deadline: {reply:?}"
    );
    // Each call on its own deadline took 2 s + 3 s.
    assert!(
        answer.elapsed < answer.deadline,
        "the scale answered after {:?}; its docker calls must share {timeout:?}",
        answer.elapsed
    );
    tally(&[answer], 0);
}

/// A docker call in flight when the connector is SIGKILLed dies with it,
/// rather than live on (a hung one for ever) beside the next connector.
#[tokio::test]
async fn a_docker_call_in_flight_dies_with_a_killed_connector() {
    let dir = tempfile::tempdir().unwrap();
    let started_run = dir.path().join("run-pid");
    let real = real_docker();
    let script = format!(
        "if [ \"$1\" = run ]; then echo $$ > {}.tmp; mv {0}.tmp {0}; exec sleep 60; fi\nexec {real} \"$@\"",
        started_run.display()
    );
    let mut app = app_with_web(dir.path(), &script, 30).await;

    let scale = app.scale("web", json!(1));
    let hung_run = async {
        let pid = poll_until(Duration::from_secs(20), || async {
            let pid = std::fs::read_to_string(&started_run)
                .ok()
                .and_then(|pid| pid.trim().parse::<u32>().ok());
            (pid.is_some(), pid)
        })
        .await;
        pid.expect("docker run was never called")
    };
    let pid = tokio::select! {
        reply = scale => panic!("the scale answered while docker run hung: {reply:?}"),
        pid = hung_run => pid,
    };
    assert!(Process::read(pid).is_some_and(|p| p.is_running()));
    app.stop();

    let killed_at = Instant::now();
    while Process::read(pid).is_some_and(|p| p.is_running()) {
        assert!(
            killed_at.elapsed() < Duration::from_secs(5),
            "docker run (pid {pid}) still runs {:?} after the connector was killed",
            killed_at.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
