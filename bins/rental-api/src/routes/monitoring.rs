//! `/monitoring/*` and `/metrics`: health for load balancers, JSON views for admins, the Prometheus
//! exposition for scrapers.

use std::time::SystemTime;

use actix_web::http::StatusCode;
use actix_web::http::header::{AUTHORIZATION, CONTENT_TYPE};
use actix_web::{HttpRequest, HttpResponse, get, web};
use chrono::{DateTime, Utc};
use rental_monitor::{
    Alert, AlertInputs, CacheGauge, ComponentState, ComponentStatus, LatencySummary, PROMETHEUS_CONTENT_TYPE,
    PoolGauge, RequestSnapshot, RouteStats, Severity, SystemSnapshot,
};
use rental_service::jobs::QueueCounts;
use rental_tasks::WorkerSnapshot;
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::{ApiError, ApiResult, ErrorEnvelope};
use crate::extract::Auth;
use crate::state::AppState;

/// Overall health.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum OverallHealth {
    /// Everything works.
    Healthy,
    /// The service works, but a configured component's last operation failed.
    Degraded,
    /// The database does not answer: the service cannot work (HTTP 503).
    Unhealthy,
}

/// Up or down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum UpDown {
    /// Answering.
    Up,
    /// Not answering.
    Down,
}

/// A component's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ComponentStateView {
    /// Its last operation succeeded, or none ran yet.
    Up,
    /// Its last operation failed.
    Degraded,
    /// Not set up in this process.
    NotConfigured,
}

/// The database connection pool.
#[derive(Debug, Serialize, ToSchema)]
pub struct PoolView {
    /// Connections open now.
    pub size: u32,
    /// Connections lent out.
    pub in_use: u32,
    /// Open connections waiting for work.
    pub idle: u32,
    /// Callers waiting for a connection to begin a transaction.
    pub waiting: u32,
    /// Connections the pool keeps open.
    pub min_connections: u32,
    /// Most connections the pool may open.
    pub max_connections: u32,
    /// Transactions begun (and their connection waits timed) since start.
    pub acquires: u64,
    /// Mean wait for a connection, in milliseconds.
    pub acquire_wait_mean_ms: f64,
    /// Longest wait for a connection, in milliseconds.
    pub acquire_wait_max_ms: f64,
}

impl From<&PoolGauge> for PoolView {
    fn from(p: &PoolGauge) -> Self {
        Self {
            size: p.size,
            in_use: p.in_use,
            idle: p.idle,
            waiting: p.waiting,
            min_connections: p.min_connections,
            max_connections: p.max_connections,
            acquires: p.acquires,
            acquire_wait_mean_ms: p.acquire_wait_mean_ms(),
            acquire_wait_max_ms: p.acquire_wait_max_ms,
        }
    }
}

/// The database as the health check saw it.
#[derive(Debug, Serialize, ToSchema)]
pub struct DatabaseHealth {
    /// Whether `SELECT 1` answered.
    pub status: UpDown,
    /// `sqlite` or `postgres`.
    pub backend: String,
    /// How long `SELECT 1` took, when it answered.
    pub latency_ms: Option<f64>,
    /// When it was checked (results are reused for `monitor.health_cache_ms`).
    pub checked_at: DateTime<Utc>,
    /// The pool now.
    pub pool: PoolView,
}

/// A component in the public health view (no error messages: they may name addresses).
#[derive(Debug, Serialize, ToSchema)]
pub struct ComponentHealthView {
    /// `cache`, `smtp`, `redis`, `stripe`, …
    pub name: String,
    /// Whether it is set up.
    pub configured: bool,
    /// Its state.
    pub status: ComponentStateView,
    /// Last successful operation.
    pub last_success: Option<DateTime<Utc>>,
    /// Last failed operation.
    pub last_failure: Option<DateTime<Utc>>,
}

/// `GET /monitoring/health`.
#[derive(Debug, Serialize, ToSchema)]
pub struct HealthView {
    /// `unhealthy` (HTTP 503) when the database does not answer, `degraded` when a configured component's last
    /// operation failed, `healthy` otherwise.
    pub status: OverallHealth,
    /// The server's version.
    pub version: String,
    /// Seconds since the process started serving.
    pub uptime_secs: f64,
    /// The database.
    pub database: DatabaseHealth,
    /// Caches and outside services.
    pub components: Vec<ComponentHealthView>,
}

/// Latency statistics, milliseconds (quantiles within ±9.1 %).
#[derive(Debug, Serialize, ToSchema)]
pub struct LatencyView {
    /// Requests measured.
    pub count: u64,
    /// Mean.
    pub mean_ms: f64,
    /// Median.
    pub p50_ms: f64,
    /// 95th percentile.
    pub p95_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Slowest.
    pub max_ms: f64,
}

impl From<&LatencySummary> for LatencyView {
    fn from(l: &LatencySummary) -> Self {
        Self {
            count: l.count,
            mean_ms: l.mean_ms,
            p50_ms: l.p50_ms,
            p95_ms: l.p95_ms,
            p99_ms: l.p99_ms,
            max_ms: l.max_ms,
        }
    }
}

/// One route pattern's requests.
#[derive(Debug, Serialize, ToSchema)]
pub struct RouteView {
    /// The matched pattern, such as `/api/v1/users/{id}`; `other` past `monitor.max_routes`.
    pub route: String,
    /// Requests since start.
    pub requests: u64,
    /// Answered 4xx.
    pub client_errors: u64,
    /// Answered 5xx.
    pub server_errors: u64,
    /// `server_errors / requests`.
    pub error_rate: f64,
    /// Latency.
    pub latency: LatencyView,
}

impl From<&RouteStats> for RouteView {
    fn from(r: &RouteStats) -> Self {
        Self {
            route: r.route.clone(),
            requests: r.requests,
            client_errors: r.client_errors,
            server_errors: r.server_errors,
            error_rate: r.error_rate,
            latency: LatencyView::from(&r.latency),
        }
    }
}

/// All requests since start.
#[derive(Debug, Serialize, ToSchema)]
pub struct RequestsView {
    /// Requests.
    pub total: u64,
    /// Answered 4xx.
    pub client_errors: u64,
    /// Answered 5xx.
    pub server_errors: u64,
    /// `server_errors / total`.
    pub error_rate: f64,
    /// Being handled now.
    pub in_flight: u64,
    /// Mean rate since start, per second.
    pub requests_per_sec: f64,
    /// Rate over the last minute, per second.
    pub requests_per_sec_last_minute: f64,
    /// Latency of all routes together.
    pub latency: LatencyView,
    /// Per route pattern, most requested first.
    pub routes: Vec<RouteView>,
}

impl From<&RequestSnapshot> for RequestsView {
    fn from(r: &RequestSnapshot) -> Self {
        Self {
            total: r.total_requests,
            client_errors: r.client_errors,
            server_errors: r.server_errors,
            error_rate: r.error_rate,
            in_flight: r.in_flight,
            requests_per_sec: r.requests_per_sec,
            requests_per_sec_last_minute: r.requests_per_sec_last_minute,
            latency: LatencyView::from(&r.latency),
            routes: r.routes.iter().map(RouteView::from).collect(),
        }
    }
}

/// Statement counters of the pool.
#[derive(Debug, Serialize, ToSchema)]
pub struct StatementsView {
    /// Statements run.
    pub executed: u64,
    /// Statements that failed.
    pub failed: u64,
    /// Statements slower than `database.slow_statement_ms`.
    pub slow: u64,
}

/// The database in the admin view.
#[derive(Debug, Serialize, ToSchema)]
pub struct DatabaseMetrics {
    /// `sqlite` or `postgres`.
    pub backend: String,
    /// The pool.
    pub pool: PoolView,
    /// Statements.
    pub statements: StatementsView,
}

/// One cache.
#[derive(Debug, Serialize, ToSchema)]
pub struct CacheView {
    /// `users`, `user_lists`, `product_pages`.
    pub name: String,
    /// Lookups answered from the cache.
    pub hits: u64,
    /// Lookups that read the database.
    pub misses: u64,
    /// `hits / (hits + misses)`, `null` before the first lookup.
    pub hit_rate: Option<f64>,
    /// Entries held (approximate).
    pub entries: u64,
}

impl From<&CacheGauge> for CacheView {
    fn from(c: &CacheGauge) -> Self {
        Self { name: c.name.clone(), hits: c.hits, misses: c.misses, hit_rate: c.hit_rate(), entries: c.entries }
    }
}

/// The job queue.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobsMetrics {
    /// Counts from the database (every instance's jobs), refreshed at most every
    /// `monitor.refresh_interval_secs`; `null` when they cannot be read.
    pub queue: Option<QueueCounts>,
    /// This instance's worker, `null` when it runs none.
    pub worker: Option<WorkerSnapshot>,
}

/// A component in the admin view.
#[derive(Debug, Serialize, ToSchema)]
pub struct ComponentView {
    /// `cache`, `smtp`, `redis`, `stripe`, …
    pub name: String,
    /// Whether it is set up.
    pub configured: bool,
    /// Its state.
    pub status: ComponentStateView,
    /// What it is, or why it is not configured.
    pub detail: Option<String>,
    /// Successful operations since start.
    pub successes: u64,
    /// Failed operations since start.
    pub failures: u64,
    /// Last success.
    pub last_success: Option<DateTime<Utc>>,
    /// Last failure.
    pub last_failure: Option<DateTime<Utc>>,
    /// The last failure's message.
    pub last_error: Option<String>,
}

/// `GET /monitoring/metrics`.
#[derive(Debug, Serialize, ToSchema)]
pub struct MetricsView {
    /// Seconds since the process started serving.
    pub uptime_secs: f64,
    /// Requests.
    pub requests: RequestsView,
    /// The database.
    pub database: DatabaseMetrics,
    /// The services' caches.
    pub caches: Vec<CacheView>,
    /// The job queue and this instance's worker.
    pub jobs: JobsMetrics,
    /// Caches, mail and outside services.
    pub components: Vec<ComponentView>,
}

/// How serious an alert is.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SeverityView {
    /// Needs attention soon.
    Warning,
    /// Needs attention now.
    Error,
}

/// One firing alert.
#[derive(Debug, Serialize, ToSchema)]
pub struct AlertView {
    /// `high_cpu`, `high_memory`, `disk_full`, `slow_responses` (p95 over the latency window), `pool_in_use`, `pool_waiting`,
    /// `low_cache_hit_rate`, `dead_jobs`.
    pub name: String,
    /// What it is about when the rule applies to several things (a cache's name).
    pub subject: Option<String>,
    /// How serious.
    pub severity: SeverityView,
    /// What is wrong.
    pub message: String,
    /// The measured value.
    pub value: f64,
    /// The threshold it crossed (`monitor.thresholds.*`).
    pub threshold: f64,
    /// Since when it fires without interruption.
    pub since: DateTime<Utc>,
}

impl From<&Alert> for AlertView {
    fn from(a: &Alert) -> Self {
        Self {
            name: a.name.clone(),
            subject: a.subject.clone(),
            severity: match a.severity {
                Severity::Warning => SeverityView::Warning,
                Severity::Error => SeverityView::Error,
            },
            message: a.message.clone(),
            value: a.value,
            threshold: a.threshold,
            since: time(a.since_unix_ms).unwrap_or_default(),
        }
    }
}

/// `GET /monitoring/alerts`.
#[derive(Debug, Serialize, ToSchema)]
pub struct AlertsView {
    /// Alerts firing now, in a fixed order; empty when all is well.
    pub alerts: Vec<AlertView>,
    /// When the rules were evaluated.
    pub evaluated_at: DateTime<Utc>,
}

/// The disk holding `monitor.disk_path`.
#[derive(Debug, Serialize, ToSchema)]
pub struct DiskView {
    /// Where it is mounted.
    pub mount_point: String,
    /// Size, bytes.
    pub total_bytes: u64,
    /// Used, bytes.
    pub used_bytes: u64,
    /// Available, bytes.
    pub free_bytes: u64,
    /// Used, percent.
    pub usage_percent: f64,
}

/// Load average.
#[derive(Debug, Serialize, ToSchema)]
pub struct LoadView {
    /// One minute.
    pub one: f64,
    /// Five minutes.
    pub five: f64,
    /// Fifteen minutes.
    pub fifteen: f64,
}

/// `GET /monitoring/system`.
#[derive(Debug, Serialize, ToSchema)]
pub struct SystemView {
    /// The server's version.
    pub version: String,
    /// Host CPU usage, percent.
    pub cpu_usage_percent: f64,
    /// Logical CPUs.
    pub cpu_count: u64,
    /// Host RAM in use, bytes.
    pub memory_used_bytes: u64,
    /// Host RAM, bytes.
    pub memory_total_bytes: u64,
    /// Host RAM in use, percent.
    pub memory_usage_percent: f64,
    /// The monitored disk, `null` when none matched.
    pub disk: Option<DiskView>,
    /// This process's resident memory, bytes.
    pub process_rss_bytes: Option<u64>,
    /// This process's CPU usage, percent of one CPU.
    pub process_cpu_percent: Option<f64>,
    /// This process's open files.
    pub process_open_files: Option<u64>,
    /// This process's limit of open files.
    pub process_open_files_limit: Option<u64>,
    /// Host load average, `null` where unknown.
    pub load_average: Option<LoadView>,
    /// Seconds since the monitor started.
    pub uptime_secs: f64,
    /// When the figures were read (every `monitor.refresh_interval_secs`).
    pub refreshed_at: Option<DateTime<Utc>>,
    /// The effective settings the server runs with (such as its performance profile); `null` when none were
    /// given.
    #[schema(value_type = Option<Object>)]
    pub effective: serde_json::Value,
}

impl SystemView {
    fn new(s: &SystemSnapshot, effective: serde_json::Value) -> Self {
        Self {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            cpu_usage_percent: s.cpu_usage_percent,
            cpu_count: s.cpu_count as u64,
            memory_used_bytes: s.memory_used_bytes,
            memory_total_bytes: s.memory_total_bytes,
            memory_usage_percent: s.memory_usage_percent,
            disk: s.disk.as_ref().map(|d| DiskView {
                mount_point: d.mount_point.clone(),
                total_bytes: d.total_bytes,
                used_bytes: d.used_bytes,
                free_bytes: d.free_bytes,
                usage_percent: d.usage_percent,
            }),
            process_rss_bytes: s.process_rss_bytes,
            process_cpu_percent: s.process_cpu_percent,
            process_open_files: s.process_open_files,
            process_open_files_limit: s.process_open_files_limit,
            load_average: s.load_average.map(|l| LoadView { one: l.one, five: l.five, fifteen: l.fifteen }),
            uptime_secs: s.uptime_secs,
            refreshed_at: time(s.taken_at_unix_ms),
            effective,
        }
    }
}

fn time(unix_ms: u64) -> Option<DateTime<Utc>> {
    i64::try_from(unix_ms).ok().and_then(DateTime::from_timestamp_millis).filter(|_| unix_ms > 0)
}

fn state_view(state: ComponentState) -> ComponentStateView {
    match state {
        ComponentState::Up => ComponentStateView::Up,
        ComponentState::Degraded => ComponentStateView::Degraded,
        ComponentState::NotConfigured => ComponentStateView::NotConfigured,
    }
}

fn component_view(s: ComponentStatus) -> ComponentView {
    ComponentView {
        name: s.name,
        configured: s.configured,
        status: state_view(s.state),
        detail: s.detail,
        successes: s.successes,
        failures: s.failures,
        last_success: s.last_success_unix_ms.and_then(time),
        last_failure: s.last_failure_unix_ms.and_then(time),
        last_error: s.last_error,
    }
}

fn backend(state: &AppState) -> String {
    format!("{:?}", state.db.backend()).to_lowercase()
}

/// Health for load balancers and uptime checks: the database's `SELECT 1` (shared by concurrent probes and
/// reused for `monitor.health_cache_ms`, so it can be probed every second), the pool, the caches, mail and the
/// outside services. 503 when the database does not answer.
#[utoipa::path(tag = "monitoring",
    responses(
        (status = 200, description = "Healthy or degraded", body = HealthView),
        (status = 503, description = "Unhealthy: the database does not answer", body = HealthView)
    ))]
#[get("/monitoring/health")]
pub async fn health(state: web::Data<AppState>) -> HttpResponse {
    let monitoring = &state.monitoring;
    let (probe, _age) = monitoring.probe_database(&state.db).await;
    let pool = monitoring.pool(&state.db);
    let components = monitoring.monitor.components.statuses();
    let status = if probe.latency.is_none() {
        OverallHealth::Unhealthy
    } else if components.iter().any(|c| c.state == ComponentState::Degraded) {
        OverallHealth::Degraded
    } else {
        OverallHealth::Healthy
    };
    let view = HealthView {
        status,
        version: env!("CARGO_PKG_VERSION").to_owned(),
        uptime_secs: state.started.elapsed().as_secs_f64(),
        database: DatabaseHealth {
            status: if probe.latency.is_some() { UpDown::Up } else { UpDown::Down },
            backend: backend(&state),
            latency_ms: probe.latency.map(|l| l.as_secs_f64() * 1_000.0),
            checked_at: DateTime::<Utc>::from(probe.at),
            pool: PoolView::from(&pool),
        },
        components: components
            .into_iter()
            .map(|c| ComponentHealthView {
                name: c.name,
                configured: c.configured,
                status: state_view(c.state),
                last_success: c.last_success_unix_ms.and_then(time),
                last_failure: c.last_failure_unix_ms.and_then(time),
            })
            .collect(),
    };
    let code = if status == OverallHealth::Unhealthy { StatusCode::SERVICE_UNAVAILABLE } else { StatusCode::OK };
    HttpResponse::build(code).insert_header(("Cache-Control", "no-store")).json(view)
}

/// Request, database, cache, job and component figures (admin).
#[utoipa::path(tag = "monitoring", security(("bearer" = [])),
    responses((status = 200, body = MetricsView), (status = 403, body = ErrorEnvelope)))]
#[get("/monitoring/metrics")]
pub async fn metrics(state: web::Data<AppState>, auth: Auth) -> ApiResult<web::Json<MetricsView>> {
    auth.0.require_admin()?;
    let monitoring = &state.monitoring;
    let requests = monitoring.monitor.requests.snapshot();
    let pool = monitoring.pool(&state.db);
    let caches = monitoring.caches(&state.services);
    let queue = state.services.jobs.queue_counts().await.ok();
    let statements = state.db.statement_stats();
    Ok(web::Json(MetricsView {
        uptime_secs: state.started.elapsed().as_secs_f64(),
        requests: RequestsView::from(&requests),
        database: DatabaseMetrics {
            backend: backend(&state),
            pool: PoolView::from(&pool),
            statements: StatementsView {
                executed: statements.executed(),
                failed: statements.failed(),
                slow: statements.slow(),
            },
        },
        caches: caches.iter().map(CacheView::from).collect(),
        jobs: JobsMetrics { queue, worker: state.worker.as_ref().map(|w| w.snapshot()) },
        components: monitoring.monitor.components.statuses().into_iter().map(component_view).collect(),
    }))
}

/// The alerts firing now, each with since when (admin). Thresholds come from `monitor.thresholds`; the latency
/// rule looks at the requests of the last `monitor.thresholds.latency_window_secs` (measured between marks taken
/// by each evaluation and each `/metrics` scrape).
#[utoipa::path(tag = "monitoring", security(("bearer" = [])),
    responses((status = 200, body = AlertsView), (status = 403, body = ErrorEnvelope)))]
#[get("/monitoring/alerts")]
pub async fn alerts(state: web::Data<AppState>, auth: Auth) -> ApiResult<web::Json<AlertsView>> {
    auth.0.require_admin()?;
    let monitoring = &state.monitoring;
    let monitor = &monitoring.monitor;
    let host = monitor.system.snapshot();
    let latency = monitor.recent_latency.observe(&monitor.requests);
    let pool = monitoring.pool(&state.db);
    let caches = monitoring.caches(&state.services);
    let queue = monitoring.queue(&state.services).await;
    let inputs = AlertInputs {
        system: Some(&host),
        recent_latency: Some(&latency),
        pool: Some(&pool),
        caches: &caches,
        queue: queue.as_ref(),
    };
    let now = SystemTime::now();
    let alerts = monitor.alerts.evaluate(&monitor.config.thresholds, &inputs, now);
    Ok(web::Json(AlertsView { alerts: alerts.iter().map(AlertView::from).collect(), evaluated_at: now.into() }))
}

/// Host and process resources, refreshed in the background, and the effective settings (admin).
#[utoipa::path(tag = "monitoring", security(("bearer" = [])),
    responses((status = 200, body = SystemView), (status = 403, body = ErrorEnvelope)))]
#[get("/monitoring/system")]
pub async fn system(state: web::Data<AppState>, auth: Auth) -> ApiResult<web::Json<SystemView>> {
    auth.0.require_admin()?;
    let monitoring = &state.monitoring;
    Ok(web::Json(SystemView::new(&monitoring.monitor.system.snapshot(), monitoring.effective.clone())))
}

/// Prometheus text exposition of every metric: ours (`rental_*`) and any the process records through the
/// `metrics` facade. Open unless `monitor.metrics_token` is set; then it needs `Authorization: Bearer <token>`.
///
/// The token is optional, so the document declares no security requirement for this route (a scraper without one
/// is answered when no token is configured); the 401 is documented as a response.
#[utoipa::path(tag = "monitoring",
    responses(
        (status = 200, description = "Prometheus text format 0.0.4", content_type = "text/plain; version=0.0.4; charset=utf-8", body = String),
        (status = 401, description = "`monitor.metrics_token` is set and the request lacks it", body = ErrorEnvelope)
    ))]
#[get("/metrics")]
pub async fn prometheus(state: web::Data<AppState>, req: HttpRequest) -> ApiResult<HttpResponse> {
    let monitoring = &state.monitoring;
    if let Some(expected) = &monitoring.monitor.config.metrics_token {
        let given = req
            .headers()
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim());
        if !given.is_some_and(|token| constant_time_eq(token.as_bytes(), expected.as_bytes())) {
            return Err(ApiError::unauthorized("the metrics need Authorization: Bearer <monitor.metrics_token>"));
        }
    }
    // The pool, caches and queue are read now (the queue at most once per refresh interval); the system gauges
    // come from the background refresher.
    monitoring.pool(&state.db);
    monitoring.caches(&state.services);
    monitoring.monitor.components.statuses();
    monitoring.queue(&state.services).await;
    // Each scrape also marks the latency histogram, so the alerts' latency window has marks between
    // evaluations.
    monitoring.monitor.recent_latency.observe(&monitoring.monitor.requests);
    let body = monitoring.monitor.exporter.render();
    Ok(HttpResponse::Ok().insert_header((CONTENT_TYPE, PROMETHEUS_CONTENT_TYPE)).body(body))
}

/// Compares without stopping at the first difference, so the time taken does not tell how much of a guess
/// was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_exactly() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }

    #[test]
    fn unix_milliseconds_become_times() {
        assert_eq!(time(0), None);
        assert_eq!(time(1_000).unwrap().timestamp(), 1);
    }
}
