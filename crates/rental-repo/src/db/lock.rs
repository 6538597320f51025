use std::future::Future;
use std::time::{Duration, Instant};

use rand::Rng;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement, TransactionTrait};
use serde::{Deserialize, Serialize};

use crate::{RepoError, RepoResult};

/// How to wait for a contended lock: exponential backoff with jitter, bounded in tries and in total time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BackoffPolicy {
    /// First wait, in milliseconds; each later wait doubles.
    pub initial_ms: u64,
    /// Longest single wait, in milliseconds.
    pub max_ms: u64,
    /// Most attempts.
    pub max_tries: u32,
    /// Longest total wait, in milliseconds.
    pub overall_ms: u64,
}

impl Default for BackoffPolicy {
    fn default() -> Self {
        Self { initial_ms: 10, max_ms: 5_000, max_tries: 20, overall_ms: 30_000 }
    }
}

impl BackoffPolicy {
    /// The wait before attempt `attempt + 1` (0-based), without jitter.
    pub fn base_delay(&self, attempt: u32) -> Duration {
        let factor = 1u64.checked_shl(attempt.min(63)).unwrap_or(u64::MAX);
        Duration::from_millis(self.initial_ms.saturating_mul(factor).min(self.max_ms))
    }

    /// The wait with "equal jitter": between half and all of the base delay, so that instances which
    /// collided once do not collide again in lockstep.
    pub fn jittered_delay(&self, attempt: u32) -> Duration {
        let base = self.base_delay(attempt).as_millis() as u64;
        let half = base / 2;
        Duration::from_millis(half + rand::rng().random_range(0..=base - half))
    }
}

/// Runs `work` while holding the PostgreSQL transaction-level advisory lock `key`.
///
/// The lock is taken inside a transaction pinned to one pooled connection, so it is released when that
/// transaction ends, even if `work` fails or the process dies. `work` runs on other connections of the pool.
pub(crate) async fn with_advisory_lock<T>(
    conn: &DatabaseConnection,
    key: i64,
    name: &str,
    policy: &BackoffPolicy,
    work: impl Future<Output = RepoResult<T>>,
) -> RepoResult<T> {
    let holder = conn.begin().await?;
    let started = Instant::now();
    let mut attempt = 0;
    loop {
        let row = holder
            .query_one_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT pg_try_advisory_xact_lock($1) AS locked",
                [key.into()],
            ))
            .await?;
        let locked = row.map(|r| r.try_get::<bool>("", "locked")).transpose()?.unwrap_or(false);
        if locked {
            break;
        }
        attempt += 1;
        let delay = policy.jittered_delay(attempt - 1);
        if attempt >= policy.max_tries || started.elapsed() + delay > Duration::from_millis(policy.overall_ms) {
            holder.rollback().await?;
            return Err(RepoError::LockTimeout { name: name.to_owned(), tries: attempt });
        }
        tracing::info!(lock = name, attempt, delay_ms = delay.as_millis() as u64, "lock busy, waiting");
        tokio::time::sleep(delay).await;
    }
    tracing::debug!(lock = name, waited_ms = started.elapsed().as_millis() as u64, "lock acquired");
    let result = work.await;
    holder.commit().await?;
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_cap() {
        let policy = BackoffPolicy::default();
        assert_eq!(policy.base_delay(0), Duration::from_millis(10));
        assert_eq!(policy.base_delay(1), Duration::from_millis(20));
        assert_eq!(policy.base_delay(5), Duration::from_millis(320));
        assert_eq!(policy.base_delay(12), Duration::from_millis(5_000));
        assert_eq!(policy.base_delay(200), Duration::from_millis(5_000));
    }

    #[test]
    fn jitter_stays_between_half_and_full_delay() {
        let policy = BackoffPolicy::default();
        for attempt in 0..15 {
            let base = policy.base_delay(attempt);
            for _ in 0..50 {
                let d = policy.jittered_delay(attempt);
                assert!(d >= base / 2 && d <= base, "{d:?} outside [{:?}, {base:?}]", base / 2);
            }
        }
    }
}
