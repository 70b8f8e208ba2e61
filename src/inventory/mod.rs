//! Which containers this instance has: answered from the [`ContainerIndex`]
//! while docker's event stream keeps it live, and from docker itself
//! otherwise.
//!
//! One task follows `docker events` for the connector's whole life: it
//! restarts the stream when it breaks (with `--since`, so nothing in between
//! is missed, and with backoff), and lists every container when a stream
//! starts, every second a few times after (see [`SETTLING_RELISTS`]), and
//! every [`RELIST_INTERVAL`] after that, which re-seeds the index.
//! While the index is not live, status requests share one listing at a
//! time instead of each starting a `docker ps` of its own.

/// The in-memory picture of the containers that the follower below feeds.
mod index;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::future::{BoxFuture, FutureExt, Shared};

use serde_json::json;

use crate::docker::{
    deadline, Container, ContainerEvent, Engine, EventStream, EventTime, PublishedPorts, Transition,
};
use crate::domain::ServiceName;
use crate::error::Error;
use crate::feed::{EventKind, Feed};
use index::ContainerIndex;
pub(crate) use index::IndexSummary;

/// How often a live index is checked against a full listing anyway: a
/// safety net for events the engine failed to deliver.
const RELIST_INTERVAL: Duration = Duration::from_secs(30);

/// After a stream's first listing, the index is listed again every
/// [`SETTLING_INTERVAL`], [`SETTLING_RELISTS`] times, before
/// [`RELIST_INTERVAL`] takes over. Around a stream's start, events and the
/// first listing can disagree: events are replayed from before the start,
/// and calls of a killed connector or of an outage still land in the
/// engine. What the index learns from an event stands against a listing
/// that began less than the index's listing lag after it (see
/// `index::LISTING_LAG`), and a wrong entry then stands until the next
/// listing. The soak once saw this after a connector restart: a container
/// the engine no longer had stayed in the index as `restarting`, and held
/// its service short of its count for 25 s, until a relisting. Which
/// events put it there is not known. A few quick listings bound such a
/// window to seconds, for a few `docker ps` per stream start.
const SETTLING_RELISTS: u32 = 10;
const SETTLING_INTERVAL: Duration = Duration::from_secs(1);

/// How far back the first stream asks docker to replay events, so that a
/// clock slightly ahead of the engine's misses nothing. Replaying events
/// whose effect the first listing already shows is harmless.
const REPLAY_MARGIN: Duration = Duration::from_secs(2);

/// First and longest wait before retrying a failed stream or listing. The
/// reconciler acts only on a live index, so the longest wait adds to how
/// long services stay unhealed once docker answers again after an outage
/// (the kubelet relists every second; half that here, since a whole
/// backlog of rolls waits behind it). The price during an outage is two
/// `docker events` a second that fail at once, about 15 ms each.
const RETRY_FIRST: Duration = Duration::from_millis(100);
const RETRY_LONGEST: Duration = Duration::from_millis(500);

/// A failure streak is logged as a warning at its first failure and then
/// every this many (about a minute apart at [`RETRY_LONGEST`]).
const FAILURES_PER_WARNING: u32 = 120;

/// How long a new event stream must run before the follower lists: a
/// `docker events` that fails at once (docker down) then costs no listing.
const STREAM_GRACE: Duration = Duration::from_millis(100);

/// A listing in flight, awaited by everyone who needs one meanwhile.
#[derive(Clone)]
struct SharedListing {
    began: Instant,
    result: Shared<BoxFuture<'static, Result<Arc<Vec<Container>>, Error>>>,
}

/// This instance's containers.
pub struct Inventory {
    engine: Arc<dyn Engine>,
    index: ContainerIndex,
    listing: Mutex<Option<SharedListing>>,
    /// When the connector last started or removed a container itself. A
    /// status answered from a listing begun before then could contradict
    /// the answer of that scale.
    last_own_change: Mutex<Instant>,
    /// Woken by every event read and every listing merged into a live
    /// index, so the reconciler can act on them; one
    /// waiter (the reconciler), and a wake-up while it is busy is kept.
    changed: tokio::sync::Notify,
    /// Where the containers' changes go for watchers, as docker tells them.
    feed: Arc<Feed>,
}

impl Inventory {
    pub fn new(engine: Arc<dyn Engine>, feed: Arc<Feed>) -> Arc<Self> {
        Arc::new(Inventory {
            feed,
            engine,
            index: ContainerIndex::new(),
            listing: Mutex::new(None),
            last_own_change: Mutex::new(Instant::now()),
            changed: tokio::sync::Notify::new(),
        })
    }

    /// What the index holds, for `/health`.
    pub fn summary(&self) -> IndexSummary {
        self.index.summary()
    }

    /// The containers of `service`, in any state, for a report: from the
    /// index while it is live, else from the listing in flight (or a new
    /// one begun after the connector's own last change, so a report never
    /// contradicts a scale that has already answered).
    ///
    /// # Errors
    /// The docker failure of the listing.
    pub async fn snapshot(
        self: &Arc<Self>,
        service: &ServiceName,
    ) -> Result<Vec<Container>, Error> {
        if let Some(containers) = self.index.containers(service.as_str()) {
            return Ok(containers);
        }
        let listing = self.fresh_listing().await?;
        Ok(listing
            .iter()
            .filter(|c| c.service == service.as_str())
            .cloned()
            .collect())
    }

    /// The containers of `service` if the index is live; never asks docker.
    pub fn indexed(&self, service: &ServiceName) -> Option<Vec<Container>> {
        self.index.containers(service.as_str())
    }

    /// A shared listing begun after the connector's own last change.
    async fn fresh_listing(self: &Arc<Self>) -> Result<Arc<Vec<Container>>, Error> {
        let not_before = *self.last_own_change.lock().expect("poisoned");
        self.shared_listing(not_before).await
    }

    /// How many containers of each of `services` run, from the index alone:
    /// `None` while it is not live (metrics then leave the counts out rather
    /// than start a listing).
    pub fn running_counts<'a>(
        &self,
        services: impl IntoIterator<Item = &'a ServiceName>,
    ) -> Option<BTreeMap<String, usize>> {
        self.index
            .running_counts(services.into_iter().map(ServiceName::as_str))
    }

    /// The containers of `service`, in any state: from the index while it is
    /// live, else listed now. Not shared with other callers: a caller that
    /// acts on the answer must not get one begun before its own changes.
    ///
    /// # Errors
    /// The docker failure of the listing.
    pub async fn containers(&self, service: &ServiceName) -> Result<Vec<Container>, Error> {
        match self.index.containers(service.as_str()) {
            Some(containers) => Ok(containers),
            None => self.engine.list(service).await,
        }
    }

    /// Waits until an event about one of the instance's containers is read.
    pub async fn changed(&self) {
        self.changed.notified().await;
    }

    /// The host ports of the running containers `ids`: from what the index
    /// learnt, else inspected now (and remembered until they next start or
    /// stop). Asks docker nothing when every one is known.
    ///
    /// # Errors
    /// The docker failure of the inspection.
    pub async fn published_ports(
        &self,
        ids: &[&str],
    ) -> Result<HashMap<String, PublishedPorts>, Error> {
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let mut known = self.index.ports(ids);
        let unknown: Vec<String> = ids
            .iter()
            .filter(|id| !known.contains_key(**id))
            .map(|id| id.to_string())
            .collect();
        if !unknown.is_empty() {
            let inspected = self.engine.published_ports(&unknown).await?;
            self.index.record_ports(inspected.clone());
            known.extend(inspected);
        }
        Ok(known)
    }

    /// Records a container the connector just started.
    pub fn record_started(&self, container: Container) {
        self.index.record_started(container);
        self.note_own_change();
    }

    /// Records containers of `service` the connector just removed.
    pub fn record_removed(&self, service: &ServiceName, ids: &[String]) {
        self.index.record_removed(service.as_str(), ids);
        self.note_own_change();
    }

    fn note_own_change(&self) {
        *self.last_own_change.lock().expect("poisoned") = Instant::now();
    }

    /// Joins the listing in flight if it began at `not_before` or later, or
    /// else waits for it to end and, if it succeeded, starts (or joins) a
    /// newer one: one listing runs at a time. The listing runs in a task of its own, so it
    /// completes (and reaches the index) even if every caller gives up.
    async fn shared_listing(
        self: &Arc<Self>,
        not_before: Instant,
    ) -> Result<Arc<Vec<Container>>, Error> {
        loop {
            let listing = {
                let mut slot = self.listing.lock().expect("listing slot poisoned");
                // A listing whose task died without clearing the slot
                // (a panic) must not answer for ever.
                if slot.as_ref().is_some_and(|l| l.result.peek().is_some()) {
                    *slot = None;
                }
                slot.get_or_insert_with(|| self.spawn_listing()).clone()
            };
            // Another request's listing, or one with no request at all:
            // this request waits for it out of its own docker budget.
            let result = deadline::waiting_on(listing.result).await;
            // A failure answers at once, even from an older listing: a new
            // one would wait for the same failing docker and overrun the
            // caller's deadline.
            if listing.began >= not_before || result.is_err() {
                return result;
            }
        }
    }

    fn spawn_listing(self: &Arc<Self>) -> SharedListing {
        let inventory = self.clone();
        let began = Instant::now();
        let task = tokio::spawn(async move {
            let result = inventory.engine.list_all().await.map(Arc::new);
            match &result {
                Ok(listing) => inventory.index.merge_listing(began, listing),
                Err(_) => inventory.index.listing_failed(),
            }
            *inventory.listing.lock().expect("listing slot poisoned") = None;
            result
        });
        let result = async move {
            task.await
                .unwrap_or_else(|e| Err(Error::DockerFailed(format!("listing stopped: {e}"))))
        }
        .boxed()
        .shared();
        SharedListing { began, result }
    }

    /// A listing once `due` has come, as a future the follower can keep
    /// across events.
    fn listing_at(
        self: &Arc<Self>,
        due: Instant,
    ) -> BoxFuture<'static, Result<Arc<Vec<Container>>, Error>> {
        let inventory = self.clone();
        async move {
            tokio::time::sleep_until(due.into()).await;
            inventory.shared_listing(due).await
        }
        .boxed()
    }

    /// Follows docker's events for as long as the connector runs, restarting
    /// the stream whenever it ends.
    pub async fn follow_events(self: Arc<Self>) {
        let mut retry = Backoff::default();
        let mut since = EventTime::before_now(REPLAY_MARGIN);
        loop {
            let started = Instant::now();
            let stream_began = EventTime::before_now(REPLAY_MARGIN);
            let reason = match self.engine.watch(since).await {
                Ok(mut events) => {
                    self.index.stream_started(started);
                    let level = if retry.failures <= 1 {
                        log::Level::Info
                    } else {
                        log::Level::Debug
                    };
                    log::log!(level, "following docker events since {}", since.since_arg());
                    let reason = self.follow(events.as_mut(), &mut since, &mut retry).await;
                    self.index.stream_ended();
                    // Replay from the last event seen, or, if none came, from
                    // when this stream began.
                    since = since.max(stream_began);
                    reason
                }
                Err(e) => e.to_string(),
            };
            let delay = retry.next_delay();
            log::log!(
                retry.level(),
                "docker events stream ended ({reason}); status asks docker directly \
                 until it runs again; restarting in {} ms (failure {} in a row)",
                delay.as_millis(),
                retry.failures
            );
            tokio::time::sleep(delay).await;
        }
    }

    /// Applies events until the stream ends, listing every container once
    /// the stream has run [`STREAM_GRACE`] and then every
    /// [`RELIST_INTERVAL`]; returns why the stream ended.
    async fn follow(
        self: &Arc<Self>,
        events: &mut dyn EventStream,
        since: &mut EventTime,
        retry: &mut Backoff,
    ) -> String {
        let mut listing_retry = Backoff::default();
        let mut settling = SETTLING_RELISTS;
        // Kept across events, so that no listing's outcome goes unseen.
        let mut listing = self.listing_at(Instant::now() + STREAM_GRACE);
        loop {
            tokio::select! {
                event = events.next() => match event {
                    Ok(event) => {
                        *since = event.time;
                        self.index.apply(&event);
                        // Watchers first: the reconciler may start docker
                        // processes at once, and they would delay the news.
                        // Woken last, it would run first (tokio runs the
                        // task woken last next), so the follower yields
                        // to the woken streams before waking it.
                        self.publish(&event);
                        tokio::task::yield_now().await;
                        self.changed.notify_one();
                    }
                    Err(reason) => return reason,
                },
                listed = &mut listing => {
                    let due = match listed {
                        Ok(_) if self.index.is_live() => {
                            // The reconciler may act on the index (again).
                            self.changed.notify_one();
                            listing_retry = Backoff::default();
                            *retry = Backoff::default();
                            Instant::now() + next_relisting(&mut settling)
                        }
                        // A listing begun before this stream cannot make the
                        // index live; begin another now.
                        Ok(_) => Instant::now(),
                        Err(e) => {
                            let delay = listing_retry.next_delay();
                            log::log!(
                                listing_retry.level(),
                                "listing containers failed ({e}); retrying in {} ms",
                                delay.as_millis()
                            );
                            Instant::now() + delay
                        }
                    };
                    listing = self.listing_at(due);
                }
            }
        }
    }
}

impl Inventory {
    /// Tells watchers what docker said of a container: its start, its
    /// death, its removal or a new health verdict. The rest (created,
    /// killed, paused, renamed) changes nothing a status shows by itself.
    fn publish(&self, event: &ContainerEvent) {
        let container = &event.container;
        let (kind, detail) = match &event.transition {
            Transition::Started => (
                EventKind::ContainerStarted,
                json!({"health": container.health}),
            ),
            Transition::Died => (
                EventKind::ContainerDied,
                json!({"exit_code": container.last_exit_code,
                       "restarts_itself": event.restarts_itself}),
            ),
            Transition::Destroyed => (EventKind::ContainerRemoved, json!({})),
            Transition::HealthChanged(health) => {
                (EventKind::ContainerHealth, json!({"health": health}))
            }
            Transition::Created | Transition::Killed | Transition::Paused | Transition::Renamed => {
                return
            }
        };
        let mut fields = json!({
            "id": container.id,
            "name": container.name,
            "config_hash": container.config_hash,
        });
        if let (Some(fields), Some(detail)) = (fields.as_object_mut(), detail.as_object()) {
            fields.extend(detail.clone());
        }
        self.feed.publish(kind, &container.service, fields);
    }
}

/// How long after a listing that made the index live the next one begins:
/// [`SETTLING_INTERVAL`] while `settling` relistings are left (counting one
/// down), else [`RELIST_INTERVAL`].
fn next_relisting(settling: &mut u32) -> Duration {
    match settling.checked_sub(1) {
        Some(left) => {
            *settling = left;
            SETTLING_INTERVAL
        }
        None => RELIST_INTERVAL,
    }
}

/// Doubling waits between retries, from [`RETRY_FIRST`] to [`RETRY_LONGEST`].
#[derive(Debug, Default)]
struct Backoff {
    last: Option<Duration>,
    /// Failures since the last success.
    failures: u32,
}

impl Backoff {
    fn next_delay(&mut self) -> Duration {
        let delay = self
            .last
            .map_or(RETRY_FIRST, |last| (last * 2).min(RETRY_LONGEST));
        self.last = Some(delay);
        self.failures += 1;
        delay
    }

    /// How loud to report the latest failure: during a long outage, a
    /// warning when it starts and then about once a minute, not at every
    /// retry.
    fn level(&self) -> log::Level {
        if self.failures % FAILURES_PER_WARNING == 1 {
            log::Level::Warn
        } else {
            log::Level::Debug
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_relists_quickly_a_few_times_then_every_30_s() {
        let mut settling = SETTLING_RELISTS;
        let waits: Vec<Duration> = (0..SETTLING_RELISTS + 2)
            .map(|_| next_relisting(&mut settling))
            .collect();
        let mut expected = vec![SETTLING_INTERVAL; SETTLING_RELISTS as usize];
        expected.extend([RELIST_INTERVAL, RELIST_INTERVAL]);
        assert_eq!(waits, expected);
    }

    #[test]
    fn retries_back_off_to_a_ceiling() {
        let mut backoff = Backoff::default();
        let delays: Vec<u128> = (0..9).map(|_| backoff.next_delay().as_millis()).collect();
        assert_eq!(delays, [100, 200, 400, 500, 500, 500, 500, 500, 500]);
    }
}
