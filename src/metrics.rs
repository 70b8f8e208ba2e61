//! What `/metrics` exposes, in Prometheus' text format: HTTP requests, docker
//! CLI calls, running containers per service, connections the warden shed
//! and the build.
//!
//! Every label takes values from a small fixed set (methods, route templates,
//! status codes, docker verbs, outcomes, defined service names), never from
//! raw paths or arguments, so the number of series stays bounded whatever
//! clients send.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

use crate::error::Error;

/// Prefix of every metric name.
const NAMESPACE: &str = "docker_connector";

/// Upper bounds, in seconds, of the request-duration buckets: status answers
/// take well under a millisecond, a large scale several seconds.
const REQUEST_BUCKETS: [f64; 15] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Upper bounds, in seconds, of the docker-call buckets: `docker ps` takes
/// tens of milliseconds, `docker run` up to seconds, a hung call its timeout.
const DOCKER_BUCKETS: [f64; 11] = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

/// The `route` label of a request no route of the connector answered (an
/// unknown path or method, or one the access check refused).
pub const UNMATCHED_ROUTE: &str = "unmatched";

/// How one docker CLI call ended, as the `outcome` label gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallOutcome {
    /// It exited 0 (or failed only in a way the caller tolerates).
    Ok,
    /// It ran and docker reported a failure.
    Failed,
    /// The CLI is missing or could not reach the engine.
    Unavailable,
    /// It overran its deadline and was killed.
    Timeout,
    /// Its caller stopped waiting before it finished (`/health`'s 5 s
    /// limit, a listing dropped when the events stream ended); the child was
    /// killed.
    Abandoned,
    /// A long-running stream (`docker events`) started.
    Started,
}

impl CallOutcome {
    /// The outcome of a call that returned `result`.
    pub fn of<T>(result: &Result<T, Error>) -> Self {
        match result {
            Ok(_) => CallOutcome::Ok,
            Err(error) => Self::of_error(error),
        }
    }

    /// The outcome of a call that failed with `error`.
    pub fn of_error(error: &Error) -> Self {
        match error {
            Error::DockerTimeout { .. } => CallOutcome::Timeout,
            Error::DockerUnavailable(_) => CallOutcome::Unavailable,
            _ => CallOutcome::Failed,
        }
    }

    fn label(self) -> &'static str {
        match self {
            CallOutcome::Ok => "ok",
            CallOutcome::Failed => "failed",
            CallOutcome::Unavailable => "unavailable",
            CallOutcome::Timeout => "timeout",
            CallOutcome::Abandoned => "abandoned",
            CallOutcome::Started => "started",
        }
    }
}

/// The connector's metrics. Recording is a few atomic operations behind a
/// read lock, cheap enough for every request.
pub struct Metrics {
    registry: Registry,
    http_requests: IntCounterVec,
    http_duration: HistogramVec,
    docker_calls: IntCounterVec,
    docker_duration: HistogramVec,
    running: IntGaugeVec,
    connections_shed: IntCounterVec,
    index_live: IntGauge,
    services: IntGauge,
    log_lines_dropped: IntCounter,
    /// Held while the per-service gauges are rebuilt and gathered, so two
    /// scrapes at once cannot see each other's half-rebuilt set.
    render: Mutex<()>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Every metric registered, at zero, with `build_info` set.
    pub fn new() -> Self {
        let registry = Registry::new_custom(Some(NAMESPACE.into()), None)
            .expect("the namespace is a valid metric name");
        let http_requests = IntCounterVec::new(
            Opts::new("http_requests_total", "HTTP requests answered."),
            &["method", "route", "status"],
        )
        .expect("valid metric");
        let http_duration = HistogramVec::new(
            HistogramOpts::new(
                "http_request_duration_seconds",
                "Time from a request's arrival to its answer.",
            )
            .buckets(REQUEST_BUCKETS.to_vec()),
            &["method", "route"],
        )
        .expect("valid metric");
        let docker_calls = IntCounterVec::new(
            Opts::new(
                "docker_calls_total",
                "docker CLI commands run, by verb and how they ended.",
            ),
            &["verb", "outcome"],
        )
        .expect("valid metric");
        let docker_duration = HistogramVec::new(
            HistogramOpts::new(
                "docker_call_duration_seconds",
                "How long docker CLI commands took (streams such as docker events excluded).",
            )
            .buckets(DOCKER_BUCKETS.to_vec()),
            &["verb"],
        )
        .expect("valid metric");
        let running = IntGaugeVec::new(
            Opts::new(
                "service_running_containers",
                "Running containers of each defined service, while the container index is live.",
            ),
            &["service"],
        )
        .expect("valid metric");
        let connections_shed = IntCounterVec::new(
            Opts::new(
                "connections_shed_total",
                "Connections the warden shut down, by rule: header_timeout, per_address, reserve.",
            ),
            &["reason"],
        )
        .expect("valid metric");
        let index_live = IntGauge::new(
            "container_index_live",
            "1 while the container index follows docker's events, else 0.",
        )
        .expect("valid metric");
        let services = IntGauge::new("services", "Defined services.").expect("valid metric");
        let log_lines_dropped = IntCounter::new(
            "log_lines_dropped_total",
            "Log lines dropped because the log writer had fallen behind (see logging).",
        )
        .expect("valid metric");
        let build_info = IntGaugeVec::new(
            Opts::new("build_info", "The connector's version; always 1."),
            &["version"],
        )
        .expect("valid metric");
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        for collector in [
            Box::new(http_requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(http_duration.clone()),
            Box::new(docker_calls.clone()),
            Box::new(docker_duration.clone()),
            Box::new(running.clone()),
            Box::new(connections_shed.clone()),
            Box::new(index_live.clone()),
            Box::new(services.clone()),
            Box::new(log_lines_dropped.clone()),
            Box::new(build_info),
        ] {
            registry
                .register(collector)
                .expect("each metric is registered once");
        }
        Metrics {
            registry,
            http_requests,
            http_duration,
            docker_calls,
            docker_duration,
            running,
            connections_shed,
            index_live,
            services,
            log_lines_dropped,
            render: Mutex::new(()),
        }
    }

    /// Counts one answered request. `route` is the route's template (or
    /// [`UNMATCHED_ROUTE`]), never the path as sent.
    pub fn observe_request(&self, method: &str, route: &str, status: u16, took: Duration) {
        // Three digits on the stack: no allocation per request.
        let mut digits = [b'0'; 3];
        let mut rest = status.min(999);
        for digit in digits.iter_mut().rev() {
            *digit = b'0' + (rest % 10) as u8;
            rest /= 10;
        }
        let code = std::str::from_utf8(&digits).expect("ASCII digits");
        self.http_requests
            .with_label_values(&[method, route, code])
            .inc();
        self.http_duration
            .with_label_values(&[method, route])
            .observe(took.as_secs_f64());
    }

    /// Counts one docker command that ran to its end (or was abandoned),
    /// and how long it took.
    pub fn observe_docker_call(&self, verb: &str, outcome: CallOutcome, took: Duration) {
        self.count_docker_call(verb, outcome);
        self.docker_duration
            .with_label_values(&[verb])
            .observe(took.as_secs_f64());
    }

    /// Counts one docker command without timing it: a stream that started,
    /// or could not, whose lifetime is no call duration.
    pub fn count_docker_call(&self, verb: &str, outcome: CallOutcome) {
        self.docker_calls
            .with_label_values(&[verb, outcome.label()])
            .inc();
    }

    /// Counts `count` connections the warden shut down for `reason` (one
    /// of its few fixed rule names); a count of 0 makes the series appear.
    pub fn count_shed_connections(&self, reason: &str, count: u64) {
        self.connections_shed
            .with_label_values(&[reason])
            .inc_by(count);
    }

    /// The exposition of every metric. `running` is the running count of
    /// every defined service when the container index is live, `None`
    /// otherwise: the gauges are then left out rather than guessed.
    pub fn render(&self, services: usize, running: Option<&BTreeMap<String, usize>>) -> String {
        let _rendering = self.render.lock().expect("metrics render lock poisoned");
        self.services
            .set(i64::try_from(services).unwrap_or(i64::MAX));
        self.index_live.set(i64::from(running.is_some()));
        // Counted by the logger, which has no metrics of its own.
        let dropped = crate::logging::dropped_lines();
        self.log_lines_dropped
            .inc_by(dropped.saturating_sub(self.log_lines_dropped.get()));
        self.running.reset();
        for (service, count) in running.into_iter().flatten() {
            self.running
                .with_label_values(&[service.as_str()])
                .set(i64::try_from(*count).unwrap_or(i64::MAX));
        }
        let mut text = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut text)
            .expect("the text encoder writes to memory");
        String::from_utf8(text).expect("the text format is UTF-8")
    }
}

/// The content type of [`Metrics::render`]'s output.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

#[cfg(test)]
mod tests {
    use super::*;

    fn sample<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
        text.lines()
            .find(|line| line.starts_with(prefix))
            .map(|line| line.rsplit(' ').next().unwrap())
    }

    #[test]
    fn requests_are_counted_by_method_route_and_status() {
        let metrics = Metrics::new();
        for _ in 0..3 {
            metrics.observe_request(
                "GET",
                "/service/<name>/status",
                200,
                Duration::from_micros(300),
            );
        }
        metrics.observe_request("POST", UNMATCHED_ROUTE, 404, Duration::from_millis(2));
        let text = metrics.render(0, None);
        assert_eq!(
            sample(
                &text,
                r#"docker_connector_http_requests_total{method="GET",route="/service/<name>/status",status="200"}"#
            ),
            Some("3"),
            "{text}"
        );
        assert_eq!(
            sample(
                &text,
                r#"docker_connector_http_request_duration_seconds_bucket{method="GET",route="/service/<name>/status",le="0.0005"}"#
            ),
            Some("3"),
            "{text}"
        );
        assert_eq!(
            sample(
                &text,
                r#"docker_connector_http_requests_total{method="POST",route="unmatched",status="404"}"#
            ),
            Some("1"),
            "{text}"
        );
    }

    #[test]
    fn docker_calls_are_counted_by_verb_and_outcome() {
        let metrics = Metrics::new();
        metrics.observe_docker_call("run", CallOutcome::Ok, Duration::from_millis(400));
        metrics.observe_docker_call(
            "run",
            CallOutcome::of_error(&Error::DockerTimeout { seconds: 30 }),
            Duration::from_secs(30),
        );
        metrics.count_docker_call("events", CallOutcome::Started);
        let text = metrics.render(0, None);
        for (series, value) in [
            (
                r#"docker_connector_docker_calls_total{outcome="ok",verb="run"}"#,
                "1",
            ),
            (
                r#"docker_connector_docker_calls_total{outcome="timeout",verb="run"}"#,
                "1",
            ),
            (
                r#"docker_connector_docker_calls_total{outcome="started",verb="events"}"#,
                "1",
            ),
            (
                r#"docker_connector_docker_call_duration_seconds_count{verb="run"}"#,
                "2",
            ),
        ] {
            assert_eq!(sample(&text, series), Some(value), "{series} in {text}");
        }
        assert!(
            !text.contains(r#"docker_call_duration_seconds_count{verb="events"}"#),
            "a stream's lifetime is not a call duration: {text}"
        );
    }

    #[test]
    fn running_gauges_follow_the_last_render_and_vanish_when_the_index_is_not_live() {
        let metrics = Metrics::new();
        let counts = BTreeMap::from([("web".to_owned(), 3), ("db".to_owned(), 0)]);
        let text = metrics.render(2, Some(&counts));
        assert_eq!(
            sample(
                &text,
                r#"docker_connector_service_running_containers{service="web"}"#
            ),
            Some("3")
        );
        assert_eq!(
            sample(
                &text,
                r#"docker_connector_service_running_containers{service="db"}"#
            ),
            Some("0")
        );
        assert_eq!(
            sample(&text, "docker_connector_container_index_live "),
            Some("1")
        );
        assert_eq!(sample(&text, "docker_connector_services "), Some("2"));

        let text = metrics.render(2, None);
        assert!(!text.contains("service_running_containers{"), "{text}");
        assert_eq!(
            sample(&text, "docker_connector_container_index_live "),
            Some("0")
        );
    }

    #[test]
    fn build_info_carries_the_version() {
        let text = Metrics::new().render(0, None);
        let series = format!(
            "docker_connector_build_info{{version=\"{}\"}}",
            env!("CARGO_PKG_VERSION")
        );
        assert_eq!(sample(&text, &series), Some("1"), "{text}");
    }
}
