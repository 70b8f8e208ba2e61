//! The body of `POST /service/<name>/scale`.

use std::time::Duration;

use serde_json::Value;

use super::duration::parse_duration;
use super::json_type::json_type;
use super::{ReplicaCount, ScalingBounds};
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

/// The longest `reason` a scale may give: a line in a history, not a log.
pub const LONGEST_REASON: usize = 200;

/// How a scale changes the desired count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CountChange {
    /// `{"number": n}`: to `n`.
    To(ReplicaCount),
    /// `{"delta": d}`: by `d`, from the count recorded when the scale
    /// holds the service's lock, so concurrent deltas add up.
    By(i64),
}

/// A validated scale body: `{"number": N}` or `{"delta": D}`, and an
/// optional `reason`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScaleRequest {
    change: CountChange,
    reason: Option<String>,
    /// The configured `max_replicas`, which a delta must not cross.
    max: u32,
}

impl ScaleRequest {
    /// Parses a scale body; `max` is the configured `max_replicas`.
    ///
    /// # Errors
    /// [`Error::MalformedBody`] unless the body is an object;
    /// [`Error::Invalid`] naming an unknown key, `number`, `delta` or
    /// `reason`.
    pub fn from_body(body: &Value, max: u32) -> Result<Self, Error> {
        let Value::Object(fields) = body else {
            return Err(Error::MalformedBody(
                "must be a JSON object like {\"number\": 3}".into(),
            ));
        };
        if let Some(unknown) = fields
            .keys()
            .find(|key| !["number", "delta", "reason"].contains(&key.as_str()))
        {
            return Err(Error::invalid(
                unknown.as_str(),
                "unknown field; the fields are number or delta, and reason",
            ));
        }
        let change = match (fields.get("number"), fields.get("delta")) {
            (Some(_), Some(_)) => {
                return Err(Error::invalid(
                    "delta",
                    "give either number (the count) or delta (a change of it), not both",
                ))
            }
            (None, Some(delta)) => CountChange::By(parse_delta(delta, max)?),
            (number, None) => CountChange::To(ReplicaCount::parse(number, max)?),
        };
        let reason = fields.get("reason").map(parse_reason).transpose()?;
        Ok(ScaleRequest {
            change,
            reason,
            max,
        })
    }

    /// A request for exactly `target`, without a reason.
    #[cfg(test)]
    pub fn to(target: u32) -> Self {
        ScaleRequest {
            change: CountChange::To(ReplicaCount::parse(Some(&target.into()), u32::MAX).unwrap()),
            reason: None,
            max: u32::MAX,
        }
    }

    #[cfg(test)]
    pub fn change(&self) -> CountChange {
        self.change
    }

    /// Why the client scales, as it said.
    pub fn reason(&self) -> Option<&str> {
        self.reason.as_deref()
    }

    /// The count this request asks for when `current` is recorded and the
    /// definition has `bounds`.
    ///
    /// # Errors
    /// [`Error::OutOfBounds`] naming `number` or `delta` when the count
    /// would leave 0 to `max_replicas` or the bounds.
    pub fn target(&self, current: u32, bounds: Option<&ScalingBounds>) -> Result<u32, Error> {
        let max = self.max;
        let (field, target) = match self.change {
            CountChange::To(count) => ("number", count.get()),
            CountChange::By(delta) => {
                let target = i64::from(current) + delta;
                let target = u32::try_from(target)
                    .ok()
                    .filter(|&target| target <= max)
                    .ok_or_else(|| {
                        Error::out_of_bounds(
                            "delta",
                            format!(
                                "{delta:+} would take the desired count from {current} to \
                                 {target}, outside 0 to max_replicas ({max})"
                            ),
                        )
                    })?;
                ("delta", target)
            }
        };
        if let Some(broken) = bounds.and_then(|bounds| bounds.check(target).err()) {
            return Err(Error::out_of_bounds(
                field,
                format!("a desired count of {target} is {broken} of the service's definition"),
            ));
        }
        Ok(target)
    }
}

/// `delta`: a JSON integer, or a string of digits with an optional sign
/// (httpie's `delta=-1` sends `"-1"`), of at most `max` either way.
fn parse_delta(raw: &Value, max: u32) -> Result<i64, Error> {
    let out_of_range =
        || Error::invalid("delta", format!("must be an integer from -{max} to {max}"));
    let delta = match raw {
        Value::Number(n) => n.as_i64().ok_or_else(out_of_range)?,
        Value::String(s) => {
            let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(Error::invalid(
                    "delta",
                    format!("{s:?} is not an integer such as 2 or -1"),
                ));
            }
            s.parse::<i64>().map_err(|_| out_of_range())?
        }
        other => {
            return Err(Error::invalid(
                "delta",
                format!("must be an integer, not {}", json_type(other)),
            ))
        }
    };
    if delta.unsigned_abs() > u64::from(max) {
        return Err(out_of_range());
    }
    Ok(delta)
}

/// `reason`: one line of at most [`LONGEST_REASON`] characters.
fn parse_reason(raw: &Value) -> Result<String, Error> {
    match raw {
        Value::String(text) if text.chars().count() > LONGEST_REASON => Err(Error::invalid(
            "reason",
            format!("is longer than {LONGEST_REASON} characters"),
        )),
        Value::String(text) if text.chars().any(char::is_control) => Err(Error::invalid(
            "reason",
            "may not hold control characters such as newlines",
        )),
        Value::String(text) => Ok(text.clone()),
        other => Err(Error::invalid(
            "reason",
            format!("must be a string, not {}", json_type(other)),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn takes_a_number_and_refuses_anything_else_naming_the_key() {
        let ok = ScaleRequest::from_body(&json!({"number": "3"}), 10).unwrap();
        assert_eq!(ok.target(7, None).unwrap(), 3);
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
    fn a_delta_adds_to_the_current_count_within_every_bound() {
        let parse = |body: Value| ScaleRequest::from_body(&body, 10);
        let up = parse(json!({"delta": 2, "reason": "queue is long"})).unwrap();
        assert_eq!(up.reason(), Some("queue is long"));
        assert_eq!(up.target(3, None).unwrap(), 5);
        let down = parse(json!({"delta": "-1"})).unwrap();
        assert_eq!(down.change(), CountChange::By(-1));
        let field = |result: Result<u32, Error>| match result {
            Err(Error::OutOfBounds { field, reason }) => (field, reason),
            other => panic!("{other:?}"),
        };
        let (name, why) = field(down.target(0, None));
        assert_eq!(name, "delta");
        assert!(why.contains("from 0 to -1"), "{why}");
        assert_eq!(field(up.target(9, None)).0, "delta");
        let bounds = ScalingBounds::parse(&json!({"min": 1, "max": 4})).unwrap();
        let (name, why) = field(up.target(3, Some(&bounds)));
        assert_eq!(name, "delta");
        assert!(why.contains("above scaling.max (4)"), "{why}");
        let to_zero = parse(json!({"number": 0})).unwrap();
        let (name, why) = field(to_zero.target(2, Some(&bounds)));
        assert_eq!(name, "number");
        assert!(why.contains("below scaling.min (1)"), "{why}");
        for (body, name) in [
            (json!({"number": 1, "delta": 1}), "delta"),
            (json!({"delta": 11}), "delta"),
            (json!({"delta": "1.5"}), "delta"),
            (json!({"delta": "+"}), "delta"),
            (json!({"delta": true}), "delta"),
            (json!({"delta": 1, "reason": 5}), "reason"),
            (json!({"delta": 1, "reason": "a\nb"}), "reason"),
            (json!({"delta": 1, "reason": "x".repeat(201)}), "reason"),
        ] {
            let refused = parse(body.clone());
            assert!(
                matches!(refused, Err(Error::Invalid { ref field, .. }) if field == name),
                "{body}: {refused:?}"
            );
        }
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
