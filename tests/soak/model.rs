//! What each service should be, as its client's acknowledged writes say:
//! the states the connector may hold for it. One state after an
//! acknowledged write; more after a write whose outcome is unknown (in
//! flight at a kill, cut off by a fault), until an answer or a read tells
//! them apart.

use std::collections::BTreeMap;
use std::sync::Mutex;

use serde_json::{json, Value};

use crate::support::docker::{DEFAULT_COMMAND, TEST_IMAGE};

/// A service that exists: the version of its definition and its desired
/// count.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Live {
    pub version: u32,
    pub desired: u32,
}

/// `None`: the service does not exist.
pub type State = Option<Live>;

/// The command of a version: every third version runs another one, so a
/// replace changes the command as well as the environment now and then.
fn command_of(version: u32) -> Value {
    if version % 3 == 0 {
        json!(["sh", "-c", "trap 'exit 0' TERM; sleep 86401 & wait"])
    } else {
        json!(DEFAULT_COMMAND)
    }
}

/// Padding in every definition: the journal line of any write of a
/// service then needs a fresh page of a full tmpfs (a small line could
/// land in the unused end of the journal's last page, which a full disk
/// still accepts), so a write on a full disk must fail.
fn padding() -> String {
    "p".repeat(4200)
}

/// The definition (POST or PUT body) of `name` at `version`.
pub fn definition(name: &str, version: u32) -> Value {
    json!({
        "name": name,
        "image": TEST_IMAGE,
        "command": command_of(version),
        "environment": {
            "SOAK_SERVICE": name,
            "SOAK_VERSION": version.to_string(),
            "SOAK_PAD": padding(),
        },
    })
}

/// The version a stored or served definition of `name` is, if it is one the
/// soak wrote whole.
pub fn version_of(name: &str, definition: &Value) -> Option<u32> {
    let version: u32 = definition["environment"]["SOAK_VERSION"]
        .as_str()?
        .parse()
        .ok()?;
    let expected = self::definition(name, version);
    let same = ["name", "image", "command", "environment"]
        .iter()
        .all(|key| definition[key] == expected[key]);
    same.then_some(version)
}

/// One service's model.
#[derive(Debug)]
pub struct ServiceModel {
    /// What the connector may hold; never empty.
    pub possible: Vec<State>,
    /// What a write in flight would make of `possible` (besides it).
    pub pending: Vec<State>,
    /// The version the next create or replace sends.
    pub next_version: u32,
    /// Versions the service had: the connector may go back to one by
    /// itself when a roll fails, and says so in the service's history.
    pub earlier: Vec<u32>,
}

impl ServiceModel {
    fn new() -> Self {
        ServiceModel {
            possible: vec![None],
            pending: Vec::new(),
            next_version: 1,
            earlier: Vec::new(),
        }
    }

    /// Every state `possible` may turn into by `transition`.
    pub fn after(&self, transition: impl Fn(State) -> Vec<State>) -> Vec<State> {
        let mut out: Vec<State> = self.possible.iter().flat_map(|s| transition(*s)).collect();
        out.sort();
        out.dedup();
        out
    }

    /// The write landed: `next` is what it made.
    pub fn settle(&mut self, mut next: Vec<State>) {
        next.sort();
        next.dedup();
        self.pending.clear();
        if !next.is_empty() {
            for live in next.iter().flatten() {
                if !self.earlier.contains(&live.version) {
                    self.earlier.push(live.version);
                }
            }
            self.possible = next;
        }
    }

    /// The connector went back by itself to `version`, an earlier one,
    /// keeping the count: true if that fits the model (which then holds
    /// it).
    pub fn rolled_back(&mut self, version: u32) -> bool {
        if !self.earlier.contains(&version) {
            return false;
        }
        let mut back: Vec<State> = self
            .possible
            .iter()
            .flatten()
            .map(|live| Some(Live { version, ..*live }))
            .collect();
        back.sort();
        back.dedup();
        if back.is_empty() {
            return false;
        }
        self.possible = back;
        true
    }

    /// The write may or may not have landed.
    pub fn doubt(&mut self, next: Vec<State>) {
        let mut all = self.possible.clone();
        all.extend(next);
        self.settle(all);
    }

    /// Keeps only the states `fits` accepts; false (and nothing kept back)
    /// if none does.
    pub fn narrow(&mut self, fits: impl Fn(&State) -> bool) -> bool {
        let kept: Vec<State> = self.possible.iter().copied().filter(|s| fits(s)).collect();
        if kept.is_empty() {
            return false;
        }
        self.possible = kept;
        true
    }

    /// Everything the connector may hold right now, a write in flight
    /// included.
    pub fn acceptable(&self) -> Vec<State> {
        let mut all = self.possible.clone();
        all.extend(self.pending.iter().copied());
        all
    }
}

/// Every service of the soak, by name.
pub struct Models(BTreeMap<String, Mutex<ServiceModel>>);

impl Models {
    /// `clients` clients with `per_client` services each, named `c<i>-s<j>`.
    pub fn new(clients: usize, per_client: usize) -> Models {
        let mut map = BTreeMap::new();
        for client in 0..clients {
            for service in 0..per_client {
                map.insert(
                    service_name(client, service),
                    Mutex::new(ServiceModel::new()),
                );
            }
        }
        Models(map)
    }

    pub fn get(&self, name: &str) -> &Mutex<ServiceModel> {
        &self.0[name]
    }

    pub fn names(&self) -> impl Iterator<Item = &String> {
        self.0.keys()
    }

    pub fn contains(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }
}

pub fn service_name(client: usize, service: usize) -> String {
    format!("c{client}-s{service}")
}

/// A state for messages.
pub fn describe(state: &State) -> String {
    match state {
        None => "absent".into(),
        Some(live) => format!("v{} x{}", live.version, live.desired),
    }
}

pub fn describe_all(states: &[State]) -> String {
    let all: Vec<String> = states.iter().map(describe).collect();
    format!("[{}]", all.join(", "))
}
