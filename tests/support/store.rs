//! Reading the store's files as a restarted connector would: the data
//! file (the snapshot), then each record of its journal
//! (`<data file>.journal`, one JSON line per write) that the snapshot does
//! not already hold. Written apart from the connector's own reader, so a
//! test checks the files, not the code that wrote them.

use std::fs;
use std::path::{Path, PathBuf};

use serde_json::{json, Map, Value};

/// The journal beside `data_file`.
pub fn journal_of(data_file: &Path) -> PathBuf {
    let mut journal = data_file.as_os_str().to_owned();
    journal.push(".journal");
    PathBuf::from(journal)
}

/// `{"revision": R, "services": {name: entry}}` as the files hold them;
/// a last line without its newline (a write cut short) is left out.
pub fn stored_state(data_file: &Path) -> Value {
    let bytes = fs::read(data_file).unwrap_or_else(|e| panic!("{}: {e}", data_file.display()));
    let snapshot: Value = serde_json::from_slice(&bytes).unwrap_or_else(|e| {
        panic!(
            "{} is not JSON: {e}\n{}",
            data_file.display(),
            String::from_utf8_lossy(&bytes)
        )
    });
    let mut revision = snapshot["revision"].as_u64().unwrap_or(0);
    let mut seq = snapshot["journal_seq"].as_u64().unwrap_or(0);
    let mut services: Map<String, Value> = snapshot["services"]
        .as_object()
        .cloned()
        .unwrap_or_else(|| panic!("no services in {snapshot}"));
    let journal = fs::read(journal_of(data_file)).unwrap_or_default();
    let text = String::from_utf8(journal).expect("the journal is UTF-8");
    let whole = text.rfind('\n').map_or("", |end| &text[..end]);
    for line in whole.lines().filter(|line| !line.is_empty()) {
        let record: Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("journal line {line}: {e}"));
        let number = record["seq"].as_u64().expect("a record has a seq");
        if number <= seq {
            continue;
        }
        assert_eq!(number, seq + 1, "journal records follow one another");
        seq = number;
        revision = revision.max(record["revision"].as_u64().expect("and a revision"));
        for (name, entry) in record["services"].as_object().expect("and services") {
            if entry.is_null() {
                services.remove(name);
            } else {
                services.insert(name.clone(), entry.clone());
            }
        }
    }
    json!({"revision": revision, "services": services})
}
