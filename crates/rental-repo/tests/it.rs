//! Repository tests on a real database: SQLite by default, PostgreSQL when TEST_DATABASE_URL is set.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use chrono::Utc;
use common::connect;
use rental_domain::{Email, FullName, Role};
use rental_repo::{
    BackoffPolicy, Database, DatabaseConfig, NewRefreshToken, NewUserRecord, RefreshTokenRepo, RefreshTokenStore,
    RepoError, RepoResult, UserRecord, UserRepo, UserStore, user_list_spec,
};
use rental_testkit::TestDb;

fn new_user(email: &str, roles: &[Role]) -> NewUserRecord {
    NewUserRecord {
        email: Email::parse(email).unwrap(),
        full_name: FullName::parse(&format!("User {email}")).unwrap(),
        password_hash: Some("$argon2id$fake".into()),
        is_active: true,
        is_superuser: false,
        roles: roles.to_vec(),
    }
}

async fn create(repo: &UserRepo, new: NewUserRecord) -> RepoResult<UserRecord> {
    repo.database().write(async |uow| repo.create(uow, new, Utc::now()).await).await
}

fn params(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

#[tokio::test]
async fn listing_costs_a_constant_number_of_statements() {
    let test_db = TestDb::new().await;
    let db = connect(&test_db).await;
    let repo = UserRepo::new(db.clone());
    let rows: Vec<_> =
        (0..120).map(|i| new_user(&format!("n{i:03}@example.com"), &[Role::Customer, Role::Staff])).collect();
    repo.database().write(async |uow| repo.bulk_create(uow, rows, Utc::now()).await).await.unwrap();

    let mut costs = Vec::new();
    for per_page in ["1", "10", "100"] {
        let query = user_list_spec().parse(&params(&[("per_page", per_page)])).unwrap();
        let before = db.statement_stats().executed();
        let listing = repo.list(&query).await.unwrap();
        costs.push(db.statement_stats().executed() - before);
        assert_eq!(listing.items().len(), per_page.parse::<usize>().unwrap());
        assert!(listing.items().iter().all(|u| u.roles == vec![Role::Staff, Role::Customer]));
    }
    assert_eq!(costs, vec![3, 3, 3], "count + page + roles, whatever the page size");

    let query = user_list_spec().parse(&params(&[("limit", "100"), ("include_total", "false")])).unwrap();
    let before = db.statement_stats().executed();
    repo.list(&query).await.unwrap();
    assert_eq!(db.statement_stats().executed() - before, 2, "keyset without total skips the count");
}

#[tokio::test]
async fn a_unique_constraint_without_a_client_message_gets_the_generic_one() {
    let test_db = TestDb::new().await;
    let db = connect(&test_db).await;
    let user = create(&UserRepo::new(db.clone()), new_user("t@example.com", &[])).await.unwrap();
    let tokens = RefreshTokenRepo::new(db.clone());
    let token = || NewRefreshToken {
        user_id: user.id,
        family_id: uuid::Uuid::now_v7(),
        token_hash: "b".repeat(64),
        expires_at: chrono::Utc::now() + chrono::Duration::days(1),
    };
    let insert = async || db.write(async |uow| tokens.insert(uow, token(), Utc::now()).await).await;
    insert().await.unwrap();
    let err = insert().await.unwrap_err();
    assert!(
        matches!(&err, RepoError::Conflict { message, .. } if message == "the record clashes with an existing one"),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_locked_database_is_busy_not_a_failure() {
    use sea_orm::{ConnectionTrait as _, TransactionTrait as _};

    let test_db = TestDb::new().await;
    let holder = connect(&test_db).await;
    // The second pool gives up at once instead of waiting for SQLite's busy timeout.
    let config = DatabaseConfig { sqlite_busy_timeout_ms: 0, ..DatabaseConfig::with_url(test_db.url()) };
    let waiter = Database::connect(&config).await.unwrap();
    let users = UserRepo::new(waiter.clone());
    let tx = holder.connection().begin().await.unwrap();
    let err = if test_db.is_postgres() {
        tx.execute_unprepared("LOCK TABLE users IN ACCESS EXCLUSIVE MODE").await.unwrap();
        let waiting = waiter.connection().begin().await.unwrap();
        let err = waiting.execute_unprepared("LOCK TABLE users IN ACCESS EXCLUSIVE MODE NOWAIT").await.unwrap_err();
        RepoError::from(err)
    } else {
        // Any write takes SQLite's single write lock until the transaction ends.
        tx.execute_unprepared("UPDATE users SET full_name = full_name").await.unwrap();
        create(&users, new_user("busy@example.com", &[])).await.unwrap_err()
    };
    assert!(matches!(err, RepoError::Busy(_)), "{err:?}");
    assert!(err.is_busy());
    let cause = std::error::Error::source(&err).map(ToString::to_string).unwrap_or_default();
    assert!(cause.contains("lock"), "the database's own error stays in the chain: {cause}");
    tx.rollback().await.unwrap();
    create(&users, new_user("busy@example.com", &[])).await.unwrap();
}

#[tokio::test]
async fn migrations_are_idempotent_and_pool_stats_are_sane() {
    let test_db = TestDb::new().await;
    let db = connect(&test_db).await;
    db.migrate(&BackoffPolicy::default()).await.unwrap();
    assert!(db.pending_migrations().await.unwrap().is_empty());
    db.ping().await.unwrap();
    let stats = db.pool_stats();
    assert!(stats.size >= 1 && stats.size <= stats.max_connections, "{stats:?}");
    assert_eq!(stats.in_use + stats.idle, stats.size);
    assert_eq!(stats.max_connections, 5);
}

#[tokio::test]
async fn callers_waiting_for_a_connection_are_counted_and_their_wait_timed() {
    let test_db = TestDb::new().await;
    let config = DatabaseConfig {
        max_connections: Some(1),
        min_connections: Some(0),
        ..DatabaseConfig::with_url(test_db.url())
    };
    let db = Database::connect(&config).await.unwrap();
    let before = db.pool_stats();
    assert_eq!((before.waiting, before.acquires), (0, 0));

    // The only connection is taken, so a second unit of work waits for it.
    let first = db.begin().await.unwrap();
    let waiter = tokio::spawn({
        let db = db.clone();
        async move { db.begin().await.unwrap().rollback().await }
    });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while db.pool_stats().waiting == 0 && std::time::Instant::now() < deadline {
        tokio::task::yield_now().await;
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    let during = db.pool_stats();
    assert_eq!(during.waiting, 1, "{during:?}");
    assert_eq!(during.in_use, 1, "{during:?}");

    first.rollback().await;
    waiter.await.unwrap();
    let after = db.pool_stats();
    assert_eq!(after.waiting, 0, "{after:?}");
    assert_eq!(after.acquires, 2, "{after:?}");
    assert!(after.acquire_wait_micros_max > 0 && after.acquire_wait_micros_max <= after.acquire_wait_micros_total);
}

#[tokio::test]
async fn advisory_lock_serialises_holders_and_gives_up_after_the_policy() {
    let test_db = TestDb::new().await;
    if !test_db.is_postgres() {
        // The advisory lock exists only on PostgreSQL; on SQLite the work runs directly.
        let db = connect(&test_db).await;
        let ran = db.with_advisory_lock(7, "test", &BackoffPolicy::default(), async { Ok(true) }).await.unwrap();
        assert!(ran);
        return;
    }
    let first = connect(&test_db).await;
    let second = connect(&test_db).await;
    let first_done = Arc::new(AtomicBool::new(false));
    let (locked_tx, locked_rx) = tokio::sync::oneshot::channel();
    let done = Arc::clone(&first_done);
    let holder = tokio::spawn(async move {
        first
            .with_advisory_lock(42, "test", &BackoffPolicy::default(), async move {
                let _ = locked_tx.send(());
                tokio::time::sleep(std::time::Duration::from_millis(300)).await;
                done.store(true, Ordering::SeqCst);
                Ok(())
            })
            .await
    });
    locked_rx.await.unwrap();

    let impatient = BackoffPolicy { initial_ms: 1, max_ms: 2, max_tries: 2, overall_ms: 50 };
    let err = second.with_advisory_lock(42, "test", &impatient, async { Ok(()) }).await.unwrap_err();
    assert!(matches!(err, RepoError::LockTimeout { tries: 2, .. }), "{err:?}");

    let saw_first_done = second
        .with_advisory_lock(42, "test", &BackoffPolicy::default(), async { Ok(first_done.load(Ordering::SeqCst)) })
        .await
        .unwrap();
    assert!(saw_first_done, "the second holder ran only after the first released the lock");
    holder.await.unwrap().unwrap();
}

#[tokio::test]
async fn instances_starting_together_migrate_once() {
    let test_db = TestDb::empty().await;
    if !test_db.is_postgres() {
        // One process owns an SQLite file; a single migration run is the case to check.
        let db = connect(&test_db).await;
        db.migrate(&BackoffPolicy::default()).await.unwrap();
        assert!(db.pending_migrations().await.unwrap().is_empty());
        return;
    }
    let instances: Vec<Database> = connect_many(4, &test_db).await;
    let policy = BackoffPolicy::default();
    let runs = instances.iter().map(|db| db.migrate(&policy));
    for result in futures_util::future::join_all(runs).await {
        result.unwrap();
    }
    assert!(instances[0].pending_migrations().await.unwrap().is_empty());
    let users = UserRepo::new(instances[1].clone());
    create(&users, new_user("after@example.com", &[Role::Customer])).await.unwrap();
}

async fn connect_many(n: usize, test_db: &TestDb) -> Vec<Database> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(connect(test_db).await);
    }
    out
}

#[tokio::test]
async fn postgres_sessions_run_without_jit_unless_configured() {
    use rental_repo::Backend;
    use sea_orm::{ConnectionTrait, Statement};
    let test_db = TestDb::new().await;
    for (jit, expected) in [(false, "off"), (true, "on")] {
        let config =
            DatabaseConfig { postgres_jit: jit, min_connections: Some(0), ..DatabaseConfig::with_url(test_db.url()) };
        let db = Database::connect(&config).await.unwrap();
        if db.backend() != Backend::Postgres {
            return;
        }
        let conn = db.connection();
        let row = conn.query_one_raw(Statement::from_string(conn.get_database_backend(), "SHOW jit")).await;
        assert_eq!(row.unwrap().unwrap().try_get_by_index::<String>(0).unwrap(), expected);
        // The URL's own options are kept: the session still works in the test's schema.
        let row = conn.query_one_raw(Statement::from_string(conn.get_database_backend(), "SHOW search_path")).await;
        let search_path = row.unwrap().unwrap().try_get_by_index::<String>(0).unwrap();
        assert!(test_db.url().contains(&format!("search_path%3D{search_path}")), "{search_path}");
    }
}
