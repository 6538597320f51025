//! Stripe payments: the rows of the payments we create at Stripe for invoices (`stripe_payments`), the refunds
//! we ask for (`stripe_refunds`), the users' Stripe customers (`stripe_customers`) and the webhook events
//! received (`webhook_events`).
//!
//! Writes take the caller's [`UnitOfWork`]: a webhook event's row is written in the same transaction as its
//! effect, so an event is applied exactly once whatever the redeliveries. What an event changes is decided by
//! the service ([`PaymentFacts`] are stored as given); this module moves the invoice's paid amount by the change
//! of the payment's net amount, under the invoice's row lock.
//!
//! The services rely on it through the store trait [`PaymentStore`] (`store.rs`), whose impl delegates to the
//! inherent methods spread over this module, `events.rs` and `deposits.rs`.

mod deposits;
mod events;
mod store;

pub use deposits::{DEPOSIT_STATUSES, DepositKey, DepositOrder, DepositRecord};
pub use events::{NewWebhookEvent, WebhookEventRecord};
pub use store::PaymentStore;

use chrono::{DateTime, Utc};
use rental_domain::{InvoiceStatus, Money};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect};
use uuid::Uuid;

use crate::billing::invoice_record;
use crate::entity::{invoice, stripe_customer, stripe_payment, stripe_refund};
use crate::query::{Direction, FilterKind, FilterOp, ListColumns, ListQuery, ListSpec, Listing, PageSizes, SortKind};
use crate::{Backend, Database, InvoiceRecord, RepoError, RepoResult, UnitOfWork, stored};

/// Statuses of a Stripe payment, by precedence (a later status never replaces a higher one).
pub const PAYMENT_STATUSES: [&str; 4] = ["pending", "failed", "canceled", "succeeded"];

/// A payment to create at Stripe for an invoice.
#[derive(Debug, Clone)]
pub struct NewStripePayment {
    /// The invoice paid.
    pub invoice_id: Uuid,
    /// Its order.
    pub order_id: Uuid,
    /// The customer paying.
    pub customer_id: Uuid,
    /// `checkout` or `intent`.
    pub kind: &'static str,
    /// Amount asked for.
    pub amount: Money,
    /// The customer's Stripe customer, when known.
    pub stripe_customer_id: Option<String>,
}

/// A stored Stripe payment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StripePaymentRecord {
    /// Our id (the reference Stripe's objects carry as `payment:<id>`).
    pub id: Uuid,
    /// The invoice paid.
    pub invoice_id: Uuid,
    /// Its order.
    pub order_id: Uuid,
    /// The customer paying.
    pub customer_id: Uuid,
    /// `checkout` or `intent`.
    pub kind: String,
    /// Amount asked for.
    pub amount: Money,
    /// One of [`PAYMENT_STATUSES`].
    pub status: String,
    /// The checkout session (`cs_…`).
    pub checkout_session_id: Option<String>,
    /// The payment intent (`pi_…`).
    pub payment_intent_id: Option<String>,
    /// The charge (`ch_…`), once refunded or disputed.
    pub charge_id: Option<String>,
    /// The Stripe customer (`cus_…`).
    pub stripe_customer_id: Option<String>,
    /// The facts Stripe reported.
    pub facts: PaymentFacts,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

/// What Stripe has told us about a payment; every field only moves one way (see the service's merge).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PaymentFacts {
    /// One of [`PAYMENT_STATUSES`].
    pub status: String,
    /// Received, minor units.
    pub amount_paid_minor: i64,
    /// Refunded, minor units.
    pub amount_refunded_minor: i64,
    /// A dispute was opened.
    pub disputed: bool,
    /// Stripe's reason of the last failure.
    pub failure_reason: Option<String>,
    /// The payment intent, once known.
    pub payment_intent_id: Option<String>,
    /// The charge, once known.
    pub charge_id: Option<String>,
}

impl PaymentFacts {
    /// Paid less refunded: what the payment contributes to its invoice.
    pub fn net_minor(&self) -> i64 {
        (self.amount_paid_minor - self.amount_refunded_minor).max(0)
    }
}

/// How a payment is looked up.
#[derive(Debug, Clone, Copy)]
pub enum PaymentKey<'a> {
    /// By our id.
    Id(Uuid),
    /// By its payment intent.
    Intent(&'a str),
    /// By its checkout session.
    Session(&'a str),
}

/// A refund asked of Stripe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundRecord {
    /// Id.
    pub id: Uuid,
    /// The payment refunded.
    pub payment_id: Uuid,
    /// 1, 2, … per payment: the `n` of the idempotency key `payment:<id>:refund:<n>`.
    pub seq: i32,
    /// Amount.
    pub amount_minor: i64,
    /// `requested`, `succeeded` or `failed`.
    pub status: String,
    /// Stripe's refund (`re_…`).
    pub stripe_refund_id: Option<String>,
    /// When it was asked for.
    pub created_at: DateTime<Utc>,
}

static PAYMENT_LIST_SPEC: ListSpec = ListSpec {
    resource: "payments",
    filters: &[
        ("status", FilterKind::OneOf(&PAYMENT_STATUSES)),
        ("customer", FilterKind::Uuid),
        ("invoice", FilterKind::Uuid),
    ],
    sorts: &[("created_at", SortKind::DateTime)],
    default_sort: ("created_at", Direction::Desc),
    searchable: false,
    page_sizes: PageSizes::DEFAULT,
};

/// The whitelist of the payment list: filters `status`, `customer`, `invoice`; sort `created_at` (newest first).
pub fn payment_list_spec() -> &'static ListSpec {
    &PAYMENT_LIST_SPEC
}

/// Stripe payments, refunds, customers and webhook events. Cheap to clone.
#[derive(Debug, Clone)]
pub struct PaymentRepo {
    db: Database,
}

impl PaymentRepo {
    /// A repository over `db`.
    pub fn new(db: Database) -> Self {
        Self { db }
    }

    /// The database.
    pub fn database(&self) -> &Database {
        &self.db
    }

    /// The invoice of an order (the latest, should there be several).
    ///
    /// # Errors
    /// [`RepoError::Database`].
    pub async fn invoice_of_order(&self, order_id: Uuid) -> RepoResult<Option<InvoiceRecord>> {
        invoice::Entity::find()
            .filter(invoice::Column::OrderId.eq(order_id))
            .order_by_desc(invoice::Column::CreatedAt)
            .one(self.db.connection())
            .await?
            .map(invoice_record)
            .transpose()
    }

    /// Writes a new payment (`pending`) in `uow`.
    ///
    /// # Errors
    /// [`RepoError::Database`].
    pub async fn create(
        &self,
        uow: &UnitOfWork,
        new: NewStripePayment,
        at: DateTime<Utc>,
    ) -> RepoResult<StripePaymentRecord> {
        let model = stripe_payment::Model {
            id: Uuid::now_v7(),
            invoice_id: new.invoice_id,
            order_id: new.order_id,
            customer_id: new.customer_id,
            kind: new.kind.to_owned(),
            amount_minor: new.amount.amount_minor,
            currency: new.amount.currency.as_str().to_owned(),
            status: "pending".to_owned(),
            checkout_session_id: None,
            payment_intent_id: None,
            charge_id: None,
            stripe_customer_id: new.stripe_customer_id,
            amount_paid_minor: 0,
            amount_refunded_minor: 0,
            disputed: false,
            failure_reason: None,
            created_at: at,
            updated_at: at,
        };
        stripe_payment::Entity::insert(stripe_payment::ActiveModel::from(model.clone()))
            .exec_without_returning(uow.conn())
            .await?;
        payment_record(model)
    }

    /// Notes Stripe's ids of a payment once its session or intent exists.
    ///
    /// # Errors
    /// [`RepoError::Conflict`] when another payment has the id; [`RepoError::Database`].
    pub async fn attach(
        &self,
        uow: &UnitOfWork,
        id: Uuid,
        session: Option<&str>,
        intent: Option<&str>,
        at: DateTime<Utc>,
    ) -> RepoResult<()> {
        let mut update = stripe_payment::Entity::update_many()
            .col_expr(stripe_payment::Column::UpdatedAt, Expr::val(at))
            .filter(stripe_payment::Column::Id.eq(id));
        if let Some(session) = session {
            update = update.col_expr(stripe_payment::Column::CheckoutSessionId, Expr::val(session));
        }
        if let Some(intent) = intent {
            update = update.col_expr(stripe_payment::Column::PaymentIntentId, Expr::val(intent));
        }
        update.exec(uow.conn()).await?;
        Ok(())
    }

    /// A payment.
    ///
    /// # Errors
    /// [`RepoError::Database`].
    pub async fn get(&self, id: Uuid) -> RepoResult<Option<StripePaymentRecord>> {
        stripe_payment::Entity::find_by_id(id).one(self.db.connection()).await?.map(payment_record).transpose()
    }

    /// A payment read in `uow` and locked for update (PostgreSQL; SQLite's unit holds the write lock).
    ///
    /// # Errors
    /// [`RepoError::Database`].
    pub async fn lock(&self, uow: &UnitOfWork, key: PaymentKey<'_>) -> RepoResult<Option<StripePaymentRecord>> {
        let mut select = match key {
            PaymentKey::Id(id) => stripe_payment::Entity::find_by_id(id),
            PaymentKey::Intent(intent) => {
                stripe_payment::Entity::find().filter(stripe_payment::Column::PaymentIntentId.eq(intent))
            }
            PaymentKey::Session(session) => {
                stripe_payment::Entity::find().filter(stripe_payment::Column::CheckoutSessionId.eq(session))
            }
        };
        if uow.backend() == Backend::Postgres {
            select = select.lock_exclusive();
        }
        select.one(uow.conn()).await?.map(payment_record).transpose()
    }

    /// Stores `facts` as the payment's (read before by [`Self::lock`] as `current`) and moves its invoice's paid
    /// amount by the change of the net amount: an invoice fully paid becomes `paid`, a paid one that is no
    /// longer fully paid (a refund) reopens.
    ///
    /// # Errors
    /// [`RepoError::Database`]; [`RepoError::NotFound`] when the invoice is gone.
    pub async fn store_facts(
        &self,
        uow: &UnitOfWork,
        current: &StripePaymentRecord,
        facts: &PaymentFacts,
        at: DateTime<Utc>,
    ) -> RepoResult<()> {
        let model = stripe_payment::ActiveModel {
            id: sea_orm::ActiveValue::Unchanged(current.id),
            status: sea_orm::ActiveValue::Set(facts.status.clone()),
            amount_paid_minor: sea_orm::ActiveValue::Set(facts.amount_paid_minor),
            amount_refunded_minor: sea_orm::ActiveValue::Set(facts.amount_refunded_minor),
            disputed: sea_orm::ActiveValue::Set(facts.disputed),
            failure_reason: sea_orm::ActiveValue::Set(facts.failure_reason.clone()),
            payment_intent_id: sea_orm::ActiveValue::Set(facts.payment_intent_id.clone()),
            charge_id: sea_orm::ActiveValue::Set(facts.charge_id.clone()),
            updated_at: sea_orm::ActiveValue::Set(at),
            ..Default::default()
        };
        model.update(uow.conn()).await?;
        let delta = facts.net_minor() - current.facts.net_minor();
        if delta != 0 {
            self.move_invoice_paid(uow, current.invoice_id, delta, at).await?;
        }
        Ok(())
    }

    async fn move_invoice_paid(
        &self,
        uow: &UnitOfWork,
        invoice_id: Uuid,
        delta: i64,
        at: DateTime<Utc>,
    ) -> RepoResult<()> {
        let mut select = invoice::Entity::find_by_id(invoice_id);
        if uow.backend() == Backend::Postgres {
            select = select.lock_exclusive();
        }
        let inv = select.one(uow.conn()).await?.ok_or(RepoError::NotFound)?;
        let status: InvoiceStatus = inv.status.parse().map_err(RepoError::Domain)?;
        let paid = (inv.amount_paid_minor + delta).max(0);
        let status = match status {
            InvoiceStatus::Open if paid >= inv.total_minor => InvoiceStatus::Paid,
            InvoiceStatus::Paid if paid < inv.total_minor => InvoiceStatus::Open,
            other => other,
        };
        invoice::Entity::update_many()
            .col_expr(invoice::Column::AmountPaidMinor, Expr::val(paid))
            .col_expr(invoice::Column::Status, Expr::val(status.as_str()))
            .col_expr(invoice::Column::UpdatedAt, Expr::val(at))
            .filter(invoice::Column::Id.eq(invoice_id))
            .exec(uow.conn())
            .await?;
        Ok(())
    }

    /// One page of payments matching `query`.
    ///
    /// # Errors
    /// [`RepoError::InvalidQuery`] for a cursor of another list; [`RepoError::Database`].
    pub async fn list(&self, query: &ListQuery) -> RepoResult<Listing<StripePaymentRecord>> {
        static PAYMENT_LIST: ListColumns<stripe_payment::Entity> = ListColumns {
            spec: &PAYMENT_LIST_SPEC,
            key: stripe_payment::Column::Id,
            sorts: &[("created_at", stripe_payment::Column::CreatedAt)],
            filters: &[
                ("status", stripe_payment::Column::Status, FilterOp::Eq),
                ("customer", stripe_payment::Column::CustomerId, FilterOp::Eq),
                ("invoice", stripe_payment::Column::InvoiceId, FilterOp::Eq),
            ],
            search: &[],
        };
        PAYMENT_LIST.fetch(self.db.connection(), query, stripe_payment::Entity::find()).await?.try_map(payment_record)
    }

    /// Payments created since `since` that Stripe may still settle (pending or failed, with a payment intent),
    /// oldest first, at most `limit`.
    ///
    /// # Errors
    /// [`RepoError::Database`].
    pub async fn unsettled(&self, since: DateTime<Utc>, limit: u64) -> RepoResult<Vec<StripePaymentRecord>> {
        stripe_payment::Entity::find()
            .filter(stripe_payment::Column::Status.is_in(["pending", "failed"]))
            .filter(stripe_payment::Column::PaymentIntentId.is_not_null())
            .filter(stripe_payment::Column::CreatedAt.gte(since))
            .order_by_asc(stripe_payment::Column::CreatedAt)
            .limit(limit)
            .all(self.db.connection())
            .await?
            .into_iter()
            .map(payment_record)
            .collect()
    }

    /// Writes the next refund of a payment (`requested`, numbered 1, 2, … per payment) in `uow`; the caller
    /// holds the payment's lock.
    ///
    /// # Errors
    /// [`RepoError::Database`].
    pub async fn add_refund(
        &self,
        uow: &UnitOfWork,
        payment_id: Uuid,
        amount_minor: i64,
        requested_by: Option<Uuid>,
        at: DateTime<Utc>,
    ) -> RepoResult<RefundRecord> {
        let seq = stripe_refund::Entity::find()
            .filter(stripe_refund::Column::PaymentId.eq(payment_id))
            .count(uow.conn())
            .await?;
        let model = stripe_refund::Model {
            id: Uuid::now_v7(),
            payment_id,
            seq: i32::try_from(seq + 1).map_err(|_| stored::corrupt("too many refunds".to_owned()))?,
            amount_minor,
            status: "requested".to_owned(),
            stripe_refund_id: None,
            requested_by,
            created_at: at,
            updated_at: at,
        };
        stripe_refund::Entity::insert(stripe_refund::ActiveModel::from(model.clone()))
            .exec_without_returning(uow.conn())
            .await?;
        Ok(refund_record(model))
    }

    /// The total of a payment's refunds that are requested or succeeded (what may no longer be refunded).
    ///
    /// # Errors
    /// [`RepoError::Database`].
    pub async fn refunds_reserved(&self, uow: &UnitOfWork, payment_id: Uuid) -> RepoResult<i64> {
        let rows = stripe_refund::Entity::find()
            .filter(stripe_refund::Column::PaymentId.eq(payment_id))
            .filter(stripe_refund::Column::Status.ne("failed"))
            .all(uow.conn())
            .await?;
        Ok(rows.iter().map(|r| r.amount_minor).sum())
    }

    /// The total of a payment's refunds Stripe confirmed.
    ///
    /// # Errors
    /// [`RepoError::Database`].
    pub async fn refunds_succeeded(&self, uow: &UnitOfWork, payment_id: Uuid) -> RepoResult<i64> {
        let rows = stripe_refund::Entity::find()
            .filter(stripe_refund::Column::PaymentId.eq(payment_id))
            .filter(stripe_refund::Column::Status.eq("succeeded"))
            .all(uow.conn())
            .await?;
        Ok(rows.iter().map(|r| r.amount_minor).sum())
    }

    /// Ends a refund: `succeeded` with Stripe's id, or `failed`.
    ///
    /// # Errors
    /// [`RepoError::Database`].
    pub async fn finish_refund(
        &self,
        uow: &UnitOfWork,
        refund_id: Uuid,
        stripe_refund_id: Option<&str>,
        at: DateTime<Utc>,
    ) -> RepoResult<()> {
        let status = if stripe_refund_id.is_some() { "succeeded" } else { "failed" };
        stripe_refund::Entity::update_many()
            .col_expr(stripe_refund::Column::Status, Expr::val(status))
            .col_expr(stripe_refund::Column::StripeRefundId, Expr::val(stripe_refund_id.map(str::to_owned)))
            .col_expr(stripe_refund::Column::UpdatedAt, Expr::val(at))
            .filter(stripe_refund::Column::Id.eq(refund_id))
            .exec(uow.conn())
            .await?;
        Ok(())
    }

    /// A payment's refunds, in order.
    ///
    /// # Errors
    /// [`RepoError::Database`].
    pub async fn refunds(&self, payment_id: Uuid) -> RepoResult<Vec<RefundRecord>> {
        Ok(stripe_refund::Entity::find()
            .filter(stripe_refund::Column::PaymentId.eq(payment_id))
            .order_by_asc(stripe_refund::Column::Seq)
            .all(self.db.connection())
            .await?
            .into_iter()
            .map(refund_record)
            .collect())
    }

    /// A payment's refunds, in order, read in `uow`.
    ///
    /// # Errors
    /// [`RepoError::Database`].
    pub async fn refunds_in(&self, uow: &UnitOfWork, payment_id: Uuid) -> RepoResult<Vec<RefundRecord>> {
        Ok(stripe_refund::Entity::find()
            .filter(stripe_refund::Column::PaymentId.eq(payment_id))
            .order_by_asc(stripe_refund::Column::Seq)
            .all(uow.conn())
            .await?
            .into_iter()
            .map(refund_record)
            .collect())
    }

    /// Refunds still `requested` (Stripe's outcome not known) asked for since `since`, oldest first, at most
    /// `limit`, each with its payment's intent.
    ///
    /// # Errors
    /// [`RepoError::Database`].
    pub async fn requested_refunds(
        &self,
        since: DateTime<Utc>,
        limit: u64,
    ) -> RepoResult<Vec<(RefundRecord, Option<String>)>> {
        let rows = stripe_refund::Entity::find()
            .filter(stripe_refund::Column::Status.eq("requested"))
            .filter(stripe_refund::Column::CreatedAt.gte(since))
            .order_by_asc(stripe_refund::Column::CreatedAt)
            .limit(limit)
            .all(self.db.connection())
            .await?;
        let payments: Vec<Uuid> = rows.iter().map(|r| r.payment_id).collect();
        let intents: std::collections::HashMap<Uuid, Option<String>> = stripe_payment::Entity::find()
            .filter(stripe_payment::Column::Id.is_in(payments))
            .all(self.db.connection())
            .await?
            .into_iter()
            .map(|p| (p.id, p.payment_intent_id))
            .collect();
        Ok(rows
            .into_iter()
            .map(|refund| {
                let intent = intents.get(&refund.payment_id).cloned().flatten();
                (refund_record(refund), intent)
            })
            .collect())
    }

    /// The Stripe customer of a user.
    ///
    /// # Errors
    /// [`RepoError::Database`].
    pub async fn stripe_customer(&self, user_id: Uuid) -> RepoResult<Option<String>> {
        Ok(stripe_customer::Entity::find_by_id(user_id)
            .one(self.db.connection())
            .await?
            .map(|row| row.stripe_customer_id))
    }

    /// Links a user to a Stripe customer in `uow` unless linked already; answers the linked customer.
    ///
    /// # Errors
    /// [`RepoError::Database`].
    pub async fn link_customer_in(
        &self,
        uow: &UnitOfWork,
        user_id: Uuid,
        customer: &str,
        at: DateTime<Utc>,
    ) -> RepoResult<String> {
        let model = stripe_customer::Model { user_id, stripe_customer_id: customer.to_owned(), created_at: at };
        stripe_customer::Entity::insert(stripe_customer::ActiveModel::from(model))
            .on_conflict(OnConflict::column(stripe_customer::Column::UserId).do_nothing().to_owned())
            .exec_without_returning(uow.conn())
            .await?;
        stripe_customer::Entity::find_by_id(user_id)
            .one(uow.conn())
            .await?
            .map(|row| row.stripe_customer_id)
            .ok_or(RepoError::NotFound)
    }

    /// Links a user to a Stripe customer unless linked already; answers the linked customer (the first one
    /// when two requests raced).
    ///
    /// # Errors
    /// [`RepoError::Database`].
    pub async fn link_customer(&self, user_id: Uuid, customer: &str, at: DateTime<Utc>) -> RepoResult<String> {
        let model = stripe_customer::Model { user_id, stripe_customer_id: customer.to_owned(), created_at: at };
        stripe_customer::Entity::insert(stripe_customer::ActiveModel::from(model))
            .on_conflict(OnConflict::column(stripe_customer::Column::UserId).do_nothing().to_owned())
            .exec_without_returning(self.db.connection())
            .await?;
        self.stripe_customer(user_id).await?.ok_or(RepoError::NotFound)
    }
}

pub(crate) fn payment_record(m: stripe_payment::Model) -> RepoResult<StripePaymentRecord> {
    let currency = stored::currency("stripe_payments", &m.currency)?;
    Ok(StripePaymentRecord {
        id: m.id,
        invoice_id: m.invoice_id,
        order_id: m.order_id,
        customer_id: m.customer_id,
        kind: m.kind,
        amount: Money::new(m.amount_minor, currency),
        status: m.status.clone(),
        checkout_session_id: m.checkout_session_id,
        payment_intent_id: m.payment_intent_id.clone(),
        charge_id: m.charge_id.clone(),
        stripe_customer_id: m.stripe_customer_id,
        facts: PaymentFacts {
            status: m.status,
            amount_paid_minor: m.amount_paid_minor,
            amount_refunded_minor: m.amount_refunded_minor,
            disputed: m.disputed,
            failure_reason: m.failure_reason,
            payment_intent_id: m.payment_intent_id,
            charge_id: m.charge_id,
        },
        created_at: m.created_at,
        updated_at: m.updated_at,
    })
}

fn refund_record(m: stripe_refund::Model) -> RefundRecord {
    RefundRecord {
        id: m.id,
        payment_id: m.payment_id,
        seq: m.seq,
        amount_minor: m.amount_minor,
        status: m.status,
        stripe_refund_id: m.stripe_refund_id,
        created_at: m.created_at,
    }
}
