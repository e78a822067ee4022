//! What the randomized crash tests (`tests/crash_cocommit.rs`,
//! `tests/crash_worker.rs`) share: how many trials to run, a replayable seed,
//! and a small random number generator for their plans and delays.

use std::time::Duration;

/// Trials per phase and backend: `AIRLOCK_CRASH_TRIALS`, else `default`.
///
/// # Panics
/// If the variable is set to something other than a number.
pub fn trials(default: usize) -> usize {
    std::env::var("AIRLOCK_CRASH_TRIALS")
        .ok()
        .map(|n| n.parse().expect("AIRLOCK_CRASH_TRIALS is a number"))
        .unwrap_or(default)
}

/// The seed of a run's random choices: `AIRLOCK_CRASH_SEED`, else the clock.
/// Tests print it, so a failing run can be replayed.
///
/// # Panics
/// If the variable is set to something other than a number.
pub fn seed() -> u64 {
    std::env::var("AIRLOCK_CRASH_SEED").map_or_else(
        |_| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .expect("a clock after 1970")
                .as_nanos() as u64
        },
        |s| s.parse().expect("AIRLOCK_CRASH_SEED is a number"),
    )
}

/// SplitMix64: enough randomness for trial plans and delays, and replayable.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator that starts from `seed`.
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// A number in `low..=high`.
    pub fn between(&mut self, (low, high): (u64, u64)) -> u64 {
        low + self.next_u64() % (high - low + 1)
    }

    /// A duration in `0..limit`, to the microsecond.
    pub fn duration_below(&mut self, limit: Duration) -> Duration {
        Duration::from_micros(self.below(limit.as_micros() as u64))
    }
}
