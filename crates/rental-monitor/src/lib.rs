//! Metrics and health for the rental backend.
//!
//! A leaf crate: it depends on no other crate of the workspace, knows nothing of HTTP and needs no
//! async runtime. Nothing is global unless the embedder says so: it creates a [`Monitor`] once,
//! keeps it in its application state and feeds and reads it.
//!
//! - [`Exporter`]: the Prometheus registry (`metrics` facade + `metrics-exporter-prometheus`) that
//!   every metric below lives in; [`Exporter::install_global`] makes it the process's `metrics`
//!   recorder so the embedder's own metrics are rendered beside ours by [`Exporter::render`].
//! - [`RequestMetrics`]: call [`RequestMetrics::in_flight`] and [`RequestMetrics::record`] from
//!   middleware for every request, with the matched route pattern; [`RequestMetrics::snapshot`]
//!   gives counts, error rates and latency quantiles per route.
//! - [`SystemMonitor`]: host CPU, memory and disk, this process's memory and open files, refreshed
//!   by a background [`Refresher`] thread, never per request.
//! - [`ServiceGauges`] with [`PoolGauge`], [`CacheGauge`], [`QueueGauge`]: figures of the other
//!   crates, filled in by the embedder.
//! - [`Components`] of [`ComponentSource`]s ([`ComponentHandle`] for push-fed ones): named outside
//!   services (mail, Redis, payments) and whether they are configured and working.
//! - [`AlertTracker`] with [`AlertThresholds`]: threshold alerts that remember since when they fire;
//!   [`LatencyWindow`] gives the latency rule the recent requests rather than all since start.
//! - [`Recent`]: an async check shared by concurrent callers and reused while young.
//! - [`HealthReport`], [`ComponentHealth`], [`HealthStatus`]: what a readiness endpoint returns.
//!
//! ```
//! use std::time::Duration;
//! use rental_monitor::{Monitor, MonitorConfig};
//!
//! # fn main() -> Result<(), rental_monitor::MonitorError> {
//! let monitor = Monitor::new(&MonitorConfig::default())?;
//!
//! // In middleware, with the matched route pattern rather than the raw path:
//! let in_flight = monitor.requests.in_flight();
//! monitor.requests.record("/api/v1/users/{id}", 200, Duration::from_millis(12));
//! drop(in_flight);
//!
//! // In a metrics endpoint:
//! let body = monitor.exporter.render();
//! assert!(body.contains(r#"rental_http_requests_total{route="/api/v1/users/{id}",status="2xx"} 1"#));
//! # Ok(())
//! # }
//! ```

mod alerts;
mod components;
mod exporter;
mod gauges;
mod health;
mod probe;
mod requests;
mod system;

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use alerts::{Alert, AlertInputs, AlertThresholds, AlertTracker, Severity};
pub use components::{ComponentHandle, ComponentSource, ComponentState, ComponentStatus, Components};
pub use exporter::{
    AlreadyInstalled, DEFAULT_LATENCY_BUCKETS_SECS, Exporter, ExporterError, PROMETHEUS_CONTENT_TYPE, REQUEST_DURATION,
};
pub use gauges::{CacheGauge, PoolGauge, QueueGauge, ServiceGauges};
pub use health::{ComponentHealth, HealthReport, HealthStatus};
pub use probe::{Recent, boxed};
pub use requests::{
    DEFAULT_MAX_ROUTES, InFlight, LatencyMark, LatencySummary, LatencyWindow, OTHER_ROUTE, RequestMetrics,
    RequestSnapshot, RouteStats,
};
pub use system::{DiskSnapshot, LoadAverage, Refresher, SystemMonitor, SystemSnapshot};

/// Settings of this crate, usually the `[monitor]` section of the server's configuration.
/// Missing fields take their defaults; unknown fields are rejected.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MonitorConfig {
    /// Alert thresholds.
    pub thresholds: AlertThresholds,
    /// Distinct route patterns tracked; later ones are counted as [`OTHER_ROUTE`]. Default 256.
    pub max_routes: usize,
    /// Seconds between two background refreshes of the system metrics. Default 5.
    pub refresh_interval_secs: u64,
    /// Upper bounds of the Prometheus request latency histogram, in seconds, increasing.
    /// Default [`DEFAULT_LATENCY_BUCKETS_SECS`].
    pub latency_buckets_secs: Vec<f64>,
    /// A path on the disk whose space is watched. Default `.` (the working directory).
    pub disk_path: PathBuf,
    /// Milliseconds a health check result (the database's `SELECT 1`) is reused. Default 1000.
    pub health_cache_ms: u64,
    /// A bearer token the embedder requires for the Prometheus exposition; unset leaves it open.
    /// Never printed by `Debug`.
    pub metrics_token: Option<String>,
}

impl fmt::Debug for MonitorConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MonitorConfig")
            .field("thresholds", &self.thresholds)
            .field("max_routes", &self.max_routes)
            .field("refresh_interval_secs", &self.refresh_interval_secs)
            .field("latency_buckets_secs", &self.latency_buckets_secs)
            .field("disk_path", &self.disk_path)
            .field("health_cache_ms", &self.health_cache_ms)
            .field("metrics_token", &self.metrics_token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl Default for MonitorConfig {
    fn default() -> Self {
        Self {
            thresholds: AlertThresholds::default(),
            max_routes: DEFAULT_MAX_ROUTES,
            refresh_interval_secs: 5,
            latency_buckets_secs: DEFAULT_LATENCY_BUCKETS_SECS.to_vec(),
            disk_path: PathBuf::from("."),
            health_cache_ms: 1_000,
            metrics_token: None,
        }
    }
}

/// A [`MonitorConfig`] value out of range.
#[derive(Debug, thiserror::Error)]
#[error("{key} {reason}")]
pub struct MonitorConfigError {
    /// The key at fault, under the prefix given to [`MonitorConfig::validate`].
    pub key: String,
    /// What is wrong with it.
    pub reason: String,
}

impl MonitorConfig {
    /// Checks every value; errors name the key under `prefix` (such as `monitor`).
    ///
    /// # Errors
    /// [`MonitorConfigError`] for the first value out of range.
    pub fn validate(&self, prefix: &str) -> Result<(), MonitorConfigError> {
        let invalid = |key: &str, reason: String| Err(MonitorConfigError { key: format!("{prefix}.{key}"), reason });
        if self.max_routes == 0 {
            return invalid("max_routes", "must be at least 1".into());
        }
        if self.refresh_interval_secs == 0 || self.refresh_interval_secs > 3_600 {
            return invalid("refresh_interval_secs", format!("must be 1 to 3600, got {}", self.refresh_interval_secs));
        }
        let buckets = &self.latency_buckets_secs;
        if buckets.is_empty()
            || !buckets.iter().all(|b| b.is_finite() && *b > 0.0)
            || !buckets.windows(2).all(|w| w[0] < w[1])
        {
            return invalid("latency_buckets_secs", "must be positive seconds in increasing order".into());
        }
        if self.health_cache_ms > 60_000 {
            return invalid("health_cache_ms", format!("must be 0 to 60000, got {}", self.health_cache_ms));
        }
        if self.metrics_token.as_ref().is_some_and(|t| t.len() < 16 || t.chars().any(char::is_whitespace)) {
            return invalid("metrics_token", "must be at least 16 characters without spaces".into());
        }
        if let Err(message) = self.thresholds.validate(&format!("{prefix}.thresholds")) {
            let (key, reason) = message.split_once(' ').unwrap_or((&message, ""));
            return Err(MonitorConfigError { key: key.to_owned(), reason: reason.to_owned() });
        }
        Ok(())
    }
}

/// The monitor could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    /// The Prometheus recorder refused the configuration.
    #[error(transparent)]
    Exporter(#[from] ExporterError),
    /// The system information library could not be initialised on this platform.
    #[error("cannot read system information")]
    System(#[source] sysinfo::Error),
}

/// Everything of this crate, made together over one [`Exporter`]. Fields are public: each is
/// `Clone + Send + Sync` or shared through an [`Arc`].
#[derive(Debug, Clone)]
pub struct Monitor {
    /// The Prometheus registry.
    pub exporter: Exporter,
    /// Request metrics.
    pub requests: RequestMetrics,
    /// Host and process metrics.
    pub system: SystemMonitor,
    /// Outside services.
    pub components: Components,
    /// Gauges of the pool, the caches and the queue.
    pub gauges: Arc<ServiceGauges>,
    /// Alert state.
    pub alerts: Arc<AlertTracker>,
    /// Request latency over `thresholds.latency_window_secs`, for the latency rule.
    pub recent_latency: Arc<LatencyWindow>,
    /// The settings it was made with.
    pub config: Arc<MonitorConfig>,
}

impl Monitor {
    /// Builds every part over a fresh exporter (not installed globally: see
    /// [`Exporter::install_global`]) and takes a first system reading.
    ///
    /// # Errors
    /// [`MonitorError`] when the buckets are unusable or `sysinfo` cannot start.
    pub fn new(config: &MonitorConfig) -> Result<Self, MonitorError> {
        let exporter = Exporter::new(&config.latency_buckets_secs)?;
        let system = SystemMonitor::new(&exporter, &config.disk_path)?;
        Ok(Self {
            requests: RequestMetrics::new(&exporter, config.max_routes),
            system,
            components: Components::new(&exporter),
            gauges: Arc::new(ServiceGauges::new(&exporter)),
            alerts: Arc::new(AlertTracker::new()),
            recent_latency: Arc::new(LatencyWindow::new(Duration::from_secs(config.thresholds.latency_window_secs))),
            config: Arc::new(config.clone()),
            exporter,
        })
    }

    /// Starts the background refresher of the system metrics (and the exporter's upkeep) at the
    /// configured interval; it stops when the returned guard is dropped.
    ///
    /// # Errors
    /// The operating system's error when the thread cannot be spawned.
    pub fn spawn_refresher(&self) -> std::io::Result<Refresher> {
        self.system.spawn_refresher(&self.exporter, Duration::from_secs(self.config.refresh_interval_secs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_fills_missing_fields_with_defaults() {
        let config: MonitorConfig = serde_json::from_str("{}").unwrap();
        assert_eq!(config, MonitorConfig::default());
        assert_eq!(config.max_routes, 256);

        let config: MonitorConfig =
            serde_json::from_str(r#"{"max_routes": 10, "thresholds": {"cpu_warn_percent": 70.0}}"#).unwrap();
        assert_eq!(config.max_routes, 10);
        assert_eq!(config.thresholds.cpu_warn_percent, 70.0);
        assert_eq!(config.thresholds.memory_warn_percent, 85.0);
        assert!(config.validate("monitor").is_ok());
    }

    #[test]
    fn config_rejects_unknown_fields() {
        let error = serde_json::from_str::<MonitorConfig>(r#"{"max_route": 10}"#).unwrap_err();
        assert!(error.to_string().contains("unknown field"), "{error}");
        let error = serde_json::from_str::<MonitorConfig>(r#"{"thresholds": {"cpu_warn": 10}}"#).unwrap_err();
        assert!(error.to_string().contains("unknown field"), "{error}");
    }

    #[test]
    fn validation_names_the_key() {
        let cases = [
            (MonitorConfig { max_routes: 0, ..MonitorConfig::default() }, "monitor.max_routes"),
            (MonitorConfig { refresh_interval_secs: 0, ..MonitorConfig::default() }, "monitor.refresh_interval_secs"),
            (
                MonitorConfig { latency_buckets_secs: vec![0.5, 0.1], ..MonitorConfig::default() },
                "monitor.latency_buckets_secs",
            ),
            (
                MonitorConfig { latency_buckets_secs: vec![], ..MonitorConfig::default() },
                "monitor.latency_buckets_secs",
            ),
            (MonitorConfig { health_cache_ms: 120_000, ..MonitorConfig::default() }, "monitor.health_cache_ms"),
            (
                MonitorConfig { metrics_token: Some("short".into()), ..MonitorConfig::default() },
                "monitor.metrics_token",
            ),
            (
                MonitorConfig {
                    thresholds: AlertThresholds { disk_error_percent: -1.0, ..AlertThresholds::default() },
                    ..MonitorConfig::default()
                },
                "monitor.thresholds.disk_error_percent",
            ),
        ];
        for (config, key) in cases {
            let error = config.validate("monitor").unwrap_err();
            assert_eq!(error.key, key, "{error}");
            assert!(error.to_string().starts_with(key), "{error}");
        }
    }

    #[test]
    fn debug_hides_the_metrics_token() {
        let config =
            MonitorConfig { metrics_token: Some("secret-token-0123456789".into()), ..MonitorConfig::default() };
        let shown = format!("{config:?}");
        assert!(!shown.contains("secret-token"), "{shown}");
        assert!(shown.contains("<redacted>"), "{shown}");
    }

    #[test]
    fn a_monitor_renders_all_its_parts_in_one_exposition() {
        let monitor = Monitor::new(&MonitorConfig::default()).unwrap();
        monitor.requests.record("/a", 200, Duration::from_millis(1));
        monitor.system.refresh();
        monitor.gauges.set_pool(&PoolGauge { size: 1, ..PoolGauge::default() });
        monitor.components.register(Arc::new(ComponentHandle::not_configured("stripe", "no key")));
        monitor.components.statuses();
        let text = monitor.exporter.render();
        for name in [
            "rental_http_requests_total",
            "rental_http_request_duration_seconds",
            "rental_system_memory_total_bytes",
            "rental_db_pool_waiting",
            "rental_component_configured",
        ] {
            assert!(text.contains(&format!("# TYPE {name} ")), "{name} missing in\n{text}");
        }
    }
}
