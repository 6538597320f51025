//! What callers see of the queue.

use chrono::{DateTime, Utc};
use rental_repo::{JobCountRecord, JobRecord, JobState};
use serde::Serialize;
use uuid::Uuid;

/// A job as admins see it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JobView {
    /// Id (time-ordered).
    pub id: Uuid,
    /// Handler name, e.g. `mail.send`.
    pub kind: String,
    /// The handler's arguments.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub payload: serde_json::Value,
    /// Where it is in its life.
    #[cfg_attr(feature = "openapi", schema(value_type = crate::openapi::JobStateSchema))]
    pub state: JobState,
    /// Runs started so far.
    pub attempts: u32,
    /// Runs allowed before it is dead-lettered.
    pub max_attempts: u32,
    /// When it is, or was, due.
    pub run_at: DateTime<Utc>,
    /// When it was enqueued.
    pub created_at: DateTime<Utc>,
    /// When its latest run started.
    pub started_at: Option<DateTime<Utc>>,
    /// When it succeeded, died or was cancelled.
    pub finished_at: Option<DateTime<Utc>>,
    /// Until when its worker holds it.
    pub lease_until: Option<DateTime<Utc>>,
    /// The worker that runs, or last ran, it.
    pub worker: Option<String>,
    /// The error of its latest failed run.
    pub last_error: Option<String>,
    /// Its dedupe key.
    pub dedupe_key: Option<String>,
    /// The `X-Request-Id` of the request during which it was enqueued (for a job enqueued by another job, that
    /// job's); `null` for the scheduler's jobs. Its runs log under it and its e-mail carries it.
    pub request_id: Option<String>,
}

impl From<JobRecord> for JobView {
    fn from(r: JobRecord) -> Self {
        // A payload that is not JSON was not written by this crate; show it as the string it is.
        let payload = serde_json::from_str(&r.payload).unwrap_or(serde_json::Value::String(r.payload));
        Self {
            id: r.id,
            kind: r.kind,
            payload,
            state: r.state,
            attempts: r.attempts,
            max_attempts: r.max_attempts,
            run_at: r.run_at,
            created_at: r.created_at,
            started_at: r.started_at,
            finished_at: r.finished_at,
            lease_until: r.lease_until,
            worker: r.locked_by,
            last_error: r.last_error,
            dedupe_key: r.dedupe_key,
            request_id: r.request_id,
        }
    }
}

/// Unfinished or dead jobs of one kind in one state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JobCountView {
    /// Handler name.
    pub kind: String,
    /// `queued`, `retrying`, `running` or `dead`.
    #[cfg_attr(feature = "openapi", schema(value_type = crate::openapi::JobStateSchema))]
    pub state: JobState,
    /// How many.
    pub count: u64,
    /// How many of them are due now (waiting states).
    pub due: u64,
}

/// The queue's counts.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct QueueCounts {
    /// Waiting jobs due now: the queue's depth.
    pub depth: u64,
    /// Jobs waiting for their first run (due or not).
    pub queued: u64,
    /// Jobs waiting for a retry.
    pub retrying: u64,
    /// Jobs held by workers.
    pub running: u64,
    /// Dead-lettered jobs.
    pub dead: u64,
    /// Seconds the oldest due job has waited (0 when none is due).
    pub oldest_due_secs: f64,
    /// The same, per kind and state.
    pub by_kind: Vec<JobCountView>,
}

impl QueueCounts {
    pub(crate) fn of(rows: Vec<JobCountRecord>, now: DateTime<Utc>) -> Self {
        let mut counts = Self {
            depth: 0,
            queued: 0,
            retrying: 0,
            running: 0,
            dead: 0,
            oldest_due_secs: 0.0,
            by_kind: Vec::with_capacity(rows.len()),
        };
        for row in rows {
            counts.depth += row.due;
            match row.state {
                JobState::Queued => counts.queued += row.count,
                JobState::Retrying => counts.retrying += row.count,
                JobState::Running => counts.running += row.count,
                JobState::Dead => counts.dead += row.count,
                JobState::Succeeded | JobState::Cancelled => {}
            }
            if row.due > 0
                && let Some(oldest) = row.oldest_run_at
            {
                let waited = (now - oldest).num_milliseconds().max(0) as f64 / 1_000.0;
                counts.oldest_due_secs = counts.oldest_due_secs.max(waited);
            }
            counts.by_kind.push(JobCountView { kind: row.kind, state: row.state, count: row.count, due: row.due });
        }
        counts
    }
}
