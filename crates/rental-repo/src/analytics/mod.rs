//! Read-only aggregates over orders and invoices, keyset-paged exports, and the dashboard with the counters the
//! writes keep for it (`counters`, `dashboard`).
//!
//! Every figure is computed by the database (GROUP BY, SUM, COUNT, or a sum of counter rows); only the
//! aggregated rows, or one page of an export, come back. The SQL is written out by hand because a few expressions differ between the backends
//! (time arithmetic, casts of sums); placeholders are numbered for PostgreSQL and positional for SQLite.

pub(crate) mod counters;
mod dashboard;
mod store;
pub(crate) mod usage;

pub use counters::DashboardCounters;
pub use store::AnalyticsStore;

use chrono::{DateTime, NaiveDate, Utc};
use rental_domain::pricing::OrderTotals;
use rental_domain::{Money, OrderStatus};
use sea_orm::{ConnectionTrait, QueryResult};
use uuid::Uuid;

use crate::db::raw::RawSql;
use crate::{Backend, Database, RepoResult, stored};
use usage::{bucket_of, millis};

/// Revenue of one currency on one day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevenueDayRecord {
    /// UTC day of issue.
    pub day: NaiveDate,
    /// Sum of the invoices' totals, in their currency.
    pub total: Money,
    /// Number of invoices.
    pub count: i64,
}

/// A product ranked by rented quantity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PopularProductRecord {
    /// Product id.
    pub product_id: Uuid,
    /// Product name.
    pub name: String,
    /// Rentals of the product: order lines (one product for one period).
    pub rental_count: i64,
    /// Units rented, summed over the lines.
    pub quantity: i64,
    /// Sum of the lines' totals (before tax), in the lines' currency: a product has one row per currency it
    /// was rented in.
    pub revenue: Money,
}

/// How much of a product's capacity was rented over a window.
#[derive(Debug, Clone, PartialEq)]
pub struct UtilizationRecord {
    /// Product id.
    pub product_id: Uuid,
    /// Product name.
    pub name: String,
    /// Tracked units plus bulk stock.
    pub capacity: i64,
    /// Sum over the rented lines of quantity × seconds of the line inside the window (to the millisecond).
    pub rented_unit_seconds: f64,
    /// `rented_unit_seconds / (capacity × window seconds)`.
    pub utilization: f64,
}

/// The dashboard's figures at one instant (see [`AnalyticsRepo::dashboard_from_counters`]).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DashboardRecord {
    /// Users: all of them.
    pub users_total: i64,
    /// Users who may log in.
    pub users_active: i64,
    /// Superusers.
    pub superusers: i64,
    /// Users created since the UTC midnight.
    pub users_new_today: i64,
    /// Users created in the last seven days.
    pub users_new_week: i64,
    /// Orders per status, every status (zeros too), in lifecycle order.
    pub orders_by_status: Vec<(OrderStatus, i64)>,
    /// Picked-up orders whose period has ended.
    pub orders_overdue: i64,
    /// Picked-up orders due back before the next UTC midnight (and not overdue yet).
    pub orders_due_today: i64,
    /// Revenue (open and paid invoices) per currency, by code: (issued today, this month, last 30 days).
    pub revenue: Vec<(String, i64, i64, i64)>,
    /// Quantity held now by reserved or picked-up lines whose period contains the instant.
    pub held_now: i64,
    /// Tracked units plus bulk stock of every product.
    pub capacity: i64,
}

/// Where an export page starts: after this (time, id).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExportCursor {
    /// Sort time of the last row sent.
    pub at: DateTime<Utc>,
    /// Its id.
    pub id: Uuid,
}

/// An order in the export.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderExportRecord {
    /// Id.
    pub id: Uuid,
    /// Customer.
    pub customer_id: Uuid,
    /// Status.
    pub status: String,
    /// Subtotal, tax, total and deposit, in the order's currency.
    pub totals: OrderTotals,
    /// Start of the period.
    pub starts_at: DateTime<Utc>,
    /// End of the period.
    pub ends_at: DateTime<Utc>,
    /// Creation time (the sort key).
    pub created_at: DateTime<Utc>,
}

impl OrderExportRecord {
    /// The cursor that continues after this row.
    pub fn cursor(&self) -> ExportCursor {
        ExportCursor { at: self.created_at, id: self.id }
    }
}

/// An invoice in the export.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvoiceExportRecord {
    /// Id (the keyset tie-breaker).
    pub id: Uuid,
    /// `INV-YYYY-NNNNNN`.
    pub number: Option<String>,
    /// Status.
    pub status: String,
    /// The order.
    pub order_id: Uuid,
    /// The customer.
    pub customer_id: Uuid,
    /// Subtotal, in the invoice's currency (as every amount).
    pub subtotal: Money,
    /// Tax.
    pub tax: Money,
    /// Total.
    pub total: Money,
    /// Paid so far.
    pub amount_paid: Money,
    /// Issue time (the sort key).
    pub issued_at: DateTime<Utc>,
}

impl InvoiceExportRecord {
    /// The cursor that continues after this row.
    pub fn cursor(&self) -> ExportCursor {
        ExportCursor { at: self.issued_at, id: self.id }
    }
}

/// Joins, as `alias`, the last usage mark at or before `upto` of each series `s` that has one in the bucket of
/// `upto`: one range of the `(bucket, product_id, currency, at)` index, read in order.
fn bucket_join(q: &mut RawSql, alias: &str, upto: i64) {
    const COLUMNS: &str = "product_id, currency, rate, held, started_lines, started_quantity, started_revenue, \
                           ended_lines, ended_quantity, ended_revenue";
    match q.backend() {
        Backend::Postgres => {
            q.push(&format!(
                " LEFT JOIN (SELECT DISTINCT ON (product_id, currency) at, {COLUMNS} FROM usage_marks WHERE bucket = "
            ));
            q.bind(bucket_of(upto)).push(" AND at <= ").bind(upto);
            q.push(" ORDER BY product_id DESC, currency DESC, at DESC)");
        }
        Backend::Sqlite => {
            // SQLite takes the other columns from the row holding MAX(at).
            q.push(&format!(" LEFT JOIN (SELECT MAX(at) AS at, {COLUMNS} FROM usage_marks WHERE bucket = "));
            q.bind(bucket_of(upto)).push(" AND at <= ").bind(upto);
            q.push(" GROUP BY product_id, currency)");
        }
    }
    q.push(&format!(" {alias} ON {alias}.product_id = s.product_id AND {alias}.currency = s.currency"));
}

/// The value of a counter of series `s` as of `upto`, written by `expr` over a mark's alias: from the bucket's
/// mark joined as `alias` when there is one; else zero before the series' first mark, or the series' final
/// totals (`final_column`) from its last mark on. Every instant in between has a mark in its bucket (a bucket
/// start is marked throughout the series' range); were one missing, a probe of the series' marks answers.
fn value_at(q: &mut RawSql, alias: &str, upto: i64, final_column: &str, expr: impl Fn(&mut RawSql, &str)) {
    q.push(&format!("(CASE WHEN {alias}.at IS NOT NULL THEN "));
    expr(q, alias);
    q.push(" WHEN ").bind(upto).push(" < s.first_at THEN 0 WHEN ").bind(upto);
    q.push(&format!(" >= s.last_at THEN s.{final_column} ELSE (SELECT "));
    expr(q, "m");
    q.push(" FROM usage_marks m WHERE m.product_id = s.product_id AND m.currency = s.currency AND m.at <= ");
    q.bind(upto).push(" ORDER BY m.at DESC LIMIT 1) END)");
}

/// Aggregates and exports for staff: the sea-orm [`AnalyticsStore`].
#[derive(Debug, Clone)]
pub struct AnalyticsRepo {
    db: Database,
}

impl AnalyticsRepo {
    /// A repository over `db`.
    pub fn new(db: Database) -> Self {
        Self { db }
    }

    fn query(&self) -> RawSql {
        RawSql::new(self.db.backend())
    }

    async fn all(&self, query: RawSql) -> RepoResult<Vec<QueryResult>> {
        Ok(self.db.connection().query_all_raw(query.statement()).await?)
    }
}

impl AnalyticsStore for AnalyticsRepo {
    async fn dashboard(&self, at: DateTime<Utc>) -> RepoResult<DashboardRecord> {
        self.dashboard_from_counters(at).await
    }

    async fn revenue_by_day(&self, from: NaiveDate, to: NaiveDate) -> RepoResult<Vec<RevenueDayRecord>> {
        let mut q = self.query();
        q.push(
            "SELECT currency, issued_on, CAST(SUM(total_minor) AS BIGINT) AS total, COUNT(*) AS n FROM invoices \
             WHERE status IN ('open', 'paid') AND issued_on >= ",
        )
        .bind(from)
        .push(" AND issued_on < ")
        .bind(to)
        .push(" GROUP BY currency, issued_on ORDER BY currency, issued_on");
        self.all(q)
            .await?
            .into_iter()
            .map(|row| {
                let currency = stored::currency("invoices", &row.try_get::<String>("", "currency")?)?;
                Ok(RevenueDayRecord {
                    day: row.try_get("", "issued_on")?,
                    total: Money::new(row.try_get("", "total")?, currency),
                    count: row.try_get("", "n")?,
                })
            })
            .collect()
    }

    async fn popular_products(
        &self,
        limit: u64,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
    ) -> RepoResult<Vec<PopularProductRecord>> {
        usage::record_pending(&self.db).await?;
        let mut q = self.query();
        // Names are joined to the ranked page only.
        q.push(
            "SELECT r.product_id, p.name, r.currency, r.lines, r.quantity, r.revenue FROM (SELECT * FROM (\
             SELECT s.product_id, s.currency",
        );
        let started = to.map(|to| millis(to) - 1);
        let ended = from.map(millis);
        for column in ["lines", "quantity", "revenue"] {
            q.push(", ");
            match started {
                Some(upto) => value_at(&mut q, "a", upto, &format!("final_{column}"), |q, m| {
                    q.push(&format!("{m}.started_{column}"));
                }),
                None => {
                    q.push(&format!("s.final_{column}"));
                }
            }
            if let Some(upto) = ended {
                q.push(" - ");
                value_at(&mut q, "b", upto, &format!("final_{column}"), |q, m| {
                    q.push(&format!("{m}.ended_{column}"));
                });
            }
            q.push(&format!(" AS {column}"));
        }
        q.push(" FROM usage_series s");
        if let Some(upto) = started {
            bucket_join(&mut q, "a", upto);
        }
        if let Some(upto) = ended {
            bucket_join(&mut q, "b", upto);
        }
        q.push(") t WHERE t.quantity > 0 ORDER BY t.quantity DESC, t.product_id, t.currency LIMIT ")
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .push(") r JOIN products p ON p.id = r.product_id ORDER BY r.quantity DESC, r.product_id, r.currency");
        self.all(q)
            .await?
            .into_iter()
            .map(|row| {
                let currency = stored::currency("usage_series", &row.try_get::<String>("", "currency")?)?;
                Ok(PopularProductRecord {
                    product_id: row.try_get("", "product_id")?,
                    name: row.try_get("", "name")?,
                    rental_count: row.try_get("", "lines")?,
                    quantity: row.try_get("", "quantity")?,
                    revenue: Money::new(row.try_get("", "revenue")?, currency),
                })
            })
            .collect()
    }

    async fn status_counts(&self) -> RepoResult<Vec<(OrderStatus, i64)>> {
        let mut q = self.query();
        q.push("SELECT status, COUNT(*) AS n FROM rental_orders GROUP BY status");
        let mut counts: Vec<(OrderStatus, i64)> = OrderStatus::ALL.iter().map(|s| (*s, 0)).collect();
        for row in self.all(q).await? {
            let status: String = row.try_get("", "status")?;
            let n: i64 = row.try_get("", "n")?;
            if let Some(entry) = counts.iter_mut().find(|(s, _)| s.as_str() == status) {
                entry.1 = n;
            }
        }
        Ok(counts)
    }

    async fn utilization(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        limit: u64,
    ) -> RepoResult<Vec<UtilizationRecord>> {
        usage::record_pending(&self.db).await?;
        let (from_ms, to_ms) = (millis(from), millis(to));
        let window_ms = (to_ms - from_ms).max(1) as f64;
        let mut q = self.query();
        // Unit-time held before `to` less that held before `from`: each the last mark at or before the bound
        // plus its rate times the time since.
        q.push(
            "SELECT r.product_id, p.name, r.unit_ms, r.capacity FROM (SELECT x.product_id, x.unit_ms, c.capacity FROM (\
             SELECT s.product_id, CAST(SUM(",
        );
        value_at(&mut q, "a", to_ms - 1, "final_held", |q, m| {
            q.push(&format!("{m}.held + {m}.rate * (")).bind(to_ms).push(&format!(" - {m}.at)"));
        });
        q.push(" - ");
        value_at(&mut q, "b", from_ms, "final_held", |q, m| {
            q.push(&format!("{m}.held + {m}.rate * (")).bind(from_ms).push(&format!(" - {m}.at)"));
        });
        q.push(") AS BIGINT) AS unit_ms FROM usage_series s");
        bucket_join(&mut q, "a", to_ms - 1);
        bucket_join(&mut q, "b", from_ms);
        // Capacities come from one grouped pass over units and stock levels, joined once: as correlated
        // subqueries they were evaluated once per product for every place the value is used.
        q.push(" GROUP BY s.product_id) x JOIN (SELECT k.product_id, ")
            .push("CAST(SUM(k.n) AS BIGINT) AS capacity FROM (SELECT product_id, COUNT(*) AS n FROM units ")
            .push("GROUP BY product_id UNION ALL SELECT product_id, SUM(quantity) AS n FROM stock_levels ")
            .push("GROUP BY product_id) k GROUP BY k.product_id) c ON c.product_id = x.product_id ")
            .push("WHERE c.capacity > 0 AND x.unit_ms > 0 ORDER BY x.unit_ms * 1.0 / c.capacity DESC, x.product_id ")
            .push("LIMIT ")
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .push(
                ") r JOIN products p ON p.id = r.product_id ORDER BY r.unit_ms * 1.0 / r.capacity DESC, r.product_id",
            );
        self.all(q)
            .await?
            .into_iter()
            .map(|row| {
                let capacity: i64 = row.try_get("", "capacity")?;
                let unit_ms: i64 = row.try_get("", "unit_ms")?;
                Ok(UtilizationRecord {
                    product_id: row.try_get("", "product_id")?,
                    name: row.try_get("", "name")?,
                    capacity,
                    rented_unit_seconds: unit_ms as f64 / 1000.0,
                    utilization: unit_ms as f64 / (capacity as f64 * window_ms),
                })
            })
            .collect()
    }

    async fn export_orders(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        after: Option<ExportCursor>,
        limit: u64,
    ) -> RepoResult<Vec<OrderExportRecord>> {
        let mut q = self.query();
        q.push(
            "SELECT id, customer_id, status, currency, subtotal_minor, tax_minor, total_minor, deposit_minor, \
             starts_at, ends_at, created_at FROM rental_orders WHERE created_at >= ",
        )
        .bind(from)
        .push(" AND created_at < ")
        .bind(to);
        if let Some(after) = after {
            q.push(" AND (created_at, id) > (").bind(after.at).push(", ").bind(after.id).push(")");
        }
        q.push(" ORDER BY created_at, id LIMIT ").bind(i64::try_from(limit).unwrap_or(i64::MAX));
        self.all(q)
            .await?
            .into_iter()
            .map(|row| {
                let currency = stored::currency("rental_orders", &row.try_get::<String>("", "currency")?)?;
                let money = |column: &str| -> RepoResult<Money> { Ok(Money::new(row.try_get("", column)?, currency)) };
                Ok(OrderExportRecord {
                    id: row.try_get("", "id")?,
                    customer_id: row.try_get("", "customer_id")?,
                    status: row.try_get("", "status")?,
                    totals: OrderTotals {
                        subtotal: money("subtotal_minor")?,
                        tax: money("tax_minor")?,
                        total: money("total_minor")?,
                        deposit: money("deposit_minor")?,
                    },
                    starts_at: row.try_get("", "starts_at")?,
                    ends_at: row.try_get("", "ends_at")?,
                    created_at: row.try_get("", "created_at")?,
                })
            })
            .collect()
    }

    async fn export_invoices(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        after: Option<ExportCursor>,
        limit: u64,
    ) -> RepoResult<Vec<InvoiceExportRecord>> {
        let mut q = self.query();
        q.push(
            "SELECT id, number, status, order_id, customer_id, currency, subtotal_minor, tax_minor, total_minor, \
             amount_paid_minor, issued_at FROM invoices WHERE issued_at >= ",
        )
        .bind(from)
        .push(" AND issued_at < ")
        .bind(to);
        if let Some(after) = after {
            q.push(" AND (issued_at, id) > (").bind(after.at).push(", ").bind(after.id).push(")");
        }
        q.push(" ORDER BY issued_at, id LIMIT ").bind(i64::try_from(limit).unwrap_or(i64::MAX));
        self.all(q)
            .await?
            .into_iter()
            .map(|row| {
                let currency = stored::currency("invoices", &row.try_get::<String>("", "currency")?)?;
                let money = |column: &str| -> RepoResult<Money> { Ok(Money::new(row.try_get("", column)?, currency)) };
                Ok(InvoiceExportRecord {
                    id: row.try_get("", "id")?,
                    number: row.try_get("", "number")?,
                    status: row.try_get("", "status")?,
                    order_id: row.try_get("", "order_id")?,
                    customer_id: row.try_get("", "customer_id")?,
                    subtotal: money("subtotal_minor")?,
                    tax: money("tax_minor")?,
                    total: money("total_minor")?,
                    amount_paid: money("amount_paid_minor")?,
                    issued_at: row.try_get("", "issued_at")?,
                })
            })
            .collect()
    }
}
