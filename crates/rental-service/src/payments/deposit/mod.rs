//! Deposits held on the customer's card: a Stripe payment intent with manual capture for the sum of an
//! order's line deposits, captured in full or in part (damage, late fees) or released.
//!
//! **The expiry rule.** Stripe keeps an online card hold for about 7 days. A hold is therefore placed no
//! earlier than [`DepositConfig::lead_days`] (default 1) before the rental's start: asked for earlier, the
//! deposit is recorded as `scheduled` with `place_from`, and the deposit job places it from then on. A hold
//! that has been in place [`DepositConfig::expiry_warning_days`] (default 6) is flagged (`attention`) by the
//! same job, saying when it lapses and whether its rental still runs, so that staff capture what is owed or
//! release it before Stripe drops it, unless the hold is re-authorised:
//!
//! **Long rentals.** When the hold period, from placing the hold to the rental's end plus
//! [`DepositConfig::return_margin_days`], is longer than a hold lives ([`DepositConfig::hold_life_days`]), the
//! hold is placed for the customer's Stripe customer with `setup_future_usage=off_session`, which saves the
//! card. At `expiry_warning_days`, while the rental still outlasts the hold, the deposit job places a new hold
//! of the same amount off-session on the saved card (the next `hold_seq`, noted in `reauth_seq` before Stripe
//! is asked), and only once Stripe answers it `requires_capture` makes it the current hold and releases the
//! old one with the old hold's key. A refusal keeps the old hold and flags the deposit; a crash anywhere is
//! finished by the next run with the same keys, so Stripe answers the hold it made instead of making another.
//!
//! **Stripe and our records.** Every mutating call carries an idempotency key derived from the deposit and
//! its hold: `deposit:<id>:<hold_seq>:hold`, `…:capture`, `…:release`; the intent's metadata carries
//! `deposit:<id>:<hold_seq>` so that webhook events find the deposit and events of an older hold are told
//! apart. The order is: a unit of work checks and notes what is asked (the deposit row, the capture's amount);
//! then Stripe is called; then a unit of work records Stripe's answer together with the `Idempotency-Key`
//! record of the request. When Stripe cannot be reached or answers late, nothing is marked (the deposit stays
//! as it was, and the next attempt sends the same Stripe key, so Stripe answers it with the first result).
//! When Stripe refuses a hold for good, the deposit becomes `failed` and may be placed again with the next
//! `hold_seq`. Webhook events apply through [`super::merge::merge_deposit`], in any order.

mod job;

use chrono::{DateTime, Duration, Utc};
use rental_domain::OrderStatus;
use rental_repo::{DepositKey, DepositOrder, DepositRecord, NewWebhookEvent, PaymentStore, RepoError, UnitOfWork};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::merge::{PaymentEvent, merge_deposit};
use super::webhook::{WebhookEvent, WebhookOutcome};
use super::{PaymentService, gateway_error, invalid};
use crate::{GatewayPayment, GatewayPaymentStatus, PaymentRequest, PortError, Principal, ServiceError, ServiceResult};

/// How long Stripe keeps an online card hold, in days (the default of [`DepositConfig::hold_life_days`]).
pub const HOLD_LIFETIME_DAYS: u32 = 7;

/// Most deposits one run of the deposit job handles per sweep.
const RUN_BATCH: u64 = 200;

/// How deposits are held.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DepositConfig {
    /// A hold is placed at most this many days before the rental's start (0: from the start). Default 1.
    pub lead_days: u32,
    /// A hold in place for this many days is re-authorised (a card saved for a long rental) or flagged for
    /// staff, before Stripe lets it lapse after about [`DepositConfig::hold_life_days`]. Default 6.
    pub expiry_warning_days: u32,
    /// How long Stripe keeps an online card hold, in days. Default [`HOLD_LIFETIME_DAYS`] (7).
    pub hold_life_days: u32,
    /// How long after the rental's end the deposit stays held while the return is inspected, in days: part of
    /// the hold period that decides whether the card is saved. Default 1.
    pub return_margin_days: u32,
}

impl Default for DepositConfig {
    fn default() -> Self {
        Self { lead_days: 1, expiry_warning_days: 6, hold_life_days: HOLD_LIFETIME_DAYS, return_margin_days: 1 }
    }
}

impl DepositConfig {
    /// How long a hold lives.
    pub fn hold_life(&self) -> Duration {
        Duration::days(i64::from(self.hold_life_days))
    }

    /// Whether a hold placed at `placed` must outlive a card hold to cover a rental ending at `ends_at` (with
    /// the return margin): then the card is saved and the hold re-authorised before it lapses.
    pub fn outlasts_a_hold(&self, placed: DateTime<Utc>, ends_at: DateTime<Utc>) -> bool {
        ends_at + Duration::days(i64::from(self.return_margin_days)) - placed > self.hold_life()
    }
}

/// A rental order's deposit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DepositView {
    /// Our id.
    pub id: Uuid,
    /// The order.
    pub order_id: Uuid,
    /// Its customer.
    pub customer_id: Uuid,
    /// `scheduled` (placed from `place_from`), `pending` (asked of Stripe, waiting for the customer's card),
    /// `failed`, `requires_capture` (held), `succeeded` (captured, in full or in part) or `canceled` (released).
    pub status: String,
    /// The deposit, minor units.
    pub amount_minor: i64,
    /// Its currency (the order's).
    pub currency: String,
    /// Held on the card, minor units.
    pub amount_held_minor: i64,
    /// Captured, minor units.
    pub amount_captured_minor: i64,
    /// What may still be captured, minor units.
    pub amount_capturable_minor: i64,
    /// 1, 2, … : the hold's number (a new one after a failure).
    pub hold_seq: i32,
    /// When a hold may be placed.
    pub place_from: DateTime<Utc>,
    /// Stripe's payment intent of the current hold.
    pub payment_intent_id: Option<String>,
    /// When the hold was first seen in place.
    pub authorised_at: Option<DateTime<Utc>>,
    /// When the hold lapses at Stripe (about 7 days after it was placed).
    pub hold_expires_at: Option<DateTime<Utc>>,
    /// Why staff should look at it (a hold about to lapse).
    pub attention: Option<String>,
    /// Stripe's reason of a failure.
    pub failure_reason: Option<String>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

impl DepositView {
    /// The view of `d` whose holds live `life` (see [`DepositConfig::hold_life_days`]).
    fn of(d: DepositRecord, life: Duration) -> Self {
        let mut view = Self::from(d);
        view.hold_expires_at = view.authorised_at.map(|at| at + life);
        view
    }
}

impl From<DepositRecord> for DepositView {
    fn from(d: DepositRecord) -> Self {
        let capturable =
            if d.status == "requires_capture" { (d.amount_held_minor - d.amount_captured_minor).max(0) } else { 0 };
        Self {
            id: d.id,
            order_id: d.order_id,
            customer_id: d.customer_id,
            amount_capturable_minor: capturable,
            status: d.status,
            amount_minor: d.amount.amount_minor,
            currency: d.amount.currency.to_string(),
            amount_held_minor: d.amount_held_minor,
            amount_captured_minor: d.amount_captured_minor,
            hold_seq: d.hold_seq,
            place_from: d.place_from,
            payment_intent_id: d.payment_intent_id,
            hold_expires_at: d.authorised_at.map(|at| at + Duration::days(i64::from(HOLD_LIFETIME_DAYS))),
            authorised_at: d.authorised_at,
            attention: d.attention,
            failure_reason: d.failure_reason,
            created_at: d.created_at,
            updated_at: d.updated_at,
        }
    }
}

/// A deposit placed or scheduled, with what the customer's browser needs to confirm the hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DepositHoldView {
    /// The deposit.
    pub deposit: DepositView,
    /// For Stripe.js's `confirmCardPayment` (none while `scheduled`).
    pub client_secret: Option<String>,
}

/// What a run of the deposit job did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DepositRunReport {
    /// Scheduled deposits placed at Stripe.
    pub placed: usize,
    /// Scheduled deposits dropped because their order no longer runs.
    pub dropped: usize,
    /// Holds flagged as about to lapse (not re-authorised: no saved card, the rental ends in time, or the
    /// off-session hold was refused).
    pub flagged: usize,
    /// Holds re-authorised off-session on the saved card (a new hold in place of one about to lapse).
    pub reauthorised: usize,
    /// Replaced holds released at Stripe.
    pub released: usize,
    /// Deposits that could not be handled (tried again next run).
    pub failed: usize,
}

fn conflict(message: impl Into<String>) -> ServiceError {
    ServiceError::Conflict { message: message.into(), index: None }
}

fn runs(status: OrderStatus) -> bool {
    matches!(status, OrderStatus::Reserved | OrderStatus::PickedUp)
}

/// What the first unit of a placement decided.
enum Placement {
    /// Ask Stripe for this hold.
    Place(DepositRecord),
    /// Recorded as scheduled; nothing to ask Stripe yet.
    Scheduled(DepositHoldView),
}

impl<P: PaymentStore> PaymentService<P> {
    /// The deposit of an order.
    ///
    /// # Errors
    /// [`ServiceError::NotFound`] for an unknown order, another customer's, or an order without a deposit
    /// record.
    pub async fn deposit(&self, principal: &Principal, order_id: Uuid) -> ServiceResult<DepositView> {
        match self.repo.deposit_of_order(order_id).await? {
            Some(d) if principal.is_staff() || d.customer_id == principal.user_id.as_uuid() => {
                Ok(DepositView::of(d, self.deposits.hold_life()))
            }
            _ => Err(ServiceError::NotFound("deposit")),
        }
    }

    /// Places the deposit of an order as a hold on the customer's card, or records it as `scheduled` when the
    /// rental starts later than [`DepositConfig::lead_days`] from now (see the module's expiry rule). Staff or
    /// the order's customer.
    ///
    /// # Errors
    /// [`ServiceError::NotFound`] for an unknown order or another customer's; [`ServiceError::Conflict`] when
    /// the order is not reserved or picked up, has no deposit, or its deposit is already scheduled, pending,
    /// held or settled; [`ServiceError::Upstream`] or [`ServiceError::Timeout`] when Stripe fails (nothing is
    /// then marked; a refusal marks the deposit `failed`).
    #[tracing::instrument(skip(self, principal))]
    pub async fn place_deposit(&self, principal: &Principal, order_id: Uuid) -> ServiceResult<DepositHoldView> {
        let gateway = self.gateway()?;
        let placement = self
            .db
            .write(async |uow| {
                let order = self.repo.lock_deposit_order(uow, order_id).await?;
                let order = match order {
                    Some(o) if principal.is_staff() || o.customer_id == principal.user_id.as_uuid() => o,
                    _ => return Err(ServiceError::NotFound("order")),
                };
                self.prepare_placement(uow, &order).await
            })
            .await?;
        let deposit = match placement {
            Placement::Scheduled(view) => return Ok(view),
            Placement::Place(deposit) => deposit,
        };
        self.ask_for_hold(gateway, deposit).await
    }

    /// Checks the order and its deposit in `uow` and decides what to do; a schedule is recorded (with the
    /// request's idempotency record) in `uow`.
    async fn prepare_placement(&self, uow: &UnitOfWork, order: &DepositOrder) -> ServiceResult<Placement> {
        if !runs(order.status) {
            return Err(conflict(format!(
                "the order is {}; a deposit is held for a reserved or picked-up rental",
                order.status.as_str()
            )));
        }
        if order.deposit.amount_minor <= 0 {
            return Err(conflict("no deposit is due on the order"));
        }
        let now = self.clock.now();
        let place_from = order.starts_at - Duration::days(i64::from(self.deposits.lead_days));
        let existing = self.repo.lock_deposit(uow, DepositKey::Order(order.id)).await?;
        let mut deposit = match existing {
            None => {
                let status = if now >= place_from { "pending" } else { "scheduled" };
                let deposit = DepositRecord {
                    stripe_customer_id: self.repo.stripe_customer(order.customer_id).await?,
                    ..DepositRecord::new(order.id, order.customer_id, order.deposit, status, place_from, now)
                };
                self.repo.insert_deposit(uow, &deposit).await?;
                deposit
            }
            Some(d) => match (d.status.as_str(), d.payment_intent_id.is_some()) {
                ("scheduled", _) if now < d.place_from => {
                    return Err(conflict(format!("the deposit is already scheduled from {}", d.place_from)));
                }
                ("scheduled", _) | ("pending", false) => d,
                ("pending", true) => return Err(conflict("a hold was asked for and waits for the customer's card")),
                ("failed", _) => DepositRecord {
                    hold_seq: d.hold_seq + 1,
                    status: "pending".into(),
                    payment_intent_id: None,
                    failure_reason: None,
                    amount_held_minor: 0,
                    capture_requested_minor: None,
                    authorised_at: None,
                    ..d
                },
                ("requires_capture", _) => return Err(conflict("a hold is already active for the order's deposit")),
                (status, _) => return Err(conflict(format!("the deposit is already settled ({status})"))),
            },
        };
        if deposit.status == "scheduled" && now < deposit.place_from {
            let view =
                DepositHoldView { deposit: DepositView::of(deposit, self.deposits.hold_life()), client_secret: None };
            self.record_answer(uow, &view).await?;
            return Ok(Placement::Scheduled(view));
        }
        deposit.status = "pending".into();
        // The rule for long rentals: a hold that must outlive a card hold saves the card, so that the deposit
        // job can place the next hold without the customer before this one lapses.
        deposit.saves_card = self.deposits.outlasts_a_hold(now, order.ends_at);
        deposit.updated_at = now;
        self.repo.save_deposit(uow, &deposit).await?;
        Ok(Placement::Place(deposit))
    }

    /// Claims this request's idempotency key in `uow` and stores `answer` as its answer.
    async fn record_answer<T: Serialize>(&self, uow: &UnitOfWork, answer: &T) -> ServiceResult<()> {
        if let Some(claim) = self.claim.as_deref() {
            self.keys()?.claim(uow, claim).await?;
            self.keys()?.complete(uow, claim, answer).await?;
        }
        Ok(())
    }

    /// Asks Stripe for the hold of `deposit` (noted `pending`) and records the answer. A hold that saves the
    /// card needs the customer's Stripe customer, which is created (or found, by its key) first.
    pub(super) async fn ask_for_hold(
        &self,
        gateway: &dyn crate::PaymentGateway,
        mut deposit: DepositRecord,
    ) -> ServiceResult<DepositHoldView> {
        let life = self.deposits.hold_life();
        if deposit.saves_card && deposit.stripe_customer_id.is_none() {
            let customer = self.stripe_customer_of(gateway, deposit.customer_id).await?;
            deposit = self
                .db
                .write(async |uow| {
                    let mut current = self
                        .repo
                        .lock_deposit(uow, DepositKey::Id(deposit.id))
                        .await?
                        .ok_or(ServiceError::NotFound("deposit"))?;
                    if current.stripe_customer_id.is_none() {
                        current.stripe_customer_id = Some(customer.clone());
                        self.repo.save_deposit(uow, &current).await?;
                    }
                    Ok::<_, ServiceError>(DepositRecord { stripe_customer_id: current.stripe_customer_id, ..deposit })
                })
                .await?;
        }
        let hold = format!("deposit:{}:{}", deposit.id, deposit.hold_seq);
        let request = PaymentRequest {
            amount: deposit.amount,
            customer: deposit.stripe_customer_id.clone(),
            capture_later: true,
            save_card: deposit.saves_card && deposit.stripe_customer_id.is_some(),
            off_session_payment_method: None,
            description: Some(format!("Deposit for rental {}", deposit.order_id)),
            reference: hold.clone(),
            idempotency_key: format!("{hold}:hold"),
        };
        match gateway.create_payment(&request).await {
            Ok(intent) => {
                let secret = intent.client_secret.clone();
                self.settle_deposit(deposit.id, deposit.hold_seq, &intent, |d| DepositHoldView {
                    deposit: DepositView::of(d, life),
                    client_secret: secret,
                })
                .await
            }
            Err(err @ PortError::Rejected(_)) => {
                let reason = err.to_string();
                let now = self.clock.now();
                self.db
                    .write(async |uow| {
                        let Some(mut current) = self.repo.lock_deposit(uow, DepositKey::Id(deposit.id)).await? else {
                            return Ok::<_, RepoError>(());
                        };
                        if current.hold_seq == deposit.hold_seq && current.status == "pending" {
                            "failed".clone_into(&mut current.status);
                            current.failure_reason = Some(reason.clone());
                            current.updated_at = now;
                            self.repo.save_deposit(uow, &current).await?;
                        }
                        Ok(())
                    })
                    .await?;
                Err(gateway_error(err))
            }
            // The outcome is unknown: nothing is marked, and a retry sends the same key.
            Err(err) => Err(gateway_error(err)),
        }
    }

    /// Records what Stripe answered about hold `hold_seq` of deposit `id` (its intent `intent`), with the
    /// request's idempotency record, in one unit; `answer` makes the response from the stored deposit.
    async fn settle_deposit<T: Serialize>(
        &self,
        id: Uuid,
        hold_seq: i32,
        intent: &GatewayPayment,
        answer: impl FnOnce(DepositRecord) -> T,
    ) -> ServiceResult<T> {
        let effect = effect_of(intent);
        let method = intent.payment_method.clone();
        let intent = intent.id.as_str();
        let now = self.clock.now();
        self.db
            .write(async |uow| {
                let current =
                    self.repo.lock_deposit(uow, DepositKey::Id(id)).await?.ok_or(ServiceError::NotFound("deposit"))?;
                let mut next = current.clone();
                if next.hold_seq == hold_seq && next.payment_intent_id.as_deref().is_none_or(|i| i == intent) {
                    next.payment_intent_id = Some(intent.to_owned());
                    if let Some(effect) = &effect {
                        next = merge_deposit(&next, effect, now);
                    }
                    if next.saves_card && next.payment_method_id.is_none() {
                        next.payment_method_id.clone_from(&method);
                    }
                }
                if next != current {
                    next.updated_at = now;
                    self.repo.save_deposit(uow, &next).await?;
                }
                let answer = answer(next);
                self.record_answer(uow, &answer).await?;
                Ok(answer)
            })
            .await
    }

    /// Captures `amount_minor` of an order's held deposit (all that is held when `None`), for damage or late
    /// fees; Stripe releases the rest. Staff. Refused before Stripe is called when the amount is not above 0
    /// or above what is held. A deposit still `pending` with an intent is first looked up at Stripe, so that a
    /// hold whose webhook was missed is recorded (as the reconciliation would) and captured.
    ///
    /// # Errors
    /// [`ServiceError::Forbidden`]; [`ServiceError::NotFound`]; [`ServiceError::Conflict`] when no hold is in
    /// place or another amount's capture was asked of Stripe without an answer; [`ServiceError::Invalid`] for
    /// a bad amount; [`ServiceError::Upstream`] or [`ServiceError::Timeout`] when Stripe fails (nothing is then
    /// marked captured).
    #[tracing::instrument(skip(self, principal))]
    pub async fn capture_deposit(
        &self,
        principal: &Principal,
        order_id: Uuid,
        amount_minor: Option<i64>,
    ) -> ServiceResult<DepositView> {
        principal.require_staff()?;
        let life = self.deposits.hold_life();
        let gateway = self.gateway()?;
        if amount_minor.is_some_and(|amount| amount <= 0) {
            return Err(invalid("amount_minor", "must be positive"));
        }
        // A hold asked of Stripe whose confirmation (or its webhook) we have not seen: ask Stripe first, so that a
        // hold the customer did confirm is recorded and captured rather than refused.
        if let Some(pending) = self.repo.deposit_of_order(order_id).await?.filter(|d| d.status == "pending")
            && let Some(intent) = pending.payment_intent_id.as_deref()
        {
            let remote = gateway.retrieve_payment(intent).await.map_err(gateway_error)?;
            self.merge_remote_deposit(&pending, &remote).await?;
        }
        let now = self.clock.now();
        let (deposit, intent, amount) = self
            .db
            .write(async |uow| {
                let mut d = self.held_deposit(uow, order_id).await?;
                let held = (d.amount_held_minor - d.amount_captured_minor).max(0);
                let amount = amount_minor.unwrap_or(held);
                if amount <= 0 {
                    return Err(invalid("amount_minor", "must be positive"));
                }
                if amount > held {
                    return Err(invalid("amount_minor", format!("exceeds the amount held ({held})")));
                }
                match d.capture_requested_minor {
                    Some(asked) if asked != amount => {
                        return Err(conflict(format!(
                            "a capture of {asked} was asked of Stripe without an answer; repeat it with that amount"
                        )));
                    }
                    Some(_) => {}
                    None => {
                        d.capture_requested_minor = Some(amount);
                        d.updated_at = now;
                        self.repo.save_deposit(uow, &d).await?;
                    }
                }
                let intent = d.payment_intent_id.clone().ok_or(ServiceError::Internal("held without intent".into()))?;
                Ok((d, intent, amount))
            })
            .await?;
        let key = format!("deposit:{}:{}:capture", deposit.id, deposit.hold_seq);
        let captured = gateway.capture(&intent, Some(amount), &key).await.map_err(gateway_error)?;
        self.settle_deposit(deposit.id, deposit.hold_seq, &captured, |d| DepositView::of(d, life)).await
    }

    /// The deposit of `order_id`, locked, which must be held (`requires_capture`).
    async fn held_deposit(&self, uow: &UnitOfWork, order_id: Uuid) -> ServiceResult<DepositRecord> {
        let d = self.repo.lock_deposit(uow, DepositKey::Order(order_id)).await?;
        let d = d.ok_or(ServiceError::NotFound("deposit"))?;
        if d.status != "requires_capture" || d.payment_intent_id.is_none() {
            return Err(conflict(format!("no hold is in place: the deposit is {}", d.status)));
        }
        Ok(d)
    }

    /// Releases an order's deposit: cancels its hold at Stripe, or drops it when no hold was asked for yet
    /// (`scheduled`, `failed`). Staff.
    ///
    /// # Errors
    /// [`ServiceError::Forbidden`]; [`ServiceError::NotFound`]; [`ServiceError::Conflict`] when the deposit is
    /// already captured or released, or asked of Stripe without an answer yet; [`ServiceError::Upstream`] or
    /// [`ServiceError::Timeout`] when Stripe fails (nothing is then marked).
    #[tracing::instrument(skip(self, principal))]
    pub async fn release_deposit(&self, principal: &Principal, order_id: Uuid) -> ServiceResult<DepositView> {
        principal.require_staff()?;
        let life = self.deposits.hold_life();
        let gateway = self.gateway()?;
        let now = self.clock.now();
        let local = self
            .db
            .write(async |uow| {
                let d = self.repo.lock_deposit(uow, DepositKey::Order(order_id)).await?;
                let mut d = d.ok_or(ServiceError::NotFound("deposit"))?;
                match (d.status.as_str(), d.payment_intent_id.is_some()) {
                    ("scheduled" | "failed", _) => {
                        "canceled".clone_into(&mut d.status);
                        d.updated_at = now;
                        self.repo.save_deposit(uow, &d).await?;
                        let view = DepositView::of(d, self.deposits.hold_life());
                        self.record_answer(uow, &view).await?;
                        Ok(Err(view))
                    }
                    ("requires_capture" | "pending", true) if d.capture_requested_minor.is_none() => Ok(Ok(d)),
                    ("requires_capture", true) => {
                        Err(conflict("a capture was asked of Stripe without an answer; repeat the capture"))
                    }
                    ("pending", false) => Err(conflict("a hold was asked of Stripe without an answer; place it again")),
                    (status, _) => Err(conflict(format!("the deposit is already settled ({status})"))),
                }
            })
            .await?;
        let deposit = match local {
            Ok(deposit) => deposit,
            Err(view) => return Ok(view),
        };
        let intent = deposit.payment_intent_id.clone().unwrap_or_default();
        let key = format!("deposit:{}:{}:release", deposit.id, deposit.hold_seq);
        let released = gateway.release(&intent, &key).await.map_err(gateway_error)?;
        self.settle_deposit(deposit.id, deposit.hold_seq, &released, |d| DepositView::of(d, life)).await
    }

    /// Merges what Stripe says of `deposit`'s current intent now (`remote`) into the row, by the events' rule;
    /// nothing when the row moved on to another hold meanwhile.
    pub(super) async fn merge_remote_deposit(
        &self,
        deposit: &DepositRecord,
        remote: &GatewayPayment,
    ) -> ServiceResult<()> {
        let Some(effect) = effect_of(remote) else { return Ok(()) };
        let now = self.clock.now();
        self.db
            .write(async |uow| {
                let Some(current) = self.repo.lock_deposit(uow, DepositKey::Id(deposit.id)).await? else {
                    return Ok::<_, ServiceError>(());
                };
                if current.hold_seq != deposit.hold_seq || current.payment_intent_id.as_deref() != Some(&remote.id) {
                    return Ok(());
                }
                let mut next = merge_deposit(&current, &effect, now);
                if next.saves_card && next.payment_method_id.is_none() {
                    next.payment_method_id.clone_from(&remote.payment_method);
                }
                if next != current {
                    next.updated_at = now;
                    self.repo.save_deposit(uow, &next).await?;
                }
                Ok(())
            })
            .await
    }

    /// Applies a webhook event that concerns a deposit (named by its reference, or by its current intent) in
    /// `uow`, recording the event; `None` when the event concerns no deposit. An event of an older hold of the
    /// deposit is recorded as `unmatched` and changes nothing.
    pub(crate) async fn deposit_webhook(
        &self,
        uow: &UnitOfWork,
        event: &WebhookEvent,
    ) -> ServiceResult<Option<WebhookOutcome>> {
        let effect = &event.effect;
        let (deposit, hold) = match effect.deposit_hold() {
            Some((id, seq)) => (self.repo.lock_deposit(uow, DepositKey::Id(id)).await?, Some(seq)),
            None => match effect.payment_intent() {
                Some(intent) => (self.repo.lock_deposit(uow, DepositKey::Intent(intent)).await?, None),
                None => (None, None),
            },
        };
        if deposit.is_none() && hold.is_none() {
            return Ok(None);
        }
        let intent = effect.payment_intent();
        let current = deposit.as_ref().is_some_and(|deposit| {
            hold.is_none_or(|seq| seq == deposit.hold_seq)
                && deposit.payment_intent_id.as_deref().is_none_or(|known| Some(known) == intent)
        });
        let outcome = match effect {
            PaymentEvent::Ignored => WebhookOutcome::Ignored,
            _ if current => WebhookOutcome::Applied,
            _ => WebhookOutcome::Unmatched,
        };
        let new = NewWebhookEvent {
            event_id: event.id.clone(),
            kind: event.kind.clone(),
            api_version: event.api_version.clone(),
            stripe_created: event.created,
            outcome: outcome.as_str(),
            payment_id: None,
            payment_intent_id: intent.map(str::to_owned),
            effect: None,
        };
        let now = self.clock.now();
        if !self.repo.record_event(uow, new, now).await? {
            return Ok(Some(WebhookOutcome::Duplicate));
        }
        if let (WebhookOutcome::Applied, Some(deposit)) = (outcome, deposit) {
            let mut next = merge_deposit(&deposit, effect, now);
            if next != deposit {
                next.updated_at = now;
                self.repo.save_deposit(uow, &next).await?;
            }
        }
        Ok(Some(outcome))
    }
}

/// What Stripe's answer about a hold says, as the event it stands for (`None`: nothing to note yet).
fn effect_of(intent: &GatewayPayment) -> Option<PaymentEvent> {
    let id = intent.id.clone();
    match intent.status {
        GatewayPaymentStatus::RequiresCapture => Some(PaymentEvent::HoldPlaced {
            intent: id,
            reference: None,
            amount_capturable_minor: intent.amount_capturable_minor,
        }),
        GatewayPaymentStatus::Succeeded => Some(PaymentEvent::IntentSucceeded {
            intent: id,
            reference: None,
            amount_received_minor: intent.amount_received_minor,
        }),
        GatewayPaymentStatus::Canceled => Some(PaymentEvent::IntentCanceled { intent: id, reference: None }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hold_saves_the_card_only_when_the_rental_and_its_margin_outlast_a_hold() {
        let config = DepositConfig::default();
        let placed = DateTime::<Utc>::UNIX_EPOCH;
        // Placed, then 6 days of rental and a day's margin: exactly a hold's 7 days, which it covers.
        assert!(!config.outlasts_a_hold(placed, placed + Duration::days(6)));
        assert!(config.outlasts_a_hold(placed, placed + Duration::days(6) + Duration::seconds(1)));
        let no_margin = DepositConfig { return_margin_days: 0, ..config.clone() };
        assert!(!no_margin.outlasts_a_hold(placed, placed + Duration::days(7)));
        let long_holds = DepositConfig { hold_life_days: 30, ..config };
        assert!(!long_holds.outlasts_a_hold(placed, placed + Duration::days(20)));
        assert_eq!(long_holds.hold_life(), Duration::days(30));
    }
}
