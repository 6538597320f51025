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

use chrono::{DateTime, Duration, Utc};
use rental_repo::PaymentKey;
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
}

impl PaymentService {
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
        Ok(report)
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
