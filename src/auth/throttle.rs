//! Slows down guessing: each remote address may present a wrong token
//! `auth_failures_per_minute` times in a row (10 by default), then that
//! many times a minute; beyond that it is answered 429 without its token
//! being looked at, so guessing runs at that pace whatever the attacker's
//! bandwidth. A request without any token guesses nothing and is not
//! counted.
//!
//! The table is bounded: an attacker with many addresses (an IPv6 block
//! holds billions) fills it, and then the entries that have recovered, and
//! after them the longest quiet, make room. IPv6 addresses count by their
//! /64, the block one host or one customer is usually given.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The most addresses remembered at once.
const CAPACITY: usize = 4096;

/// A token bucket per address: how many failures it may still make.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    allowance: f64,
    updated: Instant,
}

/// How fast failures are forgiven.
#[derive(Debug, Clone, Copy)]
struct Rate {
    /// Failures an address may make in a row before it is slowed.
    burst: f64,
    /// Then one more failure is allowed per this long.
    refill: Duration,
}

impl Rate {
    fn refilled(&self, bucket: &Bucket, now: Instant) -> f64 {
        let earned = now.duration_since(bucket.updated).as_secs_f64() / self.refill.as_secs_f64();
        (bucket.allowance + earned).min(self.burst)
    }
}

/// The failed-authentication table.
#[derive(Debug)]
pub struct Throttle {
    rate: Rate,
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
}

impl Throttle {
    /// A table that lets each address fail `per_minute` times in a row, and
    /// then `per_minute` times a minute.
    pub fn new(per_minute: u32) -> Self {
        let per_minute = per_minute.max(1);
        Throttle {
            rate: Rate {
                burst: f64::from(per_minute),
                refill: Duration::from_secs(60) / per_minute,
            },
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// How long `address` must wait before it may try again, if it must.
    pub fn wait_for(&self, address: IpAddr) -> Option<Duration> {
        self.wait_at(address, Instant::now())
    }

    /// Counts one failure of `address`.
    pub fn record_failure(&self, address: IpAddr) {
        self.fail_at(address, Instant::now());
    }

    fn wait_at(&self, address: IpAddr, now: Instant) -> Option<Duration> {
        let buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let allowance = self.rate.refilled(buckets.get(&key(address))?, now);
        (allowance < 1.0).then(|| self.rate.refill.mul_f64(1.0 - allowance))
    }

    fn fail_at(&self, address: IpAddr, now: Instant) {
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let key = key(address);
        if !buckets.contains_key(&key) && buckets.len() >= CAPACITY {
            make_room(&mut buckets, self.rate, now);
        }
        let bucket = buckets.entry(key).or_insert(Bucket {
            allowance: self.rate.burst,
            updated: now,
        });
        bucket.allowance = (self.rate.refilled(bucket, now) - 1.0).max(0.0);
        bucket.updated = now;
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.buckets.lock().unwrap().len()
    }
}

/// Forgets the addresses that have fully recovered; if none has, the one
/// quiet for longest.
fn make_room(buckets: &mut HashMap<IpAddr, Bucket>, rate: Rate, now: Instant) {
    buckets.retain(|_, bucket| rate.refilled(bucket, now) < rate.burst);
    if buckets.len() >= CAPACITY {
        if let Some(oldest) = buckets
            .iter()
            .min_by_key(|(_, bucket)| bucket.updated)
            .map(|(address, _)| *address)
        {
            buckets.remove(&oldest);
        }
    }
}

/// The address as counted: IPv4 whole (an IPv4-mapped IPv6 address as
/// its IPv4), IPv6 by its /64.
fn key(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V4(_) => address,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut segments = v6.segments();
                segments[4..].fill(0);
                IpAddr::V6(segments.into())
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_is_slowed_after_a_burst_and_recovers() {
        const BURST: u32 = 10;
        const REFILL: Duration = Duration::from_secs(6);
        let throttle = Throttle::new(BURST);
        let attacker: IpAddr = "10.0.0.1".parse().unwrap();
        let other: IpAddr = "10.0.0.2".parse().unwrap();
        let start = Instant::now();
        for _ in 0..BURST {
            assert_eq!(throttle.wait_at(attacker, start), None);
            throttle.fail_at(attacker, start);
        }
        let wait = throttle.wait_at(attacker, start).unwrap();
        assert!(wait <= REFILL && wait > REFILL / 2, "{wait:?}");
        assert_eq!(throttle.wait_at(other, start), None);
        // One more attempt per REFILL.
        assert_eq!(throttle.wait_at(attacker, start + REFILL), None);
        throttle.fail_at(attacker, start + REFILL);
        assert!(throttle.wait_at(attacker, start + REFILL).is_some());
    }

    #[test]
    fn ipv6_counts_by_its_64_and_mapped_ipv4_as_ipv4() {
        assert_eq!(
            key("2001:db8:1:2:3:4:5:6".parse().unwrap()),
            "2001:db8:1:2::".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            key("::ffff:10.0.0.1".parse().unwrap()),
            "10.0.0.1".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn the_table_stays_bounded_under_many_addresses() {
        let throttle = Throttle::new(10);
        let now = Instant::now();
        for i in 0..(CAPACITY as u32 * 3) {
            throttle.fail_at(IpAddr::V4(i.into()), now);
        }
        assert_eq!(throttle.len(), CAPACITY);
        // A hammering address keeps its entry while spoofed ones churn.
        let attacker: IpAddr = "192.0.2.1".parse().unwrap();
        for i in 0..(CAPACITY as u32 * 2) {
            throttle.fail_at(attacker, now + Duration::from_millis(u64::from(i)));
            throttle.fail_at(
                IpAddr::V4((i + 1_000_000).into()),
                now + Duration::from_millis(u64::from(i)),
            );
        }
        assert!(throttle
            .wait_at(attacker, now + Duration::from_secs(9))
            .is_some());
        assert!(throttle.len() <= CAPACITY);
    }
}
