//! Applying Stripe's webhook events: each event once (its `webhook_events` row is written in the same
//! transaction as its effect, and a redelivery finds it there), in any order ([`super::merge`]).
//!
//! The payment an event concerns is found by our reference (`payment:<id>`, carried by every object we create)
//! or by Stripe's ids. A charge event may arrive before anything told us its payment intent (a checkout's
//! intent is only known once the session completes): it is then recorded as `deferred`, with its effect, and
//! applied in the transaction that learns the intent.

use rental_repo::{NewWebhookEvent, PaymentKey, PaymentStore, RepoError, StripePaymentRecord, UnitOfWork};

use super::PaymentService;
use super::merge::{PaymentEvent, merge};
use crate::{ServiceError, ServiceResult};

/// A verified Stripe event, read into our terms by the gateway's verifier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookEvent {
    /// Stripe's id (`evt_…`).
    pub id: String,
    /// Its type.
    pub kind: String,
    /// Its API version.
    pub api_version: Option<String>,
    /// When Stripe created it (Unix seconds).
    pub created: i64,
    /// What it says.
    pub effect: PaymentEvent,
}

/// What was done with an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookOutcome {
    /// Applied to a payment.
    Applied,
    /// Seen before: nothing done.
    Duplicate,
    /// A type we do not act on: recorded.
    Ignored,
    /// Waits for its payment intent to be known.
    Deferred,
    /// Names no payment or deposit of ours (a payment of another system on the same account, an older hold of
    /// a deposit): recorded.
    Unmatched,
}

impl WebhookOutcome {
    /// The word recorded and answered.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Applied => "applied",
            Self::Duplicate => "duplicate",
            Self::Ignored => "ignored",
            Self::Deferred => "deferred",
            Self::Unmatched => "unmatched",
        }
    }
}

impl<P: PaymentStore> PaymentService<P> {
    /// Applies a verified event once.
    ///
    /// # Errors
    /// [`ServiceError::Repo`] and the database's errors; nothing of the event is then recorded, and Stripe
    /// delivers it again.
    pub async fn handle_webhook(&self, event: WebhookEvent) -> ServiceResult<WebhookOutcome> {
        let now = self.clock.now();
        self.db
            .write(async |uow| {
                if let Some(outcome) = self.deposit_webhook(uow, &event).await? {
                    return Ok(outcome);
                }
                let payment = self.find(uow, &event.effect).await?;
                let (outcome, deferred_effect) = match (&payment, &event.effect) {
                    (_, PaymentEvent::Ignored) => (WebhookOutcome::Ignored, None),
                    (Some(_), _) => (WebhookOutcome::Applied, None),
                    (None, PaymentEvent::ChargeRefunded { payment_intent: Some(_), .. })
                    | (None, PaymentEvent::DisputeCreated { payment_intent: Some(_), .. }) => (
                        WebhookOutcome::Deferred,
                        Some(serde_json::to_string(&event.effect).map_err(|e| ServiceError::Internal(e.to_string()))?),
                    ),
                    (None, _) => (WebhookOutcome::Unmatched, None),
                };
                let new = NewWebhookEvent {
                    event_id: event.id.clone(),
                    kind: event.kind.clone(),
                    api_version: event.api_version.clone(),
                    stripe_created: event.created,
                    outcome: outcome.as_str(),
                    payment_id: payment.as_ref().map(|p| p.id),
                    payment_intent_id: event.effect.payment_intent().map(str::to_owned),
                    effect: deferred_effect,
                };
                if !self.repo.record_event(uow, new, now).await? {
                    return Ok(WebhookOutcome::Duplicate);
                }
                if let (Some(payment), WebhookOutcome::Applied) = (payment, outcome) {
                    self.apply(uow, payment, &event.effect).await?;
                }
                Ok(outcome)
            })
            .await
    }

    /// The payment an event concerns, locked.
    async fn find(&self, uow: &UnitOfWork, effect: &PaymentEvent) -> Result<Option<StripePaymentRecord>, RepoError> {
        if let Some(id) = effect.payment_id()
            && let Some(payment) = self.repo.lock(uow, PaymentKey::Id(id)).await?
        {
            return Ok(Some(payment));
        }
        if let PaymentEvent::CheckoutCompleted { session, .. } = effect
            && let Some(payment) = self.repo.lock(uow, PaymentKey::Session(session)).await?
        {
            return Ok(Some(payment));
        }
        match effect.payment_intent() {
            Some(intent) => self.repo.lock(uow, PaymentKey::Intent(intent)).await,
            None => Ok(None),
        }
    }

    /// Applies `effect` to the locked `payment` in `uow`, with the events deferred until its payment intent was
    /// known when `effect` makes it known.
    pub(crate) async fn apply(
        &self,
        uow: &UnitOfWork,
        payment: StripePaymentRecord,
        effect: &PaymentEvent,
    ) -> Result<(), ServiceError> {
        let now = self.clock.now();
        let mut facts = merge(&payment.facts, effect, payment.amount.amount_minor);
        if payment.facts.payment_intent_id.is_none()
            && let Some(intent) = facts.payment_intent_id.clone()
        {
            for deferred in self.repo.deferred_events(uow, &intent).await? {
                let Some(json) = deferred.effect.as_deref() else { continue };
                let effect: PaymentEvent =
                    serde_json::from_str(json).map_err(|e| ServiceError::Internal(format!("deferred event: {e}")))?;
                facts = merge(&facts, &effect, payment.amount.amount_minor);
                self.repo.mark_applied(uow, &deferred.event_id, payment.id, now).await?;
            }
        }
        if facts != payment.facts {
            self.repo.store_facts(uow, &payment, &facts, now).await?;
        }
        Ok(())
    }
}
