//! Limits on what each container of a service may use.

use std::sync::LazyLock;

use regex::Regex;
use serde_json::Value;

use super::json_type::json_type;
use crate::error::Error;

const FIELDS: [&str; 3] = ["memory", "cpus", "pids"];

/// Docker refuses a memory limit below 6 MiB.
const LEAST_MEMORY: u64 = 6 * 1024 * 1024;
/// No host has a petabyte of memory: anything above is a typo.
const MOST_MEMORY: u64 = 1 << 50;
/// Docker's CPU limit is counted in billionths of a CPU.
const MOST_CPUS: f64 = 4096.0;
/// Linux's highest `pid_max`.
const MOST_PIDS: u64 = 4_194_304;

/// `"256m"`, `"1g"`, `"512k"`, `"1048576"` (bytes), optionally with a
/// trailing `b`, as `docker run --memory` reads them.
static MEMORY: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^(?i)([0-9]+)([kmgt]?)b?$").expect("valid regex"));
/// A positive decimal with at most nine places: docker counts nano-CPUs.
static CPUS: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[0-9]+(\.[0-9]{1,9})?$").expect("valid regex"));

/// The limits; each is optional.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Resources {
    /// Bytes.
    pub(crate) memory: Option<u64>,
    /// CPUs as a decimal, e.g. `0.5`, written as docker's `--cpus` takes it.
    pub(crate) cpus: Option<String>,
    pub(crate) pids: Option<u32>,
}

impl Resources {
    /// Parses the `resources` field (not null).
    ///
    /// # Errors
    /// [`Error::Invalid`] naming `resources` or `resources.KEY`.
    pub(crate) fn parse(raw: &Value) -> Result<Self, Error> {
        let Value::Object(fields) = raw else {
            return Err(Error::invalid(
                "resources",
                format!("must be an object or null, not {}", json_type(raw)),
            ));
        };
        if let Some(unknown) = fields.keys().find(|k| !FIELDS.contains(&k.as_str())) {
            return Err(Error::invalid(
                format!("resources.{unknown}"),
                format!("unknown field; the fields are {}", FIELDS.join(", ")),
            ));
        }
        let present = |key: &str| fields.get(key).filter(|v| !v.is_null());
        Ok(Resources {
            memory: present("memory").map(parse_memory).transpose()?,
            cpus: present("cpus").map(parse_cpus).transpose()?,
            pids: present("pids").map(parse_pids).transpose()?,
        })
    }
}

fn parse_memory(raw: &Value) -> Result<u64, Error> {
    let field = "resources.memory";
    let text = match raw {
        Value::String(text) => text.clone(),
        Value::Number(n) => n.to_string(),
        other => {
            return Err(Error::invalid(
                field,
                format!(
                    "must be a size such as \"256m\" or a number of bytes, not {}",
                    json_type(other)
                ),
            ))
        }
    };
    let bytes = MEMORY.captures(&text).and_then(|parts| {
        let number: u64 = parts[1].parse().ok()?;
        let shift = match parts[2].to_ascii_lowercase().as_str() {
            "" => 0,
            "k" => 10,
            "m" => 20,
            "g" => 30,
            _ => 40,
        };
        number.checked_mul(1 << shift)
    });
    match bytes {
        Some(bytes) if (LEAST_MEMORY..=MOST_MEMORY).contains(&bytes) => Ok(bytes),
        Some(_) => Err(Error::invalid(
            field,
            format!(
                "{text:?} is out of range: docker needs at least 6m, and at most 1024t is taken"
            ),
        )),
        None => Err(Error::invalid(
            field,
            format!("{text:?} is not a size: a whole number with an optional unit k, m, g or t"),
        )),
    }
}

fn parse_cpus(raw: &Value) -> Result<String, Error> {
    let field = "resources.cpus";
    let text = match raw {
        Value::String(text) => text.clone(),
        Value::Number(n) => n.to_string(),
        other => {
            return Err(Error::invalid(
                field,
                format!(
                    "must be a decimal number of CPUs such as \"0.5\", not {}",
                    json_type(other)
                ),
            ))
        }
    };
    if !CPUS.is_match(&text) {
        return Err(Error::invalid(
            field,
            format!("{text:?} is not a number of CPUs such as \"0.5\" or \"2\""),
        ));
    }
    let value: f64 = text.parse().unwrap_or(f64::INFINITY);
    if value <= 0.0 || value > MOST_CPUS {
        return Err(Error::invalid(
            field,
            format!("{text:?} is out of range: more than 0 and at most {MOST_CPUS}"),
        ));
    }
    Ok(text)
}

fn parse_pids(raw: &Value) -> Result<u32, Error> {
    raw.as_u64()
        .filter(|n| (1..=MOST_PIDS).contains(n))
        .and_then(|n| u32::try_from(n).ok())
        .ok_or_else(|| {
            Error::invalid(
                "resources.pids",
                format!("must be a whole number from 1 to {MOST_PIDS}, not {raw}"),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_sizes_cpus_and_pids() {
        let limits =
            Resources::parse(&json!({"memory": "256m", "cpus": "0.5", "pids": 100})).unwrap();
        assert_eq!(limits.memory, Some(256 << 20));
        assert_eq!(limits.cpus.as_deref(), Some("0.5"));
        assert_eq!(limits.pids, Some(100));
        let limits = Resources::parse(&json!({"memory": "1GB", "cpus": 2})).unwrap();
        assert_eq!(limits.memory, Some(1 << 30));
        assert_eq!(limits.cpus.as_deref(), Some("2"));
        assert_eq!(
            Resources::parse(&json!({"memory": 8_388_608}))
                .unwrap()
                .memory,
            Some(8 << 20)
        );
        assert_eq!(Resources::parse(&json!({})).unwrap().memory, None);
    }

    #[test]
    fn names_the_offending_key() {
        for (raw, field) in [
            (json!([]), "resources"),
            (json!({"memory": "-256m"}), "resources.memory"),
            (json!({"memory": -1}), "resources.memory"),
            (json!({"memory": "1k"}), "resources.memory"),
            (json!({"memory": "256 m"}), "resources.memory"),
            (
                json!({"memory": "99999999999999999999t"}),
                "resources.memory",
            ),
            (json!({"memory": "2000t"}), "resources.memory"),
            (json!({"memory": true}), "resources.memory"),
            (json!({"cpus": "0"}), "resources.cpus"),
            (json!({"cpus": "-0.5"}), "resources.cpus"),
            (json!({"cpus": "1e3"}), "resources.cpus"),
            (json!({"cpus": "0.0000000001"}), "resources.cpus"),
            (json!({"cpus": "100000"}), "resources.cpus"),
            (json!({"cpus": "--privileged"}), "resources.cpus"),
            (json!({"pids": 0}), "resources.pids"),
            (json!({"pids": -1}), "resources.pids"),
            (json!({"pids": "100"}), "resources.pids"),
            (json!({"pids": 10_000_000}), "resources.pids"),
            (json!({"swap": "1g"}), "resources.swap"),
        ] {
            match Resources::parse(&raw) {
                Err(Error::Invalid { field: f, .. }) => assert_eq!(f, field, "{raw}"),
                other => panic!("{raw} gave {other:?}"),
            }
        }
    }
}
