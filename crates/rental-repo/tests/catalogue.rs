//! Catalogue repository tests on a real database: SQLite by default, PostgreSQL when TEST_DATABASE_URL is set.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Catalogue, connect};
use rental_repo::conformance::{category, ids, params, product, unit};
use rental_repo::query::Listing;
use rental_repo::{CatalogueStore, Database, NewLocationRecord, OrderRepo, RepoError, product_list_spec};
use rental_testkit::TestDb;
use uuid::Uuid;

#[tokio::test]
async fn listing_and_detail_cost_a_constant_number_of_statements() {
    let test_db = TestDb::new().await;
    let db = connect(&test_db).await;
    let repo = Catalogue::new(db.clone());
    let cats = [repo.create_category(category("A")).await.unwrap(), repo.create_category(category("B")).await.unwrap()];
    let locations = [
        repo.create_location(NewLocationRecord { name: "L1".into(), address: None }).await.unwrap(),
        repo.create_location(NewLocationRecord { name: "L2".into(), address: Some("Main St 1".into()) }).await.unwrap(),
    ];
    let mut products = Vec::new();
    for i in 0..120 {
        let p =
            repo.create_product(product(cats[i % 2].id, &format!("S-{i:03}"), &format!("P {i}"), 100)).await.unwrap();
        products.push(p);
    }
    for (i, p) in products.iter().enumerate().take(60) {
        let loc = locations[i % 2].id;
        repo.add_units(p.id, vec![unit(&format!("U-{i}-a"), loc), unit(&format!("U-{i}-b"), locations[0].id)])
            .await
            .unwrap();
        repo.set_stock_level(p.id, locations[1].id, 4).await.unwrap();
    }

    let mut costs = Vec::new();
    for per_page in ["1", "10", "100"] {
        let query = product_list_spec().parse(&params(&[("per_page", per_page), ("sort", "name")])).unwrap();
        let before = db.statement_stats().executed();
        let listing = repo.list_products(&query).await.unwrap();
        costs.push(db.statement_stats().executed() - before);
        assert_eq!(listing.items().len(), per_page.parse::<usize>().unwrap());
        assert!(listing.items().iter().all(|i| i.category.is_some()));
        // Products 0..60 have two units and 4 in bulk; the rest nothing.
        for item in listing.items() {
            let n: usize = item.product.sku[2..].parse().unwrap();
            let expected = if n < 60 { (2, 4) } else { (0, 0) };
            assert_eq!((item.stock.units, item.stock.bulk_quantity), expected, "{}", item.product.sku);
        }
    }
    assert_eq!(costs, vec![4, 4, 4], "count + page + categories + stock summaries, whatever the page size");
    let query = product_list_spec().parse(&params(&[("limit", "100"), ("include_total", "false")])).unwrap();
    let before = db.statement_stats().executed();
    repo.list_products(&query).await.unwrap();
    assert_eq!(db.statement_stats().executed() - before, 3, "keyset without total skips the count");

    // Detail: product, category, units per location, stock levels, locations.
    let mut costs = Vec::new();
    for p in [&products[0], &products[1]] {
        let before = db.statement_stats().executed();
        let detail = repo.product_detail(p.id).await.unwrap().unwrap();
        costs.push(db.statement_stats().executed() - before);
        assert_eq!(detail.category.as_ref().map(|c| c.id), Some(p.category_id));
        assert_eq!((detail.stock.units, detail.stock.bulk_quantity), (2, 4));
        let per: Vec<_> =
            detail.locations.iter().map(|l| (l.location.name.as_str(), l.stock.units, l.stock.bulk_quantity)).collect();
        let expected =
            if p.id == products[0].id { vec![("L1", 2, 0), ("L2", 0, 4)] } else { vec![("L1", 1, 0), ("L2", 1, 4)] };
        assert_eq!(per, expected);
    }
    assert_eq!(costs, vec![5, 5]);
    assert!(repo.product_detail(Uuid::now_v7()).await.unwrap().is_none());
}

/// Writes `code` into the stored currency of product `id` behind the repository's back, as a hand-written
/// UPDATE might.
async fn store_currency(db: &Database, id: Uuid, code: &str) {
    use sea_orm::ConnectionTrait;
    use sea_orm::sea_query::{Alias, Expr, ExprTrait, Query};
    let stmt = Query::update()
        .table(Alias::new("products"))
        .value(Alias::new("currency"), code)
        .and_where(Expr::col(Alias::new("id")).eq(id))
        .to_owned();
    db.connection().execute(&stmt).await.unwrap();
}

#[tokio::test]
async fn a_stored_currency_that_is_not_one_is_a_database_error_not_a_panic() {
    let test_db = TestDb::new().await;
    let db = connect(&test_db).await;
    let repo = Catalogue::new(db.clone());
    let tools = repo.create_category(category("Tools")).await.unwrap();
    let drill = repo.create_product(product(tools.id, "DRILL-1", "Drill", 1500)).await.unwrap();
    store_currency(&db, drill.id, "E1R").await;

    let corrupt =
        |err: &RepoError| matches!(err, RepoError::Database(cause) if cause.to_string().contains("products.currency"));
    let err = repo.find_product(drill.id).await.unwrap_err();
    assert!(corrupt(&err), "{err:?}");
    let err = repo.product_detail(drill.id).await.unwrap_err();
    assert!(corrupt(&err), "{err:?}");
    let err = repo.list_products(&product_list_spec().parse(&[]).unwrap()).await.unwrap_err();
    assert!(corrupt(&err), "{err:?}");
    let orders = OrderRepo::new(db.clone());
    let err = orders.product_terms(&std::collections::BTreeSet::from([drill.id])).await.unwrap_err();
    assert!(corrupt(&err), "{err:?}");
}

mod availability {
    //! The `available_from`/`available_to` filter. Orders have no repository on this branch yet, so their rows
    //! are written with portable sea-query INSERTs whose values (ids, timestamps) are bound, not formatted.

    use chrono::{DateTime, Duration, TimeZone, Utc};
    use rental_domain::{Email, FullName};
    use rental_repo::{NewUserRecord, UserRepo, UserStore, parse_product_query};
    use sea_orm::ConnectionTrait;
    use sea_orm::sea_query::{Alias, Query, SimpleExpr};

    use super::*;

    fn day(d: u32, hour: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2027, 3, d, hour, 0, 0).unwrap()
    }

    async fn insert(db: &Database, table: &str, row: Vec<(&str, SimpleExpr)>) {
        let (columns, values): (Vec<_>, Vec<_>) = row.into_iter().unzip();
        let stmt = Query::insert()
            .into_table(Alias::new(table))
            .columns(columns.into_iter().map(Alias::new))
            .values_panic(values)
            .to_owned();
        db.connection().execute(&stmt).await.unwrap();
    }

    /// A reserved order of `customer` with one line of `quantity` items over `[starts, ends)`, held until
    /// `hold_until`; `holds_stock = false` is what a cancelled order leaves behind.
    async fn book(
        db: &Database,
        customer: Uuid,
        product_id: Uuid,
        quantity: i32,
        (starts, ends, hold_until): (DateTime<Utc>, DateTime<Utc>, DateTime<Utc>),
        holds_stock: bool,
    ) {
        let order_id = Uuid::now_v7();
        let now = Utc::now();
        let status = if holds_stock { "reserved" } else { "cancelled" };
        insert(
            db,
            "rental_orders",
            vec![
                ("id", order_id.into()),
                ("customer_id", customer.into()),
                ("status", status.into()),
                ("currency", "EUR".into()),
                ("subtotal_minor", 0i64.into()),
                ("tax_rate_bp", 0i32.into()),
                ("tax_minor", 0i64.into()),
                ("total_minor", 0i64.into()),
                ("deposit_minor", 0i64.into()),
                ("starts_at", starts.into()),
                ("ends_at", ends.into()),
                ("created_at", now.into()),
                ("updated_at", now.into()),
            ],
        )
        .await;
        insert(
            db,
            "order_lines",
            vec![
                ("id", Uuid::now_v7().into()),
                ("order_id", order_id.into()),
                ("product_id", product_id.into()),
                ("quantity", quantity.into()),
                ("starts_at", starts.into()),
                ("ends_at", ends.into()),
                ("hold_until", hold_until.into()),
                ("holds_stock", holds_stock.into()),
                ("currency", "EUR".into()),
                ("price_per_day_minor", 100i64.into()),
                ("deposit_per_unit_minor", 0i64.into()),
                ("late_fee_per_day_minor", 0i64.into()),
                ("buffer_minutes", 0i32.into()),
                ("charged_days", 1i32.into()),
                ("months", 0i32.into()),
                ("weeks", 0i32.into()),
                ("days", 1i32.into()),
                ("unit_price_minor", 100i64.into()),
                ("line_total_minor", 100i64.into()),
            ],
        )
        .await;
    }

    async fn block(db: &Database, unit_id: Uuid, product_id: Uuid, starts: DateTime<Utc>, ends: DateTime<Utc>) {
        insert(
            db,
            "maintenance_blocks",
            vec![
                ("id", Uuid::now_v7().into()),
                ("unit_id", unit_id.into()),
                ("product_id", product_id.into()),
                ("starts_at", starts.into()),
                ("ends_at", ends.into()),
                ("created_at", Utc::now().into()),
            ],
        )
        .await;
    }

    fn window(from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<(String, String)> {
        params(&[("available_from", &from.to_rfc3339()), ("available_to", &to.to_rfc3339()), ("sort", "name")])
    }

    #[tokio::test]
    async fn products_are_listed_when_an_item_is_free_over_the_whole_window() {
        let test_db = TestDb::new().await;
        let db = connect(&test_db).await;
        let repo = Catalogue::new(db.clone());
        let users = UserRepo::new(db.clone());
        let new = NewUserRecord {
            email: Email::parse("customer@example.com").unwrap(),
            full_name: FullName::parse("A Customer").unwrap(),
            password_hash: None,
            is_active: true,
            is_superuser: false,
            roles: Vec::new(),
        };
        let customer = db.write(async |uow| users.create(uow, new, Utc::now()).await).await.unwrap().id.as_uuid();
        let cat = repo.create_category(category("Tools")).await.unwrap();
        let depot = repo.create_location(NewLocationRecord { name: "Depot".into(), address: None }).await.unwrap();
        // A product with `units` tracked units (the first one returned) and `bulk` items in bulk.
        let make = |name: &'static str, units: usize, bulk: i32| {
            let repo = repo.clone();
            async move {
                let p = repo.create_product(product(cat.id, name, name, 100)).await.unwrap();
                let serials = (0..units).map(|i| unit(&format!("{name}-{i}"), depot.id)).collect();
                let added = repo.add_units(p.id, serials).await.unwrap();
                if bulk > 0 {
                    repo.set_stock_level(p.id, depot.id, bulk).await.unwrap();
                }
                (p.id, added.first().map(|u| u.id))
            }
        };
        // The window: [10 March 00:00, 13 March 00:00).
        let (from, to) = (day(10, 0), day(13, 0));
        let span = |a, b| (a, b, b);

        let (free, _) = make("free", 1, 0).await;
        let (booked, _) = make("booked", 1, 0).await;
        book(&db, customer, booked, 1, span(day(9, 0), day(11, 0)), true).await;
        let (booked_inside, _) = make("booked-inside", 0, 1).await;
        book(&db, customer, booked_inside, 1, span(day(11, 0), day(12, 0)), true).await;
        let (touching, _) = make("touching", 1, 0).await;
        book(&db, customer, touching, 1, span(day(8, 0), from), true).await;
        book(&db, customer, touching, 1, span(to, day(14, 0)), true).await;
        let (buffered, _) = make("buffered", 1, 0).await;
        // Ends before the window, but the buffer holds it until one hour into it.
        book(&db, customer, buffered, 1, (day(8, 0), day(9, 23), day(10, 1)), true).await;
        let (pair_disjoint, _) = make("pair-disjoint", 1, 1).await;
        book(&db, customer, pair_disjoint, 1, span(day(10, 12), day(11, 0)), true).await;
        book(&db, customer, pair_disjoint, 1, span(day(11, 0), day(12, 0)), true).await;
        let (pair_overlapping, _) = make("pair-overlapping", 0, 2).await;
        book(&db, customer, pair_overlapping, 1, span(day(10, 12), day(12, 0)), true).await;
        book(&db, customer, pair_overlapping, 1, span(day(11, 0), day(12, 12)), true).await;
        let (big_booking, _) = make("big-booking", 1, 2).await;
        book(&db, customer, big_booking, 3, span(day(12, 0), day(12, 6)), true).await;
        let (maintained, maintained_unit) = make("maintained", 1, 0).await;
        block(&db, maintained_unit.unwrap(), maintained, day(11, 0), day(11, 6)).await;
        let (mixed, mixed_unit) = make("mixed", 1, 1).await;
        block(&db, mixed_unit.unwrap(), mixed, day(9, 0), day(11, 0)).await;
        book(&db, customer, mixed, 1, span(day(10, 18), day(12, 0)), true).await;
        let (cancelled, _) = make("cancelled", 1, 0).await;
        book(&db, customer, cancelled, 1, span(day(9, 0), day(14, 0)), false).await;
        let (empty, _) = make("empty", 0, 0).await;

        let query = parse_product_query(&window(from, to)).unwrap();
        let listed = repo.list_products(&query).await.unwrap();
        let mut skus = ids(&listed);
        skus.sort();
        assert_eq!(skus, ["cancelled", "free", "pair-disjoint", "touching"]);
        let Listing::Offset(page) = listed else { panic!("offset page expected") };
        assert_eq!(page.total, 4, "the count applies the same filter");
        for excluded in [booked, booked_inside, buffered, pair_overlapping, big_booking, maintained, mixed, empty] {
            assert!(page.items.iter().all(|i| i.product.id != excluded));
        }
        for included in [free, touching, pair_disjoint, cancelled] {
            assert!(page.items.iter().any(|i| i.product.id == included));
        }

        // The same data outside every hold: everything with stock is free.
        let later = parse_product_query(&window(day(20, 0), day(21, 0))).unwrap();
        assert_eq!(repo.list_products(&later).await.unwrap().items().len(), 11);
        // A window that only touches the maintenance block's end sees the unit free again.
        let after_block = parse_product_query(&window(day(11, 6), day(11, 7))).unwrap();
        assert!(repo.list_products(&after_block).await.unwrap().items().iter().any(|i| i.product.id == maintained));

        // The filter costs no statement of its own: count, page, categories, stock summaries.
        let before = db.statement_stats().executed();
        repo.list_products(&query).await.unwrap();
        assert_eq!(db.statement_stats().executed() - before, 4);
    }

    #[test]
    fn the_window_needs_both_bounds_in_order_and_at_most_366_days() {
        let at = |d: DateTime<Utc>| d.to_rfc3339();
        let field = |pairs: &[(&str, &str)]| match parse_product_query(&params(pairs)) {
            Err(RepoError::InvalidQuery { field, .. }) => field,
            other => panic!("{pairs:?} gave {other:?}"),
        };
        let (from, to) = (at(day(10, 0)), at(day(11, 0)));
        assert_eq!(field(&[("available_from", &from)]), "available_to");
        assert_eq!(field(&[("available_to", &to)]), "available_from");
        assert_eq!(field(&[("available_from", &to), ("available_to", &from)]), "available_to");
        assert_eq!(field(&[("available_from", &from), ("available_to", &from)]), "available_to");
        assert_eq!(field(&[("available_from", "tomorrow"), ("available_to", &to)]), "available_from");
        let year_on = at(day(10, 0) + Duration::days(366));
        assert!(parse_product_query(&params(&[("available_from", &from), ("available_to", &year_on)])).is_ok());
        let too_far = at(day(10, 0) + Duration::days(366) + Duration::seconds(1));
        assert_eq!(field(&[("available_from", &from), ("available_to", &too_far)]), "available_to");
        assert!(
            parse_product_query(&params(&[("available_from", "2027-03-10"), ("available_to", "2027-03-12")])).is_ok()
        );
    }
}
