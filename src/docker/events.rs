//! Docker's container events, as `docker events --format '{{json .}}'`
//! prints them, read into what counting containers needs.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Deserialize;

use super::{
    Container, ContainerState, Health, LABEL_CONFIG_HASH, LABEL_HEALTH_CHECK, LABEL_RESTART_POLICY,
    LABEL_SERVICE, LABEL_SWARM_SERVICE_ID,
};

/// A point on the engine's event timeline, in nanoseconds since the epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct EventTime(i64);

impl EventTime {
    /// A point given in nanoseconds since the epoch (the tests' events).
    #[cfg(test)]
    pub fn from_nanos(nanos: i64) -> Self {
        EventTime(nanos)
    }

    /// `back` before now, by this host's clock.
    pub fn before_now(back: Duration) -> Self {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .saturating_sub(back);
        EventTime(i64::try_from(now.as_nanos()).unwrap_or(i64::MAX))
    }

    /// The value `docker events --since` takes: `SECONDS.NANOSECONDS`.
    pub fn since_arg(self) -> String {
        format!(
            "{}.{:09}",
            self.0.div_euclid(1_000_000_000),
            self.0.rem_euclid(1_000_000_000)
        )
    }
}

/// What happened to a container, as far as counting containers goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transition {
    Created,
    /// Started, restarted or unpaused: it runs now.
    Started,
    Paused,
    /// Someone asked the engine to kill or stop it (`docker kill`, `docker
    /// stop`, `docker rm -f`): its `die` follows, and the restart policy will
    /// not bring it back.
    Killed,
    /// Its main process ended (killed, stopped, or exited by itself).
    Died,
    /// Only its name changed.
    Renamed,
    /// Its health check changed its verdict (`health_status: healthy` or
    /// `unhealthy`). Docker 20.10 announces no `starting`: a container is
    /// `starting` from its start on, which its `start` event tells (see
    /// `LABEL_HEALTH_CHECK`); a `health_status: starting` is read all the
    /// same, should an engine print one.
    HealthChanged(Health),
    /// Removed: it no longer exists.
    Destroyed,
}

impl Transition {
    /// The state `docker ps` would show after this transition, and its
    /// status text; `None` when the transition says nothing about either.
    fn state(&self, exit_code: Option<&str>) -> Option<(ContainerState, String)> {
        match self {
            Transition::Created => Some((ContainerState::Created, "Created".to_owned())),
            Transition::Started => Some((ContainerState::Running, "Up".to_owned())),
            Transition::Paused => Some((ContainerState::Paused, "Up (Paused)".to_owned())),
            Transition::Died => Some((
                ContainerState::Exited,
                format!("Exited ({})", exit_code.unwrap_or("unknown")),
            )),
            Transition::Killed
            | Transition::Renamed
            | Transition::HealthChanged(_)
            | Transition::Destroyed => None,
        }
    }
}

/// One change to one of the connector's containers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerEvent {
    pub transition: Transition,
    /// The container as the event describes it: its labels and name, the
    /// state the transition leads to, and the event's time as its creation
    /// time (exact for `Created`, an estimate otherwise).
    pub container: Container,
    pub time: EventTime,
    /// Whether the container carries [`LABEL_RESTART_POLICY`]: a `die` it
    /// did not ask for is then followed by the engine's restart.
    pub restarts_itself: bool,
}

/// The fields of docker's event JSON the connector reads.
#[derive(Deserialize)]
struct RawEvent {
    #[serde(rename = "Type")]
    kind: String,
    #[serde(rename = "Action")]
    action: String,
    #[serde(rename = "Actor")]
    actor: RawActor,
    #[serde(rename = "timeNano")]
    time_nano: i64,
}

#[derive(Deserialize)]
struct RawActor {
    #[serde(rename = "ID")]
    id: String,
    #[serde(rename = "Attributes", default)]
    attributes: HashMap<String, String>,
}

/// Reads one line of `docker events --format '{{json .}}'`. `Ok(None)` for
/// events that change nothing the connector follows (exec, each run of a
/// health check, `stop` after its `die`, ...) or that concern no service.
///
/// # Errors
/// A description of a line that is not a docker event.
pub fn parse_event(line: &str) -> Result<Option<ContainerEvent>, String> {
    let raw: RawEvent =
        serde_json::from_str(line).map_err(|e| format!("unreadable event {line:?}: {e}"))?;
    if raw.kind != "container" {
        return Ok(None);
    }
    let transition = match raw.action.as_str() {
        "create" => Transition::Created,
        "start" | "restart" | "unpause" => Transition::Started,
        "pause" => Transition::Paused,
        "kill" => Transition::Killed,
        "die" => Transition::Died,
        "rename" => Transition::Renamed,
        "destroy" => Transition::Destroyed,
        other => match other
            .strip_prefix("health_status: ")
            .and_then(Health::parse)
        {
            Some(health) => Transition::HealthChanged(health),
            None => return Ok(None),
        },
    };
    let attributes = &raw.actor.attributes;
    let Some(service) = attributes.get(LABEL_SERVICE) else {
        return Ok(None);
    };
    // Swarm's own task containers are Swarm's to manage.
    if attributes.contains_key(LABEL_SWARM_SERVICE_ID) {
        return Ok(None);
    }
    let attribute = |key: &str| attributes.get(key).cloned().unwrap_or_default();
    let (state, status) = transition
        .state(attributes.get("exitCode").map(String::as_str))
        .unwrap_or_default();
    // A container with a check starts `starting`: its first verdict comes
    // one interval later, as an event of its own.
    let health = match &transition {
        Transition::HealthChanged(health) => Some(*health),
        Transition::Started
            if attributes.get(LABEL_HEALTH_CHECK).map(String::as_str) == Some("true") =>
        {
            Some(Health::Starting)
        }
        _ => None,
    };
    Ok(Some(ContainerEvent {
        container: Container {
            id: raw.actor.id,
            service: service.clone(),
            name: attribute("name"),
            state,
            status,
            config_hash: attribute(LABEL_CONFIG_HASH),
            created: raw.time_nano.div_euclid(1_000_000_000),
            restarts: 0,
            last_exit_code: attributes
                .get("exitCode")
                .and_then(|code| code.parse().ok()),
            health,
        },
        transition,
        time: EventTime(raw.time_nano),
        restarts_itself: attributes.contains_key(LABEL_RESTART_POLICY),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(action: &str, extra: &str) -> String {
        format!(
            r#"{{"status":"{action}","id":"abc","from":"app:1","Type":"container","Action":"{action}","Actor":{{"ID":"abc","Attributes":{{"docker-connector.config-hash":"h1","docker-connector.instance":"default","docker-connector.service":"web","image":"app:1","name":"default-web-1"{extra}}}}},"scope":"local","time":1795854554,"timeNano":1795854554123456789}}"#
        )
    }

    #[test]
    fn reads_the_fields_that_count() {
        let event = parse_event(&line("die", r#","exitCode":"137""#))
            .unwrap()
            .unwrap();
        assert_eq!(event.transition, Transition::Died);
        assert_eq!(event.container.id, "abc");
        assert_eq!(event.container.service, "web");
        assert_eq!(event.container.name, "default-web-1");
        assert_eq!(event.container.config_hash, "h1");
        assert_eq!(event.container.state, ContainerState::Exited);
        assert_eq!(event.container.status, "Exited (137)");
        assert_eq!(event.container.created, 1_795_854_554);
        assert_eq!(event.time, EventTime(1_795_854_554_123_456_789));
        assert_eq!(event.container.last_exit_code, Some(137));
        assert!(!event.restarts_itself);
        let labelled = line(
            "die",
            r#","exitCode":"1","docker-connector.restart-policy":"unless-stopped""#,
        );
        assert!(parse_event(&labelled).unwrap().unwrap().restarts_itself);
    }

    #[test]
    fn each_action_leads_to_the_state_docker_ps_would_show() {
        for (action, transition, state) in [
            ("create", Transition::Created, "created"),
            ("start", Transition::Started, "running"),
            ("restart", Transition::Started, "running"),
            ("unpause", Transition::Started, "running"),
            ("pause", Transition::Paused, "paused"),
            ("kill", Transition::Killed, "unknown"),
            ("rename", Transition::Renamed, "unknown"),
            ("destroy", Transition::Destroyed, "unknown"),
        ] {
            let event = parse_event(&line(action, "")).unwrap().unwrap();
            assert_eq!(event.transition, transition, "{action}");
            assert_eq!(event.container.state.as_str(), state, "{action}");
        }
    }

    #[test]
    fn skips_what_changes_no_count() {
        for action in [
            "stop",
            "exec_start: sh -c true",
            "exec_die",
            "health_status: sleepy",
            "oom",
        ] {
            assert_eq!(parse_event(&line(action, "")), Ok(None), "{action}");
        }
        let unlabelled = line("start", "").replace("docker-connector.service", "other");
        assert_eq!(parse_event(&unlabelled), Ok(None));
        let network = line("start", "").replace(r#""Type":"container""#, r#""Type":"network""#);
        assert_eq!(parse_event(&network), Ok(None));
        let swarm_task = line("start", r#","com.docker.swarm.service.id":"m5gzmmfwr74a""#);
        assert_eq!(parse_event(&swarm_task), Ok(None), "Swarm's task container");
    }

    #[test]
    fn health_verdicts_and_checked_starts_carry_a_health() {
        // As docker 20.10 prints them: the labels, the name, nothing else.
        for (action, health) in [
            ("health_status: healthy", Health::Healthy),
            ("health_status: unhealthy", Health::Unhealthy),
            ("health_status: starting", Health::Starting),
        ] {
            let event = parse_event(&line(action, "")).unwrap().unwrap();
            assert_eq!(event.transition, Transition::HealthChanged(health));
            assert_eq!(event.container.health, Some(health));
            assert_eq!(
                event.container.state,
                ContainerState::Unknown,
                "says nothing of it"
            );
        }
        let checked = line("start", r#","docker-connector.health-check":"true""#);
        let event = parse_event(&checked).unwrap().unwrap();
        assert_eq!(event.container.health, Some(Health::Starting));
        assert_eq!(
            parse_event(&line("start", ""))
                .unwrap()
                .unwrap()
                .container
                .health,
            None
        );
        let died = line("die", r#","docker-connector.health-check":"true""#);
        assert_eq!(parse_event(&died).unwrap().unwrap().container.health, None);
    }

    #[test]
    fn refuses_what_is_not_an_event() {
        assert!(parse_event("Error response from daemon").is_err());
        assert!(parse_event("{}").is_err());
    }

    #[test]
    fn since_is_seconds_and_nanoseconds() {
        assert_eq!(
            EventTime(1_795_854_554_000_000_042).since_arg(),
            "1795854554.000000042"
        );
    }
}
