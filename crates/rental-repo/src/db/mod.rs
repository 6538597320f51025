pub(crate) mod lock;
pub(crate) mod probe;
pub(crate) mod raw;
pub(crate) mod uow;

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rental_migrations::{Migrator, MigratorTrait};
use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{ConnectOptions, ConnectionTrait, DatabaseConnection};
use serde::Serialize;

use crate::db::lock::{BackoffPolicy, with_advisory_lock};
use crate::db::probe::{Availability, ProbeTarget};
use crate::{DatabaseConfig, RepoError, RepoResult};

/// Which database a [`Database`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// Embedded SQLite file.
    Sqlite,
    /// PostgreSQL server.
    Postgres,
}

/// A point-in-time view of the connection pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PoolStats {
    /// Connections open now.
    pub size: u32,
    /// Open connections waiting for work.
    pub idle: u32,
    /// Open connections lent out.
    pub in_use: u32,
    /// Connections the pool keeps open.
    pub min_connections: u32,
    /// Most connections the pool may open.
    pub max_connections: u32,
    /// Connections open beyond the kept minimum.
    pub overflow: u32,
    /// Callers of [`Database::begin`] waiting now for a connection and their transaction to begin.
    /// Reads outside a unit of work acquire inside sea-orm and are not counted.
    pub waiting: u32,
    /// Units of work begun (successfully or not) since the pool opened, each timed from the call
    /// of [`Database::begin`] until its transaction began.
    pub acquires: u64,
    /// Total of those waits, in microseconds.
    pub acquire_wait_micros_total: u64,
    /// Longest of those waits, in microseconds.
    pub acquire_wait_micros_max: u64,
}

/// Waits for a connection in [`Database::begin`], counted with relaxed atomics.
#[derive(Debug, Default)]
pub(crate) struct AcquireStats {
    waiting: AtomicU32,
    acquires: AtomicU64,
    wait_micros_total: AtomicU64,
    wait_micros_max: AtomicU64,
}

impl AcquireStats {
    /// Counts a caller as waiting until the guard is dropped, then records how long it waited.
    pub(crate) fn wait(&self) -> AcquireWait<'_> {
        self.waiting.fetch_add(1, Ordering::Relaxed);
        AcquireWait { stats: self, started: Instant::now() }
    }
}

/// A caller waiting in [`Database::begin`]; see [`AcquireStats::wait`].
pub(crate) struct AcquireWait<'a> {
    stats: &'a AcquireStats,
    started: Instant,
}

impl Drop for AcquireWait<'_> {
    fn drop(&mut self) {
        let micros = u64::try_from(self.started.elapsed().as_micros()).unwrap_or(u64::MAX);
        let stats = self.stats;
        stats.waiting.fetch_sub(1, Ordering::Relaxed);
        stats.acquires.fetch_add(1, Ordering::Relaxed);
        stats.wait_micros_total.fetch_add(micros, Ordering::Relaxed);
        stats.wait_micros_max.fetch_max(micros, Ordering::Relaxed);
    }
}

/// Counters of the statements this pool has run, fed by sea-orm's metric callback.
#[derive(Debug, Default)]
pub struct StatementStats {
    executed: AtomicU64,
    failed: AtomicU64,
    slow: AtomicU64,
}

impl StatementStats {
    /// Statements run so far.
    pub fn executed(&self) -> u64 {
        self.executed.load(Ordering::Relaxed)
    }

    /// Statements that returned an error.
    pub fn failed(&self) -> u64 {
        self.failed.load(Ordering::Relaxed)
    }

    /// Statements slower than the configured threshold.
    pub fn slow(&self) -> u64 {
        self.slow.load(Ordering::Relaxed)
    }
}

/// The pool and what the repositories need to know about it. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Database {
    conn: DatabaseConnection,
    backend: Backend,
    min_connections: u32,
    max_connections: u32,
    stats: Arc<StatementStats>,
    availability: Arc<Availability>,
    probe_target: ProbeTarget,
    acquire: Arc<AcquireStats>,
}

/// Key of the advisory lock that serialises migrations across instances.
const MIGRATION_LOCK_KEY: i64 = 0x7265_6e74_616c_0001;

impl Database {
    /// Opens the pool described by `config`. For SQLite the file's directory is created when missing, and the
    /// database runs in WAL mode so readers never wait for the writer.
    ///
    /// # Errors
    /// [`RepoError::Config`] for an unusable URL or directory; [`RepoError::Database`] when the database cannot
    /// be reached.
    pub async fn connect(config: &DatabaseConfig) -> RepoResult<Self> {
        let backend = backend_of(&config.url)?;
        if backend == Backend::Sqlite {
            ensure_sqlite_dir(&config.url)?;
        }
        let (default_min, default_max) = match backend {
            Backend::Postgres => (20, 50),
            Backend::Sqlite => (1, 8),
        };
        let max_connections = config.max_connections.unwrap_or(default_max).max(1);
        let min_connections = config.min_connections.unwrap_or(default_min).min(max_connections);

        let mut options = ConnectOptions::new(config.url.clone());
        options
            .max_connections(max_connections)
            .min_connections(min_connections)
            .acquire_timeout(Duration::from_secs(config.acquire_timeout_secs))
            .connect_timeout(Duration::from_secs(config.acquire_timeout_secs))
            .idle_timeout(Duration::from_secs(config.idle_timeout_secs))
            .max_lifetime(Duration::from_secs(config.max_lifetime_secs))
            // Pinging on every checkout costs a round trip per statement; only connections idle long enough to
            // have been dropped by the server or a firewall are pinged.
            .test_before_acquire_if_idle_for(Duration::from_secs(config.ping_after_idle_secs))
            // Statements are observed through the metric callback below; sqlx's own per-statement logging
            // would print every query at info level.
            .sqlx_logging(false);
        if backend == Backend::Sqlite {
            let busy = Duration::from_millis(config.sqlite_busy_timeout_ms);
            options.map_sqlx_sqlite_opts(move |opts| {
                opts.journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Normal)
                    .busy_timeout(busy)
                    .foreign_keys(true)
            });
        }
        let jit = if config.postgres_jit { "on" } else { "off" };
        let probe_target = match backend {
            Backend::Postgres => {
                options.map_sqlx_postgres_opts(move |opts| opts.options([("jit", jit)]));
                ProbeTarget::postgres(&config.url, jit)?
            }
            Backend::Sqlite => ProbeTarget::Sqlite,
        };
        // The pool retries a refused connection until its acquire timeout and then reports only that it timed
        // out; one direct attempt first fails at once with the server's own reason.
        probe_target.check(Duration::from_secs(config.acquire_timeout_secs)).await?;
        let mut conn = sea_orm::Database::connect(options).await?;

        let stats = Arc::new(StatementStats::default());
        let slow_after = Duration::from_millis(config.slow_statement_ms);
        let counters = Arc::clone(&stats);
        conn.set_metric_callback(move |info| {
            counters.executed.fetch_add(1, Ordering::Relaxed);
            if info.failed {
                counters.failed.fetch_add(1, Ordering::Relaxed);
            }
            if info.elapsed >= slow_after {
                counters.slow.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    elapsed_ms = info.elapsed.as_millis() as u64,
                    sql = %info.statement.sql,
                    "slow statement"
                );
            }
        });
        Ok(Self {
            conn,
            backend,
            min_connections,
            max_connections,
            stats,
            availability: Arc::default(),
            probe_target,
            acquire: Arc::default(),
        })
    }

    /// The sea-orm connection, for code in this crate and for embedders who need raw access.
    pub fn connection(&self) -> &DatabaseConnection {
        &self.conn
    }

    /// Which backend this is.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Waits for a connection in [`Database::begin`].
    pub(crate) fn acquire_stats(&self) -> &AcquireStats {
        &self.acquire
    }

    /// Statement counters of this pool.
    pub fn statement_stats(&self) -> &StatementStats {
        &self.stats
    }

    /// Whether the database answers, as [`Database::start_probe`] keeps it; always available without a probe.
    pub fn availability(&self) -> &Availability {
        &self.availability
    }

    /// The pool's current state.
    pub fn pool_stats(&self) -> PoolStats {
        let (size, idle) = match self.backend {
            Backend::Postgres => {
                let pool = self.conn.get_postgres_connection_pool();
                (pool.size(), u32::try_from(pool.num_idle()).unwrap_or(u32::MAX))
            }
            Backend::Sqlite => {
                let pool = self.conn.get_sqlite_connection_pool();
                (pool.size(), u32::try_from(pool.num_idle()).unwrap_or(u32::MAX))
            }
        };
        PoolStats {
            size,
            idle: idle.min(size),
            in_use: size.saturating_sub(idle),
            min_connections: self.min_connections,
            max_connections: self.max_connections,
            overflow: size.saturating_sub(self.min_connections),
            waiting: self.acquire.waiting.load(Ordering::Relaxed),
            acquires: self.acquire.acquires.load(Ordering::Relaxed),
            acquire_wait_micros_total: self.acquire.wait_micros_total.load(Ordering::Relaxed),
            acquire_wait_micros_max: self.acquire.wait_micros_max.load(Ordering::Relaxed),
        }
    }

    /// Runs `SELECT 1` and returns how long it took.
    ///
    /// # Errors
    /// [`RepoError::Database`] when the database does not answer.
    pub async fn ping(&self) -> RepoResult<Duration> {
        let started = Instant::now();
        self.conn.execute_unprepared("SELECT 1").await?;
        Ok(started.elapsed())
    }

    /// Applies pending migrations. On PostgreSQL an advisory lock, taken with exponential backoff and jitter,
    /// makes instances that start together migrate one after the other.
    ///
    /// # Errors
    /// [`RepoError::LockTimeout`] when another instance holds the lock for too long; [`RepoError::Database`]
    /// when a migration fails.
    pub async fn migrate(&self, policy: &BackoffPolicy) -> RepoResult<()> {
        match self.backend {
            Backend::Postgres => {
                with_advisory_lock(&self.conn, MIGRATION_LOCK_KEY, "migrations", policy, async {
                    Migrator::up(&self.conn, None).await.map_err(RepoError::from)
                })
                .await
            }
            // One process owns an SQLite file; its writer lock already serialises the statements.
            Backend::Sqlite => Migrator::up(&self.conn, None).await.map_err(RepoError::from),
        }
    }

    /// Runs `work` while holding the named advisory lock `key`, so that only one instance does it at a time.
    /// On PostgreSQL the lock is taken with exponential backoff and jitter per `policy`; on SQLite, which one
    /// process owns, `work` simply runs.
    ///
    /// # Errors
    /// [`RepoError::LockTimeout`] when the lock stays taken beyond the policy; otherwise what `work` returns.
    pub async fn with_advisory_lock<T>(
        &self,
        key: i64,
        name: &str,
        policy: &BackoffPolicy,
        work: impl Future<Output = RepoResult<T>>,
    ) -> RepoResult<T> {
        match self.backend {
            Backend::Postgres => with_advisory_lock(&self.conn, key, name, policy, work).await,
            Backend::Sqlite => work.await,
        }
    }

    /// Migrations not yet applied, by name.
    ///
    /// # Errors
    /// [`RepoError::Database`] when the migration table cannot be read.
    pub async fn pending_migrations(&self) -> RepoResult<Vec<String>> {
        let pending = Migrator::get_pending_migrations(&self.conn).await?;
        Ok(pending.iter().map(|m| m.name().to_owned()).collect())
    }

    /// Closes every connection of the pool.
    ///
    /// # Errors
    /// [`RepoError::Database`] when closing fails.
    pub async fn close(self) -> RepoResult<()> {
        self.conn.close().await.map_err(RepoError::from)
    }
}

fn backend_of(url: &str) -> RepoResult<Backend> {
    if url.starts_with("sqlite:") {
        Ok(Backend::Sqlite)
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Backend::Postgres)
    } else {
        Err(RepoError::Config(format!(
            "database.url must start with sqlite: or postgres://, got `{}`",
            url.split(':').next().unwrap_or_default()
        )))
    }
}

/// Creates the directory of an SQLite file URL (`sqlite://data/rental.db?mode=rwc`).
fn ensure_sqlite_dir(url: &str) -> RepoResult<()> {
    let path = url.trim_start_matches("sqlite:").trim_start_matches("//");
    let path = path.split('?').next().unwrap_or_default();
    if path.is_empty() || path == ":memory:" {
        return Ok(());
    }
    if let Some(dir) = Path::new(path).parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| RepoError::Config(format!("cannot create data directory {}: {e}", dir.display())))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backends_are_recognised_from_the_url() {
        assert_eq!(backend_of("sqlite://data/x.db?mode=rwc").unwrap(), Backend::Sqlite);
        assert_eq!(backend_of("postgres://u@h/db").unwrap(), Backend::Postgres);
        assert_eq!(backend_of("postgresql://u@h/db").unwrap(), Backend::Postgres);
        assert!(matches!(backend_of("mysql://u@h/db"), Err(RepoError::Config(_))));
    }
}
