//! What every handler can reach.

use std::time::Instant;

use rental_monitor::RequestMetrics;
use rental_repo::Database;
use rental_service::Services;

/// Shared application state, cloned into every worker.
#[derive(Debug, Clone)]
pub struct AppState {
    /// Business operations.
    pub services: Services,
    /// The pool, for readiness checks.
    pub db: Database,
    /// Request statistics.
    pub metrics: RequestMetrics,
    /// When the process started serving.
    pub started: Instant,
}
