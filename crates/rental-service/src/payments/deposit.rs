//! Deposits held on the customer's card: a Stripe payment intent with manual capture for the sum of an
//! order's line deposits, captured in full or in part (damage, late fees) or released.
//!
//! **The expiry rule.** Stripe keeps an online card hold for about 7 days. A hold is therefore placed no
//! earlier than [`DepositConfig::lead_days`] (default 1) before the rental's start: asked for earlier, the
//! deposit is recorded as `scheduled` with `place_from`, and the deposit job places it from then on. A hold
//! that has been in place [`DepositConfig::expiry_warning_days`] (default 6) is flagged (`attention`) by the
//! same job, saying when it lapses and whether its rental still runs, so that staff capture what is owed or
//! release it before Stripe drops it. Re-authorising a hold without the customer (off-session) is not done.
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

use chrono::{DateTime, Duration, Utc};
use rental_domain::OrderStatus;
use rental_repo::{DepositKey, DepositOrder, DepositRecord, NewWebhookEvent, RepoError, UnitOfWork};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::merge::{PaymentEvent, merge_deposit};
use super::webhook::{WebhookEvent, WebhookOutcome};
use super::{PaymentService, gateway_error, invalid};
use crate::{GatewayPayment, GatewayPaymentStatus, PaymentRequest, PortError, Principal, ServiceError, ServiceResult};

/// How long Stripe keeps an online card hold.
pub const HOLD_LIFETIME_DAYS: i64 = 7;

/// Most deposits one run of the deposit job handles per sweep.
const RUN_BATCH: u64 = 200;

/// How deposits are held.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DepositConfig {
    /// A hold is placed at most this many days before the rental's start (0: from the start). Default 1.
    pub lead_days: u32,
    /// A hold in place for this many days is flagged for staff, before Stripe lets it lapse after about
    /// [`HOLD_LIFETIME_DAYS`]. Default 6.
    pub expiry_warning_days: u32,
}

impl Default for DepositConfig {
    fn default() -> Self {
        Self { lead_days: 1, expiry_warning_days: 6 }
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
            hold_expires_at: d.authorised_at.map(|at| at + Duration::days(HOLD_LIFETIME_DAYS)),
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
    /// Holds flagged as about to lapse.
    pub flagged: usize,
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

impl PaymentService {
    /// The deposit of an order.
    ///
    /// # Errors
    /// [`ServiceError::NotFound`] for an unknown order, another customer's, or an order without a deposit
    /// record.
    pub async fn deposit(&self, principal: &Principal, order_id: Uuid) -> ServiceResult<DepositView> {
        match self.repo.deposit_of_order(order_id).await? {
            Some(d) if principal.is_staff() || d.customer_id == principal.user_id.as_uuid() => Ok(d.into()),
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
                let deposit = DepositRecord {
                    id: Uuid::now_v7(),
                    order_id: order.id,
                    customer_id: order.customer_id,
                    amount: order.deposit,
                    status: if now >= place_from { "pending" } else { "scheduled" }.to_owned(),
                    hold_seq: 1,
                    place_from,
                    payment_intent_id: None,
                    stripe_customer_id: self.repo.stripe_customer(order.customer_id).await?,
                    amount_held_minor: 0,
                    amount_captured_minor: 0,
                    capture_requested_minor: None,
                    authorised_at: None,
                    attention: None,
                    failure_reason: None,
                    created_at: now,
                    updated_at: now,
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
            let view = DepositHoldView { deposit: deposit.into(), client_secret: None };
            self.record_answer(uow, &view).await?;
            return Ok(Placement::Scheduled(view));
        }
        deposit.status = "pending".into();
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

    /// Asks Stripe for the hold of `deposit` (noted `pending`) and records the answer.
    async fn ask_for_hold(
        &self,
        gateway: &dyn crate::PaymentGateway,
        deposit: DepositRecord,
    ) -> ServiceResult<DepositHoldView> {
        let hold = format!("deposit:{}:{}", deposit.id, deposit.hold_seq);
        let request = PaymentRequest {
            amount: deposit.amount,
            customer: deposit.stripe_customer_id.clone(),
            capture_later: true,
            description: Some(format!("Deposit for rental {}", deposit.order_id)),
            reference: hold.clone(),
            idempotency_key: format!("{hold}:hold"),
        };
        match gateway.create_payment(&request).await {
            Ok(intent) => {
                let secret = intent.client_secret.clone();
                let event = effect_of(&intent);
                self.settle_deposit(deposit.id, deposit.hold_seq, &intent.id, event, |d| DepositHoldView {
                    deposit: d.into(),
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
        intent: &str,
        effect: Option<PaymentEvent>,
        answer: impl FnOnce(DepositRecord) -> T,
    ) -> ServiceResult<T> {
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
    /// or above what is held.
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
        let gateway = self.gateway()?;
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
        let effect = effect_of(&captured);
        self.settle_deposit(deposit.id, deposit.hold_seq, &intent, effect, DepositView::from).await
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
                        let view = DepositView::from(d);
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
        let effect = effect_of(&released);
        self.settle_deposit(deposit.id, deposit.hold_seq, &intent, effect, DepositView::from).await
    }

    /// The deposit job: places the scheduled deposits whose time has come (dropping those whose order no
    /// longer runs) and flags the holds in place for [`DepositConfig::expiry_warning_days`]. A deposit that
    /// cannot be handled now is counted in `failed` and tried again next run.
    ///
    /// # Errors
    /// [`ServiceError::Repo`] when the deposits cannot be read.
    pub async fn run_deposits(&self) -> ServiceResult<DepositRunReport> {
        let gateway = self.gateway()?;
        let mut report = DepositRunReport::default();
        let now = self.clock.now();
        for due in self.repo.deposits_due("scheduled", now, RUN_BATCH).await? {
            let placement = self
                .db
                .write(async |uow| {
                    let order = self.repo.lock_deposit_order(uow, due.order_id).await?;
                    match order {
                        Some(order) if runs(order.status) => self.prepare_placement(uow, &order).await.map(Some),
                        _ => {
                            let Some(mut d) = self.repo.lock_deposit(uow, DepositKey::Id(due.id)).await? else {
                                return Ok(None);
                            };
                            if d.status == "scheduled" {
                                "canceled".clone_into(&mut d.status);
                                d.updated_at = self.clock.now();
                                self.repo.save_deposit(uow, &d).await?;
                            }
                            Ok(None)
                        }
                    }
                })
                .await;
            match placement {
                Ok(Some(Placement::Place(deposit))) => match self.ask_for_hold(gateway, deposit).await {
                    Ok(_) => report.placed += 1,
                    Err(err) => {
                        tracing::warn!(deposit = %due.id, error = %err, "deposit job: Stripe could not place a hold");
                        report.failed += 1;
                    }
                },
                Ok(None) => report.dropped += 1,
                Ok(Some(Placement::Scheduled(_))) => {}
                Err(err) => {
                    tracing::warn!(deposit = %due.id, error = %err, "deposit job: cannot place a scheduled deposit");
                    report.failed += 1;
                }
            }
        }
        let warn_before = now - Duration::days(i64::from(self.deposits.expiry_warning_days));
        for held in self.repo.deposits_due("requires_capture", warn_before, RUN_BATCH).await? {
            let flagged = self
                .db
                .write(async |uow| {
                    let order = self.repo.lock_deposit_order(uow, held.order_id).await?;
                    let Some(mut d) = self.repo.lock_deposit(uow, DepositKey::Id(held.id)).await? else {
                        return Ok::<_, ServiceError>(false);
                    };
                    let Some(authorised) = d.authorised_at.filter(|_| d.status == "requires_capture") else {
                        return Ok(false);
                    };
                    if d.attention.is_some() {
                        return Ok(false);
                    }
                    let lapses = authorised + Duration::days(HOLD_LIFETIME_DAYS);
                    d.attention = Some(match order.filter(|o| runs(o.status)) {
                        Some(o) => format!(
                            "the hold lapses at about {lapses} while the rental runs until {}: capture what is owed \
                             before then, or release it and place a new deposit",
                            o.ends_at
                        ),
                        None => format!("the hold lapses at about {lapses}: capture what is owed or release it"),
                    });
                    d.updated_at = self.clock.now();
                    self.repo.save_deposit(uow, &d).await?;
                    Ok(true)
                })
                .await;
            match flagged {
                Ok(true) => report.flagged += 1,
                Ok(false) => {}
                Err(err) => {
                    tracing::warn!(deposit = %held.id, error = %err, "deposit job: cannot flag a hold");
                    report.failed += 1;
                }
            }
        }
        Ok(report)
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
