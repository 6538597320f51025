//! The records the order repository reads and writes.

use chrono::{DateTime, Duration, Utc};
use rental_domain::availability::Hold;
use rental_domain::pricing::{OrderTotals, PricedLine, ProductTerms};
use rental_domain::{DomainError, Money, OrderStatus, UnitCondition};
use uuid::Uuid;

use crate::{InvoiceRecord, PaymentRecord};

/// A stored rental order (without its lines).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderRecord {
    /// Id.
    pub id: Uuid,
    /// The customer renting.
    pub customer_id: Uuid,
    /// Where it is in its lifecycle.
    pub status: OrderStatus,
    /// Sum of the lines' prices, tax, their total and the deposit held for the order's items (refundable, not
    /// taxed, not invoiced), all in the order's currency.
    pub totals: OrderTotals,
    /// Tax rate in basis points (1 % = 100).
    pub tax_rate_bp: i32,
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
    /// The product's rates, deposit, late fee and buffer as they were; their currency is the line's.
    pub product: ProductTerms,
    /// Started days charged.
    pub charged_days: i32,
    /// Months, weeks and days of the cheapest cover.
    pub months: i32,
    /// See `months`.
    pub weeks: i32,
    /// See `months`.
    pub days: i32,
    /// Price of one item for the period.
    pub unit_price: Money,
    /// `unit_price × quantity`.
    pub line_total: Money,
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
    /// Sum of the lines, tax, total and deposit, in the currency of every line.
    pub totals: OrderTotals,
    /// Tax rate in basis points.
    pub tax_rate_bp: i32,
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
    /// Start of the line's period.
    pub start: DateTime<Utc>,
    /// End of the line's period (exclusive).
    pub end: DateTime<Utc>,
    /// End of the line's hold (the end plus the product's buffer).
    pub hold_until: DateTime<Utc>,
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

/// Who changes an order, when and why: what a transition writes to the event log.
#[derive(Debug, Clone)]
pub struct OrderChange {
    /// Who does it (none for the system).
    pub actor: Option<Uuid>,
    /// Free text for the event log.
    pub note: Option<String>,
    /// When.
    pub at: DateTime<Utc>,
}

/// The outcome of a lifecycle transition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transitioned {
    /// The order as it is now.
    pub order: OrderRecord,
    /// The status it left.
    pub from: OrderStatus,
    /// Lines whose usage (for the reports) changed and must be recorded after the commit
    /// ([`crate::UsageRecorder::note`]).
    pub usage_changed: usize,
}

/// A line as it came back, with what its late fee is computed from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReturnedLine {
    /// The line.
    pub line_id: Uuid,
    /// Items.
    pub quantity: i32,
    /// The agreed end of the rental.
    pub ends_at: DateTime<Utc>,
    /// Late fee per item and started day, as agreed when the line was priced.
    pub late_fee_per_day: Money,
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
}

/// A maintenance block to add.
#[derive(Debug, Clone)]
pub struct NewMaintenanceRecord {
    /// The unit taken out of service.
    pub unit_id: Uuid,
    /// Start.
    pub starts_at: DateTime<Utc>,
    /// End (exclusive).
    pub ends_at: DateTime<Utc>,
    /// Why.
    pub reason: Option<String>,
    /// Who added it.
    pub created_by: Option<Uuid>,
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

impl LineTerms {
    /// The terms a line copies from `terms` once priced as `line`.
    ///
    /// # Errors
    /// [`DomainError::Invalid`] on `end` when a count does not fit the stored columns (a period far too long).
    pub fn priced(terms: &ProductTerms, line: &PricedLine) -> Result<Self, DomainError> {
        let small = |n: i64| i32::try_from(n).map_err(|_| DomainError::field("end", "the period is too long"));
        Ok(Self {
            product: *terms,
            charged_days: small(line.charged_days)?,
            months: small(line.cover.months)?,
            weeks: small(line.cover.weeks)?,
            days: small(line.cover.days)?,
            unit_price: line.cover.total,
            line_total: line.total,
        })
    }
}

/// What pricing needs of a product.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProductTermsRecord {
    /// Id.
    pub id: Uuid,
    /// Name, for invoice lines.
    pub name: String,
    /// Whether it can be rented.
    pub is_active: bool,
    /// Its rates, deposit, late fee and buffer.
    pub terms: ProductTerms,
}
