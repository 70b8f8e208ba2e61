//! Container ports to publish on ephemeral host ports.

use serde_json::Value;

use super::json_type::json_type;
use crate::error::Error;

/// Transport protocols Docker can publish.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    Tcp,
    Udp,
    Sctp,
}

impl Protocol {
    fn parse(raw: &str) -> Option<Self> {
        match raw {
            "tcp" => Some(Protocol::Tcp),
            "udp" => Some(Protocol::Udp),
            "sctp" => Some(Protocol::Sctp),
            _ => None,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Sctp => "sctp",
        }
    }
}

/// One container port, 1 to 65535, with its protocol (tcp unless given).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PortSpec {
    port: u16,
    protocol: Protocol,
}

impl PortSpec {
    /// Parses one item of `ports`: an integer, or a string `PORT` or
    /// `PORT/tcp|udp|sctp`.
    fn parse(field: &str, raw: &Value) -> Result<Self, Error> {
        let (number, protocol) = match raw {
            Value::Number(n) => (n.to_string(), Protocol::Tcp),
            Value::String(s) => match s.split_once('/') {
                Some((number, proto)) => {
                    let protocol = Protocol::parse(proto).ok_or_else(|| {
                        Error::invalid(field, format!("protocol {proto:?} is not tcp, udp or sctp"))
                    })?;
                    (number.to_owned(), protocol)
                }
                None => (s.clone(), Protocol::Tcp),
            },
            other => {
                return Err(Error::invalid(
                    field,
                    format!(
                        "must be a port number or a string like \"8080/tcp\", not {}",
                        json_type(other)
                    ),
                ))
            }
        };
        let port = (number.len() <= 5 && number.bytes().all(|b| b.is_ascii_digit()))
            .then(|| number.parse::<u16>().ok())
            .flatten()
            .filter(|&p| p >= 1)
            .ok_or_else(|| {
                Error::invalid(
                    field,
                    format!("{number:?} is not a port number from 1 to 65535"),
                )
            })?;
        Ok(PortSpec { port, protocol })
    }

    /// The container port.
    pub fn number(&self) -> u16 {
        self.port
    }

    /// `tcp`, `udp` or `sctp`.
    pub fn protocol_name(&self) -> &'static str {
        self.protocol.as_str()
    }

    /// The `-p` value: the container port, published on an ephemeral host port.
    pub fn publish_arg(&self) -> String {
        format!("{}/{}", self.port, self.protocol.as_str())
    }
}

/// The most ports one definition may publish: our own choice, well above
/// what a service publishes in practice. Each published port is a
/// `docker-proxy` process per replica, and a replica's start grows with
/// them (in issue 19, 100 ports took 2.9 s and 200 proxy processes for one
/// replica), so a definition with thousands (a 64 KiB body holds them)
/// would make every scale crawl.
pub const MAX_PORTS: usize = 64;

/// The `ports` of a definition: the list as the client gave it, and its
/// parsed, duplicate-free specs, at most [`MAX_PORTS`] of them.
#[derive(Debug, Clone, PartialEq)]
pub struct Ports {
    as_given: Value,
    specs: Vec<PortSpec>,
}

impl Ports {
    /// Parses the `ports` field (not null): at most [`MAX_PORTS`] ports,
    /// none twice (docker refuses a port/protocol published twice).
    ///
    /// # Errors
    /// [`Error::Invalid`] naming `ports` or `ports[i]`.
    pub fn parse(raw: &Value) -> Result<Self, Error> {
        let Value::Array(items) = raw else {
            return Err(Error::invalid(
                "ports",
                format!("must be an array of ports or null, not {}", json_type(raw)),
            ));
        };
        if items.len() > MAX_PORTS {
            return Err(Error::invalid(
                "ports",
                format!(
                    "lists {} ports; at most {MAX_PORTS} may be published, since each \
                     one is a docker-proxy process in every replica",
                    items.len()
                ),
            ));
        }
        let mut specs: Vec<PortSpec> = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let field = format!("ports[{i}]");
            let spec = PortSpec::parse(&field, item)?;
            if specs.contains(&spec) {
                return Err(Error::invalid(
                    field,
                    format!("{} is listed twice", spec.publish_arg()),
                ));
            }
            specs.push(spec);
        }
        Ok(Ports {
            as_given: raw.clone(),
            specs,
        })
    }

    pub fn specs(&self) -> &[PortSpec] {
        &self.specs
    }

    pub fn as_given(&self) -> &Value {
        &self.as_given
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn accepts_numbers_strings_and_protocols() {
        let ports = Ports::parse(&json!(["8080", 53, "53/udp", "9/sctp", "65535"])).unwrap();
        let args: Vec<_> = ports.specs().iter().map(PortSpec::publish_arg).collect();
        assert_eq!(
            args,
            ["8080/tcp", "53/tcp", "53/udp", "9/sctp", "65535/tcp"]
        );
    }

    #[test]
    fn rejects_out_of_range_duplicates_and_junk() {
        for bad in [
            json!(["0"]),
            json!([65536]),
            json!(["-1"]),
            json!(["80", "80/tcp"]),
            json!([80, "80"]),
            json!(["80/http"]),
            json!([" 80"]),
            json!(["+80"]),
            json!([8.5]),
            json!([null]),
            json!("8080"),
            json!([["80"]]),
            json!(["000080"]),
        ] {
            assert!(Ports::parse(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn at_most_max_ports_are_published() {
        let ports = |count: usize| json!((1..=count).collect::<Vec<_>>());
        assert_eq!(
            Ports::parse(&ports(MAX_PORTS)).unwrap().specs().len(),
            MAX_PORTS
        );
        match Ports::parse(&ports(MAX_PORTS + 1)) {
            Err(Error::Invalid { field, reason }) => {
                assert_eq!(field, "ports");
                assert!(reason.contains("at most 64"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
    }
}
