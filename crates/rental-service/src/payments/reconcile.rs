//! Reconciliation: recent payments that Stripe may have settled without our knowing (a missed webhook, a crash
//! between Stripe's answer and our commit) are compared with Stripe's payment intent and repaired with the same
//! ordering rule as the webhook's events, so a repair and a late event never count money twice.
//!
//! Refunds whose outcome is unknown (Stripe timed out or failed with a 5xx after we sent them) are still
//! `requested`: the reconciliation sends each again with its own idempotency key (`payment:<id>:refund:<n>`)
//! and the same amount. Stripe answers a key it has seen with the first call's result (the refund it made), and
//! one it has not seen (the first call never reached it) by making the refund now, which is what staff asked
//! for; a refusal marks the refund `failed`, releasing its amount. Stripe keeps a key for 24 hours, so only
//! refunds asked for within [`REFUND_KEY_LIFETIME`] are sent again: an older one could be made twice, and stays
//! `requested` for an operator (logged, and counted in `refunds_unresolved`).
//!
//! Deposits (`stripe_deposits`) whose outcome at Stripe may be unknown are repaired too:
//! - `pending` with a payment intent (Stripe answered; the customer's confirmation, or its webhook, missing):
//!   the intent is retrieved and its state merged through [`super::merge::merge_deposit`], the rule of the
//!   webhook's events, so a repair and a late event end in the same row;
//! - `pending` without one (asked of Stripe, its answer never recorded: a crash or a timeout after Stripe
//!   answered): once the request is older than the idempotency hold (the time a request may still be waiting
//!   for Stripe), the hold is asked again with the same key and the same parameters, so Stripe answers the
//!   intent it made (or makes it now, if the first request never reached it), and the answer is recorded.
//!   Older than [`REFUND_KEY_LIFETIME`] (Stripe may have forgotten the key) it is left for the next request
//!   to place the deposit, which is allowed for a `pending` deposit without intent;
//! - held with a capture asked of Stripe (`capture_requested_minor`) but not recorded: the intent is retrieved;
//!   a capture Stripe made (or a hold Stripe cancelled) is merged, one Stripe never made is left for staff to
//!   repeat with the same amount (the rule of the capture endpoint).

use chrono::{DateTime, Duration, Utc};
use rental_repo::{PaymentKey, PaymentStore};
use serde::Serialize;
use uuid::Uuid;

use super::PaymentService;
use super::merge::PaymentEvent;
use crate::{GatewayPaymentStatus, PortError, ServiceError, ServiceResult};

/// How long after it was asked for a `requested` refund is sent to Stripe again: under Stripe's 24 hours of
/// idempotency keys, with an hour's margin.
pub const REFUND_KEY_LIFETIME: Duration = Duration::hours(23);

/// A payment the reconciliation changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReconciledPayment {
    /// Our payment.
    pub payment_id: Uuid,
    /// Its status before.
    pub from: String,
    /// Its status after.
    pub to: String,
}

/// What a reconciliation run did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ReconcileReport {
    /// Payments compared with Stripe.
    pub checked: usize,
    /// Payments repaired.
    pub changed: Vec<ReconciledPayment>,
    /// Payments Stripe could not be asked about (tried again next run).
    pub failed: usize,
    /// Refunds of unknown outcome settled: `(refund id, "succeeded" | "failed")`.
    pub refunds: Vec<(Uuid, String)>,
    /// Refunds still of unknown outcome: Stripe could not be asked (tried again next run), or asked for longer
    /// ago than [`REFUND_KEY_LIFETIME`] (left to an operator).
    pub refunds_unresolved: usize,
    /// Deposits compared with Stripe (or whose hold was asked again).
    pub deposits_checked: usize,
    /// Deposits repaired.
    pub deposits_changed: Vec<ReconciledDeposit>,
    /// Deposits Stripe could not be asked about (tried again next run).
    pub deposits_failed: usize,
}

/// A deposit the reconciliation changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReconciledDeposit {
    /// Our deposit.
    pub deposit_id: Uuid,
    /// Its status before.
    pub from: String,
    /// Its status after.
    pub to: String,
    /// The payment intent of its hold, when the repair recorded it.
    pub payment_intent_id: Option<String>,
}

impl<P: PaymentStore> PaymentService<P> {
    /// Compares the payments created since `since` that are still pending or failed (at most `limit`) with
    /// Stripe and repairs those Stripe settled.
    ///
    /// # Errors
    /// [`ServiceError::Repo`]; a payment Stripe cannot be asked about is counted in `failed`, not an error.
    pub async fn reconcile(&self, since: DateTime<Utc>, limit: u64) -> ServiceResult<ReconcileReport> {
        let gateway = self.gateway()?;
        let mut report = ReconcileReport::default();
        for payment in self.repo.unsettled(since, limit).await? {
            let Some(intent) = payment.payment_intent_id.clone() else { continue };
            report.checked += 1;
            let remote = match gateway.retrieve_payment(&intent).await {
                Ok(remote) => remote,
                Err(err) => {
                    tracing::warn!(payment = %payment.id, error = %err, "reconciliation: Stripe could not be asked");
                    report.failed += 1;
                    continue;
                }
            };
            let effect = match remote.status {
                GatewayPaymentStatus::Succeeded => PaymentEvent::IntentSucceeded {
                    intent: intent.clone(),
                    reference: None,
                    amount_received_minor: remote.amount_received_minor,
                },
                GatewayPaymentStatus::Canceled => {
                    PaymentEvent::IntentCanceled { intent: intent.clone(), reference: None }
                }
                _ => continue,
            };
            let changed = self
                .db
                .write(async |uow| {
                    let Some(current) = self.repo.lock(uow, PaymentKey::Id(payment.id)).await? else {
                        return Ok::<_, ServiceError>(None);
                    };
                    let from = current.status.clone();
                    self.apply(uow, current, &effect).await?;
                    let after = self.repo.lock(uow, PaymentKey::Id(payment.id)).await?;
                    Ok(after.filter(|a| a.status != from).map(|a| ReconciledPayment {
                        payment_id: a.id,
                        from,
                        to: a.status,
                    }))
                })
                .await?;
            if let Some(changed) = changed {
                tracing::info!(payment = %changed.payment_id, from = %changed.from, to = %changed.to, "reconciliation repaired a payment");
                report.changed.push(changed);
            }
        }
        self.reconcile_refunds(since, limit, &mut report).await?;
        self.reconcile_deposits(since, limit, &mut report).await?;
        Ok(report)
    }

    /// Repairs the deposits changed since `since` (at most `limit`) whose outcome at Stripe may be unknown
    /// (see the module's rules).
    async fn reconcile_deposits(
        &self,
        since: DateTime<Utc>,
        limit: u64,
        report: &mut ReconcileReport,
    ) -> ServiceResult<()> {
        let gateway = self.gateway()?;
        let now = self.clock.now();
        for deposit in self.repo.deposits_to_reconcile(since, limit).await? {
            let repaired = match deposit.payment_intent_id.clone() {
                Some(intent) => {
                    report.deposits_checked += 1;
                    match gateway.retrieve_payment(&intent).await {
                        Ok(remote) => self.merge_remote_deposit(&deposit, &remote).await,
                        Err(err) => Err(super::gateway_error(err)),
                    }
                }
                None if deposit.updated_at > now - self.hold || deposit.updated_at < now - REFUND_KEY_LIFETIME => {
                    // Still in flight, or too old to ask again safely: left alone.
                    continue;
                }
                None => {
                    report.deposits_checked += 1;
                    self.ask_for_hold(gateway, deposit.clone()).await.map(|_| ())
                }
            };
            if let Err(err) = repaired {
                tracing::warn!(deposit = %deposit.id, error = %err, "reconciliation: cannot repair a deposit");
                report.deposits_failed += 1;
            }
            // A refusal of the hold asked again marks the deposit failed: a change too.
            let after = self.repo.deposit(deposit.id).await?;
            if let Some(after) =
                after.filter(|a| a.status != deposit.status || a.payment_intent_id != deposit.payment_intent_id)
            {
                tracing::info!(deposit = %after.id, from = %deposit.status, to = %after.status, "reconciliation repaired a deposit");
                report.deposits_changed.push(ReconciledDeposit {
                    deposit_id: after.id,
                    from: deposit.status.clone(),
                    to: after.status,
                    payment_intent_id: after.payment_intent_id,
                });
            }
        }
        Ok(())
    }

    /// Settles the `requested` refunds asked for since `since` (at most `limit`) by sending them again.
    async fn reconcile_refunds(
        &self,
        since: DateTime<Utc>,
        limit: u64,
        report: &mut ReconcileReport,
    ) -> ServiceResult<()> {
        let gateway = self.gateway()?;
        let now = self.clock.now();
        let resendable = now - REFUND_KEY_LIFETIME;
        for (refund, intent) in self.repo.requested_refunds(since, limit).await? {
            let Some(intent) = intent.filter(|_| refund.created_at >= resendable) else {
                tracing::warn!(refund = %refund.id, "reconciliation: a refund's outcome is unknown and cannot be asked again safely");
                report.refunds_unresolved += 1;
                continue;
            };
            let key = format!("payment:{}:refund:{}", refund.payment_id, refund.seq);
            let settled = match gateway.refund(&intent, Some(refund.amount_minor), &key).await {
                Ok(stripe_id) => {
                    let at = self.clock.now();
                    self.db
                        .write(async |uow| self.record_refund(uow, refund.payment_id, refund.id, &stripe_id, at).await)
                        .await?;
                    "succeeded"
                }
                Err(PortError::Rejected(reason)) => {
                    tracing::warn!(refund = %refund.id, %reason, "reconciliation: Stripe refused a refund");
                    let at = self.clock.now();
                    self.db.write(async |uow| self.repo.finish_refund(uow, refund.id, None, at).await).await?;
                    "failed"
                }
                Err(err) => {
                    tracing::warn!(refund = %refund.id, error = %err, "reconciliation: Stripe could not be asked about a refund");
                    report.refunds_unresolved += 1;
                    continue;
                }
            };
            tracing::info!(refund = %refund.id, to = settled, "reconciliation settled a refund");
            report.refunds.push((refund.id, settled.to_owned()));
        }
        Ok(())
    }
}
