//! The services' caches on a real database (SQLite by default, PostgreSQL when TEST_DATABASE_URL is set):
//! stampede protection counted in statements, and freshness after writes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use rental_service::{ProfileUpdate, Services, UserUpdate};

mod common;

use common::{fixture, people};

fn loads(services: &Services, name: &str) -> u64 {
    services.cache_stats().iter().filter(|s| s.name == name && s.tier == "local").map(|s| s.loads).sum()
}

#[tokio::test]
async fn a_hundred_concurrent_misses_of_one_user_read_the_database_once() {
    let f = fixture().await;
    let (admin, _staff, customer) = people(&f.services).await;
    let statements = || f.db.statement_stats().executed();

    // What one miss costs, measured: evict the user, then read it once.
    let rename = |name: &str| UserUpdate { full_name: Some(name.into()), ..UserUpdate::default() };
    f.services.users.update(&admin, customer.user_id, rename("One")).await.unwrap();
    let before = statements();
    f.services.users.me(&customer).await.unwrap();
    let one_miss = statements() - before;
    assert!(one_miss >= 1, "a miss reads the database");

    // A hundred at once after the next eviction cost the same.
    f.services.users.update(&admin, customer.user_id, rename("Two")).await.unwrap();
    let (before, loads_before) = (statements(), loads(&f.services, "users"));
    let services = Arc::new(f.services.clone());
    let reads: Vec<_> = (0..100)
        .map(|_| {
            let (services, customer) = (services.clone(), customer.clone());
            tokio::spawn(async move { services.users.me(&customer).await.unwrap().full_name })
        })
        .collect();
    for read in reads {
        assert_eq!(read.await.unwrap(), "Two");
    }
    assert_eq!(statements() - before, one_miss, "100 concurrent misses ran the loader's statements once");
    assert_eq!(loads(&f.services, "users") - loads_before, 1);
}

#[tokio::test]
async fn authentication_is_never_served_stale_after_a_write_to_the_user() {
    let f = fixture().await;
    let (admin, _staff, customer) = people(&f.services).await;
    let tokens = f.services.auth.login("cus@example.com", "customer-pw").await.unwrap();
    let token = tokens.access_token;
    assert!(f.services.auth.authenticate(&token).await.is_ok());
    let deactivate = UserUpdate { is_active: Some(false), ..UserUpdate::default() };
    f.services.users.update(&admin, customer.user_id, deactivate).await.unwrap();
    assert!(f.services.auth.authenticate(&token).await.is_err(), "deactivated: refused at once");
    let activate = UserUpdate { is_active: Some(true), ..UserUpdate::default() };
    f.services.users.update(&admin, customer.user_id, activate).await.unwrap();
    assert!(f.services.auth.authenticate(&token).await.is_ok());
    f.services.users.delete(&admin, customer.user_id).await.unwrap();
    assert!(f.services.auth.authenticate(&token).await.is_err(), "deleted: refused at once");

    // The profile served from the cache follows the user's own changes.
    let me = f.services.auth.authenticate(&admin_token(&f.services).await).await.unwrap();
    f.services.users.update_me(&me, ProfileUpdate { full_name: Some("Renamed".into()), email: None }).await.unwrap();
    assert_eq!(f.services.users.me(&me).await.unwrap().full_name, "Renamed");
    let _ = admin;
}

async fn admin_token(services: &Services) -> String {
    services.auth.login("root@example.com", "root-password").await.unwrap().access_token
}

#[tokio::test]
async fn the_category_list_is_cached_and_never_stale_after_a_catalogue_write() {
    use rental_service::{CategoryUpdate, NewCategory};

    let f = fixture().await;
    let (_admin, staff, _customer) = people(&f.services).await;
    let c = &f.services.catalogue;
    let names = || async { c.list_categories().await.unwrap().into_iter().map(|c| c.name).collect::<Vec<_>>() };
    assert!(names().await.is_empty());
    let statements = f.db.statement_stats().executed();
    assert!(names().await.is_empty());
    assert_eq!(f.db.statement_stats().executed(), statements, "the second read is a hit");

    let tools = c.create_category(&staff, NewCategory { name: "Tools".into(), description: None }).await.unwrap();
    assert_eq!(names().await, ["Tools"]);
    let rename = CategoryUpdate { name: Some("Garden".into()), ..CategoryUpdate::default() };
    c.update_category(&staff, tools.id, rename).await.unwrap();
    assert_eq!(names().await, ["Garden"]);
    c.delete_category(&staff, tools.id).await.unwrap();
    assert!(names().await.is_empty());
    assert!(loads(&f.services, "categories") >= 4);
}
