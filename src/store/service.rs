//! What the store keeps of one service, and the map of them: the types the
//! store, its file format and its journal share.

use std::sync::Arc;

use super::changes::{self, Change, ChangeKind, Origin, DONE, PENDING};
use crate::domain::{ServiceDefinition, ServiceName};

/// What the store keeps of one service.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredService {
    pub definition: ServiceDefinition,
    /// How many containers should run, as the last scale asked. `None` only
    /// for a service read from a version 1 file, which never recorded it: the
    /// reconciler then adopts the number running rather than guess.
    pub desired: Option<u32>,
    /// Earlier definitions, newest first, each with a config hash of its
    /// own, at most [`HISTORY_LEN`]: while a roll of the current definition
    /// fails, containers that die are replaced with the earlier definition
    /// the service still runs, so the old containers keep serving.
    pub history: Vec<ServiceDefinition>,
    /// Changed with every change of the definition or desired count.
    pub revision: u64,
    /// What changed the service, newest first (see [`changes`]).
    pub changes: Vec<Change>,
}

/// How many earlier definitions a service keeps.
pub const HISTORY_LEN: usize = 5;

impl StoredService {
    pub(super) fn new(definition: ServiceDefinition, revision: u64) -> Self {
        StoredService {
            definition,
            desired: Some(0),
            history: Vec::new(),
            revision,
            changes: Vec::new(),
        }
    }

    /// Makes `definition` the current one; the one it replaces goes into
    /// the history if it ran something else. Returns whether it did.
    fn replace(&mut self, definition: ServiceDefinition) -> bool {
        let previous = std::mem::replace(&mut self.definition, definition);
        let (current, before) = (self.definition.config_hash(), previous.config_hash());
        if before == current {
            return false;
        }
        self.history
            .retain(|old| old.config_hash() != current && old.config_hash() != before);
        self.history.insert(0, previous);
        self.history.truncate(HISTORY_LEN);
        true
    }

    /// Makes `definition` current (see [`StoredService::replace`]) at
    /// `revision`, and records that as a change of `kind`; whether it runs
    /// something else. A definition that runs the same is done at once:
    /// no container changes for it.
    pub(super) fn change_definition(
        &mut self,
        definition: ServiceDefinition,
        kind: ChangeKind,
        revision: u64,
        origin: &Origin,
    ) -> bool {
        let from = changes::summary(&self.definition);
        let to = changes::summary(&definition);
        let runs_differently = self.replace(definition);
        self.revision = revision;
        let outcome = if runs_differently { PENDING } else { DONE };
        changes::record(
            &mut self.changes,
            Change::new(kind, revision, from, to, origin, outcome),
        );
        runs_differently
    }
}

/// The map: a persistent ordered map (`imbl`), whose copy shares all its
/// nodes with the original and whose change copies only the path to the
/// entry changed, with each service behind an `Arc`. A writer edits a copy
/// while readers keep the current map, and the copy costs the same with 10
/// services or 2,000; a `BTreeMap` copy would clone every name.
pub type Services = imbl::OrdMap<ServiceName, Arc<StoredService>>;
