//! The contract of [`JobStore`] and of the password-reset tokens of [`RefreshTokenStore`].

use std::collections::HashSet;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use serde_json::json;
use uuid::Uuid;

use super::{now, ok};
use crate::query::Listing;
use crate::{
    ClaimedJob, Database, JobRecord, JobState, JobStore, NewJob, NewPasswordReset, NewUserRecord, RefreshTokenStore,
    RepoError, RepoResult, UserRepo, UserStore, job_list_spec,
};

const KIND: &str = "test.echo";

fn kinds() -> Vec<String> {
    vec![KIND.to_owned()]
}

fn job(n: u64) -> NewJob {
    NewJob::new(KIND, json!({ "n": n }), 3)
}

async fn enqueue<J: JobStore>(db: &Database, jobs: &J, new: NewJob) -> Option<Uuid> {
    ok(db.write(async |uow| jobs.enqueue(uow, new, now()).await).await, "enqueue")
}

async fn claim<J: JobStore>(jobs: &J, worker: &str, limit: u32, at: DateTime<Utc>) -> Vec<ClaimedJob> {
    ok(jobs.claim(worker, &kinds(), limit, at, at + Duration::seconds(30)).await, "claim")
}

async fn stored<J: JobStore>(jobs: &J, id: Uuid) -> JobRecord {
    ok(jobs.find(id).await, "find").unwrap_or_else(|| panic!("job {id} is not stored"))
}

fn items(listing: Listing<JobRecord>) -> Vec<JobRecord> {
    match listing {
        Listing::Offset(page) => page.items,
        Listing::Keyset(page) => page.items,
    }
}

/// A job enqueued in a unit that rolls back never exists; one enqueued in a committed unit does, queued with
/// its payload; a second job of the same kind and dedupe key is skipped, one of another kind is not.
pub async fn jobs_exist_if_and_only_if_their_unit_committed<J: JobStore>(db: &Database, jobs: &J) {
    let rolled_back: RepoResult<()> = db
        .write(async |uow| {
            ok(jobs.enqueue(uow, job(1), now()).await, "enqueue");
            Err(RepoError::NotFound)
        })
        .await;
    assert!(rolled_back.is_err());
    assert!(claim(jobs, "w", 10, now()).await.is_empty(), "a rolled-back job is never claimed");

    let id = enqueue(db, jobs, job(2)).await.unwrap_or_else(|| panic!("a new job has an id"));
    let record = stored(jobs, id).await;
    assert_eq!((record.state, record.attempts, record.max_attempts), (JobState::Queued, 0, 3));
    assert_eq!(serde_json::from_str::<serde_json::Value>(&record.payload).ok(), Some(json!({ "n": 2 })));

    assert!(enqueue(db, jobs, job(3).dedupe("order-1")).await.is_some());
    assert_eq!(enqueue(db, jobs, job(4).dedupe("order-1")).await, None, "the same dedupe key is skipped");
    let other_kind = NewJob::new("test.other", json!({}), 1).dedupe("order-1");
    assert!(enqueue(db, jobs, other_kind).await.is_some(), "dedupe keys are per kind");
    let many = vec![job(5).dedupe("order-1"), job(6).dedupe("order-2"), job(7)];
    let enqueued = ok(db.write(async |uow| jobs.enqueue_many(uow, many, now()).await).await, "enqueue many");
    assert_eq!(enqueued, 2, "a batch skips the duplicate and keeps the rest");
}

/// The request a job was enqueued for goes with it: stored, and handed to the worker that claims it, through
/// a single enqueue and a batch alike; a job enqueued for no request has none, and is not given one.
pub async fn a_jobs_request_id_goes_from_enqueue_to_claim<J: JobStore>(db: &Database, jobs: &J) {
    let traced = enqueue(db, jobs, job(1).for_request(Some("abc-123".into()))).await;
    let untraced = enqueue(db, jobs, job(2)).await;
    let (traced, untraced) = (traced.unwrap_or_default(), untraced.unwrap_or_default());
    assert_eq!(stored(jobs, traced).await.request_id.as_deref(), Some("abc-123"));
    assert_eq!(stored(jobs, untraced).await.request_id, None);
    let batch = vec![job(3).for_request(Some("batch-7".into())), job(4)];
    assert_eq!(ok(db.write(async |uow| jobs.enqueue_many(uow, batch, now()).await).await, "enqueue many"), 2);

    let claimed = claim(jobs, "w", 10, now()).await;
    let request_of = |n: u64| {
        let is_n =
            |j: &&ClaimedJob| serde_json::from_str::<serde_json::Value>(&j.payload).ok() == Some(json!({ "n": n }));
        let found = claimed.iter().find(is_n);
        found.unwrap_or_else(|| panic!("job {n} claimed, got {claimed:?}")).request_id.clone()
    };
    assert_eq!(claimed.len(), 4);
    assert_eq!(request_of(1).as_deref(), Some("abc-123"));
    assert_eq!(request_of(2), None);
    assert_eq!(request_of(3).as_deref(), Some("batch-7"));
    assert_eq!(request_of(4), None);
}

/// A claim takes only due jobs of the named kinds, oldest due first, up to its limit, and counts an attempt;
/// the next claim takes the rest; a job due later waits until then.
pub async fn claims_take_due_jobs_oldest_first<J: JobStore>(db: &Database, jobs: &J) {
    let start = now();
    let mut ids = Vec::new();
    for n in 0..5 {
        let due = NewJob { run_at: Some(start - Duration::seconds(10 - i64::try_from(n).unwrap_or(0))), ..job(n) };
        ids.push(enqueue(db, jobs, due).await.unwrap_or_else(|| panic!("enqueued")));
    }
    let later = enqueue(db, jobs, job(9).at(start + Duration::hours(1))).await;
    enqueue(db, jobs, NewJob::new("test.unknown", json!({}), 1)).await;

    let first = claim(jobs, "w1", 3, now()).await;
    assert_eq!(first.iter().map(|j| j.id).collect::<Vec<_>>(), ids[..3], "oldest due first, up to the limit");
    assert!(first.iter().all(|j| j.attempt == 1 && j.kind == KIND));
    let second = claim(jobs, "w2", 10, now()).await;
    assert_eq!(second.iter().map(|j| j.id).collect::<Vec<_>>(), ids[3..], "the rest, not the job due later");
    assert!(claim(jobs, "w3", 10, now()).await.is_empty(), "jobs of unknown kinds are left alone");
    let record = stored(jobs, ids[0]).await;
    assert_eq!((record.state, record.locked_by.as_deref()), (JobState::Running, Some("w1")));

    let at_due = claim(jobs, "w3", 10, start + Duration::hours(1)).await;
    assert_eq!(at_due.iter().map(|j| Some(j.id)).collect::<Vec<_>>(), vec![later], "claimed once due");
}

/// Only the worker holding a job completes, fails, releases it or extends its lease; a failure with a retry
/// time waits until then keeping its error, a failure without one is dead; a released job waits again without
/// its attempt counted.
pub async fn only_the_holder_changes_a_running_job<J: JobStore>(db: &Database, jobs: &J) {
    for n in 0..4 {
        enqueue(db, jobs, job(n)).await;
    }
    let held = claim(jobs, "holder", 4, now()).await;
    let [a, b, c, d] = held.as_slice() else { panic!("four jobs claimed, got {held:?}") };
    let later = now() + Duration::minutes(5);

    assert_eq!(ok(jobs.complete("thief", &[a.id], now()).await, "complete"), 0, "another worker cannot complete");
    assert!(!ok(jobs.fail("thief", a.id, "no", None, now()).await, "fail"));
    assert_eq!(ok(jobs.extend_leases("thief", &[a.id], later).await, "extend"), 0);
    assert_eq!(ok(jobs.release("thief", &[a.id]).await, "release"), 0);
    assert_eq!(stored(jobs, a.id).await.state, JobState::Running);

    assert_eq!(ok(jobs.extend_leases("holder", &[a.id, b.id], later).await, "extend"), 2);
    assert_eq!(stored(jobs, a.id).await.lease_until, Some(later));
    assert_eq!(ok(jobs.complete("holder", &[a.id], now()).await, "complete"), 1);
    let done = stored(jobs, a.id).await;
    assert!(done.state == JobState::Succeeded && done.finished_at.is_some() && done.lease_until.is_none());
    assert_eq!(ok(jobs.complete("holder", &[a.id], now()).await, "complete"), 0, "completed once");

    assert!(ok(jobs.fail("holder", b.id, "smtp 451", Some(later), now()).await, "fail"));
    let retrying = stored(jobs, b.id).await;
    assert_eq!((retrying.state, retrying.run_at), (JobState::Retrying, later));
    assert_eq!(retrying.last_error.as_deref(), Some("smtp 451"));
    assert!(claim(jobs, "holder", 10, now()).await.is_empty(), "a retry waits for its time");
    let again = claim(jobs, "holder", 10, later).await;
    assert_eq!((again.len(), again[0].attempt), (1, 2), "the retry counts its attempt");

    assert!(ok(jobs.fail("holder", c.id, "550 no such user", None, now()).await, "fail"));
    let dead = stored(jobs, c.id).await;
    assert_eq!((dead.state, dead.last_error.as_deref()), (JobState::Dead, Some("550 no such user")));

    assert_eq!(ok(jobs.release("holder", &[d.id]).await, "release"), 1);
    let released = stored(jobs, d.id).await;
    assert_eq!((released.state, released.attempts, released.lease_until), (JobState::Queued, 0, None));
    assert_eq!(claim(jobs, "other", 10, now()).await.len(), 1, "a released job is claimed again");
}

/// A job whose lease expired is rescued: claimable again with its attempt counted, or dead when its attempts
/// are spent; a job whose lease has not expired is left alone.
pub async fn expired_leases_are_rescued<J: JobStore>(db: &Database, jobs: &J) {
    let retried = enqueue(db, jobs, job(1)).await;
    let last = enqueue(db, jobs, NewJob::new(KIND, json!({}), 1)).await;
    let start = now();
    let lost = ok(jobs.claim("lost", &kinds(), 10, start, start + Duration::seconds(1)).await, "claim");
    assert_eq!(lost.len(), 2);
    assert_eq!(ok(jobs.rescue_expired(start).await, "rescue"), 0, "leases not expired yet");
    assert_eq!(ok(jobs.rescue_expired(start + Duration::seconds(2)).await, "rescue"), 2);
    let retried = stored(jobs, retried.unwrap_or_default()).await;
    assert_eq!((retried.state, retried.attempts), (JobState::Retrying, 1));
    assert!(retried.last_error.is_some_and(|e| e.contains("lease")));
    assert_eq!(stored(jobs, last.unwrap_or_default()).await.state, JobState::Dead, "no attempt left");
    assert!(!ok(jobs.fail("lost", retried.id, "late", None, now()).await, "fail"), "the lost worker is fenced off");
    let again = claim(jobs, "new", 10, start + Duration::seconds(2)).await;
    assert_eq!((again.len(), again[0].attempt), (1, 2));
}

/// Workers claiming at the same time never get the same job, and together they get every job.
pub async fn concurrent_claims_never_share_a_job<J: JobStore + 'static>(db: &Database, jobs: Arc<J>) {
    let batch: Vec<NewJob> = (0..400).map(job).collect();
    ok(db.write(async |uow| jobs.enqueue_many(uow, batch, now()).await).await, "enqueue");
    let workers = (0..4).map(|w| {
        let jobs = jobs.clone();
        tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let got = claim(jobs.as_ref(), &format!("w{w}"), 7, now()).await;
                if got.is_empty() {
                    break mine;
                }
                mine.extend(got.into_iter().map(|j| j.id));
            }
        })
    });
    let mut seen = HashSet::new();
    for worker in workers {
        for id in ok(worker.await, "worker") {
            assert!(seen.insert(id), "job {id} was claimed twice");
        }
    }
    assert_eq!(seen.len(), 400, "every job was claimed");
}

/// An admin retries a dead job (attempts reset, due at once) and cancels a waiting one; a running job can be
/// neither retried nor cancelled, a succeeded one not retried, an unknown one is not found. The list filters
/// by state and kind, and the counts report unfinished and dead jobs per kind and state.
pub async fn admins_retry_and_cancel_and_see_counts<J: JobStore>(db: &Database, jobs: &J) {
    let dead = enqueue(db, jobs, NewJob::new(KIND, json!({}), 1)).await.unwrap_or_default();
    let running = enqueue(db, jobs, job(2)).await.unwrap_or_default();
    let claimed = claim(jobs, "w", 2, now()).await;
    assert_eq!(claimed.len(), 2);
    ok(jobs.fail("w", dead, "boom", None, now()).await, "fail");
    let waiting = enqueue(db, jobs, job(3)).await.unwrap_or_default();
    enqueue(db, jobs, NewJob::new("test.other", json!({}), 1).at(now() + Duration::hours(1))).await;

    let counts = ok(jobs.counts(now()).await, "counts");
    let count =
        |kind: &str, state| counts.iter().find(|c| c.kind == kind && c.state == state).map(|c| (c.count, c.due));
    assert_eq!(count(KIND, JobState::Dead), Some((1, 0)));
    assert_eq!(count(KIND, JobState::Running), Some((1, 0)));
    assert_eq!(count(KIND, JobState::Queued), Some((1, 1)));
    assert_eq!(count("test.other", JobState::Queued), Some((1, 0)), "queued but not due");

    let retry = async |id| db.write(async |uow| jobs.retry(uow, id, now()).await).await;
    let cancel = async |id| db.write(async |uow| jobs.cancel(uow, id, now()).await).await;
    let retried = ok(retry(dead).await, "retry the dead job");
    assert_eq!((retried.state, retried.attempts), (JobState::Queued, 0));
    assert!(matches!(retry(running).await, Err(RepoError::Conflict { .. })), "a running job is not retried");
    assert!(matches!(cancel(running).await, Err(RepoError::Conflict { .. })), "a running job is not cancelled");
    assert!(matches!(cancel(Uuid::now_v7()).await, Err(RepoError::NotFound)));
    let cancelled = ok(cancel(waiting).await, "cancel");
    assert!(cancelled.state == JobState::Cancelled && cancelled.finished_at.is_some());
    assert!(matches!(cancel(waiting).await, Err(RepoError::Conflict { .. })), "cancelled once");
    ok(jobs.complete("w", &[running], now()).await, "complete");
    assert!(matches!(retry(running).await, Err(RepoError::Conflict { .. })), "a succeeded job is not retried");

    let list = async |pairs: &[(&str, &str)]| {
        let params: Vec<(String, String)> = pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        items(ok(jobs.list(&ok(job_list_spec().parse(&params), "query")).await, "list"))
    };
    assert_eq!(list(&[]).await.len(), 4);
    let cancelled_only = list(&[("state", "cancelled")]).await;
    assert_eq!(cancelled_only.iter().map(|j| j.id).collect::<Vec<_>>(), vec![waiting]);
    assert_eq!(list(&[("kind", "test.other")]).await.len(), 1);
    assert_eq!(list(&[("kind", KIND), ("state", "queued")]).await.len(), 1, "the retried job");

    let purged = ok(jobs.purge_finished(now() + Duration::seconds(1), 100).await, "purge");
    assert_eq!(purged, 2, "the succeeded and the cancelled job");
    assert!(ok(jobs.find(waiting).await, "find").is_none());
}

/// A schedule's slot advances once: of many instances advancing it to the same slot at the same time exactly
/// one succeeds; an earlier or equal slot never moves it back.
pub async fn schedule_slots_advance_once<J: JobStore + 'static>(db: &Database, jobs: Arc<J>) {
    assert_eq!(ok(jobs.last_slot("nightly").await, "last slot"), None);
    let slot = now();
    let tries = (0..6).map(|_| {
        let (db, jobs) = (db.clone(), jobs.clone());
        tokio::spawn(
            async move { db.write(async |uow| jobs.advance_schedule(uow, "nightly", slot, now()).await).await },
        )
    });
    let mut moved = 0;
    for attempt in tries {
        if ok(ok(attempt.await, "task"), "advance") {
            moved += 1;
        }
    }
    assert_eq!(moved, 1, "exactly one instance takes the slot");
    assert_eq!(ok(jobs.last_slot("nightly").await, "last slot"), Some(slot));
    let earlier = db.write(async |uow| jobs.advance_schedule(uow, "nightly", slot - Duration::hours(1), now()).await);
    assert!(!ok(earlier.await, "advance"), "a schedule never moves back");
    let next = db.write(async |uow| jobs.advance_schedule(uow, "nightly", slot + Duration::hours(1), now()).await);
    assert!(ok(next.await, "advance"));
}

/// A password-reset token is spent once, only before it expires, and spending it spends the user's other open
/// tokens; storing the same token id twice stores it once; expired tokens are purged.
pub async fn reset_tokens_are_spent_once_before_they_expire<T: RefreshTokenStore>(db: &Database, tokens: &T) {
    let users = UserRepo::new(db.clone());
    let new_user = NewUserRecord {
        email: ok(rental_domain::Email::parse("reset@example.com"), "e-mail"),
        full_name: ok(rental_domain::FullName::parse("Reset Me"), "name"),
        password_hash: None,
        is_active: true,
        is_superuser: false,
        roles: Vec::new(),
    };
    let user = ok(db.write(async |uow| users.create(uow, new_user, now()).await).await, "user");
    let created = now();
    let reset = |digest: char, id: Uuid, expires_at: DateTime<Utc>| NewPasswordReset {
        id,
        user_id: user.id,
        token_digest: digest.to_string().repeat(64),
        created_at: created,
        expires_at,
    };
    let insert =
        async |new: NewPasswordReset| ok(db.write(async |uow| tokens.insert_reset(uow, new).await).await, "insert");
    let spend = async |digest: char, at| {
        ok(db.write(async |uow| tokens.spend_reset(uow, &digest.to_string().repeat(64), at).await).await, "spend")
    };
    let hour = created + Duration::hours(1);
    let first = Uuid::now_v7();
    assert!(insert(reset('a', first, hour)).await);
    assert!(!insert(reset('a', first, hour)).await, "the same token id is stored once");
    assert!(insert(reset('b', Uuid::now_v7(), hour)).await);
    assert!(insert(reset('c', Uuid::now_v7(), created + Duration::minutes(1))).await);

    assert_eq!(spend('c', created + Duration::minutes(2)).await, None, "expired");
    assert_eq!(spend('a', now()).await, Some(user.id));
    assert_eq!(spend('a', now()).await, None, "spent once");
    assert_eq!(spend('b', now()).await, None, "one reset spends the user's other tokens");
    let purged = ok(db.write(async |uow| tokens.delete_expired(uow, hour + Duration::seconds(1)).await).await, "purge");
    assert_eq!(purged, 3);
}
