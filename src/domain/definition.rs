//! A service definition: what every container of a service is started from.

use serde::ser::{Serialize, SerializeStruct, Serializer};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use super::json_type::json_type;
use super::{Command, Environment, ImageRef, PortSpec, Ports, ServiceName};
use crate::error::Error;

/// The fields a definition body may have; anything else is refused so that a
/// typo such as `enviroment` is never silently dropped.
const FIELDS: [&str; 5] = ["name", "image", "command", "environment", "ports"];

/// A complete, valid service definition. It serializes with all five keys,
/// absent ones as `null`, and `command` and `ports` exactly as given.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceDefinition {
    name: ServiceName,
    image: ImageRef,
    command: Option<Command>,
    environment: Option<Environment>,
    ports: Option<Ports>,
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

    /// A short, stable fingerprint of what a container of this definition
    /// runs. Containers carry it as a label, so a container started from an
    /// older definition can be told apart, even after a restart. The name is
    /// left out: it never changes for a service.
    pub fn config_hash(&self) -> &str {
        &self.config_hash
    }

    fn compute_config_hash(&self) -> String {
        let ports: Vec<String> = self.ports().iter().map(PortSpec::publish_arg).collect();
        let canonical = json!({
            "image": self.image.as_str(),
            "command": self.command_argv(),
            "environment": self.environment,
            "ports": ports,
        });
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
        let mut out = serializer.serialize_struct("ServiceDefinition", 5)?;
        out.serialize_field("name", &self.name)?;
        out.serialize_field("image", &self.image)?;
        out.serialize_field("command", &self.command.as_ref().map(Command::as_given))?;
        out.serialize_field("environment", &self.environment)?;
        out.serialize_field("ports", &self.ports.as_ref().map(Ports::as_given))?;
        out.end()
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
}
