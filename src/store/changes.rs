//! What a service's history records: each change of its definition or
//! desired count, who made it and why, and how it turned out. Kept in the
//! data file with the service, newest first, at most [`CHANGES_KEPT`].

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::domain::ServiceDefinition;

/// How many changes a service keeps.
pub const CHANGES_KEPT: usize = 50;

/// The outcome of a change whose effect is not known yet.
pub const PENDING: &str = "pending";
/// The outcome of a change that took effect.
pub const DONE: &str = "done";
/// The outcome of a definition change replaced by a later one before its
/// own outcome was known.
const SUPERSEDED: &str = "superseded";

/// Who made a change, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// The client (its User-Agent and address), or `connector` or `swarm`
    /// for what they did by themselves.
    pub caller: String,
    /// What the client said, or why the connector acted.
    pub reason: Option<String>,
}

impl Origin {
    /// A change the connector made by itself, for `reason`.
    pub fn connector(reason: &str) -> Self {
        Origin {
            caller: "connector".to_owned(),
            reason: Some(reason.to_owned()),
        }
    }
}

/// What kind of change an entry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    Created,
    Replaced,
    RolledBack,
    /// The desired count changed.
    Scaled,
}

impl ChangeKind {
    fn is_definition(self) -> bool {
        self != ChangeKind::Scaled
    }
}

/// One entry of a service's history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    /// RFC 3339, UTC.
    pub time: String,
    /// The service's revision the change made.
    pub revision: u64,
    pub kind: ChangeKind,
    /// Counts for a scale; for a definition, its image and config hash
    /// (never its environment, which may hold secrets).
    pub from: Value,
    pub to: Value,
    pub reason: Option<String>,
    pub caller: String,
    /// [`PENDING`], [`DONE`], `failed: <why>`, `rolled back`, or
    /// `superseded`.
    pub outcome: String,
}

impl Change {
    pub fn new(
        kind: ChangeKind,
        revision: u64,
        from: Value,
        to: Value,
        origin: &Origin,
        outcome: &str,
    ) -> Self {
        Change {
            time: humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string(),
            revision,
            kind,
            from,
            to,
            reason: origin.reason.clone(),
            caller: origin.caller.clone(),
            outcome: outcome.to_owned(),
        }
    }
}

/// What a history says of a definition: enough to tell versions apart.
pub fn summary(definition: &ServiceDefinition) -> Value {
    json!({
        "image": definition.image().as_str(),
        "config_hash": definition.config_hash(),
    })
}

/// Adds `change` in front of `changes`, keeping [`CHANGES_KEPT`]. A new
/// definition supersedes the earlier ones still pending: their outcome
/// will never be known apart from it.
pub fn record(changes: &mut Vec<Change>, change: Change) {
    if change.kind.is_definition() {
        for earlier in changes.iter_mut() {
            if earlier.kind.is_definition() && earlier.outcome == PENDING {
                earlier.outcome = SUPERSEDED.to_owned();
            }
        }
    }
    changes.insert(0, change);
    changes.truncate(CHANGES_KEPT);
}

/// Sets the outcome of the pending change that made `revision`; whether
/// there was one.
pub fn settle_revision(changes: &mut [Change], revision: u64, outcome: &str) -> bool {
    match changes
        .iter_mut()
        .find(|c| c.revision == revision && c.outcome == PENDING)
    {
        Some(change) => {
            change.outcome = outcome.to_owned();
            true
        }
        None => false,
    }
}

/// Whether `change` is a definition change to `config_hash` still pending.
fn pending_to(change: &Change, config_hash: &str) -> bool {
    change.kind.is_definition()
        && change.outcome == PENDING
        && change.to.get("config_hash").and_then(Value::as_str) == Some(config_hash)
}

/// Whether a change to the definition with `config_hash` is pending.
pub fn pending_definition(changes: &[Change], config_hash: &str) -> bool {
    changes.iter().any(|c| pending_to(c, config_hash))
}

/// Sets the outcome of the newest pending definition change to the
/// definition with `config_hash`; whether there was one.
pub fn settle_definition(changes: &mut [Change], config_hash: &str, outcome: &str) -> bool {
    match changes.iter_mut().find(|c| pending_to(c, config_hash)) {
        Some(change) => {
            change.outcome = outcome.to_owned();
            true
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(kind: ChangeKind, revision: u64, to: Value) -> Change {
        Change::new(
            kind,
            revision,
            Value::Null,
            to,
            &Origin::connector("test"),
            PENDING,
        )
    }

    #[test]
    fn keeps_the_newest_and_supersedes_pending_definitions() {
        let mut changes = Vec::new();
        for revision in 0..60 {
            record(&mut changes, change(ChangeKind::Scaled, revision, json!(1)));
        }
        assert_eq!(changes.len(), CHANGES_KEPT);
        assert_eq!(changes[0].revision, 59);
        record(
            &mut changes,
            change(ChangeKind::Replaced, 60, json!({"config_hash": "a"})),
        );
        record(
            &mut changes,
            change(ChangeKind::Replaced, 61, json!({"config_hash": "b"})),
        );
        assert_eq!(changes[1].outcome, SUPERSEDED);
        assert_eq!(changes[2].outcome, PENDING, "a scale is not superseded");
        assert!(!settle_definition(&mut changes, "a", DONE));
        assert!(settle_definition(&mut changes, "b", DONE));
        assert_eq!(changes[0].outcome, DONE);
        assert!(settle_revision(&mut changes, 59, "failed: no"));
        assert!(!settle_revision(&mut changes, 59, DONE), "settled once");
        assert_eq!(changes[2].outcome, "failed: no");
    }
}
