//! Labels a definition puts on its containers, for a proxy or a monitor.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use regex::Regex;
use serde_json::Value;

use super::json_type::json_type;
use crate::error::Error;

const MOST_LABELS: usize = 256;
const LONGEST_VALUE: usize = 4096;

/// Label keys as docker recommends them (reverse-DNS, `traefik.http...`):
/// letters, digits, `.`, `_`, `/` and `-`, starting and ending with a letter
/// or digit.
static LABEL_KEY: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^[A-Za-z0-9]([A-Za-z0-9._/-]{0,253}[A-Za-z0-9])?$").expect("valid regex")
});

/// Prefixes nobody else may label with: the connector's own (ownership is
/// by label) and docker's reserved namespaces (`com.docker.swarm.*` would
/// make the connector take its own containers for Swarm's).
const RESERVED: [&str; 4] = [
    "docker-connector.",
    "com.docker.",
    "io.docker.",
    "org.dockerproject.",
];

/// The labels, in key order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UserLabels(BTreeMap<String, String>);

impl UserLabels {
    /// Parses the `labels` field (not null): an object of string values.
    ///
    /// # Errors
    /// [`Error::Invalid`] naming `labels` or `labels.KEY`.
    pub(crate) fn parse(raw: &Value) -> Result<Self, Error> {
        let Value::Object(entries) = raw else {
            return Err(Error::invalid(
                "labels",
                format!(
                    "must be an object of labels or null, not {}",
                    json_type(raw)
                ),
            ));
        };
        if entries.len() > MOST_LABELS {
            return Err(Error::invalid(
                "labels",
                format!("at most {MOST_LABELS} labels are taken"),
            ));
        }
        let mut labels = BTreeMap::new();
        for (key, value) in entries {
            if !LABEL_KEY.is_match(key) {
                return Err(Error::invalid(
                    "labels",
                    format!("{key:?} is not a label key (letters, digits, . _ / -)"),
                ));
            }
            if let Some(prefix) = RESERVED.iter().find(|p| key.starts_with(*p)) {
                return Err(Error::invalid(
                    format!("labels.{key}"),
                    format!("keys under {prefix:?} are reserved"),
                ));
            }
            let field = || format!("labels.{key}");
            let Value::String(text) = value else {
                return Err(Error::invalid(
                    field(),
                    format!("must be a string, not {}", json_type(value)),
                ));
            };
            if text.len() > LONGEST_VALUE {
                return Err(Error::invalid(field(), "is too long"));
            }
            if text.chars().any(char::is_control) {
                return Err(Error::invalid(
                    field(),
                    "must not contain control characters",
                ));
            }
            labels.insert(key.clone(), text.clone());
        }
        Ok(UserLabels(labels))
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_proxy_labels() {
        let labels = UserLabels::parse(&json!({
            "traefik.http.routers.web.rule": "Host(`example.com`)",
            "team": "ops"
        }))
        .unwrap();
        let pairs: Vec<(&str, &str)> = labels.iter().collect();
        assert_eq!(
            pairs,
            [
                ("team", "ops"),
                ("traefik.http.routers.web.rule", "Host(`example.com`)")
            ]
        );
    }

    #[test]
    fn names_the_offending_key() {
        for (raw, field) in [
            (json!(["a=b"]), "labels"),
            (
                json!({"docker-connector.service": "other"}),
                "labels.docker-connector.service",
            ),
            (
                json!({"com.docker.swarm.service.id": "x"}),
                "labels.com.docker.swarm.service.id",
            ),
            (json!({"--privileged": "x"}), "labels"),
            (json!({"a=b": "x"}), "labels"),
            (json!({"a\nb": "x"}), "labels"),
            (json!({"": "x"}), "labels"),
            (json!({"team": 5}), "labels.team"),
            (json!({"team": "a\u{0}b"}), "labels.team"),
            (json!({"team": "a\u{1b}[2J"}), "labels.team"),
        ] {
            match UserLabels::parse(&raw) {
                Err(Error::Invalid { field: f, .. }) => assert_eq!(f, field, "{raw}"),
                other => panic!("{raw} gave {other:?}"),
            }
        }
    }
}
