//! The query of a blocking status: `?index=N&wait=30s`.

use std::time::Duration;

use serde_json::Value;

use super::duration::parse_duration;
use crate::error::Error;

/// How long a blocking status waits when no `wait` is given, as Nomad's
/// blocking queries do.
pub const DEFAULT_STATUS_WAIT: Duration = Duration::from_secs(300);

/// The longest `wait`: a proxy or client timeout is likelier beyond it.
pub const LONGEST_STATUS_WAIT: Duration = Duration::from_secs(600);

/// A status request that answers only once the service changed after
/// `index` (an `X-Connector-Index` it was given), or once `wait` ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusWait {
    pub index: u64,
    pub wait: Duration,
}

impl StatusWait {
    /// Reads the `index` and `wait` query parameters; `None` when the
    /// status answers at once.
    ///
    /// # Errors
    /// [`Error::Invalid`] naming `index` (not a non-negative integer) or
    /// `wait` (not a duration from 0 to [`LONGEST_STATUS_WAIT`], or given
    /// without `index`).
    pub fn from_query(index: Option<&str>, wait: Option<&str>) -> Result<Option<Self>, Error> {
        let Some(index) = index else {
            return match wait {
                None => Ok(None),
                Some(_) => Err(Error::invalid(
                    "wait",
                    "applies only with index (the X-Connector-Index of an earlier answer)",
                )),
            };
        };
        let index = Some(index)
            .filter(|digits| !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|digits| digits.parse::<u64>().ok())
            .ok_or_else(|| {
                Error::invalid(
                    "index",
                    format!("{index:?} is not an X-Connector-Index (a non-negative integer)"),
                )
            })?;
        let range = Duration::ZERO..=LONGEST_STATUS_WAIT;
        let wait = match wait {
            None => DEFAULT_STATUS_WAIT,
            Some(text) => match text.parse::<u64>() {
                Ok(seconds) if range.contains(&Duration::from_secs(seconds)) => {
                    Duration::from_secs(seconds)
                }
                _ => parse_duration("wait", &Value::String(text.to_owned()), range)?,
            },
        };
        Ok(Some(StatusWait { index, wait }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_only_with_an_index_and_within_bounds() {
        assert_eq!(StatusWait::from_query(None, None).unwrap(), None);
        let default = StatusWait::from_query(Some("42"), None).unwrap().unwrap();
        assert_eq!((default.index, default.wait), (42, DEFAULT_STATUS_WAIT));
        for (text, wait) in [
            ("30s", 30_000),
            ("5", 5_000),
            ("250ms", 250),
            ("10m", 600_000),
        ] {
            let parsed = StatusWait::from_query(Some("1"), Some(text))
                .unwrap()
                .unwrap();
            assert_eq!(parsed.wait, Duration::from_millis(wait), "{text}");
        }
        for (index, wait, field) in [
            (None, Some("5s"), "wait"),
            (Some("-1"), None, "index"),
            (Some(""), None, "index"),
            (Some("1"), Some("11m"), "wait"),
            (Some("1"), Some("soon"), "wait"),
        ] {
            let refused = StatusWait::from_query(index, wait);
            assert!(
                matches!(refused, Err(Error::Invalid { field: ref f, .. }) if f == field),
                "{index:?} {wait:?}: {refused:?}"
            );
        }
    }
}
