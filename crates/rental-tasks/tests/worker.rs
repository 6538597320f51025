//! The worker and the scheduler on a real database (SQLite, or PostgreSQL from TEST_DATABASE_URL): jobs run
//! once, failures retry with backoff and die keeping their error, timeouts count as failures, unknown kinds
//! are left alone, leases of dead workers are rescued, shutdown gives back what it could not finish, two
//! workers never run one job at once, and each slot of a schedule is enqueued once across schedulers.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{TimeZone, Utc};
use rental_repo::{Database, DatabaseConfig, JobRepo, JobState, JobStore, NewJob};
use rental_service::ManualClock;
use rental_tasks::{
    JobContext, JobError, Missed, Registry, RetryPolicy, ScheduleConfig, Scheduler, SchedulerConfig, Worker,
    WorkerConfig,
};
use rental_testkit::TestDb;
use serde_json::json;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

async fn connect(test_db: &TestDb) -> Database {
    let config = DatabaseConfig {
        max_connections: Some(10),
        min_connections: Some(0),
        ..DatabaseConfig::with_url(test_db.url())
    };
    Database::connect(&config).await.unwrap()
}

fn fast() -> WorkerConfig {
    WorkerConfig {
        concurrency: 8,
        claim_batch: 16,
        poll_interval_ms: 50,
        lease_secs: 2,
        job_timeout_secs: 5,
        shutdown_grace_secs: 2,
        rescue_interval_secs: 1,
        retry: RetryPolicy { base_ms: 10, cap_ms: 40 },
        ..WorkerConfig::default()
    }
}

async fn enqueue(db: &Database, queue: &JobRepo, job: NewJob) -> Uuid {
    db.write(async |uow| queue.enqueue(uow, job, Utc::now()).await).await.unwrap().unwrap()
}

/// Polls `queue` until job `id` is in `state`, for at most 20 s.
async fn wait_for(queue: &JobRepo, id: Uuid, state: JobState) -> rental_repo::JobRecord {
    for _ in 0..400 {
        let job = queue.find(id).await.unwrap().unwrap();
        if job.state == state {
            return job;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("job {id} never reached {state}: {:?}", queue.find(id).await.unwrap());
}

fn spawn(worker: Worker) -> (CancellationToken, tokio::task::JoinHandle<()>) {
    let stop = CancellationToken::new();
    let task = tokio::spawn(worker.run(stop.clone()));
    (stop, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn jobs_run_once_and_failures_retry_then_die_keeping_their_error() {
    let test_db = TestDb::new().await;
    let db = connect(&test_db).await;
    let queue = JobRepo::new(db.clone());
    let runs: Arc<Mutex<HashMap<u64, u32>>> = Arc::default();
    let seen = runs.clone();
    let registry = Registry::new().register("test.flaky", move |job: JobContext| {
        let seen = seen.clone();
        async move {
            let n: u64 = job.args::<serde_json::Value>()?["n"].as_u64().unwrap();
            *seen.lock().unwrap().entry(n).or_default() += 1;
            match n {
                // Fails twice, then succeeds.
                1 if job.attempt < 3 => Err(JobError::retry("not yet")),
                // Always fails: dies after its three attempts.
                2 => Err(JobError::retry(format!("still broken (attempt {})", job.attempt))),
                // Refused for good: dies at once.
                3 => Err(JobError::permanent("550 no such user")),
                4 => panic!("a handler bug"),
                _ => Ok(()),
            }
        }
    });
    let ids: Vec<Uuid> = {
        let mut ids = Vec::new();
        for n in 0..=4u64 {
            ids.push(enqueue(&db, &queue, NewJob::new("test.flaky", json!({ "n": n }), 3)).await);
        }
        ids
    };
    let worker = Worker::on(&queue, registry, fast());
    let stats = worker.stats();
    let (stop, task) = spawn(worker);

    assert_eq!(wait_for(&queue, ids[0], JobState::Succeeded).await.attempts, 1);
    assert_eq!(wait_for(&queue, ids[1], JobState::Succeeded).await.attempts, 3, "two retries, then success");
    let dead = wait_for(&queue, ids[2], JobState::Dead).await;
    assert_eq!((dead.attempts, dead.last_error.as_deref()), (3, Some("still broken (attempt 3)")));
    let refused = wait_for(&queue, ids[3], JobState::Dead).await;
    assert_eq!((refused.attempts, refused.last_error.as_deref()), (1, Some("550 no such user")));
    let panicked = wait_for(&queue, ids[4], JobState::Dead).await;
    assert_eq!(panicked.attempts, 3, "a panic is a failed run, and the worker survives it");
    stop.cancel();
    task.await.unwrap();

    let runs = runs.lock().unwrap().clone();
    assert_eq!(runs, HashMap::from([(0, 1), (1, 3), (2, 3), (3, 1), (4, 3)]));
    let snapshot = stats.snapshot();
    assert_eq!((snapshot.succeeded, snapshot.dead), (2, 3));
    assert_eq!(snapshot.claimed, 11);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_run_past_its_timeout_fails_and_unknown_kinds_are_left_alone() {
    let test_db = TestDb::new().await;
    let db = connect(&test_db).await;
    let queue = JobRepo::new(db.clone());
    let registry = Registry::new().register_with(
        "test.slow",
        |job: JobContext| async move {
            if job.attempt == 1 {
                tokio::time::sleep(Duration::from_secs(30)).await;
            }
            Ok(())
        },
        Some(Duration::from_millis(200)),
        None,
    );
    let slow = enqueue(&db, &queue, NewJob::new("test.slow", json!({}), 3)).await;
    let unknown = enqueue(&db, &queue, NewJob::new("test.from_a_newer_version", json!({}), 3)).await;
    let worker = Worker::on(&queue, registry, fast());
    let stats = worker.stats();
    let (stop, task) = spawn(worker);
    let done = wait_for(&queue, slow, JobState::Succeeded).await;
    assert_eq!(done.attempts, 2, "the first run timed out");
    assert!(done.last_error.unwrap().contains("timed out"));
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    stop.cancel();
    task.await.unwrap();
    let left = queue.find(unknown).await.unwrap().unwrap();
    assert_eq!((left.state, left.attempts), (JobState::Queued, 0), "never claimed");
    assert_eq!(stats.snapshot().unknown_kinds, vec!["test.from_a_newer_version".to_owned()], "reported");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dead_workers_jobs_are_rescued_and_shutdown_gives_back_unfinished_ones() {
    let test_db = TestDb::new().await;
    let db = connect(&test_db).await;
    let queue = JobRepo::new(db.clone());
    // A worker that died: it claimed with a one-second lease and will never renew it.
    let orphan = enqueue(&db, &queue, NewJob::new("test.echo", json!({}), 5)).await;
    let now = Utc::now();
    let claimed = queue.claim("dead-worker", &["test.echo".into()], 1, now, now + chrono::Duration::seconds(1)).await;
    assert_eq!(claimed.unwrap().len(), 1);

    let registry = Registry::new().register("test.echo", |_job: JobContext| async { Ok(()) }).register(
        "test.stuck",
        |_job: JobContext| async {
            tokio::time::sleep(Duration::from_secs(60)).await;
            Ok(())
        },
    );
    let (stop, task) = spawn(Worker::on(&queue, registry, fast()));
    let rescued = wait_for(&queue, orphan, JobState::Succeeded).await;
    assert_eq!(rescued.attempts, 2, "claimed again after the dead worker's lease expired");

    let stuck = enqueue(&db, &queue, NewJob::new("test.stuck", json!({}), 5)).await;
    wait_for(&queue, stuck, JobState::Running).await;
    stop.cancel();
    task.await.unwrap();
    let given_back = queue.find(stuck).await.unwrap().unwrap();
    assert_eq!((given_back.state, given_back.attempts), (JobState::Queued, 0), "released, its attempt not counted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_workers_never_run_one_job_at_the_same_time() {
    let test_db = TestDb::new().await;
    let db = connect(&test_db).await;
    let queue = JobRepo::new(db.clone());
    let jobs: Vec<NewJob> = (0..300).map(|n| NewJob::new("test.count", json!({ "n": n }), 3)).collect();
    db.write(async |uow| queue.enqueue_many(uow, jobs, Utc::now()).await).await.unwrap();

    let active: Arc<Mutex<HashMap<Uuid, u32>>> = Arc::default();
    let overlaps = Arc::new(AtomicUsize::new(0));
    let runs = Arc::new(AtomicU32::new(0));
    let registry = || {
        let (active, overlaps, runs) = (active.clone(), overlaps.clone(), runs.clone());
        Registry::new().register("test.count", move |job: JobContext| {
            let (active, overlaps, runs) = (active.clone(), overlaps.clone(), runs.clone());
            async move {
                let concurrent = {
                    let mut active = active.lock().unwrap();
                    let n = active.entry(job.id).or_default();
                    *n += 1;
                    *n
                };
                if concurrent > 1 {
                    overlaps.fetch_add(1, Ordering::SeqCst);
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
                *active.lock().unwrap().get_mut(&job.id).unwrap() -= 1;
                runs.fetch_add(1, Ordering::SeqCst);
                Ok(())
            }
        })
    };
    let first = Worker::on(&queue, registry(), fast());
    let second = Worker::new(Arc::new(JobRepo::new(db.clone())), Arc::default(), registry(), fast());
    let (stop_a, a) = spawn(first);
    let (stop_b, b) = spawn(second);
    for _ in 0..400 {
        if runs.load(Ordering::SeqCst) >= 300 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop_a.cancel();
    stop_b.cancel();
    a.await.unwrap();
    b.await.unwrap();
    assert_eq!(runs.load(Ordering::SeqCst), 300, "every job ran once");
    assert_eq!(overlaps.load(Ordering::SeqCst), 0);
    let counts = queue.counts(Utc::now()).await.unwrap();
    assert!(counts.iter().all(|c| c.count == 0 || c.state == JobState::Succeeded), "{counts:?}");
}

fn schedules(missed: Missed) -> SchedulerConfig {
    let every_hour = ScheduleConfig { cron: "0 * * * *".into(), kind: "test.tick".into(), missed, enabled: true };
    SchedulerConfig { schedules: [("hourly".to_owned(), every_hour)].into(), ..SchedulerConfig::default() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn each_slot_is_enqueued_once_across_schedulers_and_missed_slots_follow_the_policy() {
    let test_db = TestDb::new().await;
    let db = connect(&test_db).await;
    let queue = Arc::new(JobRepo::new(db.clone()));
    let clock = ManualClock::new(Utc.with_ymd_and_hms(2026, 11, 28, 9, 30, 0).unwrap());
    let kinds = vec!["test.tick".to_owned()];
    let scheduler = |missed| {
        Scheduler::new(db.clone(), queue.clone(), schedules(missed), &kinds, 3)
            .unwrap()
            .with_clock(Arc::new(clock.clone()))
    };
    let instances: Vec<_> = (0..4).map(|_| Arc::new(scheduler(Missed::RunOnce))).collect();
    let tick_all = async || {
        let ticks = instances.iter().map(|s| {
            let s = s.clone();
            tokio::spawn(async move { s.tick().await.unwrap().len() })
        });
        let mut enqueued = 0;
        for t in ticks {
            enqueued += t.await.unwrap();
        }
        enqueued
    };
    assert_eq!(tick_all().await, 0, "first sight records the slot without running it");
    clock.set(Utc.with_ymd_and_hms(2026, 11, 28, 10, 0, 1).unwrap());
    assert_eq!(tick_all().await, 1, "four instances, one enqueue");
    assert_eq!(tick_all().await, 0, "the slot is taken");
    // Down from 10:00 to 13:20: three slots missed (11, 12, 13); run_once runs the latest once.
    clock.set(Utc.with_ymd_and_hms(2026, 11, 28, 13, 20, 0).unwrap());
    assert_eq!(tick_all().await, 1);
    let jobs = queue.counts(Utc::now()).await.unwrap();
    assert_eq!(jobs.iter().map(|c| c.count).sum::<u64>(), 2);

    // skip: a slot found late is recorded but not run; an on-time one runs.
    let skipping = scheduler(Missed::Skip);
    clock.set(Utc.with_ymd_and_hms(2026, 11, 28, 15, 30, 0).unwrap());
    assert!(skipping.tick().await.unwrap().is_empty(), "15:00 found at 15:30 is skipped");
    clock.set(Utc.with_ymd_and_hms(2026, 11, 28, 16, 0, 30).unwrap());
    assert_eq!(skipping.tick().await.unwrap(), vec!["hourly".to_owned()], "16:00 found on time runs");
}

#[tokio::test]
async fn bad_schedules_fail_at_start_naming_the_key() {
    let test_db = TestDb::new().await;
    let db = connect(&test_db).await;
    let queue = Arc::new(JobRepo::new(db.clone()));
    let kinds = vec!["test.tick".to_owned()];
    let mut config = schedules(Missed::RunOnce);
    config.schedules.get_mut("hourly").unwrap().cron = "61 * * * *".into();
    let err = Scheduler::new(db.clone(), queue.clone(), config, &kinds, 3).unwrap_err();
    assert_eq!(err.key, "scheduler.schedules.hourly.cron");
    let mut config = schedules(Missed::RunOnce);
    config.schedules.get_mut("hourly").unwrap().kind = "test.typo".into();
    let err = Scheduler::new(db, queue, config, &kinds, 3).unwrap_err();
    assert_eq!(err.key, "scheduler.schedules.hourly.kind");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_heartbeat_keeps_a_long_job_from_being_taken_by_another_worker() {
    let test_db = TestDb::new().await;
    let db = connect(&test_db).await;
    let queue = JobRepo::new(db.clone());
    let runs = Arc::new(AtomicU32::new(0));
    let registry = || {
        let runs = runs.clone();
        Registry::new().register("test.long", move |_job: JobContext| {
            let runs = runs.clone();
            async move {
                runs.fetch_add(1, Ordering::SeqCst);
                // Three leases long: only the heartbeat keeps it held.
                tokio::time::sleep(Duration::from_millis(3_500)).await;
                Ok(())
            }
        })
    };
    let config = WorkerConfig { lease_secs: 1, rescue_interval_secs: 1, job_timeout_secs: 10, ..fast() };
    let id = enqueue(&db, &queue, NewJob::new("test.long", json!({}), 3)).await;
    let (stop_a, a) = spawn(Worker::on(&queue, registry(), config.clone()));
    wait_for(&queue, id, JobState::Running).await;
    let (stop_b, b) = spawn(Worker::new(Arc::new(JobRepo::new(db.clone())), Arc::default(), registry(), config));
    let done = wait_for(&queue, id, JobState::Succeeded).await;
    stop_a.cancel();
    stop_b.cancel();
    a.await.unwrap();
    b.await.unwrap();
    assert_eq!((runs.load(Ordering::SeqCst), done.attempts), (1, 1), "never rescued while its worker lived");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_job_enqueued_by_another_instance_wakes_an_idle_worker_through_postgres() {
    let test_db = TestDb::new().await;
    if !test_db.is_postgres() {
        println!("LISTEN/NOTIFY is PostgreSQL's; on SQLite every writer is in one process and wakes it directly");
        return;
    }
    let db = connect(&test_db).await;
    let worker_queue = JobRepo::new(db.clone());
    let registry = Registry::new().register("test.echo", |_job: JobContext| async { Ok(()) });
    // Polling alone would take an hour: only the notification can start the job while the test waits.
    let config = WorkerConfig { poll_interval_ms: 3_600_000, ..fast() };
    let (stop, task) = spawn(Worker::on(&worker_queue, registry, config));
    let relay_queue = worker_queue.clone();
    let relay_stop = stop.clone();
    let relay = tokio::spawn(async move { relay_queue.relay_notifications(relay_stop.cancelled_owned()).await });
    tokio::time::sleep(Duration::from_millis(500)).await;

    let other_instance = JobRepo::new(connect(&test_db).await);
    let id = enqueue(&db, &other_instance, NewJob::new("test.echo", json!({}), 3)).await;
    wait_for(&worker_queue, id, JobState::Succeeded).await;
    stop.cancel();
    task.await.unwrap();
    relay.await.unwrap();
}

/// Log lines written by the subscriber of a test, in memory.
#[derive(Clone, Default)]
struct LogLines(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogLines {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The lines of this test binary's global subscriber, installed on first use. Global, not a thread's default:
/// tracing caches whether a callsite is wanted when a thread first reaches it, and with one scoped subscriber
/// it asks only that thread's, so a span first reached by another test's worker thread would stay off.
fn captured_lines() -> LogLines {
    static LINES: std::sync::OnceLock<LogLines> = std::sync::OnceLock::new();
    LINES
        .get_or_init(|| {
            let lines = LogLines::default();
            let writer = lines.clone();
            let subscriber = tracing_subscriber::fmt()
                .with_writer(move || writer.clone())
                .with_ansi(false)
                .with_max_level(tracing::Level::INFO)
                .finish();
            tracing::subscriber::set_global_default(subscriber).unwrap();
            lines
        })
        .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_run_logs_under_its_jobs_request_id_and_runs_inside_its_scope() {
    let lines = captured_lines();

    let test_db = TestDb::new().await;
    let db = connect(&test_db).await;
    let queue = JobRepo::new(db.clone());
    let scopes: Arc<Mutex<HashMap<Uuid, Option<String>>>> = Arc::default();
    let seen = scopes.clone();
    let registry = Registry::new().register("test.traced", move |job: JobContext| {
        let seen = seen.clone();
        async move {
            tracing::info!(marker = %job.id, "handling");
            assert_eq!(rental_service::context::current(), job.request_id, "the run is inside its request's scope");
            seen.lock().unwrap().insert(job.id, rental_service::context::current());
            Ok(())
        }
    });
    let traced =
        enqueue(&db, &queue, NewJob::new("test.traced", json!({}), 3).for_request(Some("abc-123".into()))).await;
    let untraced = enqueue(&db, &queue, NewJob::new("test.traced", json!({}), 3)).await;
    let (stop, task) = spawn(Worker::on(&queue, registry, fast()));
    wait_for(&queue, traced, JobState::Succeeded).await;
    wait_for(&queue, untraced, JobState::Succeeded).await;
    stop.cancel();
    task.await.unwrap();

    let scopes = scopes.lock().unwrap().clone();
    assert_eq!(scopes.get(&traced), Some(&Some("abc-123".to_owned())));
    assert_eq!(scopes.get(&untraced), Some(&None));
    let text = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
    let line_of = |id: Uuid| {
        let marker = format!("marker={id}");
        text.lines().find(|line| line.contains(&marker)).unwrap_or_else(|| panic!("no line for {id} in:\n{text}"))
    };
    let line = line_of(traced);
    for field in [format!("job_id={traced}"), "kind=test.traced".into(), "attempt=1".into(), "abc-123".into()] {
        assert!(line.contains(&field), "{field} missing from {line}");
    }
    assert!(line.contains("request_id="), "{line}");
    let line = line_of(untraced);
    assert!(line.contains(&format!("job_id={untraced}")) && !line.contains("request_id="), "{line}");
}
