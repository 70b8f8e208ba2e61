//! The store's files as something outside may have left them (issue 19):
//! a temporary file planted or left stale, a data file that is a symlink,
//! a data file the API would have refused, a count above `max_replicas`.

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;

use serde_json::json;

use crate::support::app::{launch_expecting_failure, AppOptions, TestApp};
use crate::support::docker::TEST_IMAGE;
use crate::support::store::{journal_of, stored_state};

fn mode(path: &Path) -> u32 {
    fs::symlink_metadata(path).unwrap().permissions().mode() & 0o777
}

async fn app_on(data_file: &Path, options: AppOptions) -> TestApp {
    TestApp::spawn_with(options.env("ROCKET_DATA_FILE", data_file.to_str().unwrap())).await
}

#[tokio::test]
async fn a_planted_or_stale_temporary_file_is_replaced_never_written_through() {
    let dir = tempfile::tempdir().unwrap();
    let data_file = dir.path().join("services.json");
    let temporary = dir.path().join(".services.json.tmp");
    let elsewhere = dir.path().join("elsewhere");
    fs::write(&elsewhere, "untouched").unwrap();
    symlink(&elsewhere, &temporary).unwrap();

    let mut app = app_on(&data_file, AppOptions::new()).await;
    app.create_service("vault", json!({"environment": {"TOKEN": "s3cret-1"}}))
        .await;
    // A stale temporary file, readable by all, before the next fold (at the
    // restart).
    fs::write(&temporary, "stale").unwrap();
    fs::set_permissions(&temporary, fs::Permissions::from_mode(0o644)).unwrap();
    app.restart();

    assert_eq!(fs::read_to_string(&elsewhere).unwrap(), "untouched");
    let meta = fs::symlink_metadata(&data_file).unwrap();
    assert!(
        meta.file_type().is_file(),
        "the data file is a regular file"
    );
    assert_eq!(mode(&data_file), 0o600, "the data file holds secrets");
    assert_eq!(mode(&journal_of(&data_file)), 0o600);
    assert!(!temporary.exists(), "the temporary file was renamed");
    assert!(fs::read_to_string(&data_file).unwrap().contains("s3cret-1"));
    assert_eq!(app.show("vault").await.status, 200);
}

#[tokio::test]
async fn a_symlinked_data_file_is_written_beside_its_target() {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir(dir.path().join("volume")).unwrap();
    let target = dir.path().join("volume/real.json");
    fs::write(
        &target,
        r#"{"format_version": 3, "revision": 0, "services": {}}"#,
    )
    .unwrap();
    let link = dir.path().join("services.json");
    symlink(&target, &link).unwrap();

    let mut app = app_on(&link, AppOptions::new()).await;
    app.create_service("web", json!({})).await;
    app.restart();

    assert!(
        fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink(),
        "the symlink was replaced"
    );
    assert!(
        fs::read_to_string(&target).unwrap().contains("\"web\""),
        "the target did not receive the write"
    );
    assert!(dir.path().join("volume/real.json.journal").exists());
    assert!(!dir.path().join("services.json.journal").exists());
    assert!(app.log().contains("is a symlink"), "the start says so");
    assert_eq!(app.show("web").await.status, 200);
}

#[test]
fn a_data_file_the_api_would_refuse_stops_the_start_naming_the_file_and_the_key() {
    let service = |definition: serde_json::Value| {
        json!({"definition": definition, "desired": 0, "revision": 1}).to_string()
    };
    let web = service(json!({"name": "web", "image": TEST_IMAGE}));
    let huge = service(
        json!({"name": "web", "image": TEST_IMAGE, "environment": {"BLOB": "x".repeat(100_000)}}),
    );
    let blank = service(json!({"name": "web", "image": TEST_IMAGE, "command": " "}));
    let cases = [
        (
            format!(
                r#"{{"format_version": 3, "revision": 1, "services": {{}}, "services": {{"web": {web}}}}}"#
            ),
            "services is given more than once",
        ),
        (
            format!(
                r#"{{"format_version": 3, "revision": 1, "owner": "me", "services": {{"web": {web}}}}}"#
            ),
            "\"owner\"",
        ),
        (
            format!(r#"{{"format_version": 3, "revision": 1, "services": {{"web": {huge}}}}}"#),
            "64 KiB",
        ),
        (
            format!(r#"{{"format_version": 3, "revision": 1, "services": {{"web": {blank}}}}}"#),
            "command",
        ),
    ];
    for (content, named) in cases {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("data")).unwrap();
        let file = dir.path().join("data/services.json");
        fs::write(&file, &content).unwrap();
        let (code, log) = launch_expecting_failure(dir.path(), &[]);
        assert_ne!(code, Some(0), "{log}");
        assert!(
            log.contains("data/services.json") && log.contains(named),
            "the error must name the file and {named:?}: {log}"
        );
        assert_eq!(fs::read_to_string(&file).unwrap(), content, "left alone");
    }
}

#[tokio::test]
async fn a_count_above_max_replicas_is_brought_down_with_a_warning_and_a_history_entry() {
    let dir = tempfile::tempdir().unwrap();
    let data_file = dir.path().join("services.json");
    let definition = json!({"name": "web", "image": TEST_IMAGE, "command": "sleep 600"});
    let document = json!({"format_version": 3, "revision": 4, "services": {
        "web": {"definition": definition, "desired": 5, "revision": 4}}});
    fs::write(&data_file, document.to_string()).unwrap();

    let app = app_on(
        &data_file,
        AppOptions::new().env("ROCKET_MAX_REPLICAS", "2"),
    )
    .await;
    assert!(
        app.log().contains("above max_replicas (2)"),
        "{}",
        app.log()
    );
    let status = app.status("web").await.body;
    assert_eq!(status["desired_resources"], 2, "{status:#}");
    let history = app.get("/service/web/history").await.body;
    let latest = &history["changes"][0];
    assert_eq!(
        (&latest["from"], &latest["to"]),
        (&json!(5), &json!(2)),
        "{history:#}"
    );
    assert!(
        latest["reason"]
            .as_str()
            .is_some_and(|r| r.contains("max_replicas is 2")),
        "{history:#}"
    );
    assert_eq!(stored_state(&data_file)["services"]["web"]["desired"], 2);
}
