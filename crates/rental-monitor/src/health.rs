//! Health report types: [`HealthStatus`], [`ComponentHealth`], [`HealthReport`].

use serde::Serialize;

/// Health of one component or of the whole service, ordered from best to worst
/// (`Up < Degraded < Down`). Serialised as `"up"`, `"degraded"`, `"down"`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthStatus {
    /// Working normally.
    #[default]
    Up,
    /// Working, but slow or partly unavailable.
    Degraded,
    /// Not working.
    Down,
}

impl HealthStatus {
    /// The worse of two statuses.
    pub fn worst(self, other: Self) -> Self {
        self.max(other)
    }
}

/// Result of checking one dependency (database, cache, mail server, ...).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ComponentHealth {
    /// Name of the component, such as `"database"`.
    pub name: String,
    /// Its status.
    pub status: HealthStatus,
    /// How long the check took, in milliseconds, if it was timed.
    pub latency_ms: Option<f64>,
    /// Human-readable detail, such as an error message. Do not put secrets here: health
    /// reports are often public.
    pub detail: Option<String>,
}

impl ComponentHealth {
    /// A component with the given status and no latency or detail.
    pub fn new(name: impl Into<String>, status: HealthStatus) -> Self {
        Self { name: name.into(), status, latency_ms: None, detail: None }
    }

    /// Sets the check's latency from a duration.
    #[must_use]
    pub fn with_latency(mut self, latency: std::time::Duration) -> Self {
        self.latency_ms = Some(latency.as_secs_f64() * 1_000.0);
        self
    }

    /// Sets the detail text.
    #[must_use]
    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }
}

/// Health of the whole service: the worst status of its components.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HealthReport {
    /// Worst status among `components`; [`HealthStatus::Up`] when there are none.
    pub status: HealthStatus,
    /// The individual checks.
    pub components: Vec<ComponentHealth>,
    /// Seconds the service has been running.
    pub uptime_secs: f64,
}

impl HealthReport {
    /// Builds a report whose status is the worst of the components' statuses.
    pub fn new(components: Vec<ComponentHealth>, uptime_secs: f64) -> Self {
        let status = components.iter().map(|c| c.status).fold(HealthStatus::Up, HealthStatus::worst);
        Self { status, components, uptime_secs }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn overall_status_is_the_worst_component() {
        let up = ComponentHealth::new("db", HealthStatus::Up);
        let degraded = ComponentHealth::new("cache", HealthStatus::Degraded);
        let down = ComponentHealth::new("smtp", HealthStatus::Down);

        assert_eq!(HealthReport::new(vec![], 1.0).status, HealthStatus::Up);
        assert_eq!(HealthReport::new(vec![up.clone()], 1.0).status, HealthStatus::Up);
        assert_eq!(HealthReport::new(vec![degraded.clone(), up.clone()], 1.0).status, HealthStatus::Degraded);
        assert_eq!(HealthReport::new(vec![up, down, degraded], 1.0).status, HealthStatus::Down);
    }

    #[test]
    fn report_serialises_to_the_documented_shape() {
        let report = HealthReport::new(
            vec![
                ComponentHealth::new("database", HealthStatus::Up).with_latency(Duration::from_micros(1_500)),
                ComponentHealth::new("redis", HealthStatus::Degraded).with_detail("timeout"),
            ],
            42.5,
        );
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "status": "degraded",
                "components": [
                    {"name": "database", "status": "up", "latency_ms": 1.5, "detail": null},
                    {"name": "redis", "status": "degraded", "latency_ms": null, "detail": "timeout"}
                ],
                "uptime_secs": 42.5
            })
        );
    }
}
