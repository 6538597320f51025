//! `cargo xtask queue-bench`: the figures of the durable job queue (issue 9), measured in this process against
//! a real database.
//!
//! - **throughput**: `--jobs` no-op jobs are enqueued first (`enqueue_many`, `--enqueue-batch` per unit), then
//!   `--instances` workers start, each with its own pool and [`JobRepo`] as separate instances would have, and
//!   the run is timed until every job is recorded as succeeded in the database. Repeated for each number of
//!   `--instances`.
//! - **enqueue-cost**: a unit of work with one business insert (a user and its role, as sign-up writes it) with
//!   and without the enqueue of its welcome e-mail, `--iterations` of each, interleaved, no worker running.
//! - **latency**: one worker idle; `--latency-jobs` jobs enqueued one at a time, each committed and started
//!   before the next. On PostgreSQL twice: enqueued through the worker's own [`JobRepo`] (woken in-process) and
//!   through another instance's (woken by `NOTIFY` through [`JobRepo::relay_notifications`]).
//!
//! The bench owns the jobs whose kind starts with `bench.`: it deletes them between runs and refuses a
//! database whose queue holds any other job. Use a fresh database. Timing is printed with the machine's load
//! average, which matters on a shared machine; nothing here asserts a figure.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use chrono::Utc;
use rental_domain::{Email, FullName, Role};
use rental_repo::{
    Backend, BackoffPolicy, Database, DatabaseConfig, JobRepo, JobStore, NewJob, NewUserRecord, RepoError, UserRepo,
    UserStore,
};
use rental_tasks::{JobContext, JobError, Registry, Worker, WorkerConfig, WorkerStats};
use sea_orm::{ConnectionTrait, Statement};
use serde_json::json;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Kind of the throughput run's jobs.
const NOOP: &str = "bench.noop";
/// Kind of the jobs enqueued in the enqueue-cost run (never run).
const MAIL: &str = "bench.mail";
/// Kind of the latency run's jobs.
const PING: &str = "bench.ping";
/// Kind of the jobs of the commit probe (due in a year, never run).
const PROBE: &str = "bench.probe";

/// What to measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Phase {
    /// No-op jobs per second through the queue.
    Throughput,
    /// What one enqueue adds to a unit of work.
    EnqueueCost,
    /// Enqueue-to-start latency on an idle queue.
    Latency,
}

/// Options of `cargo xtask queue-bench`.
#[derive(Debug, clap::Args)]
pub struct QueueBenchArgs {
    /// The database (a fresh one: the bench deletes its own `bench.*` jobs and refuses a queue holding others);
    /// migrations are applied first.
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: String,
    /// Runs, comma-separated: throughput, enqueue-cost, latency.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "throughput,enqueue-cost,latency")]
    pub phases: Vec<Phase>,
    /// No-op jobs per throughput run.
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub jobs: u64,
    /// Jobs per unit of work (one `enqueue_many`) when filling the queue.
    #[arg(long, default_value_t = 5_000, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub enqueue_batch: u64,
    /// Numbers of worker instances, comma-separated; the throughput run is repeated for each.
    #[arg(long, value_delimiter = ',', default_value = "1")]
    pub instances: Vec<usize>,
    /// Jobs each worker runs at once (default: the worker's default).
    #[arg(long)]
    pub concurrency: Option<usize>,
    /// Most jobs one claim takes (default: the worker's default).
    #[arg(long)]
    pub claim_batch: Option<u32>,
    /// Most connections of each instance's pool.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(2..=100))]
    pub pool_size: u32,
    /// Units of each kind (with and without the enqueue) in the enqueue-cost run.
    #[arg(long, default_value_t = 2_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub iterations: u64,
    /// Jobs enqueued one after the other in each latency run.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u64).range(1..))]
    pub latency_jobs: u64,
}

impl QueueBenchArgs {
    fn worker_config(&self) -> WorkerConfig {
        let default = WorkerConfig::default();
        WorkerConfig {
            concurrency: self.concurrency.unwrap_or(default.concurrency),
            claim_batch: self.claim_batch.unwrap_or(default.claim_batch),
            ..default
        }
    }

    async fn connect(&self, max_connections: u32) -> anyhow::Result<Database> {
        let config = DatabaseConfig {
            max_connections: Some(max_connections),
            min_connections: Some(1),
            ..DatabaseConfig::with_url(&self.database_url)
        };
        Database::connect(&config).await.with_context(|| format!("cannot connect to {}", config.redacted_url()))
    }
}

/// Runs the phases asked for and prints their figures.
///
/// # Errors
/// When the database cannot be reached, holds jobs of its own, or a statement fails.
pub async fn run(args: QueueBenchArgs) -> anyhow::Result<()> {
    if args.instances.is_empty() || args.instances.contains(&0) {
        bail!("--instances needs positive numbers, such as 1,2");
    }
    let config = args.worker_config();
    config.validate("worker").map_err(anyhow::Error::msg)?;
    let db = args.connect(4).await?;
    db.migrate(&BackoffPolicy::default()).await.context("cannot apply migrations")?;
    let foreign = count(&db, "SELECT COUNT(*) FROM jobs WHERE kind NOT LIKE 'bench.%'").await?;
    if foreign > 0 {
        bail!("the queue of this database holds {foreign} jobs that are not the bench's: use a fresh database");
    }
    println!(
        "queue-bench on {:?}: concurrency {}, claim batch {}, pool {} per instance, {}",
        db.backend(),
        config.concurrency,
        config.claim_batch,
        args.pool_size,
        machine()
    );

    let mut report = Vec::new();
    for phase in &args.phases {
        match phase {
            Phase::Throughput => {
                for &instances in &args.instances {
                    let line = throughput(&args, &db, &config, instances).await?;
                    println!("{line}");
                    report.push(line);
                }
            }
            Phase::EnqueueCost => {
                let line = enqueue_cost(&args, &db).await?;
                println!("{line}");
                report.push(line);
            }
            Phase::Latency => {
                let cases: &[bool] = if db.backend() == Backend::Postgres { &[false, true] } else { &[false] };
                for &cross in cases {
                    let line = latency(&args, &db, &config, cross).await?;
                    println!("{line}");
                    report.push(line);
                }
            }
        }
    }
    reset(&db).await?;
    db.close().await.context("cannot close the pool")?;
    println!("\nSummary ({:?}):", args.phases);
    for line in report {
        println!("- {line}");
    }
    Ok(())
}

/// Fills the queue with `--jobs` no-op jobs, starts `instances` workers and times them until every job is
/// recorded as succeeded.
async fn throughput(
    args: &QueueBenchArgs,
    db: &Database,
    config: &WorkerConfig,
    instances: usize,
) -> anyhow::Result<String> {
    reset(db).await?;
    let queue = JobRepo::new(db.clone());
    let filling = Instant::now();
    let mut left = args.jobs;
    while left > 0 {
        let n = left.min(args.enqueue_batch);
        let jobs: Vec<NewJob> = (0..n).map(|_| NewJob::new(NOOP, json!({}), 3)).collect();
        db.write(async |uow| queue.enqueue_many(uow, jobs, Utc::now()).await).await.context("enqueue_many")?;
        left -= n;
    }
    let filled = filling.elapsed();
    analyze(db).await?;
    let flush = commit_probe(db, &queue).await?;

    let mut pools = Vec::with_capacity(instances);
    let mut workers = Vec::with_capacity(instances);
    let mut stats: Vec<Arc<WorkerStats>> = Vec::with_capacity(instances);
    for _ in 0..instances {
        let pool = args.connect(args.pool_size).await?;
        let repo = JobRepo::new(pool.clone());
        let registry = Registry::new().register(NOOP, |_job: JobContext| async { Ok::<(), JobError>(()) });
        let worker = Worker::on(&repo, registry, config.clone());
        stats.push(worker.stats());
        workers.push(worker);
        pools.push(pool);
    }
    let load = loadavg();
    let stop = CancellationToken::new();
    let started = Instant::now();
    let tasks: Vec<_> = workers.into_iter().map(|w| tokio::spawn(w.run(stop.clone()))).collect();

    // The handlers' successes, counted in this process, tell when to start asking the database, which has the
    // last word: a job counts once its success is committed.
    let succeeded = || stats.iter().map(|s| s.snapshot().succeeded).sum::<u64>();
    let mut per_second = Vec::new();
    let mut last = (Instant::now(), 0u64);
    while succeeded() < args.jobs {
        tokio::time::sleep(Duration::from_millis(5)).await;
        if last.0.elapsed() >= Duration::from_secs(1) {
            let now = succeeded();
            per_second.push((now - last.1) as f64 / last.0.elapsed().as_secs_f64());
            last = (Instant::now(), now);
        }
        if started.elapsed() > Duration::from_secs(1_800) {
            bail!("the throughput run took more than 30 minutes");
        }
    }
    let handled = started.elapsed();
    let unfinished =
        format!("SELECT COUNT(*) FROM jobs WHERE state IN ('queued', 'retrying', 'running') AND kind = '{NOOP}'");
    while count(db, &unfinished).await? > 0 {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let elapsed = started.elapsed();
    let load_after = loadavg();
    stop.cancel();
    for task in tasks {
        task.await.context("a worker panicked")?;
    }
    let statements: u64 = pools.iter().map(|p| p.statement_stats().executed()).sum();
    for pool in pools {
        pool.close().await.context("cannot close an instance's pool")?;
    }
    let done = count(db, &format!("SELECT COUNT(*) FROM jobs WHERE state = 'succeeded' AND kind = '{NOOP}'")).await?;
    if done != args.jobs {
        bail!("{done} of {} jobs succeeded", args.jobs);
    }
    let rate = args.jobs as f64 / elapsed.as_secs_f64();
    let (slowest, fastest) = per_second.iter().fold((f64::MAX, 0.0f64), |(lo, hi), &r| (lo.min(r), hi.max(r)));
    let spread = if per_second.is_empty() {
        String::new()
    } else {
        let timeline: Vec<String> = per_second.iter().map(|r| format!("{r:.0}")).collect();
        format!(", per-second rates {slowest:.0}–{fastest:.0}: {}", timeline.join(" "))
    };
    Ok(format!(
        "throughput, {instances} instance(s): {} no-op jobs in {:.2} s = **{rate:.0} jobs/s** (handlers done at {:.2} s, \
         {statements} statements from the workers{spread}); filling the queue took {:.2} s ({:.0} jobs/s); a one-row durable \
         commit took {flush:.2} ms (median of 20); load {load} → {load_after}",
        args.jobs,
        elapsed.as_secs_f64(),
        handled.as_secs_f64(),
        filled.as_secs_f64(),
        args.jobs as f64 / filled.as_secs_f64(),
    ))
}

/// Times a sign-up's unit of work (user + role) with and without the enqueue of its welcome e-mail.
async fn enqueue_cost(args: &QueueBenchArgs, db: &Database) -> anyhow::Result<String> {
    reset(db).await?;
    let users = UserRepo::new(db.clone());
    let queue = JobRepo::new(db.clone());
    let run = Uuid::new_v4().simple().to_string();
    let run = &run[..8];
    let unit = async |i: u64, with_job: bool| -> anyhow::Result<Duration> {
        let record = NewUserRecord {
            email: Email::parse(&format!("qb-{run}-{i}-{}@example.com", u8::from(with_job)))?,
            full_name: FullName::parse(&format!("Bench User {i}"))?,
            password_hash: None,
            is_active: true,
            is_superuser: false,
            roles: vec![Role::Customer],
        };
        let started = Instant::now();
        db.write(async |uow| {
            let now = Utc::now();
            let user = users.create(uow, record, now).await?;
            if with_job {
                let payload = json!({ "template": "welcome", "to": user.email, "context": { "name": user.full_name } });
                queue.enqueue(uow, NewJob::new(MAIL, payload, 5), now).await?;
            }
            Ok::<_, RepoError>(())
        })
        .await?;
        Ok(started.elapsed())
    };
    // Warm the pool's connections and statement caches.
    for i in 0..50 {
        unit(args.iterations + i, i % 2 == 0).await?;
    }
    let load = loadavg();
    let mut plain = Vec::new();
    let mut with_job = Vec::new();
    for i in 0..args.iterations {
        // Alternating which goes first cancels a drift of the machine within a pair.
        for job in if i % 2 == 0 { [false, true] } else { [true, false] } {
            let took = unit(i, job).await?;
            if job { with_job.push(took) } else { plain.push(took) }
        }
    }
    let load_after = loadavg();
    let (p50, p99) = (percentile(&mut plain, 0.50), percentile(&mut plain, 0.99));
    let (j50, j99) = (percentile(&mut with_job, 0.50), percentile(&mut with_job, 0.99));
    Ok(format!(
        "enqueue cost, {} units of each: user + role {p50:.3} / {p99:.3} ms (p50 / p99), with the enqueue \
         {j50:.3} / {j99:.3} ms: the enqueue adds **{:.3} ms at the median, {:.3} ms at p99**; load {load} → \
         {load_after}",
        args.iterations,
        j50 - p50,
        j99 - p99,
    ))
}

/// One idle worker; jobs enqueued one at a time, each started before the next. With `cross`, the jobs are
/// enqueued by another instance (its own pool and [`JobRepo`]) and the worker learns of them from PostgreSQL's
/// notifications.
async fn latency(args: &QueueBenchArgs, db: &Database, config: &WorkerConfig, cross: bool) -> anyhow::Result<String> {
    reset(db).await?;
    let pool = args.connect(args.pool_size).await?;
    let repo = JobRepo::new(pool.clone());
    let (enqueue_db, enqueue_repo) = if cross {
        let other = args.connect(args.pool_size).await?;
        (other.clone(), JobRepo::new(other))
    } else {
        (pool.clone(), repo.clone())
    };
    let (started_tx, mut started_rx) = mpsc::unbounded_channel::<Instant>();
    let registry = Registry::new().register(PING, move |_job: JobContext| {
        let started = started_tx.clone();
        async move {
            let _ = started.send(Instant::now());
            Ok::<(), JobError>(())
        }
    });
    let worker = Worker::on(&repo, registry, config.clone());
    let stats = worker.stats();
    let stop = CancellationToken::new();
    let task = tokio::spawn(worker.run(stop.clone()));
    // As `rental-api serve` does: the relay runs beside the worker (it just waits on SQLite).
    let relay = {
        let (repo, stop) = (repo.clone(), stop.clone());
        tokio::spawn(async move { repo.relay_notifications(stop.cancelled_owned()).await })
    };
    // Let the worker find the queue empty and the relay start listening.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let load = loadavg();
    let mut from_begin = Vec::new();
    let mut from_commit = Vec::new();
    for i in 0..args.latency_jobs {
        let begun = Instant::now();
        enqueue_db
            .write(async |uow| enqueue_repo.enqueue(uow, NewJob::new(PING, json!({ "i": i }), 1), Utc::now()).await)
            .await
            .context("enqueue")?;
        let committed = Instant::now();
        let started = tokio::time::timeout(Duration::from_secs(10), started_rx.recv())
            .await
            .context("a job did not start within 10 s")?
            .context("the worker stopped")?;
        from_begin.push(started.saturating_duration_since(begun));
        from_commit.push(started.saturating_duration_since(committed));
    }
    let load_after = loadavg();
    let snapshot = stats.snapshot();
    stop.cancel();
    task.await.context("the worker panicked")?;
    relay.await.context("the relay panicked")?;
    pool.close().await.context("cannot close the worker's pool")?;
    if cross {
        enqueue_db.close().await.context("cannot close the enqueuer's pool")?;
    }
    let case = if cross {
        "another instance (NOTIFY → relay → worker)"
    } else {
        "the worker's own instance (in-process wake-up)"
    };
    let (b50, b99) = (percentile(&mut from_begin, 0.50), percentile(&mut from_begin, 0.99));
    let (c50, c99) = (percentile(&mut from_commit, 0.50), percentile(&mut from_commit, 0.99));
    Ok(format!(
        "latency, {} jobs enqueued by {case}: worker's enqueue-to-start p50 {:.2} ms, **p99 {:.2} ms**; handler \
         start after the commit returned p50 {c50:.2} / p99 {c99:.2} ms, after BEGIN p50 {b50:.2} / p99 {b99:.2} ms; \
         jobs started {}; load {load} → {load_after}",
        args.latency_jobs, snapshot.latency_p50_ms, snapshot.latency_p99_ms, snapshot.claimed,
    ))
}

/// The median time of a durable commit of one row (a job due in a year, never claimed), in milliseconds: the
/// disk's flush latency, which other work on a shared machine changes a great deal.
async fn commit_probe(db: &Database, queue: &JobRepo) -> anyhow::Result<f64> {
    let mut samples = Vec::with_capacity(20);
    for _ in 0..20 {
        let started = Instant::now();
        let later = Utc::now() + chrono::Duration::days(365);
        db.write(async |uow| queue.enqueue(uow, NewJob::new(PROBE, json!({}), 1).at(later), Utc::now()).await)
            .await
            .context("commit probe")?;
        samples.push(started.elapsed());
    }
    Ok(percentile(&mut samples, 0.50))
}

/// Deletes the bench's jobs (and on PostgreSQL vacuums the table, as autovacuum would, which is off on the
/// project's machine), so that every run starts from an empty queue.
async fn reset(db: &Database) -> anyhow::Result<()> {
    let conn = db.connection();
    conn.execute_unprepared("DELETE FROM jobs WHERE kind LIKE 'bench.%'").await.context("emptying the queue")?;
    if db.backend() == Backend::Postgres {
        conn.execute_unprepared("VACUUM ANALYZE jobs").await.context("VACUUM ANALYZE jobs")?;
    }
    Ok(())
}

/// Refreshes the planner's statistics of the filled queue (PostgreSQL), as autovacuum's analyze would after
/// that many inserts.
async fn analyze(db: &Database) -> anyhow::Result<()> {
    if db.backend() == Backend::Postgres {
        db.connection().execute_unprepared("ANALYZE jobs").await.context("ANALYZE jobs")?;
    }
    Ok(())
}

async fn count(db: &Database, sql: &str) -> anyhow::Result<u64> {
    let row = db
        .connection()
        .query_one_raw(Statement::from_string(db.connection().get_database_backend(), sql))
        .await
        .with_context(|| format!("`{sql}`"))?
        .context("no row")?;
    let n: i64 = row.try_get_by_index(0).context("count")?;
    Ok(u64::try_from(n).unwrap_or(0))
}

/// The `p` quantile by nearest rank, in milliseconds.
fn percentile(samples: &mut [Duration], p: f64) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    samples.sort_unstable();
    let rank = ((samples.len() as f64) * p).ceil() as usize;
    samples[rank.clamp(1, samples.len()) - 1].as_secs_f64() * 1_000.0
}

/// The 1-minute load average and the UTC time, for the record.
fn loadavg() -> String {
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let one = load.split_whitespace().next().unwrap_or("?");
    format!("{one} at {}", Utc::now().format("%H:%M:%S"))
}

fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    format!("{cores} cores, started {}", Utc::now().format("%Y-%m-%d %H:%M UTC"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let mut samples: Vec<Duration> = (1..=100).rev().map(Duration::from_millis).collect();
        assert!((percentile(&mut samples, 0.50) - 50.0).abs() < 1e-9);
        assert!((percentile(&mut samples, 0.99) - 99.0).abs() < 1e-9);
        assert!((percentile(&mut [], 0.5)).abs() < 1e-9);
    }
}
