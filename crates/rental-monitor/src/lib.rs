//! Metrics and health for the rental backend.
//!
//! A leaf crate: it depends on no other crate of the workspace, knows nothing of HTTP and needs no
//! async runtime. Nothing is global: the embedding server creates the values below once, keeps
//! them in its application state (each is `Clone + Send + Sync`, sharing its data through an
//! `Arc`), and feeds and reads them.
//!
//! - [`RequestMetrics`]: call [`RequestMetrics::record`] from middleware for every request (lock-
//!   free counters and a fixed latency histogram); [`RequestMetrics::snapshot`] gives totals,
//!   error counts, rates, latency mean/quantiles/max and per-route counts.
//! - [`SystemMonitor`]: host CPU and memory, load average, and this process's memory and CPU.
//! - [`HealthReport`], [`ComponentHealth`], [`HealthStatus`]: what a health endpoint returns.
//! - [`evaluate`] with [`AlertThresholds`]: turns snapshots (and a [`PoolGauge`] the caller fills
//!   from its connection pool) into [`Alert`]s.
//! - [`render_prometheus`]: the Prometheus text format for a metrics endpoint.
//!
//! ```
//! use std::time::Duration;
//! use rental_monitor::{MonitorConfig, RequestMetrics, SystemMonitor, evaluate, render_prometheus};
//!
//! # fn main() -> Result<(), rental_monitor::MonitorError> {
//! let config = MonitorConfig::default();
//! let metrics = RequestMetrics::with_max_routes(config.max_routes);
//! let system = SystemMonitor::new()?;
//!
//! // In middleware, with the matched route pattern rather than the raw path:
//! metrics.record("/api/v1/users/{id}", 200, Duration::from_millis(12));
//!
//! // In a metrics or health endpoint:
//! let requests = metrics.snapshot();
//! let host = system.snapshot();
//! let alerts = evaluate(&config.thresholds, &host, &requests, None);
//! let body = render_prometheus(&requests, &host, None);
//! assert!(body.contains(r#"rental_http_requests_total{route="/api/v1/users/{id}"} 1"#));
//! # let _ = alerts;
//! # Ok(())
//! # }
//! ```

mod alerts;
mod health;
mod prometheus;
mod requests;
mod system;

use serde::Deserialize;

pub use alerts::{Alert, AlertThresholds, PoolGauge, Severity, evaluate};
pub use health::{ComponentHealth, HealthReport, HealthStatus};
pub use prometheus::{PROMETHEUS_CONTENT_TYPE, render_prometheus};
pub use requests::{DEFAULT_MAX_ROUTES, LatencySummary, OTHER_ROUTE, RequestMetrics, RequestSnapshot, RouteCount};
pub use system::{LoadAverage, MonitorError, SystemMonitor, SystemSnapshot};

/// Settings of this crate, usually the `[monitor]` section of the server's configuration.
/// Missing fields take their defaults; unknown fields are rejected.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MonitorConfig {
    /// Alert thresholds used with [`evaluate`].
    pub thresholds: AlertThresholds,
    /// Distinct routes counted by [`RequestMetrics::with_max_routes`]; default
    /// [`DEFAULT_MAX_ROUTES`] (256).
    pub max_routes: usize,
}

impl Default for MonitorConfig {
    fn default() -> Self {
        Self { thresholds: AlertThresholds::default(), max_routes: DEFAULT_MAX_ROUTES }
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
    }

    #[test]
    fn config_rejects_unknown_fields() {
        let error = serde_json::from_str::<MonitorConfig>(r#"{"max_route": 10}"#).unwrap_err();
        assert!(error.to_string().contains("unknown field"), "{error}");
        let error = serde_json::from_str::<MonitorConfig>(r#"{"thresholds": {"cpu_warn": 10}}"#).unwrap_err();
        assert!(error.to_string().contains("unknown field"), "{error}");
    }
}
