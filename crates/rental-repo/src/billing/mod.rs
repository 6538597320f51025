//! Billing: invoices (created with their order, issued when it is reserved, voided when it is cancelled,
//! charged late fees and damage at return), gap-free yearly invoice numbers given after the commit, and
//! payments.
//!
//! Every write takes the caller's [`UnitOfWork`], so an invoice changes in the same transaction as its order.

mod numbering;
mod store;

pub(crate) use numbering::advance_invoice_counter;
pub use store::BillingStore;

use chrono::{DateTime, Utc};
use rental_domain::billing::Charge;
use rental_domain::{Currency, InvoiceStatus, Money, PaymentMethod};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use uuid::Uuid;

use crate::entity::{invoice, invoice_line, payment};
use crate::query::{Direction, FilterKind, FilterOp, ListColumns, ListQuery, ListSpec, Listing, PageSizes, SortKind};
use crate::{Backend, Database, RepoError, RepoResult, UnitOfWork, stored};

/// The invoice of a new order.
#[derive(Debug, Clone)]
pub struct NewInvoiceRecord {
    /// The order billed.
    pub order_id: Uuid,
    /// The customer billed.
    pub customer_id: Uuid,
    /// Sum of the lines, in the currency of every amount.
    pub subtotal: Money,
    /// Tax rate in basis points.
    pub tax_rate_bp: i32,
    /// Tax on the taxable lines.
    pub tax: Money,
    /// Subtotal plus tax.
    pub total: Money,
    /// Issue it now (a reservation's) instead of keeping a draft (a quote's).
    pub issue: bool,
    /// Its lines.
    pub lines: Vec<Charge>,
}

/// A payment to record.
#[derive(Debug, Clone)]
pub struct NewPaymentRecord {
    /// The invoice paid.
    pub invoice_id: Uuid,
    /// Amount and currency.
    pub amount: Money,
    /// How it was paid.
    pub method: PaymentMethod,
    /// External reference.
    pub reference: Option<String>,
    /// Who recorded it.
    pub recorded_by: Option<Uuid>,
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
    /// Where it is in its life.
    pub status: InvoiceStatus,
    /// Sum of the lines, in the invoice's currency (as every amount).
    pub subtotal: Money,
    /// Tax rate in basis points.
    pub tax_rate_bp: i32,
    /// Tax on the taxable lines.
    pub tax: Money,
    /// Subtotal plus tax.
    pub total: Money,
    /// Paid so far.
    pub amount_paid: Money,
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
    pub unit_amount: Money,
    /// Line amount.
    pub amount: Money,
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
    /// Amount and currency.
    pub amount: Money,
    /// How it was paid.
    pub method: PaymentMethod,
    /// External reference.
    pub reference: Option<String>,
    /// When.
    pub created_at: DateTime<Utc>,
}

static INVOICE_LIST_SPEC: ListSpec = ListSpec {
    resource: "invoices",
    filters: &[("status", FilterKind::OneOf(&["draft", "open", "paid", "void"])), ("customer", FilterKind::Uuid)],
    sorts: &[("created_at", SortKind::DateTime)],
    default_sort: ("created_at", Direction::Desc),
    searchable: false,
    page_sizes: PageSizes::DEFAULT,
};

/// The whitelist of the invoice list: filters `status` and `customer`; sort `created_at` (newest first).
pub fn invoice_list_spec() -> &'static ListSpec {
    &INVOICE_LIST_SPEC
}

/// Invoices, their numbers and payments. Cheap to clone.
#[derive(Debug, Clone)]
pub struct BillingRepo {
    db: Database,
    numbering: std::sync::Arc<numbering::Numbering>,
}

impl BillingRepo {
    /// A repository over `db`.
    pub fn new(db: Database) -> Self {
        Self { db, numbering: std::sync::Arc::default() }
    }

    /// One page of invoices matching `query`, without their lines.
    ///
    /// # Errors
    /// [`RepoError::InvalidQuery`] for a cursor of another list; [`RepoError::Database`].
    pub async fn list_invoices(&self, query: &ListQuery) -> RepoResult<Listing<InvoiceRecord>> {
        static INVOICE_LIST: ListColumns<invoice::Entity> = ListColumns {
            spec: &INVOICE_LIST_SPEC,
            key: invoice::Column::Id,
            sorts: &[("created_at", invoice::Column::CreatedAt)],
            filters: &[
                ("status", invoice::Column::Status, FilterOp::Eq),
                ("customer", invoice::Column::CustomerId, FilterOp::Eq),
            ],
            search: &[],
        };
        INVOICE_LIST.fetch(self.db.connection(), query, invoice::Entity::find()).await?.try_map(invoice_record)
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
        let mut record = invoice_record(model)?;
        record.lines = lines.into_iter().map(|l| invoice_line_record(l, record.total.currency)).collect();
        Ok(Some((record, payments.into_iter().map(payment_record).collect::<RepoResult<_>>()?)))
    }

    /// Writes the invoice of a new order in `uow`: a draft (a quote's), or issued at `at` when `new.issue`
    /// (a reservation's; numbered after the commit by [`BillingRepo::number_issued_invoices`]).
    ///
    /// # Errors
    /// [`RepoError::Database`] when a statement fails.
    pub async fn create_invoice(
        &self,
        uow: &UnitOfWork,
        new: &NewInvoiceRecord,
        at: DateTime<Utc>,
    ) -> RepoResult<InvoiceRecord> {
        let txn = uow.conn();
        let draft = invoice::Model {
            id: Uuid::now_v7(),
            order_id: new.order_id,
            customer_id: new.customer_id,
            number: None,
            year: None,
            seq: None,
            status: InvoiceStatus::Draft.as_str().to_owned(),
            currency: new.total.currency.as_str().to_owned(),
            subtotal_minor: new.subtotal.amount_minor,
            tax_rate_bp: new.tax_rate_bp,
            tax_minor: new.tax.amount_minor,
            total_minor: new.total.amount_minor,
            amount_paid_minor: 0,
            issued_at: None,
            issued_on: None,
            created_at: at,
            updated_at: at,
        };
        let model = if new.issue { issue(draft, at) } else { draft };
        invoice::Entity::insert(invoice::ActiveModel::from(model.clone())).exec_without_returning(txn).await?;
        insert_charges(txn, model.id, &new.lines, at).await?;
        invoice_record(model)
    }

    /// Issues the draft invoice of order `order_id` in `uow` (the quote was confirmed): it becomes `open` at `at`
    /// and is numbered after the commit by [`BillingRepo::number_issued_invoices`].
    ///
    /// # Errors
    /// [`RepoError::NotFound`] when the order has no invoice.
    pub async fn issue_invoice(&self, uow: &UnitOfWork, order_id: Uuid, at: DateTime<Utc>) -> RepoResult<()> {
        let txn = uow.conn();
        let draft = invoice::Entity::find()
            .filter(invoice::Column::OrderId.eq(order_id))
            .one(txn)
            .await?
            .ok_or(RepoError::NotFound)?;
        invoice::ActiveModel::from(issue(draft, at)).reset_all().update(txn).await?;
        Ok(())
    }

    /// Voids the invoice of order `order_id` in `uow` (the order was cancelled), keeping any number it has.
    ///
    /// # Errors
    /// [`RepoError::Database`] when the statement fails.
    pub async fn void_invoice(&self, uow: &UnitOfWork, order_id: Uuid, at: DateTime<Utc>) -> RepoResult<()> {
        invoice::Entity::update_many()
            .col_expr(invoice::Column::Status, Expr::val(InvoiceStatus::Void.as_str()))
            .col_expr(invoice::Column::UpdatedAt, Expr::val(at))
            .filter(invoice::Column::OrderId.eq(order_id))
            .exec(uow.conn())
            .await?;
        Ok(())
    }

    /// Adds `charges` (late fees, damage) to the invoice of order `order_id` in `uow` and recomputes its tax
    /// and totals; a paid invoice that now has more due reopens ([`InvoiceStatus::after_charges`]).
    ///
    /// # Errors
    /// [`RepoError::NotFound`] when the order has no invoice; [`RepoError::Domain`] when an amount overflows
    /// or a charge is in another currency.
    pub async fn add_charges(
        &self,
        uow: &UnitOfWork,
        order_id: Uuid,
        charges: &[Charge],
        at: DateTime<Utc>,
    ) -> RepoResult<()> {
        if charges.is_empty() {
            return Ok(());
        }
        let txn = uow.conn();
        let inv = invoice::Entity::find()
            .filter(invoice::Column::OrderId.eq(order_id))
            .one(txn)
            .await?
            .ok_or(RepoError::NotFound)?;
        let currency = stored::currency("invoices", &inv.currency)?;
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
        let mut subtotal = Money::new(inv.subtotal_minor, currency);
        let mut taxable = Money::new(taxable_before, currency);
        for charge in charges {
            subtotal = subtotal.checked_add(charge.amount).map_err(RepoError::Domain)?;
            if charge.taxable {
                taxable = taxable.checked_add(charge.amount).map_err(RepoError::Domain)?;
            }
        }
        let tax = rental_domain::billing::tax(taxable, u32::try_from(inv.tax_rate_bp).unwrap_or(0))
            .map_err(RepoError::Domain)?;
        let total = subtotal.checked_add(tax).map_err(RepoError::Domain)?;
        let status = parse_invoice_status(&inv.status)?.after_charges(inv.amount_paid_minor, total.amount_minor);
        insert_charges(txn, inv.id, charges, at).await?;
        invoice::Entity::update_many()
            .col_expr(invoice::Column::SubtotalMinor, Expr::val(subtotal.amount_minor))
            .col_expr(invoice::Column::TaxMinor, Expr::val(tax.amount_minor))
            .col_expr(invoice::Column::TotalMinor, Expr::val(total.amount_minor))
            .col_expr(invoice::Column::Status, Expr::val(status.as_str()))
            .col_expr(invoice::Column::UpdatedAt, Expr::val(at))
            .filter(invoice::Column::Id.eq(inv.id))
            .exec(txn)
            .await?;
        Ok(())
    }

    /// Records a payment of an invoice in `uow`, under the invoice's row lock (PostgreSQL; SQLite holds the
    /// write lock): accepted by [`InvoiceStatus::accept_payment`], the invoice becomes `paid` once fully paid.
    ///
    /// # Errors
    /// [`RepoError::Domain`] when the invoice is not open, the currency differs or the amount exceeds what is
    /// due; [`RepoError::NotFound`].
    pub async fn record_payment(
        &self,
        uow: &UnitOfWork,
        new: NewPaymentRecord,
        at: DateTime<Utc>,
    ) -> RepoResult<PaymentRecord> {
        let txn = uow.conn();
        let mut select = invoice::Entity::find_by_id(new.invoice_id);
        if uow.backend() == Backend::Postgres {
            select = select.lock_exclusive();
        }
        let inv = select.one(txn).await?.ok_or(RepoError::NotFound)?;
        let status = parse_invoice_status(&inv.status)?;
        let invoice_currency = stored::currency("invoices", &inv.currency)?;
        let due = Money::new(inv.total_minor - inv.amount_paid_minor, invoice_currency);
        status.accept_payment(new.amount, due).map_err(RepoError::Domain)?;
        let paid = inv.amount_paid_minor + new.amount.amount_minor;
        invoice::Entity::update_many()
            .col_expr(invoice::Column::AmountPaidMinor, Expr::val(paid))
            .col_expr(invoice::Column::Status, Expr::val(status.after_payment(paid, inv.total_minor).as_str()))
            .col_expr(invoice::Column::UpdatedAt, Expr::val(at))
            .filter(invoice::Column::Id.eq(new.invoice_id))
            .exec(txn)
            .await?;
        let model = payment::Model {
            id: Uuid::now_v7(),
            invoice_id: new.invoice_id,
            order_id: inv.order_id,
            amount_minor: new.amount.amount_minor,
            currency: new.amount.currency.as_str().to_owned(),
            method: new.method.as_str().to_owned(),
            reference: new.reference,
            recorded_by: new.recorded_by,
            created_at: at,
        };
        payment::Entity::insert(payment::ActiveModel::from(model.clone())).exec_without_returning(txn).await?;
        payment_record(model)
    }
}

/// Opens a draft: issued at `at`, numbered right after the commit by [`BillingRepo::number_issued_invoices`].
fn issue(mut draft: invoice::Model, at: DateTime<Utc>) -> invoice::Model {
    draft.status = InvoiceStatus::Open.as_str().to_owned();
    draft.issued_at = Some(at);
    draft.issued_on = Some(at.date_naive());
    draft.updated_at = at;
    draft
}

/// Writes `charges` as lines of invoice `invoice_id`.
async fn insert_charges<C: ConnectionTrait>(
    conn: &C,
    invoice_id: Uuid,
    charges: &[Charge],
    at: DateTime<Utc>,
) -> RepoResult<()> {
    if charges.is_empty() {
        return Ok(());
    }
    let rows = charges.iter().map(|c| {
        invoice_line::ActiveModel::from(invoice_line::Model {
            id: Uuid::now_v7(),
            invoice_id,
            kind: c.kind.as_str().to_owned(),
            description: c.description.clone(),
            quantity: c.quantity,
            unit_amount_minor: c.unit_amount.amount_minor,
            amount_minor: c.amount.amount_minor,
            taxable: c.taxable,
            created_at: at,
        })
    });
    invoice_line::Entity::insert_many(rows).exec_without_returning(conn).await?;
    Ok(())
}

fn parse_invoice_status(s: &str) -> RepoResult<InvoiceStatus> {
    s.parse().map_err(RepoError::Domain)
}

pub(crate) fn invoice_record(m: invoice::Model) -> RepoResult<InvoiceRecord> {
    let currency = stored::currency("invoices", &m.currency)?;
    let money = |amount: i64| Money::new(amount, currency);
    Ok(InvoiceRecord {
        id: m.id,
        order_id: m.order_id,
        customer_id: m.customer_id,
        number: m.number,
        status: parse_invoice_status(&m.status)?,
        subtotal: money(m.subtotal_minor),
        tax_rate_bp: m.tax_rate_bp,
        tax: money(m.tax_minor),
        total: money(m.total_minor),
        amount_paid: money(m.amount_paid_minor),
        issued_at: m.issued_at,
        created_at: m.created_at,
        updated_at: m.updated_at,
        lines: Vec::new(),
    })
}

/// A line of an invoice in `currency` (the invoice's: lines store no currency of their own).
pub(crate) fn invoice_line_record(l: invoice_line::Model, currency: Currency) -> InvoiceLineRecord {
    InvoiceLineRecord {
        id: l.id,
        kind: l.kind,
        description: l.description,
        quantity: l.quantity,
        unit_amount: Money::new(l.unit_amount_minor, currency),
        amount: Money::new(l.amount_minor, currency),
        taxable: l.taxable,
    }
}

pub(crate) fn payment_record(p: payment::Model) -> RepoResult<PaymentRecord> {
    Ok(PaymentRecord {
        id: p.id,
        invoice_id: p.invoice_id,
        amount: Money::new(p.amount_minor, stored::currency("payments", &p.currency)?),
        method: p.method.parse().map_err(RepoError::Domain)?,
        reference: p.reference,
        created_at: p.created_at,
    })
}
