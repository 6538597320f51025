//! The ordering rule of Stripe's facts about a payment: whatever order events arrive in, the end state is the
//! same. Statuses have a precedence (`pending` < `failed` < `canceled` < `succeeded`; a lower one never
//! replaces a higher one), amounts paid and refunded only grow (each event carries Stripe's cumulative figure,
//! and the larger one wins), a dispute once noted stays, and ids once known are kept.

use chrono::{DateTime, Utc};
use rental_repo::{DepositRecord, PaymentFacts};
use serde::{Deserialize, Serialize};

/// What a Stripe event (or a reconciliation's look at Stripe) says about a payment, in our terms.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "effect", rename_all = "snake_case")]
#[non_exhaustive]
pub enum PaymentEvent {
    /// `checkout.session.completed`.
    CheckoutCompleted {
        /// The session.
        session: String,
        /// Its payment intent.
        payment_intent: Option<String>,
        /// Our reference (`payment:<id>`).
        reference: Option<String>,
        /// Whether the money is in.
        paid: bool,
    },
    /// `payment_intent.succeeded`.
    IntentSucceeded {
        /// The intent.
        intent: String,
        /// Our reference.
        reference: Option<String>,
        /// Received so far, minor units.
        amount_received_minor: i64,
    },
    /// `payment_intent.payment_failed`.
    IntentFailed {
        /// The intent.
        intent: String,
        /// Our reference.
        reference: Option<String>,
        /// Stripe's reason.
        reason: Option<String>,
    },
    /// `payment_intent.canceled`.
    IntentCanceled {
        /// The intent.
        intent: String,
        /// Our reference.
        reference: Option<String>,
    },
    /// `payment_intent.amount_capturable_updated`: a hold (deposits; a payment of ours only notes the intent).
    HoldPlaced {
        /// The intent.
        intent: String,
        /// Our reference.
        reference: Option<String>,
        /// Held and capturable, minor units.
        #[serde(default)]
        amount_capturable_minor: i64,
    },
    /// `charge.refunded`, with the charge's cumulative refunded amount.
    ChargeRefunded {
        /// The charge.
        charge: String,
        /// Its intent.
        payment_intent: Option<String>,
        /// Refunded so far, minor units.
        amount_refunded_minor: i64,
    },
    /// `charge.dispute.created`.
    DisputeCreated {
        /// The charge.
        charge: String,
        /// Its intent.
        payment_intent: Option<String>,
    },
    /// Any other type: recorded, not acted on.
    Ignored,
}

impl PaymentEvent {
    /// Our payment's id named by the event's reference (`payment:<uuid>`).
    pub fn payment_id(&self) -> Option<uuid::Uuid> {
        let reference = match self {
            Self::CheckoutCompleted { reference, .. }
            | Self::IntentSucceeded { reference, .. }
            | Self::IntentFailed { reference, .. }
            | Self::IntentCanceled { reference, .. }
            | Self::HoldPlaced { reference, .. } => reference.as_deref(),
            _ => None,
        }?;
        reference.strip_prefix("payment:").and_then(|id| id.parse().ok())
    }

    /// The deposit and hold named by the event's reference (`deposit:<uuid>:<hold_seq>`).
    pub fn deposit_hold(&self) -> Option<(uuid::Uuid, i32)> {
        let reference = match self {
            Self::IntentSucceeded { reference, .. }
            | Self::IntentFailed { reference, .. }
            | Self::IntentCanceled { reference, .. }
            | Self::HoldPlaced { reference, .. } => reference.as_deref(),
            _ => None,
        }?;
        let (id, seq) = reference.strip_prefix("deposit:")?.split_once(':')?;
        Some((id.parse().ok()?, seq.parse().ok()?))
    }

    /// The payment intent the event concerns.
    pub fn payment_intent(&self) -> Option<&str> {
        match self {
            Self::CheckoutCompleted { payment_intent, .. }
            | Self::ChargeRefunded { payment_intent, .. }
            | Self::DisputeCreated { payment_intent, .. } => payment_intent.as_deref(),
            Self::IntentSucceeded { intent, .. }
            | Self::IntentFailed { intent, .. }
            | Self::IntentCanceled { intent, .. }
            | Self::HoldPlaced { intent, .. } => Some(intent),
            Self::Ignored => None,
        }
    }
}

/// The precedence of a status; unknown words rank lowest.
pub fn rank(status: &str) -> u8 {
    match status {
        "failed" => 1,
        "canceled" => 2,
        "succeeded" => 3,
        _ => 0,
    }
}

fn raise(status: &mut String, to: &str) {
    if rank(to) > rank(status) {
        to.clone_into(status);
    }
}

/// The precedence of a deposit's status: `scheduled` and `pending` < `failed` < `requires_capture` <
/// `canceled` < `succeeded` (a hold is either captured or cancelled, never both).
pub fn deposit_rank(status: &str) -> u8 {
    match status {
        "failed" => 1,
        "requires_capture" => 2,
        "canceled" => 3,
        "succeeded" => 4,
        _ => 0,
    }
}

/// The deposit facts `current` with `event` applied, by the same rules as a payment's: a status never goes
/// down ([`deposit_rank`]), the amounts held and captured only grow (Stripe's figures are cumulative), the
/// first failure's reason stays, and `authorised_at` is the first time a hold was seen (`at`).
pub fn merge_deposit(current: &DepositRecord, event: &PaymentEvent, at: DateTime<Utc>) -> DepositRecord {
    let mut next = current.clone();
    let raise = |status: &mut String, to: &str| {
        if deposit_rank(to) > deposit_rank(status) {
            to.clone_into(status);
        }
    };
    if next.payment_intent_id.is_none() {
        next.payment_intent_id = event.payment_intent().map(str::to_owned);
    }
    match event {
        PaymentEvent::HoldPlaced { amount_capturable_minor, .. } => {
            raise(&mut next.status, "requires_capture");
            next.amount_held_minor = next.amount_held_minor.max(*amount_capturable_minor);
            next.authorised_at.get_or_insert(at);
        }
        PaymentEvent::IntentSucceeded { amount_received_minor, .. } => {
            raise(&mut next.status, "succeeded");
            next.amount_captured_minor = next.amount_captured_minor.max(*amount_received_minor);
            next.amount_held_minor = next.amount_held_minor.max(*amount_received_minor);
            next.authorised_at.get_or_insert(at);
        }
        PaymentEvent::IntentFailed { reason, .. } => {
            raise(&mut next.status, "failed");
            if next.failure_reason.is_none() {
                next.failure_reason.clone_from(reason);
            }
        }
        PaymentEvent::IntentCanceled { .. } => raise(&mut next.status, "canceled"),
        _ => {}
    }
    next
}

/// `current` with `event` applied; `amount_minor` is the amount the payment asked for (a completed, paid
/// checkout received exactly that).
pub fn merge(current: &PaymentFacts, event: &PaymentEvent, amount_minor: i64) -> PaymentFacts {
    let mut next = current.clone();
    if next.payment_intent_id.is_none() {
        next.payment_intent_id = event.payment_intent().map(str::to_owned);
    }
    match event {
        PaymentEvent::CheckoutCompleted { paid, .. } => {
            if *paid {
                raise(&mut next.status, "succeeded");
                next.amount_paid_minor = next.amount_paid_minor.max(amount_minor);
            }
        }
        PaymentEvent::IntentSucceeded { amount_received_minor, .. } => {
            raise(&mut next.status, "succeeded");
            next.amount_paid_minor = next.amount_paid_minor.max(*amount_received_minor);
        }
        PaymentEvent::IntentFailed { reason, .. } => {
            raise(&mut next.status, "failed");
            // The first reason stays: a later failure's reason would make the end state depend on the order.
            if next.failure_reason.is_none() {
                next.failure_reason.clone_from(reason);
            }
        }
        PaymentEvent::IntentCanceled { .. } => raise(&mut next.status, "canceled"),
        PaymentEvent::HoldPlaced { .. } | PaymentEvent::Ignored => {}
        PaymentEvent::ChargeRefunded { charge, amount_refunded_minor, .. } => {
            next.amount_refunded_minor = next.amount_refunded_minor.max(*amount_refunded_minor);
            if next.charge_id.is_none() {
                next.charge_id = Some(charge.clone());
            }
        }
        PaymentEvent::DisputeCreated { charge, .. } => {
            next.disputed = true;
            if next.charge_id.is_none() {
                next.charge_id = Some(charge.clone());
            }
        }
    }
    next
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events() -> Vec<PaymentEvent> {
        let intent = Some("pi_1".to_owned());
        vec![
            PaymentEvent::IntentFailed { intent: "pi_1".into(), reference: None, reason: Some("declined".into()) },
            PaymentEvent::CheckoutCompleted {
                session: "cs_1".into(),
                payment_intent: intent.clone(),
                reference: None,
                paid: true,
            },
            PaymentEvent::IntentSucceeded { intent: "pi_1".into(), reference: None, amount_received_minor: 5_000 },
            PaymentEvent::ChargeRefunded {
                charge: "ch_1".into(),
                payment_intent: intent.clone(),
                amount_refunded_minor: 1_000,
            },
            PaymentEvent::ChargeRefunded {
                charge: "ch_1".into(),
                payment_intent: intent.clone(),
                amount_refunded_minor: 3_000,
            },
            PaymentEvent::DisputeCreated { charge: "ch_1".into(), payment_intent: intent },
        ]
    }

    fn fold(events: &[PaymentEvent]) -> PaymentFacts {
        let start = PaymentFacts { status: "pending".into(), ..PaymentFacts::default() };
        events.iter().fold(start, |facts, event| merge(&facts, event, 5_000))
    }

    #[test]
    fn every_order_of_the_events_ends_in_the_same_facts() {
        let forward = fold(&events());
        assert_eq!(forward.status, "succeeded");
        assert_eq!((forward.amount_paid_minor, forward.amount_refunded_minor, forward.disputed), (5_000, 3_000, true));
        assert_eq!(forward.net_minor(), 2_000);
        let mut reversed = events();
        reversed.reverse();
        assert_eq!(fold(&reversed), forward);
        // Every rotation too.
        for shift in 0..events().len() {
            let mut rotated = events();
            rotated.rotate_left(shift);
            assert_eq!(fold(&rotated), forward, "rotation {shift}");
        }
    }

    #[test]
    fn a_lower_status_never_replaces_a_higher_one() {
        let succeeded = PaymentFacts { status: "succeeded".into(), amount_paid_minor: 10, ..PaymentFacts::default() };
        let failed = PaymentEvent::IntentFailed { intent: "pi".into(), reference: None, reason: None };
        assert_eq!(merge(&succeeded, &failed, 10).status, "succeeded");
        let pending = PaymentFacts { status: "pending".into(), ..PaymentFacts::default() };
        assert_eq!(merge(&pending, &failed, 10).status, "failed");
        let canceled = PaymentEvent::IntentCanceled { intent: "pi".into(), reference: None };
        assert_eq!(merge(&merge(&pending, &canceled, 10), &failed, 10).status, "canceled");
    }

    fn deposit() -> DepositRecord {
        // Fixed id and times, so that two folds of the same events compare equal.
        let (at, nil) = (chrono::DateTime::UNIX_EPOCH, uuid::Uuid::nil());
        let amount = rental_domain::Money::new(5_000, rental_domain::Currency::parse("EUR").unwrap());
        DepositRecord { id: nil, ..DepositRecord::new(nil, nil, amount, "pending", at, at) }
    }

    #[test]
    fn every_order_of_a_deposits_events_ends_in_the_same_deposit() {
        let at = chrono::DateTime::UNIX_EPOCH + chrono::Duration::days(1);
        let captured = vec![
            PaymentEvent::IntentFailed { intent: "pi_d".into(), reference: None, reason: Some("declined".into()) },
            PaymentEvent::HoldPlaced { intent: "pi_d".into(), reference: None, amount_capturable_minor: 5_000 },
            PaymentEvent::IntentSucceeded { intent: "pi_d".into(), reference: None, amount_received_minor: 3_000 },
        ];
        let released = vec![
            PaymentEvent::HoldPlaced { intent: "pi_d".into(), reference: None, amount_capturable_minor: 5_000 },
            PaymentEvent::IntentCanceled { intent: "pi_d".into(), reference: None },
            PaymentEvent::IntentFailed { intent: "pi_d".into(), reference: None, reason: None },
        ];
        for (events, status, held, taken) in [(captured, "succeeded", 5_000, 3_000), (released, "canceled", 5_000, 0)] {
            let fold = |events: &[PaymentEvent]| events.iter().fold(deposit(), |d, e| merge_deposit(&d, e, at));
            let forward = fold(&events);
            assert_eq!(forward.status, status);
            assert_eq!((forward.amount_held_minor, forward.amount_captured_minor), (held, taken));
            assert_eq!(forward.payment_intent_id.as_deref(), Some("pi_d"));
            assert_eq!(forward.authorised_at, Some(at));
            for shift in 0..events.len() {
                let mut rotated = events.clone();
                rotated.rotate_left(shift);
                assert_eq!(fold(&rotated), forward, "rotation {shift}");
                rotated.reverse();
                assert_eq!(fold(&rotated), forward, "reversed rotation {shift}");
            }
        }
    }

    #[test]
    fn deposit_references_name_the_deposit_and_its_hold() {
        let id = uuid::Uuid::now_v7();
        let event = PaymentEvent::HoldPlaced {
            intent: "pi".into(),
            reference: Some(format!("deposit:{id}:2")),
            amount_capturable_minor: 1,
        };
        assert_eq!(event.deposit_hold(), Some((id, 2)));
        assert_eq!(event.payment_id(), None);
        let payment = PaymentEvent::IntentCanceled { intent: "pi".into(), reference: Some(format!("payment:{id}")) };
        assert_eq!(payment.deposit_hold(), None);
    }

    #[test]
    fn references_name_our_payment() {
        let id = uuid::Uuid::now_v7();
        let event = PaymentEvent::IntentCanceled { intent: "pi".into(), reference: Some(format!("payment:{id}")) };
        assert_eq!(event.payment_id(), Some(id));
        let other = PaymentEvent::IntentCanceled { intent: "pi".into(), reference: Some("deposit:x".into()) };
        assert_eq!(other.payment_id(), None);
    }
}
