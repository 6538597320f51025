//! The sea-orm [`JobStore`]: every worker call is one statement on the pool. On PostgreSQL, claims and
//! completions commit without waiting for the disk ([`JobRepo::without_flush`]).

use chrono::{DateTime, SubsecRound, Utc};
use sea_orm::sea_query::{Alias, CaseStatement, Expr, ExprTrait, OnConflict, Query};
use sea_orm::{ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryTrait};
use uuid::Uuid;

use super::{ClaimedJob, JOB_LIST, JOBS_CHANNEL, JobCountRecord, JobRecord, JobRepo, JobState, JobStore, NewJob};
use super::{count, job_record, stored_state};
use crate::db::raw::RawSql;
use crate::entity::{job, schedule};
use crate::query::{ListQuery, Listing};
use crate::{Backend, RepoError, RepoResult, UnitOfWork};

/// Most ids one statement names.
const IDS_PER_STATEMENT: usize = 1_000;
/// Most rows one INSERT carries.
const ROWS_PER_INSERT: usize = 500;
/// PostgreSQL: see [`JobRepo::without_flush`].
const WITHOUT_FLUSH: &str = "(SELECT set_config('synchronous_commit', 'off', true)) = 'off'";
/// Longest error kept with a job.
const MAX_ERROR_LEN: usize = 2_000;

fn stamp(at: DateTime<Utc>) -> DateTime<Utc> {
    at.trunc_subsecs(6)
}

fn waiting() -> [&'static str; 2] {
    [JobState::Queued.as_str(), JobState::Retrying.as_str()]
}

fn new_model(job: NewJob, at: DateTime<Utc>) -> job::ActiveModel {
    job::ActiveModel {
        id: Set(Uuid::now_v7()),
        kind: Set(job.kind),
        payload: Set(job.payload.to_string()),
        state: Set(JobState::Queued.as_str().to_owned()),
        attempts: Set(0),
        max_attempts: Set(i32::try_from(Ord::max(job.max_attempts, 1)).unwrap_or(i32::MAX)),
        run_at: Set(Ord::max(job.run_at.map_or(at, stamp), at)),
        created_at: Set(at),
        started_at: Set(None),
        finished_at: Set(None),
        lease_until: Set(None),
        locked_by: Set(None),
        last_error: Set(None),
        dedupe_key: Set(job.dedupe_key),
        request_id: Set(job.request_id),
    }
}

/// Sends `NOTIFY` for the jobs committed so far, unless a task of this process is sending one already; that task
/// sends one more when jobs were committed while its statement ran, so no job is left without a notification.
fn notify_others(db: crate::Database, notifier: std::sync::Arc<super::Notifier>) {
    use std::sync::atomic::Ordering;
    notifier.asked.fetch_add(1, Ordering::SeqCst);
    if notifier.sending.swap(true, Ordering::SeqCst) {
        return;
    }
    tokio::spawn(async move {
        let notify = format!("NOTIFY {JOBS_CHANNEL}");
        loop {
            let covered = notifier.asked.load(Ordering::SeqCst);
            if let Err(err) = db.connection().execute_unprepared(&notify).await {
                tracing::debug!(error = %err, "job notification failed; workers will poll");
            }
            if notifier.asked.load(Ordering::SeqCst) == covered {
                notifier.sending.store(false, Ordering::SeqCst);
                // Asked again between the check and the store: take the turn back, or leave it to that caller.
                if notifier.asked.load(Ordering::SeqCst) == covered || notifier.sending.swap(true, Ordering::SeqCst) {
                    return;
                }
            }
        }
    });
}

/// `ON CONFLICT DO NOTHING`: the only unique constraint a new job can meet is its dedupe key.
fn skip_duplicates() -> OnConflict {
    OnConflict::new().do_nothing().to_owned()
}

/// A job's error, bounded so that a huge message cannot bloat the table.
fn bounded(error: &str) -> String {
    if error.len() <= MAX_ERROR_LEN {
        return error.to_owned();
    }
    let mut end = MAX_ERROR_LEN;
    while !error.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &error[..end])
}

impl JobRepo {
    /// After the unit commits: wakes this process's workers and, on PostgreSQL, every listening instance.
    fn wake_after_commit(&self, uow: &UnitOfWork) {
        let wake = self.wake.clone();
        let (db, notifier) = (self.db.clone(), self.notifier.clone());
        uow.after_commit(async move {
            wake.notify_one();
            if db.backend() == Backend::Postgres {
                notify_others(db, notifier);
            }
        });
    }

    /// Sets the columns of `update` on the jobs of `ids` (in chunks) that match `condition`.
    async fn update_ids(
        &self,
        ids: &[Uuid],
        condition: impl Fn() -> sea_orm::Condition,
        update: impl Fn(sea_orm::UpdateMany<job::Entity>) -> sea_orm::UpdateMany<job::Entity>,
    ) -> RepoResult<u64> {
        let mut changed = 0;
        for chunk in ids.chunks(IDS_PER_STATEMENT) {
            let statement =
                update(job::Entity::update_many()).filter(job::Column::Id.is_in(chunk.to_vec())).filter(condition());
            changed += statement.exec(self.db.connection()).await?.rows_affected;
        }
        Ok(changed)
    }

    /// A condition that always holds and that, on PostgreSQL, turns `synchronous_commit` off for the
    /// transaction of the statement it is part of, so that its commit returns without waiting for the WAL to
    /// reach the disk. The uncorrelated subquery makes PostgreSQL evaluate it once per statement (an InitPlan),
    /// and `set_config(…, true)` lasts until the end of that transaction. For the worker's hot path only (claims
    /// and completion batches), which runs as statements of their own on the pool, never inside a unit of work
    /// (where it would relax the whole unit). On SQLite it is empty: a commit there does not wait for a flush
    /// in WAL mode with `synchronous = NORMAL`.
    ///
    /// Why: on the project's machine a flush takes 0.1 ms when the disk is idle and 2.6 ms when other work
    /// writes (`pg_test_fsync`); waiting for one per claim and one per completion batch made a worker 2.5 times
    /// slower on a busy disk and 1.2 times on an idle one (docs/PERFORMANCE.md, "Job queue").
    ///
    /// What it risks: if the database server itself crashes, the claims and completions of its last moments (up
    /// to three `wal_writer_delay`s, 600 ms by default) may be lost. A lost claim makes the job claimable again; a
    /// lost completion leaves the job running until its lease expires and it is rescued. Either way the job runs
    /// once more, which every job must tolerate already (a worker may die between a job's effect and its
    /// completion). The WAL stays in order, so nothing is half-applied and a later durable commit (any enqueue,
    /// failure, dead letter or admin change) makes every earlier one durable too.
    fn without_flush(&self) -> sea_orm::Condition {
        match self.db.backend() {
            Backend::Postgres => sea_orm::Condition::all().add(Expr::cust(WITHOUT_FLUSH)),
            Backend::Sqlite => sea_orm::Condition::all(),
        }
    }

    /// A running job held by `worker`.
    fn held_by(worker: &str) -> impl Fn() -> sea_orm::Condition + '_ {
        move || {
            sea_orm::Condition::all()
                .add(job::Column::LockedBy.eq(worker))
                .add(job::Column::State.eq(JobState::Running.as_str()))
        }
    }

    /// Applies a conditional admin change to job `id`; when no row matched, says why.
    async fn change_one(
        &self,
        uow: &UnitOfWork,
        id: Uuid,
        allowed: &[JobState],
        update: sea_orm::UpdateMany<job::Entity>,
    ) -> RepoResult<JobRecord> {
        let changed = update
            .filter(job::Column::Id.eq(id))
            .filter(job::Column::State.is_in(allowed.iter().map(|s| s.as_str())))
            .exec_with_returning(uow.conn())
            .await?;
        if let Some(model) = changed.into_iter().next() {
            return job_record(model);
        }
        match job::Entity::find_by_id(id).one(uow.conn()).await? {
            None => Err(RepoError::NotFound),
            Some(found) => {
                let state = stored_state(&found.state)?;
                Err(RepoError::Conflict { message: format!("the job is {state}"), index: None })
            }
        }
    }
}

impl JobStore for JobRepo {
    async fn enqueue(&self, uow: &UnitOfWork, job: NewJob, at: DateTime<Utc>) -> RepoResult<Option<Uuid>> {
        let at = stamp(at);
        let model = new_model(job, at);
        let id = *model.id.as_ref();
        let due_now = *model.run_at.as_ref() <= at;
        let insert = job::Entity::insert(model).on_conflict(skip_duplicates()).into_query();
        let inserted = uow.conn().execute(&insert).await?.rows_affected() == 1;
        if inserted && due_now {
            self.wake_after_commit(uow);
        }
        Ok(inserted.then_some(id))
    }

    async fn enqueue_many(&self, uow: &UnitOfWork, jobs: Vec<NewJob>, at: DateTime<Utc>) -> RepoResult<u64> {
        let at = stamp(at);
        let mut inserted = 0;
        let mut any_due = false;
        let mut jobs = jobs.into_iter().peekable();
        while jobs.peek().is_some() {
            let models: Vec<job::ActiveModel> = jobs.by_ref().take(ROWS_PER_INSERT).map(|j| new_model(j, at)).collect();
            any_due |= models.iter().any(|m| *m.run_at.as_ref() <= at);
            let insert = job::Entity::insert_many(models).on_conflict(skip_duplicates()).into_query();
            inserted += uow.conn().execute(&insert).await?.rows_affected();
        }
        if inserted > 0 && any_due {
            self.wake_after_commit(uow);
        }
        Ok(inserted)
    }

    async fn claim(
        &self,
        worker: &str,
        kinds: &[String],
        limit: u32,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> RepoResult<Vec<ClaimedJob>> {
        if kinds.is_empty() || limit == 0 {
            return Ok(Vec::new());
        }
        let now = stamp(now);
        // Hand-written for what the query builder cannot say: SQLite's index hint and PostgreSQL's relaxed commit.
        let backend = self.db.backend();
        let mut sql = RawSql::new(backend);
        sql.push("UPDATE jobs SET state = 'running', attempts = attempts + 1, locked_by = ")
            .bind(worker)
            .push(", lease_until = ")
            .bind(stamp(lease_until))
            .push(", started_at = ")
            .bind(now)
            .push(" WHERE id IN (SELECT id FROM jobs");
        if backend == Backend::Sqlite {
            // Without statistics (SQLite gathers none unless told to) the planner prefers `idx_jobs_state_kind`
            // and sorts every waiting job by due time for each claim: 40 ms with 100,000 waiting. The partial
            // index of waiting jobs is already in that order; the hint also makes a query that could not use it
            // an error rather than a slow plan.
            sql.push(" INDEXED BY idx_jobs_waiting");
        }
        // The partial index's predicate with literals, as the index states it: a bound value would hide from the
        // planner (SQLite's, and PostgreSQL's generic plan) that the index covers these rows.
        sql.push(" WHERE state IN ('queued', 'retrying') AND run_at <= ").bind(now).push(" AND kind IN (");
        for (i, kind) in kinds.iter().enumerate() {
            sql.push(if i == 0 { "" } else { ", " }).bind(kind.as_str());
        }
        sql.push(") ORDER BY run_at, id LIMIT ").bind(i64::from(limit));
        match backend {
            // Concurrent workers skip each other's rows instead of waiting; SQLite's single writer makes the one
            // statement atomic by itself.
            Backend::Postgres => sql.push(" FOR UPDATE SKIP LOCKED) AND ").push(WITHOUT_FLUSH),
            Backend::Sqlite => sql.push(")"),
        };
        sql.push(" RETURNING *");
        let claimed = job::Entity::find().from_raw_sql(sql.statement()).all(self.db.connection()).await?;
        let mut jobs: Vec<ClaimedJob> = claimed
            .into_iter()
            .map(|m| ClaimedJob {
                id: m.id,
                kind: m.kind,
                payload: m.payload,
                attempt: count(m.attempts),
                max_attempts: count(m.max_attempts),
                run_at: m.run_at,
                created_at: m.created_at,
                request_id: m.request_id,
            })
            .collect();
        jobs.sort_unstable_by_key(|j| (j.run_at, j.id));
        Ok(jobs)
    }

    async fn extend_leases(&self, worker: &str, ids: &[Uuid], lease_until: DateTime<Utc>) -> RepoResult<u64> {
        let lease_until = stamp(lease_until);
        self.update_ids(ids, Self::held_by(worker), |u| u.col_expr(job::Column::LeaseUntil, Expr::val(lease_until)))
            .await
    }

    async fn complete(&self, worker: &str, ids: &[Uuid], at: DateTime<Utc>) -> RepoResult<u64> {
        let at = stamp(at);
        let held_by = Self::held_by(worker);
        let held = || held_by().add(self.without_flush());
        self.update_ids(ids, held, |u| {
            u.col_expr(job::Column::State, Expr::val(JobState::Succeeded.as_str()))
                .col_expr(job::Column::FinishedAt, Expr::val(at))
                .col_expr(job::Column::LeaseUntil, Expr::val(Option::<DateTime<Utc>>::None))
        })
        .await
    }

    async fn fail(
        &self,
        worker: &str,
        id: Uuid,
        error: &str,
        retry_at: Option<DateTime<Utc>>,
        at: DateTime<Utc>,
    ) -> RepoResult<bool> {
        let at = stamp(at);
        let error = bounded(error);
        let changed = self
            .update_ids(&[id], Self::held_by(worker), |u| {
                let u = u
                    .col_expr(job::Column::LastError, Expr::val(error.clone()))
                    .col_expr(job::Column::LeaseUntil, Expr::val(Option::<DateTime<Utc>>::None));
                match retry_at {
                    Some(retry_at) => u
                        .col_expr(job::Column::State, Expr::val(JobState::Retrying.as_str()))
                        .col_expr(job::Column::RunAt, Expr::val(stamp(retry_at))),
                    None => u
                        .col_expr(job::Column::State, Expr::val(JobState::Dead.as_str()))
                        .col_expr(job::Column::FinishedAt, Expr::val(at)),
                }
            })
            .await?;
        Ok(changed == 1)
    }

    async fn release(&self, worker: &str, ids: &[Uuid]) -> RepoResult<u64> {
        let state = CaseStatement::new()
            .case(job::Column::Attempts.gt(1), Expr::val(JobState::Retrying.as_str()))
            .finally(Expr::val(JobState::Queued.as_str()));
        self.update_ids(ids, Self::held_by(worker), |u| {
            u.col_expr(job::Column::State, state.clone().into())
                .col_expr(job::Column::Attempts, Expr::col(job::Column::Attempts).sub(1))
                .col_expr(job::Column::LeaseUntil, Expr::val(Option::<DateTime<Utc>>::None))
        })
        .await
    }

    async fn rescue_expired(&self, now: DateTime<Utc>) -> RepoResult<u64> {
        let now = stamp(now);
        let spent = || Expr::col(job::Column::Attempts).gte(Expr::col(job::Column::MaxAttempts));
        let state = CaseStatement::new()
            .case(spent(), Expr::val(JobState::Dead.as_str()))
            .finally(Expr::val(JobState::Retrying.as_str()));
        let finished =
            CaseStatement::new().case(spent(), Expr::val(now)).finally(Expr::val(Option::<DateTime<Utc>>::None));
        let rescued = job::Entity::update_many()
            .col_expr(job::Column::State, state.into())
            .col_expr(job::Column::FinishedAt, finished.into())
            .col_expr(job::Column::RunAt, Expr::val(now))
            .col_expr(job::Column::LeaseUntil, Expr::val(Option::<DateTime<Utc>>::None))
            .col_expr(job::Column::LastError, Expr::val("lease expired: its worker stopped or hung"))
            .filter(job::Column::State.eq(JobState::Running.as_str()))
            .filter(job::Column::LeaseUntil.lt(now))
            .exec(self.db.connection())
            .await?;
        Ok(rescued.rows_affected)
    }

    async fn settle_waiting(&self, ids: &[Uuid], at: DateTime<Utc>) -> RepoResult<u64> {
        let at = stamp(at);
        let is_waiting = || sea_orm::Condition::all().add(job::Column::State.is_in(waiting()));
        self.update_ids(ids, is_waiting, |u| {
            u.col_expr(job::Column::State, Expr::val(JobState::Succeeded.as_str()))
                .col_expr(job::Column::FinishedAt, Expr::val(at))
        })
        .await
    }

    async fn find(&self, id: Uuid) -> RepoResult<Option<JobRecord>> {
        job::Entity::find_by_id(id).one(self.db.connection()).await?.map(job_record).transpose()
    }

    async fn list(&self, query: &ListQuery) -> RepoResult<Listing<JobRecord>> {
        let page = JOB_LIST.fetch(self.db.connection(), query, job::Entity::find()).await?;
        page.try_map(job_record)
    }

    async fn retry(&self, uow: &UnitOfWork, id: Uuid, at: DateTime<Utc>) -> RepoResult<JobRecord> {
        let at = stamp(at);
        let update = job::Entity::update_many()
            .col_expr(job::Column::State, Expr::val(JobState::Queued.as_str()))
            .col_expr(job::Column::Attempts, Expr::val(0))
            .col_expr(job::Column::RunAt, Expr::val(at))
            .col_expr(job::Column::FinishedAt, Expr::val(Option::<DateTime<Utc>>::None))
            .col_expr(job::Column::LeaseUntil, Expr::val(Option::<DateTime<Utc>>::None));
        let allowed = [JobState::Dead, JobState::Cancelled, JobState::Queued, JobState::Retrying];
        let record = self.change_one(uow, id, &allowed, update).await?;
        self.wake_after_commit(uow);
        Ok(record)
    }

    async fn cancel(&self, uow: &UnitOfWork, id: Uuid, at: DateTime<Utc>) -> RepoResult<JobRecord> {
        let update = job::Entity::update_many()
            .col_expr(job::Column::State, Expr::val(JobState::Cancelled.as_str()))
            .col_expr(job::Column::FinishedAt, Expr::val(stamp(at)));
        self.change_one(uow, id, &[JobState::Queued, JobState::Retrying], update).await
    }

    async fn counts(&self, now: DateTime<Utc>) -> RepoResult<Vec<JobCountRecord>> {
        let mut sql = RawSql::new(self.db.backend());
        sql.push("SELECT kind, state, COUNT(*), SUM(CASE WHEN run_at <= ")
            .bind(stamp(now))
            .push(
                " THEN 1 ELSE 0 END), MIN(run_at) FROM jobs WHERE state IN ('queued', 'retrying', 'running', 'dead') ",
            )
            .push("GROUP BY kind, state ORDER BY kind, state");
        let rows = self.db.connection().query_all_raw(sql.statement()).await?;
        rows.into_iter()
            .map(|row| {
                let state: String = row.try_get_by_index(1)?;
                let total: i64 = row.try_get_by_index(2)?;
                let due: Option<i64> = row.try_get_by_index(3)?;
                let state = stored_state(&state)?;
                Ok(JobCountRecord {
                    kind: row.try_get_by_index(0)?,
                    state,
                    count: u64::try_from(total).unwrap_or(0),
                    due: if state.is_waiting() { u64::try_from(due.unwrap_or(0)).unwrap_or(0) } else { 0 },
                    oldest_run_at: row.try_get_by_index(4)?,
                })
            })
            .collect()
    }

    async fn purge_finished(&self, before: DateTime<Utc>, limit: u32) -> RepoResult<u64> {
        let old = Query::select()
            .column(job::Column::Id)
            .from(job::Entity)
            .and_where(job::Column::State.is_in([JobState::Succeeded.as_str(), JobState::Cancelled.as_str()]))
            .and_where(job::Column::FinishedAt.lt(stamp(before)))
            .limit(u64::from(limit))
            .to_owned();
        let deleted =
            job::Entity::delete_many().filter(job::Column::Id.in_subquery(old)).exec(self.db.connection()).await?;
        Ok(deleted.rows_affected)
    }

    async fn advance_schedule(
        &self,
        uow: &UnitOfWork,
        name: &str,
        slot: DateTime<Utc>,
        at: DateTime<Utc>,
    ) -> RepoResult<bool> {
        let row = schedule::ActiveModel {
            name: Set(name.to_owned()),
            last_slot: Set(stamp(slot)),
            updated_at: Set(stamp(at)),
        };
        let excluded = Alias::new("excluded");
        let upsert = schedule::Entity::insert(row)
            .on_conflict(
                OnConflict::column(schedule::Column::Name)
                    .update_columns([schedule::Column::LastSlot, schedule::Column::UpdatedAt])
                    .action_and_where(
                        Expr::col((schedule::Entity, schedule::Column::LastSlot))
                            .lt(Expr::col((excluded, schedule::Column::LastSlot))),
                    )
                    .to_owned(),
            )
            .into_query();
        Ok(uow.conn().execute(&upsert).await?.rows_affected() == 1)
    }

    async fn last_slot(&self, name: &str) -> RepoResult<Option<DateTime<Utc>>> {
        let row = schedule::Entity::find_by_id(name.to_owned()).one(self.db.connection()).await?;
        Ok(row.map(|r| r.last_slot))
    }
}
