//! The JSON the store writes: the snapshot (the whole map) and the journal's
//! lines (the services one write changed), and reading both back. The files
//! are input like a request body, so they are read by the API's rules: a
//! definition is parsed as a create body is and may be no larger than one, no
//! object gives a key twice, and a key the layout does not have is refused,
//! each named with the file.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use super::changes::{Change, CHANGES_KEPT};
use super::service::{Services, StoredService, HISTORY_LEN};
use crate::domain::{ServiceDefinition, ServiceName};

/// Version of the snapshot's layout, written into it so a later layout can
/// be told apart. Version 1 held definitions only, version 2 added desired
/// counts and earlier definitions, version 3 revisions and changes, version
/// 4 the journal's sequence number; all are still read.
pub const FORMAT_VERSION: u64 = 4;

/// The largest definition the file may hold: the largest a request body may
/// be, so no definition loads that the API would have refused.
pub const DEFINITION_LIMIT: usize = 64 * 1024;

/// The keys of a snapshot, and of one service in it.
const SNAPSHOT_KEYS: [&str; 4] = ["format_version", "revision", "journal_seq", "services"];
const SERVICE_KEYS: [&str; 5] = ["definition", "desired", "history", "revision", "changes"];
const RECORD_KEYS: [&str; 3] = ["seq", "revision", "services"];

/// The whole map as it stands after journal record `journal_seq`.
pub struct Snapshot {
    pub revision: u64,
    pub journal_seq: u64,
    pub services: Services,
}

/// One line of the journal: the store's revision after the write, and each
/// service the write changed, as it then stood (`None`: removed).
pub struct Record {
    pub seq: u64,
    pub revision: u64,
    pub services: BTreeMap<ServiceName, Option<StoredService>>,
}

fn entry(stored: &StoredService) -> Value {
    json!({
        "definition": stored.definition,
        "desired": stored.desired,
        "history": stored.history,
        "revision": stored.revision,
        "changes": stored.changes,
    })
}

/// The snapshot's bytes: readable, one key per line.
pub fn render_snapshot(revision: u64, journal_seq: u64, services: &Services) -> Vec<u8> {
    let services: BTreeMap<&ServiceName, Value> = services
        .iter()
        .map(|(name, stored)| (name, entry(stored)))
        .collect();
    let document = json!({
        "format_version": FORMAT_VERSION,
        "revision": revision,
        "journal_seq": journal_seq,
        "services": services,
    });
    let mut bytes = serde_json::to_vec_pretty(&document).expect("definitions serialize");
    bytes.push(b'\n');
    bytes
}

/// A journal line: one JSON object, newline-terminated, so a line cut short
/// by a crash is told from a whole one.
pub fn render_record<'a>(
    seq: u64,
    revision: u64,
    services: impl Iterator<Item = (&'a ServiceName, Option<&'a StoredService>)>,
) -> Vec<u8> {
    let services: Map<String, Value> = services
        .map(|(name, stored)| (name.to_string(), stored.map_or(Value::Null, entry)))
        .collect();
    let record = json!({"seq": seq, "revision": revision, "services": services});
    let mut bytes = serde_json::to_vec(&record).expect("definitions serialize");
    bytes.push(b'\n');
    bytes
}

/// Parses `bytes` as one JSON object, refusing a key given twice.
fn object(bytes: &[u8]) -> Result<Map<String, Value>, String> {
    let value: Value = serde_json::from_slice(bytes).map_err(|e| format!("not valid JSON: {e}"))?;
    if let Some(path) =
        crate::json::first_repeated_key(bytes).map_err(|e| format!("not valid JSON: {e}"))?
    {
        return Err(format!("{path} is given more than once"));
    }
    match value {
        Value::Object(fields) => Ok(fields),
        other => Err(format!("a JSON object is expected, not {other}")),
    }
}

/// Refuses a key of `fields` that `known` does not list.
fn only(fields: &Map<String, Value>, known: &[&str], within: &str) -> Result<(), String> {
    match fields.keys().find(|key| !known.contains(&key.as_str())) {
        Some(key) => Err(format!(
            "unknown key {within}{key:?}; the layout has {}",
            known.join(", ")
        )),
        None => Ok(()),
    }
}

fn count(fields: &Map<String, Value>, key: &str, within: &str) -> Result<Option<u64>, String> {
    match fields.get(key) {
        None => Ok(None),
        Some(value) => value
            .as_u64()
            .map(Some)
            .ok_or_else(|| format!("{within}{key} is {value}, not a non-negative integer")),
    }
}

/// Reads a snapshot of any version.
pub fn parse_snapshot(bytes: &[u8]) -> Result<Snapshot, String> {
    let document = object(bytes)?;
    only(&document, &SNAPSHOT_KEYS, "")?;
    let version = count(&document, "format_version", "")?;
    let Some(version) = version.filter(|v| (1..=FORMAT_VERSION).contains(v)) else {
        return Err(format!(
            "unsupported format_version {version:?}, expected 1 to {FORMAT_VERSION}"
        ));
    };
    let Some(entries) = document.get("services").and_then(Value::as_object) else {
        return Err("\"services\" must be an object".into());
    };
    let revision = match count(&document, "revision", "")? {
        None if version < 3 => 1,
        None => return Err("\"revision\" is missing".into()),
        Some(revision) => revision,
    };
    let journal_seq = count(&document, "journal_seq", "")?.unwrap_or(0);
    let mut services = Services::new();
    for (key, entry) in entries {
        let stored = if version == 1 {
            read_definition(key, entry, "").map(|definition| StoredService {
                desired: None,
                ..StoredService::new(definition, 1)
            })
        } else {
            read_service(key, entry)
        }?;
        check_revision(key, &stored, revision)?;
        services.insert(stored.definition.name().clone(), stored.into());
    }
    Ok(Snapshot {
        revision,
        journal_seq,
        services,
    })
}

/// Reads one journal line (without its newline).
pub fn parse_record(line: &[u8]) -> Result<Record, String> {
    let fields = object(line)?;
    only(&fields, &RECORD_KEYS, "")?;
    let (Some(seq), Some(revision)) = (count(&fields, "seq", "")?, count(&fields, "revision", "")?)
    else {
        return Err("\"seq\" and \"revision\" are required".into());
    };
    let Some(entries) = fields.get("services").and_then(Value::as_object) else {
        return Err("\"services\" must be an object".into());
    };
    let mut services = BTreeMap::new();
    for (key, entry) in entries {
        let name = ServiceName::parse(key).map_err(|e| format!("service {key:?}: {e}"))?;
        let stored = match entry {
            Value::Null => None,
            entry => {
                let stored = read_service(key, entry)?;
                check_revision(key, &stored, revision)?;
                Some(stored)
            }
        };
        services.insert(name, stored);
    }
    Ok(Record {
        seq,
        revision,
        services,
    })
}

fn check_revision(key: &str, stored: &StoredService, revision: u64) -> Result<(), String> {
    if stored.revision > revision {
        return Err(format!(
            "service {key:?}: revision {} is above the store's {revision}",
            stored.revision
        ));
    }
    Ok(())
}

/// Reads a version 2 or later entry: `{"definition": {...}, "desired": N,
/// "history": [{...}, ...], "revision": R, "changes": [...]}` (`history`
/// and `changes` may be absent, `revision` too before version 3).
fn read_service(key: &str, entry: &Value) -> Result<StoredService, String> {
    let Some(fields) = entry.as_object() else {
        return Err(format!("service {key:?}: {entry} is not an object"));
    };
    only(fields, &SERVICE_KEYS, &format!("service {key:?}: "))?;
    let within = format!("service {key:?}: ");
    let definition = read_definition(
        key,
        fields.get("definition").unwrap_or(&Value::Null),
        "definition",
    )?;
    let desired = match fields.get("desired") {
        None | Some(Value::Null) => None,
        Some(value) => Some(
            value
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| format!("{within}desired {value} is not a count"))?,
        ),
    };
    let history = match fields.get("history") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(earlier)) if earlier.len() <= HISTORY_LEN => earlier
            .iter()
            .enumerate()
            .map(|(i, old)| read_definition(key, old, &format!("history[{i}]")))
            .collect::<Result<_, _>>()?,
        Some(Value::Array(earlier)) => {
            return Err(format!(
                "{within}history holds {} definitions, more than the {HISTORY_LEN} kept",
                earlier.len()
            ))
        }
        Some(other) => return Err(format!("{within}history {other} is not a list")),
    };
    let revision = count(fields, "revision", &within)?.unwrap_or(1);
    let mut changes: Vec<Change> = match fields.get("changes") {
        None | Some(Value::Null) => Vec::new(),
        Some(list) => {
            serde_json::from_value(list.clone()).map_err(|e| format!("{within}changes: {e}"))?
        }
    };
    changes.truncate(CHANGES_KEPT);
    Ok(StoredService {
        definition,
        desired,
        history,
        revision,
        changes,
    })
}

/// Reads a definition by the rules of a create body, named `what` in errors.
fn read_definition(key: &str, entry: &Value, what: &str) -> Result<ServiceDefinition, String> {
    let size = serde_json::to_vec(entry).map_or(0, |bytes| bytes.len());
    if size > DEFINITION_LIMIT {
        return Err(format!(
            "service {key:?}: {what} is {size} bytes, over the {} KiB a request body may hold",
            DEFINITION_LIMIT / 1024
        ));
    }
    let definition = ServiceDefinition::from_create_body(entry)
        .map_err(|e| format!("service {key:?}: {what}: {e}"))?;
    if definition.name().as_str() != key {
        return Err(format!("service {key:?} is stored under another name"));
    }
    Ok(definition)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(document: Value) -> String {
        match parse_snapshot(document.to_string().as_bytes()) {
            Err(message) => message,
            Ok(_) => panic!("{document} loaded"),
        }
    }

    fn web(definition: Value) -> Value {
        json!({"format_version": 4, "revision": 1, "services": {
            "web": {"definition": definition, "desired": 1, "revision": 1}}})
    }

    #[test]
    fn holds_the_file_to_the_api_rules() {
        let good = json!({"name": "web", "image": "busybox:1"});
        assert!(parse_snapshot(web(good.clone()).to_string().as_bytes()).is_ok());

        let mut extra = web(good.clone());
        extra["surprise"] = json!(1);
        assert!(refusal(extra).contains("\"surprise\""));

        let mut inner = web(good.clone());
        inner["services"]["web"]["owner"] = json!("me");
        assert!(refusal(inner).contains("\"owner\""));

        let huge = "x".repeat(DEFINITION_LIMIT);
        let message = refusal(web(
            json!({"name": "web", "image": "busybox:1", "environment": {"A": huge}}),
        ));
        assert!(
            message.contains("definition is") && message.contains("64 KiB"),
            "{message}"
        );

        let message = refusal(web(
            json!({"name": "web", "image": "busybox:1", "ports": ["x"]}),
        ));
        assert!(message.contains("service \"web\": definition"), "{message}");

        let twice = br#"{"format_version": 4, "revision": 1, "services": {}, "services": {}}"#;
        let message = parse_snapshot(twice).err().unwrap();
        assert!(
            message.contains("services is given more than once"),
            "{message}"
        );
    }

    #[test]
    fn a_record_reads_back_what_it_wrote() {
        let definition =
            ServiceDefinition::from_create_body(&json!({"name": "web", "image": "busybox:1"}))
                .unwrap();
        let stored = StoredService::new(definition, 7);
        let name = stored.definition.name().clone();
        let gone = ServiceName::parse("gone").unwrap();
        let line = render_record(3, 7, [(&name, Some(&stored)), (&gone, None)].into_iter());
        assert_eq!(line.last(), Some(&b'\n'));
        let record = parse_record(&line[..line.len() - 1]).unwrap();
        assert_eq!((record.seq, record.revision), (3, 7));
        assert_eq!(record.services[&name].as_ref(), Some(&stored));
        assert_eq!(record.services[&gone], None);
    }
}
