//! Billing: invoices and payments. Customers see their own invoices; staff see all and record payments
//! received at the desk.

use chrono::{DateTime, Utc};
use rental_domain::catalogue::description;
use std::sync::Arc;

use rental_domain::{Collector, Currency, DomainError, Money, PaymentMethod};
use rental_repo::query::{FilterValue, Listing};
use rental_repo::{
    BillingRepo, BillingStore, Database, InvoiceRecord, NewPaymentRecord, PaymentRecord, invoice_list_spec,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::orders::prefixed_with;
use crate::{Clock, Idempotency, IdempotencyClaim, IdempotencyConfig, Principal, ServiceError, ServiceResult};

/// An invoice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
    pub(crate) fn of(r: InvoiceRecord, with_lines: bool) -> Self {
        let lines = with_lines.then(|| {
            r.lines
                .into_iter()
                .map(|l| InvoiceLineView {
                    id: l.id,
                    kind: l.kind,
                    description: l.description,
                    quantity: l.quantity,
                    unit_amount_minor: l.unit_amount.amount_minor,
                    amount_minor: l.amount.amount_minor,
                    taxable: l.taxable,
                })
                .collect()
        });
        Self {
            id: r.id,
            order_id: r.order_id,
            customer_id: r.customer_id,
            number: r.number,
            status: r.status.as_str().to_owned(),
            currency: r.total.currency.to_string(),
            subtotal_minor: r.subtotal.amount_minor,
            tax_rate_bp: r.tax_rate_bp,
            tax_minor: r.tax.amount_minor,
            total_minor: r.total.amount_minor,
            amount_paid_minor: r.amount_paid.amount_minor,
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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
            amount_minor: p.amount.amount_minor,
            currency: p.amount.currency.to_string(),
            method: p.method.as_str().to_owned(),
            reference: p.reference,
            created_at: p.created_at,
        }
    }
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

/// Invoices and payments, over any [`BillingStore`] (the sea-orm repository by default). Cheap to clone.
#[derive(Debug)]
pub struct BillingService<B = BillingRepo> {
    db: Database,
    repo: Arc<B>,
    clock: Arc<dyn Clock>,
    idempotency: Idempotency,
    /// The idempotency key the next write claims (see [`BillingService::idempotent`]).
    claim: Option<Arc<IdempotencyClaim>>,
}

impl<B> Clone for BillingService<B> {
    fn clone(&self) -> Self {
        Self {
            db: self.db.clone(),
            repo: self.repo.clone(),
            clock: self.clock.clone(),
            idempotency: self.idempotency.clone(),
            claim: self.claim.clone(),
        }
    }
}

impl<B: BillingStore> BillingService<B> {
    /// The service over `repo`, writing in units of work of `db`, judging time by `clock`.
    pub fn new(db: Database, repo: Arc<B>, clock: Arc<dyn Clock>) -> Self {
        let idempotency = Idempotency::new(db.clone(), clock.clone(), &IdempotencyConfig::default());
        Self { db, repo, clock, idempotency, claim: None }
    }

    /// The same service keeping its idempotency records with `idempotency` (the services share one).
    #[must_use]
    pub fn with_idempotency(mut self, idempotency: Idempotency) -> Self {
        self.idempotency = idempotency;
        self
    }

    /// The same service for one idempotent request: its write claims `claim`'s key in the write's unit of work
    /// and stores its answer there (see [`crate::idempotency`]). `None`: an ordinary request.
    #[must_use]
    pub fn idempotent(&self, claim: Option<IdempotencyClaim>) -> Self {
        Self { claim: claim.map(Arc::new), ..self.clone() }
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
        let method = errors.take(PaymentMethod::parse_desk(&new.method));
        let reference = new.reference.as_deref().and_then(|r| errors.take(description("reference", r))).flatten();
        if reference.as_ref().is_some_and(|r| r.chars().count() > 200) {
            errors.take::<()>(Err(DomainError::field("reference", "must be at most 200 characters")));
        }
        errors.finish()?;
        let (Some(currency), Some(method)) = (currency, method) else {
            return Err(ServiceError::Internal("validated payment fields missing".into()));
        };
        let payment = NewPaymentRecord {
            invoice_id,
            amount: Money::new(new.amount_minor, currency),
            method,
            reference,
            recorded_by: Some(principal.user_id.as_uuid()),
        };
        let claim = self.claim.as_deref();
        let uow = self.idempotency.begin(&self.db, claim).await?;
        let result = self.repo.record_payment(&uow, payment, self.clock.now()).await.map(PaymentView::from);
        let result = self.idempotency.completed(&uow, claim, result).await;
        match uow.finish(result).await {
            Ok(p) => Ok(p),
            Err(rental_repo::RepoError::NotFound) => Err(ServiceError::NotFound("invoice")),
            Err(e) => Err(e.into()),
        }
    }
}
