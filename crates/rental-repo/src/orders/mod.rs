//! The rentals repository: orders with their lines, the atomic reservation of stock, the lifecycle
//! transitions with their event log, unit assignments and returns, maintenance blocks, invoices with gap-free
//! yearly numbers, and payments.
//!
//! # No double booking
//! Checking availability and writing the holds happen in one transaction that first locks the stock being
//! reserved: on PostgreSQL the rows of the products concerned (`SELECT … FOR NO KEY UPDATE`, in id order so two
//! orders of the same products cannot deadlock); on SQLite the transaction starts `IMMEDIATE`, which takes the
//! database's single write lock before the first read. Whoever reserves a product after us waits for our
//! commit and then sees our holds, so the check can never race the insert.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Datelike, Duration, SubsecRound, Utc};
use rental_domain::availability::{Hold, Timeline};
use rental_domain::{OrderStatus, UnitCondition, started_days};
use sea_orm::sea_query::{CaseStatement, Expr, ExprTrait, Func, LockType, OnConflict, Query, UnionType};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, DatabaseTransaction, EntityTrait,
    QueryFilter, QueryOrder, QuerySelect,
};
use uuid::Uuid;

use crate::analytics::usage;
use crate::db::raw::RawSql;
use crate::db::txn::{begin_write, finish};
use crate::entity::{
    invoice, invoice_counter, invoice_line, maintenance_block, order_event, order_line, order_line_unit, payment,
    product, rental_order, stock_level, unit, user,
};
use crate::query::paginate::{Keys, fetch_page};
use crate::query::{CursorValue, Direction, FilterKind, ListQuery, ListSpec, Listing, SortKind};
use crate::{Backend, Database, RepoError, RepoResult};

/// How far around a refused period the nearest free periods are looked for.
pub const SUGGESTION_HORIZON_DAYS: i64 = 180;

/// Stock a line wants: (product, quantity, start, hold until, end).
type Wanted = (Uuid, i64, DateTime<Utc>, DateTime<Utc>, DateTime<Utc>);

fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

/// Runs a block in a write transaction (see [`RentalRepo::begin_write`]), committing on success and rolling
/// back at once on failure.
macro_rules! in_write {
    ($repo:expr, |$txn:ident| $body:block) => {{
        let owned = $repo.begin_write().await?;
        let $txn = &owned;
        let result: RepoResult<_> = async { $body }.await;
        finish(owned, result).await
    }};
}

// ---- records ----------------------------------------------------------------------------------------------

/// A stored rental order (without its lines).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderRecord {
    /// Id.
    pub id: Uuid,
    /// The customer renting.
    pub customer_id: Uuid,
    /// Where it is in its lifecycle.
    pub status: OrderStatus,
    /// Currency of every amount.
    pub currency: String,
    /// Sum of the lines' prices.
    pub subtotal_minor: i64,
    /// Tax rate in basis points (1 % = 100).
    pub tax_rate_bp: i32,
    /// Tax on the subtotal.
    pub tax_minor: i64,
    /// Subtotal plus tax.
    pub total_minor: i64,
    /// Deposit held for the order's items (refundable, not taxed, not invoiced).
    pub deposit_minor: i64,
    /// Earliest start of its lines.
    pub starts_at: DateTime<Utc>,
    /// Latest end of its lines.
    pub ends_at: DateTime<Utc>,
    /// Free text.
    pub notes: Option<String>,
    /// Who created it (the customer, or staff on their behalf).
    pub created_by: Option<Uuid>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// When the items were picked up.
    pub picked_up_at: Option<DateTime<Utc>>,
    /// When they came back.
    pub returned_at: Option<DateTime<Utc>>,
}

/// A unit handed out for an order line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssignedUnitRecord {
    /// The unit.
    pub unit_id: Uuid,
    /// Condition recorded at return.
    pub returned_condition: Option<UnitCondition>,
    /// Damage noted at return.
    pub damage_note: Option<String>,
}

/// A stored order line, with the prices it was sold at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderLineRecord {
    /// Id.
    pub id: Uuid,
    /// The product.
    pub product_id: Uuid,
    /// Items rented.
    pub quantity: i32,
    /// Start of the rental.
    pub starts_at: DateTime<Utc>,
    /// End of the rental (exclusive).
    pub ends_at: DateTime<Utc>,
    /// The stock is held until here: the end plus the product's buffer, or the return plus the buffer.
    pub hold_until: DateTime<Utc>,
    /// Whether the line holds stock now.
    pub holds_stock: bool,
    /// Prices and terms as they were when the line was priced.
    pub terms: LineTerms,
    /// Units handed out at pickup.
    pub units: Vec<AssignedUnitRecord>,
}

/// The prices and terms of a product copied into an order line when it is priced, so later changes to the
/// product never alter the order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineTerms {
    /// Currency.
    pub currency: String,
    /// Day rate.
    pub price_per_day_minor: i64,
    /// Week rate.
    pub price_per_week_minor: Option<i64>,
    /// Month rate.
    pub price_per_month_minor: Option<i64>,
    /// Deposit per item.
    pub deposit_per_unit_minor: i64,
    /// Late fee per item and started day.
    pub late_fee_per_day_minor: i64,
    /// Buffer after the rental.
    pub buffer_minutes: i32,
    /// Started days charged.
    pub charged_days: i32,
    /// Months, weeks and days of the cheapest cover.
    pub months: i32,
    /// See `months`.
    pub weeks: i32,
    /// See `months`.
    pub days: i32,
    /// Price of one item for the period.
    pub unit_price_minor: i64,
    /// `unit_price × quantity`.
    pub line_total_minor: i64,
}

/// A line of a new order.
#[derive(Debug, Clone)]
pub struct NewOrderLineRecord {
    /// The product.
    pub product_id: Uuid,
    /// Items, at least 1.
    pub quantity: i32,
    /// Start.
    pub starts_at: DateTime<Utc>,
    /// End (exclusive).
    pub ends_at: DateTime<Utc>,
    /// Prices and terms.
    pub terms: LineTerms,
    /// Invoice text of the line.
    pub description: String,
}

/// A new order, priced.
#[derive(Debug, Clone)]
pub struct NewOrderRecord {
    /// The customer.
    pub customer_id: Uuid,
    /// `Quote` (nothing held) or `Reserved` (stock held, invoice issued).
    pub status: OrderStatus,
    /// Currency of every line.
    pub currency: String,
    /// Sum of the lines.
    pub subtotal_minor: i64,
    /// Tax rate in basis points.
    pub tax_rate_bp: i32,
    /// Tax.
    pub tax_minor: i64,
    /// Subtotal plus tax.
    pub total_minor: i64,
    /// Deposit.
    pub deposit_minor: i64,
    /// Free text.
    pub notes: Option<String>,
    /// Who creates it.
    pub created_by: Option<Uuid>,
    /// The lines, at least one.
    pub lines: Vec<NewOrderLineRecord>,
}

/// A line of an order that could not be reserved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shortage {
    /// Index of the line in the order.
    pub line: usize,
    /// Its product.
    pub product_id: Uuid,
    /// Quantity asked for.
    pub requested: i64,
    /// The least quantity free over the line's period (with buffer).
    pub free: i64,
    /// Length of the line's period (without the buffer).
    pub length: Duration,
    /// Latest start before the asked one from which the whole period is free, if any within the horizon.
    pub earlier_start: Option<DateTime<Utc>>,
    /// Earliest start after the asked one from which the whole period is free.
    pub later_start: Option<DateTime<Utc>>,
}

/// An entry of an order's event log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderEventRecord {
    /// Id.
    pub id: Uuid,
    /// Who did it (none for the system).
    pub actor_id: Option<Uuid>,
    /// Status before; none for the creation.
    pub from_status: Option<String>,
    /// Status after.
    pub to_status: String,
    /// Free text.
    pub note: Option<String>,
    /// When.
    pub created_at: DateTime<Utc>,
}

/// A stored invoice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvoiceRecord {
    /// Id.
    pub id: Uuid,
    /// The order billed.
    pub order_id: Uuid,
    /// The customer billed.
    pub customer_id: Uuid,
    /// `INV-YYYY-NNNNNN`; none while a draft.
    pub number: Option<String>,
    /// `draft`, `open`, `paid` or `void`.
    pub status: String,
    /// Currency.
    pub currency: String,
    /// Sum of the lines.
    pub subtotal_minor: i64,
    /// Tax rate in basis points.
    pub tax_rate_bp: i32,
    /// Tax on the taxable lines.
    pub tax_minor: i64,
    /// Subtotal plus tax.
    pub total_minor: i64,
    /// Paid so far.
    pub amount_paid_minor: i64,
    /// When it was issued (numbered).
    pub issued_at: Option<DateTime<Utc>>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// Its lines (empty in lists).
    pub lines: Vec<InvoiceLineRecord>,
}

/// A line of an invoice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvoiceLineRecord {
    /// Id.
    pub id: Uuid,
    /// `rental`, `late_fee` or `damage`.
    pub kind: String,
    /// Text.
    pub description: String,
    /// Quantity.
    pub quantity: i32,
    /// Price of one.
    pub unit_amount_minor: i64,
    /// Line amount.
    pub amount_minor: i64,
    /// Whether tax applies.
    pub taxable: bool,
}

/// A payment recorded against an invoice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentRecord {
    /// Id.
    pub id: Uuid,
    /// The invoice paid.
    pub invoice_id: Uuid,
    /// Amount.
    pub amount_minor: i64,
    /// Currency.
    pub currency: String,
    /// `cash`, `card`, `bank_transfer`, `stripe`.
    pub method: String,
    /// External reference.
    pub reference: Option<String>,
    /// When.
    pub created_at: DateTime<Utc>,
}

/// A product line's product, as an order shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderProductRecord {
    /// Id.
    pub id: Uuid,
    /// SKU.
    pub sku: String,
    /// Name.
    pub name: String,
}

/// The customer of an order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderCustomerRecord {
    /// Id.
    pub id: Uuid,
    /// E-mail.
    pub email: String,
    /// Name.
    pub full_name: String,
}

/// An order with everything about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderDetail {
    /// The order.
    pub order: OrderRecord,
    /// Its lines with their units.
    pub lines: Vec<OrderLineRecord>,
    /// The products of the lines.
    pub products: Vec<OrderProductRecord>,
    /// The customer (none if the account is gone).
    pub customer: Option<OrderCustomerRecord>,
    /// The invoice with its lines.
    pub invoice: Option<InvoiceRecord>,
    /// Payments.
    pub payments: Vec<PaymentRecord>,
}

/// The units handed out for one line at pickup.
#[derive(Debug, Clone)]
pub struct LineUnits {
    /// The line.
    pub line_id: Uuid,
    /// The units; more than the line's quantity is refused.
    pub unit_ids: Vec<Uuid>,
}

/// How one unit came back.
#[derive(Debug, Clone)]
pub struct UnitReturn {
    /// The unit.
    pub unit_id: Uuid,
    /// Its condition now.
    pub condition: UnitCondition,
    /// Damage noted.
    pub damage_note: Option<String>,
    /// Damage charged to the customer, in the order's currency; 0 for none.
    pub damage_charge_minor: i64,
}

/// A maintenance block: a unit out of service for a period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaintenanceRecord {
    /// Id.
    pub id: Uuid,
    /// The unit.
    pub unit_id: Uuid,
    /// Its product.
    pub product_id: Uuid,
    /// Start.
    pub starts_at: DateTime<Utc>,
    /// End (exclusive).
    pub ends_at: DateTime<Utc>,
    /// Why.
    pub reason: Option<String>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
}

/// What availability is computed from: a product's capacity and its holds in a window.
#[derive(Debug, Clone)]
pub struct StockHolds {
    /// Units plus bulk quantities.
    pub capacity: i64,
    /// Order holds and maintenance blocks overlapping the window.
    pub holds: Vec<Hold>,
}

/// What pricing needs of a product.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProductTermsRecord {
    /// Id.
    pub id: Uuid,
    /// Name, for invoice lines.
    pub name: String,
    /// Currency of its prices.
    pub currency: String,
    /// Day rate.
    pub price_per_day_minor: i64,
    /// Week rate.
    pub price_per_week_minor: Option<i64>,
    /// Month rate.
    pub price_per_month_minor: Option<i64>,
    /// Deposit per item.
    pub deposit_minor: i64,
    /// Late fee per item and day.
    pub late_fee_per_day_minor: i64,
    /// Buffer after each rental.
    pub buffer_minutes: i32,
    /// Whether it can be rented.
    pub is_active: bool,
}

// ---- list specs -------------------------------------------------------------------------------------------

/// Filters of the order list.
#[derive(Debug, Clone, Copy)]
pub struct OrderFilter;

impl OrderFilter {
    /// `status=<status>`.
    pub const STATUS: &'static str = "status";
    /// `customer=<uuid>`.
    pub const CUSTOMER: &'static str = "customer";
    /// `product=<uuid>`: orders with a line of the product.
    pub const PRODUCT: &'static str = "product";
    /// `from=<time>`: orders whose period ends after it.
    pub const FROM: &'static str = "from";
    /// `to=<time>`: orders whose period starts before it.
    pub const TO: &'static str = "to";
    /// `overdue=true`: picked up and past their end (false: all others).
    pub const OVERDUE: &'static str = "overdue";
}

static ORDER_LIST_SPEC: ListSpec = ListSpec {
    resource: "rentals",
    filters: &[
        (
            OrderFilter::STATUS,
            FilterKind::OneOf(&["quote", "reserved", "picked_up", "returned", "closed", "cancelled"]),
        ),
        (OrderFilter::CUSTOMER, FilterKind::Uuid),
        (OrderFilter::PRODUCT, FilterKind::Uuid),
        (OrderFilter::FROM, FilterKind::DateTime),
        (OrderFilter::TO, FilterKind::DateTime),
        (OrderFilter::OVERDUE, FilterKind::Bool),
    ],
    sorts: &[("created_at", SortKind::DateTime), ("starts_at", SortKind::DateTime)],
    default_sort: ("created_at", Direction::Desc),
    searchable: false,
};

/// The whitelist of the order list: filters `status`, `customer`, `product`, `from`/`to` (period overlap),
/// `overdue`; sorts `created_at` (default, newest first) and `starts_at`.
pub fn order_list_spec() -> &'static ListSpec {
    &ORDER_LIST_SPEC
}

static INVOICE_LIST_SPEC: ListSpec = ListSpec {
    resource: "invoices",
    filters: &[("status", FilterKind::OneOf(&["draft", "open", "paid", "void"])), ("customer", FilterKind::Uuid)],
    sorts: &[("created_at", SortKind::DateTime)],
    default_sort: ("created_at", Direction::Desc),
    searchable: false,
};

/// The whitelist of the invoice list: filters `status` and `customer`; sort `created_at` (newest first).
pub fn invoice_list_spec() -> &'static ListSpec {
    &INVOICE_LIST_SPEC
}

// ---- the repository ---------------------------------------------------------------------------------------

/// Rental orders, availability, invoices and payments.
#[derive(Debug, Clone)]
pub struct RentalRepo {
    db: Database,
    numbering: Arc<Numbering>,
}

/// Group commit of invoice numbers: one numbering transaction at a time on this instance, each numbering every
/// issued invoice still without a number. A caller whose invoice was committed before a batch started needs no
/// batch of its own.
#[derive(Debug, Default)]
struct Numbering {
    gate: tokio::sync::Mutex<()>,
    /// Batches started so far; a batch's sequence number.
    started: AtomicU64,
    /// Sequence number of the latest batch that committed.
    completed: AtomicU64,
    /// Lines whose usage change this instance noted since it last recorded usage.
    usage_backlog: AtomicU64,
    /// When this instance last recorded usage, milliseconds since the epoch.
    usage_recorded_ms: AtomicU64,
}

/// Usage is recorded by a settlement once this many lines are waiting…
const USAGE_BACKLOG_LINES: u64 = 256;
/// …or once this long has passed since the last recording (reports record whatever is left before reading).
const USAGE_MAX_DELAY_MS: u64 = 1_000;

/// Most invoices one numbering transaction takes.
const NUMBERING_BATCH: u64 = 1_000;

impl RentalRepo {
    /// A repository over `db`.
    pub fn new(db: Database) -> Self {
        Self { db, numbering: Arc::default() }
    }

    /// Finishes the work that committed orders leave behind: gives every issued invoice still without a number
    /// its number, gap-free per year, in order of issue; then, once 256 lines are waiting or a second has passed
    /// since the last time, records the pending usage-mark changes of lines that became rented or stopped being
    /// rented (see [`crate::analytics::usage`]; the reports record whatever is left before they read).
    ///
    /// Reservations issue invoices without a number and leave their usage pending, so that their transactions
    /// never queue on the yearly counter row nor spend statements on the marks; they call this after their
    /// commit. Numbers are taken in one transaction that locks the year's counter row and numbers the whole
    /// backlog, so many concurrent reservations share one numbering commit, and a failed numbering returns its
    /// numbers; the usage backlog is recorded the same way, in batches. Returns when the caller's invoices are
    /// numbered (by this call or by a batch that started after them).
    ///
    /// # Errors
    /// [`RepoError::Database`] when a transaction fails; the work stays pending until the next call.
    pub async fn settle_committed_orders(&self) -> RepoResult<()> {
        let committed_before = self.numbering.started.load(Ordering::SeqCst);
        let _gate = self.numbering.gate.lock().await;
        if self.numbering.completed.load(Ordering::SeqCst) > committed_before {
            return Ok(());
        }
        let batch = self.numbering.started.fetch_add(1, Ordering::SeqCst) + 1;
        loop {
            let numbered = in_write!(self, |txn| {
                // Served by the partial index idx_invoices_unnumbered (only invoices waiting for a number).
                let mut pending: Vec<(Uuid, Option<DateTime<Utc>>)> = invoice::Entity::find()
                    .select_only()
                    .columns([invoice::Column::Id, invoice::Column::IssuedAt])
                    .filter(invoice::Column::Status.is_in(["open", "paid"]))
                    .filter(invoice::Column::Number.is_null())
                    .limit(NUMBERING_BATCH)
                    .into_tuple()
                    .all(txn)
                    .await?;
                pending.sort_unstable_by_key(|&(id, issued_at)| (issued_at, id));
                let mut by_year: Vec<(i32, Vec<Uuid>)> = Vec::new();
                for (id, issued_at) in &pending {
                    let year = issued_at.unwrap_or_else(now).year();
                    match by_year.last_mut() {
                        Some((y, ids)) if *y == year => ids.push(*id),
                        _ => by_year.push((year, vec![*id])),
                    }
                }
                for (year, ids) in by_year {
                    let count = i64::try_from(ids.len()).unwrap_or(i64::MAX);
                    let last = advance_invoice_counter(txn, year, count).await?;
                    // One UPDATE for the whole year's share of the batch: CASE id WHEN … THEN seq.
                    let (mut seqs, mut numbers) = (CaseStatement::new(), CaseStatement::new());
                    for (seq, id) in (last - count + 1..=last).zip(&ids) {
                        seqs = seqs.case(invoice::Column::Id.eq(*id), Expr::val(seq));
                        numbers = numbers.case(invoice::Column::Id.eq(*id), Expr::val(format!("INV-{year}-{seq:06}")));
                    }
                    invoice::Entity::update_many()
                        .col_expr(invoice::Column::Number, numbers.into())
                        .col_expr(invoice::Column::Year, Expr::val(year))
                        .col_expr(invoice::Column::Seq, seqs.into())
                        .filter(invoice::Column::Id.is_in(ids))
                        .exec(txn)
                        .await?;
                }
                Ok(pending.len() as u64)
            })?;
            if numbered < NUMBERING_BATCH {
                break;
            }
        }
        self.record_usage_when_due().await?;
        self.numbering.completed.fetch_max(batch, Ordering::SeqCst);
        Ok(())
    }

    /// A write transaction that may lock stock (see [`begin_write`]).
    async fn begin_write(&self) -> RepoResult<DatabaseTransaction> {
        begin_write(&self.db).await
    }

    /// Locks the stock of `product_ids` until the transaction ends (PostgreSQL: the product rows, in id
    /// order). Fails with `NotFound` when a product does not exist.
    async fn lock_products(&self, txn: &DatabaseTransaction, product_ids: &BTreeSet<Uuid>) -> RepoResult<()> {
        let found = lock_product_rows(txn, self.db.backend(), product_ids).await?;
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
        let of_product = |product_column: Expr| product_column.equals((product::Entity, product::Column::Id));
        let units = Query::select()
            .expr(Expr::col((unit::Entity, unit::Column::Id)).count())
            .from(unit::Entity)
            .and_where(of_product(Expr::col((unit::Entity, unit::Column::ProductId))))
            .to_owned();
        let bulk = Query::select()
            .expr(Func::coalesce([Expr::col((stock_level::Entity, stock_level::Column::Quantity)).sum(), Expr::val(0)]))
            .from(stock_level::Entity)
            .and_where(of_product(Expr::col((stock_level::Entity, stock_level::Column::ProductId))))
            .to_owned();
        let capacity = Expr::SubQuery(None, Box::new(units.into()))
            .add(Expr::SubQuery(None, Box::new(bulk.into())))
            .cast_as("bigint");
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

    /// The lines of `lines` that do not fit, given the stock read in the current transaction. Lines of the same
    /// product count against each other.
    async fn shortages(&self, txn: &DatabaseTransaction, lines: &[Wanted], lock: bool) -> RepoResult<Vec<Shortage>> {
        let ids: BTreeSet<Uuid> = lines.iter().map(|l| l.0).collect();
        let from = lines.iter().map(|l| l.2).min().unwrap_or_else(now);
        let until = lines.iter().map(|l| l.3).max().unwrap_or_else(now);
        let mut stock = self.stock_holds(txn, &ids, from, until, lock).await?;
        let mut short = Vec::new();
        for (index, &(product_id, quantity, start, hold_until, _)) in lines.iter().enumerate() {
            let Some(s) = stock.get_mut(&product_id) else { continue };
            let free = Timeline::new(s.capacity, &s.holds, start, hold_until).min_free(start, hold_until).unwrap_or(0);
            if free < quantity {
                short.push(Shortage {
                    line: index,
                    product_id,
                    requested: quantity,
                    free: Ord::max(free, 0),
                    length: hold_until - start,
                    earlier_start: None,
                    later_start: None,
                });
            }
            s.holds.push(Hold { start, end: hold_until, quantity });
        }
        Ok(short)
    }

    /// Fills in the nearest free periods of `shortages`, reading outside any transaction.
    async fn suggest(&self, mut shortages: Vec<Shortage>, lines: &[Wanted]) -> RepoResult<Vec<Shortage>> {
        let current = now();
        for shortage in &mut shortages {
            let Some(&(product_id, quantity, start, hold_until, end)) = lines.get(shortage.line) else { continue };
            shortage.length = end - start;
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
        Ok(product::Entity::find()
            .filter(product::Column::Id.is_in(ids.iter().copied()))
            .all(self.db.connection())
            .await?
            .into_iter()
            .map(|p| ProductTermsRecord {
                id: p.id,
                name: p.name,
                currency: p.currency,
                price_per_day_minor: p.price_per_day_minor,
                price_per_week_minor: p.price_per_week_minor,
                price_per_month_minor: p.price_per_month_minor,
                deposit_minor: p.deposit_minor,
                late_fee_per_day_minor: p.late_fee_per_day_minor,
                buffer_minutes: p.buffer_minutes,
                is_active: p.is_active,
            })
            .collect())
    }

    /// Creates an order. A `Reserved` order checks and holds its stock and issues its invoice in the same
    /// transaction; a `Quote` holds nothing and gets a draft invoice.
    ///
    /// # Errors
    /// [`RepoError::InsufficientStock`] with the lines that do not fit and the nearest free periods; nothing is
    /// written then. [`RepoError::NotFound`] when a product does not exist.
    #[tracing::instrument(skip_all, fields(customer_id = %new.customer_id, lines = new.lines.len()))]
    pub async fn create_order(&self, new: NewOrderRecord) -> RepoResult<OrderRecord> {
        let created = now();
        let order_id = Uuid::now_v7();
        let reserve = new.status == OrderStatus::Reserved;
        let holds: Vec<Wanted> = new
            .lines
            .iter()
            .map(|l| {
                let hold_until = l.ends_at + Duration::minutes(i64::from(l.terms.buffer_minutes));
                (l.product_id, i64::from(l.quantity), l.starts_at, hold_until, l.ends_at)
            })
            .collect();
        let order = rental_order::Model {
            id: order_id,
            customer_id: new.customer_id,
            status: new.status.as_str().to_owned(),
            currency: new.currency.clone(),
            subtotal_minor: new.subtotal_minor,
            tax_rate_bp: new.tax_rate_bp,
            tax_minor: new.tax_minor,
            total_minor: new.total_minor,
            deposit_minor: new.deposit_minor,
            starts_at: new.lines.iter().map(|l| l.starts_at).min().unwrap_or(created),
            ends_at: new.lines.iter().map(|l| l.ends_at).max().unwrap_or(created),
            notes: new.notes.clone(),
            created_by: new.created_by,
            created_at: created,
            updated_at: created,
            picked_up_at: None,
            returned_at: None,
        };
        let lines: Vec<order_line::Model> =
            new.lines.iter().zip(&holds).map(|(l, h)| line_model(order_id, l, h.3, reserve)).collect();
        let invoice_lines: Vec<invoice_line::Model> = new
            .lines
            .iter()
            .map(|l| invoice_line::Model {
                id: Uuid::now_v7(),
                invoice_id: Uuid::nil(),
                kind: "rental".into(),
                description: l.description.clone(),
                quantity: l.quantity,
                unit_amount_minor: l.terms.unit_price_minor,
                amount_minor: l.terms.line_total_minor,
                taxable: true,
                created_at: created,
            })
            .collect();

        let txn = self.begin_write().await?;
        let written = async {
            if reserve {
                // Locks the products (PostgreSQL) while reading their capacity.
                let short = self.shortages(&txn, &holds, true).await?;
                if !short.is_empty() {
                    return Err(RepoError::InsufficientStock(short));
                }
            }
            rental_order::Entity::insert(rental_order::ActiveModel::from(order.clone()))
                .exec_without_returning(&txn)
                .await?;
            order_line::Entity::insert_many(lines.into_iter().map(order_line::ActiveModel::from))
                .exec_without_returning(&txn)
                .await?;
            insert_event(&txn, order_id, new.created_by, None, new.status, Some("created"), created).await?;
            let invoice = invoice::Model {
                id: Uuid::now_v7(),
                order_id,
                customer_id: new.customer_id,
                number: None,
                year: None,
                seq: None,
                status: "draft".into(),
                currency: new.currency.clone(),
                subtotal_minor: new.subtotal_minor,
                tax_rate_bp: new.tax_rate_bp,
                tax_minor: new.tax_minor,
                total_minor: new.total_minor,
                amount_paid_minor: 0,
                issued_at: None,
                issued_on: None,
                created_at: created,
                updated_at: created,
            };
            let invoice = if reserve { issue(invoice, created) } else { invoice };
            invoice::Entity::insert(invoice::ActiveModel::from(invoice.clone())).exec_without_returning(&txn).await?;
            let rows = invoice_lines.into_iter().map(|mut l| {
                l.invoice_id = invoice.id;
                invoice_line::ActiveModel::from(l)
            });
            invoice_line::Entity::insert_many(rows).exec_without_returning(&txn).await?;
            Ok(())
        }
        .await;
        match finish(txn, written).await {
            Ok(()) => {
                if reserve {
                    self.settle_after_commit(holds.len()).await;
                }
                Ok(order_record(order)?)
            }
            Err(RepoError::InsufficientStock(short)) => {
                Err(RepoError::InsufficientStock(self.suggest(short, &holds).await?))
            }
            Err(other) => Err(other),
        }
    }

    /// Records the pending usage changes when enough have gathered or enough time has passed: recording costs
    /// about ten statements whatever the number of lines, so it is shared by many reservations.
    async fn record_usage_when_due(&self) -> RepoResult<()> {
        let backlog = self.numbering.usage_backlog.load(Ordering::SeqCst);
        let now_ms = u64::try_from(Utc::now().timestamp_millis()).unwrap_or(0);
        let since = now_ms.saturating_sub(self.numbering.usage_recorded_ms.load(Ordering::SeqCst));
        if backlog == 0 || (backlog < USAGE_BACKLOG_LINES && since < USAGE_MAX_DELAY_MS) {
            return Ok(());
        }
        usage::record_pending(&self.db).await?;
        self.numbering.usage_backlog.fetch_sub(backlog, Ordering::SeqCst);
        self.numbering.usage_recorded_ms.store(now_ms, Ordering::SeqCst);
        Ok(())
    }

    /// Numbers the invoices just issued and records the usage just changed. The order is committed whatever
    /// happens here; a failure leaves the work for the next settlement, so it is logged, not returned.
    async fn settle_after_commit(&self, noted_lines: usize) {
        self.numbering.usage_backlog.fetch_add(u64::try_from(noted_lines).unwrap_or(u64::MAX), Ordering::SeqCst);
        if let Err(err) = self.settle_committed_orders().await {
            tracing::warn!(error = %err, "settling committed orders failed; the next commit retries it");
        }
    }

    /// An order without its lines.
    ///
    /// # Errors
    /// [`RepoError::Database`] when the query fails.
    pub async fn find_order(&self, id: Uuid) -> RepoResult<Option<OrderRecord>> {
        rental_order::Entity::find_by_id(id).one(self.db.connection()).await?.map(order_record).transpose()
    }

    /// Reads the order inside `txn` for a change, checks the lifecycle allows `to`, and writes the new status
    /// and the event. PostgreSQL locks the order row; SQLite holds the write lock already. Returns the changed
    /// order and the status it left.
    async fn transition(
        &self,
        txn: &DatabaseTransaction,
        id: Uuid,
        to: OrderStatus,
        actor: Option<Uuid>,
        note: Option<&str>,
        at: DateTime<Utc>,
    ) -> RepoResult<(rental_order::Model, OrderStatus)> {
        let mut select = rental_order::Entity::find_by_id(id);
        if self.db.backend() == Backend::Postgres {
            select = select.lock_exclusive();
        }
        let mut order = select.one(txn).await?.ok_or(RepoError::NotFound)?;
        let from = parse_status(&order.status)?;
        from.transition(to).map_err(RepoError::Domain)?;
        order.status = to.as_str().to_owned();
        order.updated_at = at;
        match to {
            OrderStatus::PickedUp => order.picked_up_at = Some(at),
            OrderStatus::Returned => order.returned_at = Some(at),
            _ => {}
        }
        rental_order::Entity::update_many()
            .col_expr(rental_order::Column::Status, Expr::val(order.status.clone()))
            .col_expr(rental_order::Column::UpdatedAt, Expr::val(at))
            .col_expr(rental_order::Column::PickedUpAt, Expr::val(order.picked_up_at))
            .col_expr(rental_order::Column::ReturnedAt, Expr::val(order.returned_at))
            .filter(rental_order::Column::Id.eq(id))
            .exec(txn)
            .await?;
        insert_event(txn, id, actor, Some(from), to, note, at).await?;
        Ok((order, from))
    }

    /// `quote → reserved`: checks and holds the stock of the quote's lines at their quoted prices and issues its
    /// invoice, atomically.
    ///
    /// # Errors
    /// [`RepoError::Domain`] for an illegal transition, [`RepoError::InsufficientStock`] when stock is short,
    /// [`RepoError::NotFound`].
    pub async fn confirm(&self, id: Uuid, actor: Option<Uuid>, note: Option<String>) -> RepoResult<OrderRecord> {
        let at = now();
        let lines = order_line::Entity::find()
            .filter(order_line::Column::OrderId.eq(id))
            .order_by_asc(order_line::Column::Id)
            .all(self.db.connection())
            .await?;
        let holds: Vec<Wanted> =
            lines.iter().map(|l| (l.product_id, i64::from(l.quantity), l.starts_at, l.hold_until, l.ends_at)).collect();
        if lines.iter().any(|l| l.starts_at < at - Duration::minutes(1)) {
            return Err(RepoError::Domain(rental_domain::DomainError::field(
                "start",
                "the quote's period has started; make a new quote",
            )));
        }
        let product_ids: BTreeSet<Uuid> = holds.iter().map(|h| h.0).collect();
        let result = in_write!(self, |txn| {
            self.lock_products(txn, &product_ids).await?;
            let (order, _) = self.transition(txn, id, OrderStatus::Reserved, actor, note.as_deref(), at).await?;
            let short = self.shortages(txn, &holds, false).await?;
            if !short.is_empty() {
                return Err(RepoError::InsufficientStock(short));
            }
            order_line::Entity::update_many()
                .col_expr(order_line::Column::HoldsStock, Expr::val(true))
                .col_expr(order_line::Column::UsagePending, Expr::col(order_line::Column::UsagePending).add(1))
                .filter(order_line::Column::OrderId.eq(id))
                .exec(txn)
                .await?;
            let draft = invoice::Entity::find()
                .filter(invoice::Column::OrderId.eq(id))
                .one(txn)
                .await?
                .ok_or(RepoError::NotFound)?;
            let issued = issue(draft, at);
            invoice::ActiveModel::from(issued).reset_all().update(txn).await?;
            Ok(order)
        });
        match result {
            Ok(order) => {
                self.settle_after_commit(holds.len()).await;
                order_record(order)
            }
            Err(RepoError::InsufficientStock(short)) => {
                Err(RepoError::InsufficientStock(self.suggest(short, &holds).await?))
            }
            Err(other) => Err(other),
        }
    }

    /// `quote|reserved → cancelled`: releases the stock, takes a reservation's lines out of the usage marks and
    /// voids the invoice.
    ///
    /// # Errors
    /// [`RepoError::Domain`] for an illegal transition, [`RepoError::NotFound`].
    pub async fn cancel(&self, id: Uuid, actor: Option<Uuid>, note: Option<String>) -> RepoResult<OrderRecord> {
        let at = now();
        let lines = order_line::Entity::find()
            .filter(order_line::Column::OrderId.eq(id))
            .order_by_asc(order_line::Column::Id)
            .all(self.db.connection())
            .await?;
        let product_ids: BTreeSet<Uuid> = lines.iter().map(|l| l.product_id).collect();
        let (order, from) = in_write!(self, |txn| {
            // Products before the order, as `confirm` does: the usage marks of a product change under its lock.
            self.lock_products(txn, &product_ids).await?;
            let (order, from) = self.transition(txn, id, OrderStatus::Cancelled, actor, note.as_deref(), at).await?;
            let mut release = order_line::Entity::update_many()
                .col_expr(order_line::Column::HoldsStock, Expr::val(false))
                .filter(order_line::Column::OrderId.eq(id));
            if from.is_rented() {
                release = release
                    .col_expr(order_line::Column::UsagePending, Expr::col(order_line::Column::UsagePending).sub(1));
            }
            release.exec(txn).await?;
            invoice::Entity::update_many()
                .col_expr(invoice::Column::Status, Expr::val("void"))
                .col_expr(invoice::Column::UpdatedAt, Expr::val(at))
                .filter(invoice::Column::OrderId.eq(id))
                .exec(txn)
                .await?;
            Ok((order, from))
        })?;
        if from.is_rented() {
            self.settle_after_commit(lines.len()).await;
        }
        order_record(order)
    }

    /// `returned → closed`.
    ///
    /// # Errors
    /// [`RepoError::Domain`] for an illegal transition, [`RepoError::NotFound`].
    pub async fn close(&self, id: Uuid, actor: Option<Uuid>, note: Option<String>) -> RepoResult<OrderRecord> {
        let at = now();
        let order =
            in_write!(self, |txn| { self.transition(txn, id, OrderStatus::Closed, actor, note.as_deref(), at).await })?
                .0;
        order_record(order)
    }

    /// `reserved → picked_up`: hands out tracked units. `chosen` names units per line; lines not named get free
    /// units picked automatically (as many as the line's quantity and the free units allow; the rest comes from
    /// bulk stock).
    ///
    /// # Errors
    /// [`RepoError::Domain`] for an illegal transition or a unit that is not the line's product, is out of
    /// service or is out with another order; [`RepoError::NotFound`].
    pub async fn pickup(
        &self,
        id: Uuid,
        actor: Option<Uuid>,
        chosen: Vec<LineUnits>,
        note: Option<String>,
    ) -> RepoResult<OrderRecord> {
        let at = now();
        let lines = order_line::Entity::find()
            .filter(order_line::Column::OrderId.eq(id))
            .order_by_asc(order_line::Column::Id)
            .all(self.db.connection())
            .await?;
        let product_ids: BTreeSet<Uuid> = lines.iter().map(|l| l.product_id).collect();
        let order = in_write!(self, |txn| {
            self.lock_products(txn, &product_ids).await?;
            let (order, _) = self.transition(txn, id, OrderStatus::PickedUp, actor, note.as_deref(), at).await?;
            let mut rows = Vec::new();
            for line in &lines {
                let asked: Vec<Uuid> =
                    chosen.iter().filter(|c| c.line_id == line.id).flat_map(|c| c.unit_ids.clone()).collect();
                let wanted = usize::try_from(line.quantity).unwrap_or(0);
                if asked.len() > wanted {
                    return Err(invalid("units", "more units than the line's quantity"));
                }
                let free = free_units(txn, line.product_id, line.starts_at, line.hold_until).await?;
                let picked: Vec<Uuid> = if asked.is_empty() {
                    free.into_iter().take(wanted).collect()
                } else {
                    if let Some(bad) = asked.iter().find(|u| !free.contains(u)) {
                        return Err(invalid(
                            "units",
                            format!(
                                "unit {bad} is not a free unit of the line's product for its period \
                                         (another product, out of service, or out with another order)"
                            ),
                        ));
                    }
                    asked
                };
                rows.extend(picked.into_iter().map(|unit_id| order_line_unit::Model {
                    order_line_id: line.id,
                    unit_id,
                    product_id: line.product_id,
                    starts_at: line.starts_at,
                    hold_until: line.hold_until,
                    returned_condition: None,
                    damage_note: None,
                }));
            }
            if chosen.iter().any(|c| !lines.iter().any(|l| l.id == c.line_id)) {
                return Err(invalid("units", "names a line that is not in this order"));
            }
            if !rows.is_empty() {
                order_line_unit::Entity::insert_many(rows.into_iter().map(order_line_unit::ActiveModel::from))
                    .exec_without_returning(txn)
                    .await?;
            }
            Ok(order)
        })?;
        order_record(order)
    }

    /// `picked_up → returned`: records the units' condition and damage, frees the stock after the buffer from
    /// now, and adds late fees (per item and started day past the end) and damage charges to the invoice.
    ///
    /// # Errors
    /// [`RepoError::Domain`] for an illegal transition or a unit that was not handed out with this order;
    /// [`RepoError::NotFound`].
    pub async fn return_items(
        &self,
        id: Uuid,
        actor: Option<Uuid>,
        returns: Vec<UnitReturn>,
        note: Option<String>,
    ) -> RepoResult<OrderRecord> {
        let at = now();
        let order = in_write!(self, |txn| {
            let (order, _) = self.transition(txn, id, OrderStatus::Returned, actor, note.as_deref(), at).await?;
            let lines = order_line::Entity::find()
                .filter(order_line::Column::OrderId.eq(id))
                .order_by_asc(order_line::Column::Id)
                .all(txn)
                .await?;
            let line_ids: Vec<Uuid> = lines.iter().map(|l| l.id).collect();
            let assigned = order_line_unit::Entity::find()
                .filter(order_line_unit::Column::OrderLineId.is_in(line_ids))
                .all(txn)
                .await?;
            let mut extra: Vec<invoice_line::Model> = Vec::new();
            for line in &lines {
                let hold_until = at + Duration::minutes(i64::from(line.buffer_minutes));
                order_line::Entity::update_many()
                    .col_expr(order_line::Column::HoldUntil, Expr::val(Ord::max(hold_until, line.starts_at)))
                    .filter(order_line::Column::Id.eq(line.id))
                    .exec(txn)
                    .await?;
                order_line_unit::Entity::update_many()
                    .col_expr(order_line_unit::Column::HoldUntil, Expr::val(Ord::max(hold_until, line.starts_at)))
                    .filter(order_line_unit::Column::OrderLineId.eq(line.id))
                    .exec(txn)
                    .await?;
                let late_days = started_days(at - line.ends_at);
                if late_days > 0 && line.late_fee_per_day_minor > 0 {
                    let per_item = checked(line.late_fee_per_day_minor.checked_mul(late_days))?;
                    extra.push(invoice_line::Model {
                        id: Uuid::now_v7(),
                        invoice_id: Uuid::nil(),
                        kind: "late_fee".into(),
                        description: format!("Late return: {late_days} day(s) × {} item(s)", line.quantity),
                        quantity: line.quantity,
                        unit_amount_minor: per_item,
                        amount_minor: checked(per_item.checked_mul(i64::from(line.quantity)))?,
                        taxable: true,
                        created_at: at,
                    });
                }
            }
            for r in &returns {
                let Some(a) = assigned.iter().find(|a| a.unit_id == r.unit_id) else {
                    return Err(invalid("units", format!("unit {} was not handed out with this order", r.unit_id)));
                };
                order_line_unit::Entity::update_many()
                    .col_expr(order_line_unit::Column::ReturnedCondition, Expr::val(r.condition.as_str()))
                    .col_expr(order_line_unit::Column::DamageNote, Expr::val(r.damage_note.clone()))
                    .filter(order_line_unit::Column::OrderLineId.eq(a.order_line_id))
                    .filter(order_line_unit::Column::UnitId.eq(a.unit_id))
                    .exec(txn)
                    .await?;
                unit::Entity::update_many()
                    .col_expr(unit::Column::Condition, Expr::val(r.condition.as_str()))
                    .filter(unit::Column::Id.eq(r.unit_id))
                    .exec(txn)
                    .await?;
                if r.damage_charge_minor > 0 {
                    extra.push(invoice_line::Model {
                        id: Uuid::now_v7(),
                        invoice_id: Uuid::nil(),
                        kind: "damage".into(),
                        description: match &r.damage_note {
                            Some(n) => format!("Damage to unit {}: {n}", r.unit_id),
                            None => format!("Damage to unit {}", r.unit_id),
                        },
                        quantity: 1,
                        unit_amount_minor: r.damage_charge_minor,
                        amount_minor: r.damage_charge_minor,
                        taxable: true,
                        created_at: at,
                    });
                }
            }
            if !extra.is_empty() {
                add_invoice_lines(txn, id, extra, at).await?;
            }
            Ok(order)
        })?;
        order_record(order)
    }

    /// The order's event log, oldest first.
    ///
    /// # Errors
    /// [`RepoError::Database`] when the query fails.
    pub async fn events(&self, id: Uuid) -> RepoResult<Vec<OrderEventRecord>> {
        Ok(order_event::Entity::find()
            .filter(order_event::Column::OrderId.eq(id))
            .order_by_asc(order_event::Column::CreatedAt)
            .order_by_asc(order_event::Column::Id)
            .all(self.db.connection())
            .await?
            .into_iter()
            .map(|e| OrderEventRecord {
                id: e.id,
                actor_id: e.actor_id,
                from_status: e.from_status,
                to_status: e.to_status,
                note: e.note,
                created_at: e.created_at,
            })
            .collect())
    }

    /// The order with its lines and their units, products, customer, invoice with lines, and payments: eight
    /// statements whatever the number of lines.
    ///
    /// # Errors
    /// [`RepoError::Database`] when a query fails.
    #[tracing::instrument(skip_all, fields(order_id = %id))]
    pub async fn order_detail(&self, id: Uuid) -> RepoResult<Option<OrderDetail>> {
        let conn = self.db.connection();
        let Some(order) = rental_order::Entity::find_by_id(id).one(conn).await? else {
            return Ok(None);
        };
        let lines = order_line::Entity::find()
            .filter(order_line::Column::OrderId.eq(id))
            .order_by_asc(order_line::Column::Id)
            .all(conn)
            .await?;
        let line_ids: Vec<Uuid> = lines.iter().map(|l| l.id).collect();
        let product_ids: BTreeSet<Uuid> = lines.iter().map(|l| l.product_id).collect();
        let units = order_line_unit::Entity::find()
            .filter(order_line_unit::Column::OrderLineId.is_in(line_ids))
            .order_by_asc(order_line_unit::Column::UnitId)
            .all(conn)
            .await?;
        let products: Vec<OrderProductRecord> = product::Entity::find()
            .select_only()
            .columns([product::Column::Id, product::Column::Sku, product::Column::Name])
            .filter(product::Column::Id.is_in(product_ids))
            .order_by_asc(product::Column::Name)
            .into_tuple::<(Uuid, String, String)>()
            .all(conn)
            .await?
            .into_iter()
            .map(|(id, sku, name)| OrderProductRecord { id, sku, name })
            .collect();
        let customer = user::Entity::find_by_id(order.customer_id)
            .select_only()
            .columns([user::Column::Id, user::Column::Email, user::Column::FullName])
            .into_tuple::<(Uuid, String, String)>()
            .one(conn)
            .await?
            .map(|(id, email, full_name)| OrderCustomerRecord { id, email, full_name });
        let invoice = invoice::Entity::find().filter(invoice::Column::OrderId.eq(id)).one(conn).await?;
        let invoice = match invoice {
            Some(model) => {
                let lines = invoice_line::Entity::find()
                    .filter(invoice_line::Column::InvoiceId.eq(model.id))
                    .order_by_asc(invoice_line::Column::CreatedAt)
                    .order_by_asc(invoice_line::Column::Id)
                    .all(conn)
                    .await?;
                let mut record = invoice_record(model);
                record.lines = lines.into_iter().map(invoice_line_record).collect();
                Some(record)
            }
            None => None,
        };
        let payments = payment::Entity::find()
            .filter(payment::Column::OrderId.eq(id))
            .order_by_asc(payment::Column::CreatedAt)
            .all(conn)
            .await?
            .into_iter()
            .map(payment_record)
            .collect();
        let mut by_line: HashMap<Uuid, Vec<AssignedUnitRecord>> = HashMap::new();
        for u in units {
            by_line.entry(u.order_line_id).or_default().push(AssignedUnitRecord {
                unit_id: u.unit_id,
                returned_condition: u.returned_condition.as_deref().and_then(|c| c.parse().ok()),
                damage_note: u.damage_note,
            });
        }
        let lines = lines
            .into_iter()
            .map(|l| {
                let units = by_line.remove(&l.id).unwrap_or_default();
                line_record(l, units)
            })
            .collect();
        Ok(Some(OrderDetail { order: order_record(order)?, lines, products, customer, invoice, payments }))
    }

    /// One page of orders matching `query`: two statements (one without a total).
    ///
    /// # Errors
    /// [`RepoError::InvalidQuery`] for a cursor of another list; [`RepoError::Database`].
    #[tracing::instrument(skip_all)]
    pub async fn list_orders(&self, query: &ListQuery) -> RepoResult<Listing<OrderRecord>> {
        let filtered = rental_order::Entity::find().filter(order_condition(query));
        let sort =
            if query.sort == "starts_at" { rental_order::Column::StartsAt } else { rental_order::Column::CreatedAt };
        let keys = Keys {
            sort,
            id: rental_order::Column::Id,
            seek_value: |value: &CursorValue| match value {
                CursorValue::DateTime(t) => Ok(Expr::val(*t)),
                CursorValue::Text(_) => Err(RepoError::invalid("cursor", "is not a cursor of this list")),
            },
            cursor_of: |last: &rental_order::Model| {
                let at = if query.sort == "starts_at" { last.starts_at } else { last.created_at };
                (CursorValue::DateTime(at), last.id)
            },
        };
        let mut fetched = fetch_page(self.db.connection(), &ORDER_LIST_SPEC, query, filtered, keys).await?;
        let items = std::mem::take(&mut fetched.models).into_iter().map(order_record).collect::<RepoResult<_>>()?;
        Ok(fetched.into_listing(items))
    }

    /// One page of invoices matching `query`, without their lines.
    ///
    /// # Errors
    /// [`RepoError::InvalidQuery`] for a cursor of another list; [`RepoError::Database`].
    pub async fn list_invoices(&self, query: &ListQuery) -> RepoResult<Listing<InvoiceRecord>> {
        let mut condition = Condition::all();
        if let Some(status) = query.word_filter("status") {
            condition = condition.add(invoice::Column::Status.eq(status));
        }
        if let Some(customer) = query.uuid_filter("customer") {
            condition = condition.add(invoice::Column::CustomerId.eq(customer));
        }
        let keys = Keys {
            sort: invoice::Column::CreatedAt,
            id: invoice::Column::Id,
            seek_value: |value: &CursorValue| match value {
                CursorValue::DateTime(t) => Ok(Expr::val(*t)),
                CursorValue::Text(_) => Err(RepoError::invalid("cursor", "is not a cursor of this list")),
            },
            cursor_of: |last: &invoice::Model| (CursorValue::DateTime(last.created_at), last.id),
        };
        let filtered = invoice::Entity::find().filter(condition);
        let mut fetched = fetch_page(self.db.connection(), &INVOICE_LIST_SPEC, query, filtered, keys).await?;
        let items = std::mem::take(&mut fetched.models).into_iter().map(invoice_record).collect();
        Ok(fetched.into_listing(items))
    }

    /// An invoice with its lines.
    ///
    /// # Errors
    /// [`RepoError::Database`] when a query fails.
    pub async fn invoice(&self, id: Uuid) -> RepoResult<Option<(InvoiceRecord, Vec<PaymentRecord>)>> {
        let conn = self.db.connection();
        let Some(model) = invoice::Entity::find_by_id(id).one(conn).await? else {
            return Ok(None);
        };
        let lines = invoice_line::Entity::find()
            .filter(invoice_line::Column::InvoiceId.eq(id))
            .order_by_asc(invoice_line::Column::CreatedAt)
            .order_by_asc(invoice_line::Column::Id)
            .all(conn)
            .await?;
        let payments = payment::Entity::find()
            .filter(payment::Column::InvoiceId.eq(id))
            .order_by_asc(payment::Column::CreatedAt)
            .all(conn)
            .await?;
        let mut record = invoice_record(model);
        record.lines = lines.into_iter().map(invoice_line_record).collect();
        Ok(Some((record, payments.into_iter().map(payment_record).collect())))
    }

    /// Records a payment of an open invoice; the invoice becomes `paid` once fully paid.
    ///
    /// # Errors
    /// [`RepoError::Domain`] when the invoice is not open, the currency differs or the amount exceeds what is
    /// due; [`RepoError::NotFound`].
    pub async fn record_payment(
        &self,
        invoice_id: Uuid,
        amount_minor: i64,
        currency: String,
        method: String,
        reference: Option<String>,
        recorded_by: Option<Uuid>,
    ) -> RepoResult<PaymentRecord> {
        let at = now();
        in_write!(self, |txn| {
            let mut select = invoice::Entity::find_by_id(invoice_id);
            if self.db.backend() == Backend::Postgres {
                select = select.lock_exclusive();
            }
            let inv = select.one(txn).await?.ok_or(RepoError::NotFound)?;
            if inv.status != "open" {
                return Err(invalid("invoice", format!("is {}; only open invoices take payments", inv.status)));
            }
            if inv.currency != currency {
                return Err(invalid("currency", format!("must be the invoice's currency {}", inv.currency)));
            }
            let due = inv.total_minor - inv.amount_paid_minor;
            if amount_minor > due {
                return Err(invalid("amount_minor", format!("exceeds the amount due ({due})")));
            }
            let paid = inv.amount_paid_minor + amount_minor;
            let status = if paid >= inv.total_minor { "paid" } else { "open" };
            invoice::Entity::update_many()
                .col_expr(invoice::Column::AmountPaidMinor, Expr::val(paid))
                .col_expr(invoice::Column::Status, Expr::val(status))
                .col_expr(invoice::Column::UpdatedAt, Expr::val(at))
                .filter(invoice::Column::Id.eq(invoice_id))
                .exec(txn)
                .await?;
            let model = payment::Model {
                id: Uuid::now_v7(),
                invoice_id,
                order_id: inv.order_id,
                amount_minor,
                currency,
                method,
                reference,
                recorded_by,
                created_at: at,
            };
            payment::Entity::insert(payment::ActiveModel::from(model.clone())).exec_without_returning(txn).await?;
            Ok(payment_record(model))
        })
    }

    /// Takes a unit out of service for `[start, end)`. Refused when the unit is needed by reservations then.
    ///
    /// # Errors
    /// [`RepoError::NotFound`] for an unknown unit; [`RepoError::InsufficientStock`] when the block would leave
    /// reservations without stock.
    pub async fn add_maintenance(
        &self,
        unit_id: Uuid,
        starts_at: DateTime<Utc>,
        ends_at: DateTime<Utc>,
        reason: Option<String>,
        created_by: Option<Uuid>,
    ) -> RepoResult<MaintenanceRecord> {
        let conn = self.db.connection();
        let product_id: Uuid = unit::Entity::find_by_id(unit_id)
            .select_only()
            .column(unit::Column::ProductId)
            .into_tuple()
            .one(conn)
            .await?
            .ok_or(RepoError::NotFound)?;
        let model = maintenance_block::Model {
            id: Uuid::now_v7(),
            unit_id,
            product_id,
            starts_at,
            ends_at,
            reason,
            created_by,
            created_at: now(),
        };
        let hold = [(product_id, 1, starts_at, ends_at, ends_at)];
        let result = in_write!(self, |txn| {
            let model = model.clone();
            self.lock_products(txn, &BTreeSet::from([product_id])).await?;
            let short = self.shortages(txn, &hold, false).await?;
            if !short.is_empty() {
                return Err(RepoError::InsufficientStock(short));
            }
            maintenance_block::Entity::insert(maintenance_block::ActiveModel::from(model))
                .exec_without_returning(txn)
                .await?;
            Ok(())
        });
        match result {
            Ok(()) => Ok(MaintenanceRecord {
                id: model.id,
                unit_id,
                product_id,
                starts_at,
                ends_at,
                reason: model.reason,
                created_at: model.created_at,
            }),
            Err(RepoError::InsufficientStock(short)) => {
                Err(RepoError::InsufficientStock(self.suggest(short, &hold).await?))
            }
            Err(other) => Err(other),
        }
    }

    /// Overbooked holds: the holds that end in the future at whose start the holds covering that instant
    /// exceed the product's stock. Zero in a healthy database; the load test's final check.
    ///
    /// # Errors
    /// [`RepoError::Database`] when the query fails.
    pub async fn count_overbooked(&self) -> RepoResult<u64> {
        // Checking at each start of a hold is enough: the holds are step functions that only rise there.
        let mut q = RawSql::new(self.db.backend());
        q.push("SELECT COUNT(*) FROM order_lines p WHERE p.holds_stock AND p.hold_until > ").bind(now()).push(
            " AND (SELECT COALESCE(SUM(l.quantity), 0) FROM order_lines l WHERE l.product_id = p.product_id AND \
             l.holds_stock AND l.starts_at <= p.starts_at AND l.hold_until > p.starts_at) \
             + (SELECT COUNT(*) FROM maintenance_blocks m WHERE m.product_id = p.product_id AND \
             m.starts_at <= p.starts_at AND m.ends_at > p.starts_at) \
             > (SELECT COUNT(*) FROM units u WHERE u.product_id = p.product_id) \
             + (SELECT COALESCE(SUM(s.quantity), 0) FROM stock_levels s WHERE s.product_id = p.product_id)",
        );
        let row = self.db.connection().query_one_raw(q.statement()).await?;
        let n: i64 = match row {
            Some(row) => row.try_get_by_index(0)?,
            None => 0,
        };
        Ok(u64::try_from(n).unwrap_or(0))
    }
}

// ---- helpers ----------------------------------------------------------------------------------------------

fn invalid(field: &str, message: impl Into<String>) -> RepoError {
    RepoError::Domain(rental_domain::DomainError::field(field, message))
}

fn checked(value: Option<i64>) -> RepoResult<i64> {
    value.ok_or_else(|| invalid("amount", "is too large"))
}

fn parse_status(s: &str) -> RepoResult<OrderStatus> {
    s.parse().map_err(RepoError::Domain)
}

/// Takes the next `count` numbers of `year` from its counter row (created at need) inside the caller's
/// transaction, so a rolled-back transaction gives them back and numbers stay gap-free; returns the last one
/// taken. Shared by the live numbering and the importer.
pub(crate) async fn advance_invoice_counter<C: ConnectionTrait>(conn: &C, year: i32, count: i64) -> RepoResult<i64> {
    let counter =
        invoice_counter::Entity::insert(invoice_counter::ActiveModel { year: Set(year), last_seq: Set(count) })
            .on_conflict(
                OnConflict::column(invoice_counter::Column::Year)
                    .value(
                        invoice_counter::Column::LastSeq,
                        Expr::col((invoice_counter::Entity, invoice_counter::Column::LastSeq)).add(count),
                    )
                    .to_owned(),
            )
            .exec_with_returning(conn)
            .await?;
    Ok(counter.last_seq)
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

fn line_model(order_id: Uuid, l: &NewOrderLineRecord, hold_until: DateTime<Utc>, holds: bool) -> order_line::Model {
    let t = &l.terms;
    order_line::Model {
        id: Uuid::now_v7(),
        order_id,
        product_id: l.product_id,
        quantity: l.quantity,
        starts_at: l.starts_at,
        ends_at: l.ends_at,
        hold_until,
        holds_stock: holds,
        currency: t.currency.clone(),
        price_per_day_minor: t.price_per_day_minor,
        price_per_week_minor: t.price_per_week_minor,
        price_per_month_minor: t.price_per_month_minor,
        deposit_per_unit_minor: t.deposit_per_unit_minor,
        late_fee_per_day_minor: t.late_fee_per_day_minor,
        buffer_minutes: t.buffer_minutes,
        charged_days: t.charged_days,
        months: t.months,
        weeks: t.weeks,
        days: t.days,
        unit_price_minor: t.unit_price_minor,
        line_total_minor: t.line_total_minor,
        usage_pending: i16::from(holds),
    }
}

async fn insert_event(
    txn: &DatabaseTransaction,
    order_id: Uuid,
    actor: Option<Uuid>,
    from: Option<OrderStatus>,
    to: OrderStatus,
    note: Option<&str>,
    at: DateTime<Utc>,
) -> RepoResult<()> {
    let event = order_event::Model {
        id: Uuid::now_v7(),
        order_id,
        actor_id: actor,
        from_status: from.map(|s| s.as_str().to_owned()),
        to_status: to.as_str().to_owned(),
        note: note.map(str::to_owned),
        created_at: at,
    };
    order_event::Entity::insert(order_event::ActiveModel::from(event)).exec_without_returning(txn).await?;
    Ok(())
}

/// Opens a draft: issued now, numbered right after the commit by [`RentalRepo::settle_committed_orders`].
fn issue(mut draft: invoice::Model, at: DateTime<Utc>) -> invoice::Model {
    draft.status = "open".into();
    draft.issued_at = Some(at);
    draft.issued_on = Some(at.date_naive());
    draft.updated_at = at;
    draft
}

/// Adds charges to an order's invoice and recomputes its totals; a paid invoice that now has more due reopens.
async fn add_invoice_lines(
    txn: &DatabaseTransaction,
    order_id: Uuid,
    lines: Vec<invoice_line::Model>,
    at: DateTime<Utc>,
) -> RepoResult<()> {
    let inv = invoice::Entity::find()
        .filter(invoice::Column::OrderId.eq(order_id))
        .one(txn)
        .await?
        .ok_or(RepoError::NotFound)?;
    let added: i64 = lines.iter().map(|l| l.amount_minor).sum();
    let taxable_added: i64 = lines.iter().filter(|l| l.taxable).map(|l| l.amount_minor).sum();
    let subtotal = checked(inv.subtotal_minor.checked_add(added))?;
    let taxable_before: i64 = invoice_line::Entity::find()
        .select_only()
        .column_as(Expr::col(invoice_line::Column::AmountMinor).sum().cast_as("bigint"), "s")
        .filter(invoice_line::Column::InvoiceId.eq(inv.id))
        .filter(invoice_line::Column::Taxable.eq(true))
        .into_tuple::<Option<i64>>()
        .one(txn)
        .await?
        .flatten()
        .unwrap_or(0);
    let tax =
        rental_domain::Money::new(checked(taxable_before.checked_add(taxable_added))?, parse_currency(&inv.currency)?)
            .percentage(u32::try_from(inv.tax_rate_bp).unwrap_or(0))
            .map_err(RepoError::Domain)?
            .amount_minor;
    let total = checked(subtotal.checked_add(tax))?;
    let status =
        if inv.status == "paid" && total > inv.amount_paid_minor { "open".to_owned() } else { inv.status.clone() };
    invoice_line::Entity::insert_many(lines.into_iter().map(|mut l| {
        l.invoice_id = inv.id;
        invoice_line::ActiveModel::from(l)
    }))
    .exec_without_returning(txn)
    .await?;
    invoice::Entity::update_many()
        .col_expr(invoice::Column::SubtotalMinor, Expr::val(subtotal))
        .col_expr(invoice::Column::TaxMinor, Expr::val(tax))
        .col_expr(invoice::Column::TotalMinor, Expr::val(total))
        .col_expr(invoice::Column::Status, Expr::val(status))
        .col_expr(invoice::Column::UpdatedAt, Expr::val(at))
        .filter(invoice::Column::Id.eq(inv.id))
        .exec(txn)
        .await?;
    Ok(())
}

fn parse_currency(code: &str) -> RepoResult<rental_domain::Currency> {
    rental_domain::Currency::parse(code).map_err(RepoError::Domain)
}

/// The tracked units of `product_id` free over `[start, hold_until)`: not out of service and not out with
/// another order then. Sorted by id.
async fn free_units(
    txn: &DatabaseTransaction,
    product_id: Uuid,
    start: DateTime<Utc>,
    hold_until: DateTime<Utc>,
) -> RepoResult<Vec<Uuid>> {
    let busy_assigned = Query::select()
        .column(order_line_unit::Column::UnitId)
        .from(order_line_unit::Entity)
        .and_where(order_line_unit::Column::ProductId.eq(product_id))
        .and_where(order_line_unit::Column::HoldUntil.gt(start))
        .and_where(order_line_unit::Column::StartsAt.lt(hold_until))
        .to_owned();
    let busy_maintenance = Query::select()
        .column(maintenance_block::Column::UnitId)
        .from(maintenance_block::Entity)
        .and_where(maintenance_block::Column::ProductId.eq(product_id))
        .and_where(maintenance_block::Column::EndsAt.gt(start))
        .and_where(maintenance_block::Column::StartsAt.lt(hold_until))
        .to_owned();
    Ok(unit::Entity::find()
        .select_only()
        .column(unit::Column::Id)
        .filter(unit::Column::ProductId.eq(product_id))
        .filter(unit::Column::Id.not_in_subquery(busy_assigned))
        .filter(unit::Column::Id.not_in_subquery(busy_maintenance))
        .order_by_asc(unit::Column::Id)
        .into_tuple()
        .all(txn)
        .await?)
}

fn order_condition(query: &ListQuery) -> Condition {
    let mut condition = Condition::all();
    if let Some(status) = query.word_filter(OrderFilter::STATUS) {
        condition = condition.add(rental_order::Column::Status.eq(status));
    }
    if let Some(customer) = query.uuid_filter(OrderFilter::CUSTOMER) {
        condition = condition.add(rental_order::Column::CustomerId.eq(customer));
    }
    if let Some(product_id) = query.uuid_filter(OrderFilter::PRODUCT) {
        let with_product = Query::select()
            .column(order_line::Column::OrderId)
            .from(order_line::Entity)
            .and_where(order_line::Column::ProductId.eq(product_id))
            .to_owned();
        condition = condition.add(rental_order::Column::Id.in_subquery(with_product));
    }
    if let Some(from) = query.datetime_filter(OrderFilter::FROM) {
        condition = condition.add(rental_order::Column::EndsAt.gt(from));
    }
    if let Some(to) = query.datetime_filter(OrderFilter::TO) {
        condition = condition.add(rental_order::Column::StartsAt.lt(to));
    }
    if let Some(overdue) = query.bool_filter(OrderFilter::OVERDUE) {
        let is_overdue = Condition::all()
            .add(rental_order::Column::Status.eq(OrderStatus::PickedUp.as_str()))
            .add(rental_order::Column::EndsAt.lt(now()));
        condition = condition.add(if overdue { is_overdue } else { is_overdue.not() });
    }
    condition
}

fn order_record(m: rental_order::Model) -> RepoResult<OrderRecord> {
    Ok(OrderRecord {
        id: m.id,
        customer_id: m.customer_id,
        status: parse_status(&m.status)?,
        currency: m.currency,
        subtotal_minor: m.subtotal_minor,
        tax_rate_bp: m.tax_rate_bp,
        tax_minor: m.tax_minor,
        total_minor: m.total_minor,
        deposit_minor: m.deposit_minor,
        starts_at: m.starts_at,
        ends_at: m.ends_at,
        notes: m.notes,
        created_by: m.created_by,
        created_at: m.created_at,
        updated_at: m.updated_at,
        picked_up_at: m.picked_up_at,
        returned_at: m.returned_at,
    })
}

fn line_record(l: order_line::Model, units: Vec<AssignedUnitRecord>) -> OrderLineRecord {
    OrderLineRecord {
        id: l.id,
        product_id: l.product_id,
        quantity: l.quantity,
        starts_at: l.starts_at,
        ends_at: l.ends_at,
        hold_until: l.hold_until,
        holds_stock: l.holds_stock,
        terms: LineTerms {
            currency: l.currency,
            price_per_day_minor: l.price_per_day_minor,
            price_per_week_minor: l.price_per_week_minor,
            price_per_month_minor: l.price_per_month_minor,
            deposit_per_unit_minor: l.deposit_per_unit_minor,
            late_fee_per_day_minor: l.late_fee_per_day_minor,
            buffer_minutes: l.buffer_minutes,
            charged_days: l.charged_days,
            months: l.months,
            weeks: l.weeks,
            days: l.days,
            unit_price_minor: l.unit_price_minor,
            line_total_minor: l.line_total_minor,
        },
        units,
    }
}

fn invoice_record(m: invoice::Model) -> InvoiceRecord {
    InvoiceRecord {
        id: m.id,
        order_id: m.order_id,
        customer_id: m.customer_id,
        number: m.number,
        status: m.status,
        currency: m.currency,
        subtotal_minor: m.subtotal_minor,
        tax_rate_bp: m.tax_rate_bp,
        tax_minor: m.tax_minor,
        total_minor: m.total_minor,
        amount_paid_minor: m.amount_paid_minor,
        issued_at: m.issued_at,
        created_at: m.created_at,
        updated_at: m.updated_at,
        lines: Vec::new(),
    }
}

fn invoice_line_record(l: invoice_line::Model) -> InvoiceLineRecord {
    InvoiceLineRecord {
        id: l.id,
        kind: l.kind,
        description: l.description,
        quantity: l.quantity,
        unit_amount_minor: l.unit_amount_minor,
        amount_minor: l.amount_minor,
        taxable: l.taxable,
    }
}

fn payment_record(p: payment::Model) -> PaymentRecord {
    PaymentRecord {
        id: p.id,
        invoice_id: p.invoice_id,
        amount_minor: p.amount_minor,
        currency: p.currency,
        method: p.method,
        reference: p.reference,
        created_at: p.created_at,
    }
}
