//! Reading a request body as JSON: labelled as JSON, bounded, and strict
//! about keys given twice.

use rocket::data::{Data, ToByteUnit};
use serde_json::Value;

use crate::error::Error;

/// Largest request body accepted; larger ones answer 413.
pub const BODY_LIMIT: u64 = 64 * 1024;

/// Reads a JSON request body of at most [`BODY_LIMIT`] bytes. Its content
/// type was checked by the gate ([`check_content_type`]) before any route
/// ran.
///
/// # Errors
/// [`Error::BodyTooLarge`]; [`Error::MalformedBody`] for an empty body or one
/// that is not JSON; [`Error::Invalid`] naming a key an object has twice.
pub async fn read_json(data: Data<'_>) -> Result<Value, Error> {
    let body = data
        .open(BODY_LIMIT.bytes())
        .into_bytes()
        .await
        .map_err(|e| Error::MalformedBody(format!("could not be read: {e}")))?;
    if !body.is_complete() {
        return Err(Error::BodyTooLarge { limit: BODY_LIMIT });
    }
    parse_json(&body)
}

/// Whether a request body's `Content-Type` says JSON: `application/json`,
/// with any parameters (`; charset=utf-8`), in any case. A web page can make
/// a browser send `text/plain`, a form or multipart body, or none, to
/// another site without asking it first (a "simple request"); a JSON body
/// needs the browser to ask, and this API never says yes.
///
/// # Errors
/// [`Error::UnsupportedMediaType`] with the type given, if any.
pub fn check_content_type(content_type: Option<&str>) -> Result<(), Error> {
    let is_json = content_type.is_some_and(|given| {
        given
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .eq_ignore_ascii_case("application/json")
    });
    if is_json {
        Ok(())
    } else {
        Err(Error::UnsupportedMediaType(content_type.map(str::to_owned)))
    }
}

fn parse_json(body: &[u8]) -> Result<Value, Error> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(Error::MalformedBody(
            "is empty; a JSON object is expected".into(),
        ));
    }
    let value = serde_json::from_slice(body)
        .map_err(|e| Error::MalformedBody(format!("is not valid JSON: {e}")))?;
    reject_duplicate_keys(body)?;
    Ok(value)
}

/// JSON allows an object to repeat a key and serde keeps the last one; a
/// proxy, an audit log or a reviewer may read the first. Refusing the body
/// keeps everyone reading the same request.
fn reject_duplicate_keys(body: &[u8]) -> Result<(), Error> {
    match crate::json::first_repeated_key(body) {
        Ok(None) => Ok(()),
        Ok(Some(path)) => Err(Error::invalid(
            path,
            "is given more than once; give each key once",
        )),
        // The body already parsed once, so this cannot fail otherwise.
        Err(e) => Err(Error::MalformedBody(format!("is not valid JSON: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused_key(body: &str) -> String {
        match parse_json(body.as_bytes()) {
            Err(Error::Invalid { field, .. }) => field,
            other => panic!("{body}: {other:?}"),
        }
    }

    #[test]
    fn a_key_given_twice_is_named_wherever_it_is() {
        assert_eq!(refused_key(r#"{"name": "a", "name": "b"}"#), "name");
        assert_eq!(
            refused_key(r#"{"environment": {"A": "1", "A": "2"}}"#),
            "environment.A"
        );
        assert_eq!(refused_key(r#"[{"x": 1}, {"y": 1, "y": 2}]"#), "[1].y");
    }

    #[test]
    fn only_a_body_labelled_json_is_read() {
        for json in [
            "application/json",
            "application/json; charset=utf-8",
            "Application/JSON;charset=UTF-8",
            " application/json ",
        ] {
            assert!(check_content_type(Some(json)).is_ok(), "{json}");
        }
        for other in [
            None,
            Some(""),
            Some("text/plain"),
            Some("text/plain; charset=utf-8"),
            Some("application/x-www-form-urlencoded"),
            Some("multipart/form-data; boundary=x"),
            Some("application/jsonx"),
            Some("application/json-patch+json"),
            Some("text/json"),
        ] {
            assert!(
                matches!(check_content_type(other), Err(Error::UnsupportedMediaType(given)) if given.as_deref() == other),
                "{other:?}"
            );
        }
    }

    #[test]
    fn distinct_keys_numbers_and_nesting_pass() {
        let value = parse_json(br#"{"a": {"a": 1}, "b": [1.5, -2, 1e400, null, true, "x"]}"#);
        assert!(value.is_ok(), "{value:?}");
    }
}
