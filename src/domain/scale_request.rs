//! The body of `POST /service/<name>/scale`.

use std::time::Duration;

use serde_json::Value;

use super::duration::parse_duration;
use super::ReplicaCount;
use crate::error::Error;

/// How long `?wait=healthy` waits when no `timeout` is given: docker's
/// default check runs first 30 s after the start, so a container that
/// passes it is healthy well within this.
pub const DEFAULT_HEALTH_WAIT: Duration = Duration::from_secs(60);

/// The longest `timeout` a scale may wait: an HTTP request held longer
/// than this is better replaced by polling status.
pub const LONGEST_HEALTH_WAIT: Duration = Duration::from_secs(600);

/// The query of a scale that waits for health: `?wait=healthy`, with an
/// optional `timeout` (`"90s"`, `"2m"`, or whole seconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthWait {
    timeout: Duration,
}

impl HealthWait {
    /// Reads the `wait` and `timeout` query parameters; `None` when the
    /// scale does not wait for health.
    ///
    /// # Errors
    /// [`Error::Invalid`] naming `wait` (any value but `healthy`) or
    /// `timeout` (not a duration from 1 s to [`LONGEST_HEALTH_WAIT`], or
    /// given without `wait=healthy`).
    pub fn from_query(wait: Option<&str>, timeout: Option<&str>) -> Result<Option<Self>, Error> {
        match (wait, timeout) {
            (None, None) => Ok(None),
            (None, Some(_)) => Err(Error::invalid("timeout", "applies only with wait=healthy")),
            (Some("healthy"), None) => Ok(Some(HealthWait {
                timeout: DEFAULT_HEALTH_WAIT,
            })),
            (Some("healthy"), Some(text)) => {
                let range = Duration::from_secs(1)..=LONGEST_HEALTH_WAIT;
                let timeout = match text.parse::<u64>() {
                    Ok(seconds) if range.contains(&Duration::from_secs(seconds)) => {
                        Duration::from_secs(seconds)
                    }
                    _ => parse_duration("timeout", &Value::String(text.to_owned()), range)?,
                };
                Ok(Some(HealthWait { timeout }))
            }
            (Some(_), _) => Err(Error::invalid(
                "wait",
                "the only value is healthy (a scale always waits for its containers to run)",
            )),
        }
    }

    /// How long the scale waits, once its containers run, for them to be
    /// healthy.
    pub fn timeout(self) -> Duration {
        self.timeout
    }
}

/// A validated scale body: `{"number": N}` and nothing else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScaleRequest {
    target: ReplicaCount,
}

impl ScaleRequest {
    /// Parses a scale body; `max` is the configured `max_replicas`.
    ///
    /// # Errors
    /// [`Error::MalformedBody`] unless the body is an object;
    /// [`Error::Invalid`] naming an unknown key or `number`.
    pub fn from_body(body: &Value, max: u32) -> Result<Self, Error> {
        let Value::Object(fields) = body else {
            return Err(Error::MalformedBody(
                "must be a JSON object like {\"number\": 3}".into(),
            ));
        };
        if let Some(unknown) = fields.keys().find(|key| key.as_str() != "number") {
            return Err(Error::invalid(
                unknown.as_str(),
                "unknown field; the only field is number",
            ));
        }
        let target = ReplicaCount::parse(fields.get("number"), max)?;
        Ok(ScaleRequest { target })
    }

    /// The count asked for.
    pub fn target(self) -> ReplicaCount {
        self.target
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn takes_a_number_and_refuses_anything_else_naming_the_key() {
        let ok = ScaleRequest::from_body(&json!({"number": "3"}), 10).unwrap();
        assert_eq!(ok.target().get(), 3);
        let extra = ScaleRequest::from_body(&json!({"number": 1, "force": true}), 10);
        assert!(matches!(extra, Err(Error::Invalid { ref field, .. }) if field == "force"));
        let missing = ScaleRequest::from_body(&json!({}), 10);
        assert!(matches!(missing, Err(Error::Invalid { ref field, .. }) if field == "number"));
        assert!(matches!(
            ScaleRequest::from_body(&json!([3]), 10),
            Err(Error::MalformedBody(_))
        ));
    }

    #[test]
    fn waits_for_health_only_when_asked_and_within_bounds() {
        assert_eq!(HealthWait::from_query(None, None).unwrap(), None);
        let default = HealthWait::from_query(Some("healthy"), None)
            .unwrap()
            .unwrap();
        assert_eq!(default.timeout(), DEFAULT_HEALTH_WAIT);
        for (text, seconds) in [("5", 5), ("90s", 90), ("2m", 120), ("600", 600)] {
            let wait = HealthWait::from_query(Some("healthy"), Some(text)).unwrap();
            assert_eq!(
                wait.unwrap().timeout(),
                Duration::from_secs(seconds),
                "{text}"
            );
        }
        for (wait, timeout, field) in [
            (Some("running"), None, "wait"),
            (Some(""), None, "wait"),
            (Some("HEALTHY"), Some("5"), "wait"),
            (None, Some("5"), "timeout"),
            (Some("healthy"), Some("0"), "timeout"),
            (Some("healthy"), Some("601"), "timeout"),
            (Some("healthy"), Some("-5s"), "timeout"),
            (Some("healthy"), Some("1h"), "timeout"),
            (Some("healthy"), Some("soon"), "timeout"),
        ] {
            let refused = HealthWait::from_query(wait, timeout);
            assert!(
                matches!(refused, Err(Error::Invalid { field: ref f, .. }) if f == field),
                "{wait:?} {timeout:?}: {refused:?}"
            );
        }
    }
}
