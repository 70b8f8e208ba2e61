//! The name of a service: safe in a URL, a label value and a container name.

use std::sync::LazyLock;

use regex::Regex;
use serde::Serialize;

use crate::error::Error;

static SERVICE_NAME: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$").expect("valid regex"));

/// A service name: 1 to 63 characters of `[a-zA-Z0-9_.-]`, starting with a
/// letter or digit, which is also what Docker accepts in a container name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct ServiceName(String);

impl ServiceName {
    /// Parses `raw` as the value of the request field `field`.
    ///
    /// # Errors
    /// `Error::Invalid` naming `field` when `raw` breaks the rules above.
    pub fn parse_field(field: &str, raw: &str) -> Result<Self, Error> {
        if SERVICE_NAME.is_match(raw) {
            Ok(ServiceName(raw.to_owned()))
        } else {
            Err(Error::invalid(
                field,
                format!(
                    "{:?} is not a valid name: use 1 to 63 letters, digits, '_', '.' or '-', \
                     starting with a letter or digit",
                    raw
                ),
            ))
        }
    }

    /// Parses a service name given in the `name` field or the URL.
    ///
    /// # Errors
    /// `Error::Invalid` naming `name`.
    pub fn parse(raw: &str) -> Result<Self, Error> {
        Self::parse_field("name", raw)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for ServiceName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_docker_style_names() {
        for name in ["a", "web", "Web-1", "my_service.v2", &"x".repeat(63)] {
            assert!(ServiceName::parse(name).is_ok(), "{name}");
        }
    }

    #[test]
    fn rejects_names_unsafe_for_labels_urls_or_flags() {
        let long = "x".repeat(64);
        for name in [
            "", "-web", ".hidden", "_x", "a/b", "..", "a b", "a\0b", "é", &long,
        ] {
            assert!(ServiceName::parse(name).is_err(), "{name:?}");
        }
    }
}
