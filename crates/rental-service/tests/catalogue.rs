//! Catalogue service tests on a real database: SQLite by default, PostgreSQL when TEST_DATABASE_URL is set.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use rental_service::{CategoryUpdate, NewCategory, NewLocation, NewProduct, NewUnit, ProductUpdate, ServiceError};
use uuid::Uuid;

mod common;

use common::{fixture, people};

fn drill(category_id: Uuid) -> NewProduct {
    NewProduct {
        category_id,
        sku: "DRL-1".into(),
        name: "Drill".into(),
        currency: "eur".into(),
        price_per_day_minor: 1500,
        price_per_week_minor: Some(7000),
        ..NewProduct::default()
    }
}

fn fields(err: ServiceError) -> Vec<String> {
    match err {
        ServiceError::Invalid(e) => e.fields().iter().map(|f| f.field.clone()).collect(),
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn staff_and_admins_manage_customers_browse() {
    let f = fixture().await;
    let (admin, staff, customer) = people(&f.services).await;
    assert!(staff.is_staff() && admin.is_staff() && !customer.is_staff());
    let c = &f.services.catalogue;

    let tools = c.create_category(&staff, NewCategory { name: "Power Tools".into(), description: None }).await.unwrap();
    assert_eq!(tools.slug, "power-tools");
    let depot = c.create_location(&admin, NewLocation { name: "Depot".into(), address: None }).await.unwrap();
    let product = c.create_product(&staff, drill(tools.id)).await.unwrap();
    assert_eq!(product.currency, "EUR");

    let denied = [
        c.create_category(&customer, NewCategory { name: "X".into(), description: None }).await.err(),
        c.update_category(&customer, tools.id, CategoryUpdate::default()).await.err(),
        c.delete_category(&customer, tools.id).await.err(),
        c.create_location(&customer, NewLocation { name: "Y".into(), address: None }).await.err(),
        c.create_product(&customer, drill(tools.id)).await.err(),
        c.update_product(&customer, product.id, ProductUpdate::default()).await.err(),
        c.delete_product(&customer, product.id).await.err(),
        c.add_units(&customer, product.id, vec![]).await.err(),
        c.set_stock_level(&customer, product.id, depot.id, 1).await.err(),
    ];
    for err in denied {
        assert!(matches!(err, Some(ServiceError::Forbidden(_))), "{err:?}");
    }

    // Everyone browses, anonymous callers included; inactive products are for staff only.
    assert_eq!(c.list_products(None, &[]).await.unwrap().listing().items().len(), 1);
    c.update_product(&staff, product.id, ProductUpdate { is_active: Some(false), ..Default::default() }).await.unwrap();
    let asked_inactive = vec![("is_active".to_owned(), "false".to_owned())];
    assert!(c.list_products(Some(&customer), &asked_inactive).await.unwrap().listing().items().is_empty());
    assert!(c.list_products(None, &[]).await.unwrap().listing().items().is_empty());
    assert_eq!(c.list_products(Some(&staff), &asked_inactive).await.unwrap().listing().items().len(), 1);
    assert!(matches!(c.get_product(None, product.id).await, Err(ServiceError::NotFound("product"))));
    assert!(matches!(c.get_product(Some(&customer), product.id).await, Err(ServiceError::NotFound("product"))));
    assert_eq!(c.get_product(Some(&staff), product.id).await.unwrap().product.id, product.id);
    assert_eq!(c.list_categories().await.unwrap().len(), 1);
    assert_eq!(c.list_locations().await.unwrap()[0].name, "Depot");
}

#[tokio::test]
async fn every_bad_field_is_listed() {
    let f = fixture().await;
    let (_, staff, _) = people(&f.services).await;
    let c = &f.services.catalogue;
    let tools = c.create_category(&staff, NewCategory { name: "Tools".into(), description: None }).await.unwrap();

    let bad = NewProduct {
        category_id: Uuid::now_v7(),
        sku: "has space".into(),
        name: " ".into(),
        currency: "EURO".into(),
        price_per_day_minor: -1,
        buffer_minutes: Some(10_081),
        ..NewProduct::default()
    };
    let got = fields(c.create_product(&staff, bad).await.unwrap_err());
    assert_eq!(got, ["sku", "name", "currency", "price_per_day_minor", "buffer_minutes", "category_id"]);

    let bad = NewProduct {
        price_per_day_minor: -1,
        price_per_week_minor: Some(-2),
        deposit_minor: Some(-3),
        late_fee_per_day_minor: Some(-4),
        ..drill(tools.id)
    };
    let got = fields(c.create_product(&staff, bad).await.unwrap_err());
    assert_eq!(got, ["price_per_day_minor", "price_per_week_minor", "deposit_minor", "late_fee_per_day_minor"]);

    let got =
        fields(c.create_category(&staff, NewCategory { name: "x".repeat(101), description: None }).await.unwrap_err());
    assert_eq!(got, ["name"]);
    let got = fields(
        c.create_location(&staff, NewLocation { name: String::new(), address: Some("a".repeat(2001)) })
            .await
            .unwrap_err(),
    );
    assert_eq!(got, ["name", "address"]);

    // Updates are checked against the stored values: a negative week price is refused even alone.
    let product = c.create_product(&staff, drill(tools.id)).await.unwrap();
    let got = fields(
        c.update_product(
            &staff,
            product.id,
            ProductUpdate { price_per_week_minor: Some(Some(-5)), ..Default::default() },
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(got, ["price_per_week_minor"]);
    let changed = c
        .update_product(
            &staff,
            product.id,
            ProductUpdate { currency: Some("usd".into()), price_per_week_minor: Some(None), ..Default::default() },
        )
        .await
        .unwrap();
    assert_eq!(
        (changed.currency.as_str(), changed.price_per_day_minor, changed.price_per_week_minor),
        ("USD", 1500, None)
    );

    let depot = c.create_location(&staff, NewLocation { name: "Depot".into(), address: None }).await.unwrap();
    let err = c.set_stock_level(&staff, product.id, depot.id, -1).await.unwrap_err();
    assert_eq!(fields(err), ["quantity"]);
    let units = vec![
        NewUnit { serial_number: "ok-1".into(), condition: None, location_id: depot.id },
        NewUnit { serial_number: "bad serial".into(), condition: Some("broken".into()), location_id: Uuid::now_v7() },
    ];
    let got = fields(c.add_units(&staff, product.id, units).await.unwrap_err());
    assert_eq!(got, ["units[1].serial_number", "units[1].condition", "units[1].location_id"]);
}

#[tokio::test]
async fn conflicts_and_missing_rows_have_their_own_errors() {
    let f = fixture().await;
    let (_, staff, _) = people(&f.services).await;
    let c = &f.services.catalogue;
    let tools = c.create_category(&staff, NewCategory { name: "Tools".into(), description: None }).await.unwrap();
    let err = c.create_category(&staff, NewCategory { name: "TOOLS".into(), description: None }).await.unwrap_err();
    assert!(matches!(err, ServiceError::Conflict { .. }), "{err:?}");
    let product = c.create_product(&staff, drill(tools.id)).await.unwrap();
    let err = c.create_product(&staff, drill(tools.id)).await.unwrap_err();
    assert!(matches!(&err, ServiceError::Conflict { message, .. } if message.contains("SKU")), "{err:?}");
    let err = c.delete_category(&staff, tools.id).await.unwrap_err();
    assert!(matches!(&err, ServiceError::Conflict { message, .. } if message.contains("products")), "{err:?}");

    let depot = c.create_location(&staff, NewLocation { name: "Depot".into(), address: None }).await.unwrap();
    let unit = || vec![NewUnit { serial_number: "SN-1".into(), condition: Some("good".into()), location_id: depot.id }];
    let added = c.add_units(&staff, product.id, unit()).await.unwrap();
    assert_eq!(added[0].condition.as_str(), "good");
    assert!(matches!(c.add_units(&staff, product.id, unit()).await, Err(ServiceError::Conflict { .. })));
    assert!(matches!(c.add_units(&staff, Uuid::now_v7(), unit()).await, Err(ServiceError::NotFound("product"))));
    let level = c.set_stock_level(&staff, product.id, depot.id, 12).await.unwrap();
    assert_eq!(level.quantity, 12);
    assert!(matches!(
        c.set_stock_level(&staff, product.id, Uuid::now_v7(), 1).await,
        Err(ServiceError::NotFound("location"))
    ));
    assert!(matches!(
        c.set_stock_level(&staff, Uuid::now_v7(), depot.id, 1).await,
        Err(ServiceError::NotFound("product"))
    ));

    let detail = c.get_product(None, product.id).await.unwrap();
    assert_eq!((detail.stock.units, detail.stock.bulk_quantity), (1, 12));
    assert_eq!(detail.locations[0].location.id, depot.id);
    assert_eq!(detail.category.as_ref().map(|cat| cat.id), Some(tools.id));

    c.delete_product(&staff, product.id).await.unwrap();
    assert!(matches!(c.delete_product(&staff, product.id).await, Err(ServiceError::NotFound("product"))));
    c.delete_category(&staff, tools.id).await.unwrap();
    assert!(matches!(c.get_category(tools.id).await, Err(ServiceError::NotFound("category"))));
    assert!(matches!(
        c.update_category(&staff, tools.id, CategoryUpdate::default()).await,
        Err(ServiceError::NotFound("category"))
    ));
}

/// Product pages are cached (a write that bypasses the service stays unseen), and every catalogue write
/// through the service clears them.
#[tokio::test]
async fn cached_product_pages_are_cleared_by_every_catalogue_write() {
    use rental_repo::{CatalogueRepo, CatalogueStore, Database, DatabaseConfig};
    use rental_service::{CacheConfig, Caches, CatalogueService, StockView, SystemClock};

    let f = fixture().await;
    let (_admin, staff, _customer) = people(&f.services).await;
    let config =
        DatabaseConfig { max_connections: Some(2), min_connections: Some(0), ..DatabaseConfig::with_url(f._db.url()) };
    let db = Database::connect(&config).await.unwrap();
    // An hour-long TTL, so that only a write can make a page change during the test.
    let cache = CacheConfig { list_ttl_secs: 3600, ..CacheConfig::default() };
    let c = CatalogueService::new(db.clone(), std::sync::Arc::new(SystemClock), &cache, &Caches::default());
    let behind_its_back = CatalogueRepo::new(db.clone());
    let list = || async {
        let page = c.list_products(Some(&staff), &[]).await.unwrap();
        page.listing().items().iter().map(|i| (i.product.name.clone(), i.stock)).collect::<Vec<_>>()
    };
    let stock = |units, bulk_quantity| StockView { units, bulk_quantity };

    let tools = c.create_category(&staff, NewCategory { name: "Tools".into(), description: None }).await.unwrap();
    let depot = c.create_location(&staff, NewLocation { name: "Depot".into(), address: None }).await.unwrap();
    assert!(list().await.is_empty());
    let product = c.create_product(&staff, drill(tools.id)).await.unwrap();
    assert_eq!(list().await, [("Drill".to_owned(), stock(0, 0))], "create clears");

    // A write that bypasses the service is not seen: the page comes from the cache.
    let hidden = rental_repo::ProductChanges { name: Some("Hidden".into()), ..Default::default() };
    db.write(async |uow| behind_its_back.update_product(uow, product.id, hidden, chrono::Utc::now()).await)
        .await
        .unwrap();
    assert_eq!(list().await, [("Drill".to_owned(), stock(0, 0))], "served from the cache");
    // And the JSON is the page's.
    let page = c.list_products(Some(&staff), &[]).await.unwrap();
    let json: serde_json::Value = serde_json::from_slice(page.json().unwrap()).unwrap();
    assert_eq!(json["items"][0]["name"], "Drill");

    c.update_product(&staff, product.id, ProductUpdate { name: Some("Hammer drill".into()), ..Default::default() })
        .await
        .unwrap();
    assert_eq!(list().await, [("Hammer drill".to_owned(), stock(0, 0))], "update clears");
    let unit = NewUnit { serial_number: "D-1".into(), condition: None, location_id: depot.id };
    c.add_units(&staff, product.id, vec![unit]).await.unwrap();
    assert_eq!(list().await, [("Hammer drill".to_owned(), stock(1, 0))], "units clear");
    c.set_stock_level(&staff, product.id, depot.id, 7).await.unwrap();
    assert_eq!(list().await, [("Hammer drill".to_owned(), stock(1, 7))], "stock levels clear");
    c.update_category(&staff, tools.id, CategoryUpdate { name: Some("Drills".into()), description: None })
        .await
        .unwrap();
    let page = c.list_products(Some(&staff), &[]).await.unwrap();
    let category = page.listing().items()[0].category.as_ref().map(|c| c.name.clone());
    assert_eq!(category.as_deref(), Some("Drills"), "category changes clear");
    c.delete_product(&staff, product.id).await.unwrap();
    assert!(list().await.is_empty(), "delete clears");
}
