//! The swarm backend against a real Swarm: the API contract suite of
//! tests/api (every route and documented status, and the seed's service
//! tests) on `backend = "swarm"`, and the swarm backend's own tests.
//!
//! Its own main: the engine is made a single-node Swarm manager before the
//! tests (`docker swarm init --advertise-addr 127.0.0.1`) when it is in no
//! Swarm, and leaves it again after them, so the engine ends as it was
//! found. An engine that is a worker of another Swarm cannot run them, and
//! the run fails saying so rather than skipping them.

use std::process::{Command, ExitCode};

use libtest_mimic::{Arguments, Trial};

#[allow(dead_code, unused_imports)] // shared with tests/api
#[path = "../support/mod.rs"]
mod support;

#[allow(dead_code, unused_imports)] // only its backend suite runs here
#[path = "../api/contract.rs"]
mod contract;

#[allow(dead_code, unused_imports)]
#[path = "../api/service.rs"]
mod service;

#[allow(dead_code, unused_imports)]
#[path = "../api/health.rs"]
mod health;

#[allow(dead_code, unused_imports)]
#[path = "../api/ports.rs"]
mod ports;

#[allow(dead_code, unused_imports)]
#[path = "../api/workloads.rs"]
mod api_workloads;

#[allow(dead_code, unused_imports)]
#[path = "../api/events.rs"]
mod events;

#[allow(dead_code, unused_imports)]
#[path = "../api/controller.rs"]
mod controller;

#[allow(dead_code, unused_imports)]
#[path = "../api/delete.rs"]
mod delete;

#[allow(dead_code, unused_imports)] // lends `delete` its read-only directory
#[path = "../api/durability.rs"]
mod durability;

mod feed;
mod lifecycle;
mod workloads;

use support::app::{Backend, BackendTest};
use support::docker::docker;

/// The engine made a Swarm manager for the tests, and left again after them
/// if it was in no Swarm before.
struct TestSwarm {
    initialized_here: bool,
    /// Whether the bridge `docker swarm init` creates existed before it.
    gateway_bridge_existed: bool,
}

impl TestSwarm {
    fn join() -> TestSwarm {
        let state = docker(&[
            "info",
            "--format",
            "{{.Swarm.LocalNodeState}} {{.Swarm.ControlAvailable}}",
        ]);
        let gateway_bridge_existed = network_exists("docker_gwbridge");
        match state.trim() {
            "active true" => TestSwarm {
                initialized_here: false,
                gateway_bridge_existed,
            },
            "inactive false" => {
                docker(&["swarm", "init", "--advertise-addr", "127.0.0.1"]);
                eprintln!("swarm tests: made this engine a single-node Swarm manager");
                TestSwarm {
                    initialized_here: true,
                    gateway_bridge_existed,
                }
            }
            other => panic!(
                "the swarm tests need an engine that is a Swarm manager or in no Swarm; \
                 this one is {other:?} (state, manager)"
            ),
        }
    }
}

impl Drop for TestSwarm {
    fn drop(&mut self) {
        if !self.initialized_here {
            return;
        }
        let left = Command::new("docker")
            .args(["swarm", "leave", "--force"])
            .output()
            .expect("docker CLI runs");
        if !left.status.success() {
            eprintln!(
                "swarm tests: docker swarm leave failed: {}",
                String::from_utf8_lossy(&left.stderr)
            );
            return;
        }
        if !self.gateway_bridge_existed && network_exists("docker_gwbridge") {
            let _ = Command::new("docker")
                .args(["network", "rm", "docker_gwbridge"])
                .output();
        }
        eprintln!("swarm tests: left the Swarm again");
    }
}

fn network_exists(name: &str) -> bool {
    Command::new("docker")
        .args(["network", "inspect", name])
        .output()
        .expect("docker CLI runs")
        .status
        .success()
}

/// Runs `test` on the swarm backend, in a runtime of its own.
fn trial(module: &str, name: &str, test: BackendTest) -> Trial {
    Trial::test(format!("{module}::{name}"), move || {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime")
            .block_on(test(Backend::Swarm));
        Ok(())
    })
}

fn main() -> ExitCode {
    let args = Arguments::from_args();
    let suites = [
        ("contract", contract::suite()),
        ("service", service::suite()),
        ("ports", ports::suite()),
        ("health", health::suite()),
        ("api_workloads", api_workloads::suite()),
        ("events", events::suite()),
        ("controller", controller::suite()),
        ("delete", delete::suite()),
        ("lifecycle", lifecycle::suite()),
        ("workloads", workloads::suite()),
        ("feed", feed::suite()),
    ];
    let trials: Vec<Trial> = suites
        .into_iter()
        .flat_map(|(module, tests)| {
            tests
                .into_iter()
                .map(move |(name, test)| trial(module, name, test))
        })
        .collect();
    let swarm = (!args.list).then(TestSwarm::join);
    let conclusion = libtest_mimic::run(&args, trials);
    drop(swarm);
    conclusion.exit_code()
}
