//! The swarm backend end to end on a real Swarm: scales that wait for
//! running tasks, tasks that carry the labels and answer on their ports, a
//! rolling update, an update Swarm rolls back, a scale Swarm cannot fulfil,
//! deletion, a Swarm service the connector does not own, and the refusal
//! to start without a manager.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use docker_connector::docker::swarm_service_name;
use docker_connector::domain::ServiceName;

use crate::support::app::{
    launch_expecting_failure, poll_until, suite_of, AppOptions, Backend, BackendTest, TestApp,
};
use crate::support::docker::{
    docker, host_port, page_on, ForeignSwarmService, HTTPD, PAGE, TEST_IMAGE,
};
use crate::support::figures::record_figures;

pub fn suite() -> Vec<(&'static str, BackendTest)> {
    suite_of!(
        scales_run_labelled_tasks_that_answer_on_their_published_ports,
        the_routing_mesh_publishes_one_port_for_the_service,
        a_rolling_update_replaces_every_task_start_first,
        an_update_that_fails_is_rolled_back_and_the_earlier_definition_keeps_running,
        a_scale_swarm_cannot_fulfil_answers_504_with_what_runs,
        delete_removes_the_swarm_service_and_swarm_its_tasks,
        a_swarm_service_without_the_connectors_labels_is_left_alone,
        the_connector_refuses_to_start_unless_the_engine_is_a_swarm_manager,
        environment_values_stay_out_of_the_debug_log,
        racing_puts_leave_swarm_running_the_definition_stored_last,
        a_scale_waiting_for_swarm_ends_when_a_later_scale_or_a_delete_comes,
        a_scale_during_a_failing_update_waits_and_keeps_the_rollback,
        the_rollback_endpoint_hands_swarm_the_previous_definition,
        the_stored_definition_follows_swarms_rollback_without_a_status_call,
    )
}

/// Long enough for Swarm on a loaded 2-core machine to start, roll or roll
/// back a few tasks.
pub const SWARM_LIMIT: Duration = Duration::from_secs(90);

/// Polls status every 50 ms until `done` holds; returns it and how long
/// that took. Panics after [`SWARM_LIMIT`] with the last status.
pub async fn status_until(
    app: &TestApp,
    service: &str,
    what: &str,
    mut done: impl FnMut(&Value) -> bool,
) -> (Value, Duration) {
    let started = Instant::now();
    loop {
        let reply = app.status(service).await;
        assert_eq!(reply.status, 200, "{reply:?}");
        if done(&reply.body) {
            return (reply.body, started.elapsed());
        }
        assert!(
            started.elapsed() < SWARM_LIMIT,
            "{what}: not reached after {SWARM_LIMIT:?}; last status {:#}",
            reply.body
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The Swarm service the connector of `app` runs for `service`.
pub fn swarm_name(app: &TestApp, service: &str) -> String {
    swarm_service_name(&app.instance, &ServiceName::parse(service).unwrap())
}

/// Names of the Swarm services of `app`'s instance.
pub fn swarm_services(app: &TestApp) -> Vec<String> {
    let instance = format!("label=docker-connector.instance={}", app.instance);
    docker(&[
        "service",
        "ls",
        "--filter",
        &instance,
        "--format",
        "{{.Name}}",
    ])
    .lines()
    .map(str::to_owned)
    .collect()
}

/// `docker service inspect --format FORMAT NAME`, trimmed.
pub fn inspect_service(name: &str, format: &str) -> String {
    docker(&["service", "inspect", "--format", format, name])
        .trim()
        .to_owned()
}

/// The config hash in the Swarm service's own labels.
pub fn service_hash(name: &str) -> String {
    inspect_service(
        name,
        "{{index .Spec.Labels \"docker-connector.config-hash\"}}",
    )
}

/// The environment in the Swarm service's spec, as JSON.
fn service_env(name: &str) -> String {
    inspect_service(name, "{{json .Spec.TaskTemplate.ContainerSpec.Env}}")
}

/// A service that serves its page on 8080, scaled to `replicas`.
pub async fn serving(app: &TestApp, replicas: u64) {
    app.create_service("web", json!({"command": HTTPD, "ports": ["8080"]}))
        .await;
    let reply = app.scale("web", json!(replicas)).await;
    assert_eq!(reply.status, 200, "{reply:?}");
}

pub async fn scales_run_labelled_tasks_that_answer_on_their_published_ports(backend: Backend) {
    let app = TestApp::spawn_with(backend.options()).await;
    app.create_service(
        "web",
        json!({"command": HTTPD, "ports": ["8080"], "environment": {"GREETING": "hi there; $HOME"}}),
    )
    .await;

    let started = Instant::now();
    let reply = app.scale("web", json!(3)).await;
    let scale_up = started.elapsed();
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(
        reply.body,
        json!({"running_resources": 3, "desired_resources": 3})
    );
    let name = swarm_name(&app, "web");
    assert_eq!(swarm_services(&app), std::slice::from_ref(&name));
    let hash = service_hash(&name);
    assert!(
        !hash.is_empty() && hash.bytes().all(|b| b.is_ascii_hexdigit()),
        "{hash:?}"
    );

    // The labels on the service, and on each task's container.
    let service_labels: Value =
        serde_json::from_str(&inspect_service(&name, "{{json .Spec.Labels}}")).unwrap();
    let labels = json!({"docker-connector.instance": app.instance,
        "docker-connector.service": "web", "docker-connector.config-hash": hash});
    assert_eq!(service_labels, labels);
    let containers = app.running("web");
    assert_eq!(containers.len(), 3, "{containers:?}");
    for id in &containers {
        let config: Value =
            serde_json::from_str(&docker(&["inspect", "--format", "{{json .Config}}", id]))
                .unwrap();
        for (key, value) in labels.as_object().unwrap() {
            assert_eq!(&config["Labels"][key], value, "{config:#}");
        }
        assert_eq!(config["Cmd"], json!(HTTPD.split(' ').collect::<Vec<_>>()));
        let env = config["Env"].as_array().unwrap();
        assert!(env.contains(&json!("GREETING=hi there; $HOME")), "{env:?}");
    }

    // Status: each task, on this engine's node, with the port that answers.
    let node = docker(&["info", "--format", "{{.Name}}"]).trim().to_owned();
    let status = app.status("web").await.body;
    assert_eq!(status["running_resources"], 3, "{status:#}");
    assert_eq!(status["desired_resources"], 3, "{status:#}");
    assert_eq!(status["rollout"]["state"], "complete", "{status:#}");
    let tasks = status["containers"].as_array().unwrap();
    let names: Vec<&str> = tasks.iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names, [1, 2, 3].map(|slot| format!("{name}.{slot}")));
    for task in tasks {
        assert_eq!(task["state"], "running", "{task}");
        assert_eq!(task["node"], json!(node), "{task}");
        assert_eq!(task["current"], true, "{task}");
        let page = page_on(host_port(&task["ports"]["8080/tcp"])).await;
        assert_eq!(page, PAGE);
    }

    // httpie's `number=1` sends a string of digits.
    let reply = app.scale("web", json!("1")).await;
    assert_eq!(reply.body["running_resources"], 1, "{reply:?}");
    let status = app.status("web").await.body;
    assert_eq!(status["running_resources"], 1, "{status:#}");
    assert_eq!(status["containers"].as_array().unwrap().len(), 1);

    let reply = app.scale("web", json!(0)).await;
    assert_eq!(reply.body["running_resources"], 0, "{reply:?}");
    assert_eq!(app.status("web").await.body["containers"], json!([]));
    record_figures(
        "swarm-scale",
        &[(
            "scale 0 -> 3 tasks answered after",
            format!("{scale_up:.1?}"),
        )],
    );
}

/// Only the port is checked, not that it answers: on the machine these
/// tests were written on, the mesh's port did not answer (connection
/// refused), while host-mode ports did.
pub async fn the_routing_mesh_publishes_one_port_for_the_service(backend: Backend) {
    let app = TestApp::spawn_with(
        backend
            .options()
            .env("ROCKET_SWARM_PUBLISH_MODE", "ingress"),
    )
    .await;
    serving(&app, 2).await;
    let name = swarm_name(&app, "web");
    let endpoint: Value =
        serde_json::from_str(&inspect_service(&name, "{{json .Endpoint.Ports}}")).unwrap();
    assert_eq!(endpoint[0]["PublishMode"], "ingress", "{endpoint}");
    assert_eq!(endpoint[0]["TargetPort"], 8080, "{endpoint}");
    let published = &endpoint[0]["PublishedPort"];
    assert!(published.as_u64().is_some_and(|p| p > 0), "{endpoint}");
    let status = app.status("web").await.body;
    let tasks = status["containers"].as_array().unwrap();
    assert_eq!(tasks.len(), 2, "{status:#}");
    for task in tasks {
        assert_eq!(task["ports"], json!({"8080/tcp": published}), "{task}");
    }
}

pub async fn a_rolling_update_replaces_every_task_start_first(backend: Backend) {
    let app = TestApp::spawn_with(backend.options()).await;
    serving(&app, 3).await;
    let name = swarm_name(&app, "web");
    let old_hash = service_hash(&name);

    let started = Instant::now();
    let reply = app
        .put(
            "web",
            json!({"image": TEST_IMAGE, "command": HTTPD, "ports": ["8080"],
                   "environment": {"VERSION": "2"}}),
        )
        .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the PUT waited for the roll"
    );

    // Sampled while it rolls: the running count never drops below 3.
    let mut fewest = u64::MAX;
    let mut samples = 0;
    let (status, took) = status_until(&app, "web", "roll to VERSION=2", |status| {
        fewest = fewest.min(status["running_resources"].as_u64().unwrap());
        samples += 1;
        status["rollout"]["state"] == "complete" && status["rollout"]["updated"] == 3
    })
    .await;
    assert!(fewest >= 3, "only {fewest} running at one point");
    assert_eq!(status["running_resources"], 3, "{status:#}");
    let new_hash = service_hash(&name);
    assert_ne!(new_hash, old_hash);
    for task in status["containers"].as_array().unwrap() {
        assert_eq!(task["current"], true, "{task}");
        assert_eq!(page_on(host_port(&task["ports"]["8080/tcp"])).await, PAGE);
    }
    let env = service_env(&name);
    assert_eq!(env, r#"["VERSION=2"]"#);
    record_figures(
        "swarm-rolling-update",
        &[
            (
                "3 tasks rolled (settle 1 s, start-first) in",
                format!("{took:.1?}"),
            ),
            (
                "fewest running in status samples",
                format!("{fewest} in {samples}"),
            ),
        ],
    );
}

pub async fn an_update_that_fails_is_rolled_back_and_the_earlier_definition_keeps_running(
    backend: Backend,
) {
    let app = TestApp::spawn_with(backend.options()).await;
    serving(&app, 2).await;
    let name = swarm_name(&app, "web");
    let good_hash = service_hash(&name);
    let good = app.show("web").await.body;

    let broken = json!({"image": TEST_IMAGE, "command": "sh -c 'exit 7'", "ports": ["8080"]});
    assert_eq!(app.put("web", broken).await.status, 200);
    // Swarm rolls back, and the stored definition follows it.
    let (failed, _) = status_until(&app, "web", "the update fails", |status| {
        status["rollout"]["state"] == "rolled_back"
    })
    .await;
    let error = failed["rollout"]["error"].as_str().unwrap_or_default();
    assert!(error.contains("Swarm"), "{failed:#}");
    assert_eq!(app.show("web").await.body, good);

    // The earlier definition, current again, runs two tasks again.
    let (rolled_back, took) = status_until(&app, "web", "the rollback", |status| {
        status["running_resources"] == 2
            && status["rollout"]["updated"] == 2
            && status["rollout"]["error"]
                .as_str()
                .is_some_and(|e| e.contains("rolled the update back") && e.contains("exit (7)"))
    })
    .await;
    assert_eq!(
        rolled_back["rollout"]["state"], "rolled_back",
        "{rolled_back:#}"
    );
    assert_eq!(service_hash(&name), good_hash);
    for task in rolled_back["containers"].as_array().unwrap() {
        assert_eq!(task["current"], true, "{task}");
    }

    // Scales keep the rolled-back definition rather than retry the broken
    // one, also once a scale has cleared Swarm's record of the rollback.
    for replicas in [3, 2, 3] {
        let reply = app.scale("web", json!(replicas)).await;
        assert_eq!(reply.status, 200, "{reply:?}");
        assert_eq!(
            service_hash(&name),
            good_hash,
            "after a scale to {replicas}"
        );
        let status = app.status("web").await.body;
        assert_eq!(status["rollout"]["state"], "rolled_back", "{status:#}");
        assert_eq!(status["rollout"]["outdated"], 0, "{status:#}");
    }
    assert_eq!(app.show("web").await.body, good);

    // A fixed definition rolls out.
    let fixed = json!({"image": TEST_IMAGE, "command": HTTPD, "ports": ["8080"],
                       "environment": {"FIXED": "1"}});
    assert_eq!(app.put("web", fixed).await.status, 200);
    let (done, _) = status_until(&app, "web", "the fixed definition rolls out", |status| {
        status["rollout"]["state"] == "complete" && status["rollout"]["updated"] == 3
    })
    .await;
    assert_eq!(done["rollout"]["error"], Value::Null, "{done:#}");
    assert_ne!(service_hash(&name), good_hash);
    record_figures(
        "swarm-rollback",
        &[(
            "a command exiting 7 was rolled back, 2 earlier tasks running again, after",
            format!("{took:.1?}"),
        )],
    );
}

pub async fn a_scale_swarm_cannot_fulfil_answers_504_with_what_runs(backend: Backend) {
    let app = TestApp::spawn_with(backend.options().env("ROCKET_SWARM_SCALE_TIMEOUT", "3")).await;
    app.create_service("ghost", json!({"image": "docker-connector-missing:1"}))
        .await;
    let started = Instant::now();
    let reply = app.scale("ghost", json!(2)).await;
    let took = started.elapsed();
    assert_eq!(reply.status, 504, "{reply:?}");
    assert!(
        (Duration::from_secs(3)..Duration::from_secs(15)).contains(&took),
        "answered after {took:?}"
    );
    let error = reply.error();
    assert!(error.contains("0 of 2"), "{error}");
    assert!(error.contains("No such image"), "{error}");
    let status = app.status("ghost").await.body;
    assert_eq!(status["desired_resources"], 2, "{status:#}");
    assert_eq!(status["running_resources"], 0, "{status:#}");
    let problem = status["problem"].as_str().unwrap_or_default();
    assert!(problem.contains("docker-connector-missing:1"), "{status:#}");
    // The desired count is kept, as on the containers backend.
    let stored = app.stored_state();
    assert_eq!(stored["services"]["ghost"]["desired"], 2, "{stored:#}");
}

pub async fn delete_removes_the_swarm_service_and_swarm_its_tasks(backend: Backend) {
    let app = TestApp::spawn_with(backend.options()).await;
    serving(&app, 2).await;
    assert_eq!(app.containers(Some("web")).len(), 2);
    let reply = app.delete("web").await;
    assert_eq!(reply.status, 204, "{reply:?}");
    assert_eq!(swarm_services(&app), Vec::<String>::new());
    assert_eq!(app.show("web").await.status, 404);
    // Swarm stops the tasks within their stop grace period (10 s).
    let left: Vec<String> = poll_until(Duration::from_secs(30), || async {
        let left = app.containers(Some("web"));
        (left.is_empty(), left)
    })
    .await;
    assert!(left.is_empty(), "containers left: {left:?}");
}

pub async fn a_swarm_service_without_the_connectors_labels_is_left_alone(backend: Backend) {
    let app = TestApp::spawn_with(backend.options()).await;
    let name = swarm_name(&app, "web");
    let foreign = ForeignSwarmService::create(&name);
    app.create_service("web", json!({})).await;

    let reply = app.scale("web", json!(2)).await;
    assert_eq!(reply.status, 409, "{reply:?}");
    assert!(reply.error().contains("left alone"), "{reply:?}");
    assert_eq!(app.status("web").await.status, 409);
    let replaced = json!({"image": TEST_IMAGE, "command": "sleep 5"});
    assert_eq!(app.put("web", replaced).await.status, 409);
    assert_eq!(app.delete("web").await.status, 204);
    let replicas = inspect_service(
        &foreign.0,
        "{{.Spec.Mode.Replicated.Replicas}} {{json .Spec.Labels}}",
    );
    assert_eq!(replicas.trim(), "1 {}");
}

pub async fn the_connector_refuses_to_start_unless_the_engine_is_a_swarm_manager(
    _backend: Backend,
) {
    for (state, manager, says) in [
        ("inactive", false, "not part of a Swarm"),
        ("active", false, "a Swarm worker"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let info = format!(r#"{{"LocalNodeState":"{state}","ControlAvailable":{manager}}}"#);
        let options = AppOptions::new().fake_docker(
            dir.path(),
            &format!("[ \"$1\" = info ] && echo '{info}' && exit 0; exit 1"),
        );
        let fake = options.env["ROCKET_DOCKER"].clone();
        let (code, log) = launch_expecting_failure(
            dir.path(),
            &[("ROCKET_BACKEND", "swarm"), ("ROCKET_DOCKER", &fake)],
        );
        assert_eq!(code, Some(1), "{log}");
        assert!(log.contains(says), "{log}");
        assert!(log.contains("docker swarm init"), "{log}");
    }
}

pub async fn environment_values_stay_out_of_the_debug_log(backend: Backend) {
    let app = TestApp::spawn_with(backend.options().env("ROCKET_LOG_LEVEL", "debug")).await;
    app.create_service(
        "web",
        json!({"environment": {"TOKEN": "first-s3cret-6d1f"}}),
    )
    .await;
    assert_eq!(app.scale("web", json!(1)).await.status, 200);
    let replaced = json!({"image": TEST_IMAGE, "environment": {"TOKEN": "second-s3cret-9a2b"}});
    assert_eq!(app.put("web", replaced).await.status, 200);
    let log = app.log_containing("service update").await;
    assert!(log.contains("--env-add TOKEN=***"), "{log}");
    for secret in ["first-s3cret-6d1f", "second-s3cret-9a2b"] {
        assert!(!log.contains(secret), "{secret} in the log:\n{log}");
    }
}

/// Both PUTs write the store one after the other before either takes the
/// service's lock, so this rarely races the way that matters (the second
/// stored reaching Swarm first); it holds the end state to what is stored,
/// however the requests interleave.
pub async fn racing_puts_leave_swarm_running_the_definition_stored_last(backend: Backend) {
    let app = TestApp::spawn_with(backend.options()).await;
    serving(&app, 1).await;
    for round in 0..3 {
        let version = |v: &str| {
            json!({"image": TEST_IMAGE, "command": HTTPD, "ports": ["8080"],
                   "environment": {"VERSION": format!("{round}{v}")}})
        };
        let (a, b) = tokio::join!(app.put("web", version("a")), app.put("web", version("b")));
        assert_eq!((a.status, b.status), (200, 200), "{a:?} {b:?}");
        let stored = app.show("web").await.body;
        let (status, _) = status_until(&app, "web", "the stored definition rolls out", |s| {
            s["rollout"]["state"] == "complete" && s["rollout"]["updated"] == 1
        })
        .await;
        assert_eq!(status["running_resources"], 1, "{status:#}");
        let env = service_env(&swarm_name(&app, "web"));
        let version = stored["environment"]["VERSION"].as_str().unwrap();
        assert_eq!(env, format!(r#"["VERSION={version}"]"#), "round {round}");
    }
}

pub async fn a_scale_waiting_for_swarm_ends_when_a_later_scale_or_a_delete_comes(backend: Backend) {
    let app = TestApp::spawn_with(backend.options().env("ROCKET_SWARM_SCALE_TIMEOUT", "60")).await;
    app.create_service("ghost", json!({"image": "docker-connector-missing:1"}))
        .await;
    // Swarm can never run these tasks: the first scale waits until the
    // second changes the count.
    let started = Instant::now();
    let (first, second) = tokio::join!(app.scale("ghost", json!(2)), async {
        tokio::time::sleep(Duration::from_secs(1)).await;
        app.scale("ghost", json!(0)).await
    });
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(first.status, 200, "{first:?}");
    assert_eq!(first.body["desired_resources"], 0, "{first:?}");
    assert_eq!(second.status, 200, "{second:?}");
    assert_eq!(
        second.body,
        json!({"running_resources": 0, "desired_resources": 0})
    );

    // A delete ends a waiting scale with 404.
    let started = Instant::now();
    let (waiting, deleted) = tokio::join!(app.scale("ghost", json!(1)), async {
        tokio::time::sleep(Duration::from_secs(1)).await;
        app.delete("ghost").await
    });
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(deleted.status, 204, "{deleted:?}");
    assert_eq!(waiting.status, 404, "{waiting:?}");
    assert_eq!(swarm_services(&app), Vec::<String>::new());
}

/// A scale while Swarm is rolling an update must not become the spec that
/// Swarm rolls back to: it waits until Swarm has rolled back, then sets the
/// count on the earlier definition.
pub async fn a_scale_during_a_failing_update_waits_and_keeps_the_rollback(backend: Backend) {
    let app = TestApp::spawn_with(backend.options()).await;
    serving(&app, 2).await;
    let name = swarm_name(&app, "web");
    let good_hash = service_hash(&name);
    let broken = json!({"image": TEST_IMAGE, "command": "sh -c 'exit 7'", "ports": ["8080"]});
    assert_eq!(app.put("web", broken).await.status, 200);
    let reply = app.scale("web", json!(3)).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(
        reply.body,
        json!({"running_resources": 3, "desired_resources": 3})
    );
    assert_eq!(
        service_hash(&name),
        good_hash,
        "the broken definition stayed"
    );
    let status = app.status("web").await.body;
    assert_eq!(status["rollout"]["state"], "rolled_back", "{status:#}");
    assert_eq!(status["rollout"]["outdated"], 0, "{status:#}");
}

/// `POST /service/<name>/rollback` on Swarm: `docker service rollback`
/// while Swarm's previous spec is the previous definition, an update to it
/// once a scale has made Swarm's previous spec another count; 409 with
/// nothing to go back to, 404 for an unknown service.
pub async fn the_rollback_endpoint_hands_swarm_the_previous_definition(backend: Backend) {
    let app = TestApp::spawn_with(backend.options()).await;
    serving(&app, 2).await;
    let name = swarm_name(&app, "web");
    let first = app.show("web").await.body;
    let first_hash = service_hash(&name);
    let second = json!({"image": TEST_IMAGE, "command": HTTPD, "ports": ["8080"],
                        "environment": {"VERSION": "2"}});
    assert_eq!(app.put("web", second).await.status, 200);
    let rolled = |status: &Value, updated: u64| {
        status["rollout"]["state"] == "complete"
            && status["rollout"]["updated"] == updated
            && status["running_resources"] == updated
    };
    status_until(&app, "web", "the update", |s| rolled(s, 2)).await;
    let second = app.show("web").await.body;
    let second_hash = service_hash(&name);

    let reply = app.send("POST", "/service/web/rollback", None).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.body, first);
    assert_eq!(app.show("web").await.body, first);
    status_until(&app, "web", "the rollback", |s| rolled(s, 2)).await;
    assert_eq!(service_hash(&name), first_hash);
    // Swarm's own rollback did it, with its rollback settings.
    let state = poll_until(SWARM_LIMIT, || async {
        let state = inspect_service(&name, "{{.UpdateStatus.State}}");
        (state == "rollback_completed", state)
    })
    .await;
    assert_eq!(state, "rollback_completed");

    // A scale makes Swarm's previous spec this definition with 2 tasks:
    // the endpoint hands over the previous definition as an update.
    assert_eq!(app.scale("web", json!(3)).await.status, 200);
    let reply = app.send("POST", "/service/web/rollback", None).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.body, second);
    status_until(&app, "web", "the second rollback", |s| rolled(s, 3)).await;
    assert_eq!(service_hash(&name), second_hash);
    assert_eq!(
        inspect_service(&name, "{{.Spec.Mode.Replicated.Replicas}}"),
        "3"
    );

    app.create_service("fresh", json!({})).await;
    let reply = app.send("POST", "/service/fresh/rollback", None).await;
    assert_eq!(reply.status, 409, "{reply:?}");
    let reply = app.send("POST", "/service/ghost/rollback", None).await;
    assert_eq!(reply.status, 404, "{reply:?}");
}

/// Swarm's own rollback reaches `GET /service/<name>` through the watcher
/// of updates in flight: nothing here asks for a status or scales.
pub async fn the_stored_definition_follows_swarms_rollback_without_a_status_call(backend: Backend) {
    let app = TestApp::spawn_with(backend.options()).await;
    serving(&app, 2).await;
    let good = app.show("web").await.body;
    let broken = json!({"image": TEST_IMAGE, "command": "sh -c 'exit 7'", "ports": ["8080"]});
    let reply = app.put("web", broken).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_ne!(app.show("web").await.body, good);
    let shown = poll_until(SWARM_LIMIT, || async {
        let shown = app.show("web").await.body;
        (shown == good, shown)
    })
    .await;
    assert_eq!(shown, good, "{}", app.log());
    let status = app.status("web").await.body;
    assert_eq!(status["rollout"]["state"], "rolled_back", "{status:#}");
    assert_eq!(status["rollout"]["outdated"], 0, "{status:#}");
}
