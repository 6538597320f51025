//! Rental orders: their lines, the atomic reservation of stock, the lifecycle transitions with their event log,
//! unit assignments and returns, maintenance blocks, and the order views (detail, list, events).
//!
//! Every write takes the caller's [`UnitOfWork`], so a service puts an order's writes and its invoice's
//! ([`crate::BillingRepo`]) into one transaction and registers the after-commit work (invoice numbering, usage
//! recording) on it.
//!
//! # No double booking
//! Checking availability and writing the holds happen in one transaction that first locks the stock being
//! reserved: on PostgreSQL the rows of the products concerned (`SELECT … FOR NO KEY UPDATE`, in id order so two
//! orders of the same products cannot deadlock); on SQLite the unit of work begins `IMMEDIATE`, which takes the
//! database's single write lock before the first read. Whoever reserves a product after us waits for our
//! commit and then sees our holds, so the check can never race the insert.

mod detail;
mod lifecycle;
mod records;
mod reserve;
pub(crate) mod stock;
mod store;

pub use records::*;
pub use reserve::SUGGESTION_HORIZON_DAYS;
pub use store::OrderStore;

use chrono::{DateTime, Utc};
use rental_domain::pricing::OrderTotals;
use rental_domain::{Money, OrderStatus};
use sea_orm::EntityTrait;
use uuid::Uuid;

use crate::entity::{order_event, order_line, rental_order};
use crate::query::{Direction, FilterKind, ListSpec, PageSizes, SortKind};
use crate::{Database, RepoError, RepoResult, stored};

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
    /// `ends_before=<time>`: orders whose period ends before it (a desk's returns due today).
    pub const ENDS_BEFORE: &'static str = "ends_before";
    /// `overdue=true`: picked up and past their end (false: all others).
    pub const OVERDUE: &'static str = "overdue";
}

pub(super) static ORDER_LIST_SPEC: ListSpec = ListSpec {
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
        (OrderFilter::ENDS_BEFORE, FilterKind::DateTime),
        (OrderFilter::OVERDUE, FilterKind::Bool),
    ],
    sorts: &[("created_at", SortKind::DateTime), ("starts_at", SortKind::DateTime)],
    default_sort: ("created_at", Direction::Desc),
    searchable: false,
    page_sizes: PageSizes::DEFAULT,
};

/// The whitelist of the order list: filters `status`, `customer`, `product`, `from`/`to` (period overlap),
/// `ends_before`, `overdue`; sorts `created_at` (default, newest first) and `starts_at`.
pub fn order_list_spec() -> &'static ListSpec {
    &ORDER_LIST_SPEC
}

/// Rental orders, their stock holds and maintenance blocks. Cheap to clone.
#[derive(Debug, Clone)]
pub struct OrderRepo {
    db: Database,
}

impl OrderRepo {
    /// A repository over `db`.
    pub fn new(db: Database) -> Self {
        Self { db }
    }
}

// ---- helpers ----------------------------------------------------------------------------------------------

pub(super) fn invalid(field: &str, message: impl Into<String>) -> RepoError {
    RepoError::Domain(rental_domain::DomainError::field(field, message))
}

pub(super) fn parse_status(s: &str) -> RepoResult<OrderStatus> {
    s.parse().map_err(RepoError::Domain)
}

pub(super) fn line_model(
    order_id: Uuid,
    l: &NewOrderLineRecord,
    hold_until: DateTime<Utc>,
    holds: bool,
) -> order_line::Model {
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
        currency: t.product.currency().as_str().to_owned(),
        price_per_day_minor: t.product.rates.per_day.amount_minor,
        price_per_week_minor: t.product.rates.per_week.map(|m| m.amount_minor),
        price_per_month_minor: t.product.rates.per_month.map(|m| m.amount_minor),
        deposit_per_unit_minor: t.product.deposit_per_unit.amount_minor,
        late_fee_per_day_minor: t.product.late_fee_per_day.amount_minor,
        buffer_minutes: t.product.buffer_minutes,
        charged_days: t.charged_days,
        months: t.months,
        weeks: t.weeks,
        days: t.days,
        unit_price_minor: t.unit_price.amount_minor,
        line_total_minor: t.line_total.amount_minor,
        usage_pending: i16::from(holds),
        order_holding: holds,
    }
}

pub(super) async fn insert_event(
    txn: &sea_orm::DatabaseTransaction,
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

pub(super) fn order_record(m: rental_order::Model) -> RepoResult<OrderRecord> {
    let currency = stored::currency("rental_orders", &m.currency)?;
    let money = |amount: i64| Money::new(amount, currency);
    Ok(OrderRecord {
        id: m.id,
        customer_id: m.customer_id,
        status: parse_status(&m.status)?,
        totals: OrderTotals {
            subtotal: money(m.subtotal_minor),
            tax: money(m.tax_minor),
            total: money(m.total_minor),
            deposit: money(m.deposit_minor),
        },
        tax_rate_bp: m.tax_rate_bp,
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

pub(super) fn line_record(l: order_line::Model, units: Vec<AssignedUnitRecord>) -> RepoResult<OrderLineRecord> {
    let product = stored::terms(
        "order_lines",
        &l.currency,
        (l.price_per_day_minor, l.price_per_week_minor, l.price_per_month_minor),
        l.deposit_per_unit_minor,
        l.late_fee_per_day_minor,
        l.buffer_minutes,
    )?;
    let money = |amount: i64| Money::new(amount, product.currency());
    Ok(OrderLineRecord {
        id: l.id,
        product_id: l.product_id,
        quantity: l.quantity,
        starts_at: l.starts_at,
        ends_at: l.ends_at,
        hold_until: l.hold_until,
        holds_stock: l.holds_stock,
        terms: LineTerms {
            product,
            charged_days: l.charged_days,
            months: l.months,
            weeks: l.weeks,
            days: l.days,
            unit_price: money(l.unit_price_minor),
            line_total: money(l.line_total_minor),
        },
        units,
    })
}
