//! A service definition: what every container of a service is started from.

use serde::ser::{Serialize, SerializeStruct, Serializer};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use std::time::Duration;

use super::duration::parse_duration;
use super::healthcheck::{HealthProbe, Healthcheck};
use super::json_type::json_type;
use super::mounts::{BindPolicy, Mount, MountKind};
use super::networks::parse_networks;
use super::resources::Resources;
use super::scaling::ScalingBounds;
use super::user_labels::UserLabels;
use super::{Command, Environment, ImageRef, PortSpec, Ports, ServiceName};
use crate::error::Error;

/// The fields a definition body may have; anything else is refused so that a
/// typo such as `enviroment` is never silently dropped. The first five are
/// the Genisys contract's; the rest say how a workload runs, except
/// `scaling`, which bounds the desired count and runs nothing.
const FIELDS: [&str; 12] = [
    "name",
    "image",
    "command",
    "environment",
    "ports",
    "healthcheck",
    "stop_grace_period",
    "resources",
    "networks",
    "volumes",
    "labels",
    "scaling",
];

/// The time between SIGTERM and SIGKILL when a definition does not say:
/// docker stop's, Compose's and Swarm's default, so a service moved here
/// from any of them stops as it did there.
const DEFAULT_STOP_GRACE: Duration = Duration::from_secs(10);
/// Longest grace a definition may ask for: a scale-down or delete request
/// waits for it.
const LONGEST_STOP_GRACE: Duration = Duration::from_secs(3600);

/// A complete, valid service definition. It serializes with the contract's
/// five keys, absent ones as `null`, and the workload keys it was given;
/// `command`, `ports` and the workload keys exactly as given.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceDefinition {
    name: ServiceName,
    image: ImageRef,
    command: Option<Command>,
    environment: Option<Environment>,
    ports: Option<Ports>,
    workload: Workload,
    /// [`ServiceDefinition::config_hash`], computed once when parsed: status
    /// and the reconciler compare containers against it all the time.
    config_hash: String,
}

impl ServiceDefinition {
    /// Parses the body of a create request (`POST /service`), which names the
    /// service itself. Also used to read definitions back from the store.
    ///
    /// # Errors
    /// [`Error::Invalid`] naming the first offending field, or
    /// [`Error::MalformedBody`] if `body` is not an object.
    pub fn from_create_body(body: &Value) -> Result<Self, Error> {
        let fields = as_object(body)?;
        let name = ServiceName::parse(required_string(fields, "name")?)?;
        Self::from_fields(name, fields)
    }

    /// Parses the body of a replace request (`PUT /service/<name>`): the name
    /// comes from the URL, and a `name` in the body must equal it.
    ///
    /// # Errors
    /// As [`ServiceDefinition::from_create_body`].
    pub fn from_replace_body(name: ServiceName, body: &Value) -> Result<Self, Error> {
        let fields = as_object(body)?;
        match fields.get("name") {
            None | Some(Value::Null) => {}
            Some(Value::String(given)) if given == name.as_str() => {}
            Some(other) => {
                return Err(Error::invalid(
                    "name",
                    format!(
                        "{other} does not match the service name {:?} in the URL",
                        name.as_str()
                    ),
                ))
            }
        }
        Self::from_fields(name, fields)
    }

    fn from_fields(name: ServiceName, fields: &Map<String, Value>) -> Result<Self, Error> {
        let unknown: Vec<&str> = fields
            .keys()
            .map(String::as_str)
            .filter(|key| !FIELDS.contains(key))
            .collect();
        if !unknown.is_empty() {
            return Err(Error::invalid(
                unknown.join(", "),
                format!("unknown field; the fields are {}", FIELDS.join(", ")),
            ));
        }
        let image = ImageRef::parse(required_string(fields, "image")?)?;
        let present = |key: &str| fields.get(key).filter(|value| !value.is_null());
        let mut definition = ServiceDefinition {
            name,
            image,
            command: present("command").map(Command::parse).transpose()?,
            environment: present("environment").map(Environment::parse).transpose()?,
            ports: present("ports").map(Ports::parse).transpose()?,
            workload: Workload::parse(fields)?,
            config_hash: String::new(),
        };
        definition.config_hash = definition.compute_config_hash();
        Ok(definition)
    }

    pub fn name(&self) -> &ServiceName {
        &self.name
    }

    pub fn image(&self) -> &ImageRef {
        &self.image
    }

    /// The command's argv; empty when the image's own command should run.
    pub fn command_argv(&self) -> &[String] {
        self.command.as_ref().map_or(&[], Command::argv)
    }

    /// The variables to inject, in name order.
    pub fn environment(&self) -> impl Iterator<Item = (&str, &str)> {
        self.environment.iter().flat_map(Environment::iter)
    }

    pub fn ports(&self) -> &[PortSpec] {
        self.ports.as_ref().map_or(&[], Ports::specs)
    }

    pub fn healthcheck(&self) -> Option<&Healthcheck> {
        self.workload.healthcheck.as_ref()
    }

    /// The health check docker runs, if the definition gives one (not when
    /// it turns the image's off, nor when it leaves the image's on).
    pub fn health_probe(&self) -> Option<&HealthProbe> {
        match &self.workload.healthcheck {
            Some(Healthcheck::Probe(probe)) => Some(probe),
            _ => None,
        }
    }

    /// Time between the stop signal and SIGKILL.
    pub fn stop_grace_period(&self) -> Duration {
        self.workload
            .stop_grace_period
            .unwrap_or(DEFAULT_STOP_GRACE)
    }

    pub fn resources(&self) -> Option<&Resources> {
        self.workload.resources.as_ref()
    }

    pub fn networks(&self) -> &[String] {
        &self.workload.networks
    }

    pub fn volumes(&self) -> &[Mount] {
        &self.workload.volumes
    }

    /// The extra container labels, in key order.
    pub fn labels(&self) -> impl Iterator<Item = (&str, &str)> {
        self.workload.labels.iter().flat_map(UserLabels::iter)
    }

    /// The bounds of the desired count, if the definition sets any.
    pub fn scaling(&self) -> Option<&ScalingBounds> {
        self.workload.scaling.as_ref()
    }

    /// Checks every host path the definition mounts against `policy`.
    /// Parsing alone cannot: definitions read back from the data file are
    /// checked when their containers start instead.
    ///
    /// # Errors
    /// [`Error::Invalid`] naming `volumes[i].source`.
    pub fn check_host_paths(&self, policy: &BindPolicy) -> Result<(), Error> {
        for (i, mount) in self.volumes().iter().enumerate() {
            if mount.kind == MountKind::Bind {
                policy.check(&format!("volumes[{i}].source"), &mount.source)?;
            }
        }
        Ok(())
    }

    /// A short, stable fingerprint of what a container of this definition
    /// runs. Containers carry it as a label, so a container started from an
    /// older definition can be told apart, even after a restart. The name is
    /// left out: it never changes for a service.
    pub fn config_hash(&self) -> &str {
        &self.config_hash
    }

    fn compute_config_hash(&self) -> String {
        let ports: Vec<String> = self.ports().iter().map(PortSpec::publish_arg).collect();
        let mut canonical = json!({
            "image": self.image.as_str(),
            "command": self.command_argv(),
            "environment": self.environment,
            "ports": ports,
        });
        // Only the workload keys a definition has: a definition written
        // before they existed keeps its hash, so upgrading the connector
        // does not roll every container.
        canonical
            .as_object_mut()
            .expect("an object")
            .extend(self.workload.canonical());
        let digest = Sha256::digest(canonical.to_string().as_bytes());
        digest[..8]
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect()
    }
}

/// The string value of a mandatory field.
fn required_string<'a>(fields: &'a Map<String, Value>, key: &str) -> Result<&'a str, Error> {
    match fields.get(key) {
        None | Some(Value::Null) => Err(Error::invalid(key, "is required")),
        Some(Value::String(raw)) => Ok(raw),
        Some(other) => Err(Error::invalid(
            key,
            format!("must be a string, not {}", json_type(other)),
        )),
    }
}

fn as_object(body: &Value) -> Result<&Map<String, Value>, Error> {
    body.as_object().ok_or_else(|| {
        Error::MalformedBody(format!("must be a JSON object, not {}", json_type(body)))
    })
}

impl Serialize for ServiceDefinition {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut out = serializer.serialize_struct("ServiceDefinition", FIELDS.len())?;
        out.serialize_field("name", &self.name)?;
        out.serialize_field("image", &self.image)?;
        out.serialize_field("command", &self.command.as_ref().map(Command::as_given))?;
        out.serialize_field("environment", &self.environment)?;
        out.serialize_field("ports", &self.ports.as_ref().map(Ports::as_given))?;
        for key in &FIELDS[5..] {
            match self.workload.given.get(*key) {
                Some(given) => out.serialize_field(key, given)?,
                None => out.skip_field(key)?,
            }
        }
        out.end()
    }
}

/// How the containers run, beyond the contract's five keys: the parsed
/// values, and the keys as given to answer with.
#[derive(Debug, Clone, PartialEq, Default)]
struct Workload {
    healthcheck: Option<Healthcheck>,
    stop_grace_period: Option<Duration>,
    resources: Option<Resources>,
    networks: Vec<String>,
    volumes: Vec<Mount>,
    labels: Option<UserLabels>,
    /// Not part of the config hash: bounds change no container.
    scaling: Option<ScalingBounds>,
    given: Map<String, Value>,
}

impl Workload {
    fn parse(fields: &Map<String, Value>) -> Result<Self, Error> {
        let present = |key: &str| fields.get(key).filter(|value| !value.is_null());
        Ok(Workload {
            healthcheck: present("healthcheck").map(Healthcheck::parse).transpose()?,
            stop_grace_period: present("stop_grace_period")
                .map(|raw| {
                    parse_duration(
                        "stop_grace_period",
                        raw,
                        Duration::ZERO..=LONGEST_STOP_GRACE,
                    )
                })
                .transpose()?,
            resources: present("resources").map(Resources::parse).transpose()?,
            networks: present("networks")
                .map(parse_networks)
                .transpose()?
                .unwrap_or_default(),
            volumes: present("volumes")
                .map(Mount::parse_list)
                .transpose()?
                .unwrap_or_default(),
            labels: present("labels").map(UserLabels::parse).transpose()?,
            scaling: present("scaling").map(ScalingBounds::parse).transpose()?,
            given: FIELDS[5..]
                .iter()
                .filter_map(|key| Some(((*key).to_owned(), present(key)?.clone())))
                .collect(),
        })
    }

    /// What the config hash covers of the keys present: their meaning, not
    /// their spelling (`"1m"` and `"60s"` hash alike).
    fn canonical(&self) -> Map<String, Value> {
        let mut out = Map::new();
        if let Some(check) = &self.healthcheck {
            out.insert("healthcheck".into(), json!(check.docker_args()));
        }
        if let Some(grace) = self.stop_grace_period {
            out.insert(
                "stop_grace_period".into(),
                json!(grace.as_nanos().to_string()),
            );
        }
        if let Some(limits) = &self.resources {
            out.insert(
                "resources".into(),
                json!([limits.memory, limits.cpus, limits.pids]),
            );
        }
        if self.given.contains_key("networks") {
            out.insert("networks".into(), json!(self.networks));
        }
        if self.given.contains_key("volumes") {
            let mounts: Vec<String> = self.volumes.iter().map(Mount::mount_arg).collect();
            out.insert("volumes".into(), json!(mounts));
        }
        if let Some(labels) = &self.labels {
            let pairs: Map<String, Value> = labels
                .iter()
                .map(|(k, v)| (k.to_owned(), json!(v)))
                .collect();
            out.insert("labels".into(), Value::Object(pairs));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(body: Value) -> Result<ServiceDefinition, Error> {
        ServiceDefinition::from_create_body(&body)
    }

    fn field_of(result: Result<ServiceDefinition, Error>) -> String {
        match result {
            Err(Error::Invalid { field, .. }) => field,
            other => panic!("expected a field error, got {other:?}"),
        }
    }

    #[test]
    fn serializes_all_five_keys_with_absent_ones_null() {
        let def = parse(json!({"name": "web", "image": "app:1"})).unwrap();
        assert_eq!(
            serde_json::to_value(&def).unwrap(),
            json!({"name": "web", "image": "app:1", "command": null, "environment": null, "ports": null})
        );
    }

    #[test]
    fn returns_command_and_ports_as_given_and_env_as_strings() {
        let body = json!({"name": "web", "image": "app:1", "command": "sleep 5",
                          "environment": {"N": 1}, "ports": [8080, "53/udp"]});
        let out = serde_json::to_value(parse(body).unwrap()).unwrap();
        assert_eq!(out["command"], json!("sleep 5"));
        assert_eq!(out["environment"], json!({"N": "1"}));
        assert_eq!(out["ports"], json!([8080, "53/udp"]));
    }

    #[test]
    fn names_the_offending_field() {
        assert_eq!(field_of(parse(json!({"image": "app:1"}))), "name");
        assert_eq!(field_of(parse(json!({"name": "web"}))), "image");
        assert_eq!(field_of(parse(json!({"name": "web", "image": 5}))), "image");
        assert_eq!(
            field_of(parse(
                json!({"name": "web", "image": "a:1", "enviroment": {}})
            )),
            "enviroment"
        );
        assert_eq!(
            field_of(parse(
                json!({"name": "web", "image": "a:1", "privileged": true})
            )),
            "privileged"
        );
        assert_eq!(
            field_of(parse(json!({"name": "web", "image": "a:1", "ports": [0]}))),
            "ports[0]"
        );
        let put = ServiceDefinition::from_replace_body(
            ServiceName::parse("web").unwrap(),
            &json!({"name": "db", "image": "a:1"}),
        );
        assert_eq!(field_of(put), "name");
    }

    #[test]
    fn hash_changes_with_what_runs_but_not_with_how_it_was_spelled() {
        let a = parse(json!({"name": "web", "image": "app:1", "ports": ["80"]})).unwrap();
        let b = parse(json!({"name": "web", "image": "app:1", "ports": [80]})).unwrap();
        let c = parse(json!({"name": "web", "image": "app:2", "ports": [80]})).unwrap();
        assert_eq!(a.config_hash(), b.config_hash());
        assert_ne!(a.config_hash(), c.config_hash());
        assert_eq!(a.config_hash().len(), 16);
    }

    #[test]
    fn workload_keys_are_returned_as_given_and_omitted_when_absent() {
        let body = json!({"name": "web", "image": "app:1",
            "healthcheck": {"test": ["CMD", "true"], "interval": "1m"},
            "stop_grace_period": "30s", "resources": {"memory": "256m", "cpus": 0.5},
            "networks": ["front"], "volumes": [{"source": "data", "target": "/data"}],
            "labels": {"team": "ops"}});
        let out = serde_json::to_value(parse(body.clone()).unwrap()).unwrap();
        let mut expected = body;
        for key in ["command", "environment", "ports"] {
            expected[key] = Value::Null;
        }
        assert_eq!(out, expected);
        let plain = serde_json::to_value(
            parse(json!({"name": "web", "image": "a:1",
            "labels": null}))
            .unwrap(),
        )
        .unwrap();
        assert_eq!(plain.as_object().unwrap().len(), 5, "{plain}");
    }

    #[test]
    fn workload_keys_change_the_hash_by_meaning_not_spelling() {
        let hash = |extra: Value| {
            let mut body = json!({"name": "web", "image": "app:1"});
            body.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            parse(body).unwrap().config_hash().to_owned()
        };
        let plain = hash(json!({}));
        // A definition from before the workload keys keeps its hash: the
        // value the connector computed for it then (the SHA-256 of
        // {"command":[],"environment":null,"image":"app:1","ports":[]}).
        assert_eq!(plain, "314b31951467173c");
        assert_eq!(plain, hash(json!({"labels": null, "networks": null})));
        assert_eq!(
            hash(json!({"stop_grace_period": "1m"})),
            hash(json!({"stop_grace_period": "60s"}))
        );
        for extra in [
            json!({"stop_grace_period": "10s"}),
            json!({"healthcheck": {"disable": true}}),
            json!({"resources": {"pids": 10}}),
            json!({"networks": ["front"]}),
            json!({"volumes": [{"source": "d", "target": "/d"}]}),
            json!({"labels": {"a": "b"}}),
        ] {
            assert_ne!(hash(extra.clone()), plain, "{extra}");
        }
    }

    #[test]
    fn workload_keys_name_the_offending_field() {
        for (extra, field) in [
            (json!({"stop_grace_period": "2h"}), "stop_grace_period"),
            (json!({"stop_grace_period": 10}), "stop_grace_period"),
            (
                json!({"healthcheck": {"test": "true", "retries": -1}}),
                "healthcheck.retries",
            ),
            (json!({"resources": {"memory": "-1"}}), "resources.memory"),
            (json!({"networks": ["-x"]}), "networks[0]"),
            (
                json!({"volumes": [{"source": "/etc", "target": "/../x"}]}),
                "volumes[0].target",
            ),
            (
                json!({"labels": {"docker-connector.instance": "x"}}),
                "labels.docker-connector.instance",
            ),
        ] {
            let mut body = json!({"name": "web", "image": "app:1"});
            body.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            assert_eq!(field_of(parse(body)), field, "{extra}");
        }
    }

    #[test]
    fn host_paths_are_checked_against_the_policy_on_request() {
        let def = parse(json!({"name": "web", "image": "app:1",
            "volumes": [{"source": "data", "target": "/data"}, {"source": "/etc", "target": "/e"}]}))
        .unwrap();
        match def.check_host_paths(&BindPolicy::default()) {
            Err(Error::Invalid { field, .. }) => assert_eq!(field, "volumes[1].source"),
            other => panic!("{other:?}"),
        }
    }
}
