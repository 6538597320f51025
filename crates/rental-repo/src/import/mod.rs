//! Bulk import of historical orders: each order with its lines, one "imported" event and, optionally, its
//! invoice with the invoice's lines.
//!
//! A batch is written in one transaction with multi-row INSERTs in chunks. Issued invoices are numbered through
//! the shared counter protocol (one `INSERT .. ON CONFLICT (year) DO UPDATE .. RETURNING last_seq` per year of
//! the batch, inside the writing transaction), so the numbers stay gap-free per year alongside the live code.
//! The importer prices the lines itself with the product's rate card, so the stored amounts always add up.
//! It does not check availability: the caller vouches that orders holding stock fit the capacity.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Datelike, Utc};
use rental_domain::billing::tax;
use rental_domain::pricing::{OrderTotals, ProductTerms};
use rental_domain::{ChargeKind, InvoiceStatus};
use rental_domain::{Currency, Money, OrderStatus, started_days};
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveValue, ConnectionTrait, Statement};
use sea_orm::{EntityTrait, QueryOrder, QuerySelect};
use uuid::{NoContext, Timestamp, Uuid};

use crate::analytics::counters;
use crate::analytics::usage::{self, UsageLine};
use crate::billing::advance_invoice_counter;
use crate::entity::product;
use crate::entity::{invoice, invoice_line, order_event, order_line, rental_order};
use crate::orders::stock::capacity;
use crate::query::insert_chunked;
use crate::{Database, RepoError, RepoResult, UnitOfWork, stored};

/// One line of an imported order, priced by the importer with `rates`.
#[derive(Debug, Clone)]
pub struct ImportedLine {
    /// The product rented.
    pub product_id: Uuid,
    /// Units rented (at least 1).
    pub quantity: i32,
    /// Start of the rental.
    pub starts_at: DateTime<Utc>,
    /// End of the rental (after the start).
    pub ends_at: DateTime<Utc>,
    /// The product's terms when the order was priced; their currency must be the order's.
    pub terms: ProductTerms,
}

/// An extra charge on an imported invoice (late fee, damage).
#[derive(Debug, Clone)]
pub struct ImportedCharge {
    /// Late fee or damage.
    pub kind: ChargeKind,
    /// Text on the invoice.
    pub description: String,
    /// How many (days late, damaged units).
    pub quantity: i32,
    /// Amount of one.
    pub unit_amount_minor: i64,
    /// Whether tax applies.
    pub taxable: bool,
}

/// The invoice of an imported order: one taxable rental line per order line, plus `charges`.
#[derive(Debug, Clone)]
pub struct ImportedInvoice {
    /// Draft invoices have no number and no issue time; the others have both.
    pub status: InvoiceStatus,
    /// When it was issued; required unless a draft, forbidden for a draft.
    pub issued_at: Option<DateTime<Utc>>,
    /// Late fees and damage.
    pub charges: Vec<ImportedCharge>,
}

/// A historical order to import.
#[derive(Debug, Clone)]
pub struct ImportedOrder {
    /// The customer (an existing user).
    pub customer_id: Uuid,
    /// Its status; the lines hold stock (`holds_stock`) unless it is a quote or cancelled.
    pub status: OrderStatus,
    /// Currency of every amount.
    pub currency: Currency,
    /// Tax rate in basis points (0..=10,000).
    pub tax_rate_bp: u32,
    /// When the order was made; also the time of its "imported" event.
    pub created_at: DateTime<Utc>,
    /// When the items were picked up.
    pub picked_up_at: Option<DateTime<Utc>>,
    /// When they came back.
    pub returned_at: Option<DateTime<Utc>>,
    /// Free text.
    pub notes: Option<String>,
    /// At least one line.
    pub lines: Vec<ImportedLine>,
    /// The invoice, if any.
    pub invoice: Option<ImportedInvoice>,
}

/// What the import stored for one order, in the order of the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportedIds {
    /// The new order's id.
    pub order_id: Uuid,
    /// Its invoice's id.
    pub invoice_id: Option<Uuid>,
    /// Its invoice's number (`INV-2026-000123`), unless a draft or no invoice.
    pub invoice_number: Option<String>,
    /// The order's total (subtotal plus tax), in minor units.
    pub order_total_minor: i64,
    /// The invoice's total, in minor units.
    pub invoice_total_minor: Option<i64>,
}

/// A product as the seeder needs it to make orders: its prices and its capacity.
#[derive(Debug, Clone)]
pub struct ImportProduct {
    /// Id.
    pub id: Uuid,
    /// Its rates, deposit, late fee and buffer.
    pub terms: ProductTerms,
    /// Tracked units plus bulk stock.
    pub capacity: i64,
}

/// Writes historical orders in bulk.
#[derive(Debug, Clone)]
pub struct OrderImporter {
    db: Database,
}

/// The rows of one batch, ready to insert.
#[derive(Default)]
struct Rows {
    orders: Vec<rental_order::ActiveModel>,
    lines: Vec<order_line::ActiveModel>,
    events: Vec<order_event::ActiveModel>,
    invoices: Vec<invoice::ActiveModel>,
    /// For each invoice, the index of its order in the input.
    invoice_owner: Vec<usize>,
    invoice_lines: Vec<invoice_line::ActiveModel>,
    /// The lines of rented orders, for the usage marks.
    usage: Vec<UsageLine>,
    /// Each order's id and status, for the dashboard's counters.
    counted: Vec<(Uuid, OrderStatus)>,
}

/// A UUIDv7 carrying `at` as its time, so that imported ids sort by their historical time.
fn id_at(at: DateTime<Utc>) -> Uuid {
    let secs = u64::try_from(at.timestamp()).unwrap_or(0);
    Uuid::new_v7(Timestamp::from_unix(NoContext, secs, at.timestamp_subsec_nanos()))
}

fn bad(index: usize, field: &str, message: &str) -> RepoError {
    RepoError::invalid(format!("orders[{index}].{field}"), message)
}

fn overflow(index: usize) -> RepoError {
    bad(index, "lines", "amounts overflow")
}

/// Tax of a taxable amount: rounded half away from zero.
fn tax_of(taxable_minor: i64, rate_bp: u32, currency: Currency, index: usize) -> RepoResult<i64> {
    tax(Money::new(taxable_minor, currency), rate_bp).map(|m| m.amount_minor).map_err(|_| overflow(index))
}

impl OrderImporter {
    /// An importer over `db`.
    pub fn new(db: Database) -> Self {
        Self { db }
    }

    /// The database this importer works on, to begin the units it writes in.
    pub fn database(&self) -> &Database {
        &self.db
    }

    /// Imports `orders` in the caller's unit of work, which should be ended by the outcome: nothing is written
    /// when any fails.
    ///
    /// # Errors
    /// [`RepoError::InvalidQuery`] naming the first bad order (no lines, bad quantity or period, mixed
    /// currencies, an issued invoice without an issue time); [`RepoError::Conflict`] for an unknown customer or
    /// product; [`RepoError::Database`] when a statement fails.
    pub async fn import(&self, uow: &UnitOfWork, orders: Vec<ImportedOrder>) -> RepoResult<Vec<ImportedIds>> {
        let (mut rows, mut ids, numbering) = build_rows(orders)?;
        let products: BTreeSet<Uuid> = rows.usage.iter().map(|l| l.product_id).collect();
        let txn = uow.conn();
        // The usage marks of a product change under its usage lock, taken before anything that refers to it.
        usage::lock_series(txn, self.db.backend(), &products).await?;
        insert_chunked(txn, std::mem::take(&mut rows.orders)).await?;
        for (order_id, status) in std::mem::take(&mut rows.counted) {
            uow.count(counters::orders_in(status), order_id, 1);
        }
        insert_chunked(txn, std::mem::take(&mut rows.lines)).await?;
        insert_chunked(txn, std::mem::take(&mut rows.events)).await?;
        usage::record(txn, self.db.backend(), &rows.usage, 1).await?;
        // The counters come last, so that their row locks are held only while the invoices are written.
        // Years go in ascending order, the same lock order for every batch.
        for (year, members) in &numbering {
            let count = members.len();
            let last = advance_invoice_counter(txn, *year, i64::try_from(count).unwrap_or(i64::MAX)).await?;
            let first = last - i64::try_from(count).unwrap_or(i64::MAX) + 1;
            for (offset, invoice_index) in members.iter().enumerate() {
                let seq = first + i64::try_from(offset).unwrap_or(i64::MAX);
                let number = format!("INV-{year}-{seq:06}");
                let model = &mut rows.invoices[*invoice_index];
                model.number = ActiveValue::Set(Some(number.clone()));
                model.year = ActiveValue::Set(Some(*year));
                model.seq = ActiveValue::Set(Some(seq));
                ids[rows.invoice_owner[*invoice_index]].invoice_number = Some(number);
            }
        }
        insert_chunked(txn, std::mem::take(&mut rows.invoices)).await?;
        insert_chunked(txn, std::mem::take(&mut rows.invoice_lines)).await?;
        Ok(ids)
    }

    /// Every product with its prices and capacity (units plus bulk stock), by id. For seeding.
    ///
    /// # Errors
    /// [`RepoError::Database`] when the query fails.
    pub async fn products(&self) -> RepoResult<Vec<ImportProduct>> {
        let conn = self.db.connection();
        let models = product::Entity::find().order_by_asc(product::Column::Id).all(conn).await?;
        let capacities: HashMap<Uuid, i64> = product::Entity::find()
            .select_only()
            .column(product::Column::Id)
            .column_as(capacity(&Expr::col((product::Entity, product::Column::Id))), "capacity")
            .into_tuple()
            .all(conn)
            .await?
            .into_iter()
            .collect();
        models
            .iter()
            .map(|p| {
                let terms = stored::product_terms(p)?;
                Ok(ImportProduct { id: p.id, terms, capacity: capacities.get(&p.id).copied().unwrap_or(0) })
            })
            .collect()
    }

    /// Whether any order exists.
    ///
    /// # Errors
    /// [`RepoError::Database`] when the query fails.
    pub async fn has_orders(&self) -> RepoResult<bool> {
        let conn = self.db.connection();
        let sql = "SELECT COUNT(*) AS n FROM (SELECT 1 FROM rental_orders LIMIT 1) t";
        let row = conn.query_one_raw(Statement::from_string(conn.get_database_backend(), sql)).await?;
        Ok(row.map(|r| r.try_get::<i64>("", "n")).transpose()?.unwrap_or(0) > 0)
    }

    /// Up to `limit` ids of users with the customer role, by id. For seeding.
    ///
    /// # Errors
    /// [`RepoError::Database`] when the query fails.
    pub async fn customer_ids(&self, limit: u64) -> RepoResult<Vec<Uuid>> {
        let conn = self.db.connection();
        let sql = format!("SELECT user_id FROM user_roles WHERE role = 'customer' ORDER BY user_id LIMIT {limit}");
        let rows = conn.query_all_raw(Statement::from_string(conn.get_database_backend(), sql)).await?;
        rows.into_iter().map(|row| row.try_get("", "user_id").map_err(RepoError::from)).collect()
    }
}

/// Invoice indexes of the batch to number, by year, in order of issue.
type Numbering = BTreeMap<i32, Vec<usize>>;

fn build_rows(orders: Vec<ImportedOrder>) -> RepoResult<(Rows, Vec<ImportedIds>, Numbering)> {
    let mut rows = Rows::default();
    let mut ids = Vec::with_capacity(orders.len());
    let mut to_number: BTreeMap<i32, Vec<(DateTime<Utc>, usize)>> = BTreeMap::new();
    for (index, order) in orders.into_iter().enumerate() {
        let ImportedOrder {
            customer_id,
            status,
            currency,
            tax_rate_bp,
            created_at,
            picked_up_at,
            returned_at,
            notes,
            lines,
            invoice,
        } = order;
        if lines.is_empty() {
            return Err(bad(index, "lines", "an order needs at least one line"));
        }
        if tax_rate_bp > 10_000 {
            return Err(bad(index, "tax_rate_bp", "must be at most 10000"));
        }
        let order_id = id_at(created_at);
        rows.counted.push((order_id, status));
        // As in the live flow: set when reserved, kept through pickup and return (hold_until bounds it),
        // cleared when cancelled; quotes hold nothing.
        let holds_stock = status.is_rented();
        let mut priced_lines = Vec::with_capacity(lines.len());
        let mut starts_at = lines[0].starts_at;
        let mut ends_at = lines[0].ends_at;
        let mut invoice_lines = Vec::with_capacity(lines.len());
        for line in lines {
            if line.quantity < 1 {
                return Err(bad(index, "lines.quantity", "must be at least 1"));
            }
            if line.ends_at <= line.starts_at {
                return Err(bad(index, "lines.ends_at", "must be after starts_at"));
            }
            let terms = line.terms;
            if !(0..=10_080).contains(&terms.buffer_minutes) {
                return Err(bad(index, "lines.buffer_minutes", "must be between 0 and 10080"));
            }
            if terms.currency() != currency
                || [terms.deposit_per_unit, terms.late_fee_per_day].iter().any(|m| m.currency != currency)
            {
                return Err(bad(index, "lines.terms", "must be in the order's currency"));
            }
            let days = started_days(line.ends_at - line.starts_at);
            let quantity = i64::from(line.quantity);
            let priced = terms.price(days, quantity).map_err(|_| overflow(index))?;
            let (price, line_total) = (priced.cover, priced.total.amount_minor);
            priced_lines.push(priced);
            starts_at = starts_at.min(line.starts_at);
            ends_at = ends_at.max(line.ends_at);
            let narrow = |v: i64| i32::try_from(v).map_err(|_| overflow(index));
            rows.lines.push(order_line::ActiveModel {
                id: ActiveValue::Set(id_at(created_at)),
                order_id: ActiveValue::Set(order_id),
                product_id: ActiveValue::Set(line.product_id),
                quantity: ActiveValue::Set(line.quantity),
                starts_at: ActiveValue::Set(line.starts_at),
                ends_at: ActiveValue::Set(line.ends_at),
                hold_until: ActiveValue::Set(line.ends_at + chrono::Duration::minutes(i64::from(terms.buffer_minutes))),
                holds_stock: ActiveValue::Set(holds_stock),
                currency: ActiveValue::Set(currency.as_str().to_owned()),
                price_per_day_minor: ActiveValue::Set(terms.rates.per_day.amount_minor),
                price_per_week_minor: ActiveValue::Set(terms.rates.per_week.map(|m| m.amount_minor)),
                price_per_month_minor: ActiveValue::Set(terms.rates.per_month.map(|m| m.amount_minor)),
                deposit_per_unit_minor: ActiveValue::Set(terms.deposit_per_unit.amount_minor),
                late_fee_per_day_minor: ActiveValue::Set(terms.late_fee_per_day.amount_minor),
                buffer_minutes: ActiveValue::Set(terms.buffer_minutes),
                charged_days: ActiveValue::Set(narrow(days)?),
                months: ActiveValue::Set(narrow(price.months)?),
                weeks: ActiveValue::Set(narrow(price.weeks)?),
                days: ActiveValue::Set(narrow(price.days)?),
                unit_price_minor: ActiveValue::Set(price.total.amount_minor),
                line_total_minor: ActiveValue::Set(line_total),
                // Recorded below, in this transaction.
                usage_pending: ActiveValue::Set(0),
                order_holding: ActiveValue::Set(counters::holding(status)),
            });
            if status.is_rented() {
                rows.usage.push(UsageLine {
                    product_id: line.product_id,
                    currency: currency.as_str().to_owned(),
                    starts_at: line.starts_at,
                    ends_at: line.ends_at,
                    quantity,
                    revenue_minor: line_total,
                });
            }
            invoice_lines.push((
                "rental",
                format!("Rental of {} unit(s) for {days} day(s)", line.quantity),
                line.quantity,
                price.total.amount_minor,
                line_total,
                true,
            ));
        }
        let totals = OrderTotals::of(currency, &priced_lines, tax_rate_bp).map_err(|_| overflow(index))?;
        let (subtotal, tax, total, deposit) = (
            totals.subtotal.amount_minor,
            totals.tax.amount_minor,
            totals.total.amount_minor,
            totals.deposit.amount_minor,
        );
        let updated_at =
            [Some(created_at), picked_up_at, returned_at].into_iter().flatten().max().unwrap_or(created_at);
        rows.orders.push(rental_order::ActiveModel {
            id: ActiveValue::Set(order_id),
            customer_id: ActiveValue::Set(customer_id),
            status: ActiveValue::Set(status.as_str().to_owned()),
            currency: ActiveValue::Set(currency.as_str().to_owned()),
            subtotal_minor: ActiveValue::Set(subtotal),
            tax_rate_bp: ActiveValue::Set(i32::try_from(tax_rate_bp).unwrap_or(10_000)),
            tax_minor: ActiveValue::Set(tax),
            total_minor: ActiveValue::Set(total),
            deposit_minor: ActiveValue::Set(deposit),
            starts_at: ActiveValue::Set(starts_at),
            ends_at: ActiveValue::Set(ends_at),
            notes: ActiveValue::Set(notes),
            created_by: ActiveValue::Set(None),
            created_at: ActiveValue::Set(created_at),
            updated_at: ActiveValue::Set(updated_at),
            picked_up_at: ActiveValue::Set(picked_up_at),
            returned_at: ActiveValue::Set(returned_at),
        });
        rows.events.push(order_event::ActiveModel {
            id: ActiveValue::Set(id_at(created_at)),
            order_id: ActiveValue::Set(order_id),
            actor_id: ActiveValue::Set(None),
            from_status: ActiveValue::Set(None),
            to_status: ActiveValue::Set(status.as_str().to_owned()),
            note: ActiveValue::Set(Some("imported".to_owned())),
            created_at: ActiveValue::Set(created_at),
        });

        let mut ids_row = ImportedIds {
            order_id,
            invoice_id: None,
            invoice_number: None,
            order_total_minor: total,
            invoice_total_minor: None,
        };
        if let Some(inv) = invoice {
            let issued_at = match (inv.status, inv.issued_at) {
                (InvoiceStatus::Draft, None) => None,
                (InvoiceStatus::Draft, Some(_)) => {
                    return Err(bad(index, "invoice.issued_at", "a draft is not issued"));
                }
                (_, None) => return Err(bad(index, "invoice.issued_at", "an issued invoice needs its issue time")),
                (_, Some(at)) => Some(at),
            };
            for charge in inv.charges {
                let amount =
                    charge.unit_amount_minor.checked_mul(i64::from(charge.quantity)).ok_or_else(|| overflow(index))?;
                invoice_lines.push((
                    charge.kind.as_str(),
                    charge.description,
                    charge.quantity,
                    charge.unit_amount_minor,
                    amount,
                    charge.taxable,
                ));
            }
            let mut inv_subtotal: i64 = 0;
            let mut taxable: i64 = 0;
            for (_, _, _, _, amount, is_taxable) in &invoice_lines {
                inv_subtotal = inv_subtotal.checked_add(*amount).ok_or_else(|| overflow(index))?;
                if *is_taxable {
                    taxable = taxable.checked_add(*amount).ok_or_else(|| overflow(index))?;
                }
            }
            if inv_subtotal < 0 {
                return Err(bad(index, "invoice.charges", "the invoice total must not be negative"));
            }
            let inv_tax = tax_of(taxable, tax_rate_bp, currency, index)?;
            let inv_total = inv_subtotal.checked_add(inv_tax).ok_or_else(|| overflow(index))?;
            let stamp = issued_at.unwrap_or(created_at);
            let invoice_id = id_at(stamp);
            let paid = if inv.status == InvoiceStatus::Paid { inv_total } else { 0 };
            if let Some(at) = issued_at {
                to_number.entry(at.year()).or_default().push((at, rows.invoices.len()));
            }
            rows.invoice_owner.push(index);
            rows.invoices.push(invoice::ActiveModel {
                id: ActiveValue::Set(invoice_id),
                order_id: ActiveValue::Set(order_id),
                customer_id: ActiveValue::Set(customer_id),
                number: ActiveValue::Set(None),
                year: ActiveValue::Set(None),
                seq: ActiveValue::Set(None),
                status: ActiveValue::Set(inv.status.as_str().to_owned()),
                currency: ActiveValue::Set(currency.as_str().to_owned()),
                subtotal_minor: ActiveValue::Set(inv_subtotal),
                tax_rate_bp: ActiveValue::Set(i32::try_from(tax_rate_bp).unwrap_or(10_000)),
                tax_minor: ActiveValue::Set(inv_tax),
                total_minor: ActiveValue::Set(inv_total),
                amount_paid_minor: ActiveValue::Set(paid),
                issued_at: ActiveValue::Set(issued_at),
                issued_on: ActiveValue::Set(issued_at.map(|at| at.date_naive())),
                created_at: ActiveValue::Set(stamp),
                updated_at: ActiveValue::Set(stamp),
            });
            for (kind, description, quantity, unit, amount, is_taxable) in invoice_lines {
                rows.invoice_lines.push(invoice_line::ActiveModel {
                    id: ActiveValue::Set(id_at(stamp)),
                    invoice_id: ActiveValue::Set(invoice_id),
                    kind: ActiveValue::Set(kind.to_owned()),
                    description: ActiveValue::Set(description),
                    quantity: ActiveValue::Set(quantity),
                    unit_amount_minor: ActiveValue::Set(unit),
                    amount_minor: ActiveValue::Set(amount),
                    taxable: ActiveValue::Set(is_taxable),
                    created_at: ActiveValue::Set(stamp),
                });
            }
            ids_row.invoice_id = Some(invoice_id);
            ids_row.invoice_total_minor = Some(inv_total);
        }
        ids.push(ids_row);
    }
    let numbering = to_number
        .into_iter()
        .map(|(year, mut members)| {
            members.sort_by_key(|(at, i)| (*at, *i));
            (year, members.into_iter().map(|(_, i)| i).collect())
        })
        .collect();
    Ok((rows, ids, numbering))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn imported_ids_carry_their_historical_time() {
        let at = DateTime::parse_from_rfc3339("2025-03-01T10:00:00Z").unwrap().with_timezone(&Utc);
        let later = DateTime::parse_from_rfc3339("2025-03-02T10:00:00Z").unwrap().with_timezone(&Utc);
        assert!(id_at(at) < id_at(later));
        assert_ne!(id_at(at), id_at(at));
    }
}
