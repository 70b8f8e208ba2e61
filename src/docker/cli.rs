//! The [`Engine`] over the docker CLI: which flags to pass, how to read what
//! it prints.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;

use super::events::parse_event;
use super::runner::arg;
use super::{
    Container, ContainerEvent, ContainerState, DockerRunner, Engine, EventStream, EventTime,
    Health, OutputStream, PublishedPorts, StartOutcome, LABEL_CONFIG_HASH, LABEL_HEALTH_CHECK,
    LABEL_INSTANCE, LABEL_RESTART_POLICY, LABEL_SERVICE, LABEL_SWARM_SERVICE_ID,
};
use crate::domain::{BindPolicy, ServiceDefinition, ServiceName};
use crate::error::Error;

/// What `docker ps` prints per container: one JSON array of strings, in the
/// order [`parse_ps_line`] reads them. Each field goes through `json`, so a
/// tab, newline or quote inside a label (anyone can label a container with
/// this instance) cannot shift the fields. Labels are read one by one: the
/// combined `Labels` string is ambiguous when a value has a comma.
fn ps_format() -> String {
    let fields = [
        ".ID".to_owned(),
        format!("(.Label \"{LABEL_SERVICE}\")"),
        ".Names".to_owned(),
        ".State".to_owned(),
        ".Status".to_owned(),
        format!("(.Label \"{LABEL_CONFIG_HASH}\")"),
        ".CreatedAt".to_owned(),
        format!("(.Label \"{LABEL_SWARM_SERVICE_ID}\")"),
    ];
    let fields: Vec<String> = fields
        .iter()
        .map(|field| format!("{{{{json {field}}}}}"))
        .collect();
    format!("[{}]", fields.join(","))
}

/// The restart policy containers get while the connector reconciles.
const RESTART_POLICY: &str = "unless-stopped";

/// Containers of one connector instance, managed through the docker CLI.
pub struct DockerCli {
    runner: DockerRunner,
    instance: String,
    /// Whether containers are started with [`RESTART_POLICY`].
    restart_policy: bool,
    /// Where host paths may be mounted from, checked again before each
    /// start: what a path resolves to can change after it was defined.
    bind_policy: BindPolicy,
}

impl DockerCli {
    pub fn new(runner: DockerRunner, instance: String, bind_policy: BindPolicy) -> Self {
        DockerCli {
            runner,
            instance,
            restart_policy: false,
            bind_policy,
        }
    }

    /// Starts containers with the restart policy `unless-stopped`: the
    /// engine then restarts a container whose process exits (with its own
    /// backoff, 0.1 s doubling to a minute) and, after an engine restart,
    /// every container nobody stopped; a container killed or stopped on
    /// purpose stays down, for the connector to replace.
    pub fn with_restart_policy(mut self) -> Self {
        self.restart_policy = true;
        self
    }

    fn instance_filter(&self) -> [String; 2] {
        [
            arg("--filter"),
            format!("label={LABEL_INSTANCE}={}", self.instance),
        ]
    }

    /// The `docker run` of one container of `definition` named `name`.
    /// Every value from a definition either starts with a character its
    /// validation allows first (labels, environment: a letter or digit),
    /// travels as `--flag=value`, or comes after `--`: none can be read as
    /// a flag of its own.
    fn run_args(&self, definition: &ServiceDefinition, name: &str) -> Vec<String> {
        // One network joins at `docker run`; engines before 25 refuse a
        // second `--network` there, so the others are connected before
        // the container starts (see `start`).
        let verb: &[&str] = if definition.networks().len() > 1 {
            &["create"]
        } else {
            &["run", "-d"]
        };
        let mut args: Vec<String> = verb.iter().map(|word| arg(word)).collect();
        args.extend([arg("--name"), arg(name)]);
        let mut labels = vec![
            format!("{LABEL_INSTANCE}={}", self.instance),
            format!("{LABEL_SERVICE}={}", definition.name()),
            format!("{LABEL_CONFIG_HASH}={}", definition.config_hash()),
        ];
        if self.restart_policy {
            args.extend([arg("--restart"), arg(RESTART_POLICY)]);
            labels.push(format!("{LABEL_RESTART_POLICY}={RESTART_POLICY}"));
        }
        if definition.health_probe().is_some() {
            labels.push(format!("{LABEL_HEALTH_CHECK}=true"));
        }
        labels.extend(
            definition
                .labels()
                .map(|(key, value)| format!("{key}={value}")),
        );
        for label in labels {
            args.extend([arg("--label"), label]);
        }
        for (key, value) in definition.environment() {
            args.extend([arg("-e"), format!("{key}={value}")]);
        }
        for port in definition.ports() {
            args.extend([arg("-p"), port.publish_arg()]);
        }
        if let Some(check) = definition.healthcheck() {
            args.extend(check.docker_args());
        }
        // docker takes whole seconds; a fraction is rounded up, never cut.
        let grace = definition.stop_grace_period();
        let seconds = grace.as_secs() + u64::from(grace.subsec_nanos() > 0);
        args.push(format!("--stop-timeout={seconds}"));
        if let Some(limits) = definition.resources() {
            if let Some(bytes) = limits.memory {
                args.push(format!("--memory={bytes}"));
            }
            if let Some(cpus) = &limits.cpus {
                args.push(format!("--cpus={cpus}"));
            }
            if let Some(pids) = limits.pids {
                args.push(format!("--pids-limit={pids}"));
            }
        }
        if let Some(first) = definition.networks().first() {
            args.push(format!("--network={first}"));
        }
        for mount in definition.volumes() {
            args.push(format!("--mount={}", mount.mount_arg()));
        }
        // `--` ends docker's own flags: nothing after it can become one.
        args.extend([arg("--"), arg(definition.image().as_str())]);
        args.extend(definition.command_argv().iter().cloned());
        args
    }

    /// Connects the created container `id` to `networks`, then starts it.
    async fn connect_and_start(&self, id: &str, networks: &[String]) -> Result<(), Error> {
        for network in networks {
            let args = [arg("network"), arg("connect"), arg(network), arg(id)];
            self.runner.run(&args).await?;
        }
        self.runner.run(&[arg("start"), arg(id)]).await.map(drop)
    }

    /// `docker ps` of this instance's containers, narrowed by `filters`.
    async fn ps(&self, filters: &[String]) -> Result<Vec<Container>, Error> {
        let mut args = vec![arg("ps"), arg("-a"), arg("--no-trunc")];
        args.extend(self.instance_filter());
        args.extend(filters.iter().cloned());
        args.extend([arg("--format"), ps_format()]);
        let stdout = self.runner.run(&args).await?;
        let parsed: Vec<Option<Container>> = stdout
            .lines()
            .filter(|line| !line.trim().is_empty())
            .map(parse_ps_line)
            .collect::<Result<_, _>>()?;
        Ok(parsed.into_iter().flatten().collect())
    }
}

#[async_trait]
impl Engine for DockerCli {
    async fn list(&self, service: &ServiceName) -> Result<Vec<Container>, Error> {
        self.ps(&[arg("--filter"), format!("label={LABEL_SERVICE}={service}")])
            .await
    }

    async fn list_all(&self) -> Result<Vec<Container>, Error> {
        self.ps(&[]).await
    }

    async fn watch(&self, since: EventTime) -> Result<Box<dyn EventStream>, Error> {
        let mut args = vec![arg("events"), arg("--since"), since.since_arg()];
        args.extend(self.instance_filter());
        args.extend([
            arg("--filter"),
            arg("type=container"),
            arg("--format"),
            arg("{{json .}}"),
        ]);
        let output = self.runner.stream(&args).await?;
        Ok(Box::new(DockerEvents(output)))
    }

    async fn server_version(&self) -> Result<String, Error> {
        let args = [arg("version"), arg("--format"), arg("{{.Server.Version}}")];
        let version = self.runner.run(&args).await?;
        Ok(version.trim().to_owned())
    }

    async fn start(
        &self,
        definition: &ServiceDefinition,
        name: &str,
    ) -> Result<StartOutcome, Error> {
        definition.check_host_paths(&self.bind_policy)?;
        let args = self.run_args(definition, name);
        let id = match self.runner.run(&args).await {
            Ok(stdout) => stdout.trim().to_owned(),
            Err(Error::DockerFailed(message))
                if message.contains("is already in use by container") =>
            {
                return Ok(StartOutcome::NameTaken)
            }
            Err(other) => return Err(other),
        };
        let more_networks = definition.networks().get(1..).unwrap_or_default();
        if !more_networks.is_empty() {
            if let Err(e) = self.connect_and_start(&id, more_networks).await {
                // A created container that never ran would otherwise wait
                // for the next pass's clean-up.
                let _ = self.remove(std::slice::from_ref(&id)).await;
                return Err(e);
            }
        }
        Ok(StartOutcome::Started(id))
    }

    async fn published_ports(
        &self,
        ids: &[String],
    ) -> Result<HashMap<String, PublishedPorts>, Error> {
        let stdout = self
            .runner
            .inspect_existing(
                "container",
                "[{{json .Id}},{{json .NetworkSettings.Ports}}]",
                ids.iter().cloned(),
            )
            .await?;
        stdout
            .lines()
            .filter(|line| !line.trim().is_empty())
            .map(parse_ports_line)
            .collect()
    }

    /// `docker stop IDS...` without `-t`: each container then gets the
    /// grace period it was started with (`--stop-timeout`), so one started
    /// from an earlier definition keeps that definition's grace. The CLI
    /// stops up to [`CLI_STOP_PARALLELISM`] containers at once and the rest
    /// as earlier ones finish, so the wait allowed for grace periods grows
    /// with each such round (measured with docker 20.10: 3 containers that
    /// ignore SIGTERM with a 2 s grace stop in 2.3 s together, not 6 s).
    async fn stop(&self, ids: &[String], longest_grace: Duration) -> Result<(), Error> {
        if ids.is_empty() {
            return Ok(());
        }
        let rounds = u32::try_from(ids.len().div_ceil(CLI_STOP_PARALLELISM)).unwrap_or(u32::MAX);
        let mut args = vec![arg("stop")];
        args.extend(ids.iter().cloned());
        self.runner
            .run_tolerating_longer(&args, already_gone, longest_grace.saturating_mul(rounds))
            .await
            .map(drop)
    }

    async fn remove(&self, ids: &[String]) -> Result<(), Error> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut args = vec![arg("rm"), arg("-f")];
        args.extend(ids.iter().cloned());
        // What the connector wanted gone is gone, or going: someone else
        // removed it first, before the connector heard of it.
        self.runner
            .run_tolerating(&args, already_gone)
            .await
            .map(drop)
    }
}

/// How many containers one `docker stop` stops at a time: the docker CLI's
/// `parallelOperation` runs at most 50 requests at once.
const CLI_STOP_PARALLELISM: usize = 50;

/// Whether a complaint of `docker stop` or `docker rm -f` is about a container that no longer
/// exists or is being removed already. Older CLIs fail for those; newer
/// ones only print them.
fn already_gone(complaint: &str) -> bool {
    complaint.contains("No such container") || complaint.contains("is already in progress")
}

/// `docker events` read as container events.
struct DockerEvents(OutputStream);

#[async_trait]
impl EventStream for DockerEvents {
    async fn next(&mut self) -> Result<ContainerEvent, String> {
        loop {
            let line = self.0.next_line().await?;
            if let Some(event) = parse_event(&line)? {
                return Ok(event);
            }
        }
    }
}

/// One binding of a container port, as `docker inspect` reports it.
#[derive(Deserialize)]
struct Binding {
    #[serde(rename = "HostIp", default)]
    host_ip: String,
    #[serde(rename = "HostPort")]
    host_port: String,
}

impl Binding {
    fn is_ipv6(&self) -> bool {
        self.host_ip.contains(':')
    }
}

/// `NetworkSettings.Ports`: each port's bindings, `null` when unpublished.
type PortBindings = HashMap<String, Option<Vec<Binding>>>;

/// Reads `[id, NetworkSettings.Ports]`: a published port has one binding per
/// host address (IPv4 and IPv6), normally on the same host port, but docker
/// 20.10 moves the IPv4 one on when another program holds the port it
/// picked and leaves the IPv6 one behind. The IPv4 binding is reported, as
/// clients reach containers over IPv4; the first one if there is none. An
/// exposed but unpublished port (`null`) is left out.
fn parse_ports_line(line: &str) -> Result<(String, PublishedPorts), Error> {
    let unexpected =
        |e: String| Error::DockerFailed(format!("unexpected `docker inspect` line {line:?}: {e}"));
    let (id, ports): (String, Option<PortBindings>) =
        serde_json::from_str(line).map_err(|e| unexpected(e.to_string()))?;
    let mut published = PublishedPorts::new();
    for (port, bindings) in ports.unwrap_or_default() {
        let bindings = bindings.unwrap_or_default();
        let Some(binding) = bindings
            .iter()
            .find(|binding| !binding.is_ipv6())
            .or(bindings.first())
        else {
            continue;
        };
        let host_port = binding
            .host_port
            .parse()
            .map_err(|_| unexpected(format!("host port {:?}", binding.host_port)))?;
        published.insert(port, host_port);
    }
    Ok((id, published))
}

/// Reads one line of [`ps_format`]; `None` for a task container of a Swarm
/// service, which Swarm manages (see [`LABEL_SWARM_SERVICE_ID`]).
fn parse_ps_line(line: &str) -> Result<Option<Container>, Error> {
    let [id, service, name, state, status, config_hash, created, swarm_service]: [String; 8] =
        serde_json::from_str(line).map_err(|e| {
            Error::DockerFailed(format!("unexpected `docker ps` line {line:?}: {e}"))
        })?;
    if !swarm_service.is_empty() {
        return Ok(None);
    }
    let created = parse_created_at(&created)
        .ok_or_else(|| Error::DockerFailed(format!("unexpected creation time {created:?}")))?;
    Ok(Some(Container {
        id,
        service,
        name,
        state: ContainerState::parse(&state),
        last_exit_code: exit_code_in(&status),
        health: Health::in_status(&status),
        status,
        config_hash,
        created,
        restarts: 0,
    }))
}

/// The exit code in docker's status text (`Exited (1) 2 seconds ago`,
/// `Restarting (1) ...`), if it shows one.
fn exit_code_in(status: &str) -> Option<i64> {
    let (_, after) = status.split_once('(')?;
    let (code, _) = after.split_once(')')?;
    code.parse().ok()
}

/// Reads docker's `CreatedAt` (`2026-11-28 01:29:23 -0500 EST`, in the CLI's
/// local time zone) as seconds since the epoch, so containers order correctly
/// whatever the zone and across daylight-saving changes.
fn parse_created_at(text: &str) -> Option<i64> {
    let mut parts = text.split_whitespace();
    let (date, time, offset) = (parts.next()?, parts.next()?, parts.next()?);
    let numbers =
        |s: &str, sep: char| -> Option<Vec<i64>> { s.split(sep).map(|n| n.parse().ok()).collect() };
    let [year, month, day] = numbers(date, '-')?[..] else {
        return None;
    };
    let [hour, minute, second] = numbers(time, ':')?[..] else {
        return None;
    };
    let (sign, digits) = match offset.split_at_checked(1)? {
        ("+", d) => (1, d),
        ("-", d) => (-1, d),
        _ => return None,
    };
    let (offset_hours, offset_minutes) = (
        digits.get(..2)?.parse::<i64>().ok()?,
        digits.get(2..)?.parse::<i64>().ok()?,
    );
    let local = days_from_civil(year, month, day) * 86_400 + hour * 3_600 + minute * 60 + second;
    Some(local - sign * (offset_hours * 3_600 + offset_minutes * 60))
}

/// Reads an RFC 3339 time as Swarm prints it (`2026-11-28T14:49:45.187203406Z`,
/// or with an offset such as `+01:00`) as whole seconds since the epoch.
pub(super) fn utc_timestamp(text: &str) -> Option<i64> {
    let (date, rest) = text.split_once('T')?;
    let split_at = rest.find(['Z', '+', '-'])?;
    let (clock, zone) = rest.split_at(split_at);
    let clock = clock.split('.').next()?;
    let zone = match zone {
        "Z" => "+0000".to_owned(),
        other => other.replace(':', ""),
    };
    parse_created_at(&format!("{date} {clock} {zone}"))
}

/// Days from 1970-01-01 to the given proleptic Gregorian date (Howard
/// Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let day_of_year = (153 * (month + if month > 2 { -3 } else { 9 }) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_ps_line() {
        let line = r#"["abc123","we\tb","default-web-1","exited","Exited (1) 2 seconds ago","0123abcd","2026-11-28 05:47:28 +0000 UTC",""]"#;
        let container = parse_ps_line(line).unwrap().unwrap();
        assert_eq!(container.service, "we\tb");
        assert_eq!(container.name, "default-web-1");
        assert_eq!(container.state, ContainerState::Exited);
        assert!(!container.is_running());
        assert_eq!(container.config_hash, "0123abcd");
        assert_eq!(container.created, 1_795_844_848);
        assert_eq!(container.health, None);
        let checked = line.replace("exited", "running").replace(
            "Exited (1) 2 seconds ago",
            "Up 3 seconds (health: starting)",
        );
        let container = parse_ps_line(&checked).unwrap().unwrap();
        assert_eq!(container.health, Some(Health::Starting));
        assert_eq!(container.last_exit_code, None);
    }

    #[test]
    fn creation_times_in_any_zone_are_the_same_instant() {
        let utc = parse_created_at("2026-11-28 06:29:23 +0000 UTC").unwrap();
        assert_eq!(parse_created_at("2026-11-28 01:29:23 -0500 EST"), Some(utc));
        assert_eq!(parse_created_at("2026-11-28 11:59:23 +0530 IST"), Some(utc));
        assert_eq!(parse_created_at("1970-01-01 00:00:00 +0000 UTC"), Some(0));
        assert_eq!(
            parse_created_at("2000-03-01 00:00:00 +0000 UTC"),
            Some(951_868_800)
        );
        assert_eq!(parse_created_at("yesterday"), None);
    }

    #[test]
    fn reads_swarms_rfc3339_times() {
        let utc = parse_created_at("2026-11-28 06:29:23 +0000 UTC").unwrap();
        assert_eq!(utc_timestamp("2026-11-28T06:29:23.187203406Z"), Some(utc));
        assert_eq!(utc_timestamp("2026-11-28T06:29:23Z"), Some(utc));
        assert_eq!(utc_timestamp("2026-11-28T07:29:23+01:00"), Some(utc));
        assert_eq!(utc_timestamp("2026-11-28T01:29:23.5-05:00"), Some(utc));
        assert_eq!(utc_timestamp("2026-11-28 06:29:23"), None);
    }

    #[test]
    fn asks_docker_for_the_fields_the_parser_reads() {
        assert_eq!(
            ps_format(),
            "[{{json .ID}},{{json (.Label \"docker-connector.service\")}},{{json .Names}},\
             {{json .State}},{{json .Status}},{{json (.Label \"docker-connector.config-hash\")}},\
             {{json .CreatedAt}},{{json (.Label \"com.docker.swarm.service.id\")}}]"
        );
    }

    #[test]
    fn complaints_about_containers_already_gone_are_told_apart() {
        assert!(already_gone(
            "Error response from daemon: No such container: abc"
        ));
        assert!(already_gone(
            "Error response from daemon: removal of container def is already in progress"
        ));
        assert!(!already_gone(
            "Error response from daemon: cannot remove container def: device busy"
        ));
    }

    #[test]
    fn reads_published_ports_and_skips_unpublished_ones() {
        let line = r#"["abc",{"53/udp":[{"HostIp":"0.0.0.0","HostPort":"32768"},{"HostIp":"::","HostPort":"32768"}],"8080/tcp":[{"HostIp":"0.0.0.0","HostPort":"32769"}],"9000/tcp":null}]"#;
        let (id, ports) = parse_ports_line(line).unwrap();
        assert_eq!(id, "abc");
        assert_eq!(
            ports,
            PublishedPorts::from([("53/udp".into(), 32768), ("8080/tcp".into(), 32769)])
        );
        // Bindings on different ports: the IPv4 one, wherever it is listed.
        let split = r#"["abc",{"8080/tcp":[{"HostIp":"::","HostPort":"32770"},{"HostIp":"0.0.0.0","HostPort":"32772"}]}]"#;
        assert_eq!(
            parse_ports_line(split).unwrap().1,
            PublishedPorts::from([("8080/tcp".into(), 32772)])
        );
        let only_ipv6 = r#"["abc",{"8080/tcp":[{"HostIp":"::","HostPort":"32770"}]}]"#;
        assert_eq!(
            parse_ports_line(only_ipv6).unwrap().1,
            PublishedPorts::from([("8080/tcp".into(), 32770)])
        );
        assert_eq!(
            parse_ports_line(r#"["abc",null]"#).unwrap().1,
            PublishedPorts::new()
        );
        assert!(parse_ports_line(r#"["abc",{"80/tcp":[{"HostPort":"x"}]}]"#).is_err());
    }

    #[test]
    fn leaves_swarm_task_containers_to_swarm() {
        let line = r#"["abc123","web","prod-web.1.x","running","Up 2 seconds","0123abcd","2026-11-28 05:47:28 +0000 UTC","m5gzmmfwr74a"]"#;
        assert_eq!(parse_ps_line(line).unwrap(), None);
    }

    #[test]
    fn refuses_a_line_it_does_not_understand() {
        assert!(parse_ps_line("abc\tonly-two").is_err());
        assert!(parse_ps_line(r#"["abc","only-two"]"#).is_err());
    }
}
