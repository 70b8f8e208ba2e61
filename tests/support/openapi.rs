//! OpenAPI checking: the document the connector embeds
//! (`src/openapi.json`), and whether a value fits one of its schemas or an
//! answer fits what it documents for the operation.
//!
//! The schemas are checked by a small validator of the OpenAPI 3.0 schema
//! keywords the document uses; a keyword it does not know fails the test, so
//! a constraint added to the document is never silently skipped.

use std::collections::BTreeSet;

use regex::Regex;
use serde_json::{json, Value};

use super::app::Reply;

/// The document as the connector embeds it.
pub const DOCUMENT: &str = include_str!("../../src/openapi.json");

/// The document, parsed.
pub fn document() -> Value {
    serde_json::from_str(DOCUMENT).expect("src/openapi.json is JSON")
}

/// Every operation an OpenAPI document lists, as (METHOD, path template).
pub fn documented_operations(document: &Value) -> BTreeSet<(String, String)> {
    const OPERATION_KEYS: [&str; 8] = [
        "get", "put", "post", "delete", "options", "head", "patch", "trace",
    ];
    let mut operations = BTreeSet::new();
    for (path, item) in document["paths"].as_object().expect("paths") {
        for key in item.as_object().expect("a path item").keys() {
            if OPERATION_KEYS.contains(&key.as_str()) {
                operations.insert((key.to_uppercase(), path.clone()));
            }
        }
    }
    operations
}

/// The operation object of `method path`.
pub fn operation<'a>(doc: &'a Value, method: &str, path: &str) -> &'a Value {
    let found = &doc["paths"][path][method.to_lowercase()];
    assert!(found.is_object(), "{method} {path} is not documented");
    found
}

/// The documented path template `path` (its query, if any, aside) falls
/// under, if any.
pub fn template_of(doc: &Value, path: &str) -> Option<String> {
    let path = path.split('?').next().unwrap_or(path);
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    doc["paths"]
        .as_object()
        .unwrap()
        .keys()
        .find_map(|template| {
            let pattern: Vec<&str> = template.trim_matches('/').split('/').collect();
            let fits = pattern.len() == segments.len()
                && pattern
                    .iter()
                    .zip(&segments)
                    .all(|(want, got)| (want.starts_with('{') && !got.is_empty()) || want == got);
            fits.then(|| template.clone())
        })
}

/// Follows a local `$ref` ("#/components/...") to what it names.
pub fn resolve<'a>(doc: &'a Value, node: &'a Value) -> &'a Value {
    let Some(reference) = node.get("$ref").and_then(Value::as_str) else {
        return node;
    };
    let pointer = reference
        .strip_prefix('#')
        .unwrap_or_else(|| panic!("{reference} is not a local reference"));
    let target = doc
        .pointer(pointer)
        .unwrap_or_else(|| panic!("{reference} points at nothing"));
    resolve(doc, target)
}

/// Schema keywords that only describe.
const ANNOTATIONS: [&str; 3] = ["description", "example", "title"];

/// Adds to `problems` every way `value` breaks the OpenAPI 3.0 `schema`, each
/// as "`at`: reason".
fn check_schema(doc: &Value, schema: &Value, value: &Value, at: &str, problems: &mut Vec<String>) {
    if schema.get("$ref").is_some() {
        // OpenAPI 3.0: a reference's siblings are ignored.
        return check_schema(doc, resolve(doc, schema), value, at, problems);
    }
    let keywords = schema.as_object().expect("a schema is an object");
    if value.is_null() && schema["nullable"] == json!(true) {
        return;
    }
    let mut own = Vec::new();
    let mut fail = |reason: String| own.push(format!("{at}: {reason}"));
    for (keyword, rule) in keywords {
        match keyword.as_str() {
            "nullable" | "properties" => {}
            "type" => {
                let fits = match rule.as_str().expect("type is a string") {
                    "object" => value.is_object(),
                    "array" => value.is_array(),
                    "string" => value.is_string(),
                    "boolean" => value.is_boolean(),
                    "number" => value.is_number(),
                    "integer" => value.is_i64() || value.is_u64(),
                    other => panic!("unknown type {other}"),
                };
                if !fits {
                    fail(format!("{value} is not of type {rule}"));
                }
            }
            "enum" => {
                if !rule.as_array().unwrap().contains(value) {
                    fail(format!("{value} is not one of {rule}"));
                }
            }
            "pattern" => {
                if let Some(text) = value.as_str() {
                    let pattern = Regex::new(rule.as_str().unwrap()).expect("a valid pattern");
                    if !pattern.is_match(text) {
                        fail(format!("{value} does not match {rule}"));
                    }
                }
            }
            "minLength" | "maxLength" => {
                if let Some(text) = value.as_str() {
                    let length = text.chars().count() as u64;
                    let bound = rule.as_u64().unwrap();
                    if (keyword == "minLength" && length < bound)
                        || (keyword == "maxLength" && length > bound)
                    {
                        fail(format!("{value} breaks {keyword} {bound}"));
                    }
                }
            }
            "minimum" | "maximum" => {
                if let Some(number) = value.as_f64() {
                    let bound = rule.as_f64().unwrap();
                    if (keyword == "minimum" && number < bound)
                        || (keyword == "maximum" && number > bound)
                    {
                        fail(format!("{value} breaks {keyword} {bound}"));
                    }
                }
            }
            "required" => {
                if let Some(object) = value.as_object() {
                    for name in rule.as_array().unwrap() {
                        if !object.contains_key(name.as_str().unwrap()) {
                            fail(format!("required {name} is missing"));
                        }
                    }
                }
            }
            "additionalProperties" => {
                if let Some(object) = value.as_object() {
                    let declared = schema.get("properties").and_then(Value::as_object);
                    for (name, item) in object {
                        if declared.is_some_and(|d| d.contains_key(name)) {
                            continue;
                        }
                        match rule {
                            Value::Bool(false) => fail(format!("{name:?} is not allowed")),
                            Value::Bool(true) => {}
                            sub => check_schema(doc, sub, item, &format!("{at}.{name}"), problems),
                        }
                    }
                }
            }
            "items" => {
                if let Some(items) = value.as_array() {
                    for (i, item) in items.iter().enumerate() {
                        check_schema(doc, rule, item, &format!("{at}[{i}]"), problems);
                    }
                }
            }
            "minItems" | "maxItems" => {
                if let Some(items) = value.as_array() {
                    let bound = rule.as_u64().unwrap();
                    let length = items.len() as u64;
                    if (keyword == "minItems" && length < bound)
                        || (keyword == "maxItems" && length > bound)
                    {
                        fail(format!("{value} breaks {keyword} {bound}"));
                    }
                }
            }
            "uniqueItems" => {
                if let Some(items) = value.as_array() {
                    let unique: BTreeSet<String> = items.iter().map(Value::to_string).collect();
                    if rule == &json!(true) && unique.len() != items.len() {
                        fail(format!("{value} repeats an item"));
                    }
                }
            }
            "oneOf" | "anyOf" => {
                let fitting = rule
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|sub| {
                        let mut scratch = Vec::new();
                        check_schema(doc, sub, value, at, &mut scratch);
                        scratch.is_empty()
                    })
                    .count();
                if (keyword == "oneOf" && fitting != 1) || (keyword == "anyOf" && fitting == 0) {
                    fail(format!("{value} fits {fitting} of the {keyword} schemas"));
                }
            }
            annotation if ANNOTATIONS.contains(&annotation) => {}
            unknown => panic!("the contract validator does not know the keyword {unknown:?}"),
        }
    }
    problems.extend(own);
    if let (Some(properties), Some(object)) = (
        schema.get("properties").and_then(Value::as_object),
        value.as_object(),
    ) {
        for (name, sub) in properties {
            if let Some(item) = object.get(name) {
                check_schema(doc, sub, item, &format!("{at}.{name}"), problems);
            }
        }
    }
}

pub fn schema_problems(doc: &Value, schema: &Value, value: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    check_schema(doc, schema, value, "body", &mut problems);
    problems
}

/// The one media type a response documents, and its schema.
fn documented_media(response: &Value) -> Option<(&str, &Value)> {
    let content = response["content"].as_object()?;
    assert_eq!(content.len(), 1, "one media type per response: {response}");
    let (media_type, media) = content.iter().next()?;
    Some((media_type.as_str(), &media["schema"]))
}

/// Every way `reply`, the answer to `method path`, departs from the document:
/// an undocumented status, a missing or invalid documented header, a body
/// of another media type than documented (or present where none is), or a
/// body outside the schema. An answer outside every operation (a 405, a 404
/// for an unknown path) must still be the documented error body.
pub fn answer_problems(doc: &Value, method: &str, path: &str, reply: &Reply) -> Vec<String> {
    let label = format!("{method} {path} -> {}", reply.status);
    let error_schema = json!({"$ref": "#/components/schemas/Error"});
    let documented = template_of(doc, path).and_then(|template| {
        doc["paths"][&template]
            .get(method.to_lowercase())
            .map(|op| (template, op))
    });
    let Some((template, op)) = documented else {
        let mut problems = schema_problems(doc, &error_schema, &reply.body);
        if !reply
            .header("content-type")
            .is_some_and(|t| t.starts_with("application/json"))
        {
            problems.push("not JSON".into());
        }
        return problems
            .into_iter()
            .map(|p| format!("{label} (no operation): {p}"))
            .collect();
    };
    let label = format!("{method} {template} -> {}", reply.status);
    let Some(response) = op["responses"].get(reply.status.to_string()) else {
        return vec![format!("{label}: status not documented ({:?})", reply.body)];
    };
    let response = resolve(doc, response);
    let mut problems = Vec::new();
    for (name, header) in response["headers"].as_object().into_iter().flatten() {
        let header = resolve(doc, header);
        match reply.header(name) {
            None if header["required"] == json!(true) => {
                problems.push(format!("header {name} is missing"));
            }
            None => {}
            Some(value) => problems.extend(schema_problems(doc, &header["schema"], &json!(value))),
        }
    }
    match documented_media(response) {
        Some((media_type, schema)) => {
            if !reply
                .header("content-type")
                .is_some_and(|t| t.starts_with(media_type))
            {
                problems.push(format!(
                    "content type {:?}, documented {media_type}",
                    reply.header("content-type")
                ));
            }
            problems.extend(schema_problems(doc, schema, &reply.body));
        }
        None if !reply.body.is_null() => problems.push("a body where none is documented".into()),
        None => {}
    }
    problems
        .into_iter()
        .map(|p| format!("{label}: {p}"))
        .collect()
}

/// A JSON value read only to find an object that repeats a key: the
/// document is hand-written, and a JSON parser silently keeps the last of
/// two `"409"` responses.
pub struct NoRepeatedKeys;

impl<'de> serde::Deserialize<'de> for NoRepeatedKeys {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(NoRepeatedKeys)
    }
}

impl<'de> serde::de::Visitor<'de> for NoRepeatedKeys {
    type Value = NoRepeatedKeys;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self, A::Error> {
        let mut seen = BTreeSet::new();
        while let Some(key) = map.next_key::<String>()? {
            if !seen.insert(key.clone()) {
                return Err(serde::de::Error::custom(format!("key {key:?} repeated")));
            }
            map.next_value::<NoRepeatedKeys>()?;
        }
        Ok(self)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self, A::Error> {
        while seq.next_element::<NoRepeatedKeys>()?.is_some() {}
        Ok(self)
    }

    fn visit_str<E>(self, _: &str) -> Result<Self, E> {
        Ok(self)
    }

    fn visit_bool<E>(self, _: bool) -> Result<Self, E> {
        Ok(self)
    }

    fn visit_u64<E>(self, _: u64) -> Result<Self, E> {
        Ok(self)
    }

    fn visit_i64<E>(self, _: i64) -> Result<Self, E> {
        Ok(self)
    }

    fn visit_f64<E>(self, _: f64) -> Result<Self, E> {
        Ok(self)
    }

    fn visit_unit<E>(self) -> Result<Self, E> {
        Ok(self)
    }
}
