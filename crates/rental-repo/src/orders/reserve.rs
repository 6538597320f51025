//! Stock: capacity and holds, the reservation check under the stock lock, nearest free periods, new orders and maintenance blocks.

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Duration, Utc};
use rental_domain::OrderStatus;
use rental_domain::availability::{Hold, Timeline};
use sea_orm::sea_query::{Alias, Expr, ExprTrait, LockType, Query, UnionType};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use uuid::Uuid;

use super::records::*;
use super::stock;
use super::{insert_event, line_model, order_record};
use crate::entity::{maintenance_block, order_line, product, rental_order, unit, user};
use crate::{Backend, OrderRepo, RepoError, RepoResult, UnitOfWork, stored};

/// How far around a refused period the nearest free periods are looked for.
pub const SUGGESTION_HORIZON_DAYS: i64 = 180;

/// Stock a line wants: (product, quantity, start, hold until, end).
pub(super) type Wanted = (Uuid, i64, DateTime<Utc>, DateTime<Utc>, DateTime<Utc>);

impl OrderRepo {
    /// Locks the stock of `product_ids` until the transaction ends (PostgreSQL: the product rows, in id
    /// order). Fails with `NotFound` when a product does not exist.
    pub(super) async fn lock_products(&self, uow: &UnitOfWork, product_ids: &BTreeSet<Uuid>) -> RepoResult<()> {
        let found = lock_product_rows(uow.conn(), uow.backend(), product_ids).await?;
        if found == product_ids.len() { Ok(()) } else { Err(RepoError::NotFound) }
    }

    /// Capacity and holds of each of `product_ids` over `[from, until)`, with two statements: the products with
    /// their capacity (units plus bulk quantities, as subqueries), and the order holds and maintenance blocks
    /// overlapping the window (one UNION ALL). With `lock` on PostgreSQL the first statement also locks the
    /// product rows (`FOR NO KEY UPDATE`, in id order). Fails with `NotFound` when a product does not exist.
    async fn stock_holds<C: ConnectionTrait>(
        &self,
        conn: &C,
        product_ids: &BTreeSet<Uuid>,
        from: DateTime<Utc>,
        until: DateTime<Utc>,
        lock: bool,
    ) -> RepoResult<HashMap<Uuid, StockHolds>> {
        let ids = || product_ids.iter().copied();
        let capacity = stock::capacity(&Expr::col((product::Entity, product::Column::Id)));
        let mut select = product::Entity::find()
            .select_only()
            .column(product::Column::Id)
            .column_as(capacity, "capacity")
            .filter(product::Column::Id.is_in(ids()))
            .order_by_asc(product::Column::Id);
        if lock && self.db.backend() == Backend::Postgres {
            select = select.lock(LockType::NoKeyUpdate);
        }
        let capacities: Vec<(Uuid, i64)> = select.into_tuple().all(conn).await?;
        if capacities.len() != product_ids.len() {
            return Err(RepoError::NotFound);
        }
        let mut stock: HashMap<Uuid, StockHolds> =
            capacities.into_iter().map(|(id, capacity)| (id, StockHolds { capacity, holds: Vec::new() })).collect();
        let mut lines = Query::select()
            .columns([order_line::Column::ProductId, order_line::Column::StartsAt, order_line::Column::HoldUntil])
            .expr(Expr::col(order_line::Column::Quantity).cast_as("bigint"))
            .from(order_line::Entity)
            .and_where(order_line::Column::ProductId.is_in(ids()))
            .and_where(order_line::Column::HoldsStock.eq(true))
            .and_where(order_line::Column::HoldUntil.gt(from))
            .and_where(order_line::Column::StartsAt.lt(until))
            .to_owned();
        let blocks = Query::select()
            .columns([
                maintenance_block::Column::ProductId,
                maintenance_block::Column::StartsAt,
                maintenance_block::Column::EndsAt,
            ])
            .expr(Expr::val(1i64).cast_as("bigint"))
            .from(maintenance_block::Entity)
            .and_where(maintenance_block::Column::ProductId.is_in(ids()))
            .and_where(maintenance_block::Column::EndsAt.gt(from))
            .and_where(maintenance_block::Column::StartsAt.lt(until))
            .to_owned();
        let union = lines.union(UnionType::All, blocks).to_owned();
        let backend = conn.get_database_backend();
        for row in conn.query_all_raw(backend.build(&union)).await? {
            let product_id: Uuid = row.try_get_by_index(0)?;
            let hold = Hold {
                start: row.try_get_by_index(1)?,
                end: row.try_get_by_index(2)?,
                quantity: row.try_get_by_index(3)?,
            };
            if let Some(s) = stock.get_mut(&product_id) {
                s.holds.push(hold);
            }
        }
        Ok(stock)
    }

    /// Capacity and holds of one product over `[from, until)`, read without locking (for availability answers).
    ///
    /// # Errors
    /// [`RepoError::Database`] when a query fails.
    pub async fn product_holds(
        &self,
        product_id: Uuid,
        from: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> RepoResult<StockHolds> {
        let ids = BTreeSet::from([product_id]);
        let mut map = self.stock_holds(self.db.connection(), &ids, from, until, false).await?;
        map.remove(&product_id).ok_or(RepoError::NotFound)
    }

    /// The lines of `lines` that do not fit, given the stock read in the unit of work. Lines of the same
    /// product count against each other.
    pub(super) async fn shortages(&self, uow: &UnitOfWork, lines: &[Wanted], lock: bool) -> RepoResult<Vec<Shortage>> {
        let ids: BTreeSet<Uuid> = lines.iter().map(|l| l.0).collect();
        let (Some(from), Some(until)) = (lines.iter().map(|l| l.2).min(), lines.iter().map(|l| l.3).max()) else {
            return Ok(Vec::new());
        };
        let mut stock = self.stock_holds(uow.conn(), &ids, from, until, lock).await?;
        let mut short = Vec::new();
        for (index, &(product_id, quantity, start, hold_until, end)) in lines.iter().enumerate() {
            let Some(s) = stock.get_mut(&product_id) else { continue };
            let free = Timeline::new(s.capacity, &s.holds, start, hold_until).min_free(start, hold_until).unwrap_or(0);
            if free < quantity {
                short.push(Shortage {
                    line: index,
                    product_id,
                    requested: quantity,
                    free: Ord::max(free, 0),
                    start,
                    end,
                    hold_until,
                    length: end - start,
                    earlier_start: None,
                    later_start: None,
                });
            }
            s.holds.push(Hold { start, end: hold_until, quantity });
        }
        Ok(short)
    }

    /// Fills in the nearest free periods of `shortages` (from a refused reservation, after its unit of work
    /// rolled back), reading outside any transaction; periods start no earlier than `now`.
    ///
    /// # Errors
    /// [`RepoError::Database`] when a query fails.
    pub async fn suggest_free_periods(
        &self,
        mut shortages: Vec<Shortage>,
        now: DateTime<Utc>,
    ) -> RepoResult<Vec<Shortage>> {
        let current = now;
        for shortage in &mut shortages {
            let (product_id, quantity, start, hold_until) =
                (shortage.product_id, shortage.requested, shortage.start, shortage.hold_until);
            let from = Ord::max(current, start - Duration::days(SUGGESTION_HORIZON_DAYS));
            let until = hold_until + Duration::days(SUGGESTION_HORIZON_DAYS);
            let stock = self.product_holds(product_id, from, until).await?;
            let timeline = Timeline::new(stock.capacity, &stock.holds, from, until);
            let (earlier, later) = timeline.nearest_free(quantity, hold_until - start, start, current);
            shortage.earlier_start = earlier;
            shortage.later_start = later;
        }
        Ok(shortages)
    }

    /// Whether an active user with this id exists (a customer to rent for).
    ///
    /// # Errors
    /// [`RepoError::Database`] when the query fails.
    pub async fn active_user_exists(&self, id: Uuid) -> RepoResult<bool> {
        let found: Option<Uuid> = user::Entity::find_by_id(id)
            .select_only()
            .column(user::Column::Id)
            .filter(user::Column::IsActive.eq(true))
            .into_tuple()
            .one(self.db.connection())
            .await?;
        Ok(found.is_some())
    }

    /// The pricing terms of the products among `ids` that exist.
    ///
    /// # Errors
    /// [`RepoError::Database`] when the query fails.
    pub async fn product_terms(&self, ids: &BTreeSet<Uuid>) -> RepoResult<Vec<ProductTermsRecord>> {
        product::Entity::find()
            .filter(product::Column::Id.is_in(ids.iter().copied()))
            .all(self.db.connection())
            .await?
            .into_iter()
            .map(|p| {
                let terms = stored::product_terms(&p)?;
                Ok(ProductTermsRecord { id: p.id, name: p.name, is_active: p.is_active, terms })
            })
            .collect()
    }

    /// Writes a new order with its lines and its creation event in `uow`. A `Reserved` order first locks its
    /// products and checks that its lines fit the free stock (then holds it); a `Quote` holds nothing. The
    /// caller writes the invoice in the same unit ([`crate::BillingRepo::create_invoice`]) and, for a
    /// reservation, notes the lines' usage after the commit.
    ///
    /// # Errors
    /// [`RepoError::InsufficientStock`] with the lines that do not fit (their nearest free periods are filled in by
    /// [`OrderRepo::suggest_free_periods`] once the unit has rolled back); [`RepoError::NotFound`] when a
    /// product does not exist.
    #[tracing::instrument(skip_all, fields(customer_id = %new.customer_id, lines = new.lines.len()))]
    pub async fn create_order(
        &self,
        uow: &UnitOfWork,
        new: &NewOrderRecord,
        at: DateTime<Utc>,
    ) -> RepoResult<OrderRecord> {
        let order_id = Uuid::now_v7();
        let reserve = new.status == OrderStatus::Reserved;
        let holds: Vec<Wanted> = new
            .lines
            .iter()
            .map(|l| {
                let hold_until = l.ends_at + Duration::minutes(i64::from(l.terms.product.buffer_minutes));
                (l.product_id, i64::from(l.quantity), l.starts_at, hold_until, l.ends_at)
            })
            .collect();
        let order = rental_order::Model {
            id: order_id,
            customer_id: new.customer_id,
            status: new.status.as_str().to_owned(),
            currency: new.totals.total.currency.as_str().to_owned(),
            subtotal_minor: new.totals.subtotal.amount_minor,
            tax_rate_bp: new.tax_rate_bp,
            tax_minor: new.totals.tax.amount_minor,
            total_minor: new.totals.total.amount_minor,
            deposit_minor: new.totals.deposit.amount_minor,
            starts_at: new.lines.iter().map(|l| l.starts_at).min().unwrap_or(at),
            ends_at: new.lines.iter().map(|l| l.ends_at).max().unwrap_or(at),
            notes: new.notes.clone(),
            created_by: new.created_by,
            created_at: at,
            updated_at: at,
            picked_up_at: None,
            returned_at: None,
        };
        let lines: Vec<order_line::Model> =
            new.lines.iter().zip(&holds).map(|(l, h)| line_model(order_id, l, h.3, reserve)).collect();
        let txn = uow.conn();
        if reserve {
            // Locks the products (PostgreSQL) while reading their capacity.
            let short = self.shortages(uow, &holds, true).await?;
            if !short.is_empty() {
                return Err(RepoError::InsufficientStock(short));
            }
        }
        rental_order::Entity::insert(rental_order::ActiveModel::from(order.clone()))
            .exec_without_returning(txn)
            .await?;
        order_line::Entity::insert_many(lines.into_iter().map(order_line::ActiveModel::from))
            .exec_without_returning(txn)
            .await?;
        insert_event(txn, order_id, new.created_by, None, new.status, Some("created"), at).await?;
        uow.count(crate::analytics::counters::orders_in(new.status), order_id, 1);
        order_record(order)
    }

    /// Takes a unit out of service for `[start, end)` in `uow`. Refused when the unit is needed by reservations
    /// then.
    ///
    /// # Errors
    /// [`RepoError::NotFound`] for an unknown unit; [`RepoError::InsufficientStock`] when the block would leave
    /// reservations without stock.
    pub async fn add_maintenance(
        &self,
        uow: &UnitOfWork,
        new: NewMaintenanceRecord,
        at: DateTime<Utc>,
    ) -> RepoResult<MaintenanceRecord> {
        let txn = uow.conn();
        let product_id: Uuid = unit::Entity::find_by_id(new.unit_id)
            .select_only()
            .column(unit::Column::ProductId)
            .into_tuple()
            .one(txn)
            .await?
            .ok_or(RepoError::NotFound)?;
        let model = maintenance_block::Model {
            id: Uuid::now_v7(),
            unit_id: new.unit_id,
            product_id,
            starts_at: new.starts_at,
            ends_at: new.ends_at,
            reason: new.reason,
            created_by: new.created_by,
            created_at: at,
        };
        let hold = [(product_id, 1, model.starts_at, model.ends_at, model.ends_at)];
        self.lock_products(uow, &BTreeSet::from([product_id])).await?;
        let short = self.shortages(uow, &hold, false).await?;
        if !short.is_empty() {
            return Err(RepoError::InsufficientStock(short));
        }
        maintenance_block::Entity::insert(maintenance_block::ActiveModel::from(model.clone()))
            .exec_without_returning(txn)
            .await?;
        Ok(MaintenanceRecord {
            id: model.id,
            unit_id: model.unit_id,
            product_id,
            starts_at: model.starts_at,
            ends_at: model.ends_at,
            reason: model.reason,
            created_at: model.created_at,
        })
    }

    /// Overbooked holds: the holds that end in the future at whose start the holds covering that instant
    /// exceed the product's stock. Zero in a healthy database; the load test's final check.
    ///
    /// # Errors
    /// [`RepoError::Database`] when the query fails.
    pub async fn count_overbooked(&self) -> RepoResult<u64> {
        // Checking at each start of a hold is enough: the holds are step functions that only rise there.
        let p = Alias::new("p");
        let (product, start) = (
            Expr::col((p.clone(), order_line::Column::ProductId)),
            Expr::col((p.clone(), order_line::Column::StartsAt)),
        );
        let count = Query::select()
            .expr(Expr::col((p.clone(), order_line::Column::Id)).count())
            .from_as(order_line::Entity, p.clone())
            .and_where(Expr::col((p.clone(), order_line::Column::HoldsStock)).eq(true))
            .and_where(Expr::col((p, order_line::Column::HoldUntil)).gt(chrono::Utc::now()))
            .and_where(stock::held_at(&product, &start).gt(stock::capacity(&product)))
            .to_owned();
        let backend = self.db.connection().get_database_backend();
        let row = self.db.connection().query_one_raw(backend.build(&count)).await?;
        let n: i64 = match row {
            Some(row) => row.try_get_by_index(0)?,
            None => 0,
        };
        Ok(u64::try_from(n).unwrap_or(0))
    }
}

/// Locks the rows of `product_ids` until the transaction ends, in id order (PostgreSQL; SQLite's write
/// transaction excludes other writers already). Returns how many of the products exist.
///
/// The lock is `FOR NO KEY UPDATE`: it excludes other stock writers and product updates but not the key-share
/// locks that inserting a line referring to the product takes, so a quote being written cannot deadlock
/// with a reservation of the same products.
pub(crate) async fn lock_product_rows<C: ConnectionTrait>(
    conn: &C,
    backend: Backend,
    product_ids: &BTreeSet<Uuid>,
) -> RepoResult<usize> {
    if product_ids.is_empty() {
        return Ok(0);
    }
    let mut select = product::Entity::find()
        .select_only()
        .column(product::Column::Id)
        .filter(product::Column::Id.is_in(product_ids.iter().copied()))
        .order_by_asc(product::Column::Id);
    if backend == Backend::Postgres {
        select = select.lock(LockType::NoKeyUpdate);
    }
    let found: Vec<Uuid> = select.into_tuple().all(conn).await?;
    Ok(found.len())
}
