//! The body of `POST /service/<name>/scale`.

use serde_json::Value;

use super::ReplicaCount;
use crate::error::Error;

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
}
