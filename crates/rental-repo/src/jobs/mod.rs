//! The durable job queue: jobs enqueued in the caller's unit of work (a transactional outbox), claimed in
//! batches by workers under a lease, retried, dead-lettered; and the slots of the periodic schedules.
//!
//! A job is a row of `jobs`. Its life:
//!
//! ```text
//! queued ──claim──> running ──complete──> succeeded
//!    ^                 │ ├──fail (attempts left)──> retrying ──claim──> running …
//!    │                 │ └──fail (none left) / permanent error──> dead ──retry (admin)──> queued
//!    └──release (shutdown)┘   lease expired (worker lost) ──rescue──> retrying, or dead when none left
//! queued / retrying ──cancel (admin)──> cancelled
//! ```
//!
//! Workers claim with one `UPDATE … WHERE id IN (SELECT … LIMIT n) RETURNING`: on PostgreSQL the subquery
//! locks `FOR UPDATE SKIP LOCKED`, so concurrent workers take disjoint rows without waiting; SQLite has one
//! writer at a time, so the single statement is atomic there by itself (the lock clause is left out on SQLite,
//! and nothing here relies on it). Every state change of a running job is fenced by the worker's id: a
//! worker whose lease expired and whose job was claimed again cannot complete or fail it any more. On
//! PostgreSQL claims and completions commit without waiting for the disk (a server crash can make a job run
//! once more, never less; see `JobRepo::without_flush`).

mod queue;
mod store;

use std::fmt;
use std::future::Future;
use std::str::FromStr;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
pub use store::JobStore;
use tokio::sync::Notify;
use uuid::Uuid;

use sea_orm::sqlx::postgres::PgListener;

use crate::entity::job;
use crate::query::{Direction, FilterKind, FilterOp, ListColumns, ListSpec, PageSizes, SortKind};
use crate::{Backend, Database};

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Waiting for its first run.
    Queued,
    /// Waiting for another run after a failure (its `run_at` is the backoff's end).
    Retrying,
    /// Held by a worker under a lease.
    Running,
    /// Done.
    Succeeded,
    /// Failed for good (attempts exhausted or a permanent error), kept with its last error until an admin
    /// retries it.
    Dead,
    /// Cancelled by an admin before it ran.
    Cancelled,
}

impl JobState {
    /// Every state, in the order of the life above.
    pub const ALL: [Self; 6] =
        [Self::Queued, Self::Retrying, Self::Running, Self::Succeeded, Self::Dead, Self::Cancelled];

    /// The stored word.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Retrying => "retrying",
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Dead => "dead",
            Self::Cancelled => "cancelled",
        }
    }

    /// Waiting to be claimed (queued or retrying).
    pub fn is_waiting(self) -> bool {
        matches!(self, Self::Queued | Self::Retrying)
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for JobState {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|state| state.as_str() == s).ok_or_else(|| format!("unknown job state `{s}`"))
    }
}

/// A job to enqueue.
#[derive(Debug, Clone, PartialEq)]
pub struct NewJob {
    /// What runs it (a handler registered under this name), e.g. `mail.send`.
    pub kind: String,
    /// The handler's arguments, as JSON.
    pub payload: serde_json::Value,
    /// Not before this time (`None`: as soon as a worker is free).
    pub run_at: Option<DateTime<Utc>>,
    /// Runs before it is dead-lettered (at least 1).
    pub max_attempts: u32,
    /// Makes the job unique per kind for as long as its row exists: a second enqueue with the same kind and key
    /// is skipped.
    pub dedupe_key: Option<String>,
    /// The request during which it was enqueued (its `X-Request-Id`), so that its run can be traced back to it;
    /// `None` for work nobody asked for by a request (the scheduler's).
    pub request_id: Option<String>,
}

impl NewJob {
    /// A job of `kind` with `payload`, to run now, with up to `max_attempts` runs and no dedupe key.
    pub fn new(kind: impl Into<String>, payload: serde_json::Value, max_attempts: u32) -> Self {
        Self { kind: kind.into(), payload, run_at: None, max_attempts, dedupe_key: None, request_id: None }
    }

    /// The same job, not before `at`.
    #[must_use]
    pub fn at(mut self, at: DateTime<Utc>) -> Self {
        self.run_at = Some(at);
        self
    }

    /// The same job, unique per kind by `key`.
    #[must_use]
    pub fn dedupe(mut self, key: impl Into<String>) -> Self {
        self.dedupe_key = Some(key.into());
        self
    }

    /// The same job, enqueued on behalf of request `id` (none when `None`).
    #[must_use]
    pub fn for_request(mut self, id: Option<String>) -> Self {
        self.request_id = id;
        self
    }
}

/// A stored job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobRecord {
    /// Time-ordered id.
    pub id: Uuid,
    /// Handler name.
    pub kind: String,
    /// Arguments, as JSON text.
    pub payload: String,
    /// Where it is.
    pub state: JobState,
    /// Runs started so far.
    pub attempts: u32,
    /// Runs allowed.
    pub max_attempts: u32,
    /// When it is (or was) due.
    pub run_at: DateTime<Utc>,
    /// When it was enqueued.
    pub created_at: DateTime<Utc>,
    /// When its latest run started.
    pub started_at: Option<DateTime<Utc>>,
    /// When it succeeded, died or was cancelled.
    pub finished_at: Option<DateTime<Utc>>,
    /// Until when its worker holds it (running jobs).
    pub lease_until: Option<DateTime<Utc>>,
    /// The worker that runs or last ran it.
    pub locked_by: Option<String>,
    /// The error of its latest failed run.
    pub last_error: Option<String>,
    /// Its dedupe key.
    pub dedupe_key: Option<String>,
    /// The request during which it was enqueued.
    pub request_id: Option<String>,
}

/// A job a worker has claimed: what its handler needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedJob {
    /// Id (a handler derives idempotency keys and `Message-ID`s from it).
    pub id: Uuid,
    /// Handler name.
    pub kind: String,
    /// Arguments, as JSON text.
    pub payload: String,
    /// This run's number, from 1.
    pub attempt: u32,
    /// Runs allowed.
    pub max_attempts: u32,
    /// When it was due: the start of its wait, for the enqueue-to-start latency.
    pub run_at: DateTime<Utc>,
    /// When it was enqueued.
    pub created_at: DateTime<Utc>,
    /// The request during which it was enqueued: its run is logged under it, and what it enqueues or sends
    /// carries it on.
    pub request_id: Option<String>,
}

/// Unfinished and dead jobs of one kind in one state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobCountRecord {
    /// Handler name.
    pub kind: String,
    /// One of queued, retrying, running, dead.
    pub state: JobState,
    /// How many.
    pub count: u64,
    /// How many of them are due now (waiting states only).
    pub due: u64,
    /// The earliest `run_at` among them.
    pub oldest_run_at: Option<DateTime<Utc>>,
}

/// Filters of the job list, as the whitelist names them.
#[derive(Debug, Clone, Copy)]
pub struct JobFilter;

impl JobFilter {
    /// `state=queued|retrying|running|succeeded|dead|cancelled`
    pub const STATE: &'static str = "state";
    /// `kind=<handler name>` (exact)
    pub const KIND: &'static str = "kind";
    /// `created_after=<timestamp or date>` (inclusive)
    pub const CREATED_AFTER: &'static str = "created_after";
    /// `created_before=<timestamp or date>` (exclusive)
    pub const CREATED_BEFORE: &'static str = "created_before";
}

static JOB_LIST_SPEC: ListSpec = ListSpec {
    resource: "jobs",
    filters: &[
        (JobFilter::STATE, FilterKind::OneOf(&["queued", "retrying", "running", "succeeded", "dead", "cancelled"])),
        (JobFilter::KIND, FilterKind::Name),
        (JobFilter::CREATED_AFTER, FilterKind::DateTime),
        (JobFilter::CREATED_BEFORE, FilterKind::DateTime),
    ],
    sorts: &[("created_at", SortKind::DateTime), ("run_at", SortKind::DateTime)],
    default_sort: ("created_at", Direction::Desc),
    searchable: false,
    page_sizes: PageSizes::DEFAULT,
};

static JOB_LIST: ListColumns<job::Entity> = ListColumns {
    spec: &JOB_LIST_SPEC,
    key: job::Column::Id,
    sorts: &[("created_at", job::Column::CreatedAt), ("run_at", job::Column::RunAt)],
    filters: &[
        (JobFilter::STATE, job::Column::State, FilterOp::Eq),
        (JobFilter::KIND, job::Column::Kind, FilterOp::Eq),
        (JobFilter::CREATED_AFTER, job::Column::CreatedAt, FilterOp::Gte),
        (JobFilter::CREATED_BEFORE, job::Column::CreatedAt, FilterOp::Lt),
    ],
    search: &[],
};

/// The whitelist of the job list: filters `state`, `kind`, `created_after`, `created_before`; sorts
/// `created_at` (default, newest first) and `run_at`; offset or keyset pagination.
pub fn job_list_spec() -> &'static ListSpec {
    &JOB_LIST_SPEC
}

/// The queue: the sea-orm [`JobStore`]. Clones share the wake-up signal.
#[derive(Debug, Clone)]
pub struct JobRepo {
    db: Database,
    wake: Arc<Notify>,
    notifier: Arc<Notifier>,
}

/// Coalesces the `NOTIFY`s of this process: at most one is in flight, and one more follows it when jobs were
/// committed meanwhile, so a burst of enqueues costs a few notifications instead of one statement each.
#[derive(Debug, Default)]
pub(crate) struct Notifier {
    /// Notifications asked for so far.
    asked: std::sync::atomic::AtomicU64,
    /// Whether a task is sending them.
    sending: std::sync::atomic::AtomicBool,
}

impl JobRepo {
    /// The queue over `db`.
    pub fn new(db: Database) -> Self {
        Self { db, wake: Arc::new(Notify::new()), notifier: Arc::default() }
    }

    /// Signalled after the commit of every unit that enqueued a job due now, so that a worker of this process
    /// starts it without waiting for its next poll. Workers of other processes learn of it from PostgreSQL's
    /// `NOTIFY` on [`JOBS_CHANNEL`], or by polling.
    pub fn wake_signal(&self) -> Arc<Notify> {
        self.wake.clone()
    }

    /// The database the queue is in.
    pub fn database(&self) -> &Database {
        &self.db
    }

    /// Relays PostgreSQL's notifications on [`JOBS_CHANNEL`] to [`JobRepo::wake_signal`] until `stop`
    /// resolves, so that a job enqueued by another instance starts without waiting for a poll. It reconnects
    /// after a lost connection (workers poll meanwhile). On SQLite, where every writer is in this process, it
    /// just waits for `stop`.
    pub async fn relay_notifications(&self, stop: impl Future<Output = ()>) {
        if self.db.backend() != Backend::Postgres {
            stop.await;
            return;
        }
        tokio::pin!(stop);
        let pool = self.db.connection().get_postgres_connection_pool().clone();
        loop {
            let relay = async {
                let mut listener = PgListener::connect_with(&pool).await?;
                listener.listen(JOBS_CHANNEL).await?;
                // A notification may have been missed while (re)connecting.
                self.wake.notify_one();
                loop {
                    listener.recv().await?;
                    self.wake.notify_one();
                }
                #[allow(unreachable_code)]
                Ok::<(), sea_orm::sqlx::Error>(())
            };
            tokio::select! {
                () = &mut stop => return,
                result = relay => {
                    if let Err(err) = result {
                        tracing::warn!(error = %err, "job notifications lost; polling until they are back");
                    }
                }
            }
            tokio::select! {
                () = &mut stop => return,
                () = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
            }
        }
    }
}

/// The PostgreSQL notification channel that carries "a job is due": the enqueueing transaction notifies it,
/// so the notification is delivered when, and only if, it commits.
pub const JOBS_CHANNEL: &str = "rental_jobs";

fn job_record(model: job::Model) -> crate::RepoResult<JobRecord> {
    Ok(JobRecord {
        id: model.id,
        kind: model.kind,
        payload: model.payload,
        state: stored_state(&model.state)?,
        attempts: count(model.attempts),
        max_attempts: count(model.max_attempts),
        run_at: model.run_at,
        created_at: model.created_at,
        started_at: model.started_at,
        finished_at: model.finished_at,
        lease_until: model.lease_until,
        locked_by: model.locked_by,
        last_error: model.last_error,
        dedupe_key: model.dedupe_key,
        request_id: model.request_id,
    })
}

fn stored_state(word: &str) -> crate::RepoResult<JobState> {
    word.parse().map_err(|message: String| crate::stored::corrupt(format!("`jobs.state`: {message}")))
}

fn count(n: i32) -> u32 {
    u32::try_from(n).unwrap_or(0)
}
