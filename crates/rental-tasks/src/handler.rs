//! What runs a job: a [`JobHandler`] registered under the job's kind in a [`Registry`].

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use rental_repo::ClaimedJob;
use rental_service::{PortError, ServiceError};
use serde::de::DeserializeOwned;
use uuid::Uuid;

use crate::retry::RetryPolicy;

/// The future a handler returns.
pub type JobFuture<'a> = Pin<Box<dyn Future<Output = Result<(), JobError>> + Send + 'a>>;

/// How a run of a job failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JobError {
    /// It may succeed later (a peer is down, the database is busy): retried with backoff while attempts last.
    #[error("{0}")]
    Retry(String),
    /// It never will (bad arguments, a rejected recipient): dead-lettered at once with this error.
    #[error("{0}")]
    Permanent(String),
}

impl JobError {
    /// A retryable error.
    pub fn retry(message: impl fmt::Display) -> Self {
        Self::Retry(message.to_string())
    }

    /// A permanent error.
    pub fn permanent(message: impl fmt::Display) -> Self {
        Self::Permanent(message.to_string())
    }
}

impl From<PortError> for JobError {
    /// A refusal is permanent; an outage, a timeout or a missing configuration may pass.
    fn from(err: PortError) -> Self {
        match err {
            PortError::Rejected(_) => Self::permanent(err),
            _ => Self::retry(err),
        }
    }
}

impl From<ServiceError> for JobError {
    /// Storage failures and busy databases pass; anything else the service refuses will be refused again.
    fn from(err: ServiceError) -> Self {
        match err {
            ServiceError::Repo(_) | ServiceError::SharedRepo(_) | ServiceError::Busy { .. } => Self::retry(err),
            ServiceError::Timeout(_) | ServiceError::Upstream { .. } | ServiceError::RateLimited { .. } => {
                Self::retry(err)
            }
            other => Self::permanent(other),
        }
    }
}

/// One run of a job, as its handler sees it.
#[derive(Debug, Clone)]
pub struct JobContext {
    /// The job's id: derive idempotency keys and `Message-ID`s from it, so a repeated run has the same effect.
    pub id: Uuid,
    /// Its kind.
    pub kind: String,
    /// Its arguments, as JSON text.
    pub payload: String,
    /// This run's number, from 1.
    pub attempt: u32,
    /// Runs allowed.
    pub max_attempts: u32,
    /// The `X-Request-Id` of the request that enqueued it (directly, or through the jobs it enqueued), if one
    /// did: put it on what the job sends (e-mail headers), so that can be traced back to that request.
    pub request_id: Option<String>,
}

impl JobContext {
    pub(crate) fn of(job: &ClaimedJob) -> Self {
        Self {
            id: job.id,
            kind: job.kind.clone(),
            payload: job.payload.clone(),
            attempt: job.attempt,
            max_attempts: job.max_attempts,
            request_id: job.request_id.clone(),
        }
    }

    /// The arguments decoded as `T`.
    ///
    /// # Errors
    /// [`JobError::Permanent`] when they do not decode: running again will not change them.
    pub fn args<T: DeserializeOwned>(&self) -> Result<T, JobError> {
        serde_json::from_str(&self.payload)
            .map_err(|e| JobError::permanent(format!("arguments of {} do not decode: {e}", self.kind)))
    }

    /// Whether this is the last run allowed.
    pub fn is_last_attempt(&self) -> bool {
        self.attempt >= self.max_attempts
    }
}

/// Runs jobs of one kind. Every handler must be idempotent: a job may run twice (its worker died after the
/// effect but before recording success), and its effect must happen once.
pub trait JobHandler: Send + Sync + 'static {
    /// Runs one job.
    fn run<'a>(&'a self, job: &'a JobContext) -> JobFuture<'a>;
}

impl<F, Fut> JobHandler for F
where
    F: Fn(JobContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), JobError>> + Send + 'static,
{
    fn run<'a>(&'a self, job: &'a JobContext) -> JobFuture<'a> {
        Box::pin(self(job.clone()))
    }
}

/// A registered handler with its kind's limits.
#[derive(Clone)]
pub(crate) struct Registered {
    pub(crate) handler: Arc<dyn JobHandler>,
    /// Longest a run may take before it is abandoned and counted as failed.
    pub(crate) timeout: Option<Duration>,
    /// Backoff of this kind, instead of the worker's.
    pub(crate) retry: Option<RetryPolicy>,
}

/// The handlers a worker runs, by kind. A worker claims only jobs of the kinds registered here, so a job of
/// a kind it does not know (written by a newer version) is left alone for a worker that knows it.
#[derive(Clone, Default)]
pub struct Registry {
    handlers: BTreeMap<String, Registered>,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.handlers.keys()).finish()
    }
}

impl Registry {
    /// No handlers.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers `handler` for `kind` with the worker's timeout and backoff.
    #[must_use]
    pub fn register(self, kind: impl Into<String>, handler: impl JobHandler) -> Self {
        self.register_with(kind, handler, None, None)
    }

    /// Registers `handler` for `kind` with its own timeout and backoff (`None`: the worker's).
    #[must_use]
    pub fn register_with(
        mut self,
        kind: impl Into<String>,
        handler: impl JobHandler,
        timeout: Option<Duration>,
        retry: Option<RetryPolicy>,
    ) -> Self {
        self.handlers.insert(kind.into(), Registered { handler: Arc::new(handler), timeout, retry });
        self
    }

    /// The kinds registered, sorted.
    pub fn kinds(&self) -> Vec<String> {
        self.handlers.keys().cloned().collect()
    }

    pub(crate) fn get(&self, kind: &str) -> Option<&Registered> {
        self.handlers.get(kind)
    }
}
