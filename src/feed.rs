//! The connector's change feed: every change of a service's definition,
//! desired count, containers, rollout or problem becomes one [`FeedEvent`],
//! numbered, kept in a bounded ring, and pushed to whoever watches:
//! `GET /events` streams it, a blocking status waits on it.
//!
//! One ring serves every watcher. A watcher is only a cursor, the id of the
//! last event it was given: publishing never waits for a watcher, and a
//! watcher that falls further behind than the ring holds gets a reset
//! instead of the events it missed. So a client that reads nothing costs
//! the connector nothing but its socket, and slows nobody else.
//!
//! Ids grow by one per event. The first id of a lifetime follows the boot
//! time in microseconds since the Unix epoch, so the ids of a later
//! lifetime are above an earlier one's: a client that reconnects to a
//! restarted connector with an old id is told to reset, and a blocking
//! status with an old index answers at once.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value};
use tokio::sync::watch;

/// How many events the ring keeps unless configured otherwise: a few
/// minutes of a busy host's changes, about a megabyte.
pub const DEFAULT_RING_LEN: usize = 4096;

/// What an event says happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    ServiceCreated,
    ServiceReplaced,
    ServiceDeleted,
    /// The desired count changed.
    ServiceScaled,
    ContainerStarted,
    ContainerDied,
    ContainerRemoved,
    ContainerHealth,
    RolloutProgress,
    RolloutOutcome,
    /// A problem appeared, changed or cleared.
    Problem,
}

impl EventKind {
    /// The SSE `event:` name.
    pub fn name(self) -> &'static str {
        match self {
            EventKind::ServiceCreated => "service.created",
            EventKind::ServiceReplaced => "service.replaced",
            EventKind::ServiceDeleted => "service.deleted",
            EventKind::ServiceScaled => "service.scaled",
            EventKind::ContainerStarted => "container.started",
            EventKind::ContainerDied => "container.died",
            EventKind::ContainerRemoved => "container.removed",
            EventKind::ContainerHealth => "container.health",
            EventKind::RolloutProgress => "rollout.progress",
            EventKind::RolloutOutcome => "rollout.outcome",
            EventKind::Problem => "problem",
        }
    }
}

/// One change, as watchers receive it.
#[derive(Debug, Clone, PartialEq)]
pub struct FeedEvent {
    pub id: u64,
    pub kind: EventKind,
    pub service: String,
    /// A JSON object: `service`, `time` (RFC 3339, UTC) and what the kind
    /// tells.
    pub data: Value,
}

/// What a watcher gets next.
#[derive(Debug, PartialEq)]
pub enum Batch {
    /// The events after the watcher's cursor, oldest first.
    Events(Vec<Arc<FeedEvent>>),
    /// Events the watcher had not seen left the ring (or its cursor is of
    /// another lifetime): it must read the state afresh.
    Reset,
}

struct Ring {
    events: VecDeque<Arc<FeedEvent>>,
    /// The id of the newest event, or the lifetime's start before any.
    latest: u64,
    /// The id of the newest event of each service that has had one.
    by_service: HashMap<String, u64>,
}

impl Ring {
    /// A deleted service keeps the index of its deletion, which wakes
    /// whoever waits on it, while that event is in the ring; then it is
    /// forgotten, so names that come and go do not pile up.
    fn forget_if_deleted(&mut self, dropped: &FeedEvent) {
        if dropped.kind == EventKind::ServiceDeleted
            && self.by_service.get(&dropped.service) == Some(&dropped.id)
        {
            self.by_service.remove(&dropped.service);
        }
    }
}

/// The feed: one per connector.
pub struct Feed {
    ring: Mutex<Ring>,
    capacity: usize,
    /// Where the lifetime's ids begin: the index of a service that has had
    /// no event yet.
    start: u64,
    /// The newest id, for watchers to wait on.
    newest: watch::Sender<u64>,
    /// How many streams and blocking requests watch now: a source that
    /// must poll to see changes (Swarm's tasks) polls only while some do.
    watchers: AtomicUsize,
}

impl Feed {
    /// A feed whose ring keeps `capacity` events (at least one).
    pub fn new(capacity: usize) -> Arc<Self> {
        let start = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| u64::try_from(since.as_micros()).unwrap_or(0));
        let (newest, _) = watch::channel(start);
        Arc::new(Feed {
            ring: Mutex::new(Ring {
                events: VecDeque::with_capacity(capacity.max(1)),
                latest: start,
                by_service: HashMap::new(),
            }),
            capacity: capacity.max(1),
            start,
            newest,
            watchers: AtomicUsize::new(0),
        })
    }

    fn ring(&self) -> MutexGuard<'_, Ring> {
        self.ring.lock().expect("the feed's lock is never poisoned")
    }

    /// Records an event of `kind` about `service` with `fields` (a JSON
    /// object, or nothing) and wakes every watcher; returns its id.
    pub fn publish(&self, kind: EventKind, service: &str, fields: Value) -> u64 {
        let mut data = match fields {
            Value::Object(map) => map,
            _ => Map::new(),
        };
        data.insert("service".to_owned(), service.into());
        data.insert(
            "time".to_owned(),
            humantime::format_rfc3339_micros(SystemTime::now())
                .to_string()
                .into(),
        );
        let id = {
            let mut ring = self.ring();
            ring.latest += 1;
            let id = ring.latest;
            if ring.events.len() == self.capacity {
                if let Some(dropped) = ring.events.pop_front() {
                    ring.forget_if_deleted(&dropped);
                }
            }
            ring.events.push_back(Arc::new(FeedEvent {
                id,
                kind,
                service: service.to_owned(),
                data: Value::Object(data),
            }));
            ring.by_service.insert(service.to_owned(), id);
            id
        };
        self.newest.send_replace(id);
        log::debug!("event {id} {}: {service}", kind.name());
        id
    }

    /// The id of the newest event of `service`, or the lifetime's start
    /// when it has had none: what `X-Connector-Index` says.
    pub fn service_index(&self, service: &str) -> u64 {
        self.ring()
            .by_service
            .get(service)
            .copied()
            .unwrap_or(self.start)
    }

    /// Waits until `service` has an event newer than `index`, for at most
    /// `wait`; returns the service's index then.
    pub async fn wait_for_change(
        self: &Arc<Self>,
        service: &str,
        index: u64,
        wait: Duration,
    ) -> u64 {
        let _watching = Watching::new(self);
        let mut newest = self.newest.subscribe();
        let waited = tokio::time::timeout(wait, async {
            loop {
                // Marked seen before the look, so that an event published
                // between the look and the wait still wakes it.
                newest.borrow_and_update();
                let now = self.service_index(service);
                if now > index {
                    return now;
                }
                if newest.changed().await.is_err() {
                    return now;
                }
            }
        })
        .await;
        waited.unwrap_or_else(|_| self.service_index(service))
    }

    /// A cursor after `last_seen` (a `Last-Event-ID`), or after the newest
    /// event when `None`.
    pub fn watch(self: &Arc<Self>, last_seen: Option<u64>) -> Cursor {
        let newest = self.newest.subscribe();
        let last = last_seen.unwrap_or_else(|| self.ring().latest);
        Cursor {
            _watching: Watching::new(self),
            feed: self.clone(),
            last,
            newest,
        }
    }

    /// Whether any stream or blocking request watches now.
    pub fn is_watched(&self) -> bool {
        self.watchers.load(Ordering::Relaxed) > 0
    }

    /// The events after `last`, or a reset when some of them left the ring
    /// or `last` is not an id of this lifetime's.
    fn after(&self, last: u64) -> Batch {
        let ring = self.ring();
        if last < self.start || last > ring.latest {
            return Batch::Reset;
        }
        let oldest_kept = ring.events.front().map_or(ring.latest + 1, |e| e.id);
        if last + 1 < oldest_kept {
            return Batch::Reset;
        }
        let skip = usize::try_from(last + 1 - oldest_kept).unwrap_or(usize::MAX);
        Batch::Events(ring.events.iter().skip(skip).cloned().collect())
    }
}

/// Counts one watcher while it lives.
struct Watching(Arc<Feed>);

impl Watching {
    fn new(feed: &Arc<Feed>) -> Self {
        feed.watchers.fetch_add(1, Ordering::Relaxed);
        Watching(feed.clone())
    }
}

impl Drop for Watching {
    fn drop(&mut self) {
        self.0.watchers.fetch_sub(1, Ordering::Relaxed);
    }
}

/// One watcher's place in the feed.
pub struct Cursor {
    _watching: Watching,
    feed: Arc<Feed>,
    last: u64,
    newest: watch::Receiver<u64>,
}

impl Cursor {
    /// The events after the cursor, waiting for at least one; or a reset.
    pub async fn next(&mut self) -> Batch {
        loop {
            self.newest.borrow_and_update();
            match self.feed.after(self.last) {
                Batch::Events(events) if events.is_empty() => {}
                Batch::Events(events) => {
                    self.last = events.last().map_or(self.last, |e| e.id);
                    return Batch::Events(events);
                }
                Batch::Reset => return Batch::Reset,
            }
            if self.newest.changed().await.is_err() {
                // The feed is gone with the connector: nothing more comes.
                std::future::pending::<()>().await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ids(batch: Batch) -> Vec<u64> {
        match batch {
            Batch::Events(events) => events.iter().map(|e| e.id).collect(),
            Batch::Reset => panic!("a reset"),
        }
    }

    #[tokio::test]
    async fn a_cursor_gets_every_event_after_it_in_order() {
        let feed = Feed::new(8);
        let first = feed.publish(EventKind::ServiceCreated, "web", json!({"revision": 1}));
        assert!(first > feed.start, "ids begin after the lifetime's start");
        let mut from_start = feed.watch(Some(feed.start));
        let mut from_now = feed.watch(None);
        let second = feed.publish(EventKind::ServiceScaled, "web", json!({"to": 2}));
        assert_eq!(second, first + 1);
        assert_eq!(ids(from_start.next().await), [first, second]);
        assert_eq!(ids(from_now.next().await), [second]);
        let event = feed.after(first);
        let Batch::Events(events) = event else {
            panic!()
        };
        assert_eq!(events[0].data["to"], 2);
        assert_eq!(events[0].data["service"], "web");
        assert!(events[0].data["time"].as_str().unwrap().ends_with('Z'));
    }

    #[tokio::test]
    async fn a_cursor_behind_the_ring_or_of_another_lifetime_resets() {
        let feed = Feed::new(4);
        let first = feed.publish(EventKind::ServiceCreated, "web", Value::Null);
        for _ in 0..4 {
            feed.publish(EventKind::ServiceScaled, "web", Value::Null);
        }
        // `first` has left the ring; the one before it is lost too.
        assert_eq!(feed.watch(Some(first - 1)).next().await, Batch::Reset);
        // Everything after `first` is still kept.
        assert_eq!(ids(feed.watch(Some(first)).next().await).len(), 4);
        assert_eq!(feed.watch(Some(1)).next().await, Batch::Reset);
        assert_eq!(feed.watch(Some(u64::MAX)).next().await, Batch::Reset);
    }

    #[tokio::test]
    async fn a_service_index_follows_its_own_events_only() {
        let feed = Feed::new(8);
        assert_eq!(feed.service_index("web"), feed.start);
        let web = feed.publish(EventKind::ServiceCreated, "web", Value::Null);
        feed.publish(EventKind::ServiceCreated, "db", Value::Null);
        assert_eq!(feed.service_index("web"), web);
        let deleted = feed.publish(EventKind::ServiceDeleted, "web", Value::Null);
        assert_eq!(
            feed.service_index("web"),
            deleted,
            "a deletion wakes waiters"
        );
        for _ in 0..8 {
            feed.publish(EventKind::ServiceScaled, "db", Value::Null);
        }
        assert_eq!(
            feed.service_index("web"),
            feed.start,
            "then it is forgotten"
        );
    }

    #[tokio::test]
    async fn a_change_wakes_a_waiter_and_other_services_do_not() {
        let feed = Feed::new(8);
        let index = feed.service_index("web");
        let waiter = {
            let feed = feed.clone();
            tokio::spawn(async move {
                feed.wait_for_change("web", index, Duration::from_secs(10))
                    .await
            })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        feed.publish(EventKind::ServiceCreated, "db", Value::Null);
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiter.is_finished(), "another service's event woke it");
        let id = feed.publish(EventKind::ServiceCreated, "web", Value::Null);
        assert!(feed.is_watched());
        assert_eq!(waiter.await.unwrap(), id);
        assert!(!feed.is_watched());
        // Without a change, the wait runs out and answers the same index.
        let unchanged = feed
            .wait_for_change("web", id, Duration::from_millis(30))
            .await;
        assert_eq!(unchanged, id);
    }
}
