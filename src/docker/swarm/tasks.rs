//! The tasks of many services at once, for the swarm backend's task
//! watcher: one `docker service ps` lists them all, cheaply enough to run
//! every second, and only the tasks that changed are inspected in full.

use std::collections::HashMap;

use serde::Deserialize;

use super::json::TaskState;
use crate::domain::ServiceName;
use crate::error::Error;

/// One task as `docker service ps` lists it: enough to tell that it
/// changed, not what it runs or how it exited.
#[derive(Debug, Clone, PartialEq)]
pub struct ListedTask {
    pub id: String,
    pub service: ServiceName,
    /// `<Swarm service>.<slot>`.
    pub name: String,
    /// `None` until Swarm has placed it.
    pub node: Option<String>,
    pub desired_state: TaskState,
    pub state: TaskState,
}

/// A `docker service ps` line in the format [`SwarmCli::list_tasks`] asks
/// for: id, name, node, desired state, and the current state with its age
/// (`"Running 5 seconds ago"`).
type ListedLine = (String, String, String, String, String);

/// Reads a state as `docker service ps` prints it: capitalized, and the
/// current state followed by how long ago it was reached.
pub(super) fn printed_state(printed: &str) -> TaskState {
    let word = printed
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    serde_json::from_value(word.into()).unwrap_or(TaskState::Unknown)
}

/// Reads the tasks `docker service ps` listed, of the services whose Swarm
/// names `services` maps to them; a task of another service (a Swarm
/// service matched by id prefix) is left out.
pub(super) fn read_listing(
    listing: &str,
    services: &HashMap<String, ServiceName>,
) -> Result<Vec<ListedTask>, Error> {
    let mut listed = Vec::new();
    for line in listing.lines().filter(|line| !line.trim().is_empty()) {
        let (id, name, node, desired, current): ListedLine =
            serde_json::from_str(line).map_err(|e| {
                Error::DockerFailed(format!("unexpected `docker service ps` line {line:?}: {e}"))
            })?;
        let Some(service) = name
            .rsplit_once('.')
            .and_then(|(swarm_name, _slot)| services.get(swarm_name))
        else {
            continue;
        };
        listed.push(ListedTask {
            id,
            service: service.clone(),
            name,
            node: Some(node).filter(|node| !node.is_empty()),
            desired_state: printed_state(&desired),
            state: printed_state(&current),
        });
    }
    Ok(listed)
}

#[derive(Deserialize)]
pub(super) struct TaskId {
    #[serde(rename = "ID")]
    pub(super) id: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listing_reads_into_tasks_of_the_services_asked_for() {
        let web = ServiceName::parse("web").unwrap();
        let services = HashMap::from([("prod-web-1a2b3c4d".to_owned(), web.clone())]);
        let listing = concat!(
            r#"["t1","prod-web-1a2b3c4d.1","vm","Running","Starting 2 seconds ago"]"#,
            "\n",
            r#"["t0","prod-web-1a2b3c4d.1","","Shutdown","Failed less than a second ago"]"#,
            "\n",
            r#"["x9","other.1","vm","Running","Running 3 hours ago"]"#,
            "\n",
            r#"["t2","prod-web-1a2b3c4d.2","vm","Remove","Teleported 1 second ago"]"#,
            "\n",
        );
        let listed = read_listing(listing, &services).unwrap();
        let seen: Vec<(&str, Option<&str>, TaskState, TaskState)> = listed
            .iter()
            .map(|t| (t.id.as_str(), t.node.as_deref(), t.desired_state, t.state))
            .collect();
        assert_eq!(
            seen,
            [
                ("t1", Some("vm"), TaskState::Running, TaskState::Starting),
                ("t0", None, TaskState::Shutdown, TaskState::Failed),
                ("t2", Some("vm"), TaskState::Remove, TaskState::Unknown),
            ]
        );
        assert!(listed.iter().all(|t| t.service == web));
        assert_eq!(listed[0].name, "prod-web-1a2b3c4d.1");
        assert!(read_listing("not json\n", &services).is_err());
    }
}
