//! What every handler can reach.

use std::sync::Arc;
use std::time::Instant;

use rental_monitor::RequestMetrics;
use rental_repo::Database;
use rental_service::Services;
use rental_tasks::WorkerStats;

use crate::monitoring::Monitoring;

/// Shared application state, cloned into every worker.
#[derive(Debug, Clone)]
pub struct AppState {
    /// Business operations.
    pub services: Services,
    /// The pool, for readiness checks.
    pub db: Database,
    /// Request statistics (the monitor's, `monitoring.monitor.requests`).
    pub metrics: RequestMetrics,
    /// Metrics, health and alerts for the monitoring endpoints.
    pub monitoring: Arc<Monitoring>,
    /// When the process started serving.
    pub started: Instant,
    /// Requests slower than this are logged as warnings (`log.slow_request_ms`).
    pub slow_request: std::time::Duration,
    /// The job worker's figures, when this instance runs one.
    pub worker: Option<Arc<WorkerStats>>,
    /// Stripe, when configured.
    pub payments: crate::routes::payments::Payments,
}
