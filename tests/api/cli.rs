//! The binary's flags and where it reads its settings from.

use std::process::Command;

use serde_json::json;

use crate::support::app::{AppOptions, TestApp};

fn run(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_docker-connector"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn version_and_help_print_and_exit_zero() {
    let version = run(&["--version"]);
    assert!(version.status.success());
    assert_eq!(
        String::from_utf8_lossy(&version.stdout).trim(),
        format!("docker-connector {}", env!("CARGO_PKG_VERSION"))
    );
    let help = run(&["--help"]);
    assert!(help.status.success());
    assert!(String::from_utf8_lossy(&help.stdout).contains("--config PATH"));
}

#[test]
fn unknown_flags_exit_2_with_usage() {
    for args in [&["--bogus"][..], &["--config"][..], &["serve"][..]] {
        let out = run(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("Usage:"),
            "{args:?}"
        );
    }
}

#[tokio::test]
async fn config_flag_reads_settings_from_the_named_file() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("connector.toml");
    let data_file = dir.path().join("elsewhere/defs.json");
    std::fs::write(
        &config,
        format!(
            "[default]\ndata_file = {:?}\nmax_replicas = 2\n",
            data_file.to_str().unwrap()
        ),
    )
    .unwrap();
    let app = TestApp::spawn_with(
        AppOptions::new()
            .arg("--config")
            .arg(config.to_str().unwrap()),
    )
    .await;

    app.create_service("web", json!({})).await;
    assert!(
        data_file.exists(),
        "the data_file from --config was not used"
    );
    let reply = app.scale("web", json!(3)).await;
    assert_eq!(
        reply.status, 400,
        "max_replicas from --config was not used: {reply:?}"
    );
    assert!(reply.error().contains("from 0 to 2"), "{reply:?}");
}

#[tokio::test]
async fn rocket_config_names_the_file_and_variables_override_it() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("connector.toml");
    std::fs::write(
        &config,
        "[default]\nmax_replicas = 2\nscale_concurrency = 3\n",
    )
    .unwrap();
    let from_file =
        TestApp::spawn_with(AppOptions::new().env("ROCKET_CONFIG", config.to_str().unwrap())).await;
    from_file.create_service("web", json!({})).await;
    let reply = from_file.scale("web", json!(3)).await;
    assert!(
        reply.error().contains("from 0 to 2"),
        "the file was not read: {reply:?}"
    );

    let overridden = TestApp::spawn_with(
        AppOptions::new()
            .env("ROCKET_CONFIG", config.to_str().unwrap())
            .env("ROCKET_MAX_REPLICAS", "1"),
    )
    .await;
    overridden.create_service("web", json!({})).await;
    let reply = overridden.scale("web", json!(2)).await;
    assert!(reply.error().contains("from 0 to 1"), "{reply:?}");
}
