//! The soak's clients: each owns its services (`c<i>-s<j>`), so each
//! service's acknowledged history is sequential, and creates, replaces,
//! scales (0..3), deletes and reads them at random. Every answer is checked
//! against the contract and folded into the service's model.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use crate::connector::Outcome;
use crate::invariants::{check_answer, served_rollback};
use crate::model::{definition, describe_all, service_name, version_of, Live, State};
use crate::storm::Storm;
use crate::support::app::Reply;
use crate::support::rng::Rng;

pub const CLIENTS: usize = 8;
pub const SERVICES_PER_CLIENT: usize = 4;
const MAX_REPLICAS: u64 = 3;

#[derive(Clone, Copy, Debug)]
enum Op {
    Create,
    Replace,
    Scale(u32),
    Delete,
    Read,
    Status,
    List,
}

impl Op {
    fn kind(self) -> &'static str {
        match self {
            Op::Create => "create",
            Op::Replace => "replace",
            Op::Scale(_) => "scale",
            Op::Delete => "delete",
            Op::Read => "read",
            Op::Status => "status",
            Op::List => "list",
        }
    }
}

/// Runs client `index` until the storm stops.
pub async fn run(storm: Arc<Storm>, index: usize, mut rng: Rng) {
    let names: Vec<String> = (0..SERVICES_PER_CLIENT)
        .map(|j| service_name(index, j))
        .collect();
    while !storm.stopping() {
        {
            let _turn = storm.gate.read().await;
            if storm.stopping() {
                break;
            }
            let name = &names[rng.below(names.len() as u64) as usize];
            operate(&storm, name, &mut rng).await;
        }
        // 0.5-2.5 s between requests, about 5 a second from the eight:
        // busier than an autoscaler, and what this 2-core host's engine can
        // catch up with. The writes made during an outage all need docker
        // once it answers again; at 16 requests a second, that backlog
        // alone (some 20 `docker run` and as many stops and removals) took
        // the engine 4-5 s, which left the 5 s convergence bound measuring
        // the engine rather than the connector.
        tokio::time::sleep(Duration::from_millis(500 + rng.below(2000))).await;
    }
}

fn pick(rng: &mut Rng, exists: bool) -> Op {
    let roll = rng.below(100);
    if exists {
        match roll {
            0..=4 => Op::Create,
            5..=29 => Op::Replace,
            30..=64 => Op::Scale(rng.below(MAX_REPLICAS + 1) as u32),
            65..=71 => Op::Delete,
            72..=89 => Op::Read,
            90..=96 => Op::Status,
            _ => Op::List,
        }
    } else {
        match roll {
            0..=54 => Op::Create,
            55..=69 => Op::Replace,
            70..=79 => Op::Scale(rng.below(MAX_REPLICAS + 1) as u32),
            80..=84 => Op::Delete,
            _ => Op::Read,
        }
    }
}

/// What a write would make of each state, if it lands.
fn transition(op: Op, version: u32) -> impl Fn(State) -> Vec<State> {
    move |state: State| match (op, state) {
        (Op::Create, None) => vec![Some(Live {
            version,
            desired: 0,
        })],
        (Op::Create, Some(_)) => vec![state],
        (Op::Replace, _) => vec![Some(Live {
            version,
            desired: state.map_or(0, |s| s.desired),
        })],
        (Op::Scale(n), Some(live)) => vec![Some(Live { desired: n, ..live })],
        (Op::Scale(_), None) => vec![None],
        // The count 0 is recorded first, then the containers go, then the
        // definition: cut short, either of the first two may be all.
        (Op::Delete, Some(live)) => vec![Some(Live { desired: 0, ..live }), None],
        (Op::Delete, None) => vec![None],
        _ => vec![state],
    }
}

/// Before the warm-up, brings each of client `index`'s services to the
/// size it keeps at steady state: created, then replaced (at count 0, so
/// nothing rolls) until its earlier definitions and its history of
/// changes are full, so that the connector's memory measured later is not
/// those bounded lists filling up.
pub async fn prefill(storm: Arc<Storm>, index: usize, mut rng: Rng) {
    for service in 0..SERVICES_PER_CLIENT {
        let name = service_name(index, service);
        operate_with(&storm, &name, &mut rng, Some(Op::Create)).await;
        for _ in 0..PREFILL_REPLACES {
            operate_with(&storm, &name, &mut rng, Some(Op::Replace)).await;
        }
    }
}

/// More than the 50 changes and 5 earlier definitions a service keeps.
const PREFILL_REPLACES: usize = 55;

async fn operate(storm: &Storm, name: &str, rng: &mut Rng) {
    operate_with(storm, name, rng, None).await;
}

async fn operate_with(storm: &Storm, name: &str, rng: &mut Rng, forced: Option<Op>) {
    let model = storm.models.get(name);
    let (op, version, next) = {
        let mut m = model.lock().unwrap();
        let exists = m.possible.iter().any(Option::is_some);
        let op = forced.unwrap_or_else(|| pick(rng, exists));
        let version = m.next_version;
        if matches!(op, Op::Create | Op::Replace) {
            m.next_version += 1;
        }
        let next = m.after(transition(op, version));
        if !matches!(op, Op::Read | Op::Status | Op::List) {
            m.pending = next.clone();
        }
        (op, version, next)
    };
    // Whether the write changes every state it may start from: only such a
    // write must be refused on a full disk.
    let changes = {
        let m = model.lock().unwrap();
        m.possible
            .iter()
            .all(|s| !transition(op, version)(*s).contains(s))
    };
    let path = format!("/service/{name}");
    let (method, path, body) = match op {
        Op::Create => (
            "POST",
            "/service".to_owned(),
            Some(definition(name, version)),
        ),
        Op::Replace => ("PUT", path, Some(definition(name, version))),
        Op::Scale(n) => (
            "POST",
            format!("{path}/scale"),
            Some(json!({"number": n, "reason": "soak"})),
        ),
        Op::Delete => ("DELETE", path, None),
        Op::Read => ("GET", path, None),
        Op::Status => ("GET", format!("{path}/status"), None),
        Op::List => ("GET", "/service".to_owned(), None),
    };
    let full_before = storm.disk_is_full();
    let outcome = storm.connector.send(method, &path, body.as_ref()).await;
    let full_throughout = full_before && storm.disk_is_full();
    let reply = match outcome {
        Outcome::Answered(reply) => reply,
        Outcome::Lost(why) => {
            storm.figures.operation(op.kind(), "lost");
            if why.starts_with("refused") {
                storm.violations.add(
                    "availability",
                    format!("{method} {path}: the connector stayed unreachable: {why}"),
                );
            }
            let mut m = model.lock().unwrap();
            if matches!(op, Op::Read | Op::Status | Op::List) {
                return;
            }
            storm.figures.write_in_doubt();
            m.doubt(next);
            return;
        }
    };
    storm
        .figures
        .operation(op.kind(), &reply.status.to_string());
    check_answer(&storm.violations, &storm.doc, method, &path, &reply);
    if full_throughout {
        check_full_disk(storm, op, changes, method, &path, &reply);
    }
    if let Some(version) = learn(storm, name, op, version, next, &reply) {
        // An earlier definition served: fine if the connector went back to
        // it by itself and its history says so.
        let reason = served_rollback(&storm.connector, &storm.doc, &storm.violations, name).await;
        let mut m = model.lock().unwrap();
        match reason {
            Some(reason) if m.rolled_back(version) => storm.figures.rollback(&reason),
            _ => storm.violations.add(
                "acknowledged writes",
                format!(
                    "{name}: serves version {version}, the acknowledged writes say {} and its history shows no rollback by the connector",
                    describe_all(&m.possible)
                ),
            ),
        }
    }
}

/// `full disk`: a write that changes something is refused with a 5xx
/// naming the cause; a read answers as always.
fn check_full_disk(storm: &Storm, op: Op, changes: bool, method: &str, path: &str, reply: &Reply) {
    let is_read = matches!(op, Op::Read | Op::Status | Op::List);
    if is_read {
        if reply.status >= 500 {
            storm.violations.add(
                "full disk",
                format!(
                    "{method} {path} -> {} on a full disk: {}",
                    reply.status, reply.body
                ),
            );
        }
        return;
    }
    match reply.status {
        // A write that changes nothing needs no space.
        _ if !changes => {}
        500 => {
            storm.figures.full_disk_write(true);
            let error = reply.body["error"].as_str().unwrap_or_default();
            if !error.contains("No space left on device") {
                storm.violations.add(
                    "full disk",
                    format!(
                        "{method} {path} -> 500 on a full disk, not naming the cause: {}",
                        reply.body
                    ),
                );
            }
        }
        // The write landed (a docker error may follow it): the connector
        // found space, which its own failed fold of the journal frees.
        200..=299 | 502..=504 => storm.figures.full_disk_write(false),
        _ => {}
    }
}

/// Folds the answer into the service's model; an answer no possible state
/// explains breaks `acknowledged writes`, except a read of an earlier
/// version, returned for the caller to look up in the history.
fn learn(
    storm: &Storm,
    name: &str,
    op: Op,
    version: u32,
    next: Vec<State>,
    reply: &Reply,
) -> Option<u32> {
    let mut m = storm.models.get(name).lock().unwrap();
    let before = m.possible.clone();
    let contradiction = |what: &str| {
        storm.violations.add(
            "acknowledged writes",
            format!(
                "{name}: {} answered {} ({what}), the acknowledged writes say {}",
                op.kind(),
                reply.status,
                describe_all(&before)
            ),
        );
    };
    let status = reply.status;
    match op {
        Op::Read => match status {
            200 => {
                let served = version_of(name, &reply.body);
                if !m.narrow(|s| s.is_some_and(|l| Some(l.version) == served)) {
                    match served {
                        Some(v) if m.earlier.contains(&v) => return Some(v),
                        _ => contradiction(&format!("serves version {served:?}")),
                    }
                }
            }
            404 if !m.narrow(Option::is_none) => contradiction("absent"),
            _ => {}
        },
        Op::Status => match status {
            200 => {
                let desired = reply.body["desired_resources"].as_u64();
                if !m.narrow(|s| s.is_some_and(|l| Some(u64::from(l.desired)) == desired)) {
                    contradiction(&format!("desired {desired:?}"));
                }
            }
            404 if !m.narrow(Option::is_none) => contradiction("absent"),
            _ => {}
        },
        Op::List => {}
        Op::Create => match status {
            201 => {
                if !m.narrow(Option::is_none) {
                    contradiction("created, so it was absent");
                }
                m.settle(vec![Some(Live {
                    version,
                    desired: 0,
                })]);
            }
            409 => {
                if !m.narrow(Option::is_some) {
                    contradiction("exists");
                }
                m.pending.clear();
            }
            500..=599 => doubt(storm, &mut m, next),
            _ => m.pending.clear(),
        },
        Op::Replace => match status {
            200 | 201 => {
                let existed = status == 200;
                if !m.narrow(|s| s.is_some() == existed) {
                    contradiction(if existed { "replaced" } else { "created" });
                }
                let after = m.after(transition(Op::Replace, version));
                m.settle(after);
            }
            500..=599 => doubt(storm, &mut m, next),
            _ => m.pending.clear(),
        },
        Op::Scale(n) => match status {
            // The count is recorded first, and stays even when the answer
            // is a docker error.
            200 | 502..=504 => {
                if !m.narrow(Option::is_some) {
                    contradiction("scaled");
                }
                let after = m.after(transition(Op::Scale(n), 0));
                m.settle(after);
            }
            404 => {
                if !m.narrow(Option::is_none) {
                    contradiction("absent");
                }
                m.pending.clear();
            }
            500..=599 => doubt(storm, &mut m, next),
            _ => m.pending.clear(),
        },
        Op::Delete => match status {
            204 => m.settle(vec![None]),
            404 => {
                if !m.narrow(Option::is_none) {
                    contradiction("absent");
                }
                m.pending.clear();
            }
            500..=599 => doubt(storm, &mut m, next),
            _ => m.pending.clear(),
        },
    }
    None
}

fn doubt(storm: &Storm, m: &mut crate::model::ServiceModel, next: Vec<State>) {
    storm.figures.write_in_doubt();
    m.doubt(next);
}
