//! Docker networks each container of a service is attached to.

use std::sync::LazyLock;

use regex::Regex;
use serde_json::Value;

use super::json_type::json_type;
use crate::error::Error;

const MOST_NETWORKS: usize = 32;

/// Letters, digits and `_.-`, starting with a letter or digit: what docker
/// names networks with, and nothing a flag or a terminal would read.
static NETWORK_NAME: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$").expect("valid regex"));

/// Network modes rather than networks: `host` shares the host's network
/// stack (and its loopback, where this connector listens), `none` takes
/// the network away; neither attaches beside others.
const MODES: [&str; 2] = ["host", "none"];

/// Parses the `networks` field (not null): distinct network names.
///
/// # Errors
/// [`Error::Invalid`] naming `networks` or `networks[i]`.
pub(crate) fn parse_networks(raw: &Value) -> Result<Vec<String>, Error> {
    let Value::Array(items) = raw else {
        return Err(Error::invalid(
            "networks",
            format!(
                "must be a list of network names or null, not {}",
                json_type(raw)
            ),
        ));
    };
    if items.len() > MOST_NETWORKS {
        return Err(Error::invalid(
            "networks",
            format!("at most {MOST_NETWORKS} networks are taken"),
        ));
    }
    let mut names: Vec<String> = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let field = format!("networks[{i}]");
        let Value::String(name) = item else {
            return Err(Error::invalid(
                field,
                format!("must be a network name, not {}", json_type(item)),
            ));
        };
        if !NETWORK_NAME.is_match(name) {
            return Err(Error::invalid(
                field,
                format!("{name:?} is not a network name ([A-Za-z0-9][A-Za-z0-9_.-]*)"),
            ));
        }
        if MODES.contains(&name.as_str()) {
            return Err(Error::invalid(
                field,
                format!(
                    "{name:?} is a network mode, not a network a container can join beside others"
                ),
            ));
        }
        if names.contains(name) {
            return Err(Error::invalid(field, format!("{name:?} is listed twice")));
        }
        names.push(name.clone());
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_names_and_names_the_bad_one() {
        assert_eq!(
            parse_networks(&json!(["front", "back_1.x"])).unwrap(),
            ["front", "back_1.x"]
        );
        for (raw, field) in [
            (json!("front"), "networks"),
            (json!([5]), "networks[0]"),
            (json!(["ok", "--privileged"]), "networks[1]"),
            (json!(["a b"]), "networks[0]"),
            (json!(["a\u{1b}[2J"]), "networks[0]"),
            (json!(["container:web"]), "networks[0]"),
            (json!(["host"]), "networks[0]"),
            (json!(["a", "a"]), "networks[1]"),
            (json!([""]), "networks[0]"),
        ] {
            match parse_networks(&raw) {
                Err(Error::Invalid { field: f, .. }) => assert_eq!(f, field, "{raw}"),
                other => panic!("{raw} gave {other:?}"),
            }
        }
    }
}
