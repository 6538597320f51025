//! Reconciliation: recent payments that Stripe may have settled without our knowing (a missed webhook, a crash
//! between Stripe's answer and our commit) are compared with Stripe's payment intent and repaired with the same
//! ordering rule as the webhook's events, so a repair and a late event never count money twice.

use chrono::{DateTime, Utc};
use rental_repo::PaymentKey;
use serde::Serialize;
use uuid::Uuid;

use super::PaymentService;
use super::merge::PaymentEvent;
use crate::{GatewayPaymentStatus, ServiceError, ServiceResult};

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
        Ok(report)
    }
}
