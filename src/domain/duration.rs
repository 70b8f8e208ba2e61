//! Durations as docker and Compose write them: `"5s"`, `"1m30s"`,
//! `"500ms"`, `"1.5h"` (Go's `time.ParseDuration` syntax, without the
//! sign: a negative wait means nothing here).

use std::time::Duration;

use serde_json::Value;

use super::json_type::json_type;
use crate::error::Error;

/// The units Go's parser knows, longest spelling first so `ms` is not read
/// as `m` followed by garbage, with their length in nanoseconds.
const UNITS: [(&str, u128); 8] = [
    ("ns", 1),
    ("us", 1_000),
    ("µs", 1_000),
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("m", 60_000_000_000),
    ("h", 3_600_000_000_000),
    ("μs", 1_000),
];

/// Parses the duration at `field` and checks it lies in `range`.
///
/// # Errors
/// [`Error::Invalid`] naming `field`: not a string, not a duration, or out
/// of range.
pub(crate) fn parse_duration(
    field: &str,
    raw: &Value,
    range: std::ops::RangeInclusive<Duration>,
) -> Result<Duration, Error> {
    let Value::String(text) = raw else {
        return Err(Error::invalid(
            field,
            format!(
                "must be a duration string such as \"5s\" or \"1m30s\", not {}",
                json_type(raw)
            ),
        ));
    };
    let duration = read(text).ok_or_else(|| {
        Error::invalid(
            field,
            format!(
                "{text:?} is not a duration: write numbers with units ns, us, ms, s, m or h, \
                 such as \"5s\" or \"1m30s\""
            ),
        )
    })?;
    if !range.contains(&duration) {
        return Err(Error::invalid(
            field,
            format!(
                "{text:?} is out of range: it must lie between {} and {}",
                show(*range.start()),
                show(*range.end())
            ),
        ));
    }
    Ok(duration)
}

/// Go's form of `duration` in whole milliseconds or seconds, as the docker
/// CLI's duration flags take it.
pub(crate) fn go_duration(duration: Duration) -> String {
    if duration.subsec_millis() == 0 && duration.subsec_nanos() == 0 {
        format!("{}s", duration.as_secs())
    } else {
        format!("{}ms", duration.as_millis().max(1))
    }
}

fn show(duration: Duration) -> String {
    go_duration(duration)
}

/// Reads `text` as a sum of `<number><unit>` terms; `None` if it is not one,
/// or too long to count in nanoseconds.
fn read(text: &str) -> Option<Duration> {
    if text == "0" {
        return Some(Duration::ZERO);
    }
    let mut rest = text;
    let mut total: u128 = 0;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (number, after) = rest.split_at(digits);
        let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
        if whole.is_empty() && fraction.is_empty() || fraction.contains('.') {
            return None;
        }
        let (unit, nanos) = UNITS
            .iter()
            .filter(|(unit, _)| after.starts_with(unit))
            .max_by_key(|(unit, _)| unit.len())?;
        rest = &after[unit.len()..];
        let whole: u128 = if whole.is_empty() {
            0
        } else {
            whole.parse().ok()?
        };
        // Digits beyond nanosecond precision change nothing.
        let mut part = whole.checked_mul(*nanos)?;
        let mut scale = *nanos;
        for digit in fraction.chars().take(18) {
            scale /= 10;
            part = part.checked_add(u128::from(digit.to_digit(10)?) * scale)?;
        }
        total = total.checked_add(part)?;
    }
    let nanos = u64::try_from(total).ok()?;
    Some(Duration::from_nanos(nanos))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ANY: std::ops::RangeInclusive<Duration> = Duration::ZERO..=Duration::from_secs(86_400);

    fn parse(raw: Value) -> Result<Duration, Error> {
        parse_duration("interval", &raw, ANY)
    }

    #[test]
    fn reads_go_durations() {
        for (text, millis) in [
            ("5s", 5_000),
            ("1m30s", 90_000),
            ("500ms", 500),
            ("1.5h", 5_400_000),
            ("0", 0),
            ("0s", 0),
            (".5s", 500),
            ("2m0.25s", 120_250),
            ("1500us", 1),
        ] {
            assert_eq!(parse(json!(text)).unwrap().as_millis(), millis, "{text}");
        }
    }

    #[test]
    fn refuses_what_is_not_a_duration_or_out_of_range() {
        for raw in [
            json!(5),
            json!("5"),
            json!("-5s"),
            json!("5 s"),
            json!("s"),
            json!("5x"),
            json!("1..5s"),
            json!(""),
            json!("--health-cmd"),
            json!("99999999999999999999999h"),
            json!("25h"),
            json!(null),
        ] {
            match parse(raw.clone()) {
                Err(Error::Invalid { field, .. }) => assert_eq!(field, "interval", "{raw}"),
                other => panic!("{raw} gave {other:?}"),
            }
        }
    }

    #[test]
    fn writes_what_the_cli_takes() {
        assert_eq!(go_duration(Duration::from_secs(5)), "5s");
        assert_eq!(go_duration(Duration::from_millis(1500)), "1500ms");
        assert_eq!(go_duration(Duration::from_micros(10)), "1ms");
    }
}
