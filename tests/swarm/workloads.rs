//! The workload keys on Swarm: each reaches the service's spec through its
//! `docker service create/update` flag and, from there, the task
//! containers, as `docker inspect` shows; an update takes away what the
//! new definition lacks; a network Swarm cannot join is refused by name;
//! the stop signal and the grace period are honoured; a rolling update
//! waits for health; and an update whose health check never passes is
//! rolled back by Swarm.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::lifecycle::{
    inspect_service, service_hash, serving, status_until, swarm_name, swarm_services,
};
use crate::support::app::{poll_until, suite_of, Backend, BackendTest, TestApp};
use crate::support::docker::{docker, unique_instance, HTTPD, TEST_IMAGE};

pub fn suite() -> Vec<(&'static str, BackendTest)> {
    suite_of!(
        every_workload_key_reaches_the_swarm_spec_and_the_task_containers,
        a_network_swarm_cannot_join_is_refused_by_name_before_anything_starts,
        swarm_stops_tasks_with_sigterm_and_kills_them_after_the_grace_period,
        an_update_whose_health_check_never_passes_is_rolled_back_by_swarm,
        a_rolling_update_stops_an_old_task_only_once_its_replacement_is_healthy,
    )
}

/// A docker network or volume the test made; removed when dropped, even if
/// the test panics. A network is removed only once no task is on it, so
/// its removal is retried for a while.
struct Owned {
    kind: &'static str,
    name: String,
}

impl Owned {
    fn create(kind: &'static str, name: String, options: &[&str]) -> Owned {
        let mut args = vec![kind, "create"];
        args.extend(options);
        args.push(&name);
        docker(&args);
        Owned { kind, name }
    }

    /// The id docker gave it (a Swarm spec names networks by id).
    fn id(&self) -> String {
        docker(&[self.kind, "inspect", "--format", "{{.ID}}", &self.name])
            .trim()
            .to_owned()
    }
}

impl Drop for Owned {
    fn drop(&mut self) {
        for _ in 0..60 {
            let removed = Command::new("docker")
                .args([self.kind, "rm", &self.name])
                .output()
                .is_ok_and(|out| out.status.success());
            if removed {
                return;
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        eprintln!("could not remove the test's {} {}", self.kind, self.name);
    }
}

/// A network or volume name no other test uses.
fn unique(what: &str) -> String {
    format!("{}-{what}", unique_instance())
}

/// `docker inspect` of a container, as JSON.
fn inspect_container(id: &str) -> Value {
    serde_json::from_str(&docker(&["inspect", "--format", "{{json .}}", id])).unwrap()
}

/// The service's task template, as JSON.
fn task_template(name: &str) -> Value {
    serde_json::from_str(&inspect_service(name, "{{json .Spec.TaskTemplate}}")).unwrap()
}

/// The one running task container of `service` that runs the definition
/// Swarm has now (an old one may still be within its grace period).
fn current_container(app: &TestApp, service: &str) -> Value {
    let hash = service_hash(&swarm_name(app, service));
    let current: Vec<Value> = app
        .running(service)
        .iter()
        .map(|id| inspect_container(id))
        .filter(|c| c["Config"]["Labels"]["docker-connector.config-hash"] == json!(hash))
        .collect();
    assert_eq!(current.len(), 1, "{current:#?}");
    current.into_iter().next().unwrap()
}

/// Deletes the service and waits until Swarm has removed its containers,
/// so that the test's networks and volumes can go.
async fn delete_and_wait(app: &TestApp, service: &str) {
    assert_eq!(app.delete(service).await.status, 204);
    let left: Vec<String> = poll_until(Duration::from_secs(60), || async {
        let left = app.containers(Some(service));
        (left.is_empty(), left)
    })
    .await;
    assert!(left.is_empty(), "containers left: {left:?}");
}

const SECOND: u64 = 1_000_000_000;

pub async fn every_workload_key_reaches_the_swarm_spec_and_the_task_containers(backend: Backend) {
    // Made before the app, so that they are removed after its services.
    let network = Owned::create("network", unique("net"), &["--driver", "overlay"]);
    let volume = Owned::create("volume", unique("data"), &[]);
    let app = TestApp::spawn_with(backend.options()).await;
    app.create_service(
        "web",
        json!({"command": "sleep 86400",
            "healthcheck": {"test": "true", "interval": "1s", "timeout": "1s",
                            "start_period": "1s", "retries": 2},
            "stop_grace_period": "3s",
            "resources": {"memory": "64m", "cpus": "0.5", "pids": 50},
            "networks": [network.name],
            "volumes": [{"source": volume.name, "target": "/data"}],
            "labels": {"team": "web", "traefik.enable": "true"}}),
    )
    .await;
    // Swarm counts a task with a health check as running once it is healthy.
    let reply = app.scale("web", json!(1)).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let name = swarm_name(&app, "web");

    let template = task_template(&name);
    let spec = &template["ContainerSpec"];
    assert_eq!(
        spec["Healthcheck"],
        json!({"Test": ["CMD-SHELL", "true"], "Interval": SECOND, "Timeout": SECOND,
               "StartPeriod": SECOND, "Retries": 2}),
        "{template:#}"
    );
    assert_eq!(spec["StopGracePeriod"], json!(3 * SECOND), "{template:#}");
    assert_eq!(
        template["Resources"]["Limits"],
        json!({"MemoryBytes": 64 << 20, "NanoCPUs": SECOND / 2, "Pids": 50}),
        "{template:#}"
    );
    assert_eq!(
        template["Networks"],
        json!([{"Target": network.id()}]),
        "{template:#}"
    );
    assert_eq!(
        spec["Mounts"],
        json!([{"Type": "volume", "Source": volume.name, "Target": "/data"}]),
        "{template:#}"
    );
    assert_eq!(spec["Labels"]["team"], "web", "{template:#}");
    assert_eq!(spec["Labels"]["traefik.enable"], "true", "{template:#}");
    assert_eq!(
        spec["Labels"]["docker-connector.instance"],
        json!(app.instance),
        "{template:#}"
    );

    let container = current_container(&app, "web");
    let host = &container["HostConfig"];
    assert_eq!(host["Memory"], json!(64 << 20), "{host:#}");
    assert_eq!(host["NanoCpus"], json!(SECOND / 2), "{host:#}");
    assert_eq!(host["PidsLimit"], 50, "{host:#}");
    assert_eq!(container["State"]["Health"]["Status"], "healthy");
    assert_eq!(
        container["Config"]["Healthcheck"]["Test"],
        json!(["CMD-SHELL", "true"])
    );
    let networks = &container["NetworkSettings"]["Networks"];
    assert!(networks.get(&network.name).is_some(), "{networks:#}");
    let mounts = &container["Mounts"];
    assert_eq!(mounts[0]["Name"], json!(volume.name), "{mounts:#}");
    assert_eq!(mounts[0]["Destination"], "/data", "{mounts:#}");
    assert_eq!(container["Config"]["Labels"]["team"], "web");

    // An update without most of them takes them away: the network, the
    // health check, the memory and CPU limits, the first mount, a label.
    let replaced = json!({"image": TEST_IMAGE, "command": "sleep 86400",
        "resources": {"pids": 60},
        "volumes": [{"source": volume.name, "target": "/other", "read_only": true}],
        "labels": {"team": "api"}});
    assert_eq!(app.put("web", replaced).await.status, 200);
    status_until(&app, "web", "the update rolls out", |status| {
        status["rollout"]["state"] == "complete" && status["rollout"]["updated"] == 1
    })
    .await;
    let template = task_template(&name);
    let spec = &template["ContainerSpec"];
    // What `--health-cmd=` and zero durations leave: the image's (none).
    assert_eq!(spec["Healthcheck"], json!({}), "{template:#}");
    assert_eq!(spec["StopGracePeriod"], json!(10 * SECOND), "{template:#}");
    assert_eq!(
        template["Resources"]["Limits"],
        json!({"Pids": 60}),
        "{template:#}"
    );
    // Docker leaves an emptied list out.
    assert!(
        template.get("Networks").map_or(true, |n| n == &json!([])),
        "{template:#}"
    );
    assert_eq!(
        spec["Mounts"],
        json!([{"Type": "volume", "Source": volume.name, "Target": "/other", "ReadOnly": true}]),
        "{template:#}"
    );
    assert_eq!(spec["Labels"]["team"], "api", "{template:#}");
    assert_eq!(spec["Labels"].get("traefik.enable"), None, "{template:#}");
    assert_eq!(
        spec["Labels"]["docker-connector.service"], "web",
        "{template:#}"
    );

    let container = current_container(&app, "web");
    let host = &container["HostConfig"];
    assert_eq!(
        (&host["Memory"], &host["NanoCpus"], &host["PidsLimit"]),
        (&json!(0), &json!(0), &json!(60)),
        "{host:#}"
    );
    let check = container["Config"].get("Healthcheck");
    assert!(check.and_then(|c| c.get("Test")).is_none(), "{check:?}");
    assert_eq!(container["State"].get("Health"), None);
    let networks = &container["NetworkSettings"]["Networks"];
    assert!(networks.get(&network.name).is_none(), "{networks:#}");
    let mounts = &container["Mounts"];
    assert_eq!(mounts.as_array().map(Vec::len), Some(1), "{mounts:#}");
    assert_eq!(mounts[0]["Destination"], "/other", "{mounts:#}");
    assert_eq!(mounts[0]["RW"], false, "{mounts:#}");
    assert_eq!(container["Config"]["Labels"].get("traefik.enable"), None);

    delete_and_wait(&app, "web").await;
}

pub async fn a_network_swarm_cannot_join_is_refused_by_name_before_anything_starts(
    backend: Backend,
) {
    // A definition naming a network that is missing or local is refused
    // when given (400, the API suite's); here the network changes after
    // the definition was stored, and the hand-over to Swarm finds out.
    let network = unique("net");
    let overlay = Owned::create("network", network.clone(), &["--driver", "overlay"]);
    let app = TestApp::spawn_with(backend.options()).await;
    app.create_service("web", json!({"networks": [network]}))
        .await;
    drop(overlay);
    let reply = app.scale("web", json!(1)).await;
    assert_eq!(reply.status, 502, "{reply:?}");
    let error = reply.error();
    assert!(
        error.contains(&format!("no network \"{network}\"")),
        "{error}"
    );
    assert_eq!(swarm_services(&app), Vec::<String>::new());

    // docker itself would call this one "not found", though it exists.
    let _local = Owned::create("network", network.clone(), &[]);
    let reply = app.scale("web", json!(1)).await;
    assert_eq!(reply.status, 502, "{reply:?}");
    let error = reply.error();
    assert!(
        error.contains(&format!("network \"{network}\" is a bridge network")),
        "{error}"
    );
    assert!(error.contains("overlay"), "{error}");
    assert_eq!(swarm_services(&app), Vec::<String>::new());
}

/// One task of `command` with `grace`, stopped by a scale to 0: how long
/// its container took to exit after the scale was asked for, and its exit
/// code.
async fn stop_one(app: &TestApp, service: &str, body: Value) -> (Duration, i64) {
    app.create_service(service, body).await;
    assert_eq!(app.scale(service, json!(1)).await.status, 200);
    let id = app
        .running(service)
        .pop()
        .expect("a running task container");
    // The shell has set its trap by the time docker says it runs, but give
    // it a moment beyond that on a loaded machine.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let started = Instant::now();
    assert_eq!(app.scale(service, json!(0)).await.status, 200);
    let state: Value = poll_until(Duration::from_secs(60), || async {
        let state = inspect_container(&id)["State"].clone();
        (state["Running"] == false, state)
    })
    .await;
    let took = started.elapsed();
    assert_eq!(state["Running"], false, "{state:#}");
    (took, state["ExitCode"].as_i64().unwrap())
}

pub async fn swarm_stops_tasks_with_sigterm_and_kills_them_after_the_grace_period(
    backend: Backend,
) {
    let volume = Owned::create("volume", unique("stops"), &[]);
    let app = TestApp::spawn_with(backend.options()).await;
    let polite = json!({
        "command": ["sh", "-c", "trap 'echo TERM > /data/signal; exit 0' TERM; while :; do sleep 1; done"],
        "stop_grace_period": "20s",
        "volumes": [{"source": volume.name, "target": "/data"}]});
    let (took, code) = stop_one(&app, "polite", polite).await;
    assert_eq!(code, 0, "it did not exit through its trap");
    assert!(took < Duration::from_secs(10), "took {took:?}");
    let written = docker(&[
        "run",
        "--rm",
        "--mount",
        &format!("type=volume,source={},target=/data", volume.name),
        TEST_IMAGE,
        "cat",
        "/data/signal",
    ]);
    assert_eq!(written.trim(), "TERM");

    let stubborn = json!({
        "command": ["sh", "-c", "trap '' TERM; while :; do sleep 1; done"],
        "stop_grace_period": "2s"});
    let (took, code) = stop_one(&app, "stubborn", stubborn).await;
    assert_eq!(code, 137, "not killed");
    // Swarm's default would be 10 s.
    assert!(
        (Duration::from_secs(2)..Duration::from_secs(9)).contains(&took),
        "killed after {took:?}"
    );
    for service in ["polite", "stubborn"] {
        delete_and_wait(&app, service).await;
    }
}

/// Swarm's task is `starting` until its health check passes, and fails
/// once the check has failed `retries` times; `--update-failure-action
/// rollback` then restores the earlier definition, as for a task that
/// exits.
pub async fn an_update_whose_health_check_never_passes_is_rolled_back_by_swarm(backend: Backend) {
    let app = TestApp::spawn_with(backend.options()).await;
    serving(&app, 2).await;
    let name = swarm_name(&app, "web");
    let good_hash = service_hash(&name);
    let good = app.show("web").await.body;

    let never_healthy = json!({"image": TEST_IMAGE, "command": HTTPD,
        "ports": ["8080"],
        "healthcheck": {"test": "false", "interval": "1s", "timeout": "1s", "retries": 2}});
    let started = Instant::now();
    assert_eq!(app.put("web", never_healthy).await.status, 200);
    let (rolled_back, _) = status_until(&app, "web", "the rollback", |status| {
        status["running_resources"] == 2
            && status["rollout"]["updated"] == 2
            && status["rollout"]["error"]
                .as_str()
                .is_some_and(|e| e.contains("rolled the update back") && e.contains("unhealthy"))
    })
    .await;
    let took = started.elapsed();
    assert_eq!(
        rolled_back["rollout"]["state"], "rolled_back",
        "{rolled_back:#}"
    );
    assert_eq!(service_hash(&name), good_hash);
    // The stored definition followed Swarm back.
    assert_eq!(app.show("web").await.body, good);
    let template = task_template(&name);
    assert_eq!(
        template["ContainerSpec"].get("Healthcheck"),
        None,
        "{template:#}"
    );
    crate::support::figures::record_figures(
        "swarm-health-rollback",
        &[(
            "an update whose health check never passed was rolled back, 2 earlier tasks running again, after",
            format!("{took:.1?}"),
        )],
    );
}

/// Swarm's start-first update stops an old task once the new one runs, and
/// a task with a health check runs only once the check passes: so an
/// update waits for health, with nothing of the connector's own.
pub async fn a_rolling_update_stops_an_old_task_only_once_its_replacement_is_healthy(
    backend: Backend,
) {
    let app = TestApp::spawn_with(backend.options()).await;
    // No grace: the old task's container stops the moment Swarm stops it.
    app.create_service(
        "web",
        json!({"command": HTTPD, "ports": ["8080"], "stop_grace_period": "0s"}),
    )
    .await;
    assert_eq!(app.scale("web", json!(1)).await.status, 200);
    let old = app
        .running("web")
        .pop()
        .expect("the first task's container");
    let slow = json!({"image": TEST_IMAGE,
        "command": ["sh", "-c", "sleep 4; touch /tmp/ready; exec httpd -f -p 8080 -h /www"],
        "ports": ["8080"],
        "healthcheck": {"test": "test -f /tmp/ready", "interval": "1s", "retries": 3,
                        "start_period": "30s"}});
    let started = Instant::now();
    assert_eq!(app.put("web", slow).await.status, 200);
    poll_until(Duration::from_secs(60), || async {
        let running = inspect_container(&old)["State"]["Running"] == true;
        (!running, ())
    })
    .await;
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(4),
        "old task stopped after {took:?}"
    );
    let new = current_container(&app, "web");
    assert_eq!(
        new["State"]["Health"]["Status"], "healthy",
        "{:#}",
        new["State"]
    );
    crate::support::figures::record_figures(
        "swarm-health-roll",
        &[(
            "an old task stopped once its replacement (healthy after 4 s) was healthy, after",
            format!("{took:.1?}"),
        )],
    );
}
