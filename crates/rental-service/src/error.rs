//! The error policy of the service layer.
//!
//! Every service method fails with a [`ServiceError`]. Each variant is one kind of answer for the client; the
//! HTTP binary maps them exhaustively (in `rental-api`'s `error.rs`) to a status and a stable machine-readable
//! `code` in the JSON envelope `{"error":{"code","message","details"},"request_id"}`, and logs the whole cause
//! chain once, there. Nothing is logged here: an error is either returned or logged, never both.
//!
//! | Variant | Status | `code` | The client sees | Logged |
//! |---|---|---|---|---|
//! | [`Invalid`](ServiceError::Invalid) | 422 | `validation_failed` | every bad field in `details` | no |
//! | [`Invalid`](ServiceError::Invalid) (illegal transition) | 409 | `illegal_transition` | from and to states | no |
//! | [`InvalidQuery`](ServiceError::InvalidQuery) | 400 | `invalid_query` | the parameter and why | no |
//! | [`Unauthorized`](ServiceError::Unauthorized) | 401 | `unauthorized` | the reason, no account detail | no |
//! | [`Forbidden`](ServiceError::Forbidden) | 403 | `forbidden` | the reason | no |
//! | [`NotFound`](ServiceError::NotFound) | 404 | `not_found` | what was not found | no |
//! | [`Conflict`](ServiceError::Conflict) | 409 | `conflict` | what clashed (named by constraint), the row of a batch | no |
//! | [`IdempotencyMismatch`](ServiceError::IdempotencyMismatch) | 422 | `idempotency_mismatch` | the key was used with another request | no |
//! | [`IdempotencyKeyInUse`](ServiceError::IdempotencyKeyInUse) | 409 | `idempotency_conflict` | a request with the key is in progress | no |
//! | [`InsufficientStock`](ServiceError::InsufficientStock) | 409 | `unavailable` | each short line, what is free, nearest free periods | no |
//! | [`RateLimited`](ServiceError::RateLimited) | 429 + `Retry-After` | `rate_limited` | when to try again | no |
//! | [`Busy`](ServiceError::Busy) | 503 + `Retry-After` | `busy` | a generic "try again" message | warn, with the chain |
//! | [`DatabaseUnavailable`](ServiceError::DatabaseUnavailable) | 503 + `Retry-After` | `database_unavailable` | a generic "try again" message | warn, with the chain |
//! | [`Timeout`](ServiceError::Timeout) | 504 | `request_timeout` | what took too long | warn |
//! | [`Upstream`](ServiceError::Upstream) | 502 | `upstream_failed` | which service failed, no detail | error, with the chain |
//! | [`Repo`](ServiceError::Repo), [`SharedRepo`](ServiceError::SharedRepo), [`Config`](ServiceError::Config), [`Internal`](ServiceError::Internal) | 500 | `internal_error` | "the server failed to handle the request" | error, with the chain |
//!
//! 4xx answers are the client's to fix and carry a message meant for it; 5xx answers never show internals
//! (SQL, constraint names, paths), which only the log sees. The database's own errors reach this layer as
//! [`RepoError`], which carries no sea-orm or sqlx type: a unique violation is already a `Conflict` with a
//! client message chosen by constraint name, a lock or busy database is [`RepoError::Busy`] or
//! [`RepoError::LockTimeout`] (both become [`ServiceError::Busy`]), and anything else is an opaque cause that
//! stays in the chain for the log.

use std::sync::Arc;
use std::time::Duration;

use rental_domain::DomainError;
use rental_repo::RepoError;

/// Result of a service operation.
pub type ServiceResult<T> = Result<T, ServiceError>;

/// How long a client is asked to wait after the database was busy.
pub const BUSY_RETRY_AFTER: Duration = Duration::from_secs(1);

/// How long a client is asked to wait after an advisory lock stayed taken for the whole backoff policy.
pub const LOCK_RETRY_AFTER: Duration = Duration::from_secs(5);

/// How long a client is asked to wait when the database cannot be reached: the probe notices its return within
/// a second or so.
pub const UNAVAILABLE_RETRY_AFTER: Duration = Duration::from_secs(2);

/// A cause kept for the log only.
type Cause = Box<dyn std::error::Error + Send + Sync>;

/// What a service operation can fail with. Each variant maps to one kind of answer for the client; see the
/// module documentation for the whole policy.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServiceError {
    /// Input broke a domain rule; lists every bad field. 422 (409 for an illegal lifecycle transition).
    #[error(transparent)]
    Invalid(#[from] DomainError),
    /// A list query parameter is unknown or out of range. 400.
    #[error("invalid query parameter `{field}`: {message}")]
    InvalidQuery {
        /// The parameter.
        field: String,
        /// Why.
        message: String,
    },
    /// Missing, wrong, expired or revoked credentials. 401.
    #[error("{0}")]
    Unauthorized(&'static str),
    /// Authenticated, but not allowed to do this. 403.
    #[error("{0}")]
    Forbidden(&'static str),
    /// The thing does not exist (or the caller may not know it does). 404.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The change clashes with stored data. 409.
    #[error("{message}")]
    Conflict {
        /// What clashed.
        message: String,
        /// For a batch, the index of the offending row.
        index: Option<usize>,
    },
    /// The `Idempotency-Key` was used before with another request (method, path or body). 422.
    #[error("the idempotency key was used with another request")]
    IdempotencyMismatch,
    /// Another request holds the `Idempotency-Key` (in progress, or committed meanwhile: look it up again). 409.
    #[error("a request with this idempotency key is in progress")]
    IdempotencyKeyInUse,
    /// Not enough stock is free: the lines that failed, with the nearest free periods. 409 `unavailable`.
    #[error("not enough stock is free for {} line(s)", .0.len())]
    InsufficientStock(Vec<crate::orders::ShortageView>),
    /// The caller sent too many requests; it may try again after `retry_after`. 429 with `Retry-After`.
    #[error("too many requests, retry after {} s", retry_after.as_secs())]
    RateLimited {
        /// When the caller may try again.
        retry_after: Duration,
    },
    /// The database or a lock is too busy now; the same request may succeed after `retry_after`. 503 with
    /// `Retry-After`.
    #[error("busy, retry after {} s", retry_after.as_secs())]
    Busy {
        /// When the caller should try again.
        retry_after: Duration,
        /// What was busy, for the log.
        #[source]
        source: Option<Cause>,
    },
    /// The database cannot be reached (the connection broke, the server is down or restarting); the same
    /// request will succeed once it is back. 503 with `Retry-After`.
    #[error("the database is unavailable, retry after {} s", retry_after.as_secs())]
    DatabaseUnavailable {
        /// When the caller should try again.
        retry_after: Duration,
        /// The driver's error, for the log.
        #[source]
        source: Option<Cause>,
    },
    /// The operation did not finish within its deadline. 504.
    #[error("{0} timed out")]
    Timeout(&'static str),
    /// A service this one depends on (payments, mail) failed or answered nonsense. 502.
    #[error("upstream `{service}` failed")]
    Upstream {
        /// Which service, as the client may see it (`payments`).
        service: &'static str,
        /// What it answered, for the log.
        #[source]
        source: Option<Cause>,
    },
    /// The configuration cannot be used. 500.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The persistence layer failed. 500.
    #[error("storage failure")]
    Repo(#[source] RepoError),
    /// The persistence layer failed while filling a cache entry that other requests were waiting for too. 500.
    #[error("storage failure")]
    SharedRepo(#[source] Arc<RepoError>),
    /// Something that should not happen did (a worker thread died). 500.
    #[error("internal error: {0}")]
    Internal(String),
}

/// How long to ask the client to wait when `err` says the database or a lock was busy; `None` otherwise.
fn retry_after(err: &RepoError) -> Option<Duration> {
    match err {
        RepoError::Busy(_) => Some(BUSY_RETRY_AFTER),
        RepoError::LockTimeout { .. } => Some(LOCK_RETRY_AFTER),
        _ => None,
    }
}

impl From<RepoError> for ServiceError {
    fn from(err: RepoError) -> Self {
        if let Some(retry_after) = retry_after(&err) {
            return Self::Busy { retry_after, source: Some(Box::new(err)) };
        }
        if err.is_unavailable() {
            return Self::DatabaseUnavailable { retry_after: UNAVAILABLE_RETRY_AFTER, source: Some(Box::new(err)) };
        }
        match err {
            RepoError::Conflict { message, index } => Self::Conflict { message, index },
            RepoError::InvalidQuery { field, message } => Self::InvalidQuery { field, message },
            RepoError::NotFound => Self::NotFound("record"),
            RepoError::Domain(domain) => Self::Invalid(domain),
            RepoError::InsufficientStock(short) => Self::InsufficientStock(crate::orders::shortage_views(&short)),
            other => Self::Repo(other),
        }
    }
}

impl From<Arc<RepoError>> for ServiceError {
    /// A failure shared by every request waiting on one cache fill: busy stays busy, the rest is a storage
    /// failure.
    fn from(err: Arc<RepoError>) -> Self {
        match retry_after(&err) {
            Some(retry_after) => Self::Busy { retry_after, source: Some(Box::new(err)) },
            None if err.is_unavailable() => {
                Self::DatabaseUnavailable { retry_after: UNAVAILABLE_RETRY_AFTER, source: Some(Box::new(err)) }
            }
            None => Self::SharedRepo(err),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_repositories_ask_the_client_to_retry() {
        let lock = RepoError::LockTimeout { name: "stock".into(), tries: 20 };
        assert!(matches!(ServiceError::from(lock), ServiceError::Busy { retry_after: LOCK_RETRY_AFTER, .. }));
        let shared = Arc::new(RepoError::LockTimeout { name: "stock".into(), tries: 20 });
        assert!(matches!(ServiceError::from(shared), ServiceError::Busy { source: Some(_), .. }));
        let shared = Arc::new(RepoError::Config("bad".into()));
        assert!(matches!(ServiceError::from(shared), ServiceError::SharedRepo(_)));
    }
}
