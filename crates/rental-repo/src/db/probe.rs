//! Whether the database answers: a probe on a connection of its own, outside the pool, so that a saturated pool
//! never looks like a lost database and a lost database is known within a probe interval rather than after the
//! pool's acquire timeout.

use std::future::Future;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sea_orm::sqlx::postgres::{PgConnectOptions, PgConnection};
use sea_orm::sqlx::{ConnectOptions as _, Connection as _};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::db::Database;
use crate::{RepoError, RepoResult};

/// The database's availability as the probe last saw it. Reading it is one atomic load, cheap enough for every
/// request.
#[derive(Debug)]
pub struct Availability {
    /// 0 while available; otherwise when it became unavailable, in milliseconds since the Unix epoch.
    down_since_ms: AtomicU64,
    /// Why the last probe failed.
    last_error: Mutex<Option<String>>,
    /// Whether a probe keeps this current (PostgreSQL); without one the database is always available.
    probed: AtomicBool,
    /// True while down, for the requests in flight that wait for the loss ([`Availability::lost`]).
    down: watch::Sender<bool>,
}

impl Default for Availability {
    fn default() -> Self {
        Self {
            down_since_ms: AtomicU64::new(0),
            last_error: Mutex::new(None),
            probed: AtomicBool::new(false),
            down: watch::Sender::new(false),
        }
    }
}

impl Availability {
    /// Whether a probe keeps this current: without one, [`Availability::lost`] never completes.
    pub fn is_probed(&self) -> bool {
        self.probed.load(Ordering::Relaxed)
    }

    /// Completes when the probe finds the database lost (at once if it is lost now): a request in flight races
    /// its work against it to answer 503 within a probe interval instead of waiting for the pool's acquire
    /// timeout. Never completes while the database answers or without a probe.
    pub fn lost(&self) -> impl Future<Output = ()> + Send + use<> {
        let mut down = self.down.subscribe();
        async move {
            if down.wait_for(|down| *down).await.is_err() {
                // The availability is gone (the process is stopping): never "lost".
                std::future::pending::<()>().await;
            }
        }
    }

    /// Whether the database answered the last probe (always true without a probe).
    pub fn is_up(&self) -> bool {
        self.down_since_ms.load(Ordering::Relaxed) == 0
    }

    /// Since when the database has not answered, if it has not.
    pub fn down_since(&self) -> Option<SystemTime> {
        match self.down_since_ms.load(Ordering::Relaxed) {
            0 => None,
            ms => Some(UNIX_EPOCH + Duration::from_millis(ms)),
        }
    }

    /// Why the last failed probe failed, while the database is down.
    pub fn last_error(&self) -> Option<String> {
        if self.is_up() {
            return None;
        }
        self.last_error.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Records a failed probe; true when this is the change from up to down.
    fn mark_down(&self, error: String) -> bool {
        *self.last_error.lock().unwrap_or_else(PoisonError::into_inner) = Some(error);
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(1, |d| d.as_millis().max(1));
        let now = u64::try_from(now).unwrap_or(u64::MAX);
        let changed = self.down_since_ms.compare_exchange(0, now, Ordering::Relaxed, Ordering::Relaxed).is_ok();
        if changed {
            self.down.send_replace(true);
        }
        changed
    }

    /// Records a successful probe; true when this is the change from down to up.
    fn mark_up(&self) -> bool {
        let changed = self.down_since_ms.swap(0, Ordering::Relaxed) != 0;
        if changed {
            self.down.send_replace(false);
        }
        changed
    }
}

/// How the probe runs: the `probe_*` keys of [`crate::DatabaseConfig`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeSettings {
    /// Time between probes.
    pub interval: Duration,
    /// How long one probe (connecting included) may take before it counts as failed.
    pub timeout: Duration,
}

/// The running probe; stops when [`Probe::stop`] is called or when it is dropped.
#[derive(Debug)]
pub struct Probe {
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl Probe {
    /// Stops the probe and waits for it to end.
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// What the probe connects with.
#[derive(Debug, Clone)]
pub(crate) enum ProbeTarget {
    /// A PostgreSQL server, reached with the pool's own options.
    Postgres(Box<PgConnectOptions>),
    /// An SQLite file: part of this process, so it cannot be lost the way a server can; not probed.
    Sqlite,
}

impl ProbeTarget {
    pub(crate) fn postgres(url: &str, jit: &str) -> RepoResult<Self> {
        let options = PgConnectOptions::from_str(url)
            .map_err(|e| RepoError::Config(format!("database URL: {e}")))?
            .options([("jit", jit)]);
        Ok(Self::Postgres(Box::new(options)))
    }
}

impl ProbeTarget {
    /// Connects once, without the pool's retries, so that a server that is down or refuses is reported at
    /// once and with its own reason.
    pub(crate) async fn check(&self, timeout: Duration) -> RepoResult<()> {
        let Self::Postgres(options) = self else { return Ok(()) };
        let result = match tokio::time::timeout(timeout, options.connect()).await {
            Ok(Ok(conn)) => {
                let _ = conn.close().await;
                return Ok(());
            }
            Ok(Err(err)) => err,
            Err(_) => sea_orm::sqlx::Error::PoolTimedOut,
        };
        Err(sea_orm::DbErr::Conn(sea_orm::RuntimeErr::SqlxError(std::sync::Arc::new(result))).into())
    }
}

impl Database {
    /// Starts probing the database every `settings.interval` on a connection of its own, keeping
    /// [`Database::availability`] current. When the database stops answering, and again when it is back, idle
    /// pooled connections are checked and the broken ones closed, so that requests after its return get live
    /// connections. `None` for SQLite, which is not probed (it is always available).
    ///
    /// Must be called inside a tokio runtime.
    pub fn start_probe(&self, settings: ProbeSettings) -> Option<Probe> {
        let ProbeTarget::Postgres(options) = self.probe_target.clone() else { return None };
        self.availability.probed.store(true, Ordering::Relaxed);
        let (stop, mut stopped) = watch::channel(false);
        let db = self.clone();
        let task = tokio::spawn(async move {
            let mut conn: Option<PgConnection> = None;
            let mut ticker = tokio::time::interval(settings.interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = ticker.tick() => {}
                    _ = stopped.changed() => break,
                }
                let started = Instant::now();
                match probe_once(&mut conn, &options, settings.timeout).await {
                    Ok(()) => {
                        if db.availability.mark_up() {
                            let closed = db.close_broken_idle(settings.timeout).await;
                            tracing::info!(closed_connections = closed, "the database answers again");
                        }
                    }
                    Err(error) => {
                        conn = None;
                        if db.availability.mark_down(error.clone()) {
                            tracing::warn!(
                                %error,
                                elapsed_ms = started.elapsed().as_millis() as u64,
                                "the database does not answer: requests fail fast with 503 until it does"
                            );
                            db.close_broken_idle(settings.timeout).await;
                        }
                    }
                }
            }
            if let Some(conn) = conn {
                let _ = conn.close().await;
            }
        });
        Some(Probe { stop, task: Some(task) })
    }

    /// Pings every idle pooled connection once and closes those that do not answer; returns how many it closed.
    async fn close_broken_idle(&self, timeout: Duration) -> usize {
        let pool = self.conn.get_postgres_connection_pool();
        let mut checked = Vec::new();
        let mut closed = 0;
        for _ in 0..pool.num_idle() {
            let Some(mut conn) = pool.try_acquire() else { break };
            if !matches!(tokio::time::timeout(timeout, conn.ping()).await, Ok(Ok(()))) {
                conn.close_on_drop();
                closed += 1;
            }
            // Held until all are checked, so that none is checked twice.
            checked.push(conn);
        }
        closed
    }
}

/// One probe: (re)connects when needed and pings, within `timeout`.
async fn probe_once(
    conn: &mut Option<PgConnection>,
    options: &PgConnectOptions,
    timeout: Duration,
) -> Result<(), String> {
    let attempt = async {
        if conn.is_none() {
            *conn = Some(options.connect().await.map_err(|e| e.to_string())?);
        }
        match conn.as_mut() {
            Some(live) => live.ping().await.map_err(|e| e.to_string()),
            None => Err("no connection".to_owned()),
        }
    };
    match tokio::time::timeout(timeout, attempt).await {
        Ok(result) => result,
        Err(_) => Err(format!("no answer within {} ms", timeout.as_millis())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn availability_records_changes_once() {
        let availability = Availability::default();
        assert!(availability.is_up() && availability.down_since().is_none() && availability.last_error().is_none());
        assert!(availability.mark_down("refused".into()), "up → down is a change");
        let since = availability.down_since().unwrap();
        assert!(!availability.mark_down("still refused".into()), "down → down is not");
        assert_eq!(availability.down_since(), Some(since), "since when stays the first failure");
        assert_eq!(availability.last_error().as_deref(), Some("still refused"));
        assert!(!availability.is_up());
        assert!(availability.mark_up(), "down → up is a change");
        assert!(!availability.mark_up());
        assert!(availability.is_up() && availability.last_error().is_none());
    }

    #[tokio::test]
    async fn lost_completes_when_the_database_is_found_lost_and_at_once_while_it_is() {
        async fn still_up(availability: &Availability) -> bool {
            tokio::time::timeout(Duration::from_millis(50), availability.lost()).await.is_err()
        }
        let availability = Availability::default();
        assert!(still_up(&availability).await, "up: a request in flight goes on");
        let waiting = tokio::spawn(availability.lost());
        availability.mark_down("refused".into());
        waiting.await.unwrap();
        availability.lost().await;
        availability.mark_up();
        assert!(still_up(&availability).await, "back up: requests go on again");
    }
}
