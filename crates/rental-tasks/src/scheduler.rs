//! Periodic jobs from cron expressions, each slot enqueued exactly once across every instance.
//!
//! A schedule names a job kind and a cron expression (parsed by croner: five fields, or six with seconds,
//! UTC). Every instance runs a scheduler; at each tick it computes each schedule's latest slot (the latest
//! occurrence not after now) and, when that is later than the slot recorded in the database, moves the record
//! to it and enqueues the job, both in one unit of work. Moving the record is a compare-and-set
//! ([`JobStore::advance_schedule`]), so when several instances see the same new slot exactly one of them
//! enqueues it; the others find the record moved.
//!
//! After downtime a schedule may have missed slots: `missed = "run_once"` runs the latest of them once (a
//! clean-up or a report that should still happen), `missed = "skip"` runs none and waits for the next on-time
//! slot (a reminder that is pointless late). A schedule seen for the first time records its latest slot
//! without running it, so installing the service does not fire every schedule at once.

use std::collections::BTreeMap;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use croner::Cron;
use rental_repo::{Database, JobStore, NewJob};
use rental_service::{Clock, SystemClock};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio_util::sync::CancellationToken;

/// What a schedule does with slots it missed while no instance was running.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Missed {
    /// Run the latest missed slot once.
    #[default]
    RunOnce,
    /// Run none; wait for the next slot.
    Skip,
}

/// One periodic job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleConfig {
    /// Cron expression, UTC: `min hour day month weekday`, or with a leading seconds field.
    pub cron: String,
    /// The job kind to enqueue.
    pub kind: String,
    /// Missed slots after downtime.
    #[serde(default)]
    pub missed: Missed,
    /// Whether it runs.
    #[serde(default = "enabled")]
    pub enabled: bool,
}

fn enabled() -> bool {
    true
}

/// Settings of the scheduler.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SchedulerConfig {
    /// Whether this instance runs the scheduler (every instance may: each slot runs once anyway).
    pub enabled: bool,
    /// How often the schedules are checked, seconds.
    pub tick_secs: u64,
    /// A slot found later than this after its time counts as missed (for `missed = "skip"`), seconds.
    pub late_after_secs: u64,
    /// The schedules by name.
    pub schedules: BTreeMap<String, ScheduleConfig>,
}

impl Default for SchedulerConfig {
    /// The rental backend's schedules (also in `config/default.toml`).
    fn default() -> Self {
        let schedule = |cron: &str, kind: &str, missed| ScheduleConfig {
            cron: cron.into(),
            kind: kind.into(),
            missed,
            enabled: true,
        };
        use rental_service::jobs::kinds;
        let schedules = BTreeMap::from([
            ("purge_expired_tokens".into(), schedule("17 3 * * *", kinds::PURGE_TOKENS, Missed::RunOnce)),
            ("purge_finished_jobs".into(), schedule("47 * * * *", kinds::PURGE_JOBS, Missed::RunOnce)),
            ("purge_idempotency_keys".into(), schedule("23 * * * *", kinds::PURGE_IDEMPOTENCY, Missed::RunOnce)),
            ("mark_overdue".into(), schedule("*/15 * * * *", kinds::MARK_OVERDUE, Missed::RunOnce)),
            ("return_reminders".into(), schedule("5 * * * *", kinds::RETURN_REMINDERS, Missed::Skip)),
            ("pickup_reminders".into(), schedule("10 * * * *", kinds::PICKUP_REMINDERS, Missed::Skip)),
            ("daily_report".into(), schedule("0 7 * * *", kinds::DAILY_REPORT, Missed::RunOnce)),
            ("reconcile_payments".into(), schedule("*/10 * * * *", kinds::RECONCILE_PAYMENTS, Missed::RunOnce)),
            ("deposits".into(), schedule("*/10 * * * *", kinds::DEPOSITS, Missed::RunOnce)),
        ]);
        Self { enabled: true, tick_secs: 5, late_after_secs: 120, schedules }
    }
}

/// A schedule that cannot be used, naming its key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct ScheduleError {
    /// The configuration key at fault, e.g. `scheduler.schedules.daily_report.cron`.
    pub key: String,
    /// What is wrong.
    pub message: String,
}

/// A parsed schedule.
#[derive(Debug, Clone)]
struct Schedule {
    name: String,
    cron: Cron,
    kind: String,
    missed: Missed,
}

/// The scheduler of one instance.
pub struct Scheduler<J> {
    db: Database,
    store: Arc<J>,
    schedules: Vec<Schedule>,
    config: SchedulerConfig,
    max_attempts: u32,
    clock: Arc<dyn Clock>,
}

impl<J> std::fmt::Debug for Scheduler<J> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.schedules.iter().map(|s| s.name.as_str()).collect();
        f.debug_struct("Scheduler").field("schedules", &names).finish_non_exhaustive()
    }
}

impl<J: JobStore + 'static> Scheduler<J> {
    /// Parses the enabled schedules of `config`; every `kind` must be one of `known_kinds` (the handlers
    /// registered), so that a typo fails at start-up instead of enqueueing jobs nobody runs.
    ///
    /// # Errors
    /// [`ScheduleError`] naming the key of a bad cron expression or an unknown kind.
    pub fn new(
        db: Database,
        store: Arc<J>,
        config: SchedulerConfig,
        known_kinds: &[String],
        max_attempts: u32,
    ) -> Result<Self, ScheduleError> {
        let mut schedules = Vec::new();
        for (name, schedule) in config.schedules.iter().filter(|(_, s)| s.enabled) {
            let key = |field: &str| format!("scheduler.schedules.{name}.{field}");
            let cron = Cron::from_str(&schedule.cron).map_err(|e| ScheduleError {
                key: key("cron"),
                message: format!("`{}` is not a cron expression: {e}", schedule.cron),
            })?;
            if !known_kinds.contains(&schedule.kind) {
                return Err(ScheduleError {
                    key: key("kind"),
                    message: format!("no handler for `{}`; known: {}", schedule.kind, known_kinds.join(", ")),
                });
            }
            schedules.push(Schedule { name: name.clone(), cron, kind: schedule.kind.clone(), missed: schedule.missed });
        }
        if config.tick_secs == 0 {
            return Err(ScheduleError { key: "scheduler.tick_secs".into(), message: "must be positive".into() });
        }
        Ok(Self { db, store, schedules, config, max_attempts, clock: Arc::new(SystemClock) })
    }

    /// The same scheduler judging time by `clock`.
    #[must_use]
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Checks every schedule at `clock`'s now and enqueues the slots that are due and not yet enqueued by any
    /// instance. Returns the names of the schedules this call enqueued.
    ///
    /// # Errors
    /// The first storage error (the other schedules are still checked on the next tick).
    pub async fn tick(&self) -> rental_repo::RepoResult<Vec<String>> {
        let now = self.clock.now();
        let mut enqueued = Vec::new();
        for schedule in &self.schedules {
            if self.check(schedule, now).await? {
                enqueued.push(schedule.name.clone());
            }
        }
        Ok(enqueued)
    }

    /// One schedule: whether this call enqueued its latest slot.
    async fn check(&self, schedule: &Schedule, now: DateTime<Utc>) -> rental_repo::RepoResult<bool> {
        let Ok(slot) = schedule.cron.find_previous_occurrence(&now, true) else { return Ok(false) };
        let last = self.store.last_slot(&schedule.name).await?;
        let Some(last) = last else {
            // First sight: record where we are without running.
            self.db.write(async |uow| self.store.advance_schedule(uow, &schedule.name, slot, now).await).await?;
            return Ok(false);
        };
        if slot <= last {
            return Ok(false);
        }
        let late = now - slot > chrono::Duration::seconds(i64::try_from(self.config.late_after_secs).unwrap_or(0));
        let run = !(late && schedule.missed == Missed::Skip);
        let job = NewJob::new(&schedule.kind, json!({ "schedule": schedule.name, "slot": slot }), self.max_attempts)
            .dedupe(format!("schedule:{}:{}", schedule.name, slot.timestamp()));
        let moved = self
            .db
            .write(async |uow| {
                let moved = self.store.advance_schedule(uow, &schedule.name, slot, now).await?;
                if moved && run {
                    self.store.enqueue(uow, job, now).await?;
                }
                Ok::<_, rental_repo::RepoError>(moved)
            })
            .await?;
        if moved {
            if run {
                tracing::info!(schedule = %schedule.name, %slot, "periodic job enqueued");
            } else {
                tracing::info!(schedule = %schedule.name, %slot, "missed slot skipped");
            }
        }
        Ok(moved && run)
    }

    /// Ticks until `shutdown` is cancelled.
    pub async fn run(self, shutdown: CancellationToken) {
        let every = Duration::from_secs(self.config.tick_secs.max(1));
        loop {
            if let Err(err) = self.tick().await {
                tracing::warn!(error = %err, "checking the schedules failed; trying again next tick");
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(every) => {}
            }
        }
    }
}
