//! The [`Engine`] over the docker CLI: which flags to pass, how to read what
//! it prints.

use async_trait::async_trait;

use super::{
    Container, DockerRunner, Engine, StartOutcome, LABEL_CONFIG_HASH, LABEL_INSTANCE, LABEL_SERVICE,
};
use crate::domain::{ServiceDefinition, ServiceName};
use crate::error::Error;

/// Fields `docker ps` prints per container, tab-separated. Labels are read one
/// by one: the combined `Labels` string is ambiguous when a value has a comma.
const PS_FORMAT: &str = concat!(
    "{{.ID}}\t{{.Names}}\t{{.State}}\t{{.Status}}\t",
    "{{.Label \"docker-connector.config-hash\"}}\t{{.CreatedAt}}"
);

/// Containers of one connector instance, managed through the docker CLI.
pub struct DockerCli {
    runner: DockerRunner,
    instance: String,
}

impl DockerCli {
    pub fn new(runner: DockerRunner, instance: String) -> Self {
        DockerCli { runner, instance }
    }

    fn owner_filters(&self, service: &ServiceName) -> [String; 4] {
        [
            "--filter".to_owned(),
            format!("label={LABEL_INSTANCE}={}", self.instance),
            "--filter".to_owned(),
            format!("label={LABEL_SERVICE}={service}"),
        ]
    }
}

fn arg(s: &str) -> String {
    s.to_owned()
}

#[async_trait]
impl Engine for DockerCli {
    async fn list(&self, service: &ServiceName) -> Result<Vec<Container>, Error> {
        let mut args = vec![arg("ps"), arg("-a"), arg("--no-trunc")];
        args.extend(self.owner_filters(service));
        args.extend([arg("--format"), arg(PS_FORMAT)]);
        let stdout = self.runner.run(&args).await?;
        stdout
            .lines()
            .filter(|line| !line.trim().is_empty())
            .map(parse_ps_line)
            .collect()
    }

    async fn start(
        &self,
        definition: &ServiceDefinition,
        name: &str,
    ) -> Result<StartOutcome, Error> {
        let mut args = vec![arg("run"), arg("-d"), arg("--name"), arg(name)];
        for label in [
            format!("{LABEL_INSTANCE}={}", self.instance),
            format!("{LABEL_SERVICE}={}", definition.name()),
            format!("{LABEL_CONFIG_HASH}={}", definition.config_hash()),
        ] {
            args.extend([arg("--label"), label]);
        }
        for (key, value) in definition.environment() {
            args.extend([arg("-e"), format!("{key}={value}")]);
        }
        for port in definition.ports() {
            args.extend([arg("-p"), port.publish_arg()]);
        }
        // `--` ends docker's own flags: nothing after it can become one.
        args.extend([arg("--"), arg(definition.image().as_str())]);
        args.extend(definition.command_argv().iter().cloned());
        match self.runner.run(&args).await {
            Ok(stdout) => Ok(StartOutcome::Started(stdout.trim().to_owned())),
            Err(Error::DockerFailed(message))
                if message.contains("is already in use by container") =>
            {
                Ok(StartOutcome::NameTaken)
            }
            Err(other) => Err(other),
        }
    }

    async fn remove(&self, ids: &[String]) -> Result<(), Error> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut args = vec![arg("rm"), arg("-f")];
        args.extend(ids.iter().cloned());
        self.runner.run(&args).await.map(drop)
    }
}

fn parse_ps_line(line: &str) -> Result<Container, Error> {
    let fields: Vec<&str> = line.split('\t').collect();
    let [id, name, state, status, config_hash, created] = fields[..] else {
        return Err(Error::DockerFailed(format!(
            "unexpected `docker ps` line: {line:?}"
        )));
    };
    Ok(Container {
        id: id.to_owned(),
        name: name.to_owned(),
        state: state.to_owned(),
        status: status.to_owned(),
        config_hash: config_hash.to_owned(),
        created: created.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_ps_line() {
        let line = "abc123\tdefault-web-1\texited\tExited (1) 2 seconds ago\t0123abcd\t2026-11-28 05:47:28 +0000 UTC";
        let container = parse_ps_line(line).unwrap();
        assert_eq!(container.name, "default-web-1");
        assert!(!container.is_running());
        assert_eq!(container.config_hash, "0123abcd");
    }

    #[test]
    fn refuses_a_line_it_does_not_understand() {
        assert!(parse_ps_line("abc\tonly-two").is_err());
    }
}
