//! Usage marks: running totals of the rented lines of each product over time, so that the popular-products and
//! utilization reports read two marks per product instead of every order line (schema and meaning in migration
//! `m20261122_000005_usage_marks`).
//!
//! A rented line is a line of an order that is neither a quote nor cancelled. Adding one (on reservation, on
//! confirmation of a quote, by the importer) or removing one (on cancellation of a reservation) takes two
//! statements per chunk of lines, whatever their number:
//! 1. a mark is made at the line's start and end where the series has none, as a copy of the previous mark
//!    carried forward to that instant (so every existing value stays true);
//! 2. every mark at or after a line's start gets the line's contribution: its quantity on the rate while inside
//!    the line, its unit-time up to the mark, and its count, quantity and revenue on the started (and, from the
//!    line's end, the ended) totals.
//!
//! The caller holds the products' locks (PostgreSQL: the product rows; SQLite: the write lock), so a series is
//! changed by one transaction at a time. Times are milliseconds since the epoch.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use sea_orm::ConnectionTrait;
use uuid::Uuid;

use crate::raw::RawSql;
use crate::{Backend, RepoResult};

/// Lines per statement: the update binds seven values per line, below SQLite's limit of 32,766.
const LINES_PER_STATEMENT: usize = 2_000;

/// A rented line, as the marks see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UsageLine {
    pub product_id: Uuid,
    /// The line's currency (the product's when it was priced).
    pub currency: String,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub quantity: i64,
    /// The line's total, minor units.
    pub revenue_minor: i64,
}

/// Whether lines start or stop counting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Change {
    /// The lines' orders became rented (reserved directly or confirmed, or imported).
    Add,
    /// The lines' order was cancelled.
    Remove,
}

/// Milliseconds since the epoch: the time scale of the marks.
pub(crate) fn millis(at: DateTime<Utc>) -> i64 {
    at.timestamp_millis()
}

/// Adds or removes `lines` from the marks of their products. The caller holds the products' locks.
///
/// # Errors
/// [`crate::RepoError::Database`] when a statement fails.
pub(crate) async fn record<C: ConnectionTrait>(
    conn: &C,
    backend: Backend,
    lines: &[UsageLine],
    change: Change,
) -> RepoResult<()> {
    for chunk in lines.chunks(LINES_PER_STATEMENT) {
        if change == Change::Add {
            let series: BTreeSet<(Uuid, &str)> = chunk.iter().map(|l| (l.product_id, l.currency.as_str())).collect();
            let mut insert = RawSql::new(backend);
            insert.push("INSERT INTO usage_series (product_id, currency) VALUES ");
            for (i, (product_id, currency)) in series.into_iter().enumerate() {
                insert.push(if i == 0 { "(" } else { ", (" });
                insert.bind(product_id).push(", ");
                bind_currency(&mut insert, currency);
                insert.push(")");
            }
            insert.push(" ON CONFLICT (product_id, currency) DO NOTHING");
            conn.execute_raw(insert.statement()).await?;
        }
        conn.execute_raw(ensure_marks(backend, chunk).statement()).await?;
        conn.execute_raw(apply(backend, chunk, change).statement()).await?;
    }
    Ok(())
}

/// Binds a currency code as the column's type: compared with a `text` value, PostgreSQL would cast the
/// `CHAR(3)` column instead and could no longer seek the series' key.
fn bind_currency(q: &mut RawSql, currency: &str) {
    q.push("CAST(").bind(currency.to_owned()).push(" AS CHAR(3))");
}

/// Step 1: a mark at each start and end of `lines` where its series has none, carried forward from the
/// series' previous mark (all zeros before the first).
fn ensure_marks(backend: Backend, lines: &[UsageLine]) -> RawSql {
    let points: BTreeSet<(Uuid, &str, i64)> = lines
        .iter()
        .flat_map(|l| {
            [
                (l.product_id, l.currency.as_str(), millis(l.starts_at)),
                (l.product_id, l.currency.as_str(), millis(l.ends_at)),
            ]
        })
        .collect();
    let mut q = RawSql::new(backend);
    q.push(
        "INSERT INTO usage_marks (product_id, currency, at, rate, held, started_lines, started_quantity, \
         started_revenue, ended_lines, ended_quantity, ended_revenue) \
         SELECT v.column1, v.column2, v.column3, COALESCE(m.rate, 0), COALESCE(m.held + m.rate * (v.column3 - m.at), 0), \
         COALESCE(m.started_lines, 0), COALESCE(m.started_quantity, 0), COALESCE(m.started_revenue, 0), \
         COALESCE(m.ended_lines, 0), COALESCE(m.ended_quantity, 0), COALESCE(m.ended_revenue, 0) FROM (VALUES ",
    );
    for (i, (product_id, currency, at)) in points.into_iter().enumerate() {
        q.push(if i == 0 { "(" } else { ", (" });
        q.bind(product_id).push(", ");
        bind_currency(&mut q, currency);
        q.push(", ").bind(at).push(")");
    }
    q.push(
        ") AS v LEFT JOIN usage_marks m ON m.product_id = v.column1 AND m.currency = v.column2 AND m.at = \
         (SELECT MAX(x.at) FROM usage_marks x WHERE x.product_id = v.column1 AND x.currency = v.column2 \
         AND x.at < v.column3) \
         WHERE true ON CONFLICT (product_id, currency, at) DO NOTHING",
    );
    q
}

/// Step 2: the contribution of `lines` (negated for [`Change::Remove`]) on every mark at or after their starts,
/// summed per mark first so that one mark is updated once.
fn apply(backend: Backend, lines: &[UsageLine], change: Change) -> RawSql {
    let sign = match change {
        Change::Add => 1,
        Change::Remove => -1,
    };
    let mut q = RawSql::new(backend);
    q.push(
        "UPDATE usage_marks SET rate = usage_marks.rate + d.rate, held = usage_marks.held + d.held, \
         started_lines = usage_marks.started_lines + d.started_lines, \
         started_quantity = usage_marks.started_quantity + d.started_quantity, \
         started_revenue = usage_marks.started_revenue + d.started_revenue, \
         ended_lines = usage_marks.ended_lines + d.ended_lines, \
         ended_quantity = usage_marks.ended_quantity + d.ended_quantity, \
         ended_revenue = usage_marks.ended_revenue + d.ended_revenue \
         FROM (SELECT m.product_id AS p, m.currency AS c, m.at AS at, \
         CAST(SUM(CASE WHEN m.at < l.column4 THEN l.column5 ELSE 0 END) AS BIGINT) AS rate, \
         CAST(SUM(l.column5 * ((CASE WHEN m.at < l.column4 THEN m.at ELSE l.column4 END) - l.column3)) AS BIGINT) \
         AS held, \
         CAST(SUM(l.column7) AS BIGINT) AS started_lines, CAST(SUM(l.column5) AS BIGINT) AS started_quantity, \
         CAST(SUM(l.column6) AS BIGINT) AS started_revenue, \
         CAST(SUM(CASE WHEN m.at >= l.column4 THEN l.column7 ELSE 0 END) AS BIGINT) AS ended_lines, \
         CAST(SUM(CASE WHEN m.at >= l.column4 THEN l.column5 ELSE 0 END) AS BIGINT) AS ended_quantity, \
         CAST(SUM(CASE WHEN m.at >= l.column4 THEN l.column6 ELSE 0 END) AS BIGINT) AS ended_revenue \
         FROM usage_marks m JOIN (VALUES ",
    );
    for (i, l) in lines.iter().enumerate() {
        q.push(if i == 0 { "(" } else { ", (" });
        q.bind(l.product_id).push(", ");
        bind_currency(&mut q, &l.currency);
        q.push(", ")
            .bind(millis(l.starts_at))
            .push(", ")
            .bind(millis(l.ends_at))
            .push(", ")
            .bind(sign * l.quantity)
            .push(", ")
            .bind(sign * l.revenue_minor)
            .push(", ")
            .bind(sign)
            .push(")");
    }
    q.push(
        ") AS l ON m.product_id = l.column1 AND m.currency = l.column2 AND m.at >= l.column3 \
         GROUP BY m.product_id, m.currency, m.at) AS d \
         WHERE usage_marks.product_id = d.p AND usage_marks.currency = d.c AND usage_marks.at = d.at",
    );
    q
}
