//! A service's health check: docker's `HEALTHCHECK`, given per definition.

use std::time::Duration;

use serde_json::Value;

use super::duration::{go_duration, parse_duration};
use super::json_type::json_type;
use crate::error::Error;

const FIELDS: [&str; 6] = [
    "test",
    "interval",
    "timeout",
    "start_period",
    "retries",
    "disable",
];

/// Longest interval, timeout or start period: a check a day apart tells
/// nothing, and a typo such as `"5000h"` is caught.
const LONGEST: Duration = Duration::from_secs(24 * 3600);
/// Shortest interval and timeout: docker's own floor.
const SHORTEST: Duration = Duration::from_millis(1);
const MOST_RETRIES: u64 = 1000;

/// What a definition says of health checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Healthcheck {
    /// `{"disable": true}` (or a test of `["NONE"]`): the image's own
    /// `HEALTHCHECK` is turned off.
    Disabled,
    Probe(HealthProbe),
}

/// A check docker runs inside each container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HealthProbe {
    /// The command, as the shell string `--health-cmd` takes: the docker
    /// CLI has no flag for the exec form, so an exec-form test is quoted
    /// into one (the image then needs `/bin/sh`).
    pub(crate) shell: String,
    pub(crate) interval: Option<Duration>,
    pub(crate) timeout: Option<Duration>,
    pub(crate) start_period: Option<Duration>,
    pub(crate) retries: Option<u32>,
}

impl Healthcheck {
    /// Parses the `healthcheck` field (not null).
    ///
    /// # Errors
    /// [`Error::Invalid`] naming `healthcheck` or `healthcheck.KEY`.
    pub(crate) fn parse(raw: &Value) -> Result<Self, Error> {
        let Value::Object(fields) = raw else {
            return Err(Error::invalid(
                "healthcheck",
                format!("must be an object or null, not {}", json_type(raw)),
            ));
        };
        if let Some(unknown) = fields.keys().find(|k| !FIELDS.contains(&k.as_str())) {
            return Err(Error::invalid(
                format!("healthcheck.{unknown}"),
                format!("unknown field; the fields are {}", FIELDS.join(", ")),
            ));
        }
        let present = |key: &str| fields.get(key).filter(|v| !v.is_null());
        match present("disable") {
            None | Some(Value::Bool(false)) => {}
            Some(Value::Bool(true)) => {
                return match fields
                    .keys()
                    .find(|k| *k != "disable" && !fields[*k].is_null())
                {
                    Some(other) => Err(Error::invalid(
                        format!("healthcheck.{other}"),
                        "cannot be given with \"disable\": true",
                    )),
                    None => Ok(Healthcheck::Disabled),
                };
            }
            Some(other) => {
                return Err(Error::invalid(
                    "healthcheck.disable",
                    format!("must be true or false, not {}", json_type(other)),
                ))
            }
        }
        let Some(test) = present("test") else {
            return Err(Error::invalid(
                "healthcheck.test",
                "is required unless \"disable\" is true",
            ));
        };
        let Some(shell) = parse_test(test)? else {
            return Ok(Healthcheck::Disabled);
        };
        let duration = |key: &str, shortest: Duration| {
            present(key)
                .map(|raw| parse_duration(&format!("healthcheck.{key}"), raw, shortest..=LONGEST))
                .transpose()
        };
        Ok(Healthcheck::Probe(HealthProbe {
            shell,
            interval: duration("interval", SHORTEST)?,
            timeout: duration("timeout", SHORTEST)?,
            start_period: duration("start_period", Duration::ZERO)?,
            retries: present("retries").map(parse_retries).transpose()?,
        }))
    }

    /// The flags both `docker run` and `docker service create` take, each
    /// with its value in one argument (`--flag=value`), so no value can be
    /// read as a flag of its own.
    pub(crate) fn docker_args(&self) -> Vec<String> {
        let probe = match self {
            Healthcheck::Disabled => return vec!["--no-healthcheck".to_owned()],
            Healthcheck::Probe(probe) => probe,
        };
        let mut args = vec![format!("--health-cmd={}", probe.shell)];
        for (flag, value) in [
            ("interval", probe.interval),
            ("timeout", probe.timeout),
            ("start-period", probe.start_period),
        ] {
            if let Some(value) = value {
                args.push(format!("--health-{flag}={}", go_duration(value)));
            }
        }
        if let Some(retries) = probe.retries {
            args.push(format!("--health-retries={retries}"));
        }
        args
    }
}

/// The shell string of a `test`, or `None` for `["NONE"]`.
fn parse_test(raw: &Value) -> Result<Option<String>, Error> {
    let field = "healthcheck.test";
    let shell =
        match raw {
            Value::String(command) => command.clone(),
            Value::Array(items) => {
                let words: Vec<&str> = items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| {
                        item.as_str().ok_or_else(|| {
                            Error::invalid(
                                format!("{field}[{i}]"),
                                format!("must be a string, not {}", json_type(item)),
                            )
                        })
                    })
                    .collect::<Result<_, _>>()?;
                match words.as_slice() {
                    ["NONE"] => return Ok(None),
                    ["CMD-SHELL", command] => (*command).to_owned(),
                    ["CMD", argv @ ..] if !argv.is_empty() => shell_words::join(argv),
                    _ => return Err(Error::invalid(
                        field,
                        "an array must be [\"CMD\", program, args...], [\"CMD-SHELL\", command] \
                         or [\"NONE\"]",
                    )),
                }
            }
            other => {
                return Err(Error::invalid(
                    field,
                    format!(
                        "must be a shell command string or an array, not {}",
                        json_type(other)
                    ),
                ))
            }
        };
    if shell.trim().is_empty() {
        return Err(Error::invalid(field, "must not be empty"));
    }
    if shell.contains('\0') {
        return Err(Error::invalid(field, "must not contain a NUL character"));
    }
    Ok(Some(shell))
}

fn parse_retries(raw: &Value) -> Result<u32, Error> {
    raw.as_u64()
        .filter(|n| (1..=MOST_RETRIES).contains(n))
        .and_then(|n| u32::try_from(n).ok())
        .ok_or_else(|| {
            Error::invalid(
                "healthcheck.retries",
                format!("must be a whole number from 1 to {MOST_RETRIES}, not {raw}"),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn field_of(raw: Value) -> String {
        match Healthcheck::parse(&raw) {
            Err(Error::Invalid { field, .. }) => field,
            other => panic!("{raw} gave {other:?}"),
        }
    }

    #[test]
    fn reads_the_shell_and_exec_forms_and_the_timings() {
        let check = Healthcheck::parse(&json!({
            "test": ["CMD", "wget", "-q", "http://localhost/it's"],
            "interval": "5s", "timeout": "1s", "start_period": "0s", "retries": 2
        }))
        .unwrap();
        assert_eq!(
            check.docker_args(),
            [
                "--health-cmd=wget -q 'http://localhost/it'\\''s'",
                "--health-interval=5s",
                "--health-timeout=1s",
                "--health-start-period=0s",
                "--health-retries=2"
            ]
        );
        let shell = Healthcheck::parse(&json!({"test": "test -f /tmp/ok"})).unwrap();
        assert_eq!(shell.docker_args(), ["--health-cmd=test -f /tmp/ok"]);
        let same = Healthcheck::parse(&json!({"test": ["CMD-SHELL", "test -f /tmp/ok"]}));
        assert_eq!(same.unwrap(), shell);
    }

    #[test]
    fn disable_turns_the_images_check_off() {
        for raw in [json!({"disable": true}), json!({"test": ["NONE"]})] {
            let check = Healthcheck::parse(&raw).unwrap();
            assert_eq!(check, Healthcheck::Disabled);
            assert_eq!(check.docker_args(), ["--no-healthcheck"]);
        }
    }

    #[test]
    fn names_the_offending_key() {
        for (raw, field) in [
            (json!("curl localhost"), "healthcheck"),
            (json!({}), "healthcheck.test"),
            (json!({"test": ""}), "healthcheck.test"),
            (json!({"test": []}), "healthcheck.test"),
            (json!({"test": ["CMD"]}), "healthcheck.test"),
            (json!({"test": ["RUN", "x"]}), "healthcheck.test"),
            (json!({"test": ["CMD", 5]}), "healthcheck.test[1]"),
            (json!({"test": "a\u{0}b"}), "healthcheck.test"),
            (
                json!({"test": "true", "interval": "0s"}),
                "healthcheck.interval",
            ),
            (
                json!({"test": "true", "interval": "1000000h"}),
                "healthcheck.interval",
            ),
            (
                json!({"test": "true", "timeout": -1}),
                "healthcheck.timeout",
            ),
            (
                json!({"test": "true", "start_period": "-1s"}),
                "healthcheck.start_period",
            ),
            (json!({"test": "true", "retries": 0}), "healthcheck.retries"),
            (
                json!({"test": "true", "retries": -3}),
                "healthcheck.retries",
            ),
            (
                json!({"test": "true", "retries": 1.5}),
                "healthcheck.retries",
            ),
            (
                json!({"test": "true", "retries": 100_000}),
                "healthcheck.retries",
            ),
            (
                json!({"test": "true", "intervall": "5s"}),
                "healthcheck.intervall",
            ),
            (json!({"disable": "yes"}), "healthcheck.disable"),
            (json!({"disable": true, "test": "true"}), "healthcheck.test"),
        ] {
            assert_eq!(field_of(raw.clone()), field, "{raw}");
        }
    }
}
