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
}

/// A payment to collect through the gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentRequest {
    /// Amount and currency; the implementation writes the code in the case its provider wants.
    pub amount: Money,
    /// The provider's customer, if known.
    pub customer: Option<String>,
    /// Authorise only (a deposit hold, captured or released later) instead of charging at once.
    pub capture_later: bool,
    /// Our own record the payment belongs to, sent as metadata and used to derive the idempotency key.
    pub reference: String,
    /// Idempotency key: the same key never charges twice.
    pub idempotency_key: String,
}

/// What the gateway answered about a payment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayPayment {
    /// The provider's id of the payment (a payment intent).
    pub id: String,
    /// The provider's status word.
    pub status: String,
    /// The secret a browser needs to complete the payment, when it has one.
    pub client_secret: Option<String>,
}

/// The calls the payment flows make to the payment provider. Every mutating call carries an idempotency key
/// derived from our own record. The Stripe implementation lives in its own crate.
pub trait PaymentGateway: fmt::Debug + Send + Sync {
    /// Creates a payment (charged at once or held for later capture).
    ///
    /// # Errors
    /// [`PortError`].
    fn create_payment<'a>(&'a self, request: &'a PaymentRequest) -> PortFuture<'a, GatewayPayment>;

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
