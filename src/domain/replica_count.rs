//! The number of containers a scale asks for.

use serde_json::Value;

use super::json_type::json_type;
use crate::error::Error;

/// A validated replica count, from 0 to the configured maximum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ReplicaCount(u32);

impl ReplicaCount {
    /// Parses the `number` field: a non-negative JSON integer or a string of
    /// decimal digits (httpie's `number=3` sends `"3"`), at most `max`.
    ///
    /// # Errors
    /// [`Error::Invalid`] naming `number`.
    pub fn parse(raw: Option<&Value>, max: u32) -> Result<Self, Error> {
        let field = "number";
        let out_of_range = || Error::invalid(field, format!("must be an integer from 0 to {max}"));
        let count = match raw {
            None => return Err(Error::invalid(field, "is required")),
            Some(Value::Number(n)) => n.as_u64().ok_or_else(out_of_range)?,
            Some(Value::String(s)) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
                s.parse::<u64>().map_err(|_| out_of_range())?
            }
            Some(Value::String(s)) => {
                return Err(Error::invalid(
                    field,
                    format!("{s:?} is not a string of decimal digits"),
                ))
            }
            Some(other) => {
                return Err(Error::invalid(
                    field,
                    format!(
                        "must be an integer or a string of digits, not {}",
                        json_type(other)
                    ),
                ))
            }
        };
        u32::try_from(count)
            .ok()
            .filter(|&n| n <= max)
            .map(ReplicaCount)
            .ok_or_else(out_of_range)
    }

    pub fn get(self) -> u32 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn accepts_integers_and_digit_strings_up_to_the_maximum() {
        for (raw, n) in [
            (json!(0), 0),
            (json!(3), 3),
            (json!("3"), 3),
            (json!("007"), 7),
            (json!(100), 100),
        ] {
            assert_eq!(
                ReplicaCount::parse(Some(&raw), 100).unwrap().get(),
                n,
                "{raw}"
            );
        }
    }

    #[test]
    fn rejects_negative_fractional_boolean_huge_hex_and_padded() {
        for raw in [
            json!(-1),
            json!(1.5),
            json!(3.0),
            json!(true),
            json!(101),
            json!("101"),
            json!(u64::MAX),
            json!("99999999999999999999999"),
            json!("0x10"),
            json!(" 3"),
            json!("3 "),
            json!("-1"),
            json!(""),
            json!(null),
            json!([3]),
        ] {
            assert!(ReplicaCount::parse(Some(&raw), 100).is_err(), "{raw}");
        }
        assert!(ReplicaCount::parse(None, 100).is_err());
    }
}
