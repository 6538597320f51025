//! Threshold alerts that remember since when they fire: [`AlertThresholds`], [`AlertInputs`],
//! [`AlertTracker`].

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::gauges::{CacheGauge, PoolGauge, QueueGauge};
use crate::requests::LatencySummary;
use crate::system::{SystemSnapshot, unix_ms};

/// Limits beyond which an alert fires. Every comparison is strict: a value equal to its threshold
/// raises nothing.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlertThresholds {
    /// Warn when host CPU usage exceeds this percentage. Default 80.
    pub cpu_warn_percent: f64,
    /// Warn when host memory usage exceeds this percentage. Default 85.
    pub memory_warn_percent: f64,
    /// Error when the monitored disk's usage exceeds this percentage. Default 90.
    pub disk_error_percent: f64,
    /// Warn when the 95th percentile of request latency (all routes, over the last
    /// `latency_window_secs`) exceeds this many milliseconds. Default 2000.
    pub p95_latency_warn_ms: f64,
    /// The window of the latency rule, in seconds. Default 300.
    pub latency_window_secs: u64,
    /// Warn when connections in use divided by open connections exceeds this ratio. Default 0.8.
    pub pool_in_use_warn_ratio: f64,
    /// Warn when more callers than this wait for a database connection. Default 0.
    pub pool_waiting_warn: u32,
    /// Warn when a cache's hit rate (0 to 1) is below this. Default 0.7.
    pub cache_hit_rate_warn: f64,
    /// Lookups a cache needs before its hit rate is judged, so a cold cache does not warn. Default 100.
    pub cache_min_lookups: u64,
    /// Warn when more jobs than this are dead-lettered. Default 0.
    pub dead_jobs_warn: u64,
}

impl Default for AlertThresholds {
    fn default() -> Self {
        Self {
            cpu_warn_percent: 80.0,
            memory_warn_percent: 85.0,
            disk_error_percent: 90.0,
            p95_latency_warn_ms: 2_000.0,
            latency_window_secs: 300,
            pool_in_use_warn_ratio: 0.8,
            pool_waiting_warn: 0,
            cache_hit_rate_warn: 0.7,
            cache_min_lookups: 100,
            dead_jobs_warn: 0,
        }
    }
}

impl AlertThresholds {
    /// Checks the ranges; the error names the key (under `prefix`, such as `monitor.thresholds`).
    ///
    /// # Errors
    /// A message naming the first key out of range.
    pub fn validate(&self, prefix: &str) -> Result<(), String> {
        let percent = [
            ("cpu_warn_percent", self.cpu_warn_percent),
            ("memory_warn_percent", self.memory_warn_percent),
            ("disk_error_percent", self.disk_error_percent),
        ];
        for (key, value) in percent {
            if !(0.0..=100.0).contains(&value) {
                return Err(format!("{prefix}.{key} must be 0 to 100, got {value}"));
            }
        }
        let ratios = [
            ("pool_in_use_warn_ratio", self.pool_in_use_warn_ratio),
            ("cache_hit_rate_warn", self.cache_hit_rate_warn),
        ];
        for (key, value) in ratios {
            if !(0.0..=1.0).contains(&value) {
                return Err(format!("{prefix}.{key} must be 0 to 1, got {value}"));
            }
        }
        if self.latency_window_secs == 0 {
            return Err(format!("{prefix}.latency_window_secs must be at least 1"));
        }
        if !(self.p95_latency_warn_ms.is_finite() && self.p95_latency_warn_ms > 0.0) {
            return Err(format!("{prefix}.p95_latency_warn_ms must be positive, got {}", self.p95_latency_warn_ms));
        }
        Ok(())
    }
}

/// What the alert rules look at; leave out what this process does not know.
#[derive(Debug, Clone, Copy, Default)]
pub struct AlertInputs<'a> {
    /// Host and process.
    pub system: Option<&'a SystemSnapshot>,
    /// Request latency over the recent window (see [`crate::LatencyWindow`]).
    pub recent_latency: Option<&'a LatencySummary>,
    /// The database pool.
    pub pool: Option<&'a PoolGauge>,
    /// The caches.
    pub caches: &'a [CacheGauge],
    /// The job queue.
    pub queue: Option<&'a QueueGauge>,
}

/// How serious an [`Alert`] is. Serialised as `"warning"` or `"error"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Needs attention soon.
    Warning,
    /// Needs attention now.
    Error,
}

/// One threshold that is crossed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Alert {
    /// Stable machine-readable name, such as `"high_cpu"`.
    pub name: String,
    /// What it is about when the rule applies to several things (the cache's name), else `None`.
    pub subject: Option<String>,
    /// How serious it is.
    pub severity: Severity,
    /// Human-readable description.
    pub message: String,
    /// The measured value.
    pub value: f64,
    /// The threshold it crossed.
    pub threshold: f64,
    /// Since when it has fired without interruption, in milliseconds since the Unix epoch: the
    /// first evaluation that saw it after one that did not.
    pub since_unix_ms: u64,
}

/// Evaluates the rules and remembers, per alert, since when it fires; an alert that clears is
/// forgotten, so firing again starts a new period. Share one tracker per process.
#[derive(Debug, Default)]
pub struct AlertTracker {
    since: Mutex<HashMap<(String, Option<String>), u64>>,
}

impl AlertTracker {
    /// A tracker with no alert firing.
    pub fn new() -> Self {
        Self::default()
    }

    /// Evaluates the rules at `now` and returns the alerts firing, in a fixed order: `high_cpu`,
    /// `high_memory`, `disk_full`, `slow_responses`, `pool_in_use`, `pool_waiting`,
    /// `low_cache_hit_rate` (per cache), `dead_jobs`.
    pub fn evaluate(&self, thresholds: &AlertThresholds, inputs: &AlertInputs<'_>, now: SystemTime) -> Vec<Alert> {
        let fired = rules(thresholds, inputs);
        let now_ms = unix_ms(now);
        let mut since = self.since.lock().unwrap_or_else(PoisonError::into_inner);
        since.retain(|key, _| fired.iter().any(|f| (&f.name, &f.subject) == (&key.0, &key.1)));
        fired
            .into_iter()
            .map(|f| {
                let started = *since.entry((f.name.clone(), f.subject.clone())).or_insert(now_ms);
                Alert {
                    name: f.name,
                    subject: f.subject,
                    severity: f.severity,
                    message: f.message,
                    value: f.value,
                    threshold: f.threshold,
                    since_unix_ms: started,
                }
            })
            .collect()
    }
}

struct Fired {
    name: String,
    subject: Option<String>,
    severity: Severity,
    message: String,
    value: f64,
    threshold: f64,
}

fn rules(t: &AlertThresholds, inputs: &AlertInputs<'_>) -> Vec<Fired> {
    let mut out = Vec::new();
    let mut fire = |name: &str, subject: Option<&str>, severity, message: String, value: f64, threshold: f64| {
        out.push(Fired {
            name: name.to_owned(),
            subject: subject.map(str::to_owned),
            severity,
            message,
            value,
            threshold,
        });
    };
    use Severity::{Error, Warning};

    if let Some(system) = inputs.system {
        if system.cpu_usage_percent > t.cpu_warn_percent {
            let message =
                format!("host CPU usage is {:.1} %, above {} %", system.cpu_usage_percent, t.cpu_warn_percent);
            fire("high_cpu", None, Warning, message, system.cpu_usage_percent, t.cpu_warn_percent);
        }
        if system.memory_usage_percent > t.memory_warn_percent {
            let message =
                format!("host memory usage is {:.1} %, above {} %", system.memory_usage_percent, t.memory_warn_percent);
            fire("high_memory", None, Warning, message, system.memory_usage_percent, t.memory_warn_percent);
        }
        if let Some(disk) = &system.disk
            && disk.usage_percent > t.disk_error_percent
        {
            let message = format!(
                "disk {} is {:.1} % full, above {} %",
                disk.mount_point, disk.usage_percent, t.disk_error_percent
            );
            fire("disk_full", None, Error, message, disk.usage_percent, t.disk_error_percent);
        }
    }
    if let Some(latency) = inputs.recent_latency
        && latency.count > 0
        && latency.p95_ms > t.p95_latency_warn_ms
    {
        let message = format!("p95 response time is {:.1} ms, above {} ms", latency.p95_ms, t.p95_latency_warn_ms);
        fire("slow_responses", None, Warning, message, latency.p95_ms, t.p95_latency_warn_ms);
    }
    if let Some(pool) = inputs.pool {
        if pool.size > 0 {
            let ratio = f64::from(pool.in_use) / f64::from(pool.size);
            if ratio > t.pool_in_use_warn_ratio {
                let message = format!(
                    "{} of {} pool connections are in use, above a ratio of {}",
                    pool.in_use, pool.size, t.pool_in_use_warn_ratio
                );
                fire("pool_in_use", None, Warning, message, ratio, t.pool_in_use_warn_ratio);
            }
        }
        if pool.waiting > t.pool_waiting_warn {
            let message = format!("{} callers are waiting for a database connection", pool.waiting);
            fire("pool_waiting", None, Warning, message, f64::from(pool.waiting), f64::from(t.pool_waiting_warn));
        }
    }
    for cache in inputs.caches {
        if cache.hits + cache.misses < t.cache_min_lookups {
            continue;
        }
        if let Some(rate) = cache.hit_rate()
            && rate < t.cache_hit_rate_warn
        {
            let message = format!(
                "cache {} answers {:.1} % of lookups, below {} %",
                cache.name,
                rate * 100.0,
                t.cache_hit_rate_warn * 100.0
            );
            fire("low_cache_hit_rate", Some(&cache.name), Warning, message, rate, t.cache_hit_rate_warn);
        }
    }
    if let Some(queue) = inputs.queue
        && queue.dead > t.dead_jobs_warn
    {
        let message = format!("{} jobs are dead-lettered", queue.dead);
        fire("dead_jobs", None, Warning, message, queue.dead as f64, t.dead_jobs_warn as f64);
    }
    out
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::system::DiskSnapshot;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn names(alerts: &[Alert]) -> Vec<&str> {
        alerts.iter().map(|a| a.name.as_str()).collect()
    }

    fn busy_system() -> SystemSnapshot {
        SystemSnapshot {
            cpu_usage_percent: 95.0,
            memory_usage_percent: 90.0,
            disk: Some(DiskSnapshot { mount_point: "/".into(), usage_percent: 95.0, ..DiskSnapshot::default() }),
            ..SystemSnapshot::default()
        }
    }

    #[test]
    fn every_rule_fires_past_its_threshold() {
        let system = busy_system();
        let latency = LatencySummary { count: 10, p95_ms: 2_500.0, ..LatencySummary::default() };
        let pool = PoolGauge { size: 10, in_use: 9, waiting: 2, ..PoolGauge::default() };
        let caches = [
            CacheGauge { name: "users".into(), hits: 50, misses: 50, entries: 1, ..CacheGauge::default() },
            CacheGauge { name: "cold".into(), hits: 0, misses: 10, entries: 0, ..CacheGauge::default() },
            CacheGauge { name: "warm".into(), hits: 95, misses: 5, entries: 1, ..CacheGauge::default() },
        ];
        let queue = QueueGauge { dead: 3, ..QueueGauge::default() };
        let inputs = AlertInputs {
            system: Some(&system),
            recent_latency: Some(&latency),
            pool: Some(&pool),
            caches: &caches,
            queue: Some(&queue),
        };
        let alerts = AlertTracker::new().evaluate(&AlertThresholds::default(), &inputs, at(100));
        assert_eq!(
            names(&alerts),
            [
                "high_cpu",
                "high_memory",
                "disk_full",
                "slow_responses",
                "pool_in_use",
                "pool_waiting",
                "low_cache_hit_rate",
                "dead_jobs"
            ]
        );
        let disk = &alerts[2];
        assert_eq!(disk.severity, Severity::Error);
        assert_eq!((disk.value, disk.threshold), (95.0, 90.0));
        let cache = &alerts[6];
        assert_eq!(cache.subject.as_deref(), Some("users"), "cold and warm caches do not warn");
        assert_eq!(cache.value, 0.5);
        assert!(alerts.iter().all(|a| a.since_unix_ms == 100_000));
        assert!(alerts.iter().filter(|a| a.name != "disk_full").all(|a| a.severity == Severity::Warning));
    }

    #[test]
    fn values_at_the_threshold_or_missing_inputs_fire_nothing() {
        let t = AlertThresholds::default();
        let system =
            SystemSnapshot { cpu_usage_percent: 80.0, memory_usage_percent: 85.0, ..SystemSnapshot::default() };
        let pool = PoolGauge { size: 10, in_use: 8, waiting: 0, ..PoolGauge::default() };
        let empty_pool = PoolGauge::default();
        let latency = LatencySummary::default();
        let tracker = AlertTracker::new();
        for inputs in [
            AlertInputs { system: Some(&system), pool: Some(&pool), ..AlertInputs::default() },
            AlertInputs { pool: Some(&empty_pool), recent_latency: Some(&latency), ..AlertInputs::default() },
            AlertInputs::default(),
        ] {
            assert!(tracker.evaluate(&t, &inputs, at(1)).is_empty());
        }
    }

    #[test]
    fn alerts_keep_their_since_while_firing_and_restart_after_clearing() {
        let tracker = AlertTracker::new();
        let t = AlertThresholds::default();
        let hot = busy_system();
        let calm = SystemSnapshot::default();
        let with = |system: &SystemSnapshot, now| {
            tracker.evaluate(&t, &AlertInputs { system: Some(system), ..AlertInputs::default() }, at(now))
        };

        let first = with(&hot, 10);
        assert_eq!(first[0].since_unix_ms, 10_000);
        let still = with(&hot, 20);
        assert_eq!(names(&still), names(&first));
        assert!(still.iter().all(|a| a.since_unix_ms == 10_000), "{still:?}");

        assert!(with(&calm, 30).is_empty(), "cleared");
        let again = with(&hot, 40);
        assert!(again.iter().all(|a| a.since_unix_ms == 40_000), "a new period: {again:?}");

        // One alert clears while another keeps firing.
        let cpu_only = SystemSnapshot { cpu_usage_percent: 99.0, ..SystemSnapshot::default() };
        let partial = with(&cpu_only, 50);
        assert_eq!(names(&partial), ["high_cpu"]);
        assert_eq!(partial[0].since_unix_ms, 40_000);
        let memory = with(&hot, 60);
        let memory = memory.iter().find(|a| a.name == "high_memory").unwrap();
        assert_eq!(memory.since_unix_ms, 60_000);
    }

    #[test]
    fn thresholds_are_validated_with_the_key_named() {
        assert!(AlertThresholds::default().validate("monitor.thresholds").is_ok());
        let bad = AlertThresholds { cpu_warn_percent: 120.0, ..AlertThresholds::default() };
        let error = bad.validate("monitor.thresholds").unwrap_err();
        assert!(error.contains("monitor.thresholds.cpu_warn_percent"), "{error}");
        let bad = AlertThresholds { cache_hit_rate_warn: 70.0, ..AlertThresholds::default() };
        assert!(bad.validate("m").unwrap_err().contains("m.cache_hit_rate_warn"));
        let bad = AlertThresholds { latency_window_secs: 0, ..AlertThresholds::default() };
        assert!(bad.validate("m").unwrap_err().contains("m.latency_window_secs"));
        let bad = AlertThresholds { p95_latency_warn_ms: 0.0, ..AlertThresholds::default() };
        assert!(bad.validate("m").unwrap_err().contains("m.p95_latency_warn_ms"));
    }
}
