//! Freshness of every cached namespace on one instance, on a real database (SQLite by default, PostgreSQL when
//! TEST_DATABASE_URL is set): product details and availability are never served stale after a write that
//! changes them; analytics reports and the dashboard are served from the cache until their TTL or a clear.
//! The truth each cached answer is compared with is read by a second set of services on the same database
//! whose caches are cleared before every read. (The `users` and `categories` namespaces: tests/cache.rs.)
#![allow(clippy::unwrap_used, clippy::expect_used)]

use rental_service::Clock as _;

use chrono::{DateTime, Duration, Utc};
use rental_service::{
    AuthConfig, CacheConfig, CategoryUpdate, NewCategory, NewLocation, NewProduct, NewRental, NewRentalLine, NewUnit,
    PickupLine, Principal, ProductUpdate, RentalConfig, ReturnedUnit, Secret, ServiceConfig, Services,
};
use uuid::Uuid;

mod common;

use common::{Fixture, fixture, people};

/// Services on the fixture's database with caches of their own, cleared before each read: the truth.
async fn truth(f: &Fixture) -> Services {
    let config = ServiceConfig {
        auth: AuthConfig {
            jwt_secret: Secret::new("test-secret-test-secret-test-secret!"),
            argon2_memory_kib: 1024,
            argon2_iterations: 1,
            ..AuthConfig::default()
        },
        rentals: RentalConfig { tax_rate_bp: 1_000 },
        cache: CacheConfig { analytics_ttl_secs: 1, dashboard_ttl_secs: 1, ..CacheConfig::default() },
        ..ServiceConfig::default()
    };
    Services::with_clock(f.db.clone(), &config, f.services.clock.clone()).unwrap()
}

fn loads(services: &Services, name: &str) -> u64 {
    services.cache_stats().iter().filter(|s| s.name == name && s.tier == "local").map(|s| s.loads).sum()
}

/// A product with two tracked units, and its category and location.
async fn camera(services: &Services, staff: &Principal) -> (Uuid, Uuid, Vec<Uuid>) {
    let c = &services.catalogue;
    let category = c.create_category(staff, NewCategory { name: "Cameras".into(), description: None }).await.unwrap();
    let depot = c.create_location(staff, NewLocation { name: "Depot".into(), address: None }).await.unwrap();
    let product = NewProduct {
        category_id: category.id,
        sku: "CAM-1".into(),
        name: "Camera".into(),
        currency: "EUR".into(),
        price_per_day_minor: 2_000,
        ..NewProduct::default()
    };
    let product = c.create_product(staff, product).await.unwrap();
    let units = ["CAM-1-A", "CAM-1-B"].map(|serial| NewUnit {
        serial_number: serial.into(),
        condition: None,
        location_id: depot.id,
    });
    let units = c.add_units(staff, product.id, units.to_vec()).await.unwrap();
    (product.id, category.id, units.into_iter().map(|u| u.id).collect())
}

fn rental(product_id: Uuid, start: DateTime<Utc>, days: i64, status: Option<&str>) -> NewRental {
    NewRental {
        customer_id: None,
        status: status.map(str::to_owned),
        lines: vec![NewRentalLine { product_id, quantity: 1, start, end: start + Duration::days(days) }],
        notes: None,
    }
}

#[tokio::test]
async fn a_product_detail_is_cached_and_never_stale_after_a_catalogue_write() {
    let f = fixture().await;
    let (_admin, staff, customer) = people(&f.services).await;
    let (product_id, category_id, _) = camera(&f.services, &staff).await;
    let c = &f.services.catalogue;
    assert_eq!(c.get_product(Some(&customer), product_id).await.unwrap().product.name, "Camera");
    let statements = f.db.statement_stats().executed();
    assert_eq!(c.get_product(Some(&customer), product_id).await.unwrap().product.name, "Camera");
    assert_eq!(f.db.statement_stats().executed(), statements, "the second read is a hit");

    let rename = ProductUpdate { name: Some("Camera II".into()), ..ProductUpdate::default() };
    c.update_product(&staff, product_id, rename).await.unwrap();
    assert_eq!(c.get_product(Some(&customer), product_id).await.unwrap().product.name, "Camera II");
    // A category rename shows in the detail at once.
    let rename = CategoryUpdate { name: Some("Photo".into()), ..CategoryUpdate::default() };
    c.update_category(&staff, category_id, rename).await.unwrap();
    assert_eq!(c.get_product(Some(&customer), product_id).await.unwrap().category.unwrap().name, "Photo");
    // Stock: a new unit counts at once.
    let depot = c.list_locations().await.unwrap()[0].id;
    let unit = NewUnit { serial_number: "CAM-1-C".into(), condition: None, location_id: depot };
    c.add_units(&staff, product_id, vec![unit]).await.unwrap();
    assert_eq!(c.get_product(Some(&customer), product_id).await.unwrap().stock.units, 3);
    // Deactivated: hidden from customers at once, still shown to staff.
    c.update_product(&staff, product_id, ProductUpdate { is_active: Some(false), ..ProductUpdate::default() })
        .await
        .unwrap();
    assert!(c.get_product(Some(&customer), product_id).await.is_err());
    assert!(!c.get_product(Some(&staff), product_id).await.unwrap().product.is_active);
    c.delete_product(&staff, product_id).await.unwrap();
    assert!(c.get_product(Some(&staff), product_id).await.is_err(), "deleted: not found at once");
    assert!(loads(&f.services, "products") >= 5);
}

#[tokio::test]
async fn availability_is_cached_and_never_stale_after_any_write_that_changes_it() {
    let f = fixture().await;
    let truth = truth(&f).await;
    let (_admin, staff, customer) = people(&f.services).await;
    let (product_id, _, units) = camera(&f.services, &staff).await;
    let start = f.clock.now() + Duration::days(1);
    let (from, to) = (start, start + Duration::days(2));
    let second_day = (start + Duration::days(1), start + Duration::days(2));
    let rentals = &f.services.rentals;
    let cached = |(from, to): (DateTime<Utc>, DateTime<Utc>)| async move {
        rentals.availability(product_id, from, to, None).await.unwrap()
    };
    let fresh = |(from, to): (DateTime<Utc>, DateTime<Utc>)| {
        let truth = truth.clone();
        async move {
            truth.caches.clear(Some("availability")).await.unwrap();
            truth.rentals.availability(product_id, from, to, None).await.unwrap()
        }
    };
    // Checks both windows against the truth and returns what is free over the whole period.
    let check = async |what: &str| {
        for window in [(from, to), second_day] {
            assert_eq!(cached(window).await, fresh(window).await, "{what}: a stale answer");
        }
        cached((from, to)).await.available
    };

    assert_eq!(check("initially").await, 2);
    let statements = f.db.statement_stats().executed();
    assert_eq!(cached((from, to)).await.available, 2);
    assert_eq!(f.db.statement_stats().executed(), statements, "the second read is a hit");

    let quote = rentals.create(&customer, rental(product_id, start, 2, Some("quote"))).await.unwrap();
    assert_eq!(check("after a quote (holds nothing)").await, 2);
    let reserved = rentals.create(&customer, rental(product_id, start, 2, None)).await.unwrap();
    assert_eq!(check("after a reservation").await, 1);
    rentals.confirm(&customer, quote.id, None).await.unwrap();
    assert_eq!(check("after a confirmation").await, 0);
    rentals.cancel(&customer, quote.id, None).await.unwrap();
    assert_eq!(check("after a cancellation").await, 1);
    rentals.add_maintenance(&staff, units[1], from, to, None).await.unwrap();
    assert_eq!(check("after a maintenance block").await, 0);

    // Picked up at the start, returned early on the first day: the second day is free again.
    f.clock.set(start);
    rentals
        .pickup(
            &staff,
            reserved.id,
            vec![PickupLine { line_id: line_of(&f, &staff, reserved.id).await, unit_ids: vec![units[0]] }],
            None,
        )
        .await
        .unwrap();
    assert_eq!(check("after a pickup").await, 0);
    assert_eq!(cached(second_day).await.available, 0);
    f.clock.set(start + Duration::hours(2));
    let back =
        ReturnedUnit { unit_id: units[0], condition: "good".into(), damage_note: None, damage_charge_minor: None };
    rentals.return_items(&staff, reserved.id, vec![back], None).await.unwrap();
    check("after a return").await;
    assert_eq!(cached(second_day).await.available, 1, "the returned unit is free on the second day");

    // Catalogue writes decide availability too: a product made inactive is not found at once.
    let off = ProductUpdate { is_active: Some(false), ..ProductUpdate::default() };
    f.services.catalogue.update_product(&staff, product_id, off).await.unwrap();
    assert!(rentals.availability(product_id, from, to, None).await.is_err());
}

async fn line_of(f: &Fixture, staff: &Principal, order_id: Uuid) -> Uuid {
    f.services.rentals.get(staff, order_id).await.unwrap().lines[0].id
}

#[tokio::test]
async fn analytics_and_the_dashboard_are_served_from_the_cache_until_their_ttl_or_a_clear() {
    let f = fixture().await;
    // The fixture's services cache reports for the default 60 s; `short` for 1 s.
    let short = truth(&f).await;
    let (_admin, staff, customer) = people(&f.services).await;
    let (product_id, _, _) = camera(&f.services, &staff).await;
    let start = f.clock.now() + Duration::days(1);
    let a = &f.services.analytics;
    let reserved = |s: &rental_service::StatusDistribution| {
        s.items.iter().find(|c| c.status == rental_domain::OrderStatus::Reserved).map_or(0, |c| c.count)
    };
    let dashboard_total = async |services: &Services| {
        let json: serde_json::Value =
            serde_json::from_slice(&services.analytics.dashboard_json(&staff).await.unwrap().0).unwrap();
        json.to_string()
    };
    let before = a.status_distribution(&staff).await.unwrap();
    let before_short = short.analytics.status_distribution(&staff).await.unwrap();
    let dashboard_before = dashboard_total(&f.services).await;
    let dashboard_before_short = dashboard_total(&short).await;
    f.services.rentals.create(&customer, rental(product_id, start, 2, None)).await.unwrap();

    // Within the TTL: the cached report (documented staleness, bounded by cache.analytics_ttl_secs).
    assert_eq!(a.status_distribution(&staff).await.unwrap(), before);
    assert_eq!(dashboard_total(&f.services).await, dashboard_before);
    // After the TTL: fresh.
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    let after_short = short.analytics.status_distribution(&staff).await.unwrap();
    assert_eq!(reserved(&after_short), reserved(&before_short) + 1, "a report is fresh after its TTL");
    assert_ne!(dashboard_total(&short).await, dashboard_before_short, "the dashboard is fresh after its TTL");
    // A clear (POST /api/v1/admin/cache/clear) makes them fresh at once.
    f.services.caches.clear(Some("analytics")).await.unwrap();
    assert_eq!(reserved(&a.status_distribution(&staff).await.unwrap()), reserved(&before) + 1);
    f.services.caches.clear(Some("dashboard")).await.unwrap();
    assert_ne!(dashboard_total(&f.services).await, dashboard_before);
    // Reports are keyed by their range: another range is another entry.
    let (from, to) = (start - Duration::days(3), start + Duration::days(3));
    let one = a.revenue(&staff, from, to).await.unwrap();
    assert_eq!(a.revenue(&staff, from, to).await.unwrap(), one);
    assert_eq!(a.revenue(&staff, from, to + Duration::days(1)).await.unwrap().to, one.to + chrono::Days::new(1));
}
