//! One container the connector owns, and its state, as read from docker's
//! listings and events.

/// Container port (`8080/tcp`) → the host port docker published it on.
pub type PublishedPorts = std::collections::BTreeMap<String, u16>;

/// One container the connector owns, as the engine last reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Container {
    pub id: String,
    /// The value of its [`super::LABEL_SERVICE`] label.
    pub service: String,
    pub name: String,
    pub state: ContainerState,
    /// Docker's human status, e.g. `Exited (1) 2 seconds ago`.
    pub status: String,
    pub config_hash: String,
    /// Creation time, seconds since the Unix epoch (docker reports whole seconds).
    pub created: i64,
    /// How often it died and was restarted in place by its restart policy,
    /// as far as the connector saw (docker's events since it started).
    pub restarts: u32,
    /// The code its process last exited with, if it ever did.
    pub last_exit_code: Option<i64>,
    /// What its health check says while it runs; `None` when it has none
    /// (or does not run).
    pub health: Option<Health>,
}

impl Container {
    pub fn is_running(&self) -> bool {
        self.state == ContainerState::Running
    }

    /// Whether it fills one of its service's places: it runs, or will run
    /// again without the connector (docker is restarting it). Anything else
    /// (created, paused, exited, dead) is dead weight: a paused container
    /// serves nothing, so it is replaced like a stopped one.
    pub fn holds_a_place(&self) -> bool {
        matches!(
            self.state,
            ContainerState::Running | ContainerState::Restarting
        )
    }

    /// Whether it serves, as far as the connector can tell: it runs, and
    /// its health check (if it has one) passes.
    pub fn is_healthy(&self) -> bool {
        self.is_running() && matches!(self.health, None | Some(Health::Healthy))
    }

    /// Whether it runs and its health check has failed `retries` times in
    /// a row: the reconciler replaces it.
    pub fn is_unhealthy(&self) -> bool {
        self.is_running() && self.health == Some(Health::Unhealthy)
    }

    /// Whether it has a process to end gracefully before it is removed.
    /// A state not known is treated as running: stopping a container that
    /// does not run costs docker nothing. A paused container is frozen and
    /// cannot handle a signal, and a restarting one has no process between
    /// its restarts, so both are only removed.
    pub fn needs_stopping(&self) -> bool {
        matches!(
            self.state,
            ContainerState::Running | ContainerState::Unknown
        )
    }

    /// Whether the engine is already removing it: removing it again fails.
    pub fn is_being_removed(&self) -> bool {
        self.state == ContainerState::Removing
    }
}

/// What a container's health check says, as docker names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    /// No check has passed yet, and not enough have failed to call it
    /// unhealthy (or the start period still runs).
    Starting,
    Healthy,
    /// The check failed `retries` times in a row.
    Unhealthy,
}

impl Health {
    /// Reads docker's name of a health state (`docker events`'
    /// `health_status: NAME`, `docker inspect`'s `.State.Health.Status`).
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "starting" => Some(Health::Starting),
            "healthy" => Some(Health::Healthy),
            "unhealthy" => Some(Health::Unhealthy),
            _ => None,
        }
    }

    /// Reads the health that `docker ps` appends to a running container's
    /// status: `Up 3 seconds (health: starting)`, `Up 2 minutes (healthy)`,
    /// `Up 5 minutes (unhealthy)`; `None` for a container without a check.
    pub fn in_status(status: &str) -> Option<Self> {
        let (_, last) = status.trim_end().rsplit_once('(')?;
        let inner = last.strip_suffix(')')?;
        Health::parse(inner.strip_prefix("health: ").unwrap_or(inner))
    }

    /// Docker's name of the health state.
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Starting => "starting",
            Health::Healthy => "healthy",
            Health::Unhealthy => "unhealthy",
        }
    }
}

/// A container's state as docker names it (`docker ps`'s `.State`),
/// parsed once where docker's output is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ContainerState {
    Created,
    Running,
    Restarting,
    Paused,
    Exited,
    Dead,
    Removing,
    /// Not known: a state this connector does not know (a newer engine's),
    /// or an event that tells nothing of it.
    #[default]
    Unknown,
}

impl ContainerState {
    /// Reads docker's name of a state; one it does not know is
    /// [`ContainerState::Unknown`].
    pub fn parse(text: &str) -> Self {
        match text {
            "created" => ContainerState::Created,
            "running" => ContainerState::Running,
            "restarting" => ContainerState::Restarting,
            "paused" => ContainerState::Paused,
            "exited" => ContainerState::Exited,
            "dead" => ContainerState::Dead,
            "removing" => ContainerState::Removing,
            _ => ContainerState::Unknown,
        }
    }

    /// Docker's name of the state, as status reports it.
    pub fn as_str(self) -> &'static str {
        match self {
            ContainerState::Created => "created",
            ContainerState::Running => "running",
            ContainerState::Restarting => "restarting",
            ContainerState::Paused => "paused",
            ContainerState::Exited => "exited",
            ContainerState::Dead => "dead",
            ContainerState::Removing => "removing",
            ContainerState::Unknown => "unknown",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_state_reads_back_as_docker_names_it() {
        for name in [
            "created",
            "running",
            "restarting",
            "paused",
            "exited",
            "dead",
            "removing",
        ] {
            assert_eq!(ContainerState::parse(name).as_str(), name);
        }
        assert_eq!(
            ContainerState::parse("hibernating"),
            ContainerState::Unknown
        );
    }

    #[test]
    fn health_is_read_from_the_status_docker_ps_prints() {
        for (status, health) in [
            (
                "Up Less than a second (health: starting)",
                Some(Health::Starting),
            ),
            ("Up 2 seconds (healthy)", Some(Health::Healthy)),
            ("Up 6 minutes (unhealthy)", Some(Health::Unhealthy)),
            ("Up 2 seconds", None),
            ("Up 3 hours (Paused)", None),
            ("Exited (1) 2 seconds ago", None),
            ("Restarting (1) 1 second ago", None),
            ("Created", None),
        ] {
            assert_eq!(Health::in_status(status), health, "{status}");
        }
        for health in [Health::Starting, Health::Healthy, Health::Unhealthy] {
            assert_eq!(Health::parse(health.as_str()), Some(health));
        }
        assert_eq!(Health::parse("sleepy"), None);
    }
}
