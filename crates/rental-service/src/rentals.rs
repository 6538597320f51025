//! Rental orders: pricing, the atomic reservation, the lifecycle with its event log, availability,
//! maintenance blocks, invoices and payments.
//!
//! Customers rent for themselves and see only their own orders and invoices (another customer's order is
//! "not found"); staff rent on a customer's behalf, see everything and run the desk (pickup, return, close).

use std::collections::BTreeSet;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use rental_domain::availability::Timeline;
use rental_domain::catalogue::description;
use rental_domain::pricing::RateCard;
use rental_domain::{
    Collector, Currency, DomainError, FieldError, MAX_RENTAL_DAYS, Money, OrderStatus, RentalPeriod, UnitCondition,
};
use rental_repo::query::{FilterValue, Listing};
use rental_repo::{
    InvoiceRecord, LineTerms, LineUnits, MaintenanceRecord, NewOrderLineRecord, NewOrderRecord, OrderDetail,
    OrderEventRecord, OrderFilter, OrderRecord, PaymentRecord, ProductTermsRecord, RentalRepo, Shortage, UnitReturn,
    invoice_list_spec, order_list_spec,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{Principal, ServiceError, ServiceResult};

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
pub struct OrderView {
    /// Id.
    pub id: Uuid,
    /// The customer.
    pub customer_id: Uuid,
    /// Lifecycle status.
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
            currency: o.currency,
            subtotal_minor: o.subtotal_minor,
            tax_rate_bp: o.tax_rate_bp,
            tax_minor: o.tax_minor,
            total_minor: o.total_minor,
            deposit_minor: o.deposit_minor,
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
pub struct AssignedUnitView {
    /// Unit.
    pub unit_id: Uuid,
    /// Condition at return.
    pub returned_condition: Option<UnitCondition>,
    /// Damage noted at return.
    pub damage_note: Option<String>,
}

/// An order with everything about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
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
pub struct CustomerView {
    /// Id.
    pub id: Uuid,
    /// E-mail.
    pub email: String,
    /// Name.
    pub full_name: String,
}

/// An invoice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InvoiceView {
    /// Id.
    pub id: Uuid,
    /// Order billed.
    pub order_id: Uuid,
    /// Customer billed.
    pub customer_id: Uuid,
    /// `INV-YYYY-NNNNNN`; null for a draft.
    pub number: Option<String>,
    /// `draft`, `open`, `paid`, `void`.
    pub status: String,
    /// Currency.
    pub currency: String,
    /// Sum of the lines.
    pub subtotal_minor: i64,
    /// Tax rate in basis points.
    pub tax_rate_bp: i32,
    /// Tax.
    pub tax_minor: i64,
    /// Total.
    pub total_minor: i64,
    /// Paid so far.
    pub amount_paid_minor: i64,
    /// Issue time.
    pub issued_at: Option<DateTime<Utc>>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// Lines (omitted in lists).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lines: Option<Vec<InvoiceLineView>>,
    /// Payments (omitted in lists).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payments: Option<Vec<PaymentView>>,
}

impl InvoiceView {
    fn of(r: InvoiceRecord, with_lines: bool) -> Self {
        let lines = with_lines.then(|| {
            r.lines
                .into_iter()
                .map(|l| InvoiceLineView {
                    id: l.id,
                    kind: l.kind,
                    description: l.description,
                    quantity: l.quantity,
                    unit_amount_minor: l.unit_amount_minor,
                    amount_minor: l.amount_minor,
                    taxable: l.taxable,
                })
                .collect()
        });
        Self {
            id: r.id,
            order_id: r.order_id,
            customer_id: r.customer_id,
            number: r.number,
            status: r.status,
            currency: r.currency,
            subtotal_minor: r.subtotal_minor,
            tax_rate_bp: r.tax_rate_bp,
            tax_minor: r.tax_minor,
            total_minor: r.total_minor,
            amount_paid_minor: r.amount_paid_minor,
            issued_at: r.issued_at,
            created_at: r.created_at,
            updated_at: r.updated_at,
            lines,
            payments: None,
        }
    }
}

/// A line of an invoice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InvoiceLineView {
    /// Id.
    pub id: Uuid,
    /// `rental`, `late_fee`, `damage`.
    pub kind: String,
    /// Text.
    pub description: String,
    /// Quantity.
    pub quantity: i32,
    /// Price of one.
    pub unit_amount_minor: i64,
    /// Amount.
    pub amount_minor: i64,
    /// Whether taxed.
    pub taxable: bool,
}

/// A payment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PaymentView {
    /// Id.
    pub id: Uuid,
    /// Invoice paid.
    pub invoice_id: Uuid,
    /// Amount.
    pub amount_minor: i64,
    /// Currency.
    pub currency: String,
    /// Method.
    pub method: String,
    /// Reference.
    pub reference: Option<String>,
    /// When.
    pub created_at: DateTime<Utc>,
}

impl From<PaymentRecord> for PaymentView {
    fn from(p: PaymentRecord) -> Self {
        Self {
            id: p.id,
            invoice_id: p.invoice_id,
            amount_minor: p.amount_minor,
            currency: p.currency,
            method: p.method,
            reference: p.reference,
            created_at: p.created_at,
        }
    }
}

/// An entry of the event log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
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
pub struct PeriodView {
    /// Start.
    pub start: DateTime<Utc>,
    /// End (exclusive).
    pub end: DateTime<Utc>,
}

/// Free quantity of one product over a period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
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
pub struct DayView {
    /// Day.
    pub date: NaiveDate,
    /// Least free quantity that day.
    pub available: i64,
}

/// A maintenance block.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
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

/// A payment to record.
#[derive(Debug, Clone, Deserialize)]
pub struct NewPayment {
    /// Amount, positive, at most what is due.
    pub amount_minor: i64,
    /// The invoice's currency.
    pub currency: String,
    /// `cash`, `card` or `bank_transfer`.
    pub method: String,
    /// Receipt or transfer reference.
    pub reference: Option<String>,
}

/// Rental orders, availability and invoices.
#[derive(Debug, Clone)]
pub struct RentalService {
    repo: RentalRepo,
    config: RentalConfig,
}

impl RentalService {
    /// The service over `repo`.
    pub fn new(repo: RentalRepo, config: RentalConfig) -> Self {
        Self { repo, config }
    }

    /// Creates an order: prices every line (cheapest month/week/day cover, prices snapshotted), and either
    /// quotes it or reserves its stock atomically.
    ///
    /// # Errors
    /// [`ServiceError::Invalid`] listing every bad field (periods, quantities, unknown or inactive products,
    /// mixed currencies); [`ServiceError::Forbidden`] when a customer rents for someone else;
    /// [`ServiceError::Unavailable`] with the lines that do not fit.
    #[tracing::instrument(skip_all, fields(lines = new.lines.len()))]
    pub async fn create(&self, principal: &Principal, new: NewRental) -> ServiceResult<OrderView> {
        let customer_id = match new.customer_id {
            Some(id) if id != principal.user_id.as_uuid() && !principal.is_staff() => {
                return Err(ServiceError::Forbidden("customers can only rent for themselves"));
            }
            Some(id) => id,
            None => principal.user_id.as_uuid(),
        };
        let status = match new.status.as_deref() {
            None | Some("reserved") => OrderStatus::Reserved,
            Some("quote") => OrderStatus::Quote,
            Some(_) => return Err(DomainError::field("status", "must be quote or reserved").into()),
        };
        let now = Utc::now();
        let mut errors = Collector::default();
        if new.lines.is_empty() || new.lines.len() > MAX_LINES {
            errors.take::<()>(Err(DomainError::field("lines", format!("must hold 1 to {MAX_LINES} lines"))));
        }
        let notes = new.notes.as_deref().and_then(|n| errors.take(description("notes", n))).flatten();
        if customer_id != principal.user_id.as_uuid() && !self.repo.active_user_exists(customer_id).await? {
            errors.take::<()>(Err(DomainError::field("customer_id", "no such active customer")));
        }
        let ids: BTreeSet<Uuid> = new.lines.iter().map(|l| l.product_id).collect();
        let products = if ids.is_empty() { Vec::new() } else { self.repo.product_terms(&ids).await? };
        let mut currency: Option<String> = None;
        let mut lines = Vec::with_capacity(new.lines.len());
        for (i, line) in new.lines.iter().enumerate() {
            let at = |field: &str| format!("lines[{i}].{field}");
            let period = errors.take(RentalPeriod::parse(line.start, line.end, now).map_err(|e| prefixed(e, i)));
            if !(1..=MAX_QUANTITY).contains(&line.quantity) {
                errors.take::<()>(Err(DomainError::field(at("quantity"), format!("must be 1 to {MAX_QUANTITY}"))));
            }
            let Some(product) = products.iter().find(|p| p.id == line.product_id) else {
                errors.take::<()>(Err(DomainError::field(at("product_id"), "no such product")));
                continue;
            };
            if !product.is_active {
                errors.take::<()>(Err(DomainError::field(at("product_id"), "is not available for rent")));
                continue;
            }
            match &currency {
                Some(c) if *c != product.currency => {
                    errors.take::<()>(Err(DomainError::field(
                        at("product_id"),
                        format!("is priced in {}, the order's other lines in {c}", product.currency),
                    )));
                    continue;
                }
                _ => currency = Some(product.currency.clone()),
            }
            let (Some(period), Ok(quantity)) = (period, i32::try_from(line.quantity)) else { continue };
            if !(1..=MAX_QUANTITY).contains(&line.quantity) {
                continue;
            }
            match price_line(product, &period, quantity) {
                Ok(terms) => lines.push(NewOrderLineRecord {
                    product_id: product.id,
                    quantity,
                    starts_at: period.start(),
                    ends_at: period.end(),
                    description: format!("{} × {}, {} day(s)", quantity, product.name, terms.charged_days),
                    terms,
                }),
                Err(e) => {
                    errors.take::<()>(Err(prefixed(e, i)));
                }
            }
        }
        errors.finish()?;
        let currency = currency.ok_or_else(|| DomainError::field("lines", "must hold 1 to 50 lines"))?;
        let code = Currency::parse(&currency)?;
        let mut subtotal = Money::zero(code);
        let mut deposit = Money::zero(code);
        for l in &lines {
            subtotal = subtotal.checked_add(Money::new(l.terms.line_total_minor, code))?;
            deposit = deposit
                .checked_add(Money::new(l.terms.deposit_per_unit_minor, code).checked_mul(i64::from(l.quantity))?)?;
        }
        let tax = subtotal.percentage(self.config.tax_rate_bp)?;
        let total = subtotal.checked_add(tax)?;
        let record = NewOrderRecord {
            customer_id,
            status,
            currency,
            subtotal_minor: subtotal.amount_minor,
            tax_rate_bp: i32::try_from(self.config.tax_rate_bp).unwrap_or(0),
            tax_minor: tax.amount_minor,
            total_minor: total.amount_minor,
            deposit_minor: deposit.amount_minor,
            notes,
            created_by: Some(principal.user_id.as_uuid()),
            lines,
        };
        Ok(self.repo.create_order(record).await?.into())
    }

    /// Loads an order the caller may see: their own, or any for staff. Others' orders are not found.
    async fn visible(&self, principal: &Principal, id: Uuid) -> ServiceResult<OrderRecord> {
        match self.repo.find_order(id).await? {
            Some(o) if principal.is_staff() || o.customer_id == principal.user_id.as_uuid() => Ok(o),
            _ => Err(ServiceError::NotFound("rental")),
        }
    }

    /// An order with its lines, products, customer, invoice and payments.
    ///
    /// # Errors
    /// [`ServiceError::NotFound`] for an unknown order or another customer's.
    pub async fn get(&self, principal: &Principal, id: Uuid) -> ServiceResult<OrderDetailView> {
        let detail = self.repo.order_detail(id).await?.ok_or(ServiceError::NotFound("rental"))?;
        if !principal.is_staff() && detail.order.customer_id != principal.user_id.as_uuid() {
            return Err(ServiceError::NotFound("rental"));
        }
        Ok(detail_view(detail))
    }

    /// A page of orders: the caller's own, or everyone's for staff.
    ///
    /// # Errors
    /// [`ServiceError::InvalidQuery`] naming a bad parameter.
    pub async fn list(&self, principal: &Principal, params: &[(String, String)]) -> ServiceResult<Listing<OrderView>> {
        let mut query = order_list_spec().parse(params)?;
        if !principal.is_staff() {
            query.filters.insert(OrderFilter::CUSTOMER, FilterValue::Uuid(principal.user_id.as_uuid()));
        }
        if let (Some(from), Some(to)) =
            (query.datetime_filter(OrderFilter::FROM), query.datetime_filter(OrderFilter::TO))
            && to <= from
        {
            return Err(ServiceError::InvalidQuery { field: "to".into(), message: "must be after from".into() });
        }
        Ok(self.repo.list_orders(&query).await?.map(OrderView::from))
    }

    /// The order's event log.
    ///
    /// # Errors
    /// [`ServiceError::NotFound`].
    pub async fn events(&self, principal: &Principal, id: Uuid) -> ServiceResult<Vec<OrderEventView>> {
        self.visible(principal, id).await?;
        Ok(self.repo.events(id).await?.into_iter().map(OrderEventView::from).collect())
    }

    /// `quote → reserved` (the customer or staff).
    ///
    /// # Errors
    /// [`ServiceError::NotFound`], [`ServiceError::Invalid`] for an illegal transition (409),
    /// [`ServiceError::Unavailable`].
    pub async fn confirm(
        &self,
        principal: &Principal,
        id: Uuid,
        note_text: Option<String>,
    ) -> ServiceResult<OrderView> {
        self.visible(principal, id).await?;
        let note_text = checked_note(note_text)?;
        Ok(self.repo.confirm(id, Some(principal.user_id.as_uuid()), note_text).await?.into())
    }

    /// `quote|reserved → cancelled` (the customer or staff).
    ///
    /// # Errors
    /// [`ServiceError::NotFound`], [`ServiceError::Invalid`] for an illegal transition (409).
    pub async fn cancel(&self, principal: &Principal, id: Uuid, note_text: Option<String>) -> ServiceResult<OrderView> {
        self.visible(principal, id).await?;
        let note_text = checked_note(note_text)?;
        Ok(self.repo.cancel(id, Some(principal.user_id.as_uuid()), note_text).await?.into())
    }

    /// `reserved → picked_up` (staff): hands out units, chosen or picked automatically.
    ///
    /// # Errors
    /// [`ServiceError::Forbidden`], [`ServiceError::NotFound`], [`ServiceError::Invalid`].
    pub async fn pickup(
        &self,
        principal: &Principal,
        id: Uuid,
        units: Vec<PickupLine>,
        note_text: Option<String>,
    ) -> ServiceResult<OrderView> {
        principal.require_staff()?;
        self.visible(principal, id).await?;
        let note_text = checked_note(note_text)?;
        let chosen = units.into_iter().map(|u| LineUnits { line_id: u.line_id, unit_ids: u.unit_ids }).collect();
        Ok(self.repo.pickup(id, Some(principal.user_id.as_uuid()), chosen, note_text).await?.into())
    }

    /// `picked_up → returned` (staff): conditions, damage charges and late fees.
    ///
    /// # Errors
    /// [`ServiceError::Forbidden`], [`ServiceError::NotFound`], [`ServiceError::Invalid`].
    pub async fn return_items(
        &self,
        principal: &Principal,
        id: Uuid,
        units: Vec<ReturnedUnit>,
        note_text: Option<String>,
    ) -> ServiceResult<OrderView> {
        principal.require_staff()?;
        self.visible(principal, id).await?;
        let mut errors = Collector::default();
        let note_text = errors.take(checked_note(note_text).map_err(|_| DomainError::field("note", "is too long")));
        let mut returns = Vec::with_capacity(units.len());
        for (i, u) in units.into_iter().enumerate() {
            let condition =
                errors.take(u.condition.parse::<UnitCondition>().map_err(|e| prefixed_with(e, &format!("units[{i}]"))));
            let damage_note = u
                .damage_note
                .as_deref()
                .and_then(|n| {
                    errors.take(description("damage_note", n).map_err(|e| prefixed_with(e, &format!("units[{i}]"))))
                })
                .flatten();
            let charge = u.damage_charge_minor.unwrap_or(0);
            if charge < 0 {
                errors.take::<()>(Err(DomainError::field(
                    format!("units[{i}].damage_charge_minor"),
                    "must not be negative",
                )));
            }
            if let Some(condition) = condition {
                returns.push(UnitReturn { unit_id: u.unit_id, condition, damage_note, damage_charge_minor: charge });
            }
        }
        errors.finish()?;
        Ok(self.repo.return_items(id, Some(principal.user_id.as_uuid()), returns, note_text.flatten()).await?.into())
    }

    /// `returned → closed` (staff).
    ///
    /// # Errors
    /// [`ServiceError::Forbidden`], [`ServiceError::NotFound`], [`ServiceError::Invalid`] (409).
    pub async fn close(&self, principal: &Principal, id: Uuid, note_text: Option<String>) -> ServiceResult<OrderView> {
        principal.require_staff()?;
        self.visible(principal, id).await?;
        let note_text = checked_note(note_text)?;
        Ok(self.repo.close(id, Some(principal.user_id.as_uuid()), note_text).await?.into())
    }

    /// Free quantity of a product over `[from, to)` per day, and when less than `quantity` is free, the nearest
    /// periods of the same length where it is. Public.
    ///
    /// # Errors
    /// [`ServiceError::Invalid`] for a bad period or quantity, [`ServiceError::NotFound`].
    pub async fn availability(
        &self,
        product_id: Uuid,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        quantity: Option<i64>,
    ) -> ServiceResult<AvailabilityView> {
        let mut errors = Collector::default();
        if to <= from {
            errors.take::<()>(Err(DomainError::field("to", "must be after from")));
        } else if to - from > Duration::days(MAX_RENTAL_DAYS) {
            errors.take::<()>(Err(DomainError::field(
                "to",
                format!("the period must be at most {MAX_RENTAL_DAYS} days"),
            )));
        }
        let quantity = quantity.unwrap_or(1);
        if !(1..=MAX_QUANTITY).contains(&quantity) {
            errors.take::<()>(Err(DomainError::field("quantity", format!("must be 1 to {MAX_QUANTITY}"))));
        }
        errors.finish()?;
        let products = self.repo.product_terms(&BTreeSet::from([product_id])).await?;
        let product = products.first().filter(|p| p.is_active).ok_or(ServiceError::NotFound("product"))?;
        let buffer = Duration::minutes(i64::from(product.buffer_minutes));
        let now = Utc::now();
        let horizon = Duration::days(rental_repo::SUGGESTION_HORIZON_DAYS);
        let window_from = Ord::min(from, Ord::max(now, from - horizon));
        let window_to = to + buffer + horizon;
        let stock = self.repo.product_holds(product_id, window_from, window_to).await?;
        let timeline = Timeline::new(stock.capacity, &stock.holds, window_from, window_to);
        let available = timeline.min_free(from, to + buffer).unwrap_or(0).max(0);
        let days = timeline
            .per_day(from, to)
            .into_iter()
            .map(|d| DayView { date: d.date, available: d.free.max(0) })
            .collect();
        let nearest_free = if available < quantity {
            let (earlier, later) = timeline.nearest_free(quantity, to - from + buffer, from, now);
            [earlier, later].into_iter().flatten().map(|start| PeriodView { start, end: start + (to - from) }).collect()
        } else {
            Vec::new()
        };
        Ok(AvailabilityView { product_id, from, to, capacity: stock.capacity, quantity, available, days, nearest_free })
    }

    /// Takes a unit out of service for a period (staff). Refused with `unavailable` when reservations need the
    /// unit then.
    ///
    /// # Errors
    /// [`ServiceError::Forbidden`], [`ServiceError::Invalid`], [`ServiceError::NotFound`],
    /// [`ServiceError::Unavailable`].
    pub async fn add_maintenance(
        &self,
        principal: &Principal,
        unit_id: Uuid,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        reason: Option<String>,
    ) -> ServiceResult<MaintenanceView> {
        principal.require_staff()?;
        let mut errors = Collector::default();
        let period = errors.take(RentalPeriod::parse(start, end, Utc::now()));
        let reason = reason.as_deref().and_then(|r| errors.take(description("reason", r))).flatten();
        errors.finish()?;
        let Some(period) = period else { return Err(ServiceError::Internal("validated period missing".into())) };
        match self
            .repo
            .add_maintenance(unit_id, period.start(), period.end(), reason, Some(principal.user_id.as_uuid()))
            .await
        {
            Ok(block) => Ok(block.into()),
            Err(rental_repo::RepoError::NotFound) => Err(ServiceError::NotFound("unit")),
            Err(e) => Err(e.into()),
        }
    }

    /// A page of invoices: the caller's own, or all for staff.
    ///
    /// # Errors
    /// [`ServiceError::InvalidQuery`].
    pub async fn list_invoices(
        &self,
        principal: &Principal,
        params: &[(String, String)],
    ) -> ServiceResult<Listing<InvoiceView>> {
        let mut query = invoice_list_spec().parse(params)?;
        if !principal.is_staff() {
            query.filters.insert("customer", FilterValue::Uuid(principal.user_id.as_uuid()));
        }
        Ok(self.repo.list_invoices(&query).await?.map(|r| InvoiceView::of(r, false)))
    }

    /// An invoice with its lines and payments.
    ///
    /// # Errors
    /// [`ServiceError::NotFound`] for an unknown invoice or another customer's.
    pub async fn get_invoice(&self, principal: &Principal, id: Uuid) -> ServiceResult<InvoiceView> {
        match self.repo.invoice(id).await? {
            Some((inv, payments)) if principal.is_staff() || inv.customer_id == principal.user_id.as_uuid() => {
                let mut view = InvoiceView::of(inv, true);
                view.payments = Some(payments.into_iter().map(PaymentView::from).collect());
                Ok(view)
            }
            _ => Err(ServiceError::NotFound("invoice")),
        }
    }

    /// Records a payment received at the desk (staff).
    ///
    /// # Errors
    /// [`ServiceError::Forbidden`], [`ServiceError::Invalid`], [`ServiceError::NotFound`].
    pub async fn record_payment(
        &self,
        principal: &Principal,
        invoice_id: Uuid,
        new: NewPayment,
    ) -> ServiceResult<PaymentView> {
        principal.require_staff()?;
        let mut errors = Collector::default();
        if new.amount_minor <= 0 {
            errors.take::<()>(Err(DomainError::field("amount_minor", "must be positive")));
        }
        let currency = errors.take(Currency::parse(&new.currency).map_err(|e| prefixed_with(e, "")));
        if !["cash", "card", "bank_transfer"].contains(&new.method.as_str()) {
            errors.take::<()>(Err(DomainError::field("method", "must be cash, card or bank_transfer")));
        }
        let reference = new.reference.as_deref().and_then(|r| errors.take(description("reference", r))).flatten();
        if reference.as_ref().is_some_and(|r| r.chars().count() > 200) {
            errors.take::<()>(Err(DomainError::field("reference", "must be at most 200 characters")));
        }
        errors.finish()?;
        let currency = currency.map(|c| c.as_str().to_owned()).unwrap_or_default();
        match self
            .repo
            .record_payment(
                invoice_id,
                new.amount_minor,
                currency,
                new.method,
                reference,
                Some(principal.user_id.as_uuid()),
            )
            .await
        {
            Ok(p) => Ok(p.into()),
            Err(rental_repo::RepoError::NotFound) => Err(ServiceError::NotFound("invoice")),
            Err(e) => Err(e.into()),
        }
    }

    /// Overbooked holds in the database (0 when healthy): for checks after load tests and for monitoring.
    ///
    /// # Errors
    /// [`ServiceError::Repo`].
    pub async fn count_overbooked(&self) -> ServiceResult<u64> {
        Ok(self.repo.count_overbooked().await?)
    }
}

/// Prices one line: the cheapest cover of its charged days, snapshotting the product's terms.
fn price_line(product: &ProductTermsRecord, period: &RentalPeriod, quantity: i32) -> Result<LineTerms, DomainError> {
    let currency = Currency::parse(&product.currency)?;
    let money = |amount: i64| Money::new(amount, currency);
    let card = RateCard::new(
        money(product.price_per_day_minor),
        product.price_per_week_minor.map(money),
        product.price_per_month_minor.map(money),
    )?;
    let days = period.charged_days();
    let breakdown = card.price(days)?;
    let line_total = breakdown.total.checked_mul(i64::from(quantity))?;
    let small = |n: i64| i32::try_from(n).map_err(|_| DomainError::field("end", "the period is too long"));
    Ok(LineTerms {
        currency: product.currency.clone(),
        price_per_day_minor: product.price_per_day_minor,
        price_per_week_minor: product.price_per_week_minor,
        price_per_month_minor: product.price_per_month_minor,
        deposit_per_unit_minor: product.deposit_minor,
        late_fee_per_day_minor: product.late_fee_per_day_minor,
        buffer_minutes: product.buffer_minutes,
        charged_days: small(days)?,
        months: small(breakdown.months)?,
        weeks: small(breakdown.weeks)?,
        days: small(breakdown.days)?,
        unit_price_minor: breakdown.total.amount_minor,
        line_total_minor: line_total.amount_minor,
    })
}

fn detail_view(d: OrderDetail) -> OrderDetailView {
    OrderDetailView {
        order: d.order.into(),
        lines: d
            .lines
            .into_iter()
            .map(|l| OrderLineView {
                id: l.id,
                product_id: l.product_id,
                quantity: l.quantity,
                start: l.starts_at,
                end: l.ends_at,
                hold_until: l.hold_until,
                holds_stock: l.holds_stock,
                price_per_day_minor: l.terms.price_per_day_minor,
                price_per_week_minor: l.terms.price_per_week_minor,
                price_per_month_minor: l.terms.price_per_month_minor,
                deposit_per_unit_minor: l.terms.deposit_per_unit_minor,
                late_fee_per_day_minor: l.terms.late_fee_per_day_minor,
                charged_days: l.terms.charged_days,
                months: l.terms.months,
                weeks: l.terms.weeks,
                days: l.terms.days,
                unit_price_minor: l.terms.unit_price_minor,
                line_total_minor: l.terms.line_total_minor,
                units: l
                    .units
                    .into_iter()
                    .map(|u| AssignedUnitView {
                        unit_id: u.unit_id,
                        returned_condition: u.returned_condition,
                        damage_note: u.damage_note,
                    })
                    .collect(),
            })
            .collect(),
        products: d.products.into_iter().map(|p| OrderProductView { id: p.id, sku: p.sku, name: p.name }).collect(),
        customer: d.customer.map(|c| CustomerView { id: c.id, email: c.email, full_name: c.full_name }),
        invoice: d.invoice.map(|i| InvoiceView::of(i, true)),
        payments: d.payments.into_iter().map(PaymentView::from).collect(),
    }
}

/// The shortages of a refused reservation as callers see them.
pub(crate) fn shortage_views(shortages: &[Shortage]) -> Vec<ShortageView> {
    shortages
        .iter()
        .map(|s| {
            let length = s.length;
            ShortageView {
                line: s.line,
                product_id: s.product_id,
                requested: s.requested,
                available: s.free,
                nearest_free: [s.earlier_start, s.later_start]
                    .into_iter()
                    .flatten()
                    .map(|start| PeriodView { start, end: start + length })
                    .collect(),
            }
        })
        .collect()
}

fn prefixed(err: DomainError, line: usize) -> DomainError {
    prefixed_with(err, &format!("lines[{line}]"))
}

fn prefixed_with(err: DomainError, prefix: &str) -> DomainError {
    match err {
        DomainError::Invalid(fields) if !prefix.is_empty() => {
            DomainError::Invalid(fields.into_iter().map(|f: FieldError| f.within(prefix)).collect())
        }
        other => other,
    }
}

fn checked_note(text: Option<String>) -> ServiceResult<Option<String>> {
    match text {
        Some(t) => Ok(description("note", &t)?),
        None => Ok(None),
    }
}
