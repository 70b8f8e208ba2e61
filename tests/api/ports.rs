//! The host port status reports for a container port is one a client on
//! the host reaches, on either backend.
//!
//! Docker publishes a port twice, on `0.0.0.0` and on `::`, normally on the
//! same host port. When another program holds the IPv4 port docker picked,
//! docker 20.10 moves the IPv4 binding on and leaves the IPv6 one behind,
//! and a status that reported the IPv6 port sent clients to a port that
//! refused them (how the swarm tests failed on CI).

use std::net::TcpListener;

use serde_json::json;

use crate::support::app::{backend_suite, Backend, TestApp};
use crate::support::docker::{host_bindings, host_port, page_on, HTTPD, PAGE};

backend_suite!(the_reported_port_answers_when_docker_put_ipv6_on_another);

/// How often the split is provoked before the test gives up: other tests
/// publishing ports at the same moment may take the ports held for it.
const ATTEMPTS: u64 = 5;

/// How many host ports after the newest one are held on IPv4: fewer than
/// the 10 tries docker makes before the container fails to start.
const HELD: u16 = 3;

pub async fn the_reported_port_answers_when_docker_put_ipv6_on_another(backend: Backend) {
    let app = TestApp::spawn_with(backend.options()).await;
    app.create_service("web", json!({"command": HTTPD, "ports": ["8080"]}))
        .await;
    let reply = app.scale("web", json!(1)).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    for replicas in 2..=ATTEMPTS + 1 {
        // Docker gives each binding the port after the one it gave last:
        // hold the next few on IPv4 only, then start one more container.
        let newest = host_ports(&app)
            .into_iter()
            .flat_map(|(ipv4, ipv6)| std::iter::once(ipv4).chain(ipv6))
            .max()
            .unwrap();
        let held: Vec<TcpListener> = (newest + 1..=newest + HELD)
            .filter_map(|port| TcpListener::bind(("0.0.0.0", port)).ok())
            .collect();
        let reply = app.scale("web", json!(replicas)).await;
        assert_eq!(reply.status, 200, "{reply:?}");
        // Freed before the ports are called: a wrongly reported port must
        // refuse the connection, not reach a listener of this test.
        drop(held);

        let bindings = host_ports(&app);
        let status = app.status("web").await.body;
        let mut reported: Vec<u16> = status["containers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|container| host_port(&container["ports"]["8080/tcp"]))
            .collect();
        reported.sort_unstable();
        let mut ipv4: Vec<u16> = bindings.iter().map(|(ipv4, _)| *ipv4).collect();
        ipv4.sort_unstable();
        assert_eq!(reported, ipv4, "status {status:#}, bindings {bindings:?}");
        if bindings
            .iter()
            .any(|(ipv4, ipv6)| ipv6.is_some_and(|ipv6| ipv6 != *ipv4))
        {
            for port in reported {
                assert_eq!(page_on(port).await, PAGE, "port {port}");
            }
            return;
        }
    }
    panic!(
        "docker never bound IPv4 and IPv6 on different host ports in {ATTEMPTS} tries; \
         the engine needs IPv6 bindings and its userland proxy (docker-proxy) for this test"
    );
}
/// The IPv4 and IPv6 host ports of 8080/tcp of each running container of
/// `app`'s `web`.
fn host_ports(app: &TestApp) -> Vec<(u16, Option<u16>)> {
    app.running("web")
        .iter()
        .map(|id| host_bindings(id, "8080/tcp"))
        .collect()
}
