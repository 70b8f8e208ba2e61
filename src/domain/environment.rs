//! Environment variables injected into every container of a service.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use regex::Regex;
use serde::Serialize;
use serde_json::Value;

use super::json_type::json_type;
use crate::error::Error;

static ENV_NAME: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[A-Za-z_][A-Za-z0-9_]*$").expect("valid regex"));

/// Variable names and their values, kept sorted so the same definition always
/// serializes, and hashes, the same way.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Environment(BTreeMap<String, String>);

impl Environment {
    /// Parses the `environment` field (not null): an object whose keys are
    /// shell-style names and whose values are strings, numbers or booleans,
    /// stored as strings. Numbers keep the digits the client wrote (serde_json's
    /// `arbitrary_precision`), so `1e2` is not turned into `100.0` and large integers keep every digit.
    ///
    /// # Errors
    /// [`Error::Invalid`] naming `environment` or `environment.KEY`.
    pub fn parse(raw: &Value) -> Result<Self, Error> {
        let Value::Object(entries) = raw else {
            return Err(Error::invalid(
                "environment",
                format!(
                    "must be an object of variables or null, not {}",
                    json_type(raw)
                ),
            ));
        };
        let mut vars = BTreeMap::new();
        for (key, value) in entries {
            if !ENV_NAME.is_match(key) {
                return Err(Error::invalid(
                    "environment",
                    format!("{key:?} is not a variable name ([A-Za-z_][A-Za-z0-9_]*)"),
                ));
            }
            let field = || format!("environment.{key}");
            let text = match value {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                other => {
                    return Err(Error::invalid(
                        field(),
                        format!(
                            "must be a string, number or boolean, not {}",
                            json_type(other)
                        ),
                    ))
                }
            };
            if text.contains('\0') {
                return Err(Error::invalid(field(), "must not contain a NUL character"));
            }
            vars.insert(key.clone(), text);
        }
        Ok(Environment(vars))
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn stores_scalars_as_strings() {
        let env = Environment::parse(&json!({"A": "x", "B": 2, "C": true, "_D": ""})).unwrap();
        let pairs: Vec<_> = env.iter().collect();
        assert_eq!(pairs, [("A", "x"), ("B", "2"), ("C", "true"), ("_D", "")]);
    }

    #[test]
    fn keeps_numbers_as_they_were_written() {
        let body = r#"{"E": 1e2, "BIG": 12345678901234567890123, "F": 1.50, "N": -0}"#;
        let env = Environment::parse(&serde_json::from_str(body).unwrap()).unwrap();
        let pairs: Vec<_> = env.iter().collect();
        assert_eq!(
            pairs,
            [
                ("BIG", "12345678901234567890123"),
                ("E", "1e+2"),
                ("F", "1.50"),
                ("N", "-0")
            ]
        );
    }

    #[test]
    fn rejects_bad_names_and_structured_values() {
        for bad in [
            json!({"A=B": "x"}),
            json!({"": "x"}),
            json!({"1A": "x"}),
            json!({"A\nB": "x"}),
            json!({"A": {"b": 1}}),
            json!({"A": ["x"]}),
            json!({"A": null}),
            json!({"A": "x\u{0}y"}),
            json!(["A=x"]),
        ] {
            assert!(Environment::parse(&bad).is_err(), "{bad}");
        }
    }
}
