//! Ports: what the services need of the world outside the database, as traits that the binary (or an embedding
//! service) fills in.
//!
//! - [`Clock`]: the time every rule is judged at. Production uses [`SystemClock`]; tests use [`ManualClock`],
//!   set and advanced by hand, instead of rewriting stored times with SQL.
//! - [`Mailer`]: sending one e-mail message. The background-task crate implements it over SMTP (lettre) and
//!   sends from the durable queue, so a message is never lost.
//! - [`PaymentGateway`]: the calls the payment flows make to a payment provider (Stripe), each carrying an
//!   idempotency key so a retry never charges twice.
//! - [`CacheBackend`]: a shared byte cache behind the in-process caches (Redis), with invalidation that reaches
//!   every instance.
//!
//! Asynchronous ports return [`PortFuture`]s so that they can be used as trait objects (`Arc<dyn Mailer>`).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, SubsecRound, Utc};
use rental_domain::Money;

/// The future a port's asynchronous method returns.
pub type PortFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, PortError>> + Send + 'a>>;

/// How a call through a port failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PortError {
    /// The other side refused the request for good (a bad address, a declined card): retrying will not help.
    #[error("rejected: {0}")]
    Rejected(String),
    /// The other side failed or could not be reached: the call may succeed later.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// The call took longer than its bound.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    /// The port is not configured (no SMTP server, no Stripe keys).
    #[error("not configured")]
    NotConfigured,
}

/// The current time, as the services judge every rule (periods, late fees, overdue orders, token expiry).
pub trait Clock: fmt::Debug + Send + Sync {
    /// Now, to the microsecond (what both databases store).
    fn now(&self) -> DateTime<Utc>;
}

/// The system's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now().trunc_subsecs(6)
    }
}

/// A clock that stands still until it is set or advanced: tests judge late fees, overdue orders and started
/// quotes at the instant they choose. Clones share the time.
#[derive(Debug, Clone)]
pub struct ManualClock {
    now: Arc<Mutex<DateTime<Utc>>>,
}

impl ManualClock {
    /// A clock showing `at` (to the microsecond).
    pub fn new(at: DateTime<Utc>) -> Self {
        Self { now: Arc::new(Mutex::new(at.trunc_subsecs(6))) }
    }

    /// Sets the time.
    pub fn set(&self, at: DateTime<Utc>) {
        *self.now.lock().unwrap_or_else(PoisonError::into_inner) = at.trunc_subsecs(6);
    }

    /// Moves the time by `by` (backwards when negative).
    pub fn advance(&self, by: chrono::Duration) {
        let mut now = self.now.lock().unwrap_or_else(PoisonError::into_inner);
        *now += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.now.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// One e-mail message to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailMessage {
    /// The recipient's address.
    pub to: String,
    /// Subject line.
    pub subject: String,
    /// Plain-text body.
    pub text: String,
    /// Optional HTML body (sent as an alternative to the text).
    pub html: Option<String>,
    /// The `Message-ID` (without angle brackets), derived from the job that sends the message so that a repeat
    /// after a crash carries the same id and receivers can drop it; the mailer makes one up when `None`.
    pub message_id: Option<String>,
    /// The request the message is sent for (the one that enqueued its job), sent as an `X-Request-Id` header so
    /// that a message can be traced to the request that caused it. An id that is not a sane header value is
    /// left out rather than failing the message.
    pub request_id: Option<String>,
}

/// Sends e-mail. Implementations bound every call in time; callers send from the durable job queue, which
/// retries [`PortError::Unavailable`] and [`PortError::Timeout`] and gives up on [`PortError::Rejected`].
pub trait Mailer: fmt::Debug + Send + Sync {
    /// Sends `message`.
    ///
    /// # Errors
    /// [`PortError`] saying whether a retry may help.
    fn send<'a>(&'a self, message: &'a MailMessage) -> PortFuture<'a, ()>;

    /// Checks, without sending anything, that a send could go out now (SMTP: the server answers a
    /// connection). A mailer with nothing to reach (files) is always ready, which is the default.
    ///
    /// # Errors
    /// [`PortError`], as [`Mailer::send`] would fail.
    fn check(&self) -> PortFuture<'_, ()> {
        Box::pin(async { Ok(()) })
    }
}

/// A payment to collect through the gateway (a payment intent, for a custom payment form or a deposit hold).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentRequest {
    /// Amount and currency; the implementation writes the code in the case its provider wants.
    pub amount: Money,
    /// The provider's customer, if known.
    pub customer: Option<String>,
    /// Authorise only (a deposit hold, captured or released later) instead of charging at once.
    pub capture_later: bool,
    /// Save the card the customer confirms with to `customer` for later use without them
    /// (`setup_future_usage=off_session`); needs `customer`.
    pub save_card: bool,
    /// Confirm at once, without the customer, on this saved payment method of `customer` (`payment_method`,
    /// `off_session=true`, `confirm=true`). A card that needs the customer (authentication) or is declined is
    /// [`PortError::Rejected`].
    pub off_session_payment_method: Option<String>,
    /// A line the customer sees on the statement and in the provider's dashboard.
    pub description: Option<String>,
    /// Our own record the payment belongs to, sent as metadata (`reference`) so that reconciliation can find
    /// the record back from the provider's side.
    pub reference: String,
    /// Idempotency key, derived from our own record: the same key never charges twice.
    pub idempotency_key: String,
}

/// A hosted checkout page for one amount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckoutRequest {
    /// Amount and currency.
    pub amount: Money,
    /// The line the customer sees on the page (the invoice's number, say).
    pub description: String,
    /// The provider's customer, if known.
    pub customer: Option<String>,
    /// Where the provider sends the customer after paying.
    pub success_url: String,
    /// Where the provider sends the customer who gives up.
    pub cancel_url: String,
    /// Our own record, sent as metadata on the session and its payment intent.
    pub reference: String,
    /// Idempotency key, derived from our own record.
    pub idempotency_key: String,
}

/// What the gateway answered about a checkout session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayCheckout {
    /// The provider's id of the session.
    pub id: String,
    /// The page to send the customer to.
    pub url: Option<String>,
    /// The payment intent behind the session, once the provider has made one.
    pub payment_intent: Option<String>,
}

/// A customer to create at the provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomerRequest {
    /// E-mail address.
    pub email: String,
    /// Full name.
    pub name: String,
    /// Our own record (the user's id), sent as metadata.
    pub reference: String,
    /// Idempotency key, derived from our own record.
    pub idempotency_key: String,
}

/// Where a payment stands at the provider.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum GatewayPaymentStatus {
    /// Waiting for the customer to give a payment method (or the last one failed).
    RequiresPaymentMethod,
    /// Waiting for confirmation.
    RequiresConfirmation,
    /// Waiting for the customer to authenticate.
    RequiresAction,
    /// The provider is processing it.
    Processing,
    /// Authorised and held, waiting for capture (a deposit).
    RequiresCapture,
    /// Cancelled: nothing charged (a released hold).
    Canceled,
    /// Charged.
    Succeeded,
    /// A status this version does not know, kept as the provider wrote it.
    Other(String),
}

impl GatewayPaymentStatus {
    /// The provider's word for the status.
    pub fn as_str(&self) -> &str {
        match self {
            Self::RequiresPaymentMethod => "requires_payment_method",
            Self::RequiresConfirmation => "requires_confirmation",
            Self::RequiresAction => "requires_action",
            Self::Processing => "processing",
            Self::RequiresCapture => "requires_capture",
            Self::Canceled => "canceled",
            Self::Succeeded => "succeeded",
            Self::Other(word) => word,
        }
    }
}

/// What the gateway answered about a payment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayPayment {
    /// The provider's id of the payment (a payment intent).
    pub id: String,
    /// Where it stands.
    pub status: GatewayPaymentStatus,
    /// The amount asked for.
    pub amount: Money,
    /// How much of it was charged (minor units).
    pub amount_received_minor: i64,
    /// How much of it is held and may still be captured (minor units).
    pub amount_capturable_minor: i64,
    /// The secret a browser needs to complete the payment, when it has one.
    pub client_secret: Option<String>,
    /// Our own record, from the payment's metadata (`reference`), when it carries one.
    pub reference: Option<String>,
    /// The payment method (`pm_…`) the payment was confirmed with, when the provider names one.
    pub payment_method: Option<String>,
}

/// The calls the payment flows make to the payment provider. Every mutating call carries an idempotency key
/// derived from our own record, so that a retry, ours or the provider client's, never charges twice.
/// Implementations bound every call in time. The Stripe implementation lives in its own crate.
pub trait PaymentGateway: fmt::Debug + Send + Sync {
    /// Creates a payment (charged at once or held for later capture).
    ///
    /// # Errors
    /// [`PortError`].
    fn create_payment<'a>(&'a self, request: &'a PaymentRequest) -> PortFuture<'a, GatewayPayment>;

    /// Creates a hosted checkout session.
    ///
    /// # Errors
    /// [`PortError`].
    fn create_checkout<'a>(&'a self, request: &'a CheckoutRequest) -> PortFuture<'a, GatewayCheckout>;

    /// Creates a customer; returns the provider's id.
    ///
    /// # Errors
    /// [`PortError`].
    fn create_customer<'a>(&'a self, request: &'a CustomerRequest) -> PortFuture<'a, String>;

    /// The payment as the provider sees it now (for reconciliation).
    ///
    /// # Errors
    /// [`PortError`]; an unknown id is [`PortError::Rejected`].
    fn retrieve_payment<'a>(&'a self, payment_id: &'a str) -> PortFuture<'a, GatewayPayment>;

    /// Captures `amount_minor` of a held payment (all of it when `None`).
    ///
    /// # Errors
    /// [`PortError`].
    fn capture<'a>(
        &'a self,
        payment_id: &'a str,
        amount_minor: Option<i64>,
        idempotency_key: &'a str,
    ) -> PortFuture<'a, GatewayPayment>;

    /// Releases a held payment without charging it.
    ///
    /// # Errors
    /// [`PortError`].
    fn release<'a>(&'a self, payment_id: &'a str, idempotency_key: &'a str) -> PortFuture<'a, GatewayPayment>;

    /// Refunds `amount_minor` of a charged payment (all of it when `None`); returns the refund's id.
    ///
    /// # Errors
    /// [`PortError`].
    fn refund<'a>(
        &'a self,
        payment_id: &'a str,
        amount_minor: Option<i64>,
        idempotency_key: &'a str,
    ) -> PortFuture<'a, String>;
}

/// What the shared cache tells every instance (see [`CacheBackend::subscribe`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CacheEvent {
    /// Drop the entry `key` (canonical form) of `namespace`.
    Invalidate {
        /// The namespace's name.
        namespace: String,
        /// The key's canonical text.
        key: String,
    },
    /// Drop every entry of `namespace`, whose shared generation is now `generation`.
    Clear {
        /// The namespace's name.
        namespace: String,
        /// The new shared generation.
        generation: u64,
    },
    /// The backend reconnected after an outage: invalidations may have been missed, so drop everything and
    /// read the generations again.
    Resync,
    /// The backend's subscription was lost (the caches run on their own until [`CacheEvent::Resync`]).
    Down,
}

/// A byte cache shared between instances, behind the in-process caches (Redis), with invalidations
/// broadcast to every instance. Callers bound every call in time; when the backend is slow or down, they go
/// on with their in-process caches alone.
pub trait CacheBackend: fmt::Debug + Send + Sync {
    /// The value stored under `key`, if any.
    ///
    /// # Errors
    /// [`PortError`] when the backend cannot answer.
    fn get<'a>(&'a self, key: &'a str) -> PortFuture<'a, Option<Vec<u8>>>;

    /// Stores `value` under `key` for `ttl`.
    ///
    /// # Errors
    /// [`PortError`].
    fn set<'a>(&'a self, key: &'a str, value: &'a [u8], ttl: Duration) -> PortFuture<'a, ()>;

    /// Removes the value stored under `key`.
    ///
    /// # Errors
    /// [`PortError`].
    fn delete<'a>(&'a self, key: &'a str) -> PortFuture<'a, ()>;

    /// Sends `event` to every instance subscribed, this one included.
    ///
    /// # Errors
    /// [`PortError`].
    fn publish<'a>(&'a self, event: &'a CacheEvent) -> PortFuture<'a, ()>;

    /// The events published by every instance, plus [`CacheEvent::Down`] and [`CacheEvent::Resync`] when
    /// the subscription is lost and found again.
    fn subscribe(&self) -> tokio::sync::broadcast::Receiver<CacheEvent>;

    /// The shared generation of `namespace` (0 when it was never cleared).
    ///
    /// # Errors
    /// [`PortError`].
    fn generation<'a>(&'a self, namespace: &'a str) -> PortFuture<'a, u64>;

    /// Moves `namespace` to a new shared generation and returns it.
    ///
    /// # Errors
    /// [`PortError`].
    fn bump_generation<'a>(&'a self, namespace: &'a str) -> PortFuture<'a, u64>;
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn a_manual_clock_stands_still_until_moved_and_clones_share_it() {
        let start = Utc.with_ymd_and_hms(2026, 3, 1, 9, 0, 0).unwrap();
        let clock = ManualClock::new(start);
        let shared = clock.clone();
        assert_eq!(clock.now(), start);
        clock.advance(chrono::Duration::hours(30));
        assert_eq!(shared.now(), start + chrono::Duration::hours(30));
        shared.set(start);
        assert_eq!(clock.now(), start);
        assert_eq!(SystemClock.now().timestamp_subsec_nanos() % 1_000, 0);
    }
}
