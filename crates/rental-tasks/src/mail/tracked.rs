//! [`TrackedMailer`]: any [`Mailer`] with counters of its successes and failures, for monitoring.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use rental_service::{MailMessage, Mailer, PortFuture};

/// What a mailer did since start. Shared between the [`TrackedMailer`] and whoever reports on it.
#[derive(Debug)]
pub struct MailStats {
    transport: String,
    sent: AtomicU64,
    failed: AtomicU64,
    /// Milliseconds since the Unix epoch; 0 = never.
    last_success_ms: AtomicU64,
    last_failure_ms: AtomicU64,
    last_error: Mutex<Option<String>>,
}

/// A point-in-time copy of [`MailStats`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailStatsSnapshot {
    /// `smtp <host>:<port>` or `file outbox <dir>`.
    pub transport: String,
    /// Messages sent.
    pub sent: u64,
    /// Sends that failed.
    pub failed: u64,
    /// Last successful send or connection check, in milliseconds since the Unix epoch.
    pub last_success_unix_ms: Option<u64>,
    /// Last failed send or connection check, in milliseconds since the Unix epoch.
    pub last_failure_unix_ms: Option<u64>,
    /// The last failure's message.
    pub last_error: Option<String>,
}

impl MailStats {
    /// Counters of a mailer described by `transport`.
    pub fn new(transport: impl Into<String>) -> Self {
        Self {
            transport: transport.into(),
            sent: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            last_success_ms: AtomicU64::new(0),
            last_failure_ms: AtomicU64::new(0),
            last_error: Mutex::new(None),
        }
    }

    /// The counters now.
    pub fn snapshot(&self) -> MailStatsSnapshot {
        let when = |ms: u64| (ms > 0).then_some(ms);
        MailStatsSnapshot {
            transport: self.transport.clone(),
            sent: self.sent.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            last_success_unix_ms: when(self.last_success_ms.load(Ordering::Relaxed)),
            last_failure_unix_ms: when(self.last_failure_ms.load(Ordering::Relaxed)),
            last_error: self.last_error.lock().unwrap_or_else(PoisonError::into_inner).clone(),
        }
    }

    /// Moves the time of the last success, or of the last failure with its message.
    fn record(&self, result: &Result<(), rental_service::PortError>) {
        match result {
            Ok(()) => {
                self.last_success_ms.fetch_max(now_ms(), Ordering::Relaxed);
            }
            Err(err) => {
                self.last_failure_ms.fetch_max(now_ms(), Ordering::Relaxed);
                *self.last_error.lock().unwrap_or_else(PoisonError::into_inner) = Some(err.to_string());
            }
        }
    }
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(1, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1))
}

/// Wraps a mailer and counts what it does into [`MailStats`].
#[derive(Debug)]
pub struct TrackedMailer {
    inner: Arc<dyn Mailer>,
    stats: Arc<MailStats>,
}

impl TrackedMailer {
    /// Tracks `inner` into `stats`.
    pub fn new(inner: Arc<dyn Mailer>, stats: Arc<MailStats>) -> Self {
        Self { inner, stats }
    }
}

impl Mailer for TrackedMailer {
    fn send<'a>(&'a self, message: &'a MailMessage) -> PortFuture<'a, ()> {
        Box::pin(async move {
            let result = self.inner.send(message).await;
            let counter = if result.is_ok() { &self.stats.sent } else { &self.stats.failed };
            counter.fetch_add(1, Ordering::Relaxed);
            self.stats.record(&result);
            result
        })
    }

    /// Forwards the check; its outcome moves the last success or failure (and the last error), not the
    /// counters of sends.
    fn check(&self) -> PortFuture<'_, ()> {
        Box::pin(async move {
            let result = self.inner.check().await;
            self.stats.record(&result);
            result
        })
    }
}
