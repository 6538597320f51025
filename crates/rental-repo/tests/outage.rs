//! The database lost and back, on a PostgreSQL server of the test's own (stopped and started with `pg_ctl`):
//! the probe marks it unavailable, then available again, and after its return the pool hands out only live
//! connections. Runs in the PostgreSQL pass (TEST_DATABASE_URL set); SQLite is a file of the process and is not
//! probed, which the last test checks.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use futures_util::future::join_all;
use rental_repo::{Database, DatabaseConfig, ProbeSettings, RepoError};
use rental_testkit::{PgServer, TEST_DATABASE_URL, TestDb};

const PROBE: ProbeSettings =
    ProbeSettings { interval: Duration::from_millis(100), timeout: Duration::from_millis(500) };

fn postgres_pass() -> bool {
    std::env::var(TEST_DATABASE_URL).is_ok_and(|url| !url.trim().is_empty())
}

/// Polls `condition` until it holds, failing the test after a minute.
async fn eventually(what: &str, condition: impl Fn() -> bool) -> Duration {
    let started = Instant::now();
    while !condition() {
        assert!(started.elapsed() < Duration::from_secs(60), "{what} did not happen within a minute");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    started.elapsed()
}

#[tokio::test]
async fn the_probe_follows_an_outage_and_the_pool_recovers_with_live_connections() {
    if !postgres_pass() {
        return;
    }
    let server = PgServer::start();
    let config = DatabaseConfig {
        max_connections: Some(4),
        min_connections: Some(4),
        acquire_timeout_secs: 2,
        ..DatabaseConfig::with_url(server.url())
    };
    let db = Database::connect(&config).await.unwrap();
    let probe = db.start_probe(PROBE).expect("PostgreSQL is probed");
    // Four connections open and idle, as after a busy spell.
    join_all((0..4).map(|_| db.ping())).await.into_iter().for_each(|r| assert!(r.is_ok()));
    assert!(db.availability().is_up());

    server.stop();
    eventually("the probe noticing the outage", || !db.availability().is_up()).await;
    assert!(db.availability().down_since().is_some());
    assert!(db.availability().last_error().is_some());
    let err: RepoError = db.ping().await.unwrap_err();
    assert!(err.is_unavailable() || err.is_busy(), "an outage is unavailable or busy, never a plain failure: {err:?}");

    server.start_again();
    let back = eventually("the probe noticing the return", || db.availability().is_up()).await;
    println!("availability came back {} ms after the server accepted connections again", back.as_millis());
    // Every connection the pool hands out now is live: the ones broken by the restart were closed.
    for round in 0..3 {
        let results = join_all((0..4).map(|_| db.ping())).await;
        for result in results {
            assert!(result.is_ok(), "round {round}: {result:?}");
        }
    }
    probe.stop().await;
}

#[tokio::test]
async fn sqlite_is_not_probed_and_always_available() {
    if postgres_pass() {
        return;
    }
    let test_db = TestDb::new().await;
    let db = Database::connect(&DatabaseConfig::with_url(test_db.url())).await.unwrap();
    assert!(db.start_probe(PROBE).is_none());
    assert!(db.availability().is_up());
}
