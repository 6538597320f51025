//! Rentals over HTTP: reservation without double booking, the lifecycle with its event log, pricing
//! snapshots, invoices with gap-free numbers, availability, maintenance, listing and bad input.

use actix_http::Request;
use actix_web::dev::{Service, ServiceResponse};
use actix_web::test::TestRequest;
use chrono::{DateTime, Duration, DurationRound, Utc};
use sea_orm::{ConnectionTrait, Statement};
use serde_json::{Value, json};

use crate::support::{Ctx, app, bearer, context, context_with_pool, customer_token, login, send, staff_token};

/// Midnight `days` from now, as RFC 3339.
pub(crate) fn day(days: i64) -> String {
    at(days).to_rfc3339()
}

pub(crate) fn at(days: i64) -> DateTime<Utc> {
    Utc::now().duration_trunc(Duration::days(1)).unwrap() + Duration::days(days)
}

/// Creates a category, a location and a product with `units` tracked units; returns (product id, unit ids).
pub(crate) async fn product<S, B>(
    app: &S,
    staff: &str,
    sku: &str,
    currency: &str,
    units: usize,
) -> (String, Vec<String>)
where
    S: Service<Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: actix_web::body::MessageBody,
{
    let category = send(
        app,
        bearer(TestRequest::post().uri("/api/v1/categories"), staff).set_json(json!({"name": format!("Cat {sku}")})),
    )
    .await;
    let location = send(
        app,
        bearer(TestRequest::post().uri("/api/v1/locations"), staff).set_json(json!({"name": format!("Depot {sku}")})),
    )
    .await;
    let created = send(
        app,
        bearer(TestRequest::post().uri("/api/v1/products"), staff).set_json(json!({
            "category_id": category.body["id"], "sku": sku, "name": format!("Product {sku}"), "currency": currency,
            "price_per_day_minor": 1_000, "price_per_week_minor": 5_000, "deposit_minor": 10_000,
            "late_fee_per_day_minor": 500, "buffer_minutes": 60,
        })),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let id = created.body["id"].as_str().unwrap().to_owned();
    let mut unit_ids = Vec::new();
    if units > 0 {
        let list: Vec<Value> = (0..units)
            .map(|i| json!({"serial_number": format!("{sku}-{i}"), "location_id": location.body["id"]}))
            .collect();
        let added = send(
            app,
            bearer(TestRequest::post().uri(&format!("/api/v1/products/{id}/units")), staff)
                .set_json(json!({"units": list})),
        )
        .await;
        assert_eq!(added.status, 201, "{}", added.body);
        unit_ids =
            added.body["units"].as_array().unwrap().iter().map(|u| u["id"].as_str().unwrap().to_owned()).collect();
    }
    (id, unit_ids)
}

pub(crate) fn rental(product_id: &str, quantity: i64, from: i64, to: i64) -> Value {
    json!({"lines": [{"product_id": product_id, "quantity": quantity, "start": day(from), "end": day(to)}]})
}

pub(crate) async fn rentals_count(ctx: &Ctx) -> (i64, i64) {
    let conn = ctx.state.db.connection();
    let backend = conn.get_database_backend();
    let count = |sql: &str| Statement::from_string(backend, sql.to_owned());
    let orders = conn.query_one_raw(count("SELECT COUNT(*) FROM rental_orders")).await.unwrap().unwrap();
    let invoices = conn.query_one_raw(count("SELECT COUNT(*) FROM invoices")).await.unwrap().unwrap();
    (orders.try_get_by_index::<i64>(0).unwrap(), invoices.try_get_by_index::<i64>(0).unwrap())
}

#[actix_web::test]
async fn a_rental_goes_through_its_whole_life() {
    let ctx = context().await;
    let app = app(&ctx).await;
    let staff = staff_token(&ctx, &app).await;
    let jane = customer_token(&app, "jane@example.com").await;
    let bob = customer_token(&app, "bob@example.com").await;
    let (drill, units) = product(&app, &staff, "DRL-1", "EUR", 2).await;

    // 2 drills for 8 days: one week (5,000) + one day (1,000) each, cheaper than 8 days (8,000).
    let created =
        send(&app, bearer(TestRequest::post().uri("/api/v1/rentals"), &jane).set_json(rental(&drill, 2, 1, 9))).await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(created.body["status"], "reserved");
    assert_eq!(created.body["subtotal_minor"], 12_000);
    assert_eq!(created.body["deposit_minor"], 20_000);
    let id = created.body["id"].as_str().unwrap().to_owned();

    // A later price change does not touch the order.
    let changed = send(
        &app,
        bearer(TestRequest::patch().uri(&format!("/api/v1/products/{drill}")), &staff)
            .set_json(json!({"price_per_day_minor": 9_999})),
    )
    .await;
    assert_eq!(changed.status, 200, "{}", changed.body);
    let detail = send(&app, bearer(TestRequest::get().uri(&format!("/api/v1/rentals/{id}")), &jane)).await;
    assert_eq!(detail.status, 200, "{}", detail.body);
    let line = &detail.body["lines"][0];
    assert_eq!(
        (line["price_per_day_minor"].as_i64(), line["weeks"].as_i64(), line["days"].as_i64()),
        (Some(1_000), Some(1), Some(1))
    );
    assert_eq!(detail.body["customer"]["email"], "jane@example.com");
    assert_eq!(detail.body["products"][0]["name"], "Product DRL-1");
    let invoice = &detail.body["invoice"];
    assert_eq!(invoice["status"], "open");
    let number = invoice["number"].as_str().unwrap();
    assert_eq!(number, format!("INV-{}-000001", Utc::now().format("%Y")));
    assert_eq!(invoice["total_minor"], 12_000);
    assert_eq!(detail.body["payments"], json!([]));

    // Nobody else sees it; the customer cannot run the desk.
    send(&app, bearer(TestRequest::get().uri(&format!("/api/v1/rentals/{id}")), &bob))
        .await
        .assert_error(404, "not_found");
    send(&app, bearer(TestRequest::post().uri(&format!("/api/v1/rentals/{id}/pickup")), &jane))
        .await
        .assert_error(403, "forbidden");

    // Both drills are held: an overlapping request is refused with the nearest free periods.
    let clash =
        send(&app, bearer(TestRequest::post().uri("/api/v1/rentals"), &bob).set_json(rental(&drill, 1, 5, 7))).await;
    clash.assert_error(409, "unavailable");
    let failed = &clash.body["error"]["lines"][0];
    assert_eq!((failed["line"].as_i64(), failed["available"].as_i64()), (Some(0), Some(0)));
    let later = failed["nearest_free"].as_array().unwrap().last().unwrap().clone();
    // Free again at the end plus the one-hour buffer.
    assert_eq!(later["start"].as_str().map(|s| s.parse::<DateTime<Utc>>().unwrap()), Some(at(9) + Duration::hours(1)));
    let availability = send(
        &app,
        TestRequest::get().uri(&format!(
            "/api/v1/products/{drill}/availability?from={}&to={}",
            at(0).format("%Y-%m-%dT%H:%M:%SZ"),
            at(12).format("%Y-%m-%dT%H:%M:%SZ")
        )),
    )
    .await;
    assert_eq!(availability.status, 200, "{}", availability.body);
    assert_eq!(availability.body["capacity"], 2);
    assert_eq!(availability.body["available"], 0);
    let days: Vec<i64> =
        availability.body["days"].as_array().unwrap().iter().map(|d| d["available"].as_i64().unwrap()).collect();
    assert_eq!(days, vec![2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 2], "day 9 is still held by the buffer");

    // Desk: illegal steps are 409 naming the allowed ones; pickup hands out both units.
    let early = send(&app, bearer(TestRequest::post().uri(&format!("/api/v1/rentals/{id}/return")), &staff)).await;
    early.assert_error(409, "illegal_transition");
    assert!(early.body["error"]["message"].as_str().unwrap().contains("picked_up, cancelled"), "{}", early.body);
    let picked = send(&app, bearer(TestRequest::post().uri(&format!("/api/v1/rentals/{id}/pickup")), &staff)).await;
    assert_eq!(picked.body["status"], "picked_up", "{}", picked.body);
    send(&app, bearer(TestRequest::post().uri(&format!("/api/v1/rentals/{id}/cancel")), &jane))
        .await
        .assert_error(409, "illegal_transition");

    // The drills come back 25 hours after the rental's end: 2 started days of late fee per drill.
    ctx.clock.set(at(9) + Duration::hours(25));
    // Days have passed by the services' clock, so the morning's access tokens have expired: log in again.
    let expired = send(&app, bearer(TestRequest::get().uri("/api/v1/users/me"), &staff)).await;
    expired.assert_error(401, "unauthorized");
    assert_eq!(expired.body["error"]["message"], "access token expired");
    let staff = login(&app, "staff@example.com", "staff-password").await;
    let jane = login(&app, "jane@example.com", "customer-pw").await;
    let bob = login(&app, "bob@example.com", "customer-pw").await;
    let returned = send(
        &app,
        bearer(TestRequest::post().uri(&format!("/api/v1/rentals/{id}/return")), &staff).set_json(json!({
            "units": [{"unit_id": units[0], "condition": "damaged", "damage_note": "cracked housing", "damage_charge_minor": 2_500}],
            "note": "one cracked",
        })),
    )
    .await;
    assert_eq!(returned.body["status"], "returned", "{}", returned.body);
    let detail = send(&app, bearer(TestRequest::get().uri(&format!("/api/v1/rentals/{id}")), &staff)).await;
    let kinds: Vec<(&str, i64)> = detail.body["invoice"]["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| (l["kind"].as_str().unwrap(), l["amount_minor"].as_i64().unwrap()))
        .collect();
    assert_eq!(kinds, vec![("rental", 12_000), ("late_fee", 2_000), ("damage", 2_500)]);
    assert_eq!(detail.body["invoice"]["total_minor"], 16_500);
    let assigned: Vec<&Value> = detail.body["lines"][0]["units"].as_array().unwrap().iter().collect();
    assert_eq!(assigned.len(), 2);
    assert!(assigned.iter().any(|u| u["returned_condition"] == "damaged" && u["damage_note"] == "cracked housing"));

    // Paid in full at the desk, then closed.
    let invoice_id = detail.body["invoice"]["id"].as_str().unwrap().to_owned();
    let paid = send(
        &app,
        bearer(TestRequest::post().uri(&format!("/api/v1/invoices/{invoice_id}/payments")), &staff)
            .set_json(json!({"amount_minor": 16_500, "currency": "EUR", "method": "card"})),
    )
    .await;
    assert_eq!(paid.status, 201, "{}", paid.body);
    let invoice = send(&app, bearer(TestRequest::get().uri(&format!("/api/v1/invoices/{invoice_id}")), &jane)).await;
    assert_eq!(
        (invoice.body["status"].as_str(), invoice.body["amount_paid_minor"].as_i64()),
        (Some("paid"), Some(16_500))
    );
    send(&app, bearer(TestRequest::get().uri(&format!("/api/v1/invoices/{invoice_id}")), &bob))
        .await
        .assert_error(404, "not_found");
    let closed = send(&app, bearer(TestRequest::post().uri(&format!("/api/v1/rentals/{id}/close")), &staff)).await;
    assert_eq!(closed.body["status"], "closed", "{}", closed.body);

    let events = send(&app, bearer(TestRequest::get().uri(&format!("/api/v1/rentals/{id}/events")), &jane)).await;
    let steps: Vec<(Value, Value)> =
        events.body.as_array().unwrap().iter().map(|e| (e["from"].clone(), e["to"].clone())).collect();
    assert_eq!(
        steps,
        vec![
            (Value::Null, json!("reserved")),
            (json!("reserved"), json!("picked_up")),
            (json!("picked_up"), json!("returned")),
            (json!("returned"), json!("closed")),
        ]
    );
    assert_eq!(events.body[2]["note"], "one cracked");
}

#[actix_web::test]
async fn the_order_detail_costs_the_same_statements_whatever_its_size() {
    let ctx = context().await;
    let app = app(&ctx).await;
    let staff = staff_token(&ctx, &app).await;
    let mut products = Vec::new();
    for sku in ["A-1", "B-1", "C-1", "D-1"] {
        products.push(product(&app, &staff, sku, "EUR", 1).await.0);
    }
    let small =
        send(&app, bearer(TestRequest::post().uri("/api/v1/rentals"), &staff).set_json(rental(&products[0], 1, 1, 2)))
            .await;
    let lines: Vec<Value> =
        products[1..].iter().map(|p| json!({"product_id": p, "quantity": 1, "start": day(1), "end": day(3)})).collect();
    let big =
        send(&app, bearer(TestRequest::post().uri("/api/v1/rentals"), &staff).set_json(json!({"lines": lines}))).await;
    assert_eq!(big.status, 201, "{}", big.body);
    let mut counts = Vec::new();
    for order in [&small, &big] {
        let id = order.body["id"].as_str().unwrap();
        for _ in 0..2 {
            // Work left behind by the reservations (settlement jobs marked done in a batch, notifications) runs in
            // the background on the same pool: let it finish so that only the detail's statements are counted.
            let mut before = ctx.state.db.statement_stats().executed();
            loop {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                let now = ctx.state.db.statement_stats().executed();
                if now == before {
                    break;
                }
                before = now;
            }
            let detail = send(&app, bearer(TestRequest::get().uri(&format!("/api/v1/rentals/{id}")), &staff)).await;
            assert_eq!(detail.status, 200);
            counts.push(ctx.state.db.statement_stats().executed() - before);
        }
    }
    assert_eq!(counts[1], counts[3], "1 line vs 3 lines: {counts:?}");
    assert!(counts[3] <= 8, "{counts:?}");
}

#[actix_web::test]
async fn quotes_hold_nothing_and_invoice_numbers_have_no_gaps() {
    let ctx = context().await;
    let app = app(&ctx).await;
    let staff = staff_token(&ctx, &app).await;
    let jane = customer_token(&app, "jane@example.com").await;
    let (saw, _) = product(&app, &staff, "SAW-1", "EUR", 1).await;

    let mut body = rental(&saw, 1, 2, 4);
    body["status"] = json!("quote");
    let quote = send(&app, bearer(TestRequest::post().uri("/api/v1/rentals"), &jane).set_json(body)).await;
    assert_eq!(quote.body["status"], "quote", "{}", quote.body);
    let quote_id = quote.body["id"].as_str().unwrap().to_owned();
    let draft = send(&app, bearer(TestRequest::get().uri(&format!("/api/v1/rentals/{quote_id}")), &jane)).await;
    assert_eq!(
        (draft.body["invoice"]["status"].as_str(), &draft.body["invoice"]["number"]),
        (Some("draft"), &Value::Null)
    );

    // The quote held nothing: staff reserve the only saw for a customer over the same days.
    let mut other = rental(&saw, 1, 3, 5);
    let customer_id = send(&app, bearer(TestRequest::get().uri("/api/v1/users/me"), &jane)).await.body["id"].clone();
    other["customer_id"] = customer_id;
    let reserved = send(&app, bearer(TestRequest::post().uri("/api/v1/rentals"), &staff).set_json(other)).await;
    assert_eq!(reserved.status, 201, "{}", reserved.body);

    // Confirming the quote now fails, and uses no invoice number.
    send(&app, bearer(TestRequest::post().uri(&format!("/api/v1/rentals/{quote_id}/confirm")), &jane))
        .await
        .assert_error(409, "unavailable");
    let reserved_id = reserved.body["id"].as_str().unwrap();
    let cancelled = send(
        &app,
        bearer(TestRequest::post().uri(&format!("/api/v1/rentals/{reserved_id}/cancel")), &jane)
            .set_json(json!({"note": "changed plans"})),
    )
    .await;
    assert_eq!(cancelled.body["status"], "cancelled", "{}", cancelled.body);
    let confirmed =
        send(&app, bearer(TestRequest::post().uri(&format!("/api/v1/rentals/{quote_id}/confirm")), &jane)).await;
    assert_eq!(confirmed.body["status"], "reserved", "{}", confirmed.body);

    let invoices = send(&app, bearer(TestRequest::get().uri("/api/v1/invoices?sort=created_at"), &staff)).await;
    let numbered: Vec<(String, String)> = invoices.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| (i["number"].as_str().unwrap_or("-").to_owned(), i["status"].as_str().unwrap().to_owned()))
        .collect();
    let year = Utc::now().format("%Y");
    assert_eq!(
        numbered,
        vec![(format!("INV-{year}-000002"), "open".into()), (format!("INV-{year}-000001"), "void".into())],
        "the quote's invoice (created first) got the second number when confirmed"
    );
    // Customers list only their own invoices; both are Jane's.
    let own = send(&app, bearer(TestRequest::get().uri("/api/v1/invoices"), &jane)).await;
    assert_eq!(own.body["total"], 2, "{}", own.body);

    // The reports count the confirmed quote (the saw, days 2 to 4) and no longer the cancelled reservation.
    let popular = send(&app, bearer(TestRequest::get().uri("/api/v1/analytics/popular-products"), &staff)).await;
    let items = popular.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{}", popular.body);
    assert_eq!(
        (items[0]["product_id"].as_str(), &items[0]["rental_count"], &items[0]["quantity"]),
        (Some(saw.as_str()), &json!(1), &json!(1))
    );
    let date = |days: i64| at(days).format("%Y-%m-%d").to_string();
    for (from, to, expected) in [(2, 4, 1.0), (3, 5, 0.5), (4, 6, 0.0)] {
        let uri = format!("/api/v1/analytics/utilization?from={}&to={}", date(from), date(to));
        let reply = send(&app, bearer(TestRequest::get().uri(&uri), &staff)).await;
        let got = reply.body["items"].as_array().unwrap().first().map_or(0.0, |i| i["utilization"].as_f64().unwrap());
        assert!((got - expected).abs() < 1e-9, "days {from}..{to}: {}", reply.body);
    }
    // The reports recorded every change still pending before reading.
    let conn = ctx.state.db.connection();
    let pending = Statement::from_string(
        conn.get_database_backend(),
        "SELECT COUNT(*) FROM order_lines WHERE usage_pending <> 0",
    );
    assert_eq!(conn.query_one_raw(pending).await.unwrap().unwrap().try_get_by_index::<i64>(0).unwrap(), 0);
}

#[actix_web::test]
async fn a_product_named_by_an_order_is_kept() {
    let ctx = context().await;
    let app = app(&ctx).await;
    let staff = staff_token(&ctx, &app).await;
    let jane = customer_token(&app, "jane@example.com").await;
    let (saw, _) = product(&app, &staff, "SAW-1", "EUR", 0).await;
    let mut body = rental(&saw, 1, 2, 4);
    body["status"] = json!("quote");
    let quote = send(&app, bearer(TestRequest::post().uri("/api/v1/rentals"), &jane).set_json(body)).await;
    assert_eq!(quote.status, 201, "{}", quote.body);

    // The order's history needs the product: deleting it is refused with 409, and the product stays.
    send(&app, bearer(TestRequest::delete().uri(&format!("/api/v1/products/{saw}")), &staff))
        .await
        .assert_error(409, "conflict");
    let kept = send(&app, TestRequest::get().uri(&format!("/api/v1/products/{saw}"))).await;
    assert_eq!(kept.status, 200, "{}", kept.body);
}

#[actix_web::test]
async fn maintenance_blocks_count_as_booked() {
    let ctx = context().await;
    let app = app(&ctx).await;
    let staff = staff_token(&ctx, &app).await;
    let (lift, units) = product(&app, &staff, "LFT-1", "EUR", 1).await;
    let block = send(
        &app,
        bearer(TestRequest::post().uri(&format!("/api/v1/units/{}/maintenance", units[0])), &staff)
            .set_json(json!({"start": day(3), "end": day(5), "reason": "hydraulics"})),
    )
    .await;
    assert_eq!(block.status, 201, "{}", block.body);
    send(&app, bearer(TestRequest::post().uri("/api/v1/rentals"), &staff).set_json(rental(&lift, 1, 4, 6)))
        .await
        .assert_error(409, "unavailable");
    let ok =
        send(&app, bearer(TestRequest::post().uri("/api/v1/rentals"), &staff).set_json(rental(&lift, 1, 5, 6))).await;
    assert_eq!(ok.status, 201, "touching the block is fine: {}", ok.body);
    // A block over a reservation is refused; unknown units are 404; customers may not block.
    send(
        &app,
        bearer(TestRequest::post().uri(&format!("/api/v1/units/{}/maintenance", units[0])), &staff)
            .set_json(json!({"start": day(5), "end": day(8)})),
    )
    .await
    .assert_error(409, "unavailable");
    send(
        &app,
        bearer(TestRequest::post().uri(&format!("/api/v1/units/{}/maintenance", uuid::Uuid::now_v7())), &staff)
            .set_json(json!({"start": day(5), "end": day(8)})),
    )
    .await
    .assert_error(404, "not_found");
    let jane = customer_token(&app, "jane@example.com").await;
    send(
        &app,
        bearer(TestRequest::post().uri(&format!("/api/v1/units/{}/maintenance", units[0])), &jane)
            .set_json(json!({"start": day(9), "end": day(10)})),
    )
    .await
    .assert_error(403, "forbidden");
}

#[actix_web::test]
async fn bad_input_is_refused_and_nothing_is_written() {
    let ctx = context().await;
    let app = app(&ctx).await;
    let staff = staff_token(&ctx, &app).await;
    let jane = customer_token(&app, "jane@example.com").await;
    let (eur, _) = product(&app, &staff, "EUR-1", "EUR", 3).await;
    let (usd, _) = product(&app, &staff, "USD-1", "USD", 3).await;
    let line = |product: &str, quantity: i64, start: String, end: String| json!({"product_id": product, "quantity": quantity, "start": start, "end": end});
    let past = (Utc::now() - Duration::days(2)).to_rfc3339();
    let cases: Vec<(Value, u16, &str, &str)> = vec![
        (json!({"lines": [line(&eur, 1, day(3), day(3))]}), 422, "validation_failed", "lines[0].end"),
        (json!({"lines": [line(&eur, 1, day(3), day(2))]}), 422, "validation_failed", "lines[0].end"),
        (json!({"lines": [line(&eur, 1, past, day(2))]}), 422, "validation_failed", "lines[0].start"),
        (json!({"lines": [line(&eur, 1, day(1), day(500))]}), 422, "validation_failed", "lines[0].end"),
        (json!({"lines": [line(&eur, 0, day(1), day(2))]}), 422, "validation_failed", "lines[0].quantity"),
        (json!({"lines": [line(&eur, -3, day(1), day(2))]}), 422, "validation_failed", "lines[0].quantity"),
        (
            json!({"lines": [line(&uuid::Uuid::now_v7().to_string(), 1, day(1), day(2))]}),
            422,
            "validation_failed",
            "lines[0].product_id",
        ),
        (
            json!({"lines": [line(&eur, 1, day(1), day(2)), line(&usd, 1, day(1), day(2))]}),
            422,
            "validation_failed",
            "lines[1].product_id",
        ),
        (json!({"lines": []}), 422, "validation_failed", "lines"),
        (json!({"lines": [line(&eur, 1, day(1), day(2))], "status": "picked_up"}), 422, "validation_failed", "status"),
        (json!({"lines": [line(&eur, 1, day(1), day(2))], "customer_id": uuid::Uuid::now_v7()}), 403, "forbidden", ""),
        (
            json!({"lines": [{"product_id": eur, "quantity": 1, "start": "tomorrow", "end": day(2)}]}),
            422,
            "invalid_body",
            "",
        ),
        (json!({"lines": [line(&eur, 1, day(1), day(2))], "price": 1}), 422, "invalid_body", ""),
    ];
    for (body, status, code, field) in cases {
        let reply = send(&app, bearer(TestRequest::post().uri("/api/v1/rentals"), &jane).set_json(&body)).await;
        reply.assert_error(status, code);
        if !field.is_empty() {
            let fields: Vec<&str> = reply.body["error"]["details"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d["field"].as_str().unwrap())
                .collect();
            assert!(fields.contains(&field), "{body}: {fields:?}");
        }
    }
    let many: Vec<Value> = (0..51).map(|_| line(&eur, 1, day(1), day(2))).collect();
    send(&app, bearer(TestRequest::post().uri("/api/v1/rentals"), &jane).set_json(json!({"lines": many})))
        .await
        .assert_error(422, "validation_failed");
    // Staff renting for an unknown customer.
    send(
        &app,
        bearer(TestRequest::post().uri("/api/v1/rentals"), &staff)
            .set_json(json!({"lines": [line(&eur, 1, day(1), day(2))], "customer_id": uuid::Uuid::now_v7()})),
    )
    .await
    .assert_error(422, "validation_failed");
    send(&app, TestRequest::post().uri("/api/v1/rentals").set_json(rental(&eur, 1, 1, 2)))
        .await
        .assert_error(401, "unauthorized");
    send(&app, bearer(TestRequest::get().uri("/api/v1/rentals/not-an-id"), &jane))
        .await
        .assert_error(400, "invalid_id");
    send(&app, bearer(TestRequest::get().uri("/api/v1/rentals?colour=red"), &jane))
        .await
        .assert_error(400, "invalid_query");
    send(&app, bearer(TestRequest::get().uri("/api/v1/rentals?status=lost"), &jane))
        .await
        .assert_error(400, "invalid_query");
    send(
        &app,
        TestRequest::get().uri(&format!(
            "/api/v1/products/{eur}/availability?from={}&to={}",
            at(3).format("%Y-%m-%dT%H:%M:%SZ"),
            at(1).format("%Y-%m-%dT%H:%M:%SZ")
        )),
    )
    .await
    .assert_error(422, "validation_failed");
    send(&app, TestRequest::get().uri(&format!("/api/v1/products/{eur}/availability?from=yesterday")))
        .await
        .assert_error(400, "invalid_query");
    assert_eq!(rentals_count(&ctx).await, (0, 0), "nothing was written");
}

#[actix_web::test]
async fn orders_are_listed_with_filters_and_both_paginations() {
    let ctx = context().await;
    let app = app(&ctx).await;
    let staff = staff_token(&ctx, &app).await;
    let jane = customer_token(&app, "jane@example.com").await;
    let bob = customer_token(&app, "bob@example.com").await;
    let (tent, _) = product(&app, &staff, "TNT-1", "EUR", 10).await;
    for (who, from) in [(&jane, 1), (&jane, 20), (&bob, 40)] {
        let r = send(
            &app,
            bearer(TestRequest::post().uri("/api/v1/rentals"), who).set_json(rental(&tent, 1, from, from + 2)),
        )
        .await;
        assert_eq!(r.status, 201, "{}", r.body);
    }
    let own = send(&app, bearer(TestRequest::get().uri("/api/v1/rentals"), &jane)).await;
    assert_eq!(own.body["total"], 2, "{}", own.body);
    let all = send(&app, bearer(TestRequest::get().uri("/api/v1/rentals"), &staff)).await;
    assert_eq!(all.body["total"], 3);
    let window = format!(
        "/api/v1/rentals?from={}&to={}",
        at(19).format("%Y-%m-%dT%H:%M:%SZ"),
        at(45).format("%Y-%m-%dT%H:%M:%SZ")
    );
    let overlapping = send(&app, bearer(TestRequest::get().uri(&window), &staff)).await;
    assert_eq!(overlapping.body["total"], 2, "{}", overlapping.body);
    let by_product = send(
        &app,
        bearer(
            TestRequest::get().uri(&format!("/api/v1/rentals?product={tent}&status=reserved&overdue=false")),
            &staff,
        ),
    )
    .await;
    assert_eq!(by_product.body["total"], 3, "{}", by_product.body);
    let first = send(&app, bearer(TestRequest::get().uri("/api/v1/rentals?limit=2&sort=starts_at"), &staff)).await;
    assert_eq!(first.body["items"].as_array().unwrap().len(), 2, "{}", first.body);
    let cursor = first.body["next_cursor"].as_str().unwrap();
    let second = send(
        &app,
        bearer(TestRequest::get().uri(&format!("/api/v1/rentals?limit=2&sort=starts_at&cursor={cursor}")), &staff),
    )
    .await;
    assert_eq!(second.body["items"].as_array().unwrap().len(), 1, "{}", second.body);
    assert_eq!(second.body["next_cursor"], Value::Null);
}

#[actix_web::test]
async fn fifty_concurrent_reservations_of_the_last_unit_make_one_booking() {
    // Enough connections for every request to be inside its own transaction at once.
    let ctx = context_with_pool(rental_testkit::TestDb::new().await, 50).await;
    let app = app(&ctx).await;
    let staff = staff_token(&ctx, &app).await;
    let jane = customer_token(&app, "jane@example.com").await;
    let (camera, _) = product(&app, &staff, "CAM-1", "EUR", 1).await;
    // 50 overlapping periods: each starts a little later, all cover day 10.
    let requests = (0..50).map(|i| {
        let start = at(5) + Duration::hours(i);
        let body = json!({"lines": [{"product_id": camera, "quantity": 1, "start": start, "end": at(11)}]});
        send(&app, bearer(TestRequest::post().uri("/api/v1/rentals"), &jane).set_json(body))
    });
    let replies = futures_util::future::join_all(requests).await;
    let created = replies.iter().filter(|r| r.status == 201).count();
    let refused = replies.iter().filter(|r| r.status == 409 && r.code() == "unavailable").count();
    assert_eq!((created, refused), (1, 49), "{:?}", replies.iter().map(|r| r.status).collect::<Vec<_>>());
    assert_eq!(ctx.state.services.rentals.count_overbooked().await.unwrap(), 0);
    assert_eq!(rentals_count(&ctx).await, (1, 1));
    // The check is not blind: with the camera's only unit gone, the booking is overbooked.
    let conn = ctx.state.db.connection();
    let backend = conn.get_database_backend();
    let sql = if backend == sea_orm::DbBackend::Postgres {
        "DELETE FROM units WHERE product_id = $1"
    } else {
        "DELETE FROM units WHERE product_id = ?"
    };
    let camera_id: uuid::Uuid = camera.parse().unwrap();
    conn.execute_raw(Statement::from_sql_and_values(backend, sql, [camera_id.into()])).await.unwrap();
    assert_eq!(ctx.state.services.rentals.count_overbooked().await.unwrap(), 1);
}

#[actix_web::test]
async fn concurrent_reservations_get_gap_free_invoice_numbers() {
    let ctx = context_with_pool(rental_testkit::TestDb::new().await, 30).await;
    let app = app(&ctx).await;
    let staff = staff_token(&ctx, &app).await;
    let jane = customer_token(&app, "jane@example.com").await;
    let (tent, _) = product(&app, &staff, "TNT-9", "EUR", 20).await;
    let requests = (0..20).map(|_| {
        send(&app, bearer(TestRequest::post().uri("/api/v1/rentals"), &jane).set_json(rental(&tent, 1, 2, 4)))
    });
    let replies = futures_util::future::join_all(requests).await;
    assert!(replies.iter().all(|r| r.status == 201), "{:?}", replies.iter().map(|r| &r.body).collect::<Vec<_>>());
    let invoices = send(&app, bearer(TestRequest::get().uri("/api/v1/invoices?per_page=100"), &staff)).await;
    let mut numbers: Vec<String> = invoices.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            i["number"].as_str().expect("every issued invoice is numbered when its reservation answers").to_owned()
        })
        .collect();
    numbers.sort();
    let year = Utc::now().format("%Y");
    let expected: Vec<String> = (1..=20).map(|n| format!("INV-{year}-{n:06}")).collect();
    assert_eq!(numbers, expected);
}

#[actix_web::test]
async fn rentals_are_in_the_openapi_document() {
    let ctx = context().await;
    let app = app(&ctx).await;
    let doc = send(&app, TestRequest::get().uri("/api/v1/openapi.json")).await;
    let paths = doc.body["paths"].as_object().unwrap();
    for (path, method) in [
        ("/api/v1/rentals", "get"),
        ("/api/v1/rentals", "post"),
        ("/api/v1/rentals/{id}", "get"),
        ("/api/v1/rentals/{id}/events", "get"),
        ("/api/v1/rentals/{id}/confirm", "post"),
        ("/api/v1/rentals/{id}/pickup", "post"),
        ("/api/v1/rentals/{id}/return", "post"),
        ("/api/v1/rentals/{id}/close", "post"),
        ("/api/v1/rentals/{id}/cancel", "post"),
        ("/api/v1/products/{id}/availability", "get"),
        ("/api/v1/units/{id}/maintenance", "post"),
        ("/api/v1/invoices", "get"),
        ("/api/v1/invoices/{id}", "get"),
        ("/api/v1/invoices/{id}/payments", "post"),
    ] {
        assert!(paths[path][method].is_object(), "{method} {path} missing");
    }
    let create = &paths["/api/v1/rentals"]["post"];
    assert!(create["responses"]["409"].is_object(), "the unavailable answer is documented");
    let schemas = doc.body["components"]["schemas"].as_object().unwrap();
    assert!(schemas.contains_key("CreateRentalRequest") && schemas.contains_key("RentalLineRequest"));
}
