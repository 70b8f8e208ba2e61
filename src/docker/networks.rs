//! Whether the docker networks a definition names exist, asked before the
//! definition is stored: a missing network otherwise surfaces only when a
//! container fails to start, perhaps long after the request that caused it.

use super::DockerRunner;
use crate::domain::ServiceDefinition;
use crate::error::Error;

/// Looks networks up through the docker CLI.
pub struct NetworkCheck {
    runner: DockerRunner,
    /// Swarm services can only join networks of swarm scope (overlay
    /// networks); a bridge network of one node would be refused by Swarm.
    swarm_scope: bool,
}

impl NetworkCheck {
    pub fn new(runner: DockerRunner, swarm_scope: bool) -> Self {
        NetworkCheck {
            runner,
            swarm_scope,
        }
    }

    /// Checks that docker has every network `definition` names (and, for
    /// Swarm, that each is of swarm scope). Asks docker only when it names
    /// some.
    ///
    /// # Errors
    /// [`Error::Invalid`] naming `networks[i]` of the first one docker does
    /// not have or Swarm cannot use; the docker failure.
    pub async fn check(&self, definition: &ServiceDefinition) -> Result<(), Error> {
        let wanted = definition.networks();
        if wanted.is_empty() {
            return Ok(());
        }
        let mut args: Vec<String> = ["network", "inspect", "--format"].map(str::to_owned).into();
        args.push("[{{json .Name}},{{json .Scope}}]".to_owned());
        args.extend(wanted.iter().cloned());
        // A missing network is an answer, not a failure: docker prints the
        // ones it has and complains of the others ("network x not found").
        let stdout = self
            .runner
            .run_tolerating(&args, |complaint| {
                complaint.contains("not found") || complaint.contains("No such network")
            })
            .await?;
        let found: Vec<(String, String)> = stdout
            .lines()
            .filter(|line| !line.trim().is_empty())
            .map(|line| {
                serde_json::from_str(line).map_err(|e| {
                    Error::DockerFailed(format!(
                        "unexpected `docker network inspect` line {line:?}: {e}"
                    ))
                })
            })
            .collect::<Result<_, _>>()?;
        for (i, name) in wanted.iter().enumerate() {
            // docker also finds a network by an id prefix: only an exact
            // name counts, so what runs is what the definition says.
            match found.iter().find(|(found, _)| found == name) {
                None => {
                    return Err(Error::invalid(
                        format!("networks[{i}]"),
                        format!("docker has no network named {name:?}; create it first (docker network create)"),
                    ))
                }
                Some((_, scope)) if self.swarm_scope && scope != "swarm" => {
                    return Err(Error::invalid(
                        format!("networks[{i}]"),
                        format!(
                            "{name:?} is a network of {scope} scope; Swarm services need one of \
                             swarm scope (docker network create --driver overlay --attachable)"
                        ),
                    ))
                }
                Some(_) => {}
            }
        }
        Ok(())
    }
}
