//! The workload keys of a definition (issue 16) reach docker: limits,
//! networks, volumes, labels, the stop grace and the health check are what
//! `docker inspect` shows of the service's containers, on either backend;
//! and hostile values of each are refused, naming the key, changing nothing.

use serde_json::{json, Value};

use crate::support::app::{backend_suite, AppOptions, Backend, TestApp};
use crate::support::docker::{docker, unique_instance, Scratch, TEST_IMAGE};

backend_suite!(
    every_workload_key_is_what_docker_runs,
    a_network_docker_lacks_is_refused_before_anything_is_stored,
);

/// The container's config, as `docker inspect` prints it.
fn inspect(id: &str) -> Value {
    let out = docker(&["inspect", "--type", "container", id]);
    let parsed: Value = serde_json::from_str(&out).unwrap();
    parsed[0].clone()
}

pub async fn every_workload_key_is_what_docker_runs(backend: Backend) {
    let tag = unique_instance();
    // Swarm services join only networks of swarm scope. Two networks:
    // engines before 25 take only one at `docker run`.
    let driver: &[&str] = match backend {
        Backend::Containers => &[],
        Backend::Swarm => &["--driver", "overlay", "--attachable"],
    };
    let network = Scratch::network(&format!("{tag}-net"), driver);
    let second = Scratch::network(&format!("{tag}-net2"), driver);
    let volume = Scratch::volume(&format!("{tag}-vol"));
    let app = TestApp::spawn_with(backend.options()).await;
    let body = app
        .create_service(
            "web",
            json!({
                "command": "sleep 600",
                "healthcheck": {"test": ["CMD", "true"], "interval": "1s", "retries": 2},
                "stop_grace_period": "3s",
                "resources": {"memory": "64m", "cpus": "0.5", "pids": 50},
                "networks": [network.name, second.name],
                "volumes": [{"source": volume.name, "target": "/data"}],
                "labels": {"team": "ops", "traefik.enable": "true"}
            }),
        )
        .await;
    assert_eq!(
        body["resources"],
        json!({"memory": "64m", "cpus": "0.5", "pids": 50})
    );
    let reply = app.scale("web", json!(1)).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let ids = app.running("web");
    assert_eq!(ids.len(), 1, "{ids:?}");
    let container = inspect(&ids[0]);

    let host = &container["HostConfig"];
    assert_eq!(host["Memory"], json!(64 * 1024 * 1024), "{host:#}");
    assert_eq!(host["NanoCpus"], json!(500_000_000), "{host:#}");
    assert_eq!(host["PidsLimit"], json!(50), "{host:#}");

    let networks = container["NetworkSettings"]["Networks"]
        .as_object()
        .unwrap();
    assert!(networks.contains_key(&network.name), "{networks:?}");
    assert!(networks.contains_key(&second.name), "{networks:?}");

    let mounts = container["Mounts"].as_array().unwrap();
    assert!(
        mounts.iter().any(|m| m["Type"] == "volume"
            && m["Name"] == json!(volume.name)
            && m["Destination"] == "/data"
            && m["RW"] == true),
        "{mounts:#?}"
    );

    let config = &container["Config"];
    assert_eq!(config["Labels"]["team"], "ops", "{config:#}");
    assert_eq!(config["Labels"]["traefik.enable"], "true", "{config:#}");
    assert_eq!(
        config["Healthcheck"]["Test"],
        json!(["CMD-SHELL", "true"]),
        "{config:#}"
    );
    assert_eq!(config["Healthcheck"]["Interval"], json!(1_000_000_000_u64));
    assert_eq!(config["Healthcheck"]["Retries"], json!(2));
    if backend == Backend::Containers {
        // Swarm keeps the grace in its task spec and stops with it itself.
        assert_eq!(config["StopTimeout"], json!(3), "{config:#}");
    }
    assert_eq!(app.delete("web").await.status, 204);
}

pub async fn a_network_docker_lacks_is_refused_before_anything_is_stored(backend: Backend) {
    let app = TestApp::spawn_with(backend.options()).await;
    let missing = format!("{}-missing", unique_instance());
    let reply = app
        .create(json!({"name": "web", "image": "app:1", "networks": [missing]}))
        .await;
    assert_eq!(reply.status, 400, "{reply:?}");
    assert!(reply.error().starts_with("networks[0]: "), "{reply:?}");
    assert!(reply.error().contains(&missing), "{reply:?}");
    assert_eq!(app.get("/service").await.body, json!({}));
}

/// Every hostile value of a workload key is a 400 naming it, on create and
/// on replace, and the stored definition stays as it was.
#[tokio::test]
async fn hostile_workload_values_are_refused_and_change_nothing() {
    let app = TestApp::spawn().await;
    let stored = app
        .create_service("web", json!({"labels": {"team": "ops"}}))
        .await;
    let cases: Vec<(Value, &str)> = vec![
        (
            json!({"healthcheck": {"test": "true", "interval": "100000h"}}),
            "healthcheck.interval",
        ),
        (
            json!({"healthcheck": {"test": "true", "timeout": "-1s"}}),
            "healthcheck.timeout",
        ),
        (
            json!({"healthcheck": {"test": "true", "retries": -1}}),
            "healthcheck.retries",
        ),
        (
            json!({"healthcheck": {"test": ["CMD"]}}),
            "healthcheck.test",
        ),
        (
            json!({"healthcheck": {"test": "true", "exec": "x"}}),
            "healthcheck.exec",
        ),
        (
            json!({"stop_grace_period": "9999999999999h"}),
            "stop_grace_period",
        ),
        (json!({"stop_grace_period": "2h"}), "stop_grace_period"),
        (json!({"stop_grace_period": -5}), "stop_grace_period"),
        (
            json!({"resources": {"memory": "-256m"}}),
            "resources.memory",
        ),
        (json!({"resources": {"memory": -1}}), "resources.memory"),
        (json!({"resources": {"cpus": "-1"}}), "resources.cpus"),
        (json!({"resources": {"pids": 0}}), "resources.pids"),
        (json!({"networks": ["--privileged"]}), "networks[0]"),
        (json!({"networks": ["front\nback"]}), "networks[0]"),
        (json!({"networks": ["a\u{1b}[31m"]}), "networks[0]"),
        (json!({"networks": ["host"]}), "networks[0]"),
        (
            json!({"volumes": [{"source": "/etc", "target": "/etc"}]}),
            "volumes[0].source",
        ),
        (
            json!({"volumes": [{"source": "/tmp/../etc", "target": "/x"}]}),
            "volumes[0].source",
        ),
        (
            json!({"volumes": [{"source": "d", "target": "/x,source=/etc"}]}),
            "volumes[0].target",
        ),
        (
            json!({"volumes": [{"source": "-v", "target": "/x"}]}),
            "volumes[0].source",
        ),
        (
            json!({"labels": {"docker-connector.service": "db"}}),
            "labels.docker-connector.service",
        ),
        (json!({"labels": {"--privileged": "x"}}), "labels"),
        (json!({"labels": {"team": "a\nb"}}), "labels.team"),
        (
            json!({"labels": {"com.docker.swarm.service.id": "x"}}),
            "labels.com.docker.swarm.service.id",
        ),
    ];
    for (extra, field) in cases {
        let mut body = json!({"name": "web", "image": TEST_IMAGE});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let created = app.create(body.clone()).await;
        // The name is taken: a create is refused for its body first.
        assert_eq!(created.status, 400, "{extra}: {created:?}");
        assert!(
            created.error().starts_with(&format!("{field}: ")),
            "{extra}: {created:?}"
        );
        let replaced = app.put("web", body).await;
        assert_eq!(replaced.status, 400, "{extra}: {replaced:?}");
        assert!(
            replaced.error().starts_with(&format!("{field}: ")),
            "{extra}: {replaced:?}"
        );
        assert_eq!(app.show("web").await.body, stored, "{extra}");
    }
    assert!(app.containers(None).is_empty());
}

/// Host paths mount only from under `allowed_bind_paths`, judged with
/// symlinks and `..` resolved, and what they hold is what the container
/// sees.
#[tokio::test]
async fn host_paths_mount_only_from_allowed_directories() {
    let root = tempfile::tempdir().unwrap();
    let allowed = root.path().join("allowed");
    let secret = root.path().join("secret");
    std::fs::create_dir_all(allowed.join("site")).unwrap();
    std::fs::create_dir_all(&secret).unwrap();
    std::fs::write(allowed.join("site/index.html"), "served\n").unwrap();
    std::os::unix::fs::symlink(&secret, allowed.join("escape")).unwrap();
    let options = AppOptions::new().env(
        "ROCKET_ALLOWED_BIND_PATHS",
        &format!("[{:?}]", allowed.to_str().unwrap()),
    );
    let app = TestApp::spawn_with(options).await;
    let path = |p: &std::path::Path| p.to_str().unwrap().to_owned();
    for refused in [
        path(&secret),
        path(&allowed.join("escape")),
        path(&allowed.join("missing")),
        format!("{}/../secret", path(&allowed)),
    ] {
        let reply = app
            .create(json!({"name": "web", "image": TEST_IMAGE,
                "volumes": [{"source": refused, "target": "/site"}]}))
            .await;
        assert_eq!(reply.status, 400, "{refused}: {reply:?}");
        assert!(
            reply.error().starts_with("volumes[0].source: "),
            "{reply:?}"
        );
    }
    assert_eq!(app.get("/service").await.body, json!({}));

    app.create_service(
        "web",
        json!({"command": "sleep 600",
               "volumes": [{"source": path(&allowed.join("site")), "target": "/site",
                            "read_only": true}]}),
    )
    .await;
    assert_eq!(app.scale("web", json!(1)).await.status, 200);
    let id = &app.running("web")[0];
    assert_eq!(docker(&["exec", id, "cat", "/site/index.html"]), "served\n");
    let written = std::process::Command::new("docker")
        .args(["exec", id, "touch", "/site/new"])
        .output()
        .unwrap();
    assert!(!written.status.success(), "a read-only mount took a write");
}

/// Without `allowed_bind_paths` (the default), no host path mounts at all.
#[tokio::test]
async fn host_paths_are_refused_by_default() {
    let app = TestApp::spawn().await;
    let reply = app
        .create(json!({"name": "web", "image": TEST_IMAGE,
            "volumes": [{"source": "/tmp", "target": "/host"}]}))
        .await;
    assert_eq!(reply.status, 400, "{reply:?}");
    assert!(reply.error().contains("allowed_bind_paths"), "{reply:?}");
}
