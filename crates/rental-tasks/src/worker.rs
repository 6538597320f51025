//! The worker: claims due jobs in batches, runs them concurrently under a lease kept alive by a heartbeat,
//! records the outcome, and on shutdown stops claiming, lets running jobs finish within a grace period and
//! gives back the rest.
//!
//! One worker is a handful of tasks: the dispatcher (claims while there are free slots, then waits for a wake-up
//! from an enqueue in this process, a PostgreSQL notification or the poll interval), one task per running job,
//! the completer (records successes in batches, one statement for many jobs), the heartbeat (extends the leases
//! of the running jobs) and the rescuer (returns jobs whose worker died to the queue, and reports jobs of kinds no
//! handler here knows).
//!
//! Each run of a job is a tracing span `job` with `job_id`, `kind`, `attempt` and `request_id` (the request that
//! enqueued it, when one did), so every line its handler logs names them; the handler runs inside that request's
//! [`rental_service::context`] scope, so the jobs it enqueues carry the same request id.

use std::collections::{BTreeSet, HashSet, VecDeque};
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::FutureExt;
use rental_repo::{ClaimedJob, JobRepo, JobStore};
use rental_service::{Clock, SystemClock};
use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use uuid::Uuid;

use crate::handler::{JobContext, JobError, Registry};
use crate::retry::RetryPolicy;

/// Settings of a worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WorkerConfig {
    /// Whether `rental-api serve` runs a worker beside the HTTP server (`rental-api work` runs one alone).
    pub enabled: bool,
    /// Jobs run at once.
    pub concurrency: usize,
    /// Most jobs one claim takes.
    pub claim_batch: u32,
    /// How often an idle worker looks for due jobs when nothing woke it, milliseconds.
    pub poll_interval_ms: u64,
    /// How long a claim holds a job; the heartbeat extends it every third of this while the job runs, and a
    /// job whose worker died is claimed again once it runs out.
    pub lease_secs: u64,
    /// Longest a run may take (a kind may set its own), seconds.
    pub job_timeout_secs: u64,
    /// On shutdown, how long running jobs may take to finish before they are given back, seconds.
    pub shutdown_grace_secs: u64,
    /// How often expired leases are looked for, seconds.
    pub rescue_interval_secs: u64,
    /// Runs of a job before it is dead-lettered (set when the job is enqueued: `jobs.max_attempts`) are not
    /// here; this is the wait between them.
    pub retry: RetryPolicy,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            concurrency: 16,
            claim_batch: 64,
            poll_interval_ms: 1_000,
            lease_secs: 30,
            job_timeout_secs: 60,
            shutdown_grace_secs: 20,
            rescue_interval_secs: 10,
            retry: RetryPolicy::default(),
        }
    }
}

impl WorkerConfig {
    /// Checks the values, naming the key at fault (under `prefix`, e.g. `worker`).
    ///
    /// # Errors
    /// A message naming the key.
    pub fn validate(&self, prefix: &str) -> Result<(), String> {
        let positive = [
            ("concurrency", self.concurrency as u64),
            ("claim_batch", u64::from(self.claim_batch)),
            ("poll_interval_ms", self.poll_interval_ms),
            ("lease_secs", self.lease_secs),
            ("job_timeout_secs", self.job_timeout_secs),
            ("rescue_interval_secs", self.rescue_interval_secs),
            ("retry.cap_ms", self.retry.cap_ms),
        ];
        for (key, value) in positive {
            if value == 0 {
                return Err(format!("{prefix}.{key} must be positive"));
            }
        }
        if self.retry.base_ms > self.retry.cap_ms {
            return Err(format!("{prefix}.retry.base_ms must not exceed {prefix}.retry.cap_ms"));
        }
        Ok(())
    }
}

/// Samples of the enqueue-to-start latency kept for the percentiles.
const LATENCY_SAMPLES: usize = 4_096;

/// What a worker has done, for monitoring. Shared with the worker while it runs.
#[derive(Debug, Default)]
pub struct WorkerStats {
    claimed: AtomicU64,
    succeeded: AtomicU64,
    retried: AtomicU64,
    dead: AtomicU64,
    released: AtomicU64,
    running: AtomicU64,
    /// Recent enqueue-to-start latencies, microseconds.
    latencies: Mutex<VecDeque<u64>>,
    /// Kinds of waiting jobs that no handler of this worker knows.
    unknown_kinds: Mutex<BTreeSet<String>>,
}

/// A point-in-time view of [`WorkerStats`].
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WorkerSnapshot {
    /// Jobs claimed since start.
    pub claimed: u64,
    /// Jobs that succeeded.
    pub succeeded: u64,
    /// Failed runs that will be retried.
    pub retried: u64,
    /// Jobs dead-lettered by this worker.
    pub dead: u64,
    /// Jobs given back at shutdown.
    pub released: u64,
    /// Jobs running now.
    pub running: u64,
    /// Median enqueue-to-start latency of recent jobs, milliseconds.
    pub latency_p50_ms: f64,
    /// 99th percentile of the same.
    pub latency_p99_ms: f64,
    /// Kinds found waiting in the queue that this worker has no handler for.
    pub unknown_kinds: Vec<String>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl WorkerStats {
    /// The figures now.
    pub fn snapshot(&self) -> WorkerSnapshot {
        let mut samples: Vec<u64> = lock(&self.latencies).iter().copied().collect();
        samples.sort_unstable();
        let percentile = |p: f64| {
            if samples.is_empty() {
                return 0.0;
            }
            let rank = ((samples.len() as f64) * p).ceil() as usize;
            samples[rank.clamp(1, samples.len()) - 1] as f64 / 1_000.0
        };
        WorkerSnapshot {
            claimed: self.claimed.load(Ordering::Relaxed),
            succeeded: self.succeeded.load(Ordering::Relaxed),
            retried: self.retried.load(Ordering::Relaxed),
            dead: self.dead.load(Ordering::Relaxed),
            released: self.released.load(Ordering::Relaxed),
            running: self.running.load(Ordering::Relaxed),
            latency_p50_ms: percentile(0.50),
            latency_p99_ms: percentile(0.99),
            unknown_kinds: lock(&self.unknown_kinds).iter().cloned().collect(),
        }
    }

    fn started(&self, waited: chrono::Duration) {
        self.claimed.fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(waited.num_microseconds().unwrap_or(0)).unwrap_or(0);
        let mut latencies = lock(&self.latencies);
        if latencies.len() == LATENCY_SAMPLES {
            latencies.pop_front();
        }
        latencies.push_back(micros);
    }
}

/// What a worker needs while it runs, shared by its tasks.
struct Shared<J> {
    id: String,
    store: Arc<J>,
    registry: Registry,
    config: WorkerConfig,
    clock: Arc<dyn Clock>,
    stats: Arc<WorkerStats>,
    /// Jobs whose handler has not finished.
    running: Mutex<HashSet<Uuid>>,
}

impl<J> Shared<J> {
    fn lease(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        now + chrono::Duration::seconds(i64::try_from(self.config.lease_secs).unwrap_or(i64::MAX / 1_000_000))
    }

    fn running_ids(&self) -> Vec<Uuid> {
        lock(&self.running).iter().copied().collect()
    }
}

/// A worker over a [`JobStore`] (the sea-orm queue by default).
pub struct Worker<J = JobRepo> {
    shared: Shared<J>,
    wake: Arc<Notify>,
}

impl<J> std::fmt::Debug for Worker<J> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("id", &self.shared.id)
            .field("kinds", &self.shared.registry)
            .field("config", &self.shared.config)
            .finish_non_exhaustive()
    }
}

impl Worker {
    /// A worker on the sea-orm queue, woken by its enqueues in this process.
    pub fn on(queue: &JobRepo, registry: Registry, config: WorkerConfig) -> Self {
        Self::new(Arc::new(queue.clone()), queue.wake_signal(), registry, config)
    }
}

impl<J: JobStore + 'static> Worker<J> {
    /// A worker on `store`, woken early by `wake`, running the handlers of `registry`.
    pub fn new(store: Arc<J>, wake: Arc<Notify>, registry: Registry, config: WorkerConfig) -> Self {
        let id = format!("{}-{}", std::process::id(), &Uuid::new_v4().simple().to_string()[..12]);
        let shared = Shared {
            id,
            store,
            registry,
            config,
            clock: Arc::new(SystemClock),
            stats: Arc::default(),
            running: Mutex::default(),
        };
        Self { shared, wake }
    }

    /// The same worker judging due times and leases by `clock`.
    #[must_use]
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.shared.clock = clock;
        self
    }

    /// The worker's id, as the queue records it on the jobs it holds.
    pub fn id(&self) -> &str {
        &self.shared.id
    }

    /// Its figures, live while it runs.
    pub fn stats(&self) -> Arc<WorkerStats> {
        self.shared.stats.clone()
    }

    /// Runs until `shutdown` is cancelled, then stops claiming, waits up to the grace period for the running
    /// jobs, gives back those still running (another worker runs them again) and returns.
    pub async fn run(self, shutdown: CancellationToken) {
        let shared = Arc::new(self.shared);
        let kinds = shared.registry.kinds();
        tracing::info!(worker = %shared.id, ?kinds, concurrency = shared.config.concurrency, "worker started");
        let slots = Arc::new(Semaphore::new(shared.config.concurrency.max(1)));
        let (done, finished) = mpsc::unbounded_channel();
        let background = CancellationToken::new();
        let completer = tokio::spawn(complete(shared.clone(), finished));
        let heartbeat = tokio::spawn(heartbeat(shared.clone(), background.clone()));
        let rescuer = tokio::spawn(rescue(shared.clone(), background.clone()));
        let poll = Duration::from_millis(shared.config.poll_interval_ms.max(1));
        let mut tasks = JoinSet::new();
        loop {
            while tasks.try_join_next().is_some() {}
            let free = slots.available_permits();
            if free == 0 {
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    permit = slots.clone().acquire_owned() => drop(permit),
                }
                continue;
            }
            if shutdown.is_cancelled() {
                break;
            }
            let limit = u32::try_from(free).unwrap_or(u32::MAX).min(shared.config.claim_batch.max(1));
            let now = shared.clock.now();
            match shared.store.claim(&shared.id, &kinds, limit, now, shared.lease(now)).await {
                Ok(jobs) => {
                    let full = u32::try_from(jobs.len()).unwrap_or(u32::MAX) == limit;
                    for job in jobs {
                        let Ok(permit) = slots.clone().try_acquire_owned() else { break };
                        shared.stats.started(now - job.run_at);
                        lock(&shared.running).insert(job.id);
                        let span = tracing::info_span!(
                            "job",
                            job_id = %job.id,
                            kind = %job.kind,
                            attempt = job.attempt,
                            request_id = job.request_id.as_deref(),
                        );
                        tasks.spawn(run_job(shared.clone(), job, permit, done.clone()).instrument(span));
                    }
                    if full {
                        continue;
                    }
                }
                Err(err) => tracing::warn!(error = %err, "claiming jobs failed; trying again after the poll interval"),
            }
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = self.wake.notified() => {}
                () = tokio::time::sleep(poll) => {}
            }
        }

        let grace = Duration::from_secs(shared.config.shutdown_grace_secs);
        let drained = tokio::time::timeout(grace, async { while tasks.join_next().await.is_some() {} }).await;
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
        let unfinished = shared.running_ids();
        if drained.is_err() && !unfinished.is_empty() {
            match shared.store.release(&shared.id, &unfinished).await {
                Ok(n) => {
                    shared.stats.released.fetch_add(n, Ordering::Relaxed);
                    tracing::warn!(worker = %shared.id, released = n, "jobs still running at the deadline given back");
                }
                Err(err) => tracing::warn!(error = %err, "giving back unfinished jobs failed; their leases expire"),
            }
        }
        drop(done);
        background.cancel();
        for task in [completer, heartbeat, rescuer] {
            if let Err(err) = task.await {
                tracing::warn!(error = %err, "a worker task ended abnormally");
            }
        }
        tracing::info!(worker = %shared.id, "worker stopped");
    }
}

/// Runs one job and records a failure; a success goes to the completer.
async fn run_job<J: JobStore + 'static>(
    shared: Arc<Shared<J>>,
    job: ClaimedJob,
    permit: OwnedSemaphorePermit,
    done: mpsc::UnboundedSender<Uuid>,
) {
    shared.stats.running.fetch_add(1, Ordering::Relaxed);
    let context = JobContext::of(&job);
    let result = match shared.registry.get(&job.kind) {
        None => Err(JobError::retry(format!("no handler for {}", job.kind))),
        Some(registered) => {
            let limit = registered.timeout.unwrap_or(Duration::from_secs(shared.config.job_timeout_secs));
            let run = AssertUnwindSafe(registered.handler.run(&context)).catch_unwind();
            let run = rental_service::context::scope(job.request_id.clone(), run);
            match tokio::time::timeout(limit, run).await {
                Ok(Ok(result)) => result,
                Ok(Err(_)) => Err(JobError::retry("the handler panicked")),
                Err(_) => Err(JobError::retry(format!("timed out after {} s", limit.as_secs_f64()))),
            }
        }
    };
    lock(&shared.running).remove(&job.id);
    shared.stats.running.fetch_sub(1, Ordering::Relaxed);
    drop(permit);
    match result {
        Ok(()) => {
            shared.stats.succeeded.fetch_add(1, Ordering::Relaxed);
            // The completer ends only after every sender is gone, so this cannot fail while the worker runs.
            let _ = done.send(job.id);
        }
        Err(err) => {
            let policy = shared.registry.get(&job.kind).and_then(|r| r.retry).unwrap_or(shared.config.retry);
            let now = shared.clock.now();
            let retry_at = match &err {
                JobError::Retry(_) if job.attempt < job.max_attempts => {
                    let delay = chrono::Duration::from_std(policy.delay(job.attempt)).unwrap_or_default();
                    Some(now + delay)
                }
                _ => None,
            };
            let counter = if retry_at.is_some() { &shared.stats.retried } else { &shared.stats.dead };
            counter.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                job = %job.id, kind = %job.kind, attempt = job.attempt, error = %err, dead = retry_at.is_none(),
                "job failed"
            );
            if let Err(store_err) = shared.store.fail(&shared.id, job.id, &err.to_string(), retry_at, now).await {
                tracing::warn!(job = %job.id, error = %store_err, "recording the failure failed; its lease expires");
            }
        }
    }
}

/// Records successes in batches: one statement for whatever has finished since the last one.
async fn complete<J: JobStore>(shared: Arc<Shared<J>>, mut finished: mpsc::UnboundedReceiver<Uuid>) {
    let mut batch = Vec::with_capacity(512);
    while finished.recv_many(&mut batch, 1_000).await > 0 {
        for attempt in 1..=3u64 {
            match shared.store.complete(&shared.id, &batch, shared.clock.now()).await {
                Ok(_) => break,
                Err(err) if attempt < 3 => {
                    tracing::warn!(error = %err, "recording finished jobs failed; trying again");
                    tokio::time::sleep(Duration::from_millis(100 * attempt)).await;
                }
                Err(err) => {
                    tracing::warn!(error = %err, jobs = batch.len(), "recording finished jobs failed; they run again");
                }
            }
        }
        batch.clear();
    }
}

/// Extends the leases of the running jobs every third of the lease.
async fn heartbeat<J: JobStore>(shared: Arc<Shared<J>>, stop: CancellationToken) {
    let every = Duration::from_millis((shared.config.lease_secs * 1_000 / 3).max(100));
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
        let ids = shared.running_ids();
        if ids.is_empty() {
            continue;
        }
        let now = shared.clock.now();
        match shared.store.extend_leases(&shared.id, &ids, shared.lease(now)).await {
            Ok(held) if held < ids.len() as u64 => {
                tracing::warn!(worker = %shared.id, lost = ids.len() as u64 - held, "jobs were taken back while running");
            }
            Ok(_) => {}
            Err(err) => tracing::warn!(error = %err, "extending leases failed"),
        }
    }
}

/// Returns expired leases to the queue and reports waiting jobs of kinds no handler here knows.
async fn rescue<J: JobStore>(shared: Arc<Shared<J>>, stop: CancellationToken) {
    let every = Duration::from_secs(shared.config.rescue_interval_secs.max(1));
    let known: BTreeSet<String> = shared.registry.kinds().into_iter().collect();
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
        let now = shared.clock.now();
        match shared.store.rescue_expired(now).await {
            Ok(0) => {}
            Ok(n) => tracing::warn!(rescued = n, "jobs whose worker stopped were returned to the queue"),
            Err(err) => tracing::warn!(error = %err, "rescuing expired leases failed"),
        }
        let Ok(counts) = shared.store.counts(now).await else { continue };
        let unknown: BTreeSet<String> =
            counts.into_iter().filter(|c| c.state.is_waiting() && !known.contains(&c.kind)).map(|c| c.kind).collect();
        let mut reported = lock(&shared.stats.unknown_kinds);
        for kind in unknown.difference(&reported) {
            tracing::warn!(kind = %kind, "jobs of a kind this worker has no handler for are waiting; left alone");
        }
        *reported = unknown;
    }
}
