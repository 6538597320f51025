//! Running totals of rentals per product over time ("usage marks"), for the popular-products and utilization
//! reports.
//!
//! A series is one product in one currency (a product's currency may change; its lines keep theirs). A mark is
//! the state of a series at an instant `at` (milliseconds since the epoch), counting every rented line (of an
//! order neither a quote nor cancelled) with start ≤ `at` and end ≤ `at` respectively:
//! - `rate`: units held from `at` until the next mark;
//! - `held`: unit-milliseconds held before `at` (Σ quantity × the part of the line before `at`);
//! - `started_*` / `ended_*`: lines, quantity and revenue (line totals) of the lines started / ended by `at`.
//!
//! There is a mark at each start and end of a line, and at the start of every week-long bucket (`bucket` =
//! `at` / 7 days) between the series' first and last mark, so the last mark at or before any instant inside
//! that range lies in the instant's bucket: the reports read one bucket of marks per bound, in the order of the
//! `(bucket, product_id, currency, at)` index. The series row carries the range (`first_at`, `last_at`) and the
//! totals after its last mark (`final_*`, every line ended). `rental_repo::usage` keeps all this up to date:
//! reservations, confirmations and cancellations note the change on the line (`order_lines.usage_pending`,
//! with a partial index of the lines waiting) and a settlement after their commit records it. This migration
//! fills the marks once from the lines already stored and drops the two time indexes on order lines that only
//! the line-scanning reports used.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// Length of a bucket, milliseconds (also in `rental_repo::usage`).
const BUCKET_MS: i64 = 7 * 86_400_000;

#[derive(DeriveIden)]
enum UsageSeries {
    Table,
    ProductId,
    Currency,
    FirstAt,
    LastAt,
    FinalLines,
    FinalQuantity,
    FinalRevenue,
    FinalHeld,
}

#[derive(DeriveIden)]
enum UsageMarks {
    Table,
    ProductId,
    Currency,
    At,
    Bucket,
    Rate,
    Held,
    StartedLines,
    StartedQuantity,
    StartedRevenue,
    EndedLines,
    EndedQuantity,
    EndedRevenue,
}

#[derive(DeriveIden)]
enum OrderLines {
    Table,
    UsagePending,
}

#[derive(DeriveIden)]
enum Products {
    Table,
    Id,
}

const COUNTERS: [UsageMarks; 9] = [
    UsageMarks::Bucket,
    UsageMarks::Rate,
    UsageMarks::Held,
    UsageMarks::StartedLines,
    UsageMarks::StartedQuantity,
    UsageMarks::StartedRevenue,
    UsageMarks::EndedLines,
    UsageMarks::EndedQuantity,
    UsageMarks::EndedRevenue,
];

/// The rented lines with their times in milliseconds; `{ms_start}` and `{ms_end}` are replaced by the
/// backend's expressions.
const RENTED_LINES: &str = "SELECT l.product_id, l.currency, {ms_start} AS s, {ms_end} AS e, l.quantity AS q, \
     l.line_total_minor AS r FROM order_lines l JOIN rental_orders o ON o.id = l.order_id \
     WHERE o.status NOT IN ('quote', 'cancelled')";

/// One series per product and currency with rented lines: its range and final totals.
const SERIES: &str = "INSERT INTO usage_series (product_id, currency, first_at, last_at, final_lines, final_quantity, \
     final_revenue, final_held) SELECT product_id, currency, MIN(s), MAX(e), COUNT(*), SUM(q), SUM(r), SUM(q * (e - s)) \
     FROM ({lines}) x GROUP BY product_id, currency";

/// The marks: the instants where lines start or end plus the bucket starts inside each series' range (zero
/// changes), with the counters as running sums over the instants of the series; `held` adds the previous rate
/// times the time since the previous instant.
const MARKS: &str = "\
INSERT INTO usage_marks (product_id, currency, at, bucket, rate, held, started_lines, started_quantity, \
started_revenue, ended_lines, ended_quantity, ended_revenue) \
SELECT product_id, currency, at, at / {bucket}, rate, \
CAST(SUM(COALESCE(prev_rate * (at - prev_at), 0)) OVER w AS BIGINT), \
started_lines, started_quantity, started_revenue, ended_lines, ended_quantity, ended_revenue FROM (\
SELECT product_id, currency, at, rate, started_lines, started_quantity, started_revenue, ended_lines, \
ended_quantity, ended_revenue, LAG(rate) OVER w AS prev_rate, LAG(at) OVER w AS prev_at FROM (\
SELECT product_id, currency, at, \
CAST(SUM(d_rate) OVER w AS BIGINT) AS rate, \
CAST(SUM(d_started_lines) OVER w AS BIGINT) AS started_lines, \
CAST(SUM(d_started_quantity) OVER w AS BIGINT) AS started_quantity, \
CAST(SUM(d_started_revenue) OVER w AS BIGINT) AS started_revenue, \
CAST(SUM(d_ended_lines) OVER w AS BIGINT) AS ended_lines, \
CAST(SUM(d_ended_quantity) OVER w AS BIGINT) AS ended_quantity, \
CAST(SUM(d_ended_revenue) OVER w AS BIGINT) AS ended_revenue FROM (\
SELECT product_id, currency, at, SUM(d_rate) AS d_rate, SUM(d_started_lines) AS d_started_lines, \
SUM(d_started_quantity) AS d_started_quantity, SUM(d_started_revenue) AS d_started_revenue, \
SUM(d_ended_lines) AS d_ended_lines, SUM(d_ended_quantity) AS d_ended_quantity, \
SUM(d_ended_revenue) AS d_ended_revenue FROM (\
SELECT product_id, currency, s AS at, q AS d_rate, 1 AS d_started_lines, q AS d_started_quantity, \
r AS d_started_revenue, 0 AS d_ended_lines, 0 AS d_ended_quantity, 0 AS d_ended_revenue FROM ({lines}) ls \
UNION ALL \
SELECT product_id, currency, e, -q, 0, 0, 0, 1, q, r FROM ({lines}) le \
UNION ALL \
SELECT product_id, currency, at, 0, 0, 0, 0, 0, 0, 0 FROM (\
WITH RECURSIVE fills (product_id, currency, at, last_at) AS (\
SELECT product_id, currency, (first_at + {bucket} - 1) / {bucket} * {bucket}, last_at FROM usage_series \
UNION ALL SELECT product_id, currency, at + {bucket}, last_at FROM fills WHERE at + {bucket} <= last_at\
) SELECT product_id, currency, at FROM fills WHERE at <= last_at) f\
) e GROUP BY product_id, currency, at\
) g WINDOW w AS (PARTITION BY product_id, currency ORDER BY at ROWS UNBOUNDED PRECEDING)\
) r WINDOW w AS (PARTITION BY product_id, currency ORDER BY at)\
) h WINDOW w AS (PARTITION BY product_id, currency ORDER BY at ROWS UNBOUNDED PRECEDING)";

/// The time indexes that only the line-scanning reports used (created by the analytics migration).
const LINE_TIME_INDEXES: [(&str, &str, &str); 2] =
    [("idx_order_lines_starts_at", "starts_at", "ends_at"), ("idx_order_lines_ends_at", "ends_at", "starts_at")];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let mut series = Table::create();
        series
            .table(UsageSeries::Table)
            .col(ColumnDef::new(UsageSeries::ProductId).uuid().not_null())
            .col(ColumnDef::new(UsageSeries::Currency).char_len(3).not_null());
        for column in [
            UsageSeries::FirstAt,
            UsageSeries::LastAt,
            UsageSeries::FinalLines,
            UsageSeries::FinalQuantity,
            UsageSeries::FinalRevenue,
            UsageSeries::FinalHeld,
        ] {
            series.col(ColumnDef::new(column).big_integer().not_null());
        }
        series.primary_key(Index::create().col(UsageSeries::ProductId).col(UsageSeries::Currency)).foreign_key(
            ForeignKey::create()
                .name("fk_usage_series_product")
                .from(UsageSeries::Table, UsageSeries::ProductId)
                .to(Products::Table, Products::Id)
                .on_delete(ForeignKeyAction::Cascade),
        );
        manager.create_table(series.to_owned()).await?;

        let mut marks = Table::create();
        marks
            .table(UsageMarks::Table)
            .col(ColumnDef::new(UsageMarks::ProductId).uuid().not_null())
            .col(ColumnDef::new(UsageMarks::Currency).char_len(3).not_null())
            .col(ColumnDef::new(UsageMarks::At).big_integer().not_null());
        for counter in COUNTERS {
            marks.col(ColumnDef::new(counter).big_integer().not_null());
        }
        // No foreign key: marks exist only for products with order lines, which cannot be deleted, and the
        // check would cost every reservation a lookup per mark.
        marks.primary_key(Index::create().col(UsageMarks::ProductId).col(UsageMarks::Currency).col(UsageMarks::At));
        manager.create_table(marks.to_owned()).await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_usage_marks_bucket")
                    .table(UsageMarks::Table)
                    .col(UsageMarks::Bucket)
                    .col(UsageMarks::ProductId)
                    .col(UsageMarks::Currency)
                    .col(UsageMarks::At)
                    .to_owned(),
            )
            .await?;

        manager
            .alter_table(
                Table::alter()
                    .table(OrderLines::Table)
                    .add_column(ColumnDef::new(OrderLines::UsagePending).small_integer().not_null().default(0))
                    .to_owned(),
            )
            .await?;
        let conn = manager.get_connection();
        conn.execute_unprepared(
            "CREATE INDEX idx_order_lines_usage_pending ON order_lines (id) WHERE usage_pending <> 0",
        )
        .await?;
        let ms = |column: &str| match manager.get_database_backend() {
            DbBackend::Postgres => format!("CAST(FLOOR(EXTRACT(EPOCH FROM l.{column}) * 1000) AS BIGINT)"),
            _ => format!("CAST(ROUND(unixepoch(l.{column}, 'subsec') * 1000) AS INTEGER)"),
        };
        let lines = RENTED_LINES.replace("{ms_start}", &ms("starts_at")).replace("{ms_end}", &ms("ends_at"));
        conn.execute_unprepared(&SERIES.replace("{lines}", &lines)).await?;
        conn.execute_unprepared(&MARKS.replace("{lines}", &lines).replace("{bucket}", &BUCKET_MS.to_string())).await?;
        for (name, _, _) in LINE_TIME_INDEXES {
            conn.execute_unprepared(&format!("DROP INDEX {name}")).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let conn = manager.get_connection();
        conn.execute_unprepared("DROP INDEX idx_order_lines_usage_pending").await?;
        manager
            .alter_table(Table::alter().table(OrderLines::Table).drop_column(OrderLines::UsagePending).to_owned())
            .await?;
        for (name, key, other) in LINE_TIME_INDEXES {
            let include = match manager.get_database_backend() {
                DbBackend::Postgres => {
                    format!(" INCLUDE ({other}, product_id, order_id, quantity, line_total_minor, currency)")
                }
                _ => String::new(),
            };
            conn.execute_unprepared(&format!("CREATE INDEX {name} ON order_lines ({key}){include}")).await?;
        }
        manager.drop_table(Table::drop().table(UsageMarks::Table).to_owned()).await?;
        manager.drop_table(Table::drop().table(UsageSeries::Table).to_owned()).await?;
        Ok(())
    }
}
