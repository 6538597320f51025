//! The deposit job (`payments.deposits`): places scheduled deposits when their time comes, re-authorises the
//! holds of long rentals on the saved card before they lapse, flags the others for staff, and finishes what an
//! earlier run left half-done. The rules are in the parent module's documentation.

use chrono::{DateTime, Duration, Utc};
use rental_repo::{DepositKey, DepositRecord, PaymentStore, RepoError, UnitOfWork};
use uuid::Uuid;

use super::{DepositRunReport, Placement, RUN_BATCH, runs};
use crate::payments::{PaymentService, gateway_error};
use crate::{GatewayPaymentStatus, PaymentRequest, PortError, ServiceError, ServiceResult};

/// What the deposit job does with a hold about to lapse.
enum Expiring {
    /// Nothing (handled meanwhile).
    Nothing,
    /// Flagged for staff.
    Flagged,
    /// Re-authorise it (noted in `reauth_seq`).
    Reauthorise(Box<DepositRecord>),
}

/// How a re-authorisation ended.
enum Reauthorised {
    /// The new hold is the current one; the old one is noted for release.
    Switched,
    /// Stripe refused the new hold: the old one stays, the deposit is flagged.
    Refused,
    /// Nothing more to do (done by another run, or the deposit was settled meanwhile).
    Settled,
}

impl<P: PaymentStore> PaymentService<P> {
    /// The deposit job: finishes what an earlier run left (a re-authorisation without its answer recorded, a
    /// replaced hold not released yet), places the scheduled deposits whose time has come (dropping those whose
    /// order no longer runs), and handles the holds in place for [`DepositConfig::expiry_warning_days`]: one
    /// whose card was saved and whose rental (with its return margin) outlasts it is re-authorised off-session
    /// ([`Self::reauthorise`]); any other is flagged (`attention`) for staff. A deposit that cannot be handled
    /// now is counted in `failed` and tried again next run.
    ///
    /// # Errors
    /// [`ServiceError::Repo`] when the deposits cannot be read.
    pub async fn run_deposits(&self) -> ServiceResult<DepositRunReport> {
        let gateway = self.gateway()?;
        let mut report = DepositRunReport::default();
        let now = self.clock.now();
        // Work an earlier run left unfinished (a crash, Stripe unreachable): the same keys make it safe.
        for unfinished in self.repo.deposits_unfinished(RUN_BATCH).await? {
            if unfinished.reauth_seq.is_some() {
                self.reauthorise(gateway, unfinished, &mut report).await;
            } else {
                self.release_replaced(gateway, unfinished.id, &mut report).await;
            }
        }
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
            if held.reauth_seq.is_some() {
                // Handled by the repair sweep above.
                continue;
            }
            let decided = self.db.write(async |uow| self.expiring_hold(uow, held.id, warn_before).await).await;
            match decided {
                Ok(Expiring::Nothing) => {}
                Ok(Expiring::Flagged) => report.flagged += 1,
                Ok(Expiring::Reauthorise(deposit)) => self.reauthorise(gateway, *deposit, &mut report).await,
                Err(err) => {
                    tracing::warn!(deposit = %held.id, error = %err, "deposit job: cannot handle a hold about to lapse");
                    report.failed += 1;
                }
            }
        }
        Ok(report)
    }

    /// Decides, in `uow`, what to do with the hold of deposit `id` in place since `warn_before` or earlier: note
    /// a re-authorisation (its `hold_seq` in `reauth_seq`) when the card was saved and the rental still runs
    /// past the hold's lapse (with the return margin), else flag it once for staff.
    async fn expiring_hold(&self, uow: &UnitOfWork, id: Uuid, warn_before: DateTime<Utc>) -> ServiceResult<Expiring> {
        let Some(mut d) = self.repo.lock_deposit(uow, DepositKey::Id(id)).await? else { return Ok(Expiring::Nothing) };
        let order = self.repo.lock_deposit_order(uow, d.order_id).await?;
        let Some(authorised) = d.authorised_at.filter(|at| d.status == "requires_capture" && *at <= warn_before) else {
            return Ok(Expiring::Nothing);
        };
        if d.attention.is_some() || d.reauth_seq.is_some() {
            return Ok(Expiring::Nothing);
        }
        let lapses = authorised + self.deposits.hold_life();
        let running = order.filter(|o| runs(o.status));
        let outlasts = running.as_ref().is_some_and(|o| self.deposits.outlasts_a_hold(authorised, o.ends_at));
        let now = self.clock.now();
        if outlasts
            && d.saves_card
            && d.stripe_customer_id.is_some()
            && d.capture_requested_minor.is_none()
            && d.release.is_none()
        {
            d.reauth_seq = Some(d.hold_seq + 1);
            d.updated_at = now;
            self.repo.save_deposit(uow, &d).await?;
            return Ok(Expiring::Reauthorise(Box::new(d)));
        }
        d.attention = Some(match running {
            Some(o) => format!(
                "the hold lapses at about {lapses} while the rental runs until {}: capture what is owed before \
                 then, or release it and place a new deposit",
                o.ends_at
            ),
            None => format!("the hold lapses at about {lapses}: capture what is owed or release it"),
        });
        d.updated_at = now;
        self.repo.save_deposit(uow, &d).await?;
        Ok(Expiring::Flagged)
    }

    /// Re-authorises `deposit`'s hold (noted with its `reauth_seq`): places a new hold of the same amount
    /// off-session on the saved card (key `deposit:<id>:<reauth_seq>:hold`, so a repeat after a crash gets
    /// Stripe's first answer and never a second hold); once that hold is `requires_capture`, records it as the
    /// current hold (the old one noted for release) and releases the old one with its own key. A refusal
    /// (authentication required, a declined card) keeps the old hold and flags the deposit for staff; Stripe
    /// unreachable leaves the note for the next run. The outcome is counted in `report`.
    async fn reauthorise(
        &self,
        gateway: &dyn crate::PaymentGateway,
        deposit: DepositRecord,
        report: &mut DepositRunReport,
    ) {
        let id = deposit.id;
        match self.reauthorise_hold(gateway, deposit).await {
            Ok(Reauthorised::Switched) => report.reauthorised += 1,
            Ok(Reauthorised::Refused) => report.flagged += 1,
            Ok(Reauthorised::Settled) => {}
            Err(err) => {
                tracing::warn!(deposit = %id, error = %err, "deposit job: cannot re-authorise a hold");
                report.failed += 1;
                return;
            }
        }
        self.release_replaced(gateway, id, report).await;
    }

    async fn reauthorise_hold(
        &self,
        gateway: &dyn crate::PaymentGateway,
        deposit: DepositRecord,
    ) -> ServiceResult<Reauthorised> {
        let Some(seq) = deposit.reauth_seq else { return Ok(Reauthorised::Settled) };
        let old_intent = deposit.payment_intent_id.clone();
        // The saved card: learnt when the first hold was answered, else from the held intent at Stripe.
        let method = match (&deposit.payment_method_id, &old_intent) {
            (Some(method), _) => Some(method.clone()),
            (None, Some(intent)) => match gateway.retrieve_payment(intent).await {
                Ok(remote) => remote.payment_method,
                Err(err @ PortError::Rejected(_)) => {
                    return self.refuse_reauth(deposit.id, seq, &format!("its hold cannot be read: {err}")).await;
                }
                Err(err) => return Err(gateway_error(err)),
            },
            (None, None) => None,
        };
        let Some(method) = method else {
            return self.refuse_reauth(deposit.id, seq, "no saved card is known for it").await;
        };
        let hold = format!("deposit:{}:{seq}", deposit.id);
        let request = PaymentRequest {
            amount: deposit.amount,
            customer: deposit.stripe_customer_id.clone(),
            capture_later: true,
            save_card: false,
            off_session_payment_method: Some(method.clone()),
            description: Some(format!("Deposit for rental {} (re-authorised)", deposit.order_id)),
            reference: hold.clone(),
            idempotency_key: format!("{hold}:hold"),
        };
        let intent = match gateway.create_payment(&request).await {
            Ok(intent) => intent,
            Err(err @ PortError::Rejected(_)) => return self.refuse_reauth(deposit.id, seq, &err.to_string()).await,
            Err(err) => return Err(gateway_error(err)),
        };
        if intent.status != GatewayPaymentStatus::RequiresCapture {
            let reason = format!("Stripe answered the new hold {} with {}", intent.id, intent.status.as_str());
            return self.refuse_reauth(deposit.id, seq, &reason).await;
        }
        let now = self.clock.now();
        self.db
            .write(async |uow| {
                let Some(mut d) = self.repo.lock_deposit(uow, DepositKey::Id(deposit.id)).await? else {
                    return Ok(Reauthorised::Settled);
                };
                if d.reauth_seq != Some(seq) {
                    return Ok(Reauthorised::Settled);
                }
                d.reauth_seq = None;
                d.updated_at = now;
                let still_held = d.status == "requires_capture"
                    && d.hold_seq == seq - 1
                    && d.capture_requested_minor.is_none()
                    && d.release.is_none();
                let outcome = if let (true, Some(old)) = (still_held, d.payment_intent_id.clone()) {
                    d.release = Some((old, d.hold_seq));
                    d.hold_seq = seq;
                    d.payment_intent_id = Some(intent.id.clone());
                    d.payment_method_id = Some(intent.payment_method.clone().unwrap_or(method));
                    d.amount_held_minor = intent.amount_capturable_minor;
                    d.amount_captured_minor = 0;
                    d.authorised_at = Some(now);
                    d.attention = None;
                    Reauthorised::Switched
                } else {
                    // Captured or released meanwhile: the new hold is not wanted.
                    if d.release.is_none() {
                        d.release = Some((intent.id.clone(), seq));
                    }
                    Reauthorised::Settled
                };
                self.repo.save_deposit(uow, &d).await?;
                Ok::<_, ServiceError>(outcome)
            })
            .await
    }

    /// Clears the re-authorisation `seq` of deposit `id`, whose new hold Stripe refused, and flags the deposit:
    /// the old hold stays as it was, for staff to capture or release before it lapses.
    async fn refuse_reauth(&self, id: Uuid, seq: i32, reason: &str) -> ServiceResult<Reauthorised> {
        tracing::warn!(deposit = %id, %reason, "deposit job: the off-session hold was refused; flagged for staff");
        let now = self.clock.now();
        let life = self.deposits.hold_life();
        self.db
            .write(async |uow| {
                let Some(mut d) = self.repo.lock_deposit(uow, DepositKey::Id(id)).await? else {
                    return Ok(Reauthorised::Settled);
                };
                if d.reauth_seq != Some(seq) {
                    return Ok(Reauthorised::Settled);
                }
                d.reauth_seq = None;
                let lapses = d.authorised_at.map_or_else(|| "its time".to_owned(), |at| (at + life).to_string());
                d.attention = Some(format!(
                    "the hold lapses at about {lapses} and could not be renewed without the customer ({reason}): \
                     capture what is owed before then, or release it and place a new deposit with the customer"
                ));
                d.updated_at = now;
                self.repo.save_deposit(uow, &d).await?;
                Ok::<_, ServiceError>(Reauthorised::Refused)
            })
            .await
    }

    /// Releases at Stripe the replaced hold noted on deposit `id`, with that hold's own key, and clears the
    /// note. Stripe refusing (the hold already lapsed or was released) also clears it; Stripe unreachable
    /// leaves it for the next run.
    async fn release_replaced(&self, gateway: &dyn crate::PaymentGateway, id: Uuid, report: &mut DepositRunReport) {
        let noted = match self.repo.deposit(id).await {
            Ok(d) => d.and_then(|d| d.release),
            Err(err) => {
                tracing::warn!(deposit = %id, error = %err, "deposit job: cannot read a deposit");
                report.failed += 1;
                return;
            }
        };
        let Some((intent, seq)) = noted else { return };
        let key = format!("deposit:{id}:{seq}:release");
        match gateway.release(&intent, &key).await {
            Ok(_) => report.released += 1,
            Err(PortError::Rejected(reason)) => {
                tracing::warn!(deposit = %id, %intent, %reason, "deposit job: Stripe refused to release a replaced hold");
            }
            Err(err) => {
                tracing::warn!(deposit = %id, %intent, error = %err, "deposit job: cannot release a replaced hold");
                report.failed += 1;
                return;
            }
        }
        let now = self.clock.now();
        let cleared = self
            .db
            .write(async |uow| {
                if let Some(mut d) = self.repo.lock_deposit(uow, DepositKey::Id(id)).await?
                    && d.release.as_ref().is_some_and(|(noted, _)| *noted == intent)
                {
                    d.release = None;
                    d.updated_at = now;
                    self.repo.save_deposit(uow, &d).await?;
                }
                Ok::<_, RepoError>(())
            })
            .await;
        if let Err(err) = cleared {
            tracing::warn!(deposit = %id, error = %err, "deposit job: cannot note a released hold");
            report.failed += 1;
        }
    }
}
