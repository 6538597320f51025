//! The dashboard's figures: the totals from the counters kept by the writes ([`super::counters`]), the
//! time-dependent figures from range statements over indexes; and the same figures from the tables alone, the
//! reference they are checked against.

use chrono::{DateTime, Datelike as _, NaiveDate, Utc};
use rental_domain::OrderStatus;
use sea_orm::{AccessMode, ConnectionTrait, IsolationLevel, QueryResult, TransactionTrait};

use super::counters::{self, USERS_ACTIVE, USERS_SUPERUSER, USERS_TOTAL};
use super::{AnalyticsRepo, DashboardRecord};
use crate::db::raw::RawSql;
use crate::{Backend, RepoResult};

async fn rows(conn: &impl ConnectionTrait, query: RawSql) -> RepoResult<Vec<QueryResult>> {
    Ok(conn.query_all_raw(query.statement()).await?)
}

/// The bounds of the dashboard's periods at an instant (UTC days).
struct Days {
    today: NaiveDate,
    midnight: DateTime<Utc>,
    tomorrow: DateTime<Utc>,
    week_ago: DateTime<Utc>,
    month_start: NaiveDate,
    thirty_days_ago: NaiveDate,
}

impl Days {
    fn of(at: DateTime<Utc>) -> Self {
        let today = at.date_naive();
        let midnight = today.and_time(chrono::NaiveTime::MIN).and_utc();
        Self {
            today,
            midnight,
            tomorrow: midnight + chrono::Duration::days(1),
            week_ago: at - chrono::Duration::days(7),
            month_start: today.with_day(1).unwrap_or(today),
            thirty_days_ago: today - chrono::Duration::days(29),
        }
    }
}

impl AnalyticsRepo {
    /// The dashboard's figures at `at` in three statements: the counters summed over their slots (users total,
    /// active, superusers; orders per status); one statement of range counts (users created since midnight and
    /// in the last seven days on `idx_users_created_at`, picked-up orders overdue and due back today on
    /// `idx_rental_orders_status_ends_at`, units held now by the lines of reserved and picked-up orders, on the
    /// partial `idx_order_lines_holding`, and the capacity); and revenue per currency on
    /// `idx_invoices_revenue`. The figures mean what [`AnalyticsRepo::dashboard_from_tables`] computes.
    ///
    /// The statements run in one read-only transaction, so the figures come from one snapshot (repeatable read
    /// on PostgreSQL). On PostgreSQL the transaction also turns parallel workers off: every statement reads a
    /// short index range, and starting workers cost 10-15 ms of the 17 ms that held now took with them at a
    /// million lines (1.2 ms without; docs/PERFORMANCE.md).
    ///
    /// # Errors
    /// [`crate::RepoError::Database`] when a query fails.
    pub async fn dashboard_from_counters(&self, at: DateTime<Utc>) -> RepoResult<DashboardRecord> {
        let backend = self.db.backend();
        let txn = match backend {
            Backend::Postgres => {
                let txn = self
                    .db
                    .connection()
                    .begin_with_config(Some(IsolationLevel::RepeatableRead), Some(AccessMode::ReadOnly))
                    .await?;
                txn.execute_unprepared("SET LOCAL max_parallel_workers_per_gather = 0").await?;
                txn
            }
            Backend::Sqlite => self.db.connection().begin().await?,
        };
        match self.dashboard_in(&txn, at).await {
            Ok(record) => {
                txn.commit().await?;
                Ok(record)
            }
            Err(err) => {
                // Released now rather than when the pool next uses the connection.
                if let Err(rollback) = txn.rollback().await {
                    tracing::warn!(error = %rollback, "rollback failed");
                }
                Err(err)
            }
        }
    }

    async fn dashboard_in(&self, conn: &impl ConnectionTrait, at: DateTime<Utc>) -> RepoResult<DashboardRecord> {
        let Days { midnight, tomorrow, week_ago, .. } = Days::of(at);
        let totals = counters::read_totals(conn, self.db.backend()).await?;
        let total = |name: &str| totals.get(name).copied().unwrap_or(0);
        let mut record = DashboardRecord {
            users_total: total(USERS_TOTAL),
            users_active: total(USERS_ACTIVE),
            superusers: total(USERS_SUPERUSER),
            orders_by_status: OrderStatus::ALL.iter().map(|s| (*s, total(counters::orders_in(*s)))).collect(),
            ..DashboardRecord::default()
        };

        let mut q = self.query();
        q.push("SELECT (SELECT COUNT(*) FROM users WHERE created_at >= ").bind(midnight);
        q.push(") AS new_today, (SELECT COUNT(*) FROM users WHERE created_at >= ").bind(week_ago);
        q.push(") AS new_week, (SELECT COUNT(*) FROM rental_orders WHERE status = 'picked_up' AND ends_at <= ")
            .bind(at);
        q.push(") AS overdue, (SELECT COUNT(*) FROM rental_orders WHERE status = 'picked_up' AND ends_at > ")
            .bind(at)
            .push(" AND ends_at < ")
            .bind(tomorrow);
        // Held now: one range of the partial index of the lines whose order holds stock.
        q.push(
            ") AS due_today, (SELECT CAST(COALESCE(SUM(quantity), 0) AS BIGINT) FROM order_lines \
             WHERE order_holding AND starts_at <= ",
        )
        .bind(at)
        .push(" AND ends_at > ")
        .bind(at)
        .push(
            ") AS held, (SELECT COUNT(*) FROM units) + \
             (SELECT CAST(COALESCE(SUM(quantity), 0) AS BIGINT) FROM stock_levels) AS capacity",
        );
        if let Some(row) = rows(conn, q).await?.into_iter().next() {
            record.users_new_today = row.try_get("", "new_today")?;
            record.users_new_week = row.try_get("", "new_week")?;
            record.orders_overdue = row.try_get("", "overdue")?;
            record.orders_due_today = row.try_get("", "due_today")?;
            record.held_now = row.try_get("", "held")?;
            record.capacity = row.try_get("", "capacity")?;
        }
        record.revenue = self.revenue(conn, at).await?;
        Ok(record)
    }

    /// The dashboard's figures at `at` computed from the tables alone, each table read by one aggregate
    /// statement (four statements): the reference the counters are checked against, and what the dashboard
    /// ran before the counters (665 ms median at a million users and orders, docs/PERFORMANCE.md).
    ///
    /// # Errors
    /// [`crate::RepoError::Database`] when a query fails.
    pub async fn dashboard_from_tables(&self, at: DateTime<Utc>) -> RepoResult<DashboardRecord> {
        let Days { midnight, tomorrow, week_ago, .. } = Days::of(at);
        let mut record = DashboardRecord::default();

        let mut q = self.query();
        q.push(
            "SELECT COUNT(*) AS total, \
             CAST(COALESCE(SUM(CASE WHEN is_active THEN 1 ELSE 0 END), 0) AS BIGINT) AS active, \
             CAST(COALESCE(SUM(CASE WHEN is_superuser THEN 1 ELSE 0 END), 0) AS BIGINT) AS superusers, \
             CAST(COALESCE(SUM(CASE WHEN created_at >= ",
        )
        .bind(midnight)
        .push(" THEN 1 ELSE 0 END), 0) AS BIGINT) AS new_today, CAST(COALESCE(SUM(CASE WHEN created_at >= ")
        .bind(week_ago)
        .push(" THEN 1 ELSE 0 END), 0) AS BIGINT) AS new_week FROM users");
        if let Some(row) = self.all(q).await?.into_iter().next() {
            record.users_total = row.try_get("", "total")?;
            record.users_active = row.try_get("", "active")?;
            record.superusers = row.try_get("", "superusers")?;
            record.users_new_today = row.try_get("", "new_today")?;
            record.users_new_week = row.try_get("", "new_week")?;
        }

        let mut q = self.query();
        q.push(
            "SELECT status, COUNT(*) AS n, \
             CAST(COALESCE(SUM(CASE WHEN status = 'picked_up' AND ends_at <= ",
        )
        .bind(at)
        .push(" THEN 1 ELSE 0 END), 0) AS BIGINT) AS overdue, CAST(COALESCE(SUM(CASE WHEN status = 'picked_up' AND ends_at > ")
        .bind(at)
        .push(" AND ends_at < ")
        .bind(tomorrow)
        .push(" THEN 1 ELSE 0 END), 0) AS BIGINT) AS due_today FROM rental_orders GROUP BY status");
        record.orders_by_status = OrderStatus::ALL.iter().map(|s| (*s, 0)).collect();
        for row in self.all(q).await? {
            let status: String = row.try_get("", "status")?;
            let n: i64 = row.try_get("", "n")?;
            record.orders_overdue += row.try_get::<i64>("", "overdue")?;
            record.orders_due_today += row.try_get::<i64>("", "due_today")?;
            if let Some(entry) = record.orders_by_status.iter_mut().find(|(s, _)| s.as_str() == status) {
                entry.1 = n;
            }
        }

        record.revenue = self.revenue(self.db.connection(), at).await?;

        let mut q = self.query();
        q.push(
            "SELECT (SELECT CAST(COALESCE(SUM(l.quantity), 0) AS BIGINT) FROM order_lines l \
             JOIN rental_orders o ON o.id = l.order_id WHERE o.status IN ('reserved', 'picked_up') AND l.starts_at <= ",
        )
        .bind(at)
        .push(" AND l.ends_at > ")
        .bind(at)
        .push(
            ") AS held, (SELECT COUNT(*) FROM units) + \
             (SELECT CAST(COALESCE(SUM(quantity), 0) AS BIGINT) FROM stock_levels) AS capacity",
        );
        if let Some(row) = self.all(q).await?.into_iter().next() {
            record.held_now = row.try_get("", "held")?;
            record.capacity = row.try_get("", "capacity")?;
        }
        Ok(record)
    }

    /// Revenue (open and paid invoices) per currency, by code: (issued today, this month, last 30 days). The
    /// invoices are summed per day first (one sum per row), then the at most 31 days per currency into the three
    /// figures: half the time of three conditional sums per row (docs/PERFORMANCE.md).
    async fn revenue(
        &self,
        conn: &impl ConnectionTrait,
        at: DateTime<Utc>,
    ) -> RepoResult<Vec<(String, i64, i64, i64)>> {
        let Days { today, month_start, thirty_days_ago, .. } = Days::of(at);
        let mut q = self.query();
        q.push("SELECT currency, CAST(COALESCE(SUM(CASE WHEN issued_on = ")
            .bind(today)
            .push(" THEN total ELSE 0 END), 0) AS BIGINT) AS today, CAST(COALESCE(SUM(CASE WHEN issued_on >= ")
            .bind(month_start)
            .push(" THEN total ELSE 0 END), 0) AS BIGINT) AS month, CAST(COALESCE(SUM(CASE WHEN issued_on >= ")
            .bind(thirty_days_ago)
            .push(
                " THEN total ELSE 0 END), 0) AS BIGINT) AS last_30 FROM (SELECT currency, issued_on, \
                 SUM(total_minor) AS total FROM invoices WHERE status IN ('open', 'paid') AND issued_on <= ",
            )
            .bind(today)
            .push(" AND issued_on >= ")
            .bind(month_start.min(thirty_days_ago))
            .push(" GROUP BY currency, issued_on) d GROUP BY currency ORDER BY currency");
        let mut revenue = Vec::new();
        for row in rows(conn, q).await? {
            revenue.push((
                row.try_get("", "currency")?,
                row.try_get("", "today")?,
                row.try_get("", "month")?,
                row.try_get("", "last_30")?,
            ));
        }
        Ok(revenue)
    }
}
