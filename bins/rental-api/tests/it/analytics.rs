//! Analytics and CSV exports: staff only, parameters checked, CSV streamed page by page.

use actix_web::test::{self, TestRequest};
use chrono::{DateTime, Duration, Utc};
use rental_domain::pricing::{ProductTerms, RateCard};
use rental_domain::{CategoryName, Currency, InvoiceStatus, Money, OrderStatus};
use rental_repo::{
    CatalogueRepo, CatalogueStore, ImportedInvoice, ImportedLine, ImportedOrder, NewCategoryRecord, NewLocationRecord,
    NewProductRecord, OrderImporter,
};
use serde_json::json;
use uuid::Uuid;

use crate::support::{admin_token, app, bearer, context, customer_token, send};

const ENDPOINTS: [&str; 6] = [
    "/api/v1/analytics/revenue?from=2026-01-01&to=2026-02-01",
    "/api/v1/analytics/popular-products",
    "/api/v1/analytics/status-distribution",
    "/api/v1/analytics/utilization?from=2026-01-01&to=2026-02-01",
    "/api/v1/exports/orders.csv?from=2026-01-01&to=2026-02-01",
    "/api/v1/exports/invoices.csv?from=2026-01-01&to=2026-02-01",
];

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

/// Imports `count` closed orders of one product (EUR 1000/day, capacity 5), one a day from 2026-01-01, each
/// rented for one day with a paid invoice issued at its end: subtotal 1000, tax 20%, total 1200.
async fn import_orders(db: &rental_repo::Database, customer_id: Uuid, count: i64) {
    let catalogue = CatalogueRepo::new(db.clone());
    let eur = Currency::parse("EUR").unwrap();
    let terms = ProductTerms {
        rates: RateCard::new(Money::new(1000, eur), None, None).unwrap(),
        deposit_per_unit: Money::zero(eur),
        late_fee_per_day: Money::zero(eur),
        buffer_minutes: 0,
    };
    let product = db
        .write(async |uow| {
            let at = Utc::now();
            let tools = NewCategoryRecord { name: CategoryName::parse("Tools").unwrap(), description: None };
            let category = catalogue.create_category(uow, tools, at).await?;
            let depot =
                catalogue.create_location(uow, NewLocationRecord { name: "Depot".into(), address: None }, at).await?;
            let new = NewProductRecord {
                category_id: category.id,
                sku: "DRILL".into(),
                name: "Drill, \"heavy\"".into(),
                description: None,
                terms,
                is_active: true,
            };
            let product = catalogue.create_product(uow, new, at).await?;
            catalogue.set_stock_level(uow, product.id, depot.id, 5, at).await?;
            Ok::<_, rental_repo::RepoError>(product)
        })
        .await
        .unwrap();
    let start = at("2026-01-01T00:00:00Z");
    let orders = (0..count)
        .map(|i| {
            let starts_at = start + Duration::hours(i * 24);
            let ends_at = starts_at + Duration::hours(24);
            ImportedOrder {
                customer_id,
                status: OrderStatus::Closed,
                currency: eur,
                tax_rate_bp: 2000,
                created_at: starts_at - Duration::hours(1),
                picked_up_at: Some(starts_at),
                returned_at: Some(ends_at),
                notes: None,
                lines: vec![ImportedLine {
                    product_id: product.id,
                    quantity: 1,
                    starts_at,
                    ends_at,
                    terms: product.terms,
                }],
                invoice: Some(ImportedInvoice {
                    status: InvoiceStatus::Paid,
                    issued_at: Some(ends_at),
                    charges: Vec::new(),
                }),
            }
        })
        .collect();
    let importer = OrderImporter::new(db.clone());
    db.write(async |uow| importer.import(uow, orders).await).await.unwrap();
}

/// The id of the token's user (any user may be the customer of imported orders).
async fn my_id<S, B>(app: &S, token: &str) -> Uuid
where
    S: actix_web::dev::Service<
            actix_http::Request,
            Response = actix_web::dev::ServiceResponse<B>,
            Error = actix_web::Error,
        >,
    B: actix_web::body::MessageBody,
{
    let reply = send(app, bearer(TestRequest::get().uri("/api/v1/users/me"), token)).await;
    reply.body["id"].as_str().unwrap().parse().unwrap()
}

#[actix_web::test]
async fn analytics_need_a_staff_token() {
    let ctx = context().await;
    let app = app(&ctx).await;
    let customer = customer_token(&app, "carol@example.com").await;
    for uri in ENDPOINTS {
        send(&app, TestRequest::get().uri(uri)).await.assert_error(401, "unauthorized");
        send(&app, bearer(TestRequest::get().uri(uri), &customer)).await.assert_error(403, "forbidden");
    }
}

#[actix_web::test]
async fn bad_parameters_are_400() {
    let ctx = context().await;
    let app = app(&ctx).await;
    let admin = admin_token(&ctx, &app).await;
    for uri in [
        "/api/v1/analytics/revenue",
        "/api/v1/analytics/revenue?from=2026-01-01",
        "/api/v1/analytics/revenue?from=yesterday&to=2026-01-03",
        "/api/v1/analytics/revenue?from=2026-13-01&to=2027-01-03",
        "/api/v1/analytics/popular-products?limit=0",
        "/api/v1/analytics/popular-products?limit=101",
        "/api/v1/analytics/popular-products?limit=ten",
        "/api/v1/analytics/popular-products?limit=-1",
        "/api/v1/analytics/utilization?from=2026-01-01",
        "/api/v1/analytics/utilization?from=2026-01-01&to=2026-02-01&limit=0",
        "/api/v1/exports/orders.csv?from=2026-01-01",
        "/api/v1/exports/invoices.csv?to=2026-01-01",
    ] {
        let reply = send(&app, bearer(TestRequest::get().uri(uri), &admin)).await;
        assert_eq!(reply.status.as_u16(), 400, "{uri}: {}", reply.body);
        reply.assert_error(400, "invalid_query");
    }
}

/// OpenAPI cannot say that `to` must follow `from`, so every window is a valid request: an empty or inverted one
/// selects nothing, and a long one is answered whole (these were 400 before the contract was enforced).
#[actix_web::test]
async fn empty_inverted_and_long_windows_are_answered() {
    let ctx = context().await;
    let app = app(&ctx).await;
    let admin = admin_token(&ctx, &app).await;
    let me = my_id(&app, &admin).await;
    import_orders(&ctx.state.db, me, 40).await;
    let get = |uri: &str| send(&app, bearer(TestRequest::get().uri(uri), &admin));

    for (uri, from, to) in [
        ("/api/v1/analytics/revenue?from=2026-01-10&to=2026-01-10", "2026-01-10", "2026-01-10"),
        ("/api/v1/analytics/revenue?from=2026-02-01&to=2026-01-01", "2026-02-01", "2026-02-01"),
    ] {
        let reply = get(uri).await;
        assert_eq!(reply.status, 200, "{uri}: {}", reply.body);
        assert_eq!(reply.body, json!({"from": from, "to": to, "currencies": []}), "{uri}");
    }
    for uri in [
        "/api/v1/analytics/popular-products?from=2026-02-01&to=2026-01-01",
        "/api/v1/analytics/utilization?from=2026-01-20T00:00:00Z&to=2026-01-20T00:00:00Z",
        "/api/v1/analytics/utilization?from=2026-02-01&to=2026-01-01",
    ] {
        let reply = get(uri).await;
        assert_eq!(reply.status, 200, "{uri}: {}", reply.body);
        assert_eq!(reply.body["items"], json!([]), "{uri}");
    }
    let export = test::call_service(
        &app,
        bearer(TestRequest::get().uri("/api/v1/exports/orders.csv?from=2026-02-01&to=2026-01-01"), &admin).to_request(),
    )
    .await;
    assert_eq!(export.status(), 200);
    let export = String::from_utf8(test::read_body(export).await.to_vec()).unwrap();
    assert_eq!(export.lines().count(), 1, "the header row only: {export}");

    // The same invoices and rentals seen through a window of several years.
    let year = get("/api/v1/analytics/revenue?from=2026-01-01&to=2027-01-01").await;
    let years = get("/api/v1/analytics/revenue?from=2020-01-01&to=2030-01-01").await;
    assert_eq!(years.status, 200, "{}", years.body);
    assert_eq!(years.body["currencies"], year.body["currencies"]);
    assert_ne!(year.body["currencies"], json!([]), "the fixture has revenue in 2026");
    let utilization = get("/api/v1/analytics/utilization?from=2020-01-01&to=2030-01-01").await;
    assert_eq!(utilization.status, 200, "{}", utilization.body);
    assert_ne!(utilization.body["items"], json!([]), "the fixture rents products in 2026");
}

#[actix_web::test]
async fn reports_answer_with_the_aggregates() {
    let ctx = context().await;
    let app = app(&ctx).await;
    let admin = admin_token(&ctx, &app).await;
    let me = my_id(&app, &admin).await;
    import_orders(&ctx.state.db, me, 40).await;

    // January: 30 invoices (issued at the ends of days 1..30, from the 2nd to the 31st), each 1200.
    let reply = send(
        &app,
        bearer(TestRequest::get().uri("/api/v1/analytics/revenue?from=2026-01-01&to=2026-02-01T00:00:00Z"), &admin),
    )
    .await;
    assert_eq!(reply.status.as_u16(), 200, "{}", reply.body);
    let eur = &reply.body["currencies"][0];
    assert_eq!(eur["currency"], "EUR");
    assert_eq!((eur["total_minor"].as_i64(), eur["count"].as_i64()), (Some(30 * 1200), Some(30)));
    assert_eq!(eur["average_minor"], 1200);
    assert_eq!(eur["days"].as_array().unwrap().len(), 30);
    assert_eq!(eur["days"][0], json!({"date": "2026-01-02", "total_minor": 1200, "count": 1}));

    let reply = send(&app, bearer(TestRequest::get().uri("/api/v1/analytics/status-distribution"), &admin)).await;
    assert_eq!(reply.status.as_u16(), 200, "{}", reply.body);
    assert_eq!(reply.body["total"], 40);
    let statuses: Vec<(&str, i64)> = reply.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| (i["status"].as_str().unwrap(), i["count"].as_i64().unwrap()))
        .collect();
    assert_eq!(
        statuses,
        [("quote", 0), ("reserved", 0), ("picked_up", 0), ("returned", 0), ("closed", 40), ("cancelled", 0)]
    );

    let reply = send(&app, bearer(TestRequest::get().uri("/api/v1/analytics/popular-products?limit=1"), &admin)).await;
    assert_eq!(reply.status.as_u16(), 200, "{}", reply.body);
    assert_eq!(reply.body["items"][0]["quantity"], 40);
    assert_eq!(reply.body["items"][0]["revenue_minor"], 40_000);

    // Ten days, one unit of five rented all the time: 20%.
    let reply = send(
        &app,
        bearer(TestRequest::get().uri("/api/v1/analytics/utilization?from=2026-01-05&to=2026-01-15"), &admin),
    )
    .await;
    assert_eq!(reply.status.as_u16(), 200, "{}", reply.body);
    let utilization = reply.body["items"][0]["utilization"].as_f64().unwrap();
    assert!((utilization - 0.2).abs() < 1e-9, "{}", reply.body);
}

#[actix_web::test]
async fn csv_exports_stream_every_row_after_a_header() {
    let ctx = context().await;
    let app = app(&ctx).await;
    let admin = admin_token(&ctx, &app).await;
    let me = my_id(&app, &admin).await;
    // More than one page of 1,000 rows.
    import_orders(&ctx.state.db, me, 1_205).await;

    let uri = "/api/v1/exports/orders.csv?from=2026-01-01&to=2030-01-01";
    let res = test::call_service(&app, bearer(TestRequest::get().uri(uri), &admin).to_request()).await;
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(res.headers().get("content-type").unwrap(), "text/csv; charset=utf-8");
    let body = String::from_utf8(test::read_body(res).await.to_vec()).unwrap();
    let lines: Vec<&str> = body.lines().collect();
    assert_eq!(
        lines[0],
        "id,customer_id,status,currency,subtotal_minor,tax_minor,total_minor,deposit_minor,starts_at,ends_at,created_at"
    );
    // Created an hour before their start: the first order on 2025-12-31 is outside the window.
    assert_eq!(lines.len(), 1 + 1_204);
    let first: Vec<&str> = lines[1].split(',').collect();
    assert_eq!(&first[2..8], ["closed", "EUR", "1000", "200", "1200", "0"]);
    assert_eq!(first[10], "2026-01-01T23:00:00Z");

    let uri = "/api/v1/exports/invoices.csv?from=2026-01-01&to=2026-01-11";
    let res = test::call_service(&app, bearer(TestRequest::get().uri(uri), &admin).to_request()).await;
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(res.headers().get("content-type").unwrap(), "text/csv; charset=utf-8");
    let body = String::from_utf8(test::read_body(res).await.to_vec()).unwrap();
    let lines: Vec<&str> = body.lines().collect();
    assert_eq!(
        lines[0],
        "number,status,order_id,customer_id,currency,subtotal_minor,tax_minor,total_minor,paid_minor,issued_at"
    );
    // Issued at the end of days 1..10: 2026-01-02 .. 2026-01-11 (excluded).
    assert_eq!(lines.len(), 1 + 9);
    assert!(lines[1].starts_with("INV-2026-000001,paid,"), "{}", lines[1]);
    assert!(lines[1].ends_with(",1200,1200,2026-01-02T00:00:00Z"), "{}", lines[1]);

    // An empty window is just the header.
    let uri = "/api/v1/exports/invoices.csv?from=2020-01-01&to=2020-01-02";
    let res = test::call_service(&app, bearer(TestRequest::get().uri(uri), &admin).to_request()).await;
    let body = String::from_utf8(test::read_body(res).await.to_vec()).unwrap();
    assert_eq!(body.lines().count(), 1);
}

#[actix_web::test]
async fn the_dashboard_counts_every_table_and_is_cached_until_cleared() {
    let ctx = context().await;
    ctx.clock.set(at("2026-01-05T12:00:00Z"));
    let app = app(&ctx).await;
    let admin = admin_token(&ctx, &app).await;
    let customer = customer_token(&app, "cus@example.com").await;
    let me = my_id(&app, &admin).await;
    import_orders(&ctx.state.db, me, 10).await;

    let dashboard = || send(&app, bearer(TestRequest::get().uri("/api/v1/dashboard/stats"), &admin));
    let first = dashboard().await;
    assert_eq!(first.status, 200, "{}", first.body);
    let body = &first.body;
    assert_eq!(body["users"]["total"], 2);
    assert_eq!(body["users"]["active"], 2);
    assert_eq!(body["users"]["inactive"], 0);
    assert_eq!(body["users"]["superusers"], 1);
    assert_eq!(body["users"]["new_today"], 2);
    assert_eq!(body["users"]["new_this_week"], 2);
    let closed = body["rentals"]["by_status"].as_array().unwrap().iter().find(|s| s["status"] == "closed").unwrap();
    assert_eq!(closed["count"], 10);
    assert_eq!(body["rentals"]["active_now"], 0);
    assert_eq!(body["rentals"]["overdue"], 0);
    // Invoices are issued at the end of each one-day rental: on Jan 2, 3, 4 and 5 so far (1200 each).
    assert_eq!(
        body["revenue"],
        json!([{"currency": "EUR", "today_minor": 1200, "this_month_minor": 4800, "last_30_days_minor": 4800}])
    );
    assert_eq!(body["utilization"]["capacity"], 5);
    assert_eq!(body["utilization"]["held_now"], 0);
    assert_eq!(first.headers.get("cache-control").unwrap(), "private, no-cache");

    // A new user shows after the cached figures are cleared, not before.
    customer_token(&app, "second@example.com").await;
    assert_eq!(dashboard().await.body["users"]["total"], 2, "served from the cache");
    let clear = |ns: &str| {
        send(&app, bearer(TestRequest::post().uri(&format!("/api/v1/admin/cache/clear?namespace={ns}")), &admin))
    };
    let cleared = clear("dashboard").await;
    assert_eq!(cleared.status, 200, "{}", cleared.body);
    assert_eq!(cleared.body, json!({"cleared": ["dashboard"]}));
    assert_eq!(dashboard().await.body["users"]["total"], 3);
    clear("no-such-cache").await.assert_error(404, "unknown_cache_namespace");
    let all = send(&app, bearer(TestRequest::post().uri("/api/v1/admin/cache/clear"), &admin)).await;
    assert!(all.body["cleared"].as_array().unwrap().len() >= 3, "{}", all.body);

    // Staff only; clearing is for admins.
    let as_customer = send(&app, bearer(TestRequest::get().uri("/api/v1/dashboard/stats"), &customer)).await;
    as_customer.assert_error(403, "forbidden");
    let cleared_by_customer = send(&app, bearer(TestRequest::post().uri("/api/v1/admin/cache/clear"), &customer)).await;
    cleared_by_customer.assert_error(403, "forbidden");
    send(&app, TestRequest::get().uri("/api/v1/dashboard/stats")).await.assert_error(401, "unauthorized");
}
