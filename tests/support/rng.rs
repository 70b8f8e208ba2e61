//! Reproducible randomness for the randomized tests.

use std::time::{SystemTime, UNIX_EPOCH};

/// SplitMix64: small, no extra dev-dependency, and a printed seed replays a
/// randomized test's choices.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// Seeded from the variable `replay_var` if set (to replay a failure),
    /// else from the clock, so each run tries other choices. Returns the seed
    /// too, for the test to print.
    pub fn from_env_or_clock(replay_var: &str) -> (Self, u64) {
        let seed = std::env::var(replay_var)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
            });
        (Rng(seed), seed)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}
