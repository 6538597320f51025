//! The persistence contract of the reports: what the analytics service relies on, implemented by
//! [`crate::AnalyticsRepo`].

use std::future::Future;

use chrono::{DateTime, NaiveDate, Utc};
use rental_domain::OrderStatus;

use super::{
    DashboardRecord, ExportCursor, InvoiceExportRecord, OrderExportRecord, PopularProductRecord, RevenueDayRecord,
    UtilizationRecord,
};
use crate::RepoResult;

/// Aggregates and exports over orders and invoices, read-only. The contract (checked against the sea-orm store
/// on SQLite and PostgreSQL by the crate's analytics tests, which compare the reports with a reference
/// computation over the same rows): revenue counts open and paid invoices by issue day; rankings and
/// utilization count rented lines (not quotes, not cancelled orders); exports page by (time, id) without gaps
/// or repeats.
pub trait AnalyticsStore: Send + Sync {
    /// The dashboard's figures at `at` (days are UTC days): the totals from the counters the writes keep in
    /// their units of work, the time-dependent figures from range statements (three statements in all).
    ///
    /// # Errors
    /// [`crate::RepoError::Database`] when a query fails.
    fn dashboard(&self, at: DateTime<Utc>) -> impl Future<Output = RepoResult<DashboardRecord>> + Send;

    /// Revenue of open and paid invoices issued on days in `[from, to)`, per currency and day, ordered by
    /// currency and day. Days without invoices are absent.
    ///
    /// # Errors
    /// [`crate::RepoError::Database`] when the query fails.
    fn revenue_by_day(
        &self,
        from: NaiveDate,
        to: NaiveDate,
    ) -> impl Future<Output = RepoResult<Vec<RevenueDayRecord>>> + Send;

    /// The `limit` products with the most units rented by orders that are neither quotes nor cancelled,
    /// optionally only the lines whose period overlaps `[from, to)`, per product and currency. Ties go by
    /// product id.
    ///
    /// Read from the usage marks (the crate's `analytics::usage`), after recording any pending changes: the lines
    /// started before `to` less those ended by `from`, from one bucket of marks per bound (the series' totals when
    /// unbounded), however many lines there are.
    ///
    /// # Errors
    /// [`crate::RepoError::Database`] when the query fails.
    fn popular_products(
        &self,
        limit: u64,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
    ) -> impl Future<Output = RepoResult<Vec<PopularProductRecord>>> + Send;

    /// Number of orders per status, every status included (zeros too), in lifecycle order.
    ///
    /// # Errors
    /// [`crate::RepoError::Database`] when the query fails.
    fn status_counts(&self) -> impl Future<Output = RepoResult<Vec<(OrderStatus, i64)>>> + Send;

    /// The `limit` products whose capacity was most used over `[from, to)`: for each product with rented lines
    /// (orders reserved, picked up, returned or closed) overlapping the window, the sum of quantity × overlap
    /// divided by capacity × window length. Products without capacity are left out.
    ///
    /// Read from the usage marks (the crate's `analytics::usage`), after recording any pending changes: the
    /// unit-time held before `to` less that held before `from`, from one bucket of marks per bound, however long the
    /// window.
    ///
    /// # Errors
    /// [`crate::RepoError::Database`] when the query fails.
    fn utilization(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        limit: u64,
    ) -> impl Future<Output = RepoResult<Vec<UtilizationRecord>>> + Send;

    /// One page of the orders created in `[from, to)`, by creation time then id, after `after`.
    ///
    /// # Errors
    /// [`crate::RepoError::Database`] when the query fails.
    fn export_orders(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        after: Option<ExportCursor>,
        limit: u64,
    ) -> impl Future<Output = RepoResult<Vec<OrderExportRecord>>> + Send;

    /// One page of the invoices issued in `[from, to)`, by issue time then id, after `after`.
    ///
    /// # Errors
    /// [`crate::RepoError::Database`] when the query fails.
    fn export_invoices(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        after: Option<ExportCursor>,
        limit: u64,
    ) -> impl Future<Output = RepoResult<Vec<InvoiceExportRecord>>> + Send;
}
