//! Stripe's webhook events: the `Stripe-Signature` check over the raw body (HMAC-SHA256 with the endpoint's
//! secret, 300 s tolerance, by async-stripe-webhook) and the reading of the events the payment flows act on
//! into [`EventEffect`]s that name our own records.
//!
//! An event of another API version than [`crate::API_VERSION`] is refused ([`WebhookError::ApiVersion`]),
//! never read as if it were ours: its objects may have other fields. Stripe retries a refused event for three
//! days, so the operator has that long to set the endpoint's version right; the refusal is logged by the
//! caller with the version found.

use rental_service::{GatewayPayment, PaymentEvent, Secret, WebhookEvent};
use stripe_shared::CheckoutSessionPaymentStatus;
use stripe_types::Expandable;
use stripe_webhook::{EventObject, Webhook, WebhookError as CrateError};

use crate::API_VERSION;
use crate::gateway::{REFERENCE_KEY, payment_of};

/// Why an event was refused. Nothing of a refused event may be applied.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum WebhookError {
    /// No `Stripe-Signature` header.
    #[error("the Stripe-Signature header is missing")]
    MissingSignature,
    /// The header is not `t=…,v1=…`.
    #[error("the Stripe-Signature header is malformed")]
    MalformedSignature,
    /// No signature in the header matches the body and the secret.
    #[error("the signature does not match the body")]
    BadSignature,
    /// Signed more than the tolerance away from now (a replayed capture, or a clock far off).
    #[error("the signature's timestamp {0} is outside the tolerance")]
    Expired(i64),
    /// Signed correctly but not an event this crate can read.
    #[error("the event cannot be read: {0}")]
    Malformed(String),
    /// Signed correctly but of another API version.
    #[error("the event has API version {found}, this build reads {API_VERSION}")]
    ApiVersion {
        /// The event's version.
        found: String,
    },
}

/// What an event means for our records.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum EventEffect {
    /// `checkout.session.completed`: the session's payment intent and whether it is paid already.
    CheckoutCompleted {
        /// The session.
        session: String,
        /// Its payment intent.
        payment_intent: Option<String>,
        /// Our reference (the session's `client_reference_id`, else its metadata).
        reference: Option<String>,
        /// Whether the money is in (`payment_status = paid`).
        paid: bool,
    },
    /// `payment_intent.succeeded`.
    PaymentSucceeded(GatewayPayment),
    /// `payment_intent.payment_failed`, with Stripe's reason.
    PaymentFailed {
        /// The payment.
        payment: GatewayPayment,
        /// The last error's message.
        reason: Option<String>,
    },
    /// `payment_intent.canceled` (a released hold, an abandoned payment).
    PaymentCanceled(GatewayPayment),
    /// `payment_intent.amount_capturable_updated`: a hold is in place.
    HoldPlaced(GatewayPayment),
    /// `charge.refunded`: the charge's refunded total (cumulative, so order does not matter).
    ChargeRefunded {
        /// The charge.
        charge: String,
        /// Its payment intent.
        payment_intent: Option<String>,
        /// Refunded so far, minor units.
        amount_refunded_minor: i64,
    },
    /// `charge.dispute.created`.
    DisputeCreated {
        /// The dispute.
        dispute: String,
        /// The disputed charge.
        charge: String,
        /// Its payment intent.
        payment_intent: Option<String>,
        /// Disputed amount, minor units.
        amount_minor: i64,
    },
    /// Any other event type: acknowledged, recorded, not acted on.
    Ignored,
}

/// A verified event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StripeEvent {
    /// Stripe's id (`evt_…`), the key events are deduplicated by.
    pub id: String,
    /// The event type (`payment_intent.succeeded`).
    pub kind: String,
    /// When Stripe created it (Unix seconds).
    pub created: i64,
    /// Its API version (always this build's [`API_VERSION`] or none: others are refused).
    pub api_version: Option<String>,
    /// What it means for our records.
    pub effect: EventEffect,
}

impl StripeEvent {
    /// The event in the payment service's terms.
    pub fn into_service_event(self) -> WebhookEvent {
        let reference = |p: &GatewayPayment| p.reference.clone();
        let effect = match self.effect {
            EventEffect::CheckoutCompleted { session, payment_intent, reference, paid } => {
                PaymentEvent::CheckoutCompleted { session, payment_intent, reference, paid }
            }
            EventEffect::PaymentSucceeded(p) => PaymentEvent::IntentSucceeded {
                reference: reference(&p),
                amount_received_minor: p.amount_received_minor,
                intent: p.id,
            },
            EventEffect::PaymentFailed { payment: p, reason } => {
                PaymentEvent::IntentFailed { reference: reference(&p), intent: p.id, reason }
            }
            EventEffect::PaymentCanceled(p) => PaymentEvent::IntentCanceled { reference: reference(&p), intent: p.id },
            EventEffect::HoldPlaced(p) => PaymentEvent::HoldPlaced {
                reference: reference(&p),
                amount_capturable_minor: p.amount_capturable_minor,
                intent: p.id,
            },
            EventEffect::ChargeRefunded { charge, payment_intent, amount_refunded_minor } => {
                PaymentEvent::ChargeRefunded { charge, payment_intent, amount_refunded_minor }
            }
            EventEffect::DisputeCreated { charge, payment_intent, .. } => {
                PaymentEvent::DisputeCreated { charge, payment_intent }
            }
            EventEffect::Ignored => PaymentEvent::Ignored,
        };
        WebhookEvent { id: self.id, kind: self.kind, api_version: self.api_version, created: self.created, effect }
    }
}

/// Checks and reads the events of one webhook endpoint.
#[derive(Debug, Clone)]
pub struct WebhookVerifier {
    secret: Secret,
}

fn id_of<T: stripe_types::Object>(expandable: &Expandable<T>) -> String
where
    T::Id: AsRef<str>,
{
    expandable.id().as_ref().to_owned()
}

impl WebhookVerifier {
    /// A verifier for the endpoint whose signing secret is `secret`.
    pub fn new(secret: Secret) -> Self {
        Self { secret }
    }

    /// Verifies `payload` (the raw body, exactly as received) against `signature` (the `Stripe-Signature`
    /// header) now, and reads it.
    ///
    /// # Errors
    /// [`WebhookError`]; then nothing of the event may be applied.
    pub fn verify(&self, payload: &str, signature: Option<&str>) -> Result<StripeEvent, WebhookError> {
        self.verify_at(payload, signature, chrono::Utc::now().timestamp())
    }

    /// [`Self::verify`] as of `now` (Unix seconds).
    ///
    /// # Errors
    /// [`WebhookError`].
    pub fn verify_at(&self, payload: &str, signature: Option<&str>, now: i64) -> Result<StripeEvent, WebhookError> {
        let signature = signature.map(str::trim).filter(|s| !s.is_empty()).ok_or(WebhookError::MissingSignature)?;
        let event = match Webhook::construct_event_with_timestamp(payload, signature, self.secret.expose(), now) {
            Ok(event) => event,
            Err(CrateError::BadHeader(_) | CrateError::BadKey) => return Err(WebhookError::MalformedSignature),
            Err(CrateError::BadSignature) => return Err(WebhookError::BadSignature),
            Err(CrateError::BadTimestamp(at)) => return Err(WebhookError::Expired(at)),
            // The signature held, so the body is Stripe's: another version, a type we do not act on whose
            // object this build does not read, or a broken event.
            Err(CrateError::BadParse(reason)) => return read_loosely(payload, reason),
        };
        if let Some(version) = &event.api_version
            && version.as_str() != API_VERSION
        {
            return Err(WebhookError::ApiVersion { found: version.as_str().to_owned() });
        }
        let effect = effect_of(&event.data.object)?;
        Ok(StripeEvent {
            id: event.id.as_str().to_owned(),
            kind: event.type_.as_str().to_owned(),
            created: event.created,
            api_version: event.api_version.map(|v| v.as_str().to_owned()),
            effect,
        })
    }
}

/// The event types the payment flows act on; any other is acknowledged and ignored.
pub const HANDLED_EVENTS: &[&str] = &[
    "checkout.session.completed",
    "payment_intent.succeeded",
    "payment_intent.payment_failed",
    "payment_intent.canceled",
    "payment_intent.amount_capturable_updated",
    "charge.refunded",
    "charge.dispute.created",
];

/// A signed body that async-stripe could not read: refused when of another API version or of a type we act
/// on (it must be read exactly or not at all), ignored when of another type (an event of an API area this
/// build does not include).
fn read_loosely(payload: &str, reason: String) -> Result<StripeEvent, WebhookError> {
    #[derive(serde::Deserialize)]
    struct Probe {
        id: String,
        #[serde(rename = "type")]
        kind: String,
        created: i64,
        api_version: Option<String>,
    }
    let Ok(probe) = serde_json::from_str::<Probe>(payload) else { return Err(WebhookError::Malformed(reason)) };
    if let Some(found) = probe.api_version.as_ref().filter(|version| *version != API_VERSION) {
        return Err(WebhookError::ApiVersion { found: found.clone() });
    }
    if HANDLED_EVENTS.contains(&probe.kind.as_str()) {
        return Err(WebhookError::Malformed(reason));
    }
    Ok(StripeEvent {
        id: probe.id,
        kind: probe.kind,
        created: probe.created,
        api_version: probe.api_version,
        effect: EventEffect::Ignored,
    })
}

fn effect_of(object: &EventObject) -> Result<EventEffect, WebhookError> {
    let payment = |intent| payment_of(intent).map_err(|err| WebhookError::Malformed(err.to_string()));
    Ok(match object {
        EventObject::CheckoutSessionCompleted(session) => EventEffect::CheckoutCompleted {
            session: session.id.as_str().to_owned(),
            payment_intent: session.payment_intent.as_ref().map(id_of),
            reference: session
                .client_reference_id
                .clone()
                .or_else(|| session.metadata.as_ref().and_then(|m| m.get(REFERENCE_KEY).cloned())),
            paid: matches!(session.payment_status, CheckoutSessionPaymentStatus::Paid),
        },
        EventObject::PaymentIntentSucceeded(intent) => EventEffect::PaymentSucceeded(payment(intent)?),
        EventObject::PaymentIntentPaymentFailed(intent) => EventEffect::PaymentFailed {
            payment: payment(intent)?,
            reason: intent.last_payment_error.as_ref().and_then(|err| err.message.clone()),
        },
        EventObject::PaymentIntentCanceled(intent) => EventEffect::PaymentCanceled(payment(intent)?),
        EventObject::PaymentIntentAmountCapturableUpdated(intent) => EventEffect::HoldPlaced(payment(intent)?),
        EventObject::ChargeRefunded(charge) => EventEffect::ChargeRefunded {
            charge: charge.id.as_str().to_owned(),
            payment_intent: charge.payment_intent.as_ref().map(id_of),
            amount_refunded_minor: charge.amount_refunded,
        },
        EventObject::ChargeDisputeCreated(dispute) => EventEffect::DisputeCreated {
            dispute: dispute.id.as_str().to_owned(),
            charge: id_of(&dispute.charge),
            payment_intent: dispute.payment_intent.as_ref().map(id_of),
            amount_minor: dispute.amount,
        },
        _ => EventEffect::Ignored,
    })
}
