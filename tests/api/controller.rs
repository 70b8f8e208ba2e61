//! The API for controllers (issue 17) against the real engine: blocking
//! status (`?index=N&wait=30s`) with its `X-Connector-Index` and `ETag`,
//! compare-and-set with `If-Match`, relative scales (`{"delta": d}`) with a
//! reason, per-service `scaling` bounds, and the history of changes, kept
//! through a `kill -9`.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use regex::Regex;
use serde_json::{json, Value};

use crate::support::app::{backend_suite, AppOptions, Backend, Reply, TestApp};
use crate::support::docker::TEST_IMAGE;
use crate::support::sse::{summary, EventStream, Next};

backend_suite!(
    a_blocking_status_wakes_on_a_change_and_otherwise_answers_when_the_wait_runs_out,
    every_answer_about_a_service_carries_its_etag_and_status_its_index,
    of_two_writers_holding_the_same_etag_exactly_one_wins_and_the_other_gets_412,
    a_stale_if_match_on_delete_rollback_or_scale_is_412_and_changes_nothing,
    concurrent_deltas_add_up,
    scaling_bounds_refuse_counts_outside_them_and_nothing_changes,
    history_lists_changes_newest_first_with_reason_and_caller_and_survives_kill_9,
);

/// The User-Agent the history tests send, to find in `caller`.
const USER_AGENT: &str = "controller-test/1.0";

/// The index a status answer carries.
fn index_of(reply: &Reply) -> u64 {
    let index = reply
        .header("x-connector-index")
        .unwrap_or_else(|| panic!("no X-Connector-Index: {reply:?}"));
    index
        .parse()
        .unwrap_or_else(|_| panic!("X-Connector-Index {index:?} is not an integer"))
}

/// The `ETag` an answer carries: a quoted revision.
fn etag_of(reply: &Reply) -> String {
    let tag = reply
        .header("etag")
        .unwrap_or_else(|| panic!("no ETag: {reply:?}"))
        .to_owned();
    assert!(
        Regex::new(r#"^"[0-9]+"$"#).unwrap().is_match(&tag),
        "ETag {tag:?} is not a quoted revision"
    );
    tag
}

fn revision(etag: &str) -> u64 {
    etag.trim_matches('"').parse().unwrap()
}

/// `method path` with `If-Match: etag` and a JSON body.
async fn if_match(
    app: &TestApp,
    method: &str,
    path: &str,
    etag: &str,
    body: Option<Value>,
) -> Reply {
    app.send_with_headers(
        method,
        path,
        &[("if-match", etag)],
        body.map(|b| b.to_string().into_bytes()),
    )
    .await
}

/// A scale with any body (`number` or `delta`, `reason`).
async fn scale_by(app: &TestApp, name: &str, body: Value) -> Reply {
    app.send_json("POST", &format!("/service/{name}/scale"), &body)
        .await
}

/// A request sent with [`USER_AGENT`].
async fn as_caller(app: &TestApp, method: &str, path: &str, body: Value) -> Reply {
    app.send_with_headers(
        method,
        path,
        &[("user-agent", USER_AGENT)],
        Some(body.to_string().into_bytes()),
    )
    .await
}

/// What the data file holds of `name`: its definition and desired count.
fn stored(app: &TestApp, name: &str) -> Value {
    let file = app.stored_state();
    let entry = &file["services"][name];
    json!({"definition": entry["definition"], "desired": entry["desired"]})
}

async fn history(app: &TestApp, name: &str) -> Vec<Value> {
    let reply = app.get(&format!("/service/{name}/history")).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.body["service"], name, "{reply:?}");
    reply.body["changes"]
        .as_array()
        .unwrap_or_else(|| panic!("no changes: {reply:?}"))
        .clone()
}

fn kinds(changes: &[Value]) -> Vec<&str> {
    changes
        .iter()
        .map(|c| c["kind"].as_str().unwrap())
        .collect()
}

fn version(version: &str) -> Value {
    json!({"image": TEST_IMAGE, "environment": {"VERSION": version}})
}

/// The desired count status reports.
async fn desired(app: &TestApp, name: &str) -> Value {
    let reply = app.status(name).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    reply.body["desired_resources"].clone()
}

pub async fn a_blocking_status_wakes_on_a_change_and_otherwise_answers_when_the_wait_runs_out(
    backend: Backend,
) {
    let app = TestApp::spawn_with(backend.options()).await;
    app.create_service("web", json!({})).await;
    let now = app.status("web").await;
    assert_eq!(now.status, 200, "{now:?}");
    let index = index_of(&now);

    // Nothing changes: it answers when the wait runs out, with the same
    // index. Both forms of a duration are taken.
    for wait in ["2s", "2"] {
        let started = Instant::now();
        let reply = app
            .get(&format!("/service/web/status?index={index}&wait={wait}"))
            .await;
        let took = started.elapsed();
        assert_eq!(reply.status, 200, "{reply:?}");
        assert!(
            took >= Duration::from_millis(1900) && took < Duration::from_secs(4),
            "wait={wait} answered after {took:?}"
        );
        assert_eq!(index_of(&reply), index, "wait={wait}: {reply:?}");
        assert_eq!(
            reply.body["desired_resources"],
            now.body["desired_resources"]
        );
    }

    // A change made meanwhile by another client wakes it.
    let blocked = async {
        let started = Instant::now();
        let reply = app
            .get(&format!("/service/web/status?index={index}&wait=60s"))
            .await;
        (reply, started.elapsed())
    };
    let change = async {
        tokio::time::sleep(Duration::from_secs(1)).await;
        scale_by(&app, "web", json!({"delta": 1, "reason": "wake it"})).await
    };
    let ((woken, took), scaled) = tokio::join!(blocked, change);
    assert_eq!(scaled.status, 200, "{scaled:?}");
    assert_eq!(woken.status, 200, "{woken:?}");
    assert!(
        took >= Duration::from_millis(900),
        "answered after {took:?}, before the change"
    );
    assert!(
        took < Duration::from_secs(30),
        "the change did not wake it: {took:?}"
    );
    assert!(index_of(&woken) > index, "{woken:?}");
    assert_eq!(woken.body["desired_resources"], 1, "{woken:?}");

    // An index the service has passed answers at once.
    let started = Instant::now();
    let reply = app
        .get(&format!("/service/web/status?index={index}&wait=60s"))
        .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert!(index_of(&reply) > index, "{reply:?}");
}

#[tokio::test]
async fn a_blocking_status_of_a_fresh_lifetime_wakes_on_its_first_change() {
    // After a restart no event has been about the service yet: its index is
    // where the lifetime starts, and the first change must still wake a
    // client blocked on it.
    let mut app = TestApp::spawn_with(AppOptions::new().without_reconciler()).await;
    app.create_service("web", json!({})).await;
    app.restart();
    let index = index_of(&app.status("web").await);
    let blocked = async {
        let started = Instant::now();
        let reply = app
            .get(&format!("/service/web/status?index={index}&wait=30s"))
            .await;
        (reply, started.elapsed())
    };
    let change = async {
        tokio::time::sleep(Duration::from_secs(1)).await;
        app.scale("web", json!(1)).await
    };
    let ((woken, took), scaled) = tokio::join!(blocked, change);
    assert_eq!(scaled.status, 200, "{scaled:?}");
    assert_eq!(woken.status, 200, "{woken:?}");
    assert!(
        took < Duration::from_secs(15),
        "the first change of the lifetime did not wake it: {took:?}"
    );
    assert!(index_of(&woken) > index, "{woken:?}");
}

#[tokio::test]
async fn a_blocked_status_answers_at_once_when_the_connector_stops() {
    // A status may wait ten minutes, and a stop waits for the requests in
    // flight: the blocked one must answer rather than hold the stop.
    let mut app = TestApp::spawn_with(AppOptions::new().without_reconciler()).await;
    app.create_service("web", json!({})).await;
    let index = index_of(&app.status("web").await);
    let blocked = async {
        let reply = app
            .get(&format!("/service/web/status?index={index}&wait=10m"))
            .await;
        (reply, Instant::now())
    };
    let stop = async {
        tokio::time::sleep(Duration::from_secs(1)).await;
        app.send_sigterm();
        Instant::now()
    };
    let ((reply, answered), signalled) = tokio::join!(blocked, stop);
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(index_of(&reply), index, "{reply:?}");
    assert!(
        answered.saturating_duration_since(signalled) < Duration::from_secs(2),
        "answered {:?} after SIGTERM",
        answered.saturating_duration_since(signalled)
    );
    assert_eq!(app.wait_for_exit(), Some(0), "{}", app.log());
    assert!(
        signalled.elapsed() < Duration::from_secs(5),
        "the connector took {:?} to exit",
        signalled.elapsed()
    );
}

#[tokio::test]
async fn the_status_index_is_the_id_of_the_services_last_event() {
    let app = TestApp::spawn_with(AppOptions::new().without_reconciler()).await;
    let mut events = EventStream::open(&app, "/events", &[]).await;
    app.create_service("web", json!({})).await;
    app.create_service("db", json!({})).await;
    let web_created = events
        .until(Duration::from_secs(5), "web's creation", |e| {
            e.kind == "service.created" && e.service() == Some("web")
        })
        .await
        .pop()
        .unwrap();
    events
        .until(Duration::from_secs(5), "db's creation", |e| {
            e.kind == "service.created" && e.service() == Some("db")
        })
        .await;
    // db's event came later, but it is not about web.
    assert_eq!(index_of(&app.status("web").await), web_created.id());
    assert_eq!(app.put("web", version("2")).await.status, 200);
    // The replacement, and whatever follows it about web (its rollout).
    let mut about_web = events
        .until(Duration::from_secs(5), "web's replacement", |e| {
            e.kind == "service.replaced"
        })
        .await;
    while let Next::Event(event) = events.next(Duration::from_millis(500)).await {
        about_web.push(event);
    }
    about_web.retain(|e| e.service() == Some("web"));
    assert_eq!(
        index_of(&app.status("web").await),
        about_web.last().unwrap().id(),
        "{:#?}",
        summary(&about_web)
    );
}

#[tokio::test]
async fn a_wait_without_an_index_and_bad_values_are_refused_naming_them() {
    let app = TestApp::spawn_with(AppOptions::new().without_reconciler()).await;
    app.create_service("web", json!({})).await;
    for (query, field) in [
        ("wait=2s", "wait"),
        ("wait=2", "wait"),
        ("index=abc", "index"),
        ("index=-1", "index"),
        ("index=1&wait=11m", "wait"),
        ("index=1&wait=soon", "wait"),
        ("index=1&wait=-5s", "wait"),
    ] {
        let reply = app.get(&format!("/service/web/status?{query}")).await;
        assert_eq!(reply.status, 400, "{query}: {reply:?}");
        assert!(
            reply.error().starts_with(field),
            "{query}: the error should name {field}: {reply:?}"
        );
    }
    // The longest wait is allowed; an index long passed answers at once.
    let started = Instant::now();
    let reply = app.get("/service/web/status?index=1&wait=10m").await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert!(started.elapsed() < Duration::from_secs(1));
    let reply = app.get("/service/ghost/status?index=1&wait=2s").await;
    assert_eq!(reply.status, 404, "{reply:?}");
}

pub async fn every_answer_about_a_service_carries_its_etag_and_status_its_index(backend: Backend) {
    let app = TestApp::spawn_with(backend.options()).await;
    let mut body = version("1");
    body["name"] = json!("web");
    let created = app.create(body).await;
    assert_eq!(created.status, 201, "{created:?}");
    let mut tags = vec![etag_of(&created)];
    let same = |reply: &Reply, tag: &String| {
        assert_eq!(&etag_of(reply), tag, "{reply:?}");
    };
    same(&app.show("web").await, &tags[0]);
    let status = app.status("web").await;
    same(&status, &tags[0]);
    index_of(&status);

    let replaced = app.put("web", version("2")).await;
    assert_eq!(replaced.status, 200, "{replaced:?}");
    tags.push(etag_of(&replaced));
    same(&app.show("web").await, &tags[1]);

    // A change of the desired count is a change of the revision too.
    let scaled = app.scale("web", json!(1)).await;
    assert_eq!(scaled.status, 200, "{scaled:?}");
    tags.push(etag_of(&scaled));
    same(&app.status("web").await, &tags[2]);
    same(&app.show("web").await, &tags[2]);

    let rolled_back = app.send("POST", "/service/web/rollback", None).await;
    assert_eq!(rolled_back.status, 200, "{rolled_back:?}");
    tags.push(etag_of(&rolled_back));
    same(&app.show("web").await, &tags[3]);

    let revisions: Vec<u64> = tags.iter().map(|t| revision(t)).collect();
    assert!(
        revisions.windows(2).all(|pair| pair[1] > pair[0]),
        "revisions do not grow: {revisions:?}"
    );
}

pub async fn of_two_writers_holding_the_same_etag_exactly_one_wins_and_the_other_gets_412(
    backend: Backend,
) {
    let app = TestApp::spawn_with(backend.options()).await;
    app.create_service("web", json!({})).await;

    // Two PUTs of the same revision.
    let etag = etag_of(&app.show("web").await);
    let (a, b) = tokio::join!(
        if_match(&app, "PUT", "/service/web", &etag, Some(version("a"))),
        if_match(&app, "PUT", "/service/web", &etag, Some(version("b"))),
    );
    let mut statuses = [a.status, b.status];
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 412], "{a:?}\n{b:?}");
    let (winner, loser) = if a.status == 200 { (a, b) } else { (b, a) };
    assert!(!loser.error().is_empty(), "{loser:?}");
    let shown = app.show("web").await;
    assert_eq!(shown.body, winner.body, "the loser changed the definition");
    assert_eq!(stored(&app, "web")["definition"], winner.body);
    assert_eq!(kinds(&history(&app, "web").await), ["replaced", "created"]);

    // The loser reads again and retries: that works.
    let fresh = etag_of(&shown);
    let retried = if_match(&app, "PUT", "/service/web", &fresh, Some(version("c"))).await;
    assert_eq!(retried.status, 200, "{retried:?}");

    // Two scales of the same revision.
    let etag = etag_of(&app.status("web").await);
    let scale = |number: u32| {
        if_match(
            &app,
            "POST",
            "/service/web/scale",
            &etag,
            Some(json!({ "number": number })),
        )
    };
    let (one, two) = tokio::join!(scale(1), scale(2));
    let mut statuses = [one.status, two.status];
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 412], "{one:?}\n{two:?}");
    let won = if one.status == 200 { 1 } else { 2 };
    assert_eq!(desired(&app, "web").await, won);
    assert_eq!(stored(&app, "web")["desired"], won);

    // `*` matches whatever revision the service has.
    let any = if_match(&app, "PUT", "/service/web", "*", Some(version("d"))).await;
    assert_eq!(any.status, 200, "{any:?}");
}

pub async fn a_stale_if_match_on_delete_rollback_or_scale_is_412_and_changes_nothing(
    backend: Backend,
) {
    let app = TestApp::spawn_with(backend.options()).await;
    let mut body = version("1");
    body["name"] = json!("web");
    let created = app.create(body).await;
    let stale = etag_of(&created);
    let replaced = app.put("web", version("2")).await;
    assert_eq!(replaced.status, 200, "{replaced:?}");
    let before = stored(&app, "web");
    let changes = history(&app, "web").await.len();

    for (method, path, body) in [
        ("DELETE", "/service/web", None),
        ("POST", "/service/web/rollback", None),
        ("POST", "/service/web/scale", Some(json!({"number": 1}))),
        ("POST", "/service/web/scale", Some(json!({"delta": 1}))),
        ("PUT", "/service/web", Some(version("3"))),
    ] {
        let reply = if_match(&app, method, path, &stale, body).await;
        assert_eq!(reply.status, 412, "{method} {path}: {reply:?}");
        assert!(!reply.error().is_empty(), "{reply:?}");
        assert_eq!(app.show("web").await.body, replaced.body, "{method} {path}");
        assert_eq!(stored(&app, "web"), before, "{method} {path}");
        assert_eq!(history(&app, "web").await.len(), changes, "{method} {path}");
    }
    assert_eq!(desired(&app, "web").await, 0);

    let current = etag_of(&app.show("web").await);
    let deleted = if_match(&app, "DELETE", "/service/web", &current, None).await;
    assert_eq!(deleted.status, 204, "{deleted:?}");
    assert_eq!(app.show("web").await.status, 404);
}

pub async fn concurrent_deltas_add_up(backend: Backend) {
    const CLIENTS: u64 = 5;
    let app = TestApp::spawn_with(backend.options()).await;
    app.create_service("web", json!({})).await;
    let scales = (0..CLIENTS).map(|i| {
        scale_by(
            &app,
            "web",
            json!({"delta": 1, "reason": format!("client {i}")}),
        )
    });
    for reply in futures::future::join_all(scales).await {
        assert_eq!(reply.status, 200, "{reply:?}");
    }
    assert_eq!(desired(&app, "web").await, CLIENTS);
    assert_eq!(stored(&app, "web")["desired"], CLIENTS);

    // Each delta is one step of the count, with its own reason.
    let changes = history(&app, "web").await;
    let scaled: Vec<&Value> = changes.iter().filter(|c| c["kind"] == "scaled").collect();
    let steps: BTreeSet<(u64, u64)> = scaled
        .iter()
        .map(|c| (c["from"].as_u64().unwrap(), c["to"].as_u64().unwrap()))
        .collect();
    let expected: BTreeSet<(u64, u64)> = (0..CLIENTS).map(|n| (n, n + 1)).collect();
    assert_eq!(steps, expected, "{changes:#?}");
    let reasons: BTreeSet<&str> = scaled
        .iter()
        .map(|c| c["reason"].as_str().unwrap())
        .collect();
    let expected: BTreeSet<String> = (0..CLIENTS).map(|i| format!("client {i}")).collect();
    assert_eq!(
        reasons,
        expected.iter().map(String::as_str).collect(),
        "{changes:#?}"
    );
}

#[tokio::test]
async fn a_delta_past_zero_or_max_replicas_is_409_naming_delta_and_changes_nothing() {
    let app = TestApp::spawn_with(
        AppOptions::new()
            .without_reconciler()
            .env("ROCKET_MAX_REPLICAS", "3"),
    )
    .await;
    app.create_service("web", json!({})).await;
    assert_eq!(app.scale("web", json!(1)).await.status, 200);
    let before = stored(&app, "web");

    for delta in [-2, 3] {
        let reply = scale_by(&app, "web", json!({ "delta": delta })).await;
        assert_eq!(reply.status, 409, "delta {delta}: {reply:?}");
        assert!(reply.error().starts_with("delta"), "{reply:?}");
    }
    for (body, field) in [
        (json!({"delta": "x"}), Some("delta")),
        (json!({"delta": 1.5}), Some("delta")),
        (
            json!({"delta": 1, "reason": "x".repeat(201)}),
            Some("reason"),
        ),
        (json!({"delta": 1, "reason": 7}), Some("reason")),
        // Exactly one of number and delta.
        (json!({"number": 1, "delta": 1}), None),
        (json!({"reason": "neither"}), None),
    ] {
        let reply = scale_by(&app, "web", body.clone()).await;
        assert_eq!(reply.status, 400, "{body}: {reply:?}");
        if let Some(field) = field {
            assert!(reply.error().starts_with(field), "{body}: {reply:?}");
        }
    }
    assert_eq!(stored(&app, "web"), before);
    assert_eq!(desired(&app, "web").await, 1);
    // The longest reason is taken.
    let reply = scale_by(&app, "web", json!({"delta": -1, "reason": "x".repeat(200)})).await;
    assert_eq!(reply.status, 200, "{reply:?}");
}

pub async fn scaling_bounds_refuse_counts_outside_them_and_nothing_changes(backend: Backend) {
    let app = TestApp::spawn_with(backend.options()).await;
    let created = app
        .create_service("web", json!({"scaling": {"min": 1, "max": 2}}))
        .await;
    assert_eq!(created["scaling"], json!({"min": 1, "max": 2}), "{created}");
    // A new service starts at 0 whatever its bounds.
    assert_eq!(desired(&app, "web").await, 0);
    assert_eq!(app.scale("web", json!(1)).await.status, 200);
    let before = stored(&app, "web");

    for (body, field, bound) in [
        (json!({"number": 3}), "number", "scaling.max"),
        (json!({"delta": 2}), "delta", "scaling.max"),
        (json!({"number": 0}), "number", "scaling.min"),
        (json!({"delta": -1}), "delta", "scaling.min"),
    ] {
        let reply = scale_by(&app, "web", body.clone()).await;
        assert_eq!(reply.status, 409, "{body}: {reply:?}");
        let error = reply.error();
        assert!(
            error.starts_with(field) && error.contains(bound),
            "{body}: the error should name {field} and {bound}: {error}"
        );
    }
    assert_eq!(stored(&app, "web"), before);
    assert_eq!(desired(&app, "web").await, 1);

    // A definition whose bounds exclude the desired count is refused.
    for (scaling, bound) in [
        (json!({"min": 2, "max": 4}), "scaling.min"),
        (json!({"max": 0}), "scaling.max"),
    ] {
        let body = json!({"image": TEST_IMAGE, "scaling": scaling});
        let reply = app.put("web", body).await;
        assert_eq!(reply.status, 409, "{scaling}: {reply:?}");
        assert!(reply.error().starts_with(bound), "{scaling}: {reply:?}");
        assert_eq!(stored(&app, "web"), before, "{scaling}");
    }
    for scaling in [
        json!({"min": 3, "max": 1}),
        json!({"min": -1}),
        json!({"minimum": 1}),
        json!([1, 2]),
    ] {
        let body = json!({"image": TEST_IMAGE, "scaling": scaling});
        let reply = app.put("web", body).await;
        assert_eq!(reply.status, 400, "{scaling}: {reply:?}");
        assert!(reply.error().starts_with("scaling"), "{scaling}: {reply:?}");
    }
    assert_eq!(stored(&app, "web"), before);

    // Bounds that hold the count are taken, one side alone too.
    for scaling in [json!({"min": 0, "max": 1}), json!({"min": 1})] {
        let body = json!({"image": TEST_IMAGE, "scaling": scaling});
        let reply = app.put("web", body).await;
        assert_eq!(reply.status, 200, "{scaling}: {reply:?}");
        assert_eq!(reply.body["scaling"], scaling, "{reply:?}");
    }
}

pub async fn history_lists_changes_newest_first_with_reason_and_caller_and_survives_kill_9(
    backend: Backend,
) {
    let mut app = TestApp::spawn_with(backend.options()).await;
    let mut body = version("1");
    body["name"] = json!("web");
    for (method, path, body, want) in [
        ("POST", "/service", body, 201),
        (
            "POST",
            "/service/web/scale",
            json!({"number": 1, "reason": "first"}),
            200,
        ),
        ("PUT", "/service/web", version("2"), 200),
        ("POST", "/service/web/rollback", Value::Null, 200),
        (
            "POST",
            "/service/web/scale",
            json!({"delta": 1, "reason": "second"}),
            200,
        ),
    ] {
        let reply = if body.is_null() {
            app.send_with_headers(method, path, &[("user-agent", USER_AGENT)], None)
                .await
        } else {
            as_caller(&app, method, path, body).await
        };
        assert_eq!(reply.status, want, "{method} {path}: {reply:?}");
    }

    let changes = history(&app, "web").await;
    assert_eq!(
        kinds(&changes),
        ["scaled", "rolled_back", "replaced", "scaled", "created"],
        "{changes:#?}"
    );
    let rfc3339 = Regex::new(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$").unwrap();
    for change in &changes {
        assert!(
            rfc3339.is_match(change["time"].as_str().unwrap_or_default()),
            "{change}"
        );
        let caller = change["caller"].as_str().unwrap_or_default();
        assert!(
            caller.contains(USER_AGENT) && caller.contains("127.0.0.1"),
            "the caller should name the client and its address: {change}"
        );
        let outcome = change["outcome"].as_str().unwrap_or_default();
        assert!(
            ["pending", "done", "rolled back", "superseded"].contains(&outcome)
                || outcome.starts_with("failed: "),
            "{change}"
        );
    }
    let revisions: Vec<u64> = changes
        .iter()
        .map(|c| c["revision"].as_u64().unwrap())
        .collect();
    assert!(
        revisions.windows(2).all(|pair| pair[0] > pair[1]),
        "not newest first: {revisions:?}"
    );
    let (second, rolled_back, replaced, first, created) = (
        &changes[0],
        &changes[1],
        &changes[2],
        &changes[3],
        &changes[4],
    );
    assert_eq!((&second["from"], &second["to"]), (&json!(1), &json!(2)));
    assert_eq!(second["reason"], "second");
    assert_eq!((&first["from"], &first["to"]), (&json!(0), &json!(1)));
    assert_eq!(first["reason"], "first");
    for definition_change in [created, replaced, rolled_back] {
        let to = &definition_change["to"];
        assert_eq!(to["image"], TEST_IMAGE, "{definition_change}");
        assert!(to["config_hash"].is_string(), "{definition_change}");
    }
    assert!(created["from"].is_null(), "{created}");
    assert_eq!(replaced["from"], created["to"], "{replaced}");
    assert_ne!(replaced["to"], created["to"], "{replaced}");
    // The rollback went back to the created definition.
    assert_eq!(rolled_back["from"], replaced["to"], "{rolled_back}");
    assert_eq!(rolled_back["to"], created["to"], "{rolled_back}");

    // kill -9: the history is in the data file. Outcomes still pending at
    // the kill may be settled after it, so they are left out.
    let without_outcome = |changes: &[Value]| -> Vec<Value> {
        changes
            .iter()
            .map(|c| {
                let mut c = c.clone();
                c.as_object_mut().unwrap().remove("outcome");
                c
            })
            .collect()
    };
    app.restart();
    let after = history(&app, "web").await;
    assert_eq!(without_outcome(&after), without_outcome(&changes));

    // At most 50 changes are kept, the oldest dropped first.
    for n in 0..50 {
        let reply = app.put("web", version(&format!("n{n}"))).await;
        assert_eq!(reply.status, 200, "{reply:?}");
    }
    let changes = history(&app, "web").await;
    assert_eq!(changes.len(), 50, "{changes:#?}");
    assert!(
        changes.iter().all(|c| c["kind"] == "replaced"),
        "{changes:#?}"
    );
    assert_eq!(
        changes[0]["revision"].as_u64(),
        Some(revision(&etag_of(&app.show("web").await)))
    );

    let reply = app.get("/service/ghost/history").await;
    assert_eq!(reply.status, 404, "{reply:?}");
}
