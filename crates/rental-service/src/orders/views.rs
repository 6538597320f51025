//! What callers send and see of orders.

use chrono::{DateTime, NaiveDate, Utc};
use rental_domain::{OrderStatus, UnitCondition};
use rental_repo::{MaintenanceRecord, OrderEventRecord, OrderRecord};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::billing::{InvoiceView, PaymentView};

/// Most lines in one order.
pub const MAX_LINES: usize = 50;
/// Most items of one line.
pub const MAX_QUANTITY: i64 = 10_000;

/// Rental settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RentalConfig {
    /// Tax on rentals and charges, in basis points (19 % = 1900). Deposits are not taxed.
    pub tax_rate_bp: u32,
}

/// A line of a new order.
#[derive(Debug, Clone, Deserialize)]
pub struct NewRentalLine {
    /// The product.
    pub product_id: Uuid,
    /// Items, 1 to 10,000.
    pub quantity: i64,
    /// Start of the rental.
    pub start: DateTime<Utc>,
    /// End of the rental (exclusive).
    pub end: DateTime<Utc>,
}

/// A new order.
#[derive(Debug, Clone, Deserialize)]
pub struct NewRental {
    /// The customer; staff only, and then required to rent for someone else. Customers rent for themselves.
    pub customer_id: Option<Uuid>,
    /// `reserved` (default: hold the stock now) or `quote` (price only).
    pub status: Option<String>,
    /// 1 to 50 lines, all in one currency.
    pub lines: Vec<NewRentalLine>,
    /// Free text.
    pub notes: Option<String>,
}

/// An order as callers see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OrderView {
    /// Id.
    pub id: Uuid,
    /// The customer.
    pub customer_id: Uuid,
    /// Lifecycle status.
    #[cfg_attr(feature = "openapi", schema(value_type = crate::openapi::OrderStatusSchema))]
    pub status: OrderStatus,
    /// Currency of the amounts (minor units).
    pub currency: String,
    /// Sum of the lines.
    pub subtotal_minor: i64,
    /// Tax rate in basis points.
    pub tax_rate_bp: i32,
    /// Tax.
    pub tax_minor: i64,
    /// Subtotal plus tax.
    pub total_minor: i64,
    /// Refundable deposit.
    pub deposit_minor: i64,
    /// Earliest start of the lines.
    pub starts_at: DateTime<Utc>,
    /// Latest end of the lines.
    pub ends_at: DateTime<Utc>,
    /// Notes.
    pub notes: Option<String>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// Pickup time.
    pub picked_up_at: Option<DateTime<Utc>>,
    /// Return time.
    pub returned_at: Option<DateTime<Utc>>,
}

impl From<OrderRecord> for OrderView {
    fn from(o: OrderRecord) -> Self {
        Self {
            id: o.id,
            customer_id: o.customer_id,
            status: o.status,
            currency: o.totals.total.currency.to_string(),
            subtotal_minor: o.totals.subtotal.amount_minor,
            tax_rate_bp: o.tax_rate_bp,
            tax_minor: o.totals.tax.amount_minor,
            total_minor: o.totals.total.amount_minor,
            deposit_minor: o.totals.deposit.amount_minor,
            starts_at: o.starts_at,
            ends_at: o.ends_at,
            notes: o.notes,
            created_at: o.created_at,
            updated_at: o.updated_at,
            picked_up_at: o.picked_up_at,
            returned_at: o.returned_at,
        }
    }
}

/// A line of an order, with the prices it was sold at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OrderLineView {
    /// Id.
    pub id: Uuid,
    /// Product.
    pub product_id: Uuid,
    /// Items.
    pub quantity: i32,
    /// Start.
    pub start: DateTime<Utc>,
    /// End (exclusive).
    pub end: DateTime<Utc>,
    /// Stock held until (end + buffer, or return + buffer).
    pub hold_until: DateTime<Utc>,
    /// Whether stock is held now.
    pub holds_stock: bool,
    /// Day rate at pricing time.
    pub price_per_day_minor: i64,
    /// Week rate at pricing time.
    pub price_per_week_minor: Option<i64>,
    /// Month rate at pricing time.
    pub price_per_month_minor: Option<i64>,
    /// Deposit per item.
    pub deposit_per_unit_minor: i64,
    /// Late fee per item and started day.
    pub late_fee_per_day_minor: i64,
    /// Started days charged.
    pub charged_days: i32,
    /// The cheapest cover: months, weeks, days.
    pub months: i32,
    /// See `months`.
    pub weeks: i32,
    /// See `months`.
    pub days: i32,
    /// Price of one item for the period.
    pub unit_price_minor: i64,
    /// Line total.
    pub line_total_minor: i64,
    /// Units handed out.
    pub units: Vec<AssignedUnitView>,
}

/// A unit handed out for a line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AssignedUnitView {
    /// Unit.
    pub unit_id: Uuid,
    /// Condition at return.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<crate::openapi::UnitConditionSchema>))]
    pub returned_condition: Option<UnitCondition>,
    /// Damage noted at return.
    pub damage_note: Option<String>,
}

/// An order with everything about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OrderDetailView {
    /// The order.
    #[serde(flatten)]
    pub order: OrderView,
    /// Its lines.
    pub lines: Vec<OrderLineView>,
    /// The lines' products.
    pub products: Vec<OrderProductView>,
    /// The customer.
    pub customer: Option<CustomerView>,
    /// The invoice.
    pub invoice: Option<InvoiceView>,
    /// Payments.
    pub payments: Vec<PaymentView>,
}

/// A product of an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OrderProductView {
    /// Id.
    pub id: Uuid,
    /// SKU.
    pub sku: String,
    /// Name.
    pub name: String,
}

/// The customer of an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CustomerView {
    /// Id.
    pub id: Uuid,
    /// E-mail.
    pub email: String,
    /// Name.
    pub full_name: String,
}

/// An entry of the event log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OrderEventView {
    /// Id.
    pub id: Uuid,
    /// Who.
    pub actor_id: Option<Uuid>,
    /// Status before (null at creation).
    pub from: Option<String>,
    /// Status after.
    pub to: String,
    /// Note.
    pub note: Option<String>,
    /// When.
    pub at: DateTime<Utc>,
}

impl From<OrderEventRecord> for OrderEventView {
    fn from(e: OrderEventRecord) -> Self {
        Self { id: e.id, actor_id: e.actor_id, from: e.from_status, to: e.to_status, note: e.note, at: e.created_at }
    }
}

/// A line that could not be reserved, with the nearest periods that would work.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ShortageView {
    /// Index of the line in the request.
    pub line: usize,
    /// Product.
    pub product_id: Uuid,
    /// Quantity asked.
    pub requested: i64,
    /// Least quantity free over the period (with the product's buffer).
    pub available: i64,
    /// Nearest free periods of the same length: the latest before and the earliest after the asked one.
    pub nearest_free: Vec<PeriodView>,
}

/// A period `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PeriodView {
    /// Start.
    pub start: DateTime<Utc>,
    /// End (exclusive).
    pub end: DateTime<Utc>,
}

/// Free quantity of one product over a period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AvailabilityView {
    /// Product.
    pub product_id: Uuid,
    /// Period asked.
    pub from: DateTime<Utc>,
    /// End of the period asked.
    pub to: DateTime<Utc>,
    /// Units plus bulk quantities.
    pub capacity: i64,
    /// Quantity asked about.
    pub quantity: i64,
    /// Least free quantity over the period (with the buffer after it).
    pub available: i64,
    /// Least free quantity per UTC day.
    pub days: Vec<DayView>,
    /// When less than `quantity` is free: the nearest periods of the same length where it is.
    pub nearest_free: Vec<PeriodView>,
}

/// Free quantity of one day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DayView {
    /// Day.
    pub date: NaiveDate,
    /// Least free quantity that day.
    pub available: i64,
}

/// A maintenance block.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MaintenanceView {
    /// Id.
    pub id: Uuid,
    /// Unit.
    pub unit_id: Uuid,
    /// Its product.
    pub product_id: Uuid,
    /// Start.
    pub start: DateTime<Utc>,
    /// End (exclusive).
    pub end: DateTime<Utc>,
    /// Why.
    pub reason: Option<String>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
}

impl From<MaintenanceRecord> for MaintenanceView {
    fn from(m: MaintenanceRecord) -> Self {
        Self {
            id: m.id,
            unit_id: m.unit_id,
            product_id: m.product_id,
            start: m.starts_at,
            end: m.ends_at,
            reason: m.reason,
            created_at: m.created_at,
        }
    }
}

/// Units handed out for one line at pickup.
#[derive(Debug, Clone, Deserialize)]
pub struct PickupLine {
    /// The line.
    pub line_id: Uuid,
    /// Its units.
    pub unit_ids: Vec<Uuid>,
}

/// How a unit came back.
#[derive(Debug, Clone, Deserialize)]
pub struct ReturnedUnit {
    /// Unit.
    pub unit_id: Uuid,
    /// `new`, `good`, `fair`, `damaged`.
    pub condition: String,
    /// Damage noted.
    pub damage_note: Option<String>,
    /// Charge for the damage, in the order's currency (minor units).
    pub damage_charge_minor: Option<i64>,
}
