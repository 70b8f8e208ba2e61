//! The connection warden: ends TCP connections that hold a descriptor
//! without delivering a request, so that slow or idle clients can starve
//! neither the other clients nor the docker runner of file descriptors.
//!
//! # Why a scan of our own descriptors
//!
//! Rocket 0.5.2 gives hyper `header_read_timeout(None)` (`serve` in its
//! `server.rs`) and keeps the parts a timeout or a cap could go into to
//! itself: `Rocket::http_server`, its `Listener` trait and the TLS listener
//! are crate-private, so no listener of our own can be put in, and no
//! setting turns hyper's timeout back on (Rocket's `keep_alive` only
//! switches keep-alive on or off). Socket options do not help either:
//! `SO_RCVTIMEO` is ignored by non-blocking sockets, `TCP_USER_TIMEOUT` only
//! bounds unacknowledged *sent* data, and `TCP_DEFER_ACCEPT` waits for the
//! first byte, which a half-sent header has delivered.
//!
//! What a fairing does see is every request head, with its connection's
//! peer address. So the warden pairs two halves:
//!
//! - `on_request` notes the peer (the TCP peer, never `X-Real-IP`) of each
//!   connection that delivered a complete request head;
//! - twice a second a scan walks `/proc/self/fd`, keeps the sockets whose
//!   local port is ours and which have a peer (the accepted connections, not
//!   the listener), notes when it first saw each, and `shutdown(2)`s the ones
//!   the rules below pick. hyper then reads end-of-file, drops the
//!   connection and closes the descriptor itself: the warden never closes a
//!   descriptor, which belongs to tokio.
//!
//! The rules, each counted in
//! `docker_connector_connections_shed_total{reason}`:
//!
//! 1. `header_timeout`: a connection whose peer has delivered no request
//!    head `header_timeout` after the warden first saw it;
//! 2. `per_address`: above `max_connections_per_address` connections from
//!    one IP address, the excess, those without a request first and the
//!    newest first;
//! 3. `reserve`: when the open descriptors come within a reserve (256, or an
//!    eighth of the limit if smaller) of the soft `RLIMIT_NOFILE`, the
//!    connections without a request, oldest first, until they fit again, so
//!    that docker calls (pipes) and the `docker events` child always find
//!    descriptors.
//!
//! A TLS handshake is the same TCP descriptor, and one that never finishes
//! never reaches `on_request`: it is shed the same way.
//!
//! # What it does not cover
//!
//! - A client that completed a request and then trickles a second one on
//!   the kept-alive connection (or just keeps it open: hyper has no idle
//!   timeout for HTTP/1): its peer counts as having delivered a request, so
//!   only the per-address cap bounds it.
//! - The timing is a scan's: a connection is first seen up to half a second
//!   after it was accepted and judged at each scan, so one without a request
//!   is closed between `header_timeout` and `header_timeout` + 1 s after it
//!   was accepted. The per-address cap judges only connections seen at
//!   least a second ago, so that a new connection has time to send its head.
//! - A peer is known by its address and port alone: a new connection from
//!   the very address and port of one that delivered a request less than a
//!   scan ago counts as having delivered one too.
//! - The kernel's accept queue, and connection attempts faster than the
//!   connector accepts them: a firewall or a proxy in front holds those.

use std::cmp::Reverse;
use std::collections::{HashMap, HashSet};
use std::mem::MaybeUninit;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6};
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use rocket::fairing::{Fairing, Info, Kind};
use rocket::{Data, Orbit, Request, Rocket};

use crate::metrics::Metrics;

/// How often the scan runs: a connection is shut down at most two of these
/// after its header timeout. A scan of 5,000 connections costs a few
/// milliseconds of system calls.
const SCAN_INTERVAL: Duration = Duration::from_millis(500);

/// Shutting thousands of connections down at once wakes thousands of hyper
/// tasks at once, which queue ahead of real requests: under 5,000 half-sent
/// requests, status polls took up to 27-35 ms with whole waves and 13 ms
/// with slices (debug build, two cores). So a scan sheds in up to this many
/// slices...
const SHED_SLICES: usize = 25;

/// ...of at least this many connections...
const SHED_SLICE_MIN: usize = 64;

/// ...spread over this much of the interval (the scan runs on a blocking
/// thread of its own, so the pauses hold up nothing else).
const SHED_SPREAD: Duration = Duration::from_millis(250);

/// How long the warden has seen a connection before the per-address cap
/// may shed it: a client gets that long to send its head (and finish a TLS
/// handshake) before it counts as one without a request.
const CAP_GRACE: Duration = Duration::from_secs(1);

/// The most descriptors kept in reserve below the soft limit; an eighth of
/// the limit when that is smaller.
const MAX_RESERVE: u64 = 256;

/// The longest silence between two warnings that the reserve was reached.
const RESERVE_WARNING_EVERY: Duration = Duration::from_secs(60);

/// What the warden enforces.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WardenSettings {
    /// How long a new connection has to deliver its first request's headers.
    pub header_timeout: Duration,
    /// Connections one remote address may hold at once.
    pub per_address: usize,
}

/// The fairing; its scan starts at liftoff and stops at shutdown.
pub(crate) struct Warden {
    settings: WardenSettings,
    requests: Arc<RequestLog>,
}

impl Warden {
    pub fn new(settings: WardenSettings) -> Self {
        Warden {
            settings,
            requests: Arc::new(RequestLog::default()),
        }
    }
}

/// The peers that delivered a request head, shared by `on_request` (every
/// request) and the scan (twice a second).
#[derive(Default)]
struct RequestLog {
    /// Each peer with the scan generation in which it last delivered a
    /// request. A plain mutex: the hot path holds it for one insert, a
    /// hundred nanoseconds or so, and the scan for one pass over the
    /// connections.
    peers: Mutex<HashMap<SocketAddr, u64>>,
    /// Raised by each scan before it walks the descriptors: an entry of the
    /// current generation may belong to a connection the walk missed
    /// (accepted after it), so pruning keeps it.
    generation: AtomicU64,
}

impl RequestLog {
    fn note(&self, peer: SocketAddr) {
        let generation = self.generation.load(Ordering::Relaxed);
        self.peers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(canonical(peer), generation);
    }
}

/// `peer` with an IPv4-mapped IPv6 address written as IPv4, so that a
/// dual-stack listener counts one client as one address.
fn canonical(peer: SocketAddr) -> SocketAddr {
    SocketAddr::new(peer.ip().to_canonical(), peer.port())
}

#[rocket::async_trait]
impl Fairing for Warden {
    fn info(&self) -> Info {
        Info {
            name: "connection warden",
            kind: Kind::Liftoff | Kind::Request,
        }
    }

    async fn on_liftoff(&self, rocket: &Rocket<Orbit>) {
        let metrics = rocket.state::<Arc<Metrics>>().cloned();
        if let Some(metrics) = &metrics {
            for reason in ShedReason::ALL {
                metrics.count_shed_connections(reason.label(), 0);
            }
        }
        let mut scanner = Scanner {
            port: rocket.config().port,
            settings: self.settings,
            requests: self.requests.clone(),
            metrics,
            known: HashMap::new(),
            reserve_warned: None,
        };
        // A thread of its own, not the runtime's blocking pool: a scan every
        // half second would keep a pool thread busy, and pool threads woken
        // in turn stay alive, so the connector's thread count would drift
        // with whatever else used the pool (the soak saw 5 become 6).
        let stop = Arc::new(AtomicBool::new(false));
        let shutdown = rocket.shutdown();
        tokio::spawn({
            let stop = stop.clone();
            async move {
                shutdown.await;
                stop.store(true, Ordering::Relaxed);
            }
        });
        let started = std::thread::Builder::new()
            .name("connection-warden".to_owned())
            .spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let began = Instant::now();
                    // A few thousand system calls: off the request workers.
                    scanner.scan();
                    std::thread::sleep(SCAN_INTERVAL.saturating_sub(began.elapsed()));
                }
            });
        if let Err(e) = started {
            log::error!("connection warden did not start: {e}");
        }
    }

    async fn on_request(&self, request: &mut Request<'_>, _: &mut Data<'_>) {
        if let Some(peer) = request.remote() {
            self.requests.note(peer);
        }
    }
}

/// Why a connection was shed: the `reason` label of the metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum ShedReason {
    HeaderTimeout,
    PerAddress,
    Reserve,
}

impl ShedReason {
    const ALL: [ShedReason; 3] = [
        ShedReason::HeaderTimeout,
        ShedReason::PerAddress,
        ShedReason::Reserve,
    ];

    fn label(self) -> &'static str {
        match self {
            ShedReason::HeaderTimeout => "header_timeout",
            ShedReason::PerAddress => "per_address",
            ShedReason::Reserve => "reserve",
        }
    }
}

/// A descriptor number and the inode of the socket it held when a scan
/// found it: a number closed and reused for another socket is another key.
type Key = (RawFd, u64);

/// An accepted connection as the scans have seen it.
#[derive(Debug, Clone, Copy)]
struct Connection {
    peer: SocketAddr,
    first_seen: Instant,
    /// Shut down already; hyper has yet to close it.
    shed: bool,
}

/// The scan's state, owned by its task and lent to a blocking thread each
/// scan.
struct Scanner {
    port: u16,
    settings: WardenSettings,
    requests: Arc<RequestLog>,
    metrics: Option<Arc<Metrics>>,
    known: HashMap<Key, Connection>,
    reserve_warned: Option<Instant>,
}

impl Scanner {
    /// One pass: find the connections, prune the request log, shed what
    /// the rules pick.
    fn scan(&mut self) {
        let generation = self.requests.generation.fetch_add(1, Ordering::Relaxed) + 1;
        let now = Instant::now();
        let (descriptors, open) = descriptors();
        let mut known = HashMap::with_capacity(self.known.len());
        for fd in descriptors {
            let Some(inode) = socket_inode(fd) else {
                continue;
            };
            let key = (fd, inode);
            if let Some(connection) = self.known.get(&key) {
                known.insert(key, *connection);
            } else if let Some(peer) = self.accepted_peer(fd) {
                known.insert(
                    key,
                    Connection {
                        peer: canonical(peer),
                        first_seen: now,
                        shed: false,
                    },
                );
            }
        }
        self.known = known;

        let connected: HashSet<SocketAddr> = self.known.values().map(|c| c.peer).collect();
        let candidates: Vec<Candidate> = {
            let mut peers = self
                .requests
                .peers
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            // Bounded by the connections: a peer that has gone is dropped,
            // unless it was noted since this scan began (its connection
            // may have been accepted after the walk).
            peers.retain(|peer, noted| *noted >= generation || connected.contains(peer));
            self.known
                .iter()
                .filter(|(_, c)| !c.shed)
                .map(|(key, c)| Candidate {
                    key: *key,
                    ip: c.peer.ip(),
                    first_seen: c.first_seen,
                    judged: now.saturating_duration_since(c.first_seen) >= CAP_GRACE,
                    requested: peers.contains_key(&c.peer),
                })
                .collect()
        };

        let limits = Limits {
            header_timeout: self.settings.header_timeout,
            per_address: self.settings.per_address,
            open,
            budget: descriptor_budget(),
        };
        let picked = plan(&candidates, now, &limits);
        if picked.is_empty() {
            return;
        }
        let mut counts: HashMap<ShedReason, u64> = HashMap::new();
        let slice = picked.len().div_ceil(SHED_SLICES).max(SHED_SLICE_MIN);
        for (i, slice) in picked.chunks(slice).enumerate() {
            if i > 0 {
                std::thread::sleep(SHED_SPREAD / SHED_SLICES as u32);
            }
            for (key, reason) in slice {
                if shut_down(*key) {
                    *counts.entry(*reason).or_default() += 1;
                }
                if let Some(connection) = self.known.get_mut(key) {
                    connection.shed = true;
                }
            }
        }
        let mut summary: Vec<String> = Vec::new();
        for reason in ShedReason::ALL {
            let count = counts.get(&reason).copied().unwrap_or(0);
            if count > 0 {
                summary.push(format!("{count} {}", reason.label()));
                if let Some(metrics) = &self.metrics {
                    metrics.count_shed_connections(reason.label(), count);
                }
            }
        }
        log::debug!(
            "connection warden: shed {} of {} connections; {} descriptors open",
            summary.join(", "),
            candidates.len(),
            open
        );
        if counts.contains_key(&ShedReason::Reserve)
            && self
                .reserve_warned
                .map_or(true, |at| at.elapsed() >= RESERVE_WARNING_EVERY)
        {
            self.reserve_warned = Some(Instant::now());
            log::warn!(
                "connection warden: {open} descriptors open, within the reserve of the limit; \
                 shedding connections that sent no request (raise LimitNOFILE, or put a proxy in front)"
            );
        }
    }

    /// The peer of `fd` if it is a connection accepted on our port.
    fn accepted_peer(&self, fd: RawFd) -> Option<SocketAddr> {
        let local = socket_name(fd, Name::Local)?;
        if local.port() != self.port {
            return None;
        }
        // The listener has no peer.
        socket_name(fd, Name::Peer)
    }
}

/// One connection as the rules see it.
#[derive(Debug, Clone, Copy)]
struct Candidate {
    key: Key,
    ip: IpAddr,
    first_seen: Instant,
    /// Seen [`CAP_GRACE`] ago or longer: the per-address cap sheds only
    /// these.
    judged: bool,
    /// Its peer delivered a request head.
    requested: bool,
}

/// What the rules compare against.
#[derive(Debug, Clone, Copy)]
struct Limits {
    header_timeout: Duration,
    per_address: usize,
    /// Descriptors the process has open.
    open: usize,
    /// The most it should have open: the soft limit less the reserve
    /// (`None`: no limit).
    budget: Option<usize>,
}

/// The connections to shed, each with the first rule that picks it.
fn plan(candidates: &[Candidate], now: Instant, limits: &Limits) -> Vec<(Key, ShedReason)> {
    let mut picked: Vec<(Key, ShedReason)> = Vec::new();
    let mut gone: HashSet<Key> = HashSet::new();

    for candidate in candidates {
        if !candidate.requested
            && now.saturating_duration_since(candidate.first_seen) > limits.header_timeout
        {
            picked.push((candidate.key, ShedReason::HeaderTimeout));
            gone.insert(candidate.key);
        }
    }

    let mut by_address: HashMap<IpAddr, Vec<&Candidate>> = HashMap::new();
    for candidate in candidates.iter().filter(|c| !gone.contains(&c.key)) {
        by_address.entry(candidate.ip).or_default().push(candidate);
    }
    for mut connections in by_address.into_values() {
        let excess = connections.len().saturating_sub(limits.per_address);
        if excess == 0 {
            continue;
        }
        connections.retain(|c| c.judged);
        // Without a request before with one, then the newest first.
        connections.sort_by_key(|c| (c.requested, Reverse(c.first_seen)));
        for candidate in connections.into_iter().take(excess) {
            picked.push((candidate.key, ShedReason::PerAddress));
            gone.insert(candidate.key);
        }
    }

    if let Some(budget) = limits.budget {
        let open = limits.open.saturating_sub(picked.len());
        if open > budget {
            let mut idle: Vec<&Candidate> = candidates
                .iter()
                .filter(|c| !c.requested && !gone.contains(&c.key))
                .collect();
            idle.sort_by_key(|c| c.first_seen);
            for candidate in idle.into_iter().take(open - budget) {
                picked.push((candidate.key, ShedReason::Reserve));
            }
        }
    }
    picked
}

/// The soft descriptor limit less the reserve; `None` when unlimited or
/// unknown.
fn descriptor_budget() -> Option<usize> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes `limit`, which outlives the call.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0
        || limit.rlim_cur == libc::RLIM_INFINITY
    {
        return None;
    }
    let soft = limit.rlim_cur;
    let reserve = MAX_RESERVE.min(soft / 8);
    usize::try_from(soft - reserve).ok()
}

/// The descriptor numbers the process has open, from `/proc/self/fd`, and
/// how many there are (the directory's own descriptor left out). Without
/// `/proc`, every number below the soft limit (at most 65,536) is tried.
fn descriptors() -> (Vec<RawFd>, usize) {
    let own = |entry: std::io::Result<std::fs::DirEntry>| {
        entry.ok()?.file_name().to_str()?.parse::<RawFd>().ok()
    };
    match std::fs::read_dir("/proc/self/fd") {
        Ok(entries) => {
            let found: Vec<RawFd> = entries.filter_map(own).collect();
            // One of them was the directory being read, closed by now.
            let open = found.len().saturating_sub(1);
            (found, open)
        }
        Err(_) => {
            let mut limit = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            // SAFETY: getrlimit only writes `limit`, which outlives the call.
            unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
            let top = RawFd::try_from(limit.rlim_cur.min(1 << 16)).unwrap_or(1 << 16);
            let found: Vec<RawFd> = (0..top).filter(|fd| is_open(*fd)).collect();
            let open = found.len();
            (found, open)
        }
    }
}

fn is_open(fd: RawFd) -> bool {
    // SAFETY: F_GETFD reads the descriptor's flags and touches no memory.
    unsafe { libc::fcntl(fd, libc::F_GETFD) != -1 }
}

/// The inode of the socket `fd` refers to; `None` if it is closed or no
/// socket.
fn socket_inode(fd: RawFd) -> Option<u64> {
    let mut stat = MaybeUninit::<libc::stat>::uninit();
    // SAFETY: fstat writes a whole `stat` into the buffer when it returns 0,
    // and only then is the buffer read.
    let stat = unsafe {
        if libc::fstat(fd, stat.as_mut_ptr()) != 0 {
            return None;
        }
        stat.assume_init()
    };
    #[allow(clippy::unnecessary_cast)] // st_ino is not u64 everywhere
    ((stat.st_mode & libc::S_IFMT) == libc::S_IFSOCK).then_some(stat.st_ino as u64)
}

/// Shuts the connection of `key` down if its descriptor still holds the
/// same socket; whether it did.
///
/// The descriptor is tokio's: hyper may have closed it since the walk, and
/// the number may since hold another object. The inode check catches that;
/// what remains is the moment between this `fstat` and `shutdown`. In this
/// process only accepted connections and the listener are sockets (docker
/// is reached through child processes and their pipes, and `shutdown` of a
/// pipe fails with `ENOTSOCK`), and the listener stays open for the
/// server's life, so its number cannot come free. The worst a reuse in that
/// moment can do is shut down another client's new connection, which that
/// client sees as a dropped connection and retries.
fn shut_down((fd, inode): Key) -> bool {
    if socket_inode(fd) != Some(inode) {
        return false;
    }
    // SAFETY: shutdown changes the socket's state and touches no memory of
    // this process; the descriptor stays open for its owner to close.
    unsafe { libc::shutdown(fd, libc::SHUT_RDWR) == 0 }
}

/// Which end of a socket to ask for.
#[derive(Clone, Copy)]
enum Name {
    Local,
    Peer,
}

/// The address of the local or the peer end of the socket `fd`, if it is an
/// IPv4 or IPv6 one (and, for the peer, connected).
fn socket_name(fd: RawFd, which: Name) -> Option<SocketAddr> {
    let mut storage = MaybeUninit::<libc::sockaddr_storage>::zeroed();
    let mut len = libc::socklen_t::try_from(std::mem::size_of::<libc::sockaddr_storage>())
        .expect("sockaddr_storage fits a socklen_t");
    let address = storage.as_mut_ptr().cast::<libc::sockaddr>();
    // SAFETY: `address` points to a zeroed sockaddr_storage of `len` bytes,
    // which both calls write at most `len` bytes of.
    let rc = unsafe {
        match which {
            Name::Local => libc::getsockname(fd, address, &mut len),
            Name::Peer => libc::getpeername(fd, address, &mut len),
        }
    };
    if rc != 0 {
        return None;
    }
    // SAFETY: all-zero bytes are a valid sockaddr_storage, and the call
    // wrote at most the whole of it.
    let storage = unsafe { storage.assume_init() };
    match libc::c_int::from(storage.ss_family) {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in, and
            // sockaddr_storage is as large and as aligned as any sockaddr.
            let v4 = unsafe { &*std::ptr::from_ref(&storage).cast::<libc::sockaddr_in>() };
            Some(SocketAddr::from((
                Ipv4Addr::from(u32::from_be(v4.sin_addr.s_addr)),
                u16::from_be(v4.sin_port),
            )))
        }
        libc::AF_INET6 => {
            // SAFETY: as above, for sockaddr_in6.
            let v6 = unsafe { &*std::ptr::from_ref(&storage).cast::<libc::sockaddr_in6>() };
            Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(v6.sin6_addr.s6_addr),
                u16::from_be(v6.sin6_port),
                v6.sin6_flowinfo,
                v6.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};

    use super::*;

    const LIMITS: Limits = Limits {
        header_timeout: Duration::from_secs(5),
        per_address: 3,
        open: 100,
        budget: Some(1000),
    };

    /// A connection from `ip`, first seen `age_ms` before `now`.
    fn connection(fd: RawFd, ip: u8, now: Instant, age_ms: u64, requested: bool) -> Candidate {
        Candidate {
            key: (fd, 1000 + u64::try_from(fd).unwrap()),
            ip: IpAddr::V4(Ipv4Addr::new(10, 0, 0, ip)),
            first_seen: now - Duration::from_millis(age_ms),
            judged: age_ms >= 1000,
            requested,
        }
    }

    fn picked(candidates: &[Candidate], now: Instant, limits: &Limits) -> Vec<(RawFd, ShedReason)> {
        let mut picked: Vec<(RawFd, ShedReason)> = plan(candidates, now, limits)
            .into_iter()
            .map(|((fd, _), reason)| (fd, reason))
            .collect();
        picked.sort_by_key(|(fd, _)| *fd);
        picked
    }

    #[test]
    fn only_connections_without_a_request_past_the_header_timeout_are_shed() {
        let now = Instant::now();
        let candidates = [
            connection(10, 1, now, 6000, false),
            connection(11, 2, now, 4000, false),
            connection(12, 3, now, 60_000, true),
        ];
        assert_eq!(
            picked(&candidates, now, &LIMITS),
            [(10, ShedReason::HeaderTimeout)]
        );
    }

    #[test]
    fn the_per_address_cap_sheds_request_less_then_newest_and_spares_unjudged() {
        let now = Instant::now();
        let candidates = [
            connection(10, 1, now, 4000, true),
            connection(11, 1, now, 3000, true),
            connection(12, 1, now, 2000, true),
            connection(13, 1, now, 4500, false),
            connection(14, 1, now, 1500, false),
            // Too new to judge: counted, never shed by the cap.
            connection(15, 1, now, 10, false),
            // Another address, under its cap.
            connection(20, 2, now, 3000, false),
        ];
        // Six from 10.0.0.1 over a cap of 3: the two without a request,
        // then the newest judged one with a request.
        assert_eq!(
            picked(&candidates, now, &LIMITS),
            [
                (12, ShedReason::PerAddress),
                (13, ShedReason::PerAddress),
                (14, ShedReason::PerAddress),
            ]
        );
    }

    #[test]
    fn the_reserve_sheds_the_oldest_without_a_request_until_the_descriptors_fit() {
        let now = Instant::now();
        let candidates = [
            connection(10, 1, now, 3000, false),
            connection(11, 2, now, 500, false),
            connection(12, 3, now, 4000, false),
            connection(13, 4, now, 9000, true),
            connection(14, 5, now, 2000, false),
        ];
        let limits = Limits {
            open: 103,
            budget: Some(100),
            ..LIMITS
        };
        assert_eq!(
            picked(&candidates, now, &limits),
            [
                (10, ShedReason::Reserve),
                (12, ShedReason::Reserve),
                (14, ShedReason::Reserve),
            ]
        );
        // Those shed by the timeout count towards the reserve.
        let limits = Limits {
            header_timeout: Duration::from_millis(3500),
            ..limits
        };
        assert_eq!(
            picked(&candidates, now, &limits),
            [
                (10, ShedReason::Reserve),
                (12, ShedReason::HeaderTimeout),
                (14, ShedReason::Reserve),
            ]
        );
    }

    /// A scanner of `listener`'s port, with the given timeout.
    fn scanner(port: u16, header_timeout: Duration, requests: Arc<RequestLog>) -> Scanner {
        Scanner {
            port,
            settings: WardenSettings {
                header_timeout,
                per_address: 100,
            },
            requests,
            metrics: None,
            known: HashMap::new(),
            reserve_warned: None,
        }
    }

    #[test]
    fn a_scan_shuts_down_the_silent_connection_and_spares_the_one_that_sent_a_request() {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut silent = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let (_silent_server, _) = listener.accept().unwrap();
        let mut talker = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let (_talker_server, _) = listener.accept().unwrap();
        let requests = Arc::new(RequestLog::default());
        requests.note(talker.local_addr().unwrap());

        let mut scanner = scanner(port, Duration::from_millis(50), requests.clone());
        scanner.scan();
        assert_eq!(scanner.known.len(), 2, "the listener is no connection");
        std::thread::sleep(Duration::from_millis(100));
        scanner.scan();

        silent
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut buffer = [0u8; 1];
        assert_eq!(silent.read(&mut buffer).unwrap(), 0, "end of file");
        talker
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let error = talker.read(&mut buffer).unwrap_err();
        assert_eq!(error.kind(), std::io::ErrorKind::WouldBlock, "{error}");
        talker.write_all(b"still open").unwrap();
        assert_eq!(
            requests.peers.lock().unwrap().len(),
            1,
            "the talker is still connected, so remembered"
        );
    }

    #[test]
    fn the_request_log_forgets_peers_that_left() {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(RequestLog::default());
        let mut scanner = scanner(port, Duration::from_secs(5), requests.clone());
        scanner.scan();
        // Noted while the next scan walks, as if from a connection accepted
        // after its walk: that scan keeps it, the one after drops it.
        let next = requests.generation.load(Ordering::Relaxed) + 1;
        requests
            .peers
            .lock()
            .unwrap()
            .insert("127.0.0.1:1".parse().unwrap(), next);
        scanner.scan();
        assert_eq!(requests.peers.lock().unwrap().len(), 1);
        scanner.scan();
        assert_eq!(requests.peers.lock().unwrap().len(), 0);
    }
}
