//! JSON the connector reads from outside, from a request body or the data
//! file, held to one rule serde does not keep: no object gives a key twice.

use std::cell::RefCell;
use std::collections::HashSet;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

/// The path (`environment.A`, `ports[1]`) of the first key that an object in
/// the JSON document `bytes` gives twice, if any. JSON allows an object to
/// repeat a key and serde keeps the last one, while a proxy, an audit log or
/// a reviewer may read the first: request bodies and the data file alike are
/// refused when they do.
///
/// # Errors
/// The parser's error when `bytes` is not JSON.
pub fn first_repeated_key(bytes: &[u8]) -> Result<Option<String>, serde_json::Error> {
    let duplicate = RefCell::new(None);
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let walked = KeyWalk {
        parent: None,
        step: Step::Root,
        duplicate: &duplicate,
    }
    .deserialize(&mut deserializer);
    match (walked, duplicate.into_inner()) {
        (_, Some(path)) => Ok(Some(path)),
        (Err(e), None) => Err(e),
        (Ok(()), None) => Ok(None),
    }
}

/// Walks a JSON document, recording the path (`environment.A`, `ports[1]`)
/// of the first key an object repeats. Each level knows only its own step and
/// its parent, so a path is spelled out only for a duplicate.
struct KeyWalk<'a> {
    parent: Option<&'a KeyWalk<'a>>,
    step: Step<'a>,
    duplicate: &'a RefCell<Option<String>>,
}

/// How a value is reached from its parent.
#[derive(Clone, Copy)]
enum Step<'a> {
    Root,
    Key(&'a str),
    Index(usize),
}

impl<'a> KeyWalk<'a> {
    fn child(&'a self, step: Step<'a>) -> Self {
        KeyWalk {
            parent: Some(self),
            step,
            duplicate: self.duplicate,
        }
    }

    /// The path of this value's `key`, as error messages name fields.
    fn path_of(&self, key: &str) -> String {
        let mut steps = vec![Step::Key(key)];
        let mut level = Some(self);
        while let Some(walk) = level {
            steps.push(walk.step);
            level = walk.parent;
        }
        let mut path = String::new();
        for step in steps.iter().rev() {
            match step {
                Step::Root => {}
                Step::Key(key) if path.is_empty() => path.push_str(key),
                Step::Key(key) => {
                    path.push('.');
                    path.push_str(key);
                }
                Step::Index(index) => path.push_str(&format!("[{index}]")),
            }
        }
        path
    }
}

impl<'de> DeserializeSeed<'de> for KeyWalk<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for KeyWalk<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }

    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }

    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }

    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut items: A) -> Result<(), A::Error> {
        let mut index = 0;
        while items
            .next_element_seed(self.child(Step::Index(index)))?
            .is_some()
        {
            index += 1;
        }
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut entries: A) -> Result<(), A::Error> {
        let mut seen = HashSet::new();
        while let Some(key) = entries.next_key::<String>()? {
            if seen.contains(&key) {
                *self.duplicate.borrow_mut() = Some(self.path_of(&key));
                return Err(de::Error::custom("duplicate key"));
            }
            entries.next_value_seed(self.child(Step::Key(&key)))?;
            seen.insert(key);
        }
        Ok(())
    }
}
