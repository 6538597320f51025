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

/// The process is up and serving. Touches nothing else, so it is the ceiling of the load tests.
#[utoipa::path(tag = "health", responses((status = 200, body = Live)))]
#[get("/health/live")]
pub async fn live() -> HttpResponse {
    HttpResponse::Ok().json(Live { status: "ok" })
}

/// The process can serve requests: the database answers `SELECT 1`. 503 otherwise.
#[utoipa::path(
    tag = "health",
    responses((status = 200, description = "Ready"), (status = 503, description = "A dependency is down"))
)]
#[get("/health/ready")]
pub async fn ready(state: web::Data<AppState>) -> HttpResponse {
    let pool = state.db.pool_stats();
    let database = match state.db.ping().await {
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
