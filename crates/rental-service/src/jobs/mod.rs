//! Background jobs as the services see them: the [`Outbox`] that enqueues a job in the same unit of work as the
//! change it belongs to (a job exists if and only if that change committed), the job [`kinds`] with their
//! arguments, and [`JobService`], the admin's view of the queue. The workers that run the jobs live in
//! `rental-tasks`.

mod views;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};

use chrono::{DateTime, Duration, Utc};
use rental_repo::query::Listing;
use rental_repo::{Database, JobRepo, JobStore, NewJob, RepoResult, UnitOfWork, job_list_spec};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::{Clock, Principal, ServiceError, ServiceResult};

pub use views::{JobCountView, JobView, QueueCounts};

/// The job kinds of the rental backend: the names their handlers are registered under.
pub mod kinds {
    /// Sends one e-mail from a template ([`super::MailJob`]).
    pub const MAIL: &str = "mail.send";
    /// Mails the customer the confirmation of a reserved order ([`super::OrderMail`]), rendered from the order
    /// as it is when the job runs.
    pub const ORDER_CONFIRMATION: &str = "orders.confirmation";
    /// Settles a committed order: numbers the invoices it issued and records its usage
    /// ([`super::SettleOrder`]). Enqueued, due a little later, in the order's own unit; the settlement after the
    /// commit marks it done, so it runs only when that settlement did not happen (a crash, a failure).
    pub const SETTLE_ORDER: &str = "orders.settle";
    /// Makes a password-reset token for an address, if it belongs to an active user, and mails it
    /// ([`super::PasswordRecovery`]).
    pub const PASSWORD_RECOVERY: &str = "auth.password_recovery";
    /// Deletes expired refresh and password-reset tokens (periodic).
    pub const PURGE_TOKENS: &str = "auth.purge_expired_tokens";
    /// Deletes expired `Idempotency-Key` records (periodic).
    pub const PURGE_IDEMPOTENCY: &str = "idempotency.purge_expired";
    /// Deletes succeeded and cancelled jobs past their retention (periodic).
    pub const PURGE_JOBS: &str = "jobs.purge_finished";
    /// Finds rentals that are overdue, charges their late fee and mails a notice (periodic).
    pub const MARK_OVERDUE: &str = "orders.mark_overdue";
    /// Mails a reminder for rentals that end within the configured hours (periodic).
    pub const RETURN_REMINDERS: &str = "orders.return_reminders";
    /// Mails a reminder for reserved rentals that start within the configured hours (periodic).
    pub const PICKUP_REMINDERS: &str = "orders.pickup_reminders";
    /// Mails the customer the invoice of a closed order ([`super::OrderMail`]).
    pub const INVOICE_MAIL: &str = "orders.invoice";
    /// Mails the day's figures to the admins (periodic).
    pub const DAILY_REPORT: &str = "reports.daily";
    /// Compares recent unsettled Stripe payments with Stripe and repairs drift (periodic).
    pub const RECONCILE_PAYMENTS: &str = "payments.reconcile";
    /// Places the scheduled deposits whose time has come and flags card holds about to lapse (periodic; see
    /// `PaymentService::run_deposits`).
    pub const DEPOSITS: &str = "payments.deposits";
}

/// Arguments of [`kinds::MAIL`]: a message rendered from `template` with `context` when the job runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MailJob {
    /// Template name (`welcome`, `order_confirmation`, …).
    pub template: String,
    /// Recipient address.
    pub to: String,
    /// The template's variables.
    pub context: serde_json::Value,
}

/// Arguments of [`kinds::SETTLE_ORDER`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SettleOrder {
    /// The order whose invoices and usage to settle.
    pub order_id: Uuid,
}

/// Arguments of [`kinds::ORDER_CONFIRMATION`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderMail {
    /// The order.
    pub order_id: Uuid,
}

/// Arguments of [`kinds::PASSWORD_RECOVERY`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PasswordRecovery {
    /// The address as the caller typed it.
    pub email: String,
}

/// Settings of the jobs the services enqueue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JobsConfig {
    /// Runs of a job before it is dead-lettered.
    pub max_attempts: u32,
    /// How long after an order's commit its settlement job becomes due, should the settlement after the commit
    /// not have happened.
    pub settle_after_secs: u64,
}

impl Default for JobsConfig {
    fn default() -> Self {
        Self { max_attempts: 20, settle_after_secs: 60 }
    }
}

/// The future of an [`Enqueue`] method.
pub type EnqueueFuture<'a, T> = Pin<Box<dyn Future<Output = RepoResult<T>> + Send + 'a>>;

/// What the [`Outbox`] needs of a [`JobStore`], as a trait object (every job store is one).
pub trait Enqueue: Send + Sync {
    /// [`JobStore::enqueue`].
    fn enqueue_job<'a>(
        &'a self,
        uow: &'a UnitOfWork,
        job: NewJob,
        at: DateTime<Utc>,
    ) -> EnqueueFuture<'a, Option<Uuid>>;

    /// [`JobStore::settle_waiting`].
    fn settle_jobs<'a>(&'a self, ids: &'a [Uuid], at: DateTime<Utc>) -> EnqueueFuture<'a, u64>;
}

impl<J: JobStore> Enqueue for J {
    fn enqueue_job<'a>(
        &'a self,
        uow: &'a UnitOfWork,
        job: NewJob,
        at: DateTime<Utc>,
    ) -> EnqueueFuture<'a, Option<Uuid>> {
        Box::pin(self.enqueue(uow, job, at))
    }

    fn settle_jobs<'a>(&'a self, ids: &'a [Uuid], at: DateTime<Utc>) -> EnqueueFuture<'a, u64> {
        Box::pin(self.settle_waiting(ids, at))
    }
}

/// Enqueues the services' jobs in the caller's unit of work. Cheap to clone.
#[derive(Clone)]
pub struct Outbox {
    store: Arc<dyn Enqueue>,
    clock: Arc<dyn Clock>,
    config: JobsConfig,
    /// Settlement jobs whose work was done after the commit, marked in batches by a task started on first use.
    settled: Arc<OnceLock<mpsc::UnboundedSender<Uuid>>>,
}

impl fmt::Debug for Outbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Outbox").field("config", &self.config).finish_non_exhaustive()
    }
}

impl Outbox {
    /// An outbox over `store`, stamping jobs with `clock`.
    pub fn new(store: Arc<dyn Enqueue>, clock: Arc<dyn Clock>, config: JobsConfig) -> Self {
        Self { store, clock, config, settled: Arc::default() }
    }

    /// An outbox over `db`'s sea-orm queue (its own wake-up signal: workers of this process learn of its jobs
    /// by polling; [`crate::Services`] shares one queue between its outbox and its workers instead).
    pub fn over(db: Database, clock: Arc<dyn Clock>, config: JobsConfig) -> Self {
        Self::new(Arc::new(JobRepo::new(db)), clock, config)
    }

    /// Enqueues a job of `kind` with `payload` in `uow`, due after `delay`, unique by `dedupe_key` when given,
    /// for the request being handled ([`crate::context::current`]). Returns its id, or `None` when the dedupe
    /// key was taken.
    ///
    /// # Errors
    /// The repository's error.
    pub async fn enqueue_value(
        &self,
        uow: &UnitOfWork,
        kind: &str,
        payload: serde_json::Value,
        delay: Option<Duration>,
        dedupe_key: Option<String>,
    ) -> RepoResult<Option<Uuid>> {
        let now = self.clock.now();
        let job = NewJob {
            kind: kind.to_owned(),
            payload,
            run_at: delay.map(|d| now + d),
            max_attempts: self.config.max_attempts,
            dedupe_key,
            request_id: crate::context::current(),
        };
        self.store.enqueue_job(uow, job, now).await
    }

    /// [`Outbox::enqueue_value`] with typed arguments.
    ///
    /// # Errors
    /// [`ServiceError::Internal`] when the arguments cannot be encoded as JSON; the repository's error
    /// otherwise.
    pub async fn enqueue(
        &self,
        uow: &UnitOfWork,
        kind: &str,
        args: &impl Serialize,
        delay: Option<Duration>,
        dedupe_key: Option<String>,
    ) -> ServiceResult<Option<Uuid>> {
        let payload =
            serde_json::to_value(args).map_err(|e| ServiceError::Internal(format!("job arguments of {kind}: {e}")))?;
        Ok(self.enqueue_value(uow, kind, payload, delay, dedupe_key).await?)
    }

    /// Enqueues an e-mail to `to` from `template` with `context` ([`MailJob`]), unique by `dedupe_key` when
    /// given.
    ///
    /// # Errors
    /// The repository's error.
    pub async fn mail(
        &self,
        uow: &UnitOfWork,
        template: &str,
        to: &str,
        context: serde_json::Value,
        dedupe_key: Option<String>,
    ) -> RepoResult<Option<Uuid>> {
        let payload = json!({ "template": template, "to": to, "context": context });
        self.enqueue_value(uow, kinds::MAIL, payload, None, dedupe_key).await
    }

    /// Enqueues the safety-net settlement of `order_id` ([`kinds::SETTLE_ORDER`]), due after the configured
    /// delay.
    ///
    /// # Errors
    /// The repository's error.
    pub async fn settle_later(&self, uow: &UnitOfWork, order_id: Uuid) -> RepoResult<Option<Uuid>> {
        let delay = Duration::seconds(i64::try_from(self.config.settle_after_secs).unwrap_or(i64::MAX / 1_000_000));
        self.enqueue_value(uow, kinds::SETTLE_ORDER, json!({ "order_id": order_id }), Some(delay), None).await
    }

    /// Marks the waiting job `id` done soon: the settlement after the commit did its work. Many reservations'
    /// jobs are marked by one statement, outside their requests (one commit per reservation more was measured:
    /// it cost a quarter of the reservations per second); a job not yet marked when it comes due runs and finds
    /// nothing left to do. Must be called within a tokio runtime.
    pub fn settled(&self, id: Uuid) {
        let sender = self.settled.get_or_init(|| {
            let (sender, mut ids) = mpsc::unbounded_channel::<Uuid>();
            let (store, clock) = (self.store.clone(), self.clock.clone());
            tokio::spawn(async move {
                let mut batch = Vec::with_capacity(256);
                while ids.recv_many(&mut batch, 1_000).await > 0 {
                    if let Err(err) = store.settle_jobs(&batch, clock.now()).await {
                        tracing::debug!(error = %err, jobs = batch.len(), "settlement jobs will run and find nothing");
                    }
                    batch.clear();
                }
            });
            sender
        });
        // The receiver lives as long as the task, which ends only when every sender is gone.
        let _ = sender.send(id);
    }
}

/// The queue for admins: list, inspect, retry and cancel jobs, and count them. Admin only.
#[derive(Debug)]
pub struct JobService<J = JobRepo> {
    db: Database,
    store: Arc<J>,
    clock: Arc<dyn Clock>,
    max_attempts: u32,
}

impl<J> Clone for JobService<J> {
    fn clone(&self) -> Self {
        Self {
            db: self.db.clone(),
            store: self.store.clone(),
            clock: self.clock.clone(),
            max_attempts: self.max_attempts,
        }
    }
}

impl<J: JobStore + 'static> JobService<J> {
    /// The service over `store`; `db` gives the units of work of the admin's changes.
    pub fn new(db: Database, store: Arc<J>, clock: Arc<dyn Clock>, config: &JobsConfig) -> Self {
        Self { db, store, clock, max_attempts: config.max_attempts }
    }

    /// The queue itself, for the workers.
    pub fn store(&self) -> Arc<J> {
        self.store.clone()
    }

    /// Enqueues a job of `kind` with `args` in a unit of its own, unique by `dedupe_key` when given (for
    /// background work; requests enqueue through the [`Outbox`] in the unit of their change), for the request
    /// whose work this is ([`crate::context::current`]: a job run's). Returns its id, or `None` when the dedupe
    /// key was taken.
    ///
    /// # Errors
    /// [`ServiceError::Internal`] when the arguments cannot be encoded; the repository's error otherwise.
    pub async fn enqueue(
        &self,
        kind: &str,
        args: &impl Serialize,
        dedupe_key: Option<String>,
    ) -> ServiceResult<Option<Uuid>> {
        let payload =
            serde_json::to_value(args).map_err(|e| ServiceError::Internal(format!("job arguments of {kind}: {e}")))?;
        let job = NewJob::new(kind, payload, self.max_attempts).for_request(crate::context::current());
        let job = NewJob { dedupe_key, ..job };
        let now = self.clock.now();
        Ok(self.db.write(async |uow| self.store.enqueue(uow, job, now).await).await?)
    }

    /// A page of jobs: filters `state`, `kind`, `created_after`, `created_before`; sorts `created_at`
    /// (newest first by default) and `run_at`.
    ///
    /// # Errors
    /// [`ServiceError::Forbidden`] for non-admins; [`ServiceError::InvalidQuery`] for a bad parameter.
    pub async fn list(&self, principal: &Principal, params: &[(String, String)]) -> ServiceResult<Listing<JobView>> {
        principal.require_admin()?;
        let query = job_list_spec().parse(params)?;
        Ok(self.store.list(&query).await?.map(JobView::from))
    }

    /// One job.
    ///
    /// # Errors
    /// [`ServiceError::Forbidden`] for non-admins; [`ServiceError::NotFound`] for an unknown id.
    pub async fn get(&self, principal: &Principal, id: Uuid) -> ServiceResult<JobView> {
        principal.require_admin()?;
        self.store.find(id).await?.map(JobView::from).ok_or(ServiceError::NotFound("job"))
    }

    /// Runs a dead, cancelled or waiting job again as soon as a worker is free, with its attempts reset.
    ///
    /// # Errors
    /// [`ServiceError::Forbidden`] for non-admins; [`ServiceError::NotFound`] for an unknown id;
    /// [`ServiceError::Conflict`] for a running or succeeded job.
    pub async fn retry(&self, principal: &Principal, id: Uuid) -> ServiceResult<JobView> {
        principal.require_admin()?;
        let now = self.clock.now();
        let record = self.db.write(async |uow| self.store.retry(uow, id, now).await).await.map_err(not_found)?;
        Ok(JobView::from(record))
    }

    /// Cancels a waiting job.
    ///
    /// # Errors
    /// [`ServiceError::Forbidden`] for non-admins; [`ServiceError::NotFound`] for an unknown id;
    /// [`ServiceError::Conflict`] for a job that is not waiting.
    pub async fn cancel(&self, principal: &Principal, id: Uuid) -> ServiceResult<JobView> {
        principal.require_admin()?;
        let now = self.clock.now();
        let record = self.db.write(async |uow| self.store.cancel(uow, id, now).await).await.map_err(not_found)?;
        Ok(JobView::from(record))
    }

    /// The queue's counts: waiting, due, running, retrying and dead jobs, per kind and in total.
    ///
    /// # Errors
    /// [`ServiceError::Forbidden`] for non-admins.
    pub async fn counts(&self, principal: &Principal) -> ServiceResult<QueueCounts> {
        principal.require_admin()?;
        self.queue_counts().await
    }

    /// [`JobService::counts`] without the permission check, for monitoring.
    ///
    /// # Errors
    /// The repository's error.
    pub async fn queue_counts(&self) -> ServiceResult<QueueCounts> {
        let now = self.clock.now();
        let rows = self.store.counts(now).await?;
        Ok(QueueCounts::of(rows, now))
    }
}

/// A job id the repository did not find is "job", not "record".
fn not_found(err: rental_repo::RepoError) -> ServiceError {
    match err {
        rental_repo::RepoError::NotFound => ServiceError::NotFound("job"),
        other => other.into(),
    }
}
