//! The monitoring state of the server: the [`Monitor`] of `rental-monitor`, fed from this process's
//! database pool, services, worker and mailer, and the cached probes behind the monitoring endpoints.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rental_monitor::{
    CacheGauge, ComponentHandle, ComponentSource, ComponentState, ComponentStatus, Monitor, MonitorConfig,
    MonitorError, PoolGauge, QueueGauge, Recent, boxed,
};
use rental_repo::{Database, PoolStats};
use rental_service::{Caches, Services, SharedTier};
use rental_tasks::mail::MailStats;

/// Longest a health probe of the database may take before it counts as down.
const PING_TIMEOUT: Duration = Duration::from_secs(2);

/// What the last `SELECT 1` said.
#[derive(Debug, Clone, Copy)]
pub struct DbProbe {
    /// How long it took, when it answered.
    pub latency: Option<Duration>,
    /// When it finished.
    pub at: SystemTime,
}

/// The monitor and what feeds it. Shared by every worker through [`crate::state::AppState`].
#[derive(Debug)]
pub struct Monitoring {
    /// Metrics, components, alerts.
    pub monitor: Monitor,
    /// The settings in force that `/monitoring/system` shows under `effective` (filled at start-up, for
    /// example with the performance profile); `null` when nothing was given.
    pub effective: serde_json::Value,
    db_probe: Recent<DbProbe>,
    queue_probe: Recent<Option<QueueGauge>>,
}

impl Monitoring {
    /// Builds the monitor (not installed as the global recorder: `serve` does that) and registers the
    /// components: the services' caches, the mailer when this process has one (`mail`), and Redis and
    /// Stripe as not configured until their issues plug them in.
    ///
    /// # Errors
    /// [`MonitorError`] when the monitor cannot start.
    pub fn new(
        config: &MonitorConfig,
        services: &Services,
        mail: Option<Arc<MailStats>>,
        effective: serde_json::Value,
    ) -> Result<Self, MonitorError> {
        let monitor = Monitor::new(config)?;
        let components = &monitor.components;
        components.register(Arc::new(CacheComponent(services.clone())));
        match mail {
            Some(stats) => components.register(Arc::new(MailComponent(stats))),
            None => components
                .register(Arc::new(ComponentHandle::not_configured("smtp", "this process sends no mail (no worker)"))),
        }
        if services.caches.shared_tier() == SharedTier::None {
            components.register(Arc::new(ComponentHandle::not_configured("redis", "cache.redis_url is not set")));
        } else {
            components.register(Arc::new(SharedCacheComponent(services.caches.clone())));
        }
        components.register(Arc::new(ComponentHandle::not_configured("stripe", "no payment provider in this build")));
        let health_age = Duration::from_millis(config.health_cache_ms);
        let queue_age = Duration::from_secs(config.refresh_interval_secs);
        Ok(Self { monitor, effective, db_probe: Recent::new(health_age), queue_probe: Recent::new(queue_age) })
    }

    /// The database's `SELECT 1`, shared by concurrent callers and reused for `monitor.health_cache_ms`;
    /// returns the probe and how old it was when handed out.
    pub async fn probe_database(&self, db: &Database) -> (DbProbe, Duration) {
        let db = db.clone();
        self.db_probe
            .get(|| {
                boxed(async move {
                    // The availability probe already knows the server is lost: no need to wait for the pool.
                    if !db.availability().is_up() {
                        return DbProbe { latency: None, at: SystemTime::now() };
                    }
                    let latency = match tokio::time::timeout(PING_TIMEOUT, db.ping()).await {
                        Ok(Ok(latency)) => Some(latency),
                        Ok(Err(err)) => {
                            tracing::warn!(error = %err, "health: database unreachable");
                            None
                        }
                        Err(_) => {
                            tracing::warn!(
                                timeout_ms = PING_TIMEOUT.as_millis() as u64,
                                "health: database ping timed out"
                            );
                            None
                        }
                    };
                    DbProbe { latency, at: SystemTime::now() }
                })
            })
            .await
    }

    /// The job queue's counts, read at most once per `monitor.refresh_interval_secs` and published as
    /// gauges; `None` when they cannot be read.
    pub async fn queue(&self, services: &Services) -> Option<QueueGauge> {
        let jobs = services.jobs.clone();
        let (queue, _) = self
            .queue_probe
            .get(|| {
                boxed(async move {
                    match jobs.queue_counts().await {
                        Ok(counts) => Some(QueueGauge {
                            depth: counts.depth,
                            queued: counts.queued,
                            retrying: counts.retrying,
                            running: counts.running,
                            dead: counts.dead,
                            oldest_due_secs: counts.oldest_due_secs,
                        }),
                        Err(err) => {
                            tracing::warn!(error = %err, "monitoring: cannot count the job queue");
                            None
                        }
                    }
                })
            })
            .await;
        if let Some(queue) = &queue {
            self.monitor.gauges.set_queue(queue);
        }
        queue
    }

    /// The pool's figures, published as gauges.
    pub fn pool(&self, db: &Database) -> PoolGauge {
        let pool = pool_gauge(db.pool_stats());
        self.monitor.gauges.set_pool(&pool);
        pool
    }

    /// The caches' figures, published as gauges.
    pub fn caches(&self, services: &Services) -> Vec<CacheGauge> {
        let caches = cache_gauges(services);
        self.monitor.gauges.set_caches(&caches);
        caches
    }
}

fn pool_gauge(stats: PoolStats) -> PoolGauge {
    PoolGauge {
        size: stats.size,
        in_use: stats.in_use,
        idle: stats.idle,
        waiting: stats.waiting,
        min_connections: stats.min_connections,
        max_connections: stats.max_connections,
        acquires: stats.acquires,
        acquire_wait_secs_total: stats.acquire_wait_micros_total as f64 / 1e6,
        acquire_wait_max_ms: stats.acquire_wait_micros_max as f64 / 1e3,
    }
}

fn cache_gauges(services: &Services) -> Vec<CacheGauge> {
    services
        .cache_stats()
        .into_iter()
        .map(|s| CacheGauge {
            name: s.name.to_owned(),
            tier: s.tier.to_owned(),
            hits: s.hits,
            misses: s.misses,
            loads: s.loads,
            refreshes: s.refreshes,
            evictions: s.evictions,
            entries: s.entries,
        })
        .collect()
}

/// The services' in-process caches as one component: always up while the process runs.
#[derive(Debug)]
struct CacheComponent(Services);

impl ComponentSource for CacheComponent {
    fn status(&self) -> ComponentStatus {
        let caches = cache_gauges(&self.0);
        let hits = caches.iter().map(|c| c.hits).sum();
        let detail = caches
            .iter()
            .map(|c| match c.hit_rate() {
                Some(rate) => format!("{}: {:.0} % hits", c.name, rate * 100.0),
                None => format!("{}: unused", c.name),
            })
            .collect::<Vec<_>>()
            .join(", ");
        ComponentStatus::from_counters("cache", Some(format!("in-process (moka); {detail}")), hits, 0, None, None, None)
    }
}

/// Redis as the caches' shared tier: up while it answers and the invalidation subscription is live,
/// degraded (the caches run alone with short TTLs) otherwise.
#[derive(Debug)]
struct SharedCacheComponent(Caches);

impl ComponentSource for SharedCacheComponent {
    fn status(&self) -> ComponentStatus {
        let shared = self.0.stats().into_iter().filter(|s| s.tier == "shared");
        let (hits, misses) = shared.fold((0, 0), |(h, m), s| (h + s.hits, m + s.misses));
        let (state, detail) = match self.0.shared_tier() {
            SharedTier::Degraded => (
                ComponentState::Degraded,
                "shared cache tier unreachable or slow: local caches alone, short TTLs, reconnecting",
            ),
            _ => (ComponentState::Up, "shared cache tier and cross-instance invalidation"),
        };
        ComponentStatus {
            name: "redis".into(),
            configured: true,
            state,
            detail: Some(format!("{detail}; {hits} hits, {misses} misses")),
            successes: hits,
            failures: 0,
            last_success_unix_ms: None,
            last_failure_unix_ms: None,
            last_error: None,
        }
    }
}

/// The mailer, from the counters of its [`rental_tasks::mail::TrackedMailer`].
#[derive(Debug)]
struct MailComponent(Arc<MailStats>);

impl ComponentSource for MailComponent {
    fn status(&self) -> ComponentStatus {
        let s = self.0.snapshot();
        ComponentStatus::from_counters(
            "smtp",
            Some(s.transport),
            s.sent,
            s.failed,
            s.last_success_unix_ms,
            s.last_failure_unix_ms,
            s.last_error,
        )
    }
}
