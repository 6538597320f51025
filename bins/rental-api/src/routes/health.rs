//! Liveness and readiness.

use actix_web::{HttpResponse, get, web};
use rental_monitor::{ComponentHealth, HealthReport, HealthStatus};
use serde::Serialize;
use utoipa::ToSchema;

use crate::state::AppState;

/// Liveness answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct Live {
    /// Always `ok`.
    pub status: &'static str,
}

/// A component's state, as [`HealthStatus`] writes it.
#[derive(Debug, ToSchema)]
#[schema(as = HealthStatus)]
#[schema(rename_all = "lowercase")]
pub enum HealthStatusSchema {
    /// Working.
    Up,
    /// Working with reduced capacity.
    Degraded,
    /// Not working.
    Down,
}

/// The schema of one [`ComponentHealth`] (rental-monitor is a leaf without utoipa).
#[derive(Debug, ToSchema)]
#[schema(as = ComponentHealth)]
pub struct ComponentHealthSchema {
    /// Component name, e.g. `database`.
    pub name: String,
    /// Its state.
    pub status: HealthStatusSchema,
    /// How long the probe took.
    pub latency_ms: Option<f64>,
    /// What was seen.
    pub detail: Option<String>,
}

/// The schema of the readiness answer, [`HealthReport`].
#[derive(Debug, ToSchema)]
#[schema(as = HealthReport)]
pub struct HealthReportSchema {
    /// The worst state of any component.
    pub status: HealthStatusSchema,
    /// Every component probed.
    pub components: Vec<ComponentHealthSchema>,
    /// Seconds since the process started.
    pub uptime_secs: f64,
}

/// The process is up and serving. Touches nothing else, so it is the ceiling of the load tests.
#[utoipa::path(tag = "health", responses((status = 200, body = Live)))]
#[get("/health/live")]
pub async fn live() -> HttpResponse {
    HttpResponse::Ok().json(Live { status: "ok" })
}

/// The process can serve requests: the database answers `SELECT 1`. 503 otherwise.
#[utoipa::path(
    tag = "health",
    responses(
        (status = 200, description = "Ready", body = HealthReportSchema),
        (status = 503, description = "A dependency is down", body = HealthReportSchema)
    )
)]
#[get("/health/ready")]
pub async fn ready(state: web::Data<AppState>) -> HttpResponse {
    let pool = state.db.pool_stats();
    // While the availability probe says the server is lost, the pool would only make this wait.
    let ping = async {
        match state.db.availability().down_since() {
            Some(_) => Err(state.db.availability().last_error().unwrap_or_else(|| "unavailable".to_owned())),
            None => state.db.ping().await.map_err(|err| err.to_string()),
        }
    };
    let database = match ping.await {
        Ok(latency) => ComponentHealth::new("database", HealthStatus::Up).with_latency(latency).with_detail(format!(
            "{:?}: {} open, {} in use, {} max",
            state.db.backend(),
            pool.size,
            pool.in_use,
            pool.max_connections
        )),
        Err(err) => {
            tracing::warn!(error = %err, "readiness: database unreachable");
            ComponentHealth::new("database", HealthStatus::Down).with_detail("database unreachable")
        }
    };
    let report = HealthReport::new(vec![database], state.started.elapsed().as_secs_f64());
    let mut response =
        if report.status == HealthStatus::Down { HttpResponse::ServiceUnavailable() } else { HttpResponse::Ok() };
    response.json(report)
}
