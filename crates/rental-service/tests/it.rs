//! Service tests on a real database: SQLite by default, PostgreSQL when TEST_DATABASE_URL is set.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use rental_domain::Role;
use rental_service::{NewUser, Principal, ProfileUpdate, Registration, ServiceError, Services, UserUpdate};

mod common;

use common::{Fixture, fixture};

async fn admin(services: &Services) -> Principal {
    services.users.create_admin("root@example.com", "root-password").await.unwrap();
    let tokens = services.auth.login("root@example.com", "root-password").await.unwrap();
    services.auth.authenticate(&tokens.access_token).await.unwrap()
}

fn registration(email: &str) -> Registration {
    Registration { email: email.into(), full_name: "Jane Doe".into(), password: "jane-password".into() }
}

#[tokio::test]
async fn register_login_and_use_the_access_token() {
    let f = fixture().await;
    let user = f.services.auth.register(registration("Jane@Example.com")).await.unwrap();
    assert_eq!(user.roles, vec![Role::Customer]);
    let tokens = f.services.auth.login("jane@example.com", "jane-password").await.unwrap();
    assert_eq!(tokens.token_type, "bearer");
    let principal = f.services.auth.authenticate(&tokens.access_token).await.unwrap();
    assert_eq!(principal.user_id, user.id);
    assert!(!principal.is_admin());
    assert_eq!(f.services.users.me(&principal).await.unwrap().email, "jane@example.com");
}

#[tokio::test]
async fn cache_stats_count_hits_and_misses_per_cache() {
    let f = fixture().await;
    let principal = admin(&f.services).await;
    let users = |stats: Vec<rental_service::CacheStats>| stats.into_iter().find(|s| s.name == "users").unwrap();
    let before = users(f.services.cache_stats());
    f.services.users.me(&principal).await.unwrap();
    let after = users(f.services.cache_stats());
    assert_eq!((after.hits - before.hits, after.misses - before.misses), (1, 0), "authenticate loaded the user");

    // A write evicts the user: the next lookup reads the database again.
    f.services
        .users
        .update_me(&principal, ProfileUpdate { full_name: Some("Root".into()), email: None })
        .await
        .unwrap();
    f.services.users.me(&principal).await.unwrap();
    let evicted = users(f.services.cache_stats());
    assert_eq!((evicted.hits - after.hits, evicted.misses - after.misses), (0, 1));

    let params = vec![("page".to_owned(), "1".to_owned())];
    f.services.users.list(&principal, &params).await.unwrap();
    f.services.users.list(&principal, &params).await.unwrap();
    let lists = f.services.cache_stats().into_iter().find(|s| s.name == "user_lists").unwrap();
    assert_eq!((lists.hits, lists.misses), (1, 1));
    assert!(f.services.cache_stats().iter().any(|s| s.name == "product_pages"));
}

#[tokio::test]
async fn unknown_email_and_wrong_password_look_the_same() {
    let f = fixture().await;
    f.services.auth.register(registration("jane@example.com")).await.unwrap();
    let unknown = f.services.auth.login("nobody@example.com", "jane-password").await.unwrap_err();
    let wrong = f.services.auth.login("jane@example.com", "wrong-password").await.unwrap_err();
    let malformed = f.services.auth.login("not an email", "jane-password").await.unwrap_err();
    assert_eq!(unknown.to_string(), wrong.to_string());
    assert_eq!(unknown.to_string(), malformed.to_string());
    assert!(matches!(unknown, ServiceError::Unauthorized(_)));
    let huge = "x".repeat(5000);
    assert!(matches!(f.services.auth.login("jane@example.com", &huge).await, Err(ServiceError::Unauthorized(_))));
}

#[tokio::test]
async fn registration_reports_every_bad_field_and_duplicates() {
    let f = fixture().await;
    let err = f
        .services
        .auth
        .register(Registration { email: "nope".into(), full_name: " ".into(), password: "short".into() })
        .await
        .unwrap_err();
    let ServiceError::Invalid(err) = err else { panic!("validation expected") };
    let fields: Vec<_> = err.fields().iter().map(|f| f.field.as_str()).collect();
    assert_eq!(fields, vec!["email", "full_name", "password"]);

    f.services.auth.register(registration("jane@example.com")).await.unwrap();
    let err = f.services.auth.register(registration("JANE@example.com")).await.unwrap_err();
    assert!(matches!(err, ServiceError::Conflict { .. }), "{err:?}");
}

#[tokio::test]
async fn refresh_rotates_and_reuse_revokes_the_session() {
    let f = fixture().await;
    f.services.auth.register(registration("jane@example.com")).await.unwrap();
    let first = f.services.auth.login("jane@example.com", "jane-password").await.unwrap();
    let second = f.services.auth.refresh(&first.refresh_token).await.unwrap();
    assert_ne!(first.refresh_token, second.refresh_token);

    // The spent token comes back: someone copied it. Both it and its successor die.
    let reuse = f.services.auth.refresh(&first.refresh_token).await.unwrap_err();
    assert!(reuse.to_string().contains("already used"), "{reuse}");
    assert!(matches!(f.services.auth.refresh(&second.refresh_token).await, Err(ServiceError::Unauthorized(_))));

    // Another login is another session, unaffected; logout ends it.
    let other = f.services.auth.login("jane@example.com", "jane-password").await.unwrap();
    f.services.auth.logout(&other.refresh_token).await.unwrap();
    assert!(matches!(f.services.auth.refresh(&other.refresh_token).await, Err(ServiceError::Unauthorized(_))));
    assert!(matches!(f.services.auth.refresh("forged").await, Err(ServiceError::Unauthorized(_))));
}

#[tokio::test]
async fn forged_and_foreign_access_tokens_are_refused() {
    let f = fixture().await;
    f.services.auth.register(registration("jane@example.com")).await.unwrap();
    let tokens = f.services.auth.login("jane@example.com", "jane-password").await.unwrap();
    let mut forged = tokens.access_token.clone();
    forged.pop();
    forged.push(if tokens.access_token.ends_with('A') { 'B' } else { 'A' });
    for token in [forged.as_str(), "", "a.b.c", "not-a-jwt"] {
        assert!(matches!(f.services.auth.authenticate(token).await, Err(ServiceError::Unauthorized(_))), "{token}");
    }
}

#[tokio::test]
async fn deactivated_users_cannot_log_in_or_use_old_tokens() {
    let f = fixture().await;
    let root = admin(&f.services).await;
    let jane = f.services.auth.register(registration("jane@example.com")).await.unwrap();
    let tokens = f.services.auth.login("jane@example.com", "jane-password").await.unwrap();
    // Warm the cache, then deactivate: the eviction must make the old token useless at once.
    f.services.auth.authenticate(&tokens.access_token).await.unwrap();
    f.services
        .users
        .update(&root, jane.id, UserUpdate { is_active: Some(false), ..UserUpdate::default() })
        .await
        .unwrap();
    assert!(matches!(f.services.auth.authenticate(&tokens.access_token).await, Err(ServiceError::Unauthorized(_))));
    assert!(matches!(
        f.services.auth.login("jane@example.com", "jane-password").await,
        Err(ServiceError::Forbidden(_))
    ));
    assert!(matches!(f.services.auth.refresh(&tokens.refresh_token).await, Err(ServiceError::Unauthorized(_))));
}

#[tokio::test]
async fn only_admins_administer_users() {
    let f = fixture().await;
    let root = admin(&f.services).await;
    let jane = f.services.auth.register(registration("jane@example.com")).await.unwrap();
    let tokens = f.services.auth.login("jane@example.com", "jane-password").await.unwrap();
    let customer = f.services.auth.authenticate(&tokens.access_token).await.unwrap();

    assert!(matches!(f.services.users.list(&customer, &[]).await, Err(ServiceError::Forbidden(_))));
    assert!(matches!(f.services.users.get(&customer, jane.id).await, Err(ServiceError::Forbidden(_))));
    assert!(matches!(
        f.services.users.set_roles(&customer, jane.id, vec![Role::Admin]).await,
        Err(ServiceError::Forbidden(_))
    ));

    let staff = f.services.users.set_roles(&root, jane.id, vec![Role::Staff, Role::Customer]).await.unwrap();
    assert_eq!(staff.roles, vec![Role::Staff, Role::Customer]);
    assert_eq!(f.services.users.list(&root, &[]).await.unwrap().items().len(), 2);
    assert!(matches!(f.services.users.delete(&root, root.user_id).await, Err(ServiceError::Conflict { .. })));
    f.services.users.delete(&root, jane.id).await.unwrap();
    assert!(matches!(f.services.users.get(&root, jane.id).await, Err(ServiceError::NotFound(_))));
    assert!(matches!(f.services.auth.authenticate(&tokens.access_token).await, Err(ServiceError::Unauthorized(_))));
}

#[tokio::test]
async fn bulk_create_validates_every_row_and_names_indices() {
    let f = fixture().await;
    let root = admin(&f.services).await;
    let row =
        |i: usize| NewUser { email: format!("u{i}@example.com"), full_name: format!("U {i}"), ..NewUser::default() };
    let mut rows: Vec<_> = (0..50).map(row).collect();
    rows[7].email = "broken".into();
    rows[9].full_name = String::new();
    let ServiceError::Invalid(err) = f.services.users.bulk_create(&root, rows).await.unwrap_err() else {
        panic!("validation expected")
    };
    let fields: Vec<_> = err.fields().iter().map(|f| f.field.as_str()).collect();
    assert_eq!(fields, vec!["users[7].email", "users[9].full_name"]);

    let mut rows: Vec<_> = (0..50).map(row).collect();
    rows[30].email = "ROOT@example.com".into();
    let ServiceError::Conflict { index, .. } = f.services.users.bulk_create(&root, rows).await.unwrap_err() else {
        panic!("conflict expected")
    };
    assert_eq!(index, Some(30));
    assert!(matches!(f.services.users.bulk_create(&root, Vec::new()).await, Err(ServiceError::Invalid(_))));
    assert_eq!(f.services.users.list(&root, &[]).await.unwrap().items().len(), 1, "nothing written");

    let mut rows: Vec<_> = (0..50).map(row).collect();
    rows[0].password = Some("first-password".into());
    assert_eq!(f.services.users.bulk_create(&root, rows).await.unwrap(), 50);
    f.services.auth.login("u0@example.com", "first-password").await.unwrap();
    // Rows without a password cannot log in until one is set.
    assert!(f.services.auth.login("u1@example.com", "").await.is_err());
}

#[tokio::test]
async fn password_change_checks_the_old_one_and_ends_sessions() {
    let f = fixture().await;
    f.services.auth.register(registration("jane@example.com")).await.unwrap();
    let tokens = f.services.auth.login("jane@example.com", "jane-password").await.unwrap();
    let jane = f.services.auth.authenticate(&tokens.access_token).await.unwrap();
    let err = f.services.auth.change_password(&jane, "wrong", "new-password-1").await.unwrap_err();
    assert!(matches!(err, ServiceError::Forbidden(_)), "{err:?}");
    let err = f.services.auth.change_password(&jane, "jane-password", "short").await.unwrap_err();
    assert!(matches!(err, ServiceError::Invalid(_)));
    f.services.auth.change_password(&jane, "jane-password", "new-password-1").await.unwrap();
    assert!(f.services.auth.refresh(&tokens.refresh_token).await.is_err());
    assert!(f.services.auth.login("jane@example.com", "jane-password").await.is_err());
    f.services.auth.login("jane@example.com", "new-password-1").await.unwrap();

    let updated = f
        .services
        .users
        .update_me(&jane, ProfileUpdate { full_name: Some("Jane Q".into()), email: None })
        .await
        .unwrap();
    assert_eq!(updated.full_name, "Jane Q");
    assert_eq!(f.services.users.me(&jane).await.unwrap().full_name, "Jane Q", "cache evicted on write");
}

#[tokio::test]
async fn cached_list_pages_are_dropped_by_every_write() {
    let f = fixture().await;
    let root = admin(&f.services).await;
    let count = |f: &Fixture, root: &Principal| {
        let users = f.services.users.clone();
        let root = root.clone();
        async move { users.list(&root, &[]).await.unwrap().items().len() }
    };
    assert_eq!(count(&f, &root).await, 1);
    let jane = f.services.auth.register(registration("jane@example.com")).await.unwrap();
    assert_eq!(count(&f, &root).await, 2, "registration clears the cached page");
    let row = NewUser { email: "new@example.com".into(), full_name: "New".into(), ..NewUser::default() };
    f.services.users.bulk_create(&root, vec![row]).await.unwrap();
    assert_eq!(count(&f, &root).await, 3, "bulk creation clears it");
    f.services.users.delete(&root, jane.id).await.unwrap();
    assert_eq!(count(&f, &root).await, 2, "deletion clears it");
    let names = |l: std::sync::Arc<rental_service::EncodedPage<rental_service::UserView>>| -> Vec<String> {
        l.items().iter().map(|u| u.full_name.clone()).collect()
    };
    let me = f
        .services
        .users
        .update_me(&root, ProfileUpdate { full_name: Some("Renamed Root".into()), email: None })
        .await
        .unwrap();
    assert!(names(f.services.users.list(&root, &[]).await.unwrap()).contains(&me.full_name));
}

/// The jobs enqueued, newest first.
async fn jobs(services: &Services, admin: &Principal) -> Vec<rental_service::jobs::JobView> {
    match services.jobs.list(admin, &[]).await.unwrap() {
        rental_service::Listing::Offset(page) => page.items,
        rental_service::Listing::Keyset(page) => page.items,
    }
}

#[tokio::test]
async fn jobs_enqueued_inside_a_request_scope_carry_its_id() {
    use rental_service::context;

    let f = fixture().await;
    let root = admin(&f.services).await;
    context::scope(Some("abc-123".into()), f.services.auth.register(registration("jane@example.com"))).await.unwrap();
    f.services.auth.register(registration("jim@example.com")).await.unwrap();
    // A job run enqueueing more work does so inside the scope of its own request id.
    let args = serde_json::json!({});
    let follow_up = f.services.jobs.enqueue("test.follow_up", &args, None);
    context::scope(Some("job-of-abc-123".into()), follow_up).await.unwrap();

    let jobs = jobs(&f.services, &root).await;
    let request_of = |to: &str| {
        let job = jobs.iter().find(|j| j.kind == "mail.send" && j.payload["to"] == to);
        job.unwrap_or_else(|| panic!("a welcome mail to {to} among {jobs:?}")).request_id.clone()
    };
    assert_eq!(request_of("jane@example.com").as_deref(), Some("abc-123"));
    assert_eq!(request_of("jim@example.com"), None, "outside any scope a job has no request id");
    let follow_up = jobs.iter().find(|j| j.kind == "test.follow_up").map(|j| j.request_id.clone());
    assert_eq!(follow_up, Some(Some("job-of-abc-123".to_owned())));
}
