//! The payment operations with an `Idempotency-Key` ([`PaymentService::idempotent`]). They call Stripe, which
//! no transaction can span, so the key is held across the call (see [`crate::idempotency::Held`]):
//!
//! 1. one unit claims the key, held for the service's lease, and writes our record (the payment, the refund)
//!    noted on the key's record; a duplicate meanwhile finds the key held: 409 `idempotency_conflict`;
//! 2. Stripe is called with the idempotency key derived from our record (`payment:<id>:checkout`, …);
//! 3. one unit writes Stripe's answer into our record and stores our answer on the key's record.
//!
//! When Stripe refuses (a 4xx), our record is marked failed and the key's record dropped: a retry runs afresh.
//! When Stripe's outcome is unknown (a timeout, a 5xx, no connection), the hold is released: a retry with the
//! key resumes the claim with the same record and so sends Stripe the same key, and Stripe answers the first
//! call's result (or does the work now, if the first call never reached it). A crash between Stripe's answer
//! and step 3 ends the same way once the hold runs out. A refund whose outcome is unknown stays `requested`
//! (its amount reserved) until a retry, Stripe's `charge.refunded` event or the reconciliation settles it.

use rental_domain::Money;
use rental_repo::{InvoiceRecord, PaymentKey, PaymentStore, RefundRecord, StripePaymentRecord, UnitOfWork};
use uuid::Uuid;

use super::{CheckoutView, PaymentIntentView, PaymentService, StripeCustomerView, StripePaymentView, gateway_error};
use crate::idempotency::Held;
use crate::{CheckoutRequest, IdempotencyClaim, PaymentRequest, PortError, Principal, ServiceError, ServiceResult};

fn resource_id(resource: &str) -> ServiceResult<Uuid> {
    Uuid::parse_str(resource).map_err(|_| ServiceError::Internal(format!("idempotency resource {resource:?}")))
}

impl<P: PaymentStore> PaymentService<P> {
    /// Step 1 for a payment: the claim, and the payment it made (a new one, or the first request's on a resume).
    async fn held_payment(
        &self,
        claim: &IdempotencyClaim,
        principal: &Principal,
        order_id: Uuid,
        kind: &'static str,
        amount: impl FnOnce(Money) -> ServiceResult<Money>,
    ) -> ServiceResult<(InvoiceRecord, StripePaymentRecord)> {
        let keys = self.keys()?;
        let uow = self.db.begin().await?;
        let result = async {
            if let Held::Resumed(Some(resource)) = keys.hold(&uow, claim, self.hold).await? {
                let payment = self
                    .repo
                    .lock(&uow, PaymentKey::Id(resource_id(&resource)?))
                    .await?
                    .ok_or(ServiceError::NotFound("payment"))?;
                let invoice =
                    self.repo.invoice_of_order(payment.order_id).await?.ok_or(ServiceError::NotFound("order"))?;
                return Ok((invoice, payment));
            }
            let (invoice, due) = self.payable_invoice(principal, order_id).await?;
            let payment = self.start_in(&uow, &invoice, kind, amount(due)?).await?;
            keys.note(&uow, claim, &payment.id.to_string()).await?;
            Ok((invoice, payment))
        }
        .await;
        uow.finish(result).await
    }

    /// Step 3 for a payment: Stripe's ids and our answer in one unit, or the failure.
    async fn settle_held<T: serde::Serialize>(
        &self,
        claim: &IdempotencyClaim,
        payment: &StripePaymentRecord,
        outcome: Result<(Option<String>, Option<String>), PortError>,
        answer: impl FnOnce(StripePaymentRecord) -> T,
    ) -> ServiceResult<T> {
        let keys = self.keys()?;
        let now = self.clock.now();
        match outcome {
            Ok((session, intent)) => {
                self.db
                    .write(async |uow| {
                        self.repo.attach(uow, payment.id, session.as_deref(), intent.as_deref(), now).await?;
                        let current = self
                            .repo
                            .lock(uow, PaymentKey::Id(payment.id))
                            .await?
                            .ok_or(ServiceError::NotFound("payment"))?;
                        let answer = answer(current);
                        keys.complete(uow, claim, &answer).await?;
                        Ok(answer)
                    })
                    .await
            }
            Err(err @ PortError::Rejected(_)) => {
                let reason = err.to_string();
                self.db
                    .write(async |uow| {
                        self.mark_failed(uow, payment.id, &reason).await?;
                        keys.forget(uow, claim).await
                    })
                    .await?;
                Err(gateway_error(err))
            }
            Err(err) => {
                keys.release(claim).await;
                Err(gateway_error(err))
            }
        }
    }

    pub(super) async fn keyed_checkout(
        &self,
        claim: &IdempotencyClaim,
        principal: &Principal,
        order_id: Uuid,
        success_url: &str,
        cancel_url: &str,
    ) -> ServiceResult<CheckoutView> {
        let gateway = self.gateway()?;
        let (invoice, payment) = self.held_payment(claim, principal, order_id, "checkout", Ok).await?;
        let request = CheckoutRequest {
            amount: payment.amount,
            description: format!("Invoice {}", invoice.number.as_deref().unwrap_or("(unnumbered)")),
            customer: payment.stripe_customer_id.clone(),
            success_url: success_url.to_owned(),
            cancel_url: cancel_url.to_owned(),
            reference: format!("payment:{}", payment.id),
            idempotency_key: format!("payment:{}:checkout", payment.id),
        };
        let created = gateway.create_checkout(&request).await;
        let url = created.as_ref().ok().and_then(|c| c.url.clone());
        let outcome = created.map(|c| (Some(c.id), c.payment_intent));
        self.settle_held(claim, &payment, outcome, |p| CheckoutView { payment: p.into(), url }).await
    }

    pub(super) async fn keyed_intent(
        &self,
        claim: &IdempotencyClaim,
        principal: &Principal,
        order_id: Uuid,
        amount: impl FnOnce(Money) -> ServiceResult<Money>,
    ) -> ServiceResult<PaymentIntentView> {
        let gateway = self.gateway()?;
        let (invoice, payment) = self.held_payment(claim, principal, order_id, "intent", amount).await?;
        let request = PaymentRequest {
            amount: payment.amount,
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
        let outcome = created.map(|p| (None, Some(p.id)));
        self.settle_held(claim, &payment, outcome, |p| PaymentIntentView { payment: p.into(), client_secret: secret })
            .await
    }

    pub(super) async fn keyed_refund(
        &self,
        claim: &IdempotencyClaim,
        principal: &Principal,
        id: Uuid,
        amount_minor: Option<i64>,
    ) -> ServiceResult<StripePaymentView> {
        principal.require_staff()?;
        let gateway = self.gateway()?;
        let keys = self.keys()?;
        let by = principal.user_id.as_uuid();
        let uow = self.db.begin().await?;
        let result: ServiceResult<(RefundRecord, String)> = async {
            if let Held::Resumed(Some(resource)) = keys.hold(&uow, claim, self.hold).await? {
                let refund_id = resource_id(&resource)?;
                let refund = self.repo.refunds_in(&uow, id).await?.into_iter().find(|r| r.id == refund_id);
                let payment = self.repo.lock(&uow, PaymentKey::Id(id)).await?;
                if let (Some(refund), Some(intent)) = (refund, payment.and_then(|p| p.payment_intent_id)) {
                    return Ok((refund, intent));
                }
                return Err(ServiceError::NotFound("refund"));
            }
            let (refund, intent) = self.reserve_refund(&uow, id, amount_minor, by).await?;
            keys.note(&uow, claim, &refund.id.to_string()).await?;
            Ok((refund, intent))
        }
        .await;
        let (refund, intent) = uow.finish(result).await?;
        let key = format!("payment:{id}:refund:{}", refund.seq);
        let answer = gateway.refund(&intent, Some(refund.amount_minor), &key).await;
        let now = self.clock.now();
        match answer {
            Ok(stripe_id) => {
                self.db
                    .write(async |uow| {
                        self.record_refund(uow, id, refund.id, &stripe_id, now).await?;
                        let view = self.view_in(uow, id).await?;
                        keys.complete(uow, claim, &view).await?;
                        Ok(view)
                    })
                    .await
            }
            Err(err @ PortError::Rejected(_)) => {
                self.db
                    .write(async |uow| {
                        self.repo.finish_refund(uow, refund.id, None, now).await?;
                        keys.forget(uow, claim).await
                    })
                    .await?;
                Err(gateway_error(err))
            }
            Err(err) => {
                keys.release(claim).await;
                Err(gateway_error(err))
            }
        }
    }

    pub(super) async fn keyed_customer(
        &self,
        claim: &IdempotencyClaim,
        principal: &Principal,
    ) -> ServiceResult<StripeCustomerView> {
        let gateway = self.gateway()?;
        let keys = self.keys()?;
        let user_id = principal.user_id.as_uuid();
        // Nothing to note: the key sent to Stripe is derived from the user (`user:<id>:customer`).
        self.db.write(async |uow| keys.hold(uow, claim, self.hold).await.map(|_| ())).await?;
        let found = match self.repo.stripe_customer(user_id).await {
            Ok(found) => found,
            Err(err) => {
                keys.release(claim).await;
                return Err(err.into());
            }
        };
        let (customer, is_new) = match found {
            Some(customer) => (customer, false),
            None => {
                let request = match self.customer_request(principal).await {
                    Ok(request) => request,
                    Err(err) => {
                        keys.release(claim).await;
                        return Err(err);
                    }
                };
                match gateway.create_customer(&request).await {
                    Ok(customer) => (customer, true),
                    Err(err @ PortError::Rejected(_)) => {
                        self.db.write(async |uow| keys.forget(uow, claim).await).await?;
                        return Err(gateway_error(err));
                    }
                    Err(err) => {
                        keys.release(claim).await;
                        return Err(gateway_error(err));
                    }
                }
            }
        };
        let now = self.clock.now();
        self.db
            .write(async |uow| {
                let linked = self.repo.link_customer_in(uow, user_id, &customer, now).await?;
                let view = StripeCustomerView { created: is_new && linked == customer, customer_id: linked };
                keys.complete(uow, claim, &view).await?;
                Ok(view)
            })
            .await
    }

    /// The payment with its refunds, read in `uow`.
    pub(super) async fn view_in(&self, uow: &UnitOfWork, id: Uuid) -> ServiceResult<StripePaymentView> {
        let payment = self.repo.lock(uow, PaymentKey::Id(id)).await?.ok_or(ServiceError::NotFound("payment"))?;
        let refunds = self.repo.refunds_in(uow, id).await?;
        let mut view = StripePaymentView::from(payment);
        view.refunds = Some(refunds.into_iter().map(super::RefundView::from).collect());
        Ok(view)
    }
}
