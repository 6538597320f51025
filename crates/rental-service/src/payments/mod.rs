//! Stripe payments of invoices: a checkout session or a payment intent for an order's open invoice, the list
//! and detail of payments, refunds (staff), the Stripe customer of the current user, the webhook's events
//! ([`webhook`]) and the reconciliation with Stripe ([`reconcile`]).
//!
//! Every mutating call to Stripe goes through the [`PaymentGateway`] port with an idempotency key derived from
//! our own record (`payment:<id>:checkout`, `payment:<id>:intent`, `payment:<id>:refund:<n>`,
//! `user:<id>:customer`), so a retry never charges twice. Nothing is marked paid by a request: money arrives
//! through the webhook (or the reconciliation), which applies [`merge`]'s ordering rule.

pub mod deposit;
mod keyed;
pub mod merge;
pub mod reconcile;
pub mod webhook;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use rental_domain::{Currency, DomainError, InvoiceStatus, Money};
use rental_repo::query::{FilterValue, Listing};
use rental_repo::{
    Database, NewStripePayment, PaymentKey, PaymentRepo, PaymentStore, RefundRecord, RepoError, StripePaymentRecord,
    UnitOfWork, UserRepo, UserStore, payment_list_spec,
};
use serde::Serialize;
use uuid::Uuid;

use crate::{
    CheckoutRequest, Clock, CustomerRequest, Idempotency, IdempotencyClaim, PaymentGateway, PaymentRequest, PortError,
    Principal, ServiceError, ServiceResult,
};

/// How long a payment request with an `Idempotency-Key` holds the key across its call to Stripe by default
/// (see [`PaymentService::with_hold`]).
pub const DEFAULT_HOLD: std::time::Duration = std::time::Duration::from_secs(120);

pub use deposit::{DepositConfig, DepositHoldView, DepositRunReport, DepositView};
pub use merge::PaymentEvent;
pub use reconcile::{ReconcileReport, ReconciledDeposit, ReconciledPayment};
pub use webhook::{WebhookEvent, WebhookOutcome};

/// A Stripe payment of an invoice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StripePaymentView {
    /// Our id.
    pub id: Uuid,
    /// The invoice paid.
    pub invoice_id: Uuid,
    /// Its order.
    pub order_id: Uuid,
    /// The customer paying.
    pub customer_id: Uuid,
    /// `checkout` or `intent`.
    pub kind: String,
    /// `pending`, `failed`, `canceled` or `succeeded`.
    pub status: String,
    /// Amount asked for, minor units.
    pub amount_minor: i64,
    /// Currency.
    pub currency: String,
    /// Received, minor units.
    pub amount_paid_minor: i64,
    /// Refunded, minor units.
    pub amount_refunded_minor: i64,
    /// A dispute was opened.
    pub disputed: bool,
    /// Stripe's reason of a failure.
    pub failure_reason: Option<String>,
    /// Stripe's checkout session.
    pub checkout_session_id: Option<String>,
    /// Stripe's payment intent.
    pub payment_intent_id: Option<String>,
    /// Stripe's charge.
    pub charge_id: Option<String>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// The refunds asked for (detail only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refunds: Option<Vec<RefundView>>,
}

impl From<StripePaymentRecord> for StripePaymentView {
    fn from(r: StripePaymentRecord) -> Self {
        Self {
            id: r.id,
            invoice_id: r.invoice_id,
            order_id: r.order_id,
            customer_id: r.customer_id,
            kind: r.kind,
            status: r.status,
            amount_minor: r.amount.amount_minor,
            currency: r.amount.currency.to_string(),
            amount_paid_minor: r.facts.amount_paid_minor,
            amount_refunded_minor: r.facts.amount_refunded_minor,
            disputed: r.facts.disputed,
            failure_reason: r.facts.failure_reason,
            checkout_session_id: r.checkout_session_id,
            payment_intent_id: r.payment_intent_id,
            charge_id: r.charge_id,
            created_at: r.created_at,
            updated_at: r.updated_at,
            refunds: None,
        }
    }
}

/// A refund asked of Stripe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RefundView {
    /// Id.
    pub id: Uuid,
    /// 1, 2, … per payment.
    pub seq: i32,
    /// Amount, minor units.
    pub amount_minor: i64,
    /// `requested` (Stripe's answer not known yet), `succeeded` or `failed`.
    pub status: String,
    /// Stripe's refund.
    pub stripe_refund_id: Option<String>,
}

impl From<RefundRecord> for RefundView {
    fn from(r: RefundRecord) -> Self {
        Self {
            id: r.id,
            seq: r.seq,
            amount_minor: r.amount_minor,
            status: r.status,
            stripe_refund_id: r.stripe_refund_id,
        }
    }
}

/// A checkout session created for an invoice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CheckoutView {
    /// The payment.
    pub payment: StripePaymentView,
    /// Where to send the customer.
    pub url: Option<String>,
}

/// A payment intent created for an invoice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PaymentIntentView {
    /// The payment.
    pub payment: StripePaymentView,
    /// For Stripe.js's `confirmCardPayment`.
    pub client_secret: Option<String>,
}

/// The Stripe customer of a user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StripeCustomerView {
    /// Stripe's customer (`cus_…`).
    pub customer_id: String,
    /// Whether this call created it.
    pub created: bool,
}

/// Stripe payments, over any [`PaymentStore`] (the sea-orm [`PaymentRepo`] by default). Cheap to clone.
#[derive(Debug)]
pub struct PaymentService<P = PaymentRepo> {
    db: Database,
    repo: Arc<P>,
    users: Arc<UserRepo>,
    gateway: Option<Arc<dyn PaymentGateway>>,
    clock: Arc<dyn Clock>,
    /// The idempotency records, for the requests with an `Idempotency-Key`.
    idempotency: Option<Idempotency>,
    /// The idempotency key the next operation claims (see [`PaymentService::idempotent`]).
    claim: Option<Arc<IdempotencyClaim>>,
    /// How long a claim is held across the call to Stripe.
    hold: chrono::Duration,
    /// How deposits are placed (lead time, expiry warning).
    deposits: DepositConfig,
}

impl<P> Clone for PaymentService<P> {
    fn clone(&self) -> Self {
        Self {
            db: self.db.clone(),
            repo: self.repo.clone(),
            users: self.users.clone(),
            gateway: self.gateway.clone(),
            clock: self.clock.clone(),
            idempotency: self.idempotency.clone(),
            claim: self.claim.clone(),
            hold: self.hold,
            deposits: self.deposits.clone(),
        }
    }
}

pub(crate) fn gateway_error(err: PortError) -> ServiceError {
    match err {
        PortError::Timeout(_) => ServiceError::Timeout("the payment provider"),
        other => ServiceError::Upstream { service: "payments", source: Some(Box::new(other)) },
    }
}

fn invalid(field: &'static str, message: impl Into<String>) -> ServiceError {
    ServiceError::Invalid(DomainError::field(field, message.into()))
}

impl PaymentService {
    /// The service over `db`'s sea-orm payment repository, without a gateway until [`Self::with_gateway`].
    pub fn new(db: Database, clock: Arc<dyn Clock>) -> Self {
        Self::with_store(db.clone(), Arc::new(PaymentRepo::new(db)), clock)
    }
}

impl<P: PaymentStore> PaymentService<P> {
    /// The service over another implementation of the store; `db` gives the units of work it writes in (and
    /// the users, for a Stripe customer's name and e-mail). No gateway until [`Self::with_gateway`].
    pub fn with_store(db: Database, repo: Arc<P>, clock: Arc<dyn Clock>) -> Self {
        Self {
            repo,
            users: Arc::new(UserRepo::new(db.clone())),
            db,
            gateway: None,
            clock,
            idempotency: None,
            claim: None,
            deposits: DepositConfig::default(),
            hold: chrono::Duration::from_std(DEFAULT_HOLD).unwrap_or(chrono::Duration::seconds(120)),
        }
    }

    /// The service storing the answers of requests with an `Idempotency-Key` in `idempotency`.
    #[must_use]
    pub fn with_idempotency(mut self, idempotency: Idempotency) -> Self {
        self.idempotency = Some(idempotency);
        self
    }

    /// The same service placing deposits by `config`.
    #[must_use]
    pub fn with_deposit_config(mut self, config: DepositConfig) -> Self {
        self.deposits = config;
        self
    }

    /// The service holding a claimed key for `lease` across its call to Stripe ([`DEFAULT_HOLD`] by default):
    /// it must be longer than the call can take (the gateway's call bound), since a duplicate after it resumes
    /// the claim while the first may still be running (both then send Stripe the same key, and Stripe answers
    /// both with one object).
    #[must_use]
    pub fn with_hold(mut self, lease: std::time::Duration) -> Self {
        self.hold = chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::seconds(120));
        self
    }

    /// The same service for one request with an `Idempotency-Key`: its operation claims `claim`'s key and
    /// stores its answer on it (see [`keyed`]'s steps). `None`: an ordinary request.
    #[must_use]
    pub fn idempotent(&self, claim: Option<IdempotencyClaim>) -> Self {
        Self { claim: claim.map(Arc::new), ..self.clone() }
    }

    fn keys(&self) -> ServiceResult<&Idempotency> {
        self.idempotency.as_ref().ok_or_else(|| ServiceError::Internal("payments: no idempotency records".into()))
    }

    /// The service calling Stripe through `gateway`.
    #[must_use]
    pub fn with_gateway(mut self, gateway: Arc<dyn PaymentGateway>) -> Self {
        self.gateway = Some(gateway);
        self
    }

    /// Whether a gateway is set (payments are configured).
    pub fn has_gateway(&self) -> bool {
        self.gateway.is_some()
    }

    fn gateway(&self) -> ServiceResult<&dyn PaymentGateway> {
        self.gateway.as_deref().ok_or_else(|| gateway_error(PortError::NotConfigured))
    }

    /// The open invoice of an order the caller may pay, and what is due on it.
    async fn payable_invoice(
        &self,
        principal: &Principal,
        order_id: Uuid,
    ) -> ServiceResult<(rental_repo::InvoiceRecord, Money)> {
        let invoice = match self.repo.invoice_of_order(order_id).await? {
            Some(invoice) if principal.is_staff() || invoice.customer_id == principal.user_id.as_uuid() => invoice,
            _ => return Err(ServiceError::NotFound("order")),
        };
        if invoice.status != InvoiceStatus::Open {
            return Err(ServiceError::Conflict {
                message: format!("the order's invoice is {}; only an open invoice can be paid", invoice.status),
                index: None,
            });
        }
        let due = Money::new(invoice.total.amount_minor - invoice.amount_paid.amount_minor, invoice.total.currency);
        if due.amount_minor <= 0 {
            return Err(ServiceError::Conflict {
                message: "nothing is due on the order's invoice".into(),
                index: None,
            });
        }
        Ok((invoice, due))
    }

    async fn start(
        &self,
        invoice: &rental_repo::InvoiceRecord,
        kind: &'static str,
        amount: Money,
    ) -> ServiceResult<StripePaymentRecord> {
        self.db.write(async |uow| self.start_in(uow, invoice, kind, amount).await).await
    }

    /// Writes a new payment of `invoice` in `uow`.
    async fn start_in(
        &self,
        uow: &UnitOfWork,
        invoice: &rental_repo::InvoiceRecord,
        kind: &'static str,
        amount: Money,
    ) -> ServiceResult<StripePaymentRecord> {
        let customer = self.repo.stripe_customer(invoice.customer_id).await?;
        let new = NewStripePayment {
            invoice_id: invoice.id,
            order_id: invoice.order_id,
            customer_id: invoice.customer_id,
            kind,
            amount,
            stripe_customer_id: customer,
        };
        Ok(self.repo.create(uow, new, self.clock.now()).await?)
    }

    /// Marks a payment `failed` for `reason` in `uow`, unless it got further already.
    async fn mark_failed(&self, uow: &UnitOfWork, id: Uuid, reason: &str) -> Result<(), RepoError> {
        let Some(current) = self.repo.lock(uow, PaymentKey::Id(id)).await? else {
            return Ok(());
        };
        let mut facts = current.facts.clone();
        if merge::rank(&facts.status) < merge::rank("failed") {
            "failed".clone_into(&mut facts.status);
            facts.failure_reason = Some(reason.to_owned());
        }
        self.repo.store_facts(uow, &current, &facts, self.clock.now()).await
    }

    /// Notes Stripe's ids, or the failure to reach Stripe (the payment stays unpaid: `failed`).
    async fn settle_start(
        &self,
        payment: &StripePaymentRecord,
        outcome: Result<(Option<String>, Option<String>), PortError>,
    ) -> ServiceResult<StripePaymentRecord> {
        let now = self.clock.now();
        match outcome {
            Ok((session, intent)) => {
                self.db
                    .write(async |uow| {
                        self.repo.attach(uow, payment.id, session.as_deref(), intent.as_deref(), now).await
                    })
                    .await?;
                self.repo.get(payment.id).await?.ok_or(ServiceError::NotFound("payment"))
            }
            Err(err) => {
                let reason = err.to_string();
                self.db.write(async |uow| self.mark_failed(uow, payment.id, &reason).await).await?;
                Err(gateway_error(err))
            }
        }
    }

    /// A Stripe Checkout session for what is due on an order's open invoice.
    ///
    /// # Errors
    /// [`ServiceError::NotFound`] for an unknown order or another customer's; [`ServiceError::Conflict`] when
    /// its invoice is not open or nothing is due; [`ServiceError::Invalid`] for a bad URL;
    /// [`ServiceError::Upstream`] or [`ServiceError::Timeout`] when Stripe fails (the payment is then `failed`).
    pub async fn checkout_session(
        &self,
        principal: &Principal,
        order_id: Uuid,
        success_url: &str,
        cancel_url: &str,
    ) -> ServiceResult<CheckoutView> {
        for (field, url) in [("success_url", success_url), ("cancel_url", cancel_url)] {
            if !(url.starts_with("https://") || url.starts_with("http://")) || url.len() > 2048 {
                return Err(invalid(field, "must be an http(s) URL of at most 2048 characters"));
            }
        }
        if let Some(claim) = self.claim.as_deref() {
            return self.keyed_checkout(claim, principal, order_id, success_url, cancel_url).await;
        }
        let gateway = self.gateway()?;
        let (invoice, due) = self.payable_invoice(principal, order_id).await?;
        let payment = self.start(&invoice, "checkout", due).await?;
        let request = CheckoutRequest {
            amount: due,
            description: format!("Invoice {}", invoice.number.as_deref().unwrap_or("(unnumbered)")),
            customer: payment.stripe_customer_id.clone(),
            success_url: success_url.to_owned(),
            cancel_url: cancel_url.to_owned(),
            reference: format!("payment:{}", payment.id),
            idempotency_key: format!("payment:{}:checkout", payment.id),
        };
        let created = gateway.create_checkout(&request).await;
        let url = created.as_ref().ok().and_then(|c| c.url.clone());
        let payment = self.settle_start(&payment, created.map(|c| (Some(c.id), c.payment_intent))).await?;
        Ok(CheckoutView { payment: payment.into(), url })
    }

    /// A payment intent for an amount of an order's open invoice (all that is due by default), for a custom
    /// payment form.
    ///
    /// # Errors
    /// As [`Self::checkout_session`]; [`ServiceError::Invalid`] for an amount not above 0 or above what is due,
    /// or another currency than the invoice's.
    pub async fn payment_intent(
        &self,
        principal: &Principal,
        order_id: Uuid,
        amount_minor: Option<i64>,
        currency: Option<&str>,
    ) -> ServiceResult<PaymentIntentView> {
        let amount_of = |due: Money| {
            if let Some(currency) = currency {
                let currency =
                    Currency::parse(currency).map_err(|_| invalid("currency", "must be an ISO 4217 code"))?;
                if currency != due.currency {
                    return Err(invalid("currency", format!("must be the invoice's currency {}", due.currency)));
                }
            }
            let amount = amount_minor.unwrap_or(due.amount_minor);
            if amount <= 0 {
                return Err(invalid("amount_minor", "must be positive"));
            }
            if amount > due.amount_minor {
                return Err(invalid("amount_minor", format!("exceeds the amount due ({})", due.amount_minor)));
            }
            Ok(Money::new(amount, due.currency))
        };
        if let Some(claim) = self.claim.as_deref() {
            return self.keyed_intent(claim, principal, order_id, amount_of).await;
        }
        let gateway = self.gateway()?;
        let (invoice, due) = self.payable_invoice(principal, order_id).await?;
        let amount = amount_of(due)?;
        let payment = self.start(&invoice, "intent", amount).await?;
        let request = PaymentRequest {
            amount,
            customer: payment.stripe_customer_id.clone(),
            capture_later: false,
            save_card: false,
            off_session_payment_method: None,
            description: Some(format!("Invoice {}", invoice.number.as_deref().unwrap_or("(unnumbered)"))),
            reference: format!("payment:{}", payment.id),
            idempotency_key: format!("payment:{}:intent", payment.id),
        };
        let created = gateway.create_payment(&request).await;
        let secret = created.as_ref().ok().and_then(|p| p.client_secret.clone());
        let payment = self.settle_start(&payment, created.map(|p| (None, Some(p.id)))).await?;
        Ok(PaymentIntentView { payment: payment.into(), client_secret: secret })
    }

    /// A page of payments: the caller's own, or all for staff.
    ///
    /// # Errors
    /// [`ServiceError::InvalidQuery`].
    pub async fn list(
        &self,
        principal: &Principal,
        params: &[(String, String)],
    ) -> ServiceResult<Listing<StripePaymentView>> {
        let mut query = payment_list_spec().parse(params)?;
        if !principal.is_staff() {
            query.filters.insert("customer", FilterValue::Uuid(principal.user_id.as_uuid()));
        }
        Ok(self.repo.list(&query).await?.map(StripePaymentView::from))
    }

    /// A payment with its refunds.
    ///
    /// # Errors
    /// [`ServiceError::NotFound`] for an unknown payment or another customer's.
    pub async fn get(&self, principal: &Principal, id: Uuid) -> ServiceResult<StripePaymentView> {
        match self.repo.get(id).await? {
            Some(payment) if principal.is_staff() || payment.customer_id == principal.user_id.as_uuid() => {
                let refunds = self.repo.refunds(id).await?;
                let mut view = StripePaymentView::from(payment);
                view.refunds = Some(refunds.into_iter().map(RefundView::from).collect());
                Ok(view)
            }
            _ => Err(ServiceError::NotFound("payment")),
        }
    }

    /// Refunds a payment, in full (what is left) or `amount_minor` of it (staff). Refused before Stripe is
    /// called when more than was paid and not yet refunded (refunds asked for and not failed count as
    /// refunded). The refund is written first and numbered, and its number is the idempotency key's
    /// (`payment:<id>:refund:<n>`).
    ///
    /// # Errors
    /// [`ServiceError::Forbidden`]; [`ServiceError::NotFound`]; [`ServiceError::Conflict`] when the payment has
    /// not succeeded; [`ServiceError::Invalid`] for a bad amount; [`ServiceError::Upstream`] or
    /// [`ServiceError::Timeout`] when Stripe fails.
    pub async fn refund(
        &self,
        principal: &Principal,
        id: Uuid,
        amount_minor: Option<i64>,
    ) -> ServiceResult<StripePaymentView> {
        if let Some(claim) = self.claim.as_deref() {
            return self.keyed_refund(claim, principal, id, amount_minor).await;
        }
        principal.require_staff()?;
        let gateway = self.gateway()?;
        let by = principal.user_id.as_uuid();
        let (refund, intent) = self.db.write(async |uow| self.reserve_refund(uow, id, amount_minor, by).await).await?;
        let key = format!("payment:{id}:refund:{}", refund.seq);
        let answer = gateway.refund(&intent, Some(refund.amount_minor), &key).await;
        let now = self.clock.now();
        match answer {
            Ok(stripe_id) => {
                self.db.write(async |uow| self.record_refund(uow, id, refund.id, &stripe_id, now).await).await?;
                self.get(principal, id).await
            }
            Err(err @ PortError::Rejected(_)) => {
                self.db.write(async |uow| self.repo.finish_refund(uow, refund.id, None, now).await).await?;
                Err(gateway_error(err))
            }
            // Unknown outcome: the refund stays `requested` (its amount reserved) until Stripe's charge.refunded
            // event, a retry with the same key or the reconciliation settles it.
            Err(err) => Err(gateway_error(err)),
        }
    }

    /// Checks a refund of `amount_minor` (what is left by default) of payment `id` and writes it `requested`
    /// in `uow`, holding the payment's lock; the refund and the payment's intent.
    async fn reserve_refund(
        &self,
        uow: &UnitOfWork,
        id: Uuid,
        amount_minor: Option<i64>,
        by: Uuid,
    ) -> ServiceResult<(RefundRecord, String)> {
        let now = self.clock.now();
        let payment = self.repo.lock(uow, PaymentKey::Id(id)).await?.ok_or(ServiceError::NotFound("payment"))?;
        let (Some(intent), "succeeded") = (payment.payment_intent_id.clone(), payment.status.as_str()) else {
            return Err(ServiceError::Conflict {
                message: "only a succeeded payment can be refunded".into(),
                index: None,
            });
        };
        let reserved = self.repo.refunds_reserved(uow, id).await?.max(payment.facts.amount_refunded_minor);
        let refundable = payment.facts.amount_paid_minor - reserved;
        let amount = amount_minor.unwrap_or(refundable);
        if amount <= 0 {
            return Err(if amount_minor.is_some() {
                invalid("amount_minor", "must be positive")
            } else {
                ServiceError::Conflict { message: "nothing is left to refund".into(), index: None }
            });
        }
        if amount > refundable {
            return Err(invalid("amount_minor", format!("exceeds what is left to refund ({refundable})")));
        }
        Ok((self.repo.add_refund(uow, id, amount, Some(by), now).await?, intent))
    }

    /// Notes in `uow` that Stripe made refund `refund_id` of payment `id` (`stripe_id`), and the payment's
    /// refunded amount.
    async fn record_refund(
        &self,
        uow: &UnitOfWork,
        id: Uuid,
        refund_id: Uuid,
        stripe_id: &str,
        now: DateTime<Utc>,
    ) -> Result<(), RepoError> {
        self.repo.finish_refund(uow, refund_id, Some(stripe_id), now).await?;
        let Some(current) = self.repo.lock(uow, PaymentKey::Id(id)).await? else {
            return Ok(());
        };
        let mut facts = current.facts.clone();
        let confirmed = self.repo.refunds_succeeded(uow, id).await?;
        facts.amount_refunded_minor = facts.amount_refunded_minor.max(confirmed);
        self.repo.store_facts(uow, &current, &facts, now).await
    }

    /// The Stripe customer of the caller, created at Stripe on first use.
    ///
    /// # Errors
    /// [`ServiceError::NotFound`] when the user is gone; [`ServiceError::Upstream`] or
    /// [`ServiceError::Timeout`] when Stripe fails.
    pub async fn customer(&self, principal: &Principal) -> ServiceResult<StripeCustomerView> {
        if let Some(claim) = self.claim.as_deref() {
            return self.keyed_customer(claim, principal).await;
        }
        if let Some(customer_id) = self.repo.stripe_customer(principal.user_id.as_uuid()).await? {
            return Ok(StripeCustomerView { customer_id, created: false });
        }
        self.link_new_customer(self.gateway()?, principal.user_id).await
    }

    /// The Stripe customer of user `user_id`, created at Stripe (with the key of [`Self::customer`]) when the
    /// user has none yet.
    async fn stripe_customer_of(&self, gateway: &dyn PaymentGateway, user_id: Uuid) -> ServiceResult<String> {
        if let Some(customer_id) = self.repo.stripe_customer(user_id).await? {
            return Ok(customer_id);
        }
        Ok(self.link_new_customer(gateway, rental_domain::UserId::from_uuid(user_id)).await?.customer_id)
    }

    /// Creates `user`'s Stripe customer (key `user:<id>:customer`) and links it; a customer linked meanwhile by
    /// another request wins (`created` is then false).
    async fn link_new_customer(
        &self,
        gateway: &dyn PaymentGateway,
        user: rental_domain::UserId,
    ) -> ServiceResult<StripeCustomerView> {
        let request = self.customer_request_of(user).await?;
        let created = gateway.create_customer(&request).await.map_err(gateway_error)?;
        let linked = self.repo.link_customer(user.as_uuid(), &created, self.clock.now()).await?;
        Ok(StripeCustomerView { created: linked == created, customer_id: linked })
    }

    /// The request creating the caller's Stripe customer, keyed by the user (`user:<id>:customer`).
    async fn customer_request(&self, principal: &Principal) -> ServiceResult<CustomerRequest> {
        self.customer_request_of(principal.user_id).await
    }

    /// The request creating user `user_id`'s Stripe customer, keyed by the user (`user:<id>:customer`).
    async fn customer_request_of(&self, user: rental_domain::UserId) -> ServiceResult<CustomerRequest> {
        let user_id = user.as_uuid();
        let user = self.users.find(user).await?.ok_or(ServiceError::NotFound("user"))?;
        Ok(CustomerRequest {
            email: user.email.clone(),
            name: user.full_name.clone(),
            reference: format!("user:{user_id}"),
            idempotency_key: format!("user:{user_id}:customer"),
        })
    }

    /// Whether a webhook event was recorded, and how (tests, operators).
    ///
    /// # Errors
    /// [`ServiceError::Repo`].
    pub async fn webhook_event(&self, event_id: &str) -> ServiceResult<Option<rental_repo::WebhookEventRecord>> {
        Ok(self.repo.event(event_id).await?)
    }
}
