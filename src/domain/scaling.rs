//! The `scaling` key of a definition: the bounds of its desired count.

use serde_json::Value;

use super::json_type::json_type;
use crate::error::Error;

/// The desired counts a service may be scaled to: from `min` to `max`,
/// both included. A scale outside them is refused; they never scale the
/// service by themselves (see [`ScalingBounds::check`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScalingBounds {
    min: u32,
    max: Option<u32>,
}

/// Which bound a count broke, and the bound's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BrokenBound {
    pub key: &'static str,
    pub value: u32,
}

impl std::fmt::Display for BrokenBound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let side = if self.key == "scaling.min" {
            "below"
        } else {
            "above"
        };
        write!(f, "{side} {} ({})", self.key, self.value)
    }
}

impl ScalingBounds {
    /// Parses `{"min": m, "max": M}`; either may be left out, and `min`
    /// may not exceed `max`.
    ///
    /// # Errors
    /// [`Error::Invalid`] naming `scaling`, `scaling.min`, `scaling.max`
    /// or an unknown `scaling.<key>`.
    pub fn parse(raw: &Value) -> Result<Self, Error> {
        let Value::Object(fields) = raw else {
            return Err(Error::invalid(
                "scaling",
                format!(
                    "must be an object like {{\"min\": 1, \"max\": 10}}, not {}",
                    json_type(raw)
                ),
            ));
        };
        if let Some(unknown) = fields
            .keys()
            .find(|key| !["min", "max"].contains(&key.as_str()))
        {
            return Err(Error::invalid(
                format!("scaling.{unknown}"),
                "unknown field; the fields are min and max",
            ));
        }
        let count = |key: &str| -> Result<Option<u32>, Error> {
            match fields.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(value) => value
                    .as_u64()
                    .and_then(|n| u32::try_from(n).ok())
                    .map(Some)
                    .ok_or_else(|| {
                        Error::invalid(
                            format!("scaling.{key}"),
                            format!("must be a non-negative integer, not {value}"),
                        )
                    }),
            }
        };
        let (min, max) = (count("min")?.unwrap_or(0), count("max")?);
        if let Some(max) = max.filter(|&max| max < min) {
            return Err(Error::invalid(
                "scaling.min",
                format!("{min} is above scaling.max ({max})"),
            ));
        }
        Ok(ScalingBounds { min, max })
    }

    /// Whether `count` lies within the bounds; the bound it breaks if not.
    ///
    /// # Errors
    /// The broken bound.
    pub fn check(&self, count: u32) -> Result<(), BrokenBound> {
        if count < self.min {
            return Err(BrokenBound {
                key: "scaling.min",
                value: self.min,
            });
        }
        match self.max {
            Some(max) if count > max => Err(BrokenBound {
                key: "scaling.max",
                value: max,
            }),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn field_of(raw: Value) -> String {
        match ScalingBounds::parse(&raw) {
            Err(Error::Invalid { field, .. }) => field,
            other => panic!("{raw}: {other:?}"),
        }
    }

    #[test]
    fn takes_either_bound_and_checks_counts_against_both() {
        let bounds = ScalingBounds::parse(&json!({"min": 1, "max": 3})).unwrap();
        assert!(bounds.check(1).is_ok() && bounds.check(3).is_ok());
        assert_eq!(bounds.check(0).unwrap_err().key, "scaling.min");
        let above = bounds.check(4).unwrap_err();
        assert_eq!(above.to_string(), "above scaling.max (3)");
        let open = ScalingBounds::parse(&json!({"min": 2})).unwrap();
        assert!(open.check(u32::MAX).is_ok());
        assert!(ScalingBounds::parse(&json!({})).unwrap().check(0).is_ok());
    }

    #[test]
    fn names_what_is_wrong() {
        assert_eq!(field_of(json!([1, 2])), "scaling");
        assert_eq!(field_of(json!({"min": -1})), "scaling.min");
        assert_eq!(field_of(json!({"max": "3"})), "scaling.max");
        assert_eq!(field_of(json!({"min": 4, "max": 3})), "scaling.min");
        assert_eq!(field_of(json!({"minimum": 1})), "scaling.minimum");
    }
}
