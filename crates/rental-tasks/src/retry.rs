//! Exponential backoff with full jitter: the wait before retry `n` is uniform in `[0, min(cap, base × 2ⁿ⁻¹)]`,
//! so that many jobs failing together (an SMTP outage) spread their retries instead of returning in waves.

use std::time::Duration;

use rand::Rng;
use serde::{Deserialize, Serialize};

/// Backoff and attempts of failed jobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetryPolicy {
    /// The first wait's upper bound, milliseconds.
    pub base_ms: u64,
    /// The largest wait's upper bound, milliseconds.
    pub cap_ms: u64,
}

impl Default for RetryPolicy {
    /// 1 s doubling to 10 minutes: with the default 20 attempts a job keeps retrying for about an hour (the
    /// expected sum of the jittered waits), long enough to ride out an SMTP provider's outage. The old app
    /// retried 10 ms doubling to 5 s, which gives up after well under a minute.
    fn default() -> Self {
        Self { base_ms: 1_000, cap_ms: 600_000 }
    }
}

impl RetryPolicy {
    /// The upper bound of the wait after failed attempt `attempt` (from 1): `min(cap, base × 2^(attempt−1))`.
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let doubled = self.base_ms.saturating_mul(1u64.checked_shl(attempt.saturating_sub(1)).unwrap_or(u64::MAX));
        Duration::from_millis(doubled.min(self.cap_ms))
    }

    /// The wait after failed attempt `attempt`: uniform in `[0, ceiling]` (full jitter).
    pub fn delay(&self, attempt: u32) -> Duration {
        let ceiling = u64::try_from(self.ceiling(attempt).as_millis()).unwrap_or(u64::MAX);
        Duration::from_millis(rand::rng().random_range(0..=ceiling))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ceiling_doubles_up_to_the_cap() {
        let policy = RetryPolicy { base_ms: 10, cap_ms: 5_000 };
        let ceilings: Vec<u64> = (1..=11).map(|n| policy.ceiling(n).as_millis() as u64).collect();
        assert_eq!(ceilings, [10, 20, 40, 80, 160, 320, 640, 1_280, 2_560, 5_000, 5_000]);
        assert_eq!(policy.ceiling(200), Duration::from_millis(5_000), "no overflow however many attempts");
    }

    #[test]
    fn delays_are_jittered_within_the_ceiling() {
        let policy = RetryPolicy { base_ms: 100, cap_ms: 10_000 };
        let delays: Vec<Duration> = (0..200).map(|_| policy.delay(4)).collect();
        assert!(delays.iter().all(|d| *d <= Duration::from_millis(800)));
        let distinct: std::collections::BTreeSet<_> = delays.iter().collect();
        assert!(distinct.len() > 50, "full jitter spreads the retries: {} distinct of 200", distinct.len());
    }
}
