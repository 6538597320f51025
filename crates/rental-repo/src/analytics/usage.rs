//! Usage marks: running totals of the rented lines of each product over time, so that the popular-products and
//! utilization reports read one bucket of marks per bound instead of every order line (schema and meaning in
//! migration `m20261122_000005_usage_marks`).
//!
//! A rented line is a line of an order that is neither a quote nor cancelled. Reservation, confirmation and
//! cancellation do not touch the marks: they note the change on the line (`usage_pending` +1 or −1, in the
//! statement that writes the line anyway), and after their commit the repository's settlement records every
//! pending change in batches ([`record_pending`]) once 256 lines are waiting or a second has passed, so many
//! reservations share the work. The reports record the backlog before they read, so they see every committed
//! order. The importer records its lines in its own transaction. Recording lines takes four statements per
//! chunk, whatever their number:
//! 1. the series' current ranges are read;
//! 2. each series row gets the lines' totals and its range widened to cover them;
//! 3. a mark is made where the series has none: at each line's start and end, and at each bucket start that
//!    the widened range newly covers; each is a copy of the previous mark carried forward to its instant (so
//!    every existing value stays true);
//! 4. every mark at or after a line's start gets the line's contribution: its quantity on the rate while inside
//!    the line, its unit-time up to the mark, and its count, quantity and revenue on the started (and, from the
//!    line's end, the ended) totals.
//!
//! The caller holds the products' usage locks ([`lock_series`]: on PostgreSQL an advisory lock per product, not
//! the product row; on SQLite the write lock), so a series is changed by one transaction at a time while
//! reservations of its product go on. Times are milliseconds since the epoch.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::sea_query::{LockBehavior, LockType};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use uuid::Uuid;

use crate::db::raw::RawSql;
use crate::entity::order_line;
use crate::{Backend, Database, RepoResult};

/// Usage is recorded once this many lines are waiting…
const USAGE_BACKLOG_LINES: u64 = 256;
/// …or once this long has passed since the last recording (reports record whatever is left before reading).
const USAGE_MAX_DELAY_MS: u64 = 1_000;

/// Records the usage changes that committed orders noted on their lines, in batches shared by many orders:
/// recording costs about ten statements whatever the number of lines. A service notes the lines a committed
/// reservation, confirmation or cancellation changed ([`UsageRecorder::note`]) and calls
/// [`UsageRecorder::due_recording`] after the commit. Cheap to clone; clones share the backlog.
#[derive(Debug, Clone)]
pub struct UsageRecorder {
    db: Database,
    backlog: Arc<Backlog>,
}

#[derive(Debug, Default)]
struct Backlog {
    /// Lines noted since the last recording on this instance.
    lines: AtomicU64,
    /// When this instance last recorded, milliseconds since the epoch.
    recorded_ms: AtomicU64,
    /// One recording at a time on this instance; others skip instead of queueing behind it.
    gate: Arc<tokio::sync::Mutex<()>>,
}

impl UsageRecorder {
    /// A recorder over `db`.
    pub fn new(db: Database) -> Self {
        Self { db, backlog: Arc::default() }
    }

    /// Notes that a committed transaction changed the usage of `lines` lines.
    pub fn note(&self, lines: usize) {
        self.backlog.lines.fetch_add(u64::try_from(lines).unwrap_or(u64::MAX), Ordering::SeqCst);
    }

    /// The recording of every pending change, once 256 lines are waiting or a second has passed since the last
    /// recording, unless one is already running on this instance: `None` then (the reports record whatever is
    /// left before they read, so nothing is ever missing from them). The returned future holds this instance's
    /// turn from now on, so that one recording is started however many commits find it due; a batch can take
    /// seconds, so the caller runs it in a task of its own rather than in a request.
    ///
    /// The future fails with [`crate::RepoError::Database`] when a statement fails; the changes stay pending
    /// for the next recording.
    pub fn due_recording(&self) -> Option<impl Future<Output = RepoResult<()>> + Send + 'static> {
        let backlog = self.backlog.lines.load(Ordering::SeqCst);
        let since = now_ms().saturating_sub(self.backlog.recorded_ms.load(Ordering::SeqCst));
        if backlog == 0 || (backlog < USAGE_BACKLOG_LINES && since < USAGE_MAX_DELAY_MS) {
            return None;
        }
        let turn = self.backlog.gate.clone().try_lock_owned().ok()?;
        let recorder = self.clone();
        Some(async move {
            let _turn = turn;
            let backlog = recorder.backlog.lines.load(Ordering::SeqCst);
            let started_ms = now_ms();
            record_pending(&recorder.db).await?;
            recorder.backlog.lines.fetch_sub(backlog, Ordering::SeqCst);
            recorder.backlog.recorded_ms.store(started_ms, Ordering::SeqCst);
            Ok(())
        })
    }

    /// Records every pending change now, whoever noted it (for the settlement job, which repairs what a
    /// crashed instance left behind).
    ///
    /// # Errors
    /// [`crate::RepoError::Database`] when a statement fails; the changes stay pending for the next call.
    pub async fn record_all(&self) -> RepoResult<()> {
        let _gate = self.backlog.gate.lock().await;
        record_pending(&self.db).await
    }
}

/// Milliseconds since the epoch, now.
fn now_ms() -> u64 {
    u64::try_from(Utc::now().timestamp_millis()).unwrap_or(0)
}

/// Length of a bucket, milliseconds: a week (also in the migration).
pub(crate) const BUCKET_MS: i64 = 7 * 86_400_000;

/// Lines per chunk: the update binds seven values per line, below SQLite's limit of 32,766.
const LINES_PER_STATEMENT: usize = 2_000;

/// Marks made per statement (four values each, below SQLite's limit).
const POINTS_PER_STATEMENT: usize = 8_000;

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

/// Milliseconds since the epoch: the time scale of the marks.
pub(crate) fn millis(at: DateTime<Utc>) -> i64 {
    at.timestamp_millis()
}

/// The bucket holding instant `ms`.
pub(crate) fn bucket_of(ms: i64) -> i64 {
    ms.div_euclid(BUCKET_MS)
}

/// What a chunk of lines changes on one series.
#[derive(Debug, Clone, Copy)]
struct SeriesChange {
    first: i64,
    last: i64,
    lines: i64,
    quantity: i64,
    revenue: i64,
    held: i64,
}

/// Lines per settlement transaction of [`record_pending`].
const PENDING_BATCH: u64 = 1_000;

/// The usage view of a stored line.
fn usage_line(l: &order_line::Model) -> UsageLine {
    UsageLine {
        product_id: l.product_id,
        currency: l.currency.trim().to_owned(),
        starts_at: l.starts_at,
        ends_at: l.ends_at,
        quantity: i64::from(l.quantity),
        revenue_minor: l.line_total_minor,
    }
}

/// The first key of the products' usage locks on PostgreSQL (the second is derived from the product id).
const USAGE_LOCK_SPACE: i32 = 0x7573_6167;

/// The second key of a product's usage lock: its id folded to 32 bits. Two products sharing a key only share
/// a lock.
fn usage_lock_key(product_id: Uuid) -> i32 {
    let x = product_id.as_u128();
    // Truncation is the point: the four 32-bit words folded into one.
    #[allow(clippy::cast_possible_truncation)]
    let folded = (x ^ (x >> 32) ^ (x >> 64) ^ (x >> 96)) as u32;
    i32::from_ne_bytes(folded.to_ne_bytes())
}

/// Takes the usage locks of `products` until the end of the transaction: the holder is the only one changing
/// their series and marks. On PostgreSQL these are transaction-level advisory locks of their own, taken in key
/// order so that two recorders never deadlock, and not the product rows: a reservation or cancellation of the
/// product (which locks its row) never waits for a recording, however long it takes. On SQLite the
/// transaction's write lock serialises everything already.
///
/// # Errors
/// [`crate::RepoError::Database`] when the statement fails.
pub(crate) async fn lock_series<C: ConnectionTrait>(
    conn: &C,
    backend: Backend,
    products: &BTreeSet<Uuid>,
) -> RepoResult<()> {
    if backend != Backend::Postgres || products.is_empty() {
        return Ok(());
    }
    let keys: BTreeSet<i32> = products.iter().map(|p| usage_lock_key(*p)).collect();
    let mut q = RawSql::new(backend);
    // The function is volatile, so PostgreSQL calls it after the sort: in key order.
    q.push("SELECT pg_advisory_xact_lock(").bind(USAGE_LOCK_SPACE).push(", v.k) FROM (VALUES ");
    for (i, key) in keys.into_iter().enumerate() {
        q.push(if i == 0 { "(" } else { ", (" });
        q.bind(key).push(")");
    }
    q.push(") AS v(k) ORDER BY v.k");
    conn.query_all_raw(q.statement()).await?;
    Ok(())
}

/// Records every pending usage change (`order_lines.usage_pending`), a batch per transaction: the products'
/// usage locks first ([`lock_series`]), then the lines read again under them and locked, their changes
/// recorded, and their pending count cleared. A line that a cancellation is changing at that moment is skipped
/// (on PostgreSQL, `SKIP LOCKED`) and left for the next recording, so a recording never waits for an order
/// and an order waits for a recording only on a line in its batch. Safe to run from several places at once: a
/// line is recorded by whoever locks its product first.
///
/// # Errors
/// [`crate::RepoError::Database`] when a statement fails; that batch stays pending.
pub(crate) async fn record_pending(db: &Database) -> RepoResult<()> {
    // Written out so that the partial index of pending lines matches the condition.
    let pending = || Expr::cust("usage_pending <> 0");
    loop {
        let waiting: Vec<(Uuid, Uuid)> = order_line::Entity::find()
            .select_only()
            .columns([order_line::Column::Id, order_line::Column::ProductId])
            .filter(pending())
            .order_by_asc(order_line::Column::Id)
            .limit(PENDING_BATCH)
            .into_tuple()
            .all(db.connection())
            .await?;
        if waiting.is_empty() {
            return Ok(());
        }
        let products: BTreeSet<Uuid> = waiting.iter().map(|(_, p)| *p).collect();
        let uow = db.begin().await?;
        let txn = uow.conn();
        let recorded = async {
            lock_series(txn, db.backend(), &products).await?;
            let mut again = order_line::Entity::find()
                .filter(order_line::Column::Id.is_in(waiting.iter().map(|(id, _)| *id)))
                .filter(pending());
            if db.backend() == Backend::Postgres {
                again = again.lock_with_behavior(LockType::NoKeyUpdate, LockBehavior::SkipLocked);
            }
            let lines = again.all(txn).await?;
            let mut by_weight: BTreeMap<i16, Vec<UsageLine>> = BTreeMap::new();
            for l in &lines {
                by_weight.entry(l.usage_pending).or_default().push(usage_line(l));
            }
            for (weight, group) in by_weight {
                record(txn, db.backend(), &group, i64::from(weight)).await?;
            }
            if !lines.is_empty() {
                order_line::Entity::update_many()
                    .col_expr(order_line::Column::UsagePending, Expr::val(0i16))
                    .filter(order_line::Column::Id.is_in(lines.iter().map(|l| l.id)))
                    .exec(txn)
                    .await?;
            }
            Ok::<_, crate::RepoError>(!lines.is_empty())
        }
        .await;
        let progressed = uow.finish(recorded).await?;
        // A batch whose every line was skipped would be read again as it is: the next recording takes it.
        if !progressed || (waiting.len() as u64) < PENDING_BATCH {
            return Ok(());
        }
    }
}

/// Adds `lines` to the marks of their products `weight` times (−1 takes them out). The caller holds the
/// products' usage locks ([`lock_series`]).
///
/// # Errors
/// [`crate::RepoError::Database`] when a statement fails.
pub(crate) async fn record<C: ConnectionTrait>(
    conn: &C,
    backend: Backend,
    lines: &[UsageLine],
    sign: i64,
) -> RepoResult<()> {
    for chunk in lines.chunks(LINES_PER_STATEMENT) {
        let mut series: BTreeMap<(Uuid, &str), SeriesChange> = BTreeMap::new();
        for l in chunk {
            let (s, e) = (millis(l.starts_at), millis(l.ends_at));
            let entry = series.entry((l.product_id, l.currency.as_str())).or_insert(SeriesChange {
                first: s,
                last: e,
                lines: 0,
                quantity: 0,
                revenue: 0,
                held: 0,
            });
            entry.first = entry.first.min(s);
            entry.last = entry.last.max(e);
            entry.lines += sign;
            entry.quantity += sign * l.quantity;
            entry.revenue += sign * l.revenue_minor;
            entry.held += sign * l.quantity * (e - s);
        }
        let ranges = current_ranges(conn, backend, &series).await?;
        conn.execute_raw(upsert_series(backend, &series).statement()).await?;

        let mut points: BTreeSet<(Uuid, &str, i64)> = BTreeSet::new();
        for l in chunk {
            points.insert((l.product_id, l.currency.as_str(), millis(l.starts_at)));
            points.insert((l.product_id, l.currency.as_str(), millis(l.ends_at)));
        }
        for (&(product_id, currency), c) in &series {
            let old = ranges.get(&(product_id, currency.to_owned())).copied();
            let (first, last) = old.map_or((c.first, c.last), |(f, l)| (f.min(c.first), l.max(c.last)));
            // Bucket starts inside the widened range but outside the old one; those inside have marks already.
            let mut bucket = bucket_of(first - 1) + 1;
            while bucket * BUCKET_MS <= last {
                let at = bucket * BUCKET_MS;
                if old.is_none_or(|(f, l)| at < f || at > l) {
                    points.insert((product_id, currency, at));
                }
                bucket += 1;
            }
        }
        let points: Vec<(Uuid, &str, i64)> = points.into_iter().collect();
        for part in points.chunks(POINTS_PER_STATEMENT) {
            conn.execute_raw(ensure_marks(backend, part).statement()).await?;
        }
        conn.execute_raw(apply(backend, chunk, sign).statement()).await?;
    }
    Ok(())
}

/// Step 1: `(first_at, last_at)` of the series that exist.
async fn current_ranges<C: ConnectionTrait>(
    conn: &C,
    backend: Backend,
    series: &BTreeMap<(Uuid, &str), SeriesChange>,
) -> RepoResult<BTreeMap<(Uuid, String), (i64, i64)>> {
    let products: BTreeSet<Uuid> = series.keys().map(|(p, _)| *p).collect();
    let mut q = RawSql::new(backend);
    q.push("SELECT product_id, currency, first_at, last_at FROM usage_series WHERE product_id IN (");
    for (i, product_id) in products.into_iter().enumerate() {
        if i > 0 {
            q.push(", ");
        }
        q.bind(product_id);
    }
    q.push(")");
    let mut ranges = BTreeMap::new();
    for row in conn.query_all_raw(q.statement()).await? {
        let product_id: Uuid = row.try_get("", "product_id")?;
        let currency: String = row.try_get("", "currency")?;
        ranges.insert(
            (product_id, currency.trim().to_owned()),
            (row.try_get("", "first_at")?, row.try_get("", "last_at")?),
        );
    }
    Ok(ranges)
}

/// Step 2: the series rows, created or widened, with the lines' totals added.
fn upsert_series(backend: Backend, series: &BTreeMap<(Uuid, &str), SeriesChange>) -> RawSql {
    let mut q = RawSql::new(backend);
    q.push(
        "INSERT INTO usage_series (product_id, currency, first_at, last_at, final_lines, final_quantity, \
         final_revenue, final_held) VALUES ",
    );
    for (i, (&(product_id, currency), c)) in series.iter().enumerate() {
        q.push(if i == 0 { "(" } else { ", (" });
        q.bind(product_id).push(", ");
        bind_currency(&mut q, currency);
        for value in [c.first, c.last, c.lines, c.quantity, c.revenue, c.held] {
            q.push(", ").bind(value);
        }
        q.push(")");
    }
    q.push(
        " ON CONFLICT (product_id, currency) DO UPDATE SET \
         first_at = CASE WHEN excluded.first_at < usage_series.first_at THEN excluded.first_at \
         ELSE usage_series.first_at END, \
         last_at = CASE WHEN excluded.last_at > usage_series.last_at THEN excluded.last_at \
         ELSE usage_series.last_at END, \
         final_lines = usage_series.final_lines + excluded.final_lines, \
         final_quantity = usage_series.final_quantity + excluded.final_quantity, \
         final_revenue = usage_series.final_revenue + excluded.final_revenue, \
         final_held = usage_series.final_held + excluded.final_held",
    );
    q
}

/// Binds a currency code as the column's type: compared with a `text` value, PostgreSQL would cast the
/// `CHAR(3)` column instead and could no longer seek the series' key.
fn bind_currency(q: &mut RawSql, currency: &str) {
    q.push("CAST(").bind(currency.to_owned()).push(" AS CHAR(3))");
}

/// Step 3: a mark at each of `points` where its series has none, carried forward from the series' previous
/// mark (all zeros before the first).
fn ensure_marks(backend: Backend, points: &[(Uuid, &str, i64)]) -> RawSql {
    let mut q = RawSql::new(backend);
    q.push(
        "INSERT INTO usage_marks (product_id, currency, at, bucket, rate, held, started_lines, started_quantity, \
         started_revenue, ended_lines, ended_quantity, ended_revenue) \
         SELECT v.column1, v.column2, v.column3, v.column4, COALESCE(m.rate, 0), \
         COALESCE(m.held + m.rate * (v.column3 - m.at), 0), \
         COALESCE(m.started_lines, 0), COALESCE(m.started_quantity, 0), COALESCE(m.started_revenue, 0), \
         COALESCE(m.ended_lines, 0), COALESCE(m.ended_quantity, 0), COALESCE(m.ended_revenue, 0) FROM (VALUES ",
    );
    for (i, &(product_id, currency, at)) in points.iter().enumerate() {
        q.push(if i == 0 { "(" } else { ", (" });
        q.bind(product_id).push(", ");
        bind_currency(&mut q, currency);
        q.push(", ").bind(at).push(", ").bind(bucket_of(at)).push(")");
    }
    q.push(
        ") AS v LEFT JOIN usage_marks m ON m.product_id = v.column1 AND m.currency = v.column2 AND m.at = \
         (SELECT MAX(x.at) FROM usage_marks x WHERE x.product_id = v.column1 AND x.currency = v.column2 \
         AND x.at < v.column3) \
         WHERE true ON CONFLICT (product_id, currency, at) DO NOTHING",
    );
    q
}

/// Step 4: the contribution of `lines` (times `sign`) on every mark at or after their starts, summed per mark
/// first so that one mark is updated once.
fn apply(backend: Backend, lines: &[UsageLine], sign: i64) -> RawSql {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_weeks_from_the_epoch() {
        assert_eq!(bucket_of(0), 0);
        assert_eq!(bucket_of(BUCKET_MS - 1), 0);
        assert_eq!(bucket_of(BUCKET_MS), 1);
        assert_eq!(bucket_of(-1), -1);
    }
}
