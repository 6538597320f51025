//! `/api/v1/admin/jobs*`: the background job queue, for admins.

use actix_web::{HttpResponse, get, post, web};
use rental_service::jobs::{JobView, QueueCounts};
use rental_tasks::WorkerSnapshot;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::error::{ApiResult, ErrorEnvelope};
use crate::extract::{Auth, QueryPairs};
use crate::routes::{PageOf, parse_id};
use crate::state::AppState;

/// Query parameters of the job list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct JobListParams {
    /// `queued`, `retrying`, `running`, `succeeded`, `dead` or `cancelled`.
    #[param(pattern = "^(queued|retrying|running|succeeded|dead|cancelled)$")]
    pub state: Option<String>,
    /// Job kind, exactly (`mail.send`, `orders.settle`, …).
    #[param(pattern = "^[A-Za-z0-9._-]{1,64}$")]
    pub kind: Option<String>,
    /// Enqueued at or after (RFC 3339 or YYYY-MM-DD).
    #[param(format = Date)]
    pub created_after: Option<String>,
    /// Enqueued before (RFC 3339 or YYYY-MM-DD).
    #[param(format = Date)]
    pub created_before: Option<String>,
    /// Offset pagination: page number, 1 to 1,000,000,000.
    #[param(minimum = 1, maximum = 1000000000)]
    pub page: Option<u64>,
    /// Offset pagination: 1–100, default 20.
    #[param(minimum = 1, maximum = 100)]
    pub per_page: Option<u64>,
    /// Keyset pagination: `next_cursor` of the previous page. Empty: the first page.
    pub cursor: Option<String>,
    /// Keyset pagination: 1–100, default 50.
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u64>,
    /// Keyset pagination: `false` skips counting all matches.
    pub include_total: Option<bool>,
    /// `created_at` (default `-created_at`) or `run_at`; prefix `-` for descending.
    #[param(pattern = "^-?(created_at|run_at)$")]
    pub sort: Option<String>,
}

/// The queue's figures: counts from the database (every instance's jobs) and this instance's worker.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobStats {
    /// Depth, queued, retrying, running and dead jobs, per kind and in total.
    pub queue: QueueCounts,
    /// This instance's worker (`null` when it runs none): jobs run, enqueue-to-start latency, unknown kinds.
    pub worker: Option<WorkerSnapshot>,
}

/// List jobs (admin), newest first by default.
#[utoipa::path(tag = "jobs", security(("bearer" = [])), params(JobListParams),
    responses((status = 200, body = PageOf<JobView>), (status = 400, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope)))]
#[get("/admin/jobs")]
pub async fn list(state: web::Data<AppState>, auth: Auth, query: QueryPairs) -> ApiResult<HttpResponse> {
    let listing = state.services.jobs.list(&auth.0, &query.0).await?;
    Ok(HttpResponse::Ok().json(listing))
}

/// The queue's figures (admin): depth, running, retrying and dead jobs, enqueue-to-start latency.
#[utoipa::path(tag = "jobs", security(("bearer" = [])),
    responses((status = 200, body = JobStats), (status = 403, body = ErrorEnvelope)))]
#[get("/admin/jobs/stats")]
pub async fn stats(state: web::Data<AppState>, auth: Auth) -> ApiResult<web::Json<JobStats>> {
    let queue = state.services.jobs.counts(&auth.0).await?;
    let worker = state.worker.as_ref().map(|w| w.snapshot());
    Ok(web::Json(JobStats { queue, worker }))
}

/// One job (admin), with its arguments and last error.
#[utoipa::path(tag = "jobs", security(("bearer" = [])), params(("id" = uuid::Uuid, Path, description = "Job id")),
    responses((status = 200, body = JobView), (status = 400, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
#[get("/admin/jobs/{id}")]
pub async fn get(state: web::Data<AppState>, auth: Auth, id: web::Path<String>) -> ApiResult<web::Json<JobView>> {
    let id = parse_id(&id, "job")?;
    Ok(web::Json(state.services.jobs.get(&auth.0, id).await?))
}

/// Run a dead, cancelled or waiting job again now, with its attempts reset (admin).
#[utoipa::path(tag = "jobs", security(("bearer" = [])), params(("id" = uuid::Uuid, Path, description = "Job id")),
    responses((status = 200, body = JobView), (status = 400, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope),
        (status = 409, description = "The job is running or succeeded", body = ErrorEnvelope)))]
#[post("/admin/jobs/{id}/retry")]
pub async fn retry(state: web::Data<AppState>, auth: Auth, id: web::Path<String>) -> ApiResult<web::Json<JobView>> {
    let id = parse_id(&id, "job")?;
    Ok(web::Json(state.services.jobs.retry(&auth.0, id).await?))
}

/// Cancel a waiting job (admin).
#[utoipa::path(tag = "jobs", security(("bearer" = [])), params(("id" = uuid::Uuid, Path, description = "Job id")),
    responses((status = 200, body = JobView), (status = 400, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope),
        (status = 409, description = "The job is not waiting", body = ErrorEnvelope)))]
#[post("/admin/jobs/{id}/cancel")]
pub async fn cancel(state: web::Data<AppState>, auth: Auth, id: web::Path<String>) -> ApiResult<web::Json<JobView>> {
    let id = parse_id(&id, "job")?;
    Ok(web::Json(state.services.jobs.cancel(&auth.0, id).await?))
}
