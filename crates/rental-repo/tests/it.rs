//! Repository tests on a real database: SQLite by default, PostgreSQL when TEST_DATABASE_URL is set.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use rental_domain::{Email, FullName, Role, UserId};
use rental_repo::query::{Listing, Pagination};
use rental_repo::{
    BackoffPolicy, Database, DatabaseConfig, NewRefreshToken, NewUserRecord, RefreshTokenRepo, RepoError, UserChanges,
    UserRepo, user_list_spec,
};
use rental_testkit::TestDb;

async fn connect(test_db: &TestDb) -> Database {
    let config = DatabaseConfig {
        max_connections: Some(5),
        min_connections: Some(0),
        ..DatabaseConfig::with_url(test_db.url())
    };
    Database::connect(&config).await.unwrap()
}

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

fn params(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

#[tokio::test]
async fn users_are_created_found_updated_and_deleted() {
    let test_db = TestDb::new().await;
    let repo = UserRepo::new(connect(&test_db).await);
    let created = repo.create(new_user("Ada@Example.com", &[Role::Customer, Role::Staff])).await.unwrap();
    assert_eq!(created.email, "ada@example.com");
    assert_eq!(created.roles, vec![Role::Staff, Role::Customer]);

    let found = repo.find_by_email(&Email::parse("ADA@example.COM").unwrap()).await.unwrap().unwrap();
    assert_eq!(found, created);

    let changed = repo
        .update(
            created.id,
            UserChanges {
                full_name: Some(FullName::parse("Ada L").unwrap()),
                is_active: Some(false),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(changed.full_name, "Ada L");
    assert!(!changed.is_active);
    assert!(changed.updated_at >= created.updated_at);

    let with_roles = repo.set_roles(created.id, &[Role::Admin, Role::Admin]).await.unwrap();
    assert_eq!(with_roles.roles, vec![Role::Admin]);

    repo.delete(created.id).await.unwrap();
    assert!(repo.find(created.id).await.unwrap().is_none());
    assert!(matches!(repo.delete(created.id).await, Err(RepoError::NotFound)));
    assert!(matches!(repo.update(UserId::new(), UserChanges::default()).await, Err(RepoError::NotFound)));
    assert!(matches!(repo.set_roles(UserId::new(), &[Role::Staff]).await, Err(RepoError::NotFound)));
}

#[tokio::test]
async fn emails_are_unique_regardless_of_case() {
    let test_db = TestDb::new().await;
    let repo = UserRepo::new(connect(&test_db).await);
    repo.create(new_user("bob@example.com", &[])).await.unwrap();
    let err = repo.create(new_user("BOB@example.com", &[])).await.unwrap_err();
    // The message is chosen by the constraint's name (PostgreSQL) or its `table.column` (SQLite).
    assert!(
        matches!(&err, RepoError::Conflict { message, index: None } if message == "a user with this e-mail address already exists"),
        "{err:?}"
    );

    let other = repo.create(new_user("carol@example.com", &[])).await.unwrap();
    let err = repo
        .update(other.id, UserChanges { email: Some(Email::parse("Bob@Example.com").unwrap()), ..Default::default() })
        .await
        .unwrap_err();
    assert!(matches!(err, RepoError::Conflict { .. }), "{err:?}");
}

#[tokio::test]
async fn bulk_create_is_all_or_nothing_and_names_the_bad_row() {
    let test_db = TestDb::new().await;
    let repo = UserRepo::new(connect(&test_db).await);
    repo.create(new_user("taken@example.com", &[])).await.unwrap();

    let mut rows: Vec<_> = (0..2500).map(|i| new_user(&format!("bulk{i}@example.com"), &[Role::Customer])).collect();
    rows[1700] = new_user("TAKEN@example.com", &[]);
    match repo.bulk_create(rows).await.unwrap_err() {
        RepoError::Conflict { index, .. } => assert_eq!(index, Some(1700)),
        other => panic!("unexpected {other:?}"),
    }
    let mut rows: Vec<_> = (0..30).map(|i| new_user(&format!("dup{i}@example.com"), &[])).collect();
    rows[20] = new_user("Dup3@example.com", &[]);
    match repo.bulk_create(rows).await.unwrap_err() {
        RepoError::Conflict { index, .. } => assert_eq!(index, Some(20)),
        other => panic!("unexpected {other:?}"),
    }
    let all = repo.list(&user_list_spec().parse(&[]).unwrap()).await.unwrap();
    let Listing::Offset(page) = all else { panic!("offset expected") };
    assert_eq!(page.total, 1, "nothing of the failed batches was written");

    let rows: Vec<_> = (0..2500).map(|i| new_user(&format!("bulk{i}@example.com"), &[Role::Customer])).collect();
    assert_eq!(repo.bulk_create(rows).await.unwrap(), 2500);
    let customers = repo.list(&user_list_spec().parse(&params(&[("role", "customer")])).unwrap()).await.unwrap();
    let Listing::Offset(page) = customers else { panic!("offset expected") };
    assert_eq!(page.total, 2500);
}

#[tokio::test]
async fn listing_costs_a_constant_number_of_statements() {
    let test_db = TestDb::new().await;
    let db = connect(&test_db).await;
    let repo = UserRepo::new(db.clone());
    let rows: Vec<_> =
        (0..120).map(|i| new_user(&format!("n{i:03}@example.com"), &[Role::Customer, Role::Staff])).collect();
    repo.bulk_create(rows).await.unwrap();

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
async fn keyset_pages_walk_every_row_once_in_order() {
    let test_db = TestDb::new().await;
    let repo = UserRepo::new(connect(&test_db).await);
    let rows: Vec<_> = (0..57).map(|i| new_user(&format!("k{:02}@example.com", (i * 37) % 57), &[])).collect();
    // Separate batches give distinct created_at values as well as ties within a batch.
    let (first, second) = rows.split_at(30);
    repo.bulk_create(first.to_vec()).await.unwrap();
    repo.bulk_create(second.to_vec()).await.unwrap();

    for sort in ["email", "-email", "created_at", "-created_at", "full_name"] {
        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut p = vec![("sort", sort), ("limit", "10")];
            if let Some(c) = &cursor {
                p.push(("cursor", c));
            }
            let query = user_list_spec().parse(&params(&p)).unwrap();
            let Listing::Keyset(page) = repo.list(&query).await.unwrap() else { panic!("keyset expected") };
            assert_eq!(page.total, Some(57));
            seen.extend(page.items.into_iter().map(|u| (u.email, u.created_at, u.id)));
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        assert_eq!(seen.len(), 57, "sort {sort}");
        let mut expected = seen.clone();
        match sort {
            "email" | "full_name" => expected.sort_by_key(|a| a.0.clone()),
            "-email" => expected.sort_by_key(|a| std::cmp::Reverse(a.0.clone())),
            "created_at" => expected.sort_by_key(|a| (a.1, a.2)),
            _ => expected.sort_by_key(|a| std::cmp::Reverse((a.1, a.2))),
        }
        assert_eq!(seen, expected, "sort {sort}");
    }
}

#[tokio::test]
async fn filters_and_search_narrow_the_list() {
    let test_db = TestDb::new().await;
    let repo = UserRepo::new(connect(&test_db).await);
    repo.create(new_user("alice@example.com", &[Role::Admin])).await.unwrap();
    let bob = repo.create(new_user("bob@example.com", &[Role::Staff])).await.unwrap();
    repo.create(new_user("carol_50%@example.com", &[Role::Customer])).await.unwrap();
    repo.update(bob.id, UserChanges { is_active: Some(false), ..Default::default() }).await.unwrap();

    let emails = |listing: Listing<rental_repo::UserRecord>| -> Vec<String> {
        let mut v: Vec<_> = listing.items().iter().map(|u| u.email.clone()).collect();
        v.sort();
        v
    };
    let run = |pairs: Vec<(&'static str, String)>| {
        let repo = repo.clone();
        async move {
            let p: Vec<(String, String)> = pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
            repo.list(&user_list_spec().parse(&p).unwrap()).await.unwrap()
        }
    };
    assert_eq!(emails(run(vec![("is_active", "false".into())]).await), vec!["bob@example.com"]);
    assert_eq!(emails(run(vec![("role", "admin".into())]).await), vec!["alice@example.com"]);
    assert_eq!(emails(run(vec![("q", "USER BOB".into())]).await), vec!["bob@example.com"]);
    assert_eq!(emails(run(vec![("q", "50%".into())]).await), vec!["carol_50%@example.com"]);
    assert_eq!(emails(run(vec![("q", "_".into())]).await), vec!["carol_50%@example.com"], "wildcards are literal");
    let future = (chrono::Utc::now() + chrono::Duration::days(1)).to_rfc3339();
    assert!(emails(run(vec![("created_after", future.clone())]).await).is_empty());
    assert_eq!(emails(run(vec![("created_before", future)]).await).len(), 3);
    assert!(repo.any_admin().await.unwrap());
}

#[tokio::test]
async fn offset_pages_report_totals_and_pages() {
    let test_db = TestDb::new().await;
    let repo = UserRepo::new(connect(&test_db).await);
    let rows: Vec<_> = (0..45).map(|i| new_user(&format!("o{i:02}@example.com"), &[])).collect();
    repo.bulk_create(rows).await.unwrap();
    let query = user_list_spec().parse(&params(&[("page", "3"), ("per_page", "20"), ("sort", "email")])).unwrap();
    assert_eq!(query.pagination, Pagination::Offset { page: 3, per_page: 20 });
    let Listing::Offset(page) = repo.list(&query).await.unwrap() else { panic!("offset expected") };
    assert_eq!((page.total, page.pages, page.items.len()), (45, 3, 5));
    assert_eq!(page.items[0].email, "o40@example.com");
    let query = user_list_spec().parse(&params(&[("page", "99")])).unwrap();
    assert!(repo.list(&query).await.unwrap().items().is_empty());
}

#[tokio::test]
async fn refresh_tokens_are_used_once_and_revoked_by_family() {
    let test_db = TestDb::new().await;
    let db = connect(&test_db).await;
    let users = UserRepo::new(db.clone());
    let tokens = RefreshTokenRepo::new(db);
    let user = users.create(new_user("t@example.com", &[])).await.unwrap();
    let family = uuid::Uuid::now_v7();
    let expires_at = chrono::Utc::now() + chrono::Duration::days(1);
    let id = tokens
        .insert(NewRefreshToken { user_id: user.id, family_id: family, token_hash: "a".repeat(64), expires_at })
        .await
        .unwrap();
    let found = tokens.find_by_hash(&"a".repeat(64)).await.unwrap().unwrap();
    assert_eq!((found.id, found.family_id, found.user_id), (id, family, user.id));
    assert!(tokens.mark_used(id).await.unwrap());
    assert!(!tokens.mark_used(id).await.unwrap(), "a token is used once");
    assert_eq!(tokens.revoke_family(family).await.unwrap(), 1);
    assert!(tokens.find_by_hash(&"a".repeat(64)).await.unwrap().unwrap().revoked_at.is_some());
    assert_eq!(tokens.delete_expired(expires_at + chrono::Duration::seconds(1)).await.unwrap(), 1);
    assert!(tokens.find_by_hash(&"a".repeat(64)).await.unwrap().is_none());
}

#[tokio::test]
async fn a_unique_constraint_without_a_client_message_gets_the_generic_one() {
    let test_db = TestDb::new().await;
    let db = connect(&test_db).await;
    let user = UserRepo::new(db.clone()).create(new_user("t@example.com", &[])).await.unwrap();
    let tokens = RefreshTokenRepo::new(db);
    let token = || NewRefreshToken {
        user_id: user.id,
        family_id: uuid::Uuid::now_v7(),
        token_hash: "b".repeat(64),
        expires_at: chrono::Utc::now() + chrono::Duration::days(1),
    };
    tokens.insert(token()).await.unwrap();
    let err = tokens.insert(token()).await.unwrap_err();
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
        users.create(new_user("busy@example.com", &[])).await.unwrap_err()
    };
    assert!(matches!(err, RepoError::Busy(_)), "{err:?}");
    assert!(err.is_busy());
    let cause = std::error::Error::source(&err).map(ToString::to_string).unwrap_or_default();
    assert!(cause.contains("lock"), "the database's own error stays in the chain: {cause}");
    tx.rollback().await.unwrap();
    users.create(new_user("busy@example.com", &[])).await.unwrap();
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
    users.create(new_user("after@example.com", &[Role::Customer])).await.unwrap();
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
