//! The persistence contract of the job queue and the schedules, implemented by [`crate::JobRepo`].

use std::future::Future;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{ClaimedJob, JobCountRecord, JobRecord, NewJob};
use crate::query::{ListQuery, Listing};
use crate::{RepoResult, UnitOfWork};

/// The queue. Enqueueing takes the caller's [`UnitOfWork`], so a job exists if and only if the business change
/// it belongs to committed; the workers' calls are single statements of their own.
///
/// The contract every implementation keeps (checked by `rental_repo::conformance` on SQLite and PostgreSQL):
/// a job is claimed by one worker at a time, only when due, oldest due first; a claim counts an attempt;
/// completing, failing, releasing and extending a lease change only jobs the named worker holds; a lease that
/// expires makes the job claimable again (rescue), dead when its attempts are spent; a dedupe key admits one
/// job per kind; nothing a rolled-back unit enqueued is ever claimed.
pub trait JobStore: Send + Sync {
    /// Enqueues `job` (stamped `at`; due at `at` unless it says otherwise). Returns its id, or `None` when a job
    /// of the same kind with the same dedupe key exists.
    ///
    /// # Errors
    /// [`crate::RepoError::Database`] when the insert fails.
    fn enqueue(
        &self,
        uow: &UnitOfWork,
        job: NewJob,
        at: DateTime<Utc>,
    ) -> impl Future<Output = RepoResult<Option<Uuid>>> + Send;

    /// Enqueues many jobs with multi-row INSERTs, skipping those whose dedupe key exists. Returns how many were
    /// enqueued.
    ///
    /// # Errors
    /// [`crate::RepoError::Database`] when an insert fails.
    fn enqueue_many(
        &self,
        uow: &UnitOfWork,
        jobs: Vec<NewJob>,
        at: DateTime<Utc>,
    ) -> impl Future<Output = RepoResult<u64>> + Send;

    /// Claims up to `limit` jobs of `kinds` that are due at `now`, oldest due first, for `worker` until
    /// `lease_until`: each becomes running and counts an attempt. Jobs of other kinds are left alone.
    ///
    /// # Errors
    /// [`crate::RepoError::Database`] when the statement fails.
    fn claim(
        &self,
        worker: &str,
        kinds: &[String],
        limit: u32,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> impl Future<Output = RepoResult<Vec<ClaimedJob>>> + Send;

    /// Extends the leases of the jobs of `ids` that `worker` still holds. Returns how many it holds.
    ///
    /// # Errors
    /// [`crate::RepoError::Database`] when the statement fails.
    fn extend_leases(
        &self,
        worker: &str,
        ids: &[Uuid],
        lease_until: DateTime<Utc>,
    ) -> impl Future<Output = RepoResult<u64>> + Send;

    /// Marks the jobs of `ids` that `worker` holds as succeeded. Returns how many changed.
    ///
    /// # Errors
    /// [`crate::RepoError::Database`] when the statement fails.
    fn complete(&self, worker: &str, ids: &[Uuid], at: DateTime<Utc>) -> impl Future<Output = RepoResult<u64>> + Send;

    /// Records a failed run of job `id` held by `worker`, keeping `error`: retried at `retry_at`, or dead when
    /// `retry_at` is `None`. Returns whether `worker` still held it.
    ///
    /// # Errors
    /// [`crate::RepoError::Database`] when the statement fails.
    fn fail(
        &self,
        worker: &str,
        id: Uuid,
        error: &str,
        retry_at: Option<DateTime<Utc>>,
        at: DateTime<Utc>,
    ) -> impl Future<Output = RepoResult<bool>> + Send;

    /// Gives back the jobs of `ids` that `worker` holds without counting their attempt (a worker shutting down
    /// before they finished): they wait again, due at once. Returns how many.
    ///
    /// # Errors
    /// [`crate::RepoError::Database`] when the statement fails.
    fn release(&self, worker: &str, ids: &[Uuid]) -> impl Future<Output = RepoResult<u64>> + Send;

    /// Rescues running jobs whose lease ended before `now` (their worker died or hung): they retry at once, or
    /// die when their attempts are spent. Returns how many.
    ///
    /// # Errors
    /// [`crate::RepoError::Database`] when the statement fails.
    fn rescue_expired(&self, now: DateTime<Utc>) -> impl Future<Output = RepoResult<u64>> + Send;

    /// Marks waiting jobs of `ids` as succeeded without running them: their work was done on a faster path (the
    /// settlement after an order's commit), so the job kept as a safety net is not needed. Returns how many.
    ///
    /// # Errors
    /// [`crate::RepoError::Database`] when the statement fails.
    fn settle_waiting(&self, ids: &[Uuid], at: DateTime<Utc>) -> impl Future<Output = RepoResult<u64>> + Send;

    /// A job by id.
    ///
    /// # Errors
    /// [`crate::RepoError::Database`] when the query fails.
    fn find(&self, id: Uuid) -> impl Future<Output = RepoResult<Option<JobRecord>>> + Send;

    /// A page of jobs ([`crate::job_list_spec`]).
    ///
    /// # Errors
    /// [`crate::RepoError::Database`] when the query fails.
    fn list(&self, query: &ListQuery) -> impl Future<Output = RepoResult<Listing<JobRecord>>> + Send;

    /// Queues a dead, cancelled or waiting job to run at `at` with its attempts reset.
    ///
    /// # Errors
    /// [`crate::RepoError::NotFound`] for an unknown id; [`crate::RepoError::Conflict`] for a running or
    /// succeeded job.
    fn retry(
        &self,
        uow: &UnitOfWork,
        id: Uuid,
        at: DateTime<Utc>,
    ) -> impl Future<Output = RepoResult<JobRecord>> + Send;

    /// Cancels a waiting job.
    ///
    /// # Errors
    /// [`crate::RepoError::NotFound`] for an unknown id; [`crate::RepoError::Conflict`] for a job that is not
    /// waiting.
    fn cancel(
        &self,
        uow: &UnitOfWork,
        id: Uuid,
        at: DateTime<Utc>,
    ) -> impl Future<Output = RepoResult<JobRecord>> + Send;

    /// Counts of the unfinished and dead jobs per kind and state, with how many are due at `now`.
    ///
    /// # Errors
    /// [`crate::RepoError::Database`] when the query fails.
    fn counts(&self, now: DateTime<Utc>) -> impl Future<Output = RepoResult<Vec<JobCountRecord>>> + Send;

    /// Deletes up to `limit` succeeded and cancelled jobs that finished before `before`. Returns how many.
    ///
    /// # Errors
    /// [`crate::RepoError::Database`] when the statement fails.
    fn purge_finished(&self, before: DateTime<Utc>, limit: u32) -> impl Future<Output = RepoResult<u64>> + Send;

    /// Moves schedule `name` to `slot` if its last slot is earlier (or it has none): the compare-and-set that
    /// lets exactly one instance enqueue a slot, in the same unit as the enqueue. Returns whether it moved.
    ///
    /// # Errors
    /// [`crate::RepoError::Database`] when the statement fails.
    fn advance_schedule(
        &self,
        uow: &UnitOfWork,
        name: &str,
        slot: DateTime<Utc>,
        at: DateTime<Utc>,
    ) -> impl Future<Output = RepoResult<bool>> + Send;

    /// The last slot enqueued for schedule `name`.
    ///
    /// # Errors
    /// [`crate::RepoError::Database`] when the query fails.
    fn last_slot(&self, name: &str) -> impl Future<Output = RepoResult<Option<DateTime<Utc>>>> + Send;
}
