//! The persistence contract of Stripe payments, refunds, customers, webhook events and deposits: what the
//! payment service relies on, implemented by [`PaymentRepo`].

use std::future::Future;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{
    DepositKey, DepositOrder, DepositRecord, NewStripePayment, NewWebhookEvent, PaymentFacts, PaymentKey, RefundRecord,
    StripePaymentRecord, WebhookEventRecord,
};
use crate::query::{ListQuery, Listing};
use crate::{InvoiceRecord, PaymentRepo, RepoResult, UnitOfWork};

/// Stripe payments of invoices, their refunds, the users' Stripe customers, the webhook events received and the
/// rental orders' deposits, as the payment service needs them. Writes take the caller's [`UnitOfWork`], so that
/// a webhook event's record and its effect commit or roll back together.
///
/// The contract every implementation keeps (checked by `rental_repo::conformance` on SQLite and PostgreSQL):
///
/// - **one row per Stripe object**: a payment intent or a checkout session belongs to at most one payment, a
///   user to at most one Stripe customer, an order to at most one deposit, a refund number to one refund of its
///   payment; a write that would make a second is refused with [`crate::RepoError::Conflict`]. The ids we send
///   Stripe as idempotency keys (`payment:<id>:…`, `payment:<id>:refund:<n>`, `deposit:<id>:<hold_seq>:…`)
///   are built from these rows, so one row means one object at Stripe whatever the retries.
/// - **a webhook event is recorded once**: [`Self::record_event`] answers `true` to the first delivery of an
///   event id and `false` to every later one (then nothing of it may be applied), also when deliveries run
///   concurrently; a record whose unit rolls back is gone, so a redelivery applies the event.
/// - **money moves with the facts**: storing a payment's facts moves its invoice's paid amount by the change
///   of the payment's net amount (paid less refunded) in the same unit; a fully paid open invoice becomes paid,
///   a paid one that is no longer fully paid reopens.
/// - **a refused write leaves nothing**: a payment of an unknown invoice or customer, a refund of an unknown
///   payment, a deposit of an unknown order (or of an order that has one) is refused with
///   [`crate::RepoError::Conflict`], and the caller's unit, rolled back, has written nothing.
/// - **records read back as written**: what the service decides (a payment's facts, every field of a deposit,
///   an event's outcome and effect) is stored as given and read back unchanged.
pub trait PaymentStore: Send + Sync {
    /// The invoice of an order (the latest, should there be several).
    fn invoice_of_order(&self, order_id: Uuid) -> impl Future<Output = RepoResult<Option<InvoiceRecord>>> + Send;

    /// Writes a new payment of an invoice in `uow`: `pending`, nothing paid or refunded, no Stripe ids yet.
    ///
    /// # Errors
    /// [`crate::RepoError::Conflict`] for an unknown invoice or customer.
    fn create(
        &self,
        uow: &UnitOfWork,
        new: NewStripePayment,
        at: DateTime<Utc>,
    ) -> impl Future<Output = RepoResult<StripePaymentRecord>> + Send;

    /// Notes Stripe's checkout session and payment intent of payment `id` once they exist (`None` keeps the
    /// stored value). Noting the same ids again changes nothing.
    ///
    /// # Errors
    /// [`crate::RepoError::Conflict`] when another payment has the session or the intent.
    fn attach(
        &self,
        uow: &UnitOfWork,
        id: Uuid,
        session: Option<&str>,
        intent: Option<&str>,
        at: DateTime<Utc>,
    ) -> impl Future<Output = RepoResult<()>> + Send;

    /// A payment by its id.
    fn get(&self, id: Uuid) -> impl Future<Output = RepoResult<Option<StripePaymentRecord>>> + Send;

    /// The payment of `key` (id, payment intent or checkout session), read in `uow` and held against other
    /// units' changes until `uow` ends.
    fn lock(
        &self,
        uow: &UnitOfWork,
        key: PaymentKey<'_>,
    ) -> impl Future<Output = RepoResult<Option<StripePaymentRecord>>> + Send;

    /// Stores `facts` as the payment's (`current`, read by [`Self::lock`] in `uow`: its status becomes the facts'
    /// status) and moves its invoice's paid amount by the change of the net amount, as the contract says.
    ///
    /// # Errors
    /// [`crate::RepoError::NotFound`] when the invoice is gone.
    fn store_facts(
        &self,
        uow: &UnitOfWork,
        current: &StripePaymentRecord,
        facts: &PaymentFacts,
        at: DateTime<Utc>,
    ) -> impl Future<Output = RepoResult<()>> + Send;

    /// A page of payments ([`crate::payment_list_spec`]: by status, customer and invoice; newest first).
    ///
    /// # Errors
    /// [`crate::RepoError::InvalidQuery`] for a cursor of another list.
    fn list(&self, query: &ListQuery) -> impl Future<Output = RepoResult<Listing<StripePaymentRecord>>> + Send;

    /// Payments created since `since` that Stripe may still settle (`pending` or `failed`, with a payment
    /// intent), oldest first, at most `limit`.
    fn unsettled(
        &self,
        since: DateTime<Utc>,
        limit: u64,
    ) -> impl Future<Output = RepoResult<Vec<StripePaymentRecord>>> + Send;

    /// Writes the next refund of a payment (`requested`, numbered 1, 2, … per payment) in `uow`; the caller holds
    /// the payment's lock.
    ///
    /// # Errors
    /// [`crate::RepoError::Conflict`] for an unknown payment, or a number taken by a concurrent unit.
    fn add_refund(
        &self,
        uow: &UnitOfWork,
        payment_id: Uuid,
        amount_minor: i64,
        requested_by: Option<Uuid>,
        at: DateTime<Utc>,
    ) -> impl Future<Output = RepoResult<RefundRecord>> + Send;

    /// The total of a payment's refunds that are `requested` or `succeeded` (what may no longer be refunded).
    fn refunds_reserved(&self, uow: &UnitOfWork, payment_id: Uuid) -> impl Future<Output = RepoResult<i64>> + Send;

    /// The total of a payment's `succeeded` refunds.
    fn refunds_succeeded(&self, uow: &UnitOfWork, payment_id: Uuid) -> impl Future<Output = RepoResult<i64>> + Send;

    /// Ends a refund: `succeeded` with Stripe's refund id, or `failed` when `stripe_refund_id` is `None`.
    fn finish_refund(
        &self,
        uow: &UnitOfWork,
        refund_id: Uuid,
        stripe_refund_id: Option<&str>,
        at: DateTime<Utc>,
    ) -> impl Future<Output = RepoResult<()>> + Send;

    /// A payment's refunds, by number.
    fn refunds(&self, payment_id: Uuid) -> impl Future<Output = RepoResult<Vec<RefundRecord>>> + Send;

    /// A payment's refunds, by number, read in `uow`.
    fn refunds_in(
        &self,
        uow: &UnitOfWork,
        payment_id: Uuid,
    ) -> impl Future<Output = RepoResult<Vec<RefundRecord>>> + Send;

    /// Refunds still `requested` asked for since `since`, oldest first, at most `limit`, each with its
    /// payment's intent.
    fn requested_refunds(
        &self,
        since: DateTime<Utc>,
        limit: u64,
    ) -> impl Future<Output = RepoResult<Vec<(RefundRecord, Option<String>)>>> + Send;

    /// The Stripe customer of a user.
    fn stripe_customer(&self, user_id: Uuid) -> impl Future<Output = RepoResult<Option<String>>> + Send;

    /// Links a user to a Stripe customer in `uow` unless linked already; answers the linked customer (the first
    /// one linked).
    ///
    /// # Errors
    /// [`crate::RepoError::Conflict`] for an unknown user, or a customer linked to another user.
    fn link_customer_in(
        &self,
        uow: &UnitOfWork,
        user_id: Uuid,
        customer: &str,
        at: DateTime<Utc>,
    ) -> impl Future<Output = RepoResult<String>> + Send;

    /// [`Self::link_customer_in`] as a statement of its own (the first of two racing requests wins).
    ///
    /// # Errors
    /// As [`Self::link_customer_in`].
    fn link_customer(
        &self,
        user_id: Uuid,
        customer: &str,
        at: DateTime<Utc>,
    ) -> impl Future<Output = RepoResult<String>> + Send;

    /// Records a webhook event in `uow` unless it was recorded before: `true` for its first delivery, `false`
    /// for a duplicate (then nothing of it may be applied). A concurrent delivery of the same event waits for
    /// the first one's unit and then gets `false` if it committed.
    fn record_event(
        &self,
        uow: &UnitOfWork,
        new: NewWebhookEvent,
        at: DateTime<Utc>,
    ) -> impl Future<Output = RepoResult<bool>> + Send;

    /// A recorded event, by Stripe's id.
    fn event(&self, event_id: &str) -> impl Future<Output = RepoResult<Option<WebhookEventRecord>>> + Send;

    /// The events `deferred` until payment intent `intent` is known, oldest (by Stripe's time) first.
    fn deferred_events(
        &self,
        uow: &UnitOfWork,
        intent: &str,
    ) -> impl Future<Output = RepoResult<Vec<WebhookEventRecord>>> + Send;

    /// Marks a deferred event `applied` to payment `payment_id`.
    fn mark_applied(
        &self,
        uow: &UnitOfWork,
        event_id: &str,
        payment_id: Uuid,
        at: DateTime<Utc>,
    ) -> impl Future<Output = RepoResult<()>> + Send;

    /// The order a deposit is for, read in `uow` and held against other units' changes until `uow` ends, so
    /// that two requests for one order's deposit take turns.
    fn lock_deposit_order(
        &self,
        uow: &UnitOfWork,
        order_id: Uuid,
    ) -> impl Future<Output = RepoResult<Option<DepositOrder>>> + Send;

    /// The deposit of `key` (id, order or current payment intent), read in `uow` and held until `uow` ends.
    fn lock_deposit(
        &self,
        uow: &UnitOfWork,
        key: DepositKey<'_>,
    ) -> impl Future<Output = RepoResult<Option<DepositRecord>>> + Send;

    /// The deposit of an order.
    fn deposit_of_order(&self, order_id: Uuid) -> impl Future<Output = RepoResult<Option<DepositRecord>>> + Send;

    /// A deposit by its id.
    fn deposit(&self, id: Uuid) -> impl Future<Output = RepoResult<Option<DepositRecord>>> + Send;

    /// Writes a new deposit in `uow`, every field as given.
    ///
    /// # Errors
    /// [`crate::RepoError::Conflict`] for an unknown order or customer, or an order that has a deposit.
    fn insert_deposit(&self, uow: &UnitOfWork, deposit: &DepositRecord) -> impl Future<Output = RepoResult<()>> + Send;

    /// Stores every field of `deposit` (found by its id) in `uow`.
    ///
    /// # Errors
    /// [`crate::RepoError::Conflict`] when another deposit has its payment intent.
    fn save_deposit(&self, uow: &UnitOfWork, deposit: &DepositRecord) -> impl Future<Output = RepoResult<()>> + Send;

    /// The deposit job's work: deposits in `status` whose `place_from` (`scheduled`) or `authorised_at` (any
    /// other status, and only those without `attention`) is at or before `until`, oldest first, at most `limit`.
    fn deposits_due(
        &self,
        status: &str,
        until: DateTime<Utc>,
        limit: u64,
    ) -> impl Future<Output = RepoResult<Vec<DepositRecord>>> + Send;

    /// Deposits changed since `since` whose outcome at Stripe may be unknown to us (`pending`, or held with a
    /// capture asked for), oldest change first, at most `limit`.
    fn deposits_to_reconcile(
        &self,
        since: DateTime<Utc>,
        limit: u64,
    ) -> impl Future<Output = RepoResult<Vec<DepositRecord>>> + Send;

    /// Deposits with a re-authorisation awaiting its answer (`reauth_seq`) or a replaced hold still to release
    /// (`release`), oldest change first, at most `limit`.
    fn deposits_unfinished(&self, limit: u64) -> impl Future<Output = RepoResult<Vec<DepositRecord>>> + Send;
}

impl PaymentStore for PaymentRepo {
    async fn invoice_of_order(&self, order_id: Uuid) -> RepoResult<Option<InvoiceRecord>> {
        PaymentRepo::invoice_of_order(self, order_id).await
    }
    async fn create(
        &self,
        uow: &UnitOfWork,
        new: NewStripePayment,
        at: DateTime<Utc>,
    ) -> RepoResult<StripePaymentRecord> {
        PaymentRepo::create(self, uow, new, at).await
    }
    async fn attach(
        &self,
        uow: &UnitOfWork,
        id: Uuid,
        session: Option<&str>,
        intent: Option<&str>,
        at: DateTime<Utc>,
    ) -> RepoResult<()> {
        PaymentRepo::attach(self, uow, id, session, intent, at).await
    }
    async fn get(&self, id: Uuid) -> RepoResult<Option<StripePaymentRecord>> {
        PaymentRepo::get(self, id).await
    }
    async fn lock(&self, uow: &UnitOfWork, key: PaymentKey<'_>) -> RepoResult<Option<StripePaymentRecord>> {
        PaymentRepo::lock(self, uow, key).await
    }
    async fn store_facts(
        &self,
        uow: &UnitOfWork,
        current: &StripePaymentRecord,
        facts: &PaymentFacts,
        at: DateTime<Utc>,
    ) -> RepoResult<()> {
        PaymentRepo::store_facts(self, uow, current, facts, at).await
    }
    async fn list(&self, query: &ListQuery) -> RepoResult<Listing<StripePaymentRecord>> {
        PaymentRepo::list(self, query).await
    }
    async fn unsettled(&self, since: DateTime<Utc>, limit: u64) -> RepoResult<Vec<StripePaymentRecord>> {
        PaymentRepo::unsettled(self, since, limit).await
    }
    async fn add_refund(
        &self,
        uow: &UnitOfWork,
        payment_id: Uuid,
        amount_minor: i64,
        requested_by: Option<Uuid>,
        at: DateTime<Utc>,
    ) -> RepoResult<RefundRecord> {
        PaymentRepo::add_refund(self, uow, payment_id, amount_minor, requested_by, at).await
    }
    async fn refunds_reserved(&self, uow: &UnitOfWork, payment_id: Uuid) -> RepoResult<i64> {
        PaymentRepo::refunds_reserved(self, uow, payment_id).await
    }
    async fn refunds_succeeded(&self, uow: &UnitOfWork, payment_id: Uuid) -> RepoResult<i64> {
        PaymentRepo::refunds_succeeded(self, uow, payment_id).await
    }
    async fn finish_refund(
        &self,
        uow: &UnitOfWork,
        refund_id: Uuid,
        stripe_refund_id: Option<&str>,
        at: DateTime<Utc>,
    ) -> RepoResult<()> {
        PaymentRepo::finish_refund(self, uow, refund_id, stripe_refund_id, at).await
    }
    async fn refunds(&self, payment_id: Uuid) -> RepoResult<Vec<RefundRecord>> {
        PaymentRepo::refunds(self, payment_id).await
    }
    async fn refunds_in(&self, uow: &UnitOfWork, payment_id: Uuid) -> RepoResult<Vec<RefundRecord>> {
        PaymentRepo::refunds_in(self, uow, payment_id).await
    }
    async fn requested_refunds(
        &self,
        since: DateTime<Utc>,
        limit: u64,
    ) -> RepoResult<Vec<(RefundRecord, Option<String>)>> {
        PaymentRepo::requested_refunds(self, since, limit).await
    }
    async fn stripe_customer(&self, user_id: Uuid) -> RepoResult<Option<String>> {
        PaymentRepo::stripe_customer(self, user_id).await
    }
    async fn link_customer_in(
        &self,
        uow: &UnitOfWork,
        user_id: Uuid,
        customer: &str,
        at: DateTime<Utc>,
    ) -> RepoResult<String> {
        PaymentRepo::link_customer_in(self, uow, user_id, customer, at).await
    }
    async fn link_customer(&self, user_id: Uuid, customer: &str, at: DateTime<Utc>) -> RepoResult<String> {
        PaymentRepo::link_customer(self, user_id, customer, at).await
    }
    async fn record_event(&self, uow: &UnitOfWork, new: NewWebhookEvent, at: DateTime<Utc>) -> RepoResult<bool> {
        PaymentRepo::record_event(self, uow, new, at).await
    }
    async fn event(&self, event_id: &str) -> RepoResult<Option<WebhookEventRecord>> {
        PaymentRepo::event(self, event_id).await
    }
    async fn deferred_events(&self, uow: &UnitOfWork, intent: &str) -> RepoResult<Vec<WebhookEventRecord>> {
        PaymentRepo::deferred_events(self, uow, intent).await
    }
    async fn mark_applied(
        &self,
        uow: &UnitOfWork,
        event_id: &str,
        payment_id: Uuid,
        at: DateTime<Utc>,
    ) -> RepoResult<()> {
        PaymentRepo::mark_applied(self, uow, event_id, payment_id, at).await
    }
    async fn lock_deposit_order(&self, uow: &UnitOfWork, order_id: Uuid) -> RepoResult<Option<DepositOrder>> {
        PaymentRepo::lock_deposit_order(self, uow, order_id).await
    }
    async fn lock_deposit(&self, uow: &UnitOfWork, key: DepositKey<'_>) -> RepoResult<Option<DepositRecord>> {
        PaymentRepo::lock_deposit(self, uow, key).await
    }
    async fn deposit_of_order(&self, order_id: Uuid) -> RepoResult<Option<DepositRecord>> {
        PaymentRepo::deposit_of_order(self, order_id).await
    }
    async fn deposit(&self, id: Uuid) -> RepoResult<Option<DepositRecord>> {
        PaymentRepo::deposit(self, id).await
    }
    async fn insert_deposit(&self, uow: &UnitOfWork, deposit: &DepositRecord) -> RepoResult<()> {
        PaymentRepo::insert_deposit(self, uow, deposit).await
    }
    async fn save_deposit(&self, uow: &UnitOfWork, deposit: &DepositRecord) -> RepoResult<()> {
        PaymentRepo::save_deposit(self, uow, deposit).await
    }
    async fn deposits_due(&self, status: &str, until: DateTime<Utc>, limit: u64) -> RepoResult<Vec<DepositRecord>> {
        PaymentRepo::deposits_due(self, status, until, limit).await
    }
    async fn deposits_to_reconcile(&self, since: DateTime<Utc>, limit: u64) -> RepoResult<Vec<DepositRecord>> {
        PaymentRepo::deposits_to_reconcile(self, since, limit).await
    }
    async fn deposits_unfinished(&self, limit: u64) -> RepoResult<Vec<DepositRecord>> {
        PaymentRepo::deposits_unfinished(self, limit).await
    }
}
