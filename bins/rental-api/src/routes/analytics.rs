//! `/api/v1/analytics/*` and `/api/v1/exports/*.csv`: reports for staff and admins (customers get a 403).
//!
//! `from` and `to` are dates (`2026-01-31`, midnight UTC) or RFC 3339 instants; windows are `[from, to)`, of any
//! length. A window whose `to` is not after its `from` is empty and answers an empty report (a CSV export with
//! its header row only), as OpenAPI cannot say that `to` must follow `from`.
//! The CSV exports are streamed: the rows are read from the database a page at a time (keyset paging) and each
//! page is written out before the next is read, so memory stays bounded whatever the size of the export.

use actix_web::http::header::{CONTENT_DISPOSITION, HeaderValue};
use actix_web::web::Bytes;
use actix_web::{HttpResponse, get, web};
use chrono::{DateTime, NaiveDate, NaiveTime, SecondsFormat, Utc};
use rental_service::{
    AnalyticsService, ExportCursor, InvoiceExportRecord, OrderExportRecord, PopularProducts, RevenueReport,
    ServiceError, StatusDistribution, UtilizationReport, Window,
};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::error::{ApiError, ApiResult, ErrorEnvelope};
use crate::extract::Auth;
use crate::state::AppState;

/// Rows read from the database per page of an export.
const EXPORT_PAGE: u64 = 1_000;

fn invalid(field: &str, message: impl Into<String>) -> ApiError {
    ApiError::from(ServiceError::InvalidQuery { field: field.to_owned(), message: message.into() })
}

/// Parses a date (midnight UTC) or an RFC 3339 instant.
fn parse_instant(raw: &str, field: &str) -> ApiResult<DateTime<Utc>> {
    if let Ok(at) = DateTime::parse_from_rfc3339(raw) {
        return Ok(at.with_timezone(&Utc));
    }
    NaiveDate::parse_from_str(raw, "%Y-%m-%d")
        .map(|day| day.and_time(NaiveTime::MIN).and_utc())
        .map_err(|_| invalid(field, format!("must be a date (YYYY-MM-DD) or an RFC 3339 time, got `{raw}`")))
}

fn optional_instant(raw: Option<&str>, field: &str) -> ApiResult<Option<DateTime<Utc>>> {
    raw.map(|raw| parse_instant(raw, field)).transpose()
}

fn required_instant(raw: Option<&str>, field: &str) -> ApiResult<DateTime<Utc>> {
    optional_instant(raw, field)?.ok_or_else(|| invalid(field, "is required"))
}

// ---- parameters -----------------------------------------------------------------------------------------------

/// A required window `[from, to)`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WindowParams {
    /// Start, included: a date (midnight UTC) or an RFC 3339 time.
    #[param(required = true, value_type = String, format = Date)]
    pub from: Option<String>,
    /// End, excluded: a date or an RFC 3339 time; not after `from`, the window is empty.
    #[param(required = true, value_type = String, format = Date)]
    pub to: Option<String>,
}

impl WindowParams {
    fn parse(&self) -> ApiResult<(DateTime<Utc>, DateTime<Utc>)> {
        Ok((required_instant(self.from.as_deref(), "from")?, required_instant(self.to.as_deref(), "to")?))
    }
}

/// Ranking parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PopularParams {
    /// Products to return, 1–100, default 10.
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u64>,
    /// Only order lines whose rental period ends after this (date or RFC 3339).
    #[param(format = Date)]
    pub from: Option<String>,
    /// Only order lines whose rental period starts before this (date or RFC 3339); with a `from` that is not
    /// before it, no line is counted.
    #[param(format = Date)]
    pub to: Option<String>,
}

/// Utilization parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UtilizationParams {
    /// Start of the window, included (date or RFC 3339).
    #[param(required = true, value_type = String, format = Date)]
    pub from: Option<String>,
    /// End of the window, excluded (date or RFC 3339); not after `from`, the window is empty.
    #[param(required = true, value_type = String, format = Date)]
    pub to: Option<String>,
    /// Products to return, most used first, 1–1000, default 100.
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u64>,
}

// ---- handlers -------------------------------------------------------------------------------------------------

/// Revenue per currency and day (staff), over whole UTC days: `from`'s day up to `to` rounded up to the next
/// midnight. An empty window (`to` not after `from`) has no days.
#[utoipa::path(tag = "analytics", security(("bearer" = [])), params(WindowParams),
    responses((status = 200, body = RevenueReport), (status = 400, body = ErrorEnvelope),
        (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope)))]
#[get("/analytics/revenue")]
pub async fn revenue(
    state: web::Data<AppState>,
    auth: Auth,
    params: web::Query<WindowParams>,
) -> ApiResult<web::Json<RevenueReport>> {
    let (from, to) = params.parse()?;
    Ok(web::Json(state.services.analytics.revenue(&auth.0, from, to).await?))
}

/// Products ranked by rented quantity (staff). With both `from` and `to`, only the lines overlapping
/// `[from, to)`: none when `to` is not after `from`.
#[utoipa::path(tag = "analytics", security(("bearer" = [])), params(PopularParams),
    responses((status = 200, body = PopularProducts), (status = 400, body = ErrorEnvelope),
        (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope)))]
#[get("/analytics/popular-products")]
pub async fn popular_products(
    state: web::Data<AppState>,
    auth: Auth,
    params: web::Query<PopularParams>,
) -> ApiResult<web::Json<PopularProducts>> {
    let from = optional_instant(params.from.as_deref(), "from")?;
    let to = optional_instant(params.to.as_deref(), "to")?;
    Ok(web::Json(state.services.analytics.popular_products(&auth.0, params.limit.unwrap_or(10), from, to).await?))
}

/// Orders per status (staff).
#[utoipa::path(tag = "analytics", security(("bearer" = [])),
    responses((status = 200, body = StatusDistribution), (status = 401, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope)))]
#[get("/analytics/status-distribution")]
pub async fn status_distribution(state: web::Data<AppState>, auth: Auth) -> ApiResult<web::Json<StatusDistribution>> {
    Ok(web::Json(state.services.analytics.status_distribution(&auth.0).await?))
}

/// The products whose capacity was most used over a window (staff); none over an empty window (`to` not after
/// `from`).
#[utoipa::path(tag = "analytics", security(("bearer" = [])), params(UtilizationParams),
    responses((status = 200, body = UtilizationReport), (status = 400, body = ErrorEnvelope),
        (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope)))]
#[get("/analytics/utilization")]
pub async fn utilization(
    state: web::Data<AppState>,
    auth: Auth,
    params: web::Query<UtilizationParams>,
) -> ApiResult<web::Json<UtilizationReport>> {
    let from = required_instant(params.from.as_deref(), "from")?;
    let to = required_instant(params.to.as_deref(), "to")?;
    Ok(web::Json(state.services.analytics.utilization(&auth.0, from, to, params.limit.unwrap_or(100)).await?))
}

// ---- CSV exports ----------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy)]
enum Export {
    Orders,
    Invoices,
}

impl Export {
    fn header(self) -> &'static [&'static str] {
        match self {
            Export::Orders => &[
                "id",
                "customer_id",
                "status",
                "currency",
                "subtotal_minor",
                "tax_minor",
                "total_minor",
                "deposit_minor",
                "starts_at",
                "ends_at",
                "created_at",
            ],
            Export::Invoices => &[
                "number",
                "status",
                "order_id",
                "customer_id",
                "currency",
                "subtotal_minor",
                "tax_minor",
                "total_minor",
                "paid_minor",
                "issued_at",
            ],
        }
    }

    fn file_name(self) -> &'static str {
        match self {
            Export::Orders => "orders.csv",
            Export::Invoices => "invoices.csv",
        }
    }
}

fn time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

fn order_record(r: &OrderExportRecord) -> [String; 11] {
    [
        r.id.to_string(),
        r.customer_id.to_string(),
        r.status.clone(),
        r.totals.total.currency.to_string(),
        r.totals.subtotal.amount_minor.to_string(),
        r.totals.tax.amount_minor.to_string(),
        r.totals.total.amount_minor.to_string(),
        r.totals.deposit.amount_minor.to_string(),
        time(r.starts_at),
        time(r.ends_at),
        time(r.created_at),
    ]
}

fn invoice_record(r: &InvoiceExportRecord) -> [String; 10] {
    [
        r.number.clone().unwrap_or_default(),
        r.status.clone(),
        r.order_id.to_string(),
        r.customer_id.to_string(),
        r.total.currency.to_string(),
        r.subtotal.amount_minor.to_string(),
        r.tax.amount_minor.to_string(),
        r.total.amount_minor.to_string(),
        r.amount_paid.amount_minor.to_string(),
        time(r.issued_at),
    ]
}

/// One page of an export as CSV text: the rows, the cursor after the last and how many there were.
struct CsvPage {
    bytes: Bytes,
    after: Option<ExportCursor>,
    rows: usize,
}

fn csv_error(err: csv::Error) -> ServiceError {
    ServiceError::Internal(format!("cannot write CSV: {err}"))
}

/// Reads the page after `after` and writes it as CSV, preceded by the header row when `header`.
async fn csv_page(
    analytics: &AnalyticsService,
    export: Export,
    window: Window,
    after: Option<ExportCursor>,
    header: bool,
) -> Result<CsvPage, ServiceError> {
    let mut writer = csv::WriterBuilder::new().has_headers(false).from_writer(Vec::with_capacity(128 * 1024));
    if header {
        writer.write_record(export.header()).map_err(csv_error)?;
    }
    let (after, rows) = match export {
        Export::Orders => {
            let page = analytics.export_orders_page(window, after, EXPORT_PAGE).await?;
            for row in &page {
                writer.write_record(order_record(row)).map_err(csv_error)?;
            }
            (page.last().map(OrderExportRecord::cursor), page.len())
        }
        Export::Invoices => {
            let page = analytics.export_invoices_page(window, after, EXPORT_PAGE).await?;
            for row in &page {
                writer.write_record(invoice_record(row)).map_err(csv_error)?;
            }
            (page.last().map(InvoiceExportRecord::cursor), page.len())
        }
    };
    let bytes = writer.into_inner().map_err(|e| ServiceError::Internal(format!("cannot write CSV: {e}")))?;
    Ok(CsvPage { bytes: Bytes::from(bytes), after, rows })
}

/// Where a streamed export is.
struct ExportState {
    analytics: AnalyticsService,
    export: Export,
    window: Window,
    /// The first page, read before the response started so that its errors are proper error responses.
    first: Option<CsvPage>,
    after: Option<ExportCursor>,
    done: bool,
}

async fn stream_export(
    state: &AppState,
    auth: &Auth,
    export: Export,
    params: &WindowParams,
) -> ApiResult<HttpResponse> {
    let (from, to) = params.parse()?;
    let analytics = state.services.analytics.clone();
    let window = analytics.export_window(&auth.0, from, to)?;
    let first = csv_page(&analytics, export, window, None, true).await?;
    let start = ExportState { analytics, export, window, first: Some(first), after: None, done: false };
    let body = futures_util::stream::try_unfold(start, |mut st| async move {
        if st.done {
            return Ok(None);
        }
        let page = match st.first.take() {
            Some(page) => page,
            None => csv_page(&st.analytics, st.export, st.window, st.after, false).await.inspect_err(|err| {
                tracing::error!(error = %err, export = st.export.file_name(), "export failed part-way; the response is cut short");
            })?,
        };
        st.done = page.rows < usize::try_from(EXPORT_PAGE).unwrap_or(usize::MAX);
        st.after = page.after;
        if page.bytes.is_empty() {
            return Ok(None);
        }
        Ok::<_, ServiceError>(Some((page.bytes, st)))
    });
    let disposition = HeaderValue::from_str(&format!("attachment; filename=\"{}\"", export.file_name()))
        .unwrap_or_else(|_| HeaderValue::from_static("attachment"));
    Ok(HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header((CONTENT_DISPOSITION, disposition))
        .streaming(body))
}

/// The orders created in `[from, to)` as CSV, streamed (staff). Amounts in minor units. An empty window (`to`
/// not after `from`) gives the header row only.
#[utoipa::path(tag = "analytics", security(("bearer" = [])), params(WindowParams),
    responses((status = 200, content_type = "text/csv", body = String,
        description = "id,customer_id,status,currency,subtotal_minor,tax_minor,total_minor,deposit_minor,starts_at,ends_at,created_at"),
        (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope)))]
#[get("/exports/orders.csv")]
pub async fn export_orders(
    state: web::Data<AppState>,
    auth: Auth,
    params: web::Query<WindowParams>,
) -> ApiResult<HttpResponse> {
    stream_export(&state, &auth, Export::Orders, &params).await
}

/// The invoices issued in `[from, to)` as CSV, streamed (staff). Amounts in minor units. An empty window (`to`
/// not after `from`) gives the header row only.
#[utoipa::path(tag = "analytics", security(("bearer" = [])), params(WindowParams),
    responses((status = 200, content_type = "text/csv", body = String,
        description = "number,status,order_id,customer_id,currency,subtotal_minor,tax_minor,total_minor,paid_minor,issued_at"),
        (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope)))]
#[get("/exports/invoices.csv")]
pub async fn export_invoices(
    state: web::Data<AppState>,
    auth: Auth,
    params: web::Query<WindowParams>,
) -> ApiResult<HttpResponse> {
    stream_export(&state, &auth, Export::Invoices, &params).await
}

/// The staff dashboard: users, rentals per status, overdue and due-back orders, revenue today, this month and
/// over the last 30 days, utilisation now. Served from the cache for `cache.dashboard_ttl_secs` (60 s by
/// default), so figures may be that old; `generated_at` says when they were read.
#[utoipa::path(tag = "analytics", security(("bearer" = [])),
    responses((status = 200, body = rental_service::DashboardStats), (status = 401, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope)))]
#[get("/dashboard/stats")]
pub async fn dashboard(state: web::Data<AppState>, auth: Auth) -> ApiResult<HttpResponse> {
    let json = state.services.analytics.dashboard_json(&auth.0).await?;
    Ok(HttpResponse::Ok()
        .content_type(actix_web::http::header::ContentType::json())
        .insert_header((actix_web::http::header::CACHE_CONTROL, "private, no-cache"))
        .body(Bytes::from_owner(json)))
}
