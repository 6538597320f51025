//! The sea-orm [`JobStore`]: every worker call is one statement on the pool.

use chrono::{DateTime, SubsecRound, Utc};
use sea_orm::sea_query::{
    Alias, CaseStatement, Expr, ExprTrait, LockBehavior, LockType, OnConflict, Order, Query, SelectStatement,
};
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
        let due: SelectStatement = Query::select()
            .column(job::Column::Id)
            .from(job::Entity)
            .and_where(job::Column::State.is_in(waiting()))
            .and_where(job::Column::RunAt.lte(now))
            .and_where(job::Column::Kind.is_in(kinds.iter().map(String::as_str)))
            .order_by(job::Column::RunAt, Order::Asc)
            .order_by(job::Column::Id, Order::Asc)
            .limit(u64::from(limit))
            // PostgreSQL only: sea-query leaves lock clauses out on SQLite, where the single UPDATE is atomic.
            .lock_with_behavior(LockType::Update, LockBehavior::SkipLocked)
            .to_owned();
        let claimed = job::Entity::update_many()
            .col_expr(job::Column::State, Expr::val(JobState::Running.as_str()))
            .col_expr(job::Column::Attempts, Expr::col(job::Column::Attempts).add(1))
            .col_expr(job::Column::LockedBy, Expr::val(worker))
            .col_expr(job::Column::LeaseUntil, Expr::val(stamp(lease_until)))
            .col_expr(job::Column::StartedAt, Expr::val(now))
            .filter(job::Column::Id.in_subquery(due))
            .exec_with_returning(self.db.connection())
            .await?;
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
        self.update_ids(ids, Self::held_by(worker), |u| {
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
