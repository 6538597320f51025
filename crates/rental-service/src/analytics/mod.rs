//! Analytics for staff and admins: revenue, popular products, order statuses, utilization, and the pages of the
//! CSV exports. Every figure is aggregated by the database; this layer checks the caller and the parameters.
//!
//! A window `[from, to)` selects what happened in it. One whose `to` is not after its `from` is empty: the
//! reports over it are empty, not an error (a client clamping a range gets a well-formed answer). Windows are
//! not capped in length: the revenue report reads one row per day with invoices, the utilization report two
//! buckets of usage marks per product whatever the length, and the exports are streamed.

mod dashboard;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use rental_domain::OrderStatus;
use rental_repo::{
    AnalyticsRepo, AnalyticsStore, Database, ExportCursor, InvoiceExportRecord, OrderExportRecord,
    PopularProductRecord, UtilizationRecord,
};
use serde::Serialize;
use uuid::Uuid;

use crate::cache::{CacheValue, Caches, JsonBytes, Namespace, NamespaceSpec, Singleton};
use crate::{CacheConfig, Clock, Principal, ServiceError, ServiceResult};

pub use dashboard::{DashboardRentals, DashboardRevenue, DashboardStats, DashboardUsers, DashboardUtilization};

/// Most products in the popular-products ranking.
pub const POPULAR_LIMIT_MAX: u64 = 100;
/// Most products in the utilization ranking.
pub const UTILIZATION_LIMIT_MAX: u64 = 1_000;
/// Most rows of one export page.
pub const EXPORT_PAGE_MAX: u64 = 10_000;

/// Revenue of one day in one currency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RevenueDay {
    /// UTC day of issue.
    pub date: NaiveDate,
    /// Sum of the invoice totals, minor units.
    pub total_minor: i64,
    /// Invoices issued that day.
    pub count: i64,
}

/// Revenue of one currency over the window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CurrencyRevenue {
    /// ISO 4217 code.
    pub currency: String,
    /// Sum of the invoice totals, minor units.
    pub total_minor: i64,
    /// Invoices.
    pub count: i64,
    /// `total_minor / count`, rounded half away from zero.
    pub average_minor: i64,
    /// Days with invoices, in order.
    pub days: Vec<RevenueDay>,
}

/// Revenue of open and paid invoices issued on the days `[from, to)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RevenueReport {
    /// First day.
    pub from: NaiveDate,
    /// Day after the last.
    pub to: NaiveDate,
    /// One entry per currency, by code.
    pub currencies: Vec<CurrencyRevenue>,
}

/// Orders in one status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StatusCount {
    /// Status.
    #[cfg_attr(feature = "openapi", schema(value_type = crate::openapi::OrderStatusSchema))]
    pub status: OrderStatus,
    /// Orders.
    pub count: i64,
}

/// Orders per status; all six statuses, zeros included.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StatusDistribution {
    /// All orders.
    pub total: i64,
    /// In lifecycle order.
    pub items: Vec<StatusCount>,
}

/// A product and how much it was rented.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PopularProductView {
    /// Product id.
    pub product_id: Uuid,
    /// Product name.
    pub name: String,
    /// Currency of `revenue_minor`.
    pub currency: String,
    /// Rentals of the product: order lines (one product for one period).
    pub rental_count: i64,
    /// Units rented.
    pub quantity: i64,
    /// Sum of the line totals (before tax), minor units.
    pub revenue_minor: i64,
}

impl From<PopularProductRecord> for PopularProductView {
    fn from(r: PopularProductRecord) -> Self {
        Self {
            product_id: r.product_id,
            name: r.name,
            currency: r.revenue.currency.to_string(),
            rental_count: r.rental_count,
            quantity: r.quantity,
            revenue_minor: r.revenue.amount_minor,
        }
    }
}

/// Products ranked by rented quantity (orders that are neither quotes nor cancelled).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PopularProducts {
    /// Most rented first.
    pub items: Vec<PopularProductView>,
}

/// How much of a product's capacity was rented over the window.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ProductUtilizationView {
    /// Product id.
    pub product_id: Uuid,
    /// Product name.
    pub name: String,
    /// Tracked units plus bulk stock.
    pub capacity: i64,
    /// Sum of quantity × seconds inside the window over the rented lines (to the millisecond).
    pub rented_unit_seconds: f64,
    /// `rented_unit_seconds / (capacity × window seconds)`, 0–1.
    pub utilization: f64,
}

impl From<UtilizationRecord> for ProductUtilizationView {
    fn from(r: UtilizationRecord) -> Self {
        Self {
            product_id: r.product_id,
            name: r.name,
            capacity: r.capacity,
            rented_unit_seconds: r.rented_unit_seconds,
            utilization: r.utilization,
        }
    }
}

/// The most used products over `[from, to)`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UtilizationReport {
    /// Start of the window.
    pub from: DateTime<Utc>,
    /// End of the window.
    pub to: DateTime<Utc>,
    /// Most used first.
    pub items: Vec<ProductUtilizationView>,
}

/// A time window `[from, to)`; `to` is never before `from`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Start, included.
    pub from: DateTime<Utc>,
    /// End, excluded.
    pub to: DateTime<Utc>,
}

impl Window {
    /// `[from, to)`; a `to` before `from` gives the empty window at `from`.
    pub fn new(from: DateTime<Utc>, to: DateTime<Utc>) -> Self {
        Self { from, to: Ord::max(from, to) }
    }

    /// Whether nothing can happen in the window.
    pub fn is_empty(&self) -> bool {
        self.to == self.from
    }
}

fn invalid(field: &str, message: impl Into<String>) -> ServiceError {
    ServiceError::InvalidQuery { field: field.to_owned(), message: message.into() }
}

fn check_limit(limit: u64, max: u64) -> ServiceResult<()> {
    if (1..=max).contains(&limit) { Ok(()) } else { Err(invalid("limit", format!("must be between 1 and {max}"))) }
}

/// The UTC day of `at`, rounded up to the next day unless `at` is midnight.
fn day_ceil(at: DateTime<Utc>) -> NaiveDate {
    let day = at.date_naive();
    if at.time() == NaiveTime::MIN { day } else { day.succ_opt().unwrap_or(day) }
}

/// `total / count` rounded half away from zero.
fn average(total: i64, count: i64) -> i64 {
    if count == 0 {
        return 0;
    }
    let (t, c) = (i128::from(total), i128::from(count));
    let rounded = if t >= 0 { (2 * t + c) / (2 * c) } else { (2 * t - c) / (2 * c) };
    i64::try_from(rounded).unwrap_or(i64::MAX)
}

/// A report cached for one range in namespace `analytics` (`cache.analytics_ttl_secs`; not evicted by writes).
#[derive(Debug)]
enum Report {
    Revenue(RevenueReport),
    Popular(PopularProducts),
    Status(StatusDistribution),
    Utilization(UtilizationReport),
}

/// Reports stay in the process that read them.
impl CacheValue for Arc<Report> {}

/// An optional instant in a cache key: microseconds since the epoch, or `-`.
fn key_instant(at: Option<DateTime<Utc>>) -> String {
    at.map_or_else(|| "-".to_owned(), |at| at.timestamp_micros().to_string())
}

/// Reports for staff over the orders and invoices, from an [`AnalyticsStore`] (the sea-orm [`AnalyticsRepo`]
/// unless another is given). Cheap to clone.
#[derive(Debug)]
pub struct AnalyticsService<A = AnalyticsRepo> {
    repo: Arc<A>,
    clock: Arc<dyn Clock>,
    /// The dashboard's JSON, for `cache.dashboard_ttl_secs`.
    dashboard: Namespace<Singleton, JsonBytes>,
    /// Reports per kind and range (`revenue|…`, `popular|…`, `status`, `utilization|…`), for
    /// `cache.analytics_ttl_secs`.
    reports: Namespace<String, Arc<Report>>,
}

impl<A> Clone for AnalyticsService<A> {
    fn clone(&self) -> Self {
        Self {
            repo: self.repo.clone(),
            clock: self.clock.clone(),
            dashboard: self.dashboard.clone(),
            reports: self.reports.clone(),
        }
    }
}

impl AnalyticsService {
    /// The service over `db`'s reports, judging time by `clock`, its dashboard cached in `caches`.
    pub fn new(db: Database, clock: Arc<dyn Clock>, config: &CacheConfig, caches: &Caches) -> Self {
        Self::with_store(Arc::new(AnalyticsRepo::new(db)), clock, config, caches)
    }
}

impl<A: AnalyticsStore> AnalyticsService<A> {
    /// The service over another implementation of the store.
    pub fn with_store(repo: Arc<A>, clock: Arc<dyn Clock>, config: &CacheConfig, caches: &Caches) -> Self {
        let dashboard = caches.namespace(config.refresh_ahead(NamespaceSpec::new(
            "dashboard",
            Duration::from_secs(config.dashboard_ttl_secs.max(1)),
            1,
        )));
        let reports = caches.namespace(config.refresh_ahead(NamespaceSpec::new(
            "analytics",
            Duration::from_secs(config.analytics_ttl_secs.max(1)),
            1_000,
        )));
        Self { repo, clock, dashboard, reports }
    }

    /// The report under `key`, from the cache or from `load`; concurrent misses share one load.
    async fn report(
        &self,
        key: String,
        load: impl Future<Output = rental_repo::RepoResult<Report>>,
    ) -> ServiceResult<Arc<Report>> {
        Ok(self.reports.get_or_load(key, async { load.await.map(Arc::new) }).await?)
    }

    /// The dashboard (staff), read now from the database: one aggregate statement per table.
    ///
    /// # Errors
    /// [`ServiceError::Forbidden`] unless staff; [`ServiceError::Repo`] when the database fails.
    #[tracing::instrument(skip_all)]
    pub async fn dashboard(&self, principal: &Principal) -> ServiceResult<DashboardStats> {
        principal.require_staff()?;
        self.read_dashboard().await
    }

    async fn read_dashboard(&self) -> ServiceResult<DashboardStats> {
        let at = self.clock.now();
        Ok(DashboardStats::from_record(self.repo.dashboard(at).await?, at))
    }

    /// The dashboard's JSON (staff), cached for `cache.dashboard_ttl_secs` (shared between instances through
    /// the Redis tier); concurrent misses share one read.
    ///
    /// # Errors
    /// As [`Self::dashboard`].
    pub async fn dashboard_json(&self, principal: &Principal) -> ServiceResult<JsonBytes> {
        principal.require_staff()?;
        let load = async {
            let at = self.clock.now();
            let stats = DashboardStats::from_record(self.repo.dashboard(at).await?, at);
            // Plain numbers and strings always encode; an empty body would be the (impossible) failure.
            Ok::<_, rental_repo::RepoError>(JsonBytes(serde_json::to_vec(&stats).unwrap_or_default().into()))
        };
        Ok(self.dashboard.get_or_load(Singleton, load).await?)
    }

    /// Revenue of open and paid invoices issued in the window, taken as whole UTC days: `from`'s day up to
    /// `to`'s day (`to` rounded up to the next midnight), per currency and per day. An empty window (`to` not
    /// after `from`) has no days and no revenue.
    ///
    /// # Errors
    /// [`ServiceError::Forbidden`] unless staff; [`ServiceError::Repo`] when the database fails.
    #[tracing::instrument(skip_all)]
    pub async fn revenue(
        &self,
        principal: &Principal,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> ServiceResult<RevenueReport> {
        principal.require_staff()?;
        let window = Window::new(from, to);
        let (from, to) = (window.from.date_naive(), day_ceil(window.to));
        if window.is_empty() {
            return Ok(RevenueReport { from, to: from, currencies: Vec::new() });
        }
        let key = format!("revenue|{from}|{to}");
        match &*self.report(key, async { self.read_revenue(from, to).await.map(Report::Revenue) }).await? {
            Report::Revenue(report) => Ok(report.clone()),
            _ => Err(ServiceError::Internal("analytics cache: a revenue key holds another report".into())),
        }
    }

    async fn read_revenue(&self, from: NaiveDate, to: NaiveDate) -> rental_repo::RepoResult<RevenueReport> {
        let mut currencies: Vec<CurrencyRevenue> = Vec::new();
        for row in self.repo.revenue_by_day(from, to).await? {
            let day = RevenueDay { date: row.day, total_minor: row.total.amount_minor, count: row.count };
            match currencies.last_mut() {
                Some(current) if current.currency == row.total.currency.as_str() => {
                    current.total_minor = current.total_minor.saturating_add(row.total.amount_minor);
                    current.count += row.count;
                    current.days.push(day);
                }
                _ => currencies.push(CurrencyRevenue {
                    currency: row.total.currency.to_string(),
                    total_minor: row.total.amount_minor,
                    count: row.count,
                    average_minor: 0,
                    days: vec![day],
                }),
            }
        }
        for currency in &mut currencies {
            currency.average_minor = average(currency.total_minor, currency.count);
        }
        Ok(RevenueReport { from, to, currencies })
    }

    /// The `limit` products with the most units rented (orders neither quotes nor cancelled), optionally only
    /// the lines whose rental period overlaps `[from, to)`. No line overlaps an empty window (both bounds
    /// given, `to` not after `from`): the ranking is empty.
    ///
    /// # Errors
    /// [`ServiceError::Forbidden`] unless staff; [`ServiceError::InvalidQuery`] for a limit outside
    /// 1..=[`POPULAR_LIMIT_MAX`]; [`ServiceError::Repo`] when the database fails.
    #[tracing::instrument(skip_all)]
    pub async fn popular_products(
        &self,
        principal: &Principal,
        limit: u64,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
    ) -> ServiceResult<PopularProducts> {
        principal.require_staff()?;
        check_limit(limit, POPULAR_LIMIT_MAX)?;
        if let (Some(from), Some(to)) = (from, to)
            && Window::new(from, to).is_empty()
        {
            return Ok(PopularProducts { items: Vec::new() });
        }
        let key = format!("popular|{limit}|{}|{}", key_instant(from), key_instant(to));
        let load = async {
            let items = self.repo.popular_products(limit, from, to).await?;
            Ok(Report::Popular(PopularProducts { items: items.into_iter().map(Into::into).collect() }))
        };
        match &*self.report(key, load).await? {
            Report::Popular(report) => Ok(report.clone()),
            _ => Err(ServiceError::Internal("analytics cache: a popular key holds another report".into())),
        }
    }

    /// Orders per status, all six, zeros included, in lifecycle order, with their total.
    ///
    /// # Errors
    /// [`ServiceError::Forbidden`] unless staff; [`ServiceError::Repo`] when the database fails.
    #[tracing::instrument(skip_all)]
    pub async fn status_distribution(&self, principal: &Principal) -> ServiceResult<StatusDistribution> {
        principal.require_staff()?;
        let load = async {
            let counts = self.repo.status_counts().await?;
            let items: Vec<StatusCount> =
                counts.into_iter().map(|(status, count)| StatusCount { status, count }).collect();
            Ok(Report::Status(StatusDistribution { total: items.iter().map(|c| c.count).sum(), items }))
        };
        match &*self.report("status".to_owned(), load).await? {
            Report::Status(report) => Ok(report.clone()),
            _ => Err(ServiceError::Internal("analytics cache: the status key holds another report".into())),
        }
    }

    /// The `limit` products whose capacity was most used over the window; none over an empty window.
    ///
    /// # Errors
    /// [`ServiceError::Forbidden`] unless staff; [`ServiceError::InvalidQuery`] for a limit outside
    /// 1..=[`UTILIZATION_LIMIT_MAX`]; [`ServiceError::Repo`] when the database fails.
    #[tracing::instrument(skip_all)]
    pub async fn utilization(
        &self,
        principal: &Principal,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        limit: u64,
    ) -> ServiceResult<UtilizationReport> {
        principal.require_staff()?;
        check_limit(limit, UTILIZATION_LIMIT_MAX)?;
        let window = Window::new(from, to);
        if window.is_empty() {
            return Ok(UtilizationReport { from, to, items: Vec::new() });
        }
        let key = format!("utilization|{}|{}|{limit}", key_instant(Some(from)), key_instant(Some(to)));
        let load = async {
            let items = self.repo.utilization(window.from, window.to, limit).await?;
            Ok(Report::Utilization(UtilizationReport { from, to, items: items.into_iter().map(Into::into).collect() }))
        };
        match &*self.report(key, load).await? {
            Report::Utilization(report) => Ok(report.clone()),
            _ => Err(ServiceError::Internal("analytics cache: a utilization key holds another report".into())),
        }
    }

    /// Checks that `principal` may export, before a response starts, and gives the window (empty when `to` is
    /// not after `from`: the export has its header row only).
    ///
    /// # Errors
    /// [`ServiceError::Forbidden`] unless staff.
    pub fn export_window(
        &self,
        principal: &Principal,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> ServiceResult<Window> {
        principal.require_staff()?;
        Ok(Window::new(from, to))
    }

    /// One page of the orders created in `window`, after `after`.
    ///
    /// # Errors
    /// [`ServiceError::InvalidQuery`] for a page size outside 1..=[`EXPORT_PAGE_MAX`]; [`ServiceError::Repo`]
    /// when the database fails.
    pub async fn export_orders_page(
        &self,
        window: Window,
        after: Option<ExportCursor>,
        limit: u64,
    ) -> ServiceResult<Vec<OrderExportRecord>> {
        check_limit(limit, EXPORT_PAGE_MAX)?;
        Ok(self.repo.export_orders(window.from, window.to, after, limit).await?)
    }

    /// One page of the invoices issued in `window`, after `after`.
    ///
    /// # Errors
    /// [`ServiceError::InvalidQuery`] for a page size outside 1..=[`EXPORT_PAGE_MAX`]; [`ServiceError::Repo`]
    /// when the database fails.
    pub async fn export_invoices_page(
        &self,
        window: Window,
        after: Option<ExportCursor>,
        limit: u64,
    ) -> ServiceResult<Vec<InvoiceExportRecord>> {
        check_limit(limit, EXPORT_PAGE_MAX)?;
        Ok(self.repo.export_invoices(window.from, window.to, after, limit).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn averages_round_half_away_from_zero() {
        assert_eq!(average(5, 2), 3);
        assert_eq!(average(4, 3), 1);
        assert_eq!(average(-5, 2), -3);
        assert_eq!(average(0, 0), 0);
    }

    #[test]
    fn a_window_ending_before_it_starts_is_empty() {
        let from = at("2026-01-01T00:00:00Z");
        assert!(Window::new(from, from).is_empty());
        let inverted = Window::new(from, at("2025-12-01T00:00:00Z"));
        assert_eq!((inverted.from, inverted.to), (from, from));
        assert!(!Window::new(from, at("2036-01-01T00:00:00Z")).is_empty());
    }

    #[test]
    fn the_last_day_is_rounded_up_unless_midnight() {
        assert_eq!(day_ceil(at("2026-01-02T00:00:00Z")), NaiveDate::from_ymd_opt(2026, 1, 2).unwrap());
        assert_eq!(day_ceil(at("2026-01-02T00:00:01Z")), NaiveDate::from_ymd_opt(2026, 1, 3).unwrap());
    }
}
