//! `/service/<name>/scale` and `/status` against the real engine.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::app::{AppOptions, TestApp};
use crate::support::docker::{
    docker, host_bindings, page_on, unique_instance, ForeignContainer, HTTPD, PAGE, TEST_IMAGE,
};
use crate::support::process::real_docker;

#[tokio::test]
async fn scale_up_and_down_runs_exactly_the_number_asked_for() {
    let app = TestApp::spawn().await;
    app.create_service("web", json!({})).await;

    let reply = app.scale("web", json!(3)).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.body["running_resources"], 3);
    assert_eq!(app.running("web").len(), 3);
    let status = app.status("web").await.body;
    assert_eq!(status["running_resources"], 3, "{status}");
    assert_eq!(status["desired_resources"], 3, "{status}");

    // httpie's `number=1` sends a string of digits.
    let reply = app.scale("web", json!("1")).await;
    assert_eq!(reply.body["running_resources"], 1, "{reply:?}");
    assert_eq!(
        app.containers(Some("web")).len(),
        1,
        "scale-down left containers behind"
    );
    assert_eq!(app.status("web").await.body["running_resources"], 1);
}

#[tokio::test]
async fn scale_to_zero_leaves_no_container_in_any_state() {
    let app = TestApp::spawn().await;
    app.create_service("web", json!({})).await;
    app.scale("web", json!(2)).await;
    // One container stops behind the connector's back: it must go too.
    let victim = app.running("web")[0].clone();
    docker(&["stop", "-t", "0", &victim]);

    let reply = app.scale("web", json!(0)).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.body["running_resources"], 0);
    assert!(
        app.containers(Some("web")).is_empty(),
        "containers left: {:?}",
        app.containers(Some("web"))
    );
    assert_eq!(app.status("web").await.body["running_resources"], 0);
}

#[tokio::test]
async fn scale_replaces_containers_that_died_behind_its_back() {
    // As the seed describes it: without the reconciler, a scale does it.
    let app = TestApp::spawn_with(AppOptions::new().without_reconciler()).await;
    app.create_service("web", json!({})).await;
    app.scale("web", json!(2)).await;
    let victim = app.running("web")[0].clone();
    docker(&["kill", &victim]);
    app.wait_for_running("web", 1, Duration::from_secs(5), "a kill behind its back")
        .await;

    let reply = app.scale("web", json!(2)).await;
    assert_eq!(reply.body["running_resources"], 2, "{reply:?}");
    assert_eq!(
        app.containers(Some("web")).len(),
        2,
        "the dead container was not removed"
    );
}

#[tokio::test]
async fn foreign_containers_sharing_the_image_survive_scale_to_zero() {
    let app = TestApp::spawn().await;
    let stranger = ForeignContainer::run(&["--", TEST_IMAGE]);
    let neighbour = ForeignContainer::run(&[
        "--label",
        &format!("docker-connector.instance={}", unique_instance()),
        "--label",
        "docker-connector.service=web",
        "--",
        TEST_IMAGE,
    ]);

    app.create_service("web", json!({})).await;
    app.scale("web", json!(1)).await;
    let reply = app.scale("web", json!(0)).await;
    assert_eq!(reply.status, 200);
    assert_eq!(
        stranger.state(),
        "running",
        "scale 0 removed an unlabelled container"
    );
    assert_eq!(
        neighbour.state(),
        "running",
        "scale 0 removed another instance's container"
    );
}

#[tokio::test]
async fn a_name_clash_with_a_foreign_container_picks_another_name() {
    let app = TestApp::spawn().await;
    let taken = format!("{}-web-1", app.instance);
    let stranger = ForeignContainer::run(&["--name", &taken, "--", TEST_IMAGE]);
    app.create_service("web", json!({})).await;

    let reply = app.scale("web", json!(1)).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let ours = docker(&["inspect", "--format", "{{.Name}}", &app.running("web")[0]]);
    assert_eq!(ours.trim(), format!("/{}-web-2", app.instance));
    assert_eq!(stranger.state(), "running");
}

#[tokio::test]
async fn containers_carry_the_ownership_labels_env_and_command_argv() {
    let app = TestApp::spawn_with(AppOptions::new().env("ROCKET_LOG_LEVEL", "debug")).await;
    app.create_service(
        "web",
        json!({"command": r#"sh -c 'echo "$GREETING" > /tmp/out; sleep 1000' "two words""#,
               "environment": {"GREETING": "hello; $(touch /tmp/pwned)", "FLAG": "--privileged"}}),
    )
    .await;
    app.scale("web", json!(1)).await;
    let id = app.running("web")[0].clone();

    let cmd = docker(&["inspect", "--format", "{{json .Config.Cmd}}", &id]);
    let cmd: Vec<String> = serde_json::from_str(&cmd).unwrap();
    assert_eq!(
        cmd,
        [
            "sh",
            "-c",
            r#"echo "$GREETING" > /tmp/out; sleep 1000"#,
            "two words"
        ]
    );
    let labels = docker(&["inspect", "--format", "{{json .Config.Labels}}", &id]);
    let labels: serde_json::Value = serde_json::from_str(&labels).unwrap();
    assert_eq!(labels["docker-connector.instance"], app.instance.as_str());
    assert_eq!(labels["docker-connector.service"], "web");
    assert_eq!(
        labels["docker-connector.config-hash"]
            .as_str()
            .unwrap()
            .len(),
        16
    );
    let env = docker(&["inspect", "--format", "{{json .Config.Env}}", &id]);
    assert!(env.contains("FLAG=--privileged"), "{env}");
    let privileged = docker(&["inspect", "--format", "{{.HostConfig.Privileged}}", &id]);
    assert_eq!(privileged.trim(), "false");

    // The value reached the container verbatim, and no shell expanded it.
    let mut out = String::new();
    for _ in 0..50 {
        out = docker(&["exec", &id, "cat", "/tmp/out"]);
        if !out.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(out, "hello; $(touch /tmp/pwned)\n");
    assert_eq!(
        docker(&["exec", &id, "ls", "/tmp"]),
        "out\n",
        "the env value was executed"
    );
    // At debug level the connector logs docker's argv, but never env values.
    let log = app.log();
    assert!(
        log.contains("-e FLAG=*** -e GREETING=*** --"),
        "no masked argv at debug level: {log}"
    );
    assert!(
        !log.contains("hello; $(touch") && !log.contains("FLAG=--privileged"),
        "an env value reached the log: {log}"
    );
    // And one line per request.
    assert!(log.contains("POST /service/web/scale 200 "), "{log}");
}

#[tokio::test]
async fn ports_are_published_and_reach_the_container() {
    let app = TestApp::spawn().await;
    app.create_service("web", json!({"command": HTTPD, "ports": ["8080"]}))
        .await;
    let reply = app.scale("web", json!(2)).await;
    assert_eq!(reply.body["running_resources"], 2, "{reply:?}");

    for id in app.running("web") {
        let (host_port, _) = host_bindings(&id, "8080/tcp");
        assert_eq!(page_on(host_port).await, PAGE, "container {id}");
    }
}

#[tokio::test]
async fn after_a_replace_scale_down_removes_the_older_definition_first() {
    let app = TestApp::spawn().await;
    app.create_service("web", json!({"command": "sleep 1001"}))
        .await;
    app.scale("web", json!(2)).await;
    let old = app.running("web");

    let reply = app
        .put("web", json!({"image": TEST_IMAGE, "command": "sleep 1002"}))
        .await;
    assert_eq!(reply.status, 200);
    assert_eq!(
        app.running("web"),
        old,
        "a replace must not touch running containers"
    );

    app.scale("web", json!(3)).await;
    let reply = app.scale("web", json!(1)).await;
    assert_eq!(reply.body["running_resources"], 1);
    let kept = app.running("web");
    let cmd = docker(&["inspect", "--format", "{{json .Config.Cmd}}", &kept[0]]);
    assert_eq!(cmd.trim(), r#"["sleep","1002"]"#);
}

#[tokio::test]
async fn delete_removes_every_container_of_the_service_in_any_state() {
    let app = TestApp::spawn().await;
    app.create_service("web", json!({})).await;
    app.create_service("db", json!({})).await;
    app.scale("web", json!(3)).await;
    app.scale("db", json!(1)).await;
    docker(&["stop", "-t", "0", &app.running("web")[0]]);

    let reply = app.delete("web").await;
    assert_eq!(reply.status, 204, "{reply:?}");
    assert!(app.containers(Some("web")).is_empty());
    assert_eq!(app.running("db").len(), 1, "delete touched another service");
}

#[tokio::test]
async fn a_command_that_cannot_start_answers_502_and_leaves_no_created_container() {
    // The seed's answer; the reconciler's retries after it are in
    // reconcile.rs, and would race the check that nothing is left.
    let app = TestApp::spawn_with(AppOptions::new().without_reconciler()).await;
    app.create_service("web", json!({"command": ["/no/such/program"]}))
        .await;
    let reply = app.scale("web", json!(2)).await;
    assert_eq!(reply.status, 502, "{reply:?}");
    assert!(
        reply.error().contains("/no/such/program"),
        "docker's message is missing: {reply:?}"
    );
    assert!(
        reply
            .error()
            .contains("0 of 2 containers of 'web' are running"),
        "{reply:?}"
    );
    assert!(
        app.containers(Some("web")).is_empty(),
        "created containers were left behind"
    );
}

#[tokio::test]
async fn a_missing_image_answers_502_with_dockers_message_and_leaves_nothing() {
    // The seed's answer; the reconciler's retries after it are in
    // reconcile.rs, and would race the check that nothing is left.
    let app = TestApp::spawn_with(AppOptions::new().without_reconciler()).await;
    let reply = app
        .create(json!({"name": "web", "image": "docker-connector-absent:1"}))
        .await;
    assert_eq!(reply.status, 201);
    let reply = app.scale("web", json!(2)).await;
    assert_eq!(reply.status, 502, "{reply:?}");
    assert!(
        reply.error().contains("docker-connector-absent"),
        "{reply:?}"
    );
    assert!(app.containers(Some("web")).is_empty());
    assert_eq!(
        app.show("web").await.status,
        200,
        "the definition must stay"
    );
}

#[tokio::test]
async fn services_scale_independently() {
    let app = TestApp::spawn().await;
    app.create_service("a", json!({})).await;
    app.create_service("b", json!({})).await;
    let (ra, rb) = tokio::join!(app.scale("a", json!(3)), app.scale("b", json!(2)));
    assert_eq!((ra.status, rb.status), (200, 200));
    assert_eq!(app.running("a").len(), 3);
    assert_eq!(app.running("b").len(), 2);
    app.scale("a", json!(0)).await;
    assert_eq!(app.running("b").len(), 2);
}

#[tokio::test]
async fn concurrent_scales_of_one_service_are_serialized_and_leave_a_consistent_state() {
    let app = TestApp::spawn().await;
    app.create_service("web", json!({})).await;
    let targets = [3, 1, 4, 2];
    let replies = futures::future::join_all(targets.map(|n| app.scale("web", json!(n)))).await;
    for reply in &replies {
        assert_eq!(reply.status, 200, "{reply:?}");
        // Each scale ran alone, so each measured exactly its own target.
        assert_eq!(
            reply.body["running_resources"], reply.body["desired_resources"],
            "{reply:?}"
        );
    }
    // Whichever ran last decided the state, with no leftovers in any state.
    let after = app.containers(Some("web"));
    assert!(
        targets.contains(&after.len()),
        "{} containers after the batch",
        after.len()
    );
    assert_eq!(app.running("web").len(), after.len());
    assert_eq!(
        app.status("web").await.body["running_resources"],
        after.len()
    );
}

#[tokio::test]
async fn a_slow_scale_does_not_hold_up_another_service_and_starts_in_parallel() {
    // A docker CLI whose `run` for service "slow" takes 2 s more, and notes
    // when each of those runs begins (+1) and ends (-1).
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("runs");
    let script = format!(
        "case \"$*\" in *docker-connector.service=slow*)\n\
         if [ \"$1\" = run ]; then echo \"$(date +%s%N) 1\" >> {runs}; sleep 2; echo \"$(date +%s%N) -1\" >> {runs}; fi;;\n\
         esac\nexec {real} \"$@\"",
        runs = runs.display(),
        real = real_docker()
    );
    let app = TestApp::spawn_with(
        AppOptions::new()
            .fake_docker(dir.path(), &script)
            .env("ROCKET_SCALE_CONCURRENCY", "3"),
    )
    .await;
    app.create_service("slow", json!({})).await;
    app.create_service("fast", json!({})).await;

    let slow = async {
        let reply = app.scale("slow", json!(4)).await;
        (reply, Instant::now())
    };
    let fast = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let reply = app.scale("fast", json!(1)).await;
        let status = app.status("fast").await;
        (reply, status, Instant::now())
    };
    let ((slow, slow_done), (fast, fast_status, fast_done)) = tokio::join!(slow, fast);

    assert_eq!(slow.body["running_resources"], 4, "{slow:?}");
    assert_eq!(fast.body["running_resources"], 1, "{fast:?}");
    assert_eq!(fast_status.body["running_resources"], 1);
    assert!(
        fast_done < slow_done,
        "the fast service waited for the slow one"
    );

    // At most scale_concurrency starts were in flight at once, and that many were.
    let mut events: Vec<(u128, i32)> = std::fs::read_to_string(&runs)
        .unwrap()
        .lines()
        .map(|line| {
            let (at, delta) = line.split_once(' ').unwrap();
            (at.parse().unwrap(), delta.parse().unwrap())
        })
        .collect();
    events.sort();
    let (mut in_flight, mut most) = (0, 0);
    for (_, delta) in &events {
        in_flight += delta;
        most = most.max(in_flight);
    }
    assert_eq!(events.len(), 8, "{events:?}");
    assert_eq!(most, 3, "starts in flight at once: {events:?}");
}
