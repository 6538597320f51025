//! The dashboard's counters (`dashboard_counters`): users total, active and superusers, and orders per status,
//! kept by the repositories in the unit of work of every write that changes them.
//!
//! A write notes its deltas in the unit ([`UnitOfWork::count`]); the unit adds them up per (counter, slot) and
//! writes them with one upsert just before it commits ([`flush`]), in (name, slot) order. So a counter row is
//! locked only from that statement to the commit, every unit locks counter rows in the same order (no deadlock
//! between two units over counters), and a unit that rolls back leaves the counters as they were. The slot comes
//! from the id of the row written ([`slot_of`]): concurrent writers of different rows mostly touch different
//! counter rows. A figure is the sum of its counter over the slots.
//!
//! [`DashboardCounters::repair`] recomputes every counter from the tables in one transaction, for an operator
//! who suspects drift (a write made beside the repositories, e.g. by hand in SQL).

use std::collections::BTreeMap;

use rental_domain::OrderStatus;
use sea_orm::{ConnectionTrait, DatabaseTransaction};
use uuid::Uuid;

use crate::db::raw::RawSql;
use crate::{Backend, Database, RepoResult, UnitOfWork};

/// Slots per counter. More slots spread concurrent writers over more rows; the dashboard reads
/// `SLOTS × counters` rows (at most 64 × 9), well under a millisecond.
pub(crate) const SLOTS: u8 = 64;

/// Users, all of them.
pub(crate) const USERS_TOTAL: &str = "users_total";
/// Users who may log in.
pub(crate) const USERS_ACTIVE: &str = "users_active";
/// Superusers.
pub(crate) const USERS_SUPERUSER: &str = "users_superuser";

/// The counter of the orders in `status`.
pub(crate) fn orders_in(status: OrderStatus) -> &'static str {
    match status {
        OrderStatus::Quote => "orders_quote",
        OrderStatus::Reserved => "orders_reserved",
        OrderStatus::PickedUp => "orders_picked_up",
        OrderStatus::Returned => "orders_returned",
        OrderStatus::Closed => "orders_closed",
        OrderStatus::Cancelled => "orders_cancelled",
    }
}

/// Whether an order in `status` holds its stock now, as `order_lines.order_holding` records it for its lines
/// (what the dashboard's "held now" counts).
pub(crate) fn holding(status: OrderStatus) -> bool {
    matches!(status, OrderStatus::Reserved | OrderStatus::PickedUp)
}

/// The slot of the counters a write of the row `id` changes: from the id's last byte, which is random in the
/// time-ordered (v7) ids of this project.
pub(crate) fn slot_of(id: Uuid) -> i16 {
    i16::from(id.as_bytes()[15] % SLOTS)
}

/// Deltas noted in a unit of work, per (counter, slot); zero sums are dropped when written.
pub(crate) type Deltas = BTreeMap<(&'static str, i16), i64>;

impl UnitOfWork {
    /// Notes that the write of row `id` changes `counter` by `delta`; written with the unit's other deltas just
    /// before it commits, and never if it rolls back.
    pub(crate) fn count(&self, counter: &'static str, id: Uuid, delta: i64) {
        *self.deltas().entry((counter, slot_of(id))).or_insert(0) += delta;
    }

    /// Notes the counter changes of a user written with these flags: `sign` 1 for an insert, -1 for a delete.
    pub(crate) fn count_user(&self, id: Uuid, is_active: bool, is_superuser: bool, sign: i64) {
        self.count(USERS_TOTAL, id, sign);
        self.count(USERS_ACTIVE, id, sign * i64::from(is_active));
        self.count(USERS_SUPERUSER, id, sign * i64::from(is_superuser));
    }
}

/// Writes `deltas` in `txn` with one upsert (`value = value + delta`, atomic on both backends), rows in
/// (name, slot) order. Nothing is sent when every delta is zero.
///
/// # Errors
/// [`crate::RepoError::Database`] when the statement fails.
pub(crate) async fn flush(txn: &DatabaseTransaction, backend: Backend, deltas: &Deltas) -> RepoResult<()> {
    if let Some(statement) = upsert(backend, deltas) {
        txn.execute_raw(statement.statement()).await?;
    }
    Ok(())
}

/// The upsert of [`flush`], or `None` when there is nothing to add. Built apart from the await, which keeps the
/// future `Send`.
fn upsert(backend: Backend, deltas: &Deltas) -> Option<RawSql> {
    let mut q = RawSql::new(backend);
    q.push("INSERT INTO dashboard_counters (name, slot, value) VALUES ");
    let mut rows = 0;
    for (&(name, slot), &delta) in deltas {
        if delta == 0 {
            continue;
        }
        q.push(if rows == 0 { "(" } else { ", (" });
        q.bind(name).push(", ").bind(slot).push(", ").bind(delta).push(")");
        rows += 1;
    }
    q.push(" ON CONFLICT (name, slot) DO UPDATE SET value = dashboard_counters.value + excluded.value");
    (rows > 0).then_some(q)
}

/// The counters computed from the tables, in slot 0 (the same statements as the migration that created them).
const RECOUNT: [&str; 2] = [
    "INSERT INTO dashboard_counters (name, slot, value) \
     SELECT 'users_total', 0, COUNT(*) FROM users UNION ALL \
     SELECT 'users_active', 0, COALESCE(SUM(CASE WHEN is_active THEN 1 ELSE 0 END), 0) FROM users UNION ALL \
     SELECT 'users_superuser', 0, COALESCE(SUM(CASE WHEN is_superuser THEN 1 ELSE 0 END), 0) FROM users",
    "INSERT INTO dashboard_counters (name, slot, value) \
     SELECT 'orders_' || status, 0, COUNT(*) FROM rental_orders GROUP BY status",
];

/// The dashboard's counters as a whole: their repair.
#[derive(Debug, Clone)]
pub struct DashboardCounters {
    db: Database,
}

impl DashboardCounters {
    /// The counters of `db`.
    pub fn new(db: Database) -> Self {
        Self { db }
    }

    /// Recomputes every counter from the tables in one transaction and returns the number of counter rows
    /// written. Safe beside live writes: on PostgreSQL it first locks the counters table against writers
    /// (`EXCLUSIVE`, reads go on), so a unit that has written its counters commits before the recount reads
    /// the tables (and is counted), and one that has not yet written them waits and adds its deltas to the
    /// recount (its rows were not visible to it). On SQLite the unit's write lock serialises it with every
    /// other writer. It reads every user and order: seconds at a million rows.
    ///
    /// # Errors
    /// [`crate::RepoError::Database`] when a statement fails; nothing changes then.
    pub async fn repair(&self) -> RepoResult<u64> {
        self.db
            .write(async |uow: &UnitOfWork| {
                let txn = uow.conn();
                if uow.backend() == Backend::Postgres {
                    txn.execute_unprepared("LOCK TABLE dashboard_counters IN EXCLUSIVE MODE").await?;
                }
                txn.execute_unprepared("DELETE FROM dashboard_counters").await?;
                let mut written = 0;
                for statement in RECOUNT {
                    written += txn.execute_unprepared(statement).await?.rows_affected();
                }
                Ok(written)
            })
            .await
    }

    /// Each counter summed over its slots, by name (counters without a row are absent).
    ///
    /// # Errors
    /// [`crate::RepoError::Database`] when the query fails.
    pub async fn totals(&self) -> RepoResult<BTreeMap<String, i64>> {
        read_totals(self.db.connection(), self.db.backend()).await
    }
}

/// Each counter summed over its slots, read on `conn`.
pub(crate) async fn read_totals(conn: &impl ConnectionTrait, backend: Backend) -> RepoResult<BTreeMap<String, i64>> {
    let mut q = RawSql::new(backend);
    q.push("SELECT name, CAST(SUM(value) AS BIGINT) AS total FROM dashboard_counters GROUP BY name");
    let mut totals = BTreeMap::new();
    for row in conn.query_all_raw(q.statement()).await? {
        totals.insert(row.try_get::<String>("", "name")?, row.try_get::<i64>("", "total")?);
    }
    Ok(totals)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_has_its_own_counter_named_after_it() {
        for status in OrderStatus::ALL {
            assert_eq!(orders_in(status), format!("orders_{}", status.as_str()));
        }
    }

    #[test]
    fn slots_stay_in_range() {
        for _ in 0..1000 {
            let slot = slot_of(Uuid::now_v7());
            assert!((0..i16::from(SLOTS)).contains(&slot));
        }
    }
}
