//! Threshold alerts: [`AlertThresholds`], [`PoolGauge`], [`evaluate`].

use serde::{Deserialize, Serialize};

use crate::requests::RequestSnapshot;
use crate::system::SystemSnapshot;

/// Limits above which [`evaluate`] raises an alert. Every comparison is strict: a value equal to
/// its threshold raises nothing.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlertThresholds {
    /// Warn when host CPU usage exceeds this percentage. Default 80.
    pub cpu_warn_percent: f64,
    /// Warn when host memory usage exceeds this percentage. Default 85.
    pub memory_warn_percent: f64,
    /// Error when disk usage exceeds this percentage. Default 90. Not evaluated yet: the
    /// monitor does not measure disks.
    pub disk_error_percent: f64,
    /// Warn when the mean response time exceeds this many milliseconds. Default 2000.
    pub avg_response_warn_ms: f64,
    /// Warn when connections in use divided by open connections exceeds this ratio. Default 0.8.
    pub pool_in_use_warn_ratio: f64,
    /// Warn when the pool holds more than `min_connections` plus this many connections (the
    /// "overflow" beyond its minimum). Default 0, which warns as soon as the pool grows past its
    /// minimum.
    pub pool_overflow_warn: u32,
    /// Warn when open connections divided by `max_connections` exceeds this ratio. Default 0.9.
    pub pool_connections_warn_ratio: f64,
}

impl Default for AlertThresholds {
    fn default() -> Self {
        Self {
            cpu_warn_percent: 80.0,
            memory_warn_percent: 85.0,
            disk_error_percent: 90.0,
            avg_response_warn_ms: 2_000.0,
            pool_in_use_warn_ratio: 0.8,
            pool_overflow_warn: 0,
            pool_connections_warn_ratio: 0.9,
        }
    }
}

/// Gauges of a database connection pool, filled in by the caller from its pool.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct PoolGauge {
    /// Connections currently open (idle plus in use).
    pub size: u32,
    /// Connections currently checked out.
    pub in_use: u32,
    /// Connections the pool keeps open at minimum.
    pub min_connections: u32,
    /// Connections the pool may open at most.
    pub max_connections: u32,
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

/// One threshold that was crossed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Alert {
    /// Stable machine-readable name, such as `"high_cpu"`.
    pub name: String,
    /// How serious it is.
    pub severity: Severity,
    /// Human-readable description.
    pub message: String,
    /// The measured value.
    pub value: f64,
    /// The threshold it crossed.
    pub threshold: f64,
}

impl Alert {
    fn warning(name: &str, message: String, value: f64, threshold: f64) -> Self {
        Self { name: name.to_owned(), severity: Severity::Warning, message, value, threshold }
    }
}

/// Compares the snapshots (and the pool, if given) with the thresholds and returns the alerts
/// raised, in a fixed order: `high_cpu`, `high_memory`, `slow_responses`, `pool_in_use`,
/// `pool_overflow`, `pool_near_max`. Returns an empty vector when all is well.
///
/// The response-time rule needs at least one request; the pool ratios are skipped when their
/// denominator is zero.
pub fn evaluate(
    thresholds: &AlertThresholds,
    system: &SystemSnapshot,
    requests: &RequestSnapshot,
    pool: Option<PoolGauge>,
) -> Vec<Alert> {
    let t = thresholds;
    let mut alerts = Vec::new();

    if system.cpu_usage_percent > t.cpu_warn_percent {
        alerts.push(Alert::warning(
            "high_cpu",
            format!("host CPU usage is {:.1} %, above {} %", system.cpu_usage_percent, t.cpu_warn_percent),
            system.cpu_usage_percent,
            t.cpu_warn_percent,
        ));
    }
    if system.memory_usage_percent > t.memory_warn_percent {
        alerts.push(Alert::warning(
            "high_memory",
            format!("host memory usage is {:.1} %, above {} %", system.memory_usage_percent, t.memory_warn_percent),
            system.memory_usage_percent,
            t.memory_warn_percent,
        ));
    }
    let latency = &requests.latency;
    if latency.count > 0 && latency.mean_ms > t.avg_response_warn_ms {
        alerts.push(Alert::warning(
            "slow_responses",
            format!("mean response time is {:.1} ms, above {} ms", latency.mean_ms, t.avg_response_warn_ms),
            latency.mean_ms,
            t.avg_response_warn_ms,
        ));
    }

    if let Some(pool) = pool {
        if pool.size > 0 {
            let ratio = f64::from(pool.in_use) / f64::from(pool.size);
            if ratio > t.pool_in_use_warn_ratio {
                alerts.push(Alert::warning(
                    "pool_in_use",
                    format!(
                        "{} of {} pool connections are in use, above a ratio of {}",
                        pool.in_use, pool.size, t.pool_in_use_warn_ratio
                    ),
                    ratio,
                    t.pool_in_use_warn_ratio,
                ));
            }
        }
        let overflow = pool.size.saturating_sub(pool.min_connections);
        if overflow > t.pool_overflow_warn {
            alerts.push(Alert::warning(
                "pool_overflow",
                format!(
                    "the pool holds {} connections, {overflow} beyond its minimum of {}",
                    pool.size, pool.min_connections
                ),
                f64::from(overflow),
                f64::from(t.pool_overflow_warn),
            ));
        }
        if pool.max_connections > 0 {
            let ratio = f64::from(pool.size) / f64::from(pool.max_connections);
            if ratio > t.pool_connections_warn_ratio {
                alerts.push(Alert::warning(
                    "pool_near_max",
                    format!(
                        "the pool holds {} of at most {} connections, above a ratio of {}",
                        pool.size, pool.max_connections, t.pool_connections_warn_ratio
                    ),
                    ratio,
                    t.pool_connections_warn_ratio,
                ));
            }
        }
    }
    alerts
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::requests::LatencySummary;

    fn names(alerts: &[Alert]) -> Vec<&str> {
        alerts.iter().map(|a| a.name.as_str()).collect()
    }

    fn requests_with_mean(mean_ms: f64) -> RequestSnapshot {
        RequestSnapshot {
            latency: LatencySummary { count: 10, mean_ms, ..LatencySummary::default() },
            ..RequestSnapshot::default()
        }
    }

    fn quiet_pool() -> PoolGauge {
        PoolGauge { size: 5, in_use: 1, min_connections: 5, max_connections: 20 }
    }

    #[test]
    fn defaults_match_the_documented_values() {
        let t = AlertThresholds::default();
        assert_eq!(t.cpu_warn_percent, 80.0);
        assert_eq!(t.memory_warn_percent, 85.0);
        assert_eq!(t.disk_error_percent, 90.0);
        assert_eq!(t.avg_response_warn_ms, 2_000.0);
        assert_eq!(t.pool_in_use_warn_ratio, 0.8);
        assert_eq!(t.pool_overflow_warn, 0);
        assert_eq!(t.pool_connections_warn_ratio, 0.9);
    }

    #[test]
    fn healthy_readings_raise_nothing() {
        let system = SystemSnapshot {
            cpu_usage_percent: 80.0, // Equal is not above.
            memory_usage_percent: 50.0,
            ..SystemSnapshot::default()
        };
        let alerts = evaluate(&AlertThresholds::default(), &system, &requests_with_mean(2_000.0), Some(quiet_pool()));
        assert!(alerts.is_empty(), "{alerts:?}");
    }

    #[test]
    fn system_and_latency_alerts() {
        let system =
            SystemSnapshot { cpu_usage_percent: 95.5, memory_usage_percent: 90.0, ..SystemSnapshot::default() };
        let alerts = evaluate(&AlertThresholds::default(), &system, &requests_with_mean(2_500.0), None);
        assert_eq!(names(&alerts), ["high_cpu", "high_memory", "slow_responses"]);
        assert!(alerts.iter().all(|a| a.severity == Severity::Warning));
        assert_eq!(alerts[0].value, 95.5);
        assert_eq!(alerts[0].threshold, 80.0);
        assert_eq!(alerts[2].value, 2_500.0);
        assert!(alerts[0].message.contains("95.5 %"), "{}", alerts[0].message);
    }

    #[test]
    fn no_requests_means_no_latency_alert() {
        let mut requests = requests_with_mean(5_000.0);
        requests.latency.count = 0;
        let alerts = evaluate(&AlertThresholds::default(), &SystemSnapshot::default(), &requests, None);
        assert!(alerts.is_empty());
    }

    #[test]
    fn pool_alerts() {
        let pool = PoolGauge { size: 19, in_use: 17, min_connections: 5, max_connections: 20 };
        let alerts =
            evaluate(&AlertThresholds::default(), &SystemSnapshot::default(), &RequestSnapshot::default(), Some(pool));
        assert_eq!(names(&alerts), ["pool_in_use", "pool_overflow", "pool_near_max"]);
        assert!((alerts[0].value - 17.0 / 19.0).abs() < 1e-12);
        assert_eq!(alerts[1].value, 14.0);
        assert_eq!(alerts[1].threshold, 0.0);
        assert!((alerts[2].value - 0.95).abs() < 1e-12);

        let tolerant = AlertThresholds { pool_overflow_warn: 14, ..AlertThresholds::default() };
        let alerts = evaluate(&tolerant, &SystemSnapshot::default(), &RequestSnapshot::default(), Some(pool));
        assert_eq!(names(&alerts), ["pool_in_use", "pool_near_max"]);
    }

    #[test]
    fn empty_pool_does_not_divide_by_zero() {
        let alerts = evaluate(
            &AlertThresholds::default(),
            &SystemSnapshot::default(),
            &RequestSnapshot::default(),
            Some(PoolGauge::default()),
        );
        assert!(alerts.is_empty(), "{alerts:?}");
    }

    #[test]
    fn alert_serialises_severity_in_lowercase() {
        let alert = Alert::warning("high_cpu", "m".into(), 90.0, 80.0);
        let json = serde_json::to_value(&alert).unwrap();
        assert_eq!(json["severity"], "warning");
        assert_eq!(json["name"], "high_cpu");
        assert_eq!(serde_json::to_value(Severity::Error).unwrap(), serde_json::json!("error"));
    }
}
