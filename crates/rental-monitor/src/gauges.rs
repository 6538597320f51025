//! Gauges the embedder fills from other crates: [`PoolGauge`], [`CacheGauge`], [`QueueGauge`], and
//! [`ServiceGauges`] which publishes them to the [`Exporter`].

use std::collections::HashMap;
use std::fmt;
use std::sync::{Mutex, PoisonError};

use metrics::{Counter, Gauge};
use serde::Serialize;

use crate::exporter::Exporter;

/// A database connection pool, filled in by the caller from its pool.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct PoolGauge {
    /// Connections open now (idle plus in use).
    pub size: u32,
    /// Connections lent out.
    pub in_use: u32,
    /// Open connections waiting for work.
    pub idle: u32,
    /// Callers waiting for a connection now.
    pub waiting: u32,
    /// Connections the pool keeps open at minimum.
    pub min_connections: u32,
    /// Connections the pool may open at most.
    pub max_connections: u32,
    /// Connections acquired (and timed) since start.
    pub acquires: u64,
    /// Total time spent waiting for those connections, in seconds.
    pub acquire_wait_secs_total: f64,
    /// Longest wait for a connection since start, in milliseconds.
    pub acquire_wait_max_ms: f64,
}

impl PoolGauge {
    /// Mean wait for a connection, in milliseconds (0 before the first).
    pub fn acquire_wait_mean_ms(&self) -> f64 {
        if self.acquires == 0 { 0.0 } else { self.acquire_wait_secs_total * 1_000.0 / self.acquires as f64 }
    }
}

/// A cache's lookups, per namespace and tier.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CacheGauge {
    /// The cache's name (its namespace), such as `users`.
    pub name: String,
    /// The tier: `local` (in-process) or `shared` (Redis); empty for a cache without tiers.
    pub tier: String,
    /// Lookups answered from the cache since start.
    pub hits: u64,
    /// Lookups that had to load (or ask the next tier) since start.
    pub misses: u64,
    /// Values loaded from the source of truth since start.
    pub loads: u64,
    /// Of those loads, the ones that replaced an entry still served (refresh-ahead) since start.
    pub refreshes: u64,
    /// Entries dropped for size or age since start.
    pub evictions: u64,
    /// Entries held now (approximate).
    pub entries: u64,
}

impl CacheGauge {
    /// `hits / (hits + misses)`, `None` before the first lookup.
    pub fn hit_rate(&self) -> Option<f64> {
        let lookups = self.hits + self.misses;
        (lookups > 0).then(|| self.hits as f64 / lookups as f64)
    }
}

/// The job queue's counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct QueueGauge {
    /// Waiting jobs due now.
    pub depth: u64,
    /// Jobs waiting for their first run.
    pub queued: u64,
    /// Jobs waiting for a retry.
    pub retrying: u64,
    /// Jobs held by workers.
    pub running: u64,
    /// Dead-lettered jobs.
    pub dead: u64,
    /// Seconds the oldest due job has waited.
    pub oldest_due_secs: f64,
}

/// Publishes the gauges above to the exporter. Cloning is not needed: keep one in the state.
pub struct ServiceGauges {
    exporter: Exporter,
    pool: PoolHandles,
    queue: QueueHandles,
    caches: Mutex<HashMap<String, CacheHandles>>,
}

impl fmt::Debug for ServiceGauges {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceGauges").finish_non_exhaustive()
    }
}

struct PoolHandles {
    in_use: Gauge,
    idle: Gauge,
    waiting: Gauge,
    min: Gauge,
    max: Gauge,
    acquires: Counter,
    acquire_wait: Gauge,
}

struct QueueHandles {
    depth: Gauge,
    queued: Gauge,
    retrying: Gauge,
    running: Gauge,
    dead: Gauge,
    oldest: Gauge,
}

struct CacheHandles {
    hits: Counter,
    misses: Counter,
    loads: Counter,
    refreshes: Counter,
    evictions: Counter,
    entries: Gauge,
    hit_ratio: Gauge,
}

impl ServiceGauges {
    /// Registers the pool and queue gauges on `exporter`; cache gauges are registered per cache name
    /// when first published.
    pub fn new(exporter: &Exporter) -> Self {
        let state = |s: &str| [("state", s.to_owned())];
        let jobs = |s: &str| {
            exporter.gauge(
                "rental_jobs",
                "Jobs in the queue by state (every instance's jobs).",
                &[("state", s.to_owned())],
            )
        };
        Self {
            exporter: exporter.clone(),
            pool: PoolHandles {
                in_use: exporter.gauge(
                    "rental_db_pool_connections",
                    "Open database connections by state.",
                    &state("in_use"),
                ),
                idle: exporter.gauge(
                    "rental_db_pool_connections",
                    "Open database connections by state.",
                    &state("idle"),
                ),
                waiting: exporter.gauge("rental_db_pool_waiting", "Callers waiting for a database connection.", &[]),
                min: exporter.gauge("rental_db_pool_min_connections", "Connections the pool keeps open.", &[]),
                max: exporter.gauge("rental_db_pool_max_connections", "Most connections the pool may open.", &[]),
                acquires: exporter.counter(
                    "rental_db_pool_acquires_total",
                    "Database connections acquired and timed.",
                    &[],
                ),
                acquire_wait: exporter.gauge(
                    "rental_db_pool_acquire_wait_seconds_total",
                    "Total time spent waiting for database connections.",
                    &[],
                ),
            },
            queue: QueueHandles {
                depth: exporter.gauge("rental_jobs_due", "Waiting jobs due now: the queue's depth.", &[]),
                queued: jobs("queued"),
                retrying: jobs("retrying"),
                running: jobs("running"),
                dead: jobs("dead"),
                oldest: exporter.gauge(
                    "rental_jobs_oldest_due_seconds",
                    "How long the oldest due job has waited.",
                    &[],
                ),
            },
            caches: Mutex::new(HashMap::new()),
        }
    }

    /// Publishes the pool's figures.
    pub fn set_pool(&self, pool: &PoolGauge) {
        let p = &self.pool;
        p.in_use.set(f64::from(pool.in_use));
        p.idle.set(f64::from(pool.idle));
        p.waiting.set(f64::from(pool.waiting));
        p.min.set(f64::from(pool.min_connections));
        p.max.set(f64::from(pool.max_connections));
        p.acquires.absolute(pool.acquires);
        p.acquire_wait.set(pool.acquire_wait_secs_total);
    }

    /// Publishes the queue's counts.
    pub fn set_queue(&self, queue: &QueueGauge) {
        let q = &self.queue;
        q.depth.set(queue.depth as f64);
        q.queued.set(queue.queued as f64);
        q.retrying.set(queue.retrying as f64);
        q.running.set(queue.running as f64);
        q.dead.set(queue.dead as f64);
        q.oldest.set(queue.oldest_due_secs);
    }

    /// Publishes the caches' counters.
    pub fn set_caches(&self, caches: &[CacheGauge]) {
        let mut handles = self.caches.lock().unwrap_or_else(PoisonError::into_inner);
        for cache in caches {
            let h = handles.entry(format!("{}\u{0}{}", cache.name, cache.tier)).or_insert_with(|| {
                let labels: Vec<(&str, String)> = if cache.tier.is_empty() {
                    vec![("cache", cache.name.clone())]
                } else {
                    vec![("cache", cache.name.clone()), ("tier", cache.tier.clone())]
                };
                let e = &self.exporter;
                CacheHandles {
                    hits: e.counter("rental_cache_hits_total", "Lookups answered from the cache.", &labels),
                    misses: e.counter("rental_cache_misses_total", "Lookups that had to load.", &labels),
                    loads: e.counter("rental_cache_loads_total", "Values loaded from the source.", &labels),
                    refreshes: e.counter(
                        "rental_cache_refreshes_total",
                        "Loads that replaced an entry still being served (refresh-ahead).",
                        &labels,
                    ),
                    evictions: e.counter("rental_cache_evictions_total", "Entries dropped for size or age.", &labels),
                    entries: e.gauge("rental_cache_entries", "Entries held (approximate).", &labels),
                    hit_ratio: e.gauge("rental_cache_hit_ratio", "Hits over lookups since start.", &labels),
                }
            });
            h.hits.absolute(cache.hits);
            h.misses.absolute(cache.misses);
            h.loads.absolute(cache.loads);
            h.refreshes.absolute(cache.refreshes);
            h.evictions.absolute(cache.evictions);
            h.entries.set(cache.entries as f64);
            h.hit_ratio.set(cache.hit_rate().unwrap_or(0.0));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DEFAULT_LATENCY_BUCKETS_SECS;

    #[test]
    fn published_gauges_follow_prometheus_naming() {
        let exporter = Exporter::new(&DEFAULT_LATENCY_BUCKETS_SECS).unwrap();
        let gauges = ServiceGauges::new(&exporter);
        gauges.set_pool(&PoolGauge {
            size: 5,
            in_use: 3,
            idle: 2,
            waiting: 1,
            min_connections: 1,
            max_connections: 8,
            acquires: 40,
            acquire_wait_secs_total: 0.25,
            acquire_wait_max_ms: 30.0,
        });
        gauges.set_queue(&QueueGauge { depth: 4, queued: 3, retrying: 1, running: 2, dead: 7, oldest_due_secs: 1.5 });
        gauges.set_caches(&[CacheGauge {
            name: "users".into(),
            tier: "local".into(),
            hits: 9,
            misses: 1,
            loads: 1,
            refreshes: 1,
            entries: 3,
            ..CacheGauge::default()
        }]);
        let text = exporter.render();
        for expected in [
            "rental_db_pool_connections{state=\"in_use\"} 3",
            "rental_db_pool_connections{state=\"idle\"} 2",
            "rental_db_pool_waiting 1",
            "rental_db_pool_max_connections 8",
            "rental_db_pool_acquires_total 40",
            "rental_db_pool_acquire_wait_seconds_total 0.25",
            "rental_jobs{state=\"dead\"} 7",
            "rental_jobs_due 4",
            "rental_jobs_oldest_due_seconds 1.5",
            "rental_cache_hits_total{cache=\"users\",tier=\"local\"} 9",
            "rental_cache_misses_total{cache=\"users\",tier=\"local\"} 1",
            "rental_cache_loads_total{cache=\"users\",tier=\"local\"} 1",
            "rental_cache_entries{cache=\"users\",tier=\"local\"} 3",
            "rental_cache_hit_ratio{cache=\"users\",tier=\"local\"} 0.9",
            "# TYPE rental_cache_hits_total counter",
        ] {
            assert!(text.lines().any(|l| l == expected), "missing {expected:?} in\n{text}");
        }
    }

    #[test]
    fn rates_and_means() {
        let cache = CacheGauge { name: "x".into(), hits: 3, misses: 1, ..CacheGauge::default() };
        assert_eq!(cache.hit_rate(), Some(0.75));
        assert_eq!(CacheGauge { hits: 0, misses: 0, ..cache }.hit_rate(), None);
        let pool = PoolGauge { acquires: 4, acquire_wait_secs_total: 0.02, ..PoolGauge::default() };
        assert!((pool.acquire_wait_mean_ms() - 5.0).abs() < 1e-9);
        assert_eq!(PoolGauge::default().acquire_wait_mean_ms(), 0.0);
    }
}
