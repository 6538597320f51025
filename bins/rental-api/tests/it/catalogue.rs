//! The catalogue over HTTP: public reads, staff writes, the error envelope for bad input.

use actix_web::test::TestRequest;
use serde_json::{Value, json};

use crate::support::{app, bearer, context, customer_token, send, staff_token};

fn product_body(category_id: &str, sku: &str, per_day: i64) -> Value {
    json!({
        "category_id": category_id, "sku": sku, "name": format!("Product {sku}"), "currency": "EUR",
        "price_per_day_minor": per_day, "price_per_week_minor": per_day * 5, "deposit_minor": 10_000,
    })
}

#[actix_web::test]
async fn writes_need_a_token_and_the_staff_role() {
    let ctx = context().await;
    let app = app(&ctx).await;
    let customer = customer_token(&app, "jane@example.com").await;
    let id = uuid::Uuid::now_v7();
    let writes = || {
        [
            TestRequest::post().uri("/api/v1/categories").set_json(json!({"name": "Tools"})),
            TestRequest::patch().uri(&format!("/api/v1/categories/{id}")).set_json(json!({"name": "X"})),
            TestRequest::delete().uri(&format!("/api/v1/categories/{id}")),
            TestRequest::post().uri("/api/v1/locations").set_json(json!({"name": "Depot"})),
            TestRequest::post().uri("/api/v1/products").set_json(product_body(&id.to_string(), "A-1", 100)),
            TestRequest::patch().uri(&format!("/api/v1/products/{id}")).set_json(json!({"name": "X"})),
            TestRequest::delete().uri(&format!("/api/v1/products/{id}")),
            TestRequest::post()
                .uri(&format!("/api/v1/products/{id}/units"))
                .set_json(json!({"units": [{"serial_number": "S-1", "location_id": id}]})),
            TestRequest::put().uri(&format!("/api/v1/products/{id}/stock/{id}")).set_json(json!({"quantity": 1})),
        ]
    };
    for req in writes() {
        send(&app, req).await.assert_error(401, "unauthorized");
    }
    for req in writes() {
        send(&app, bearer(req, &customer)).await.assert_error(403, "forbidden");
    }
    // A token that is sent must be valid, even on public routes.
    send(&app, bearer(TestRequest::get().uri("/api/v1/products"), "not-a-token"))
        .await
        .assert_error(401, "unauthorized");
}

#[actix_web::test]
async fn staff_manage_the_catalogue_and_everyone_browses() {
    let ctx = context().await;
    let app = app(&ctx).await;
    let staff = staff_token(&ctx, &app).await;

    let category = send(
        &app,
        bearer(TestRequest::post().uri("/api/v1/categories"), &staff)
            .set_json(json!({"name": "Power Tools", "description": "Drills and saws"})),
    )
    .await;
    assert_eq!(category.status, 201, "{}", category.body);
    assert_eq!(category.body["slug"], "power-tools");
    let category_id = category.body["id"].as_str().unwrap().to_owned();
    let location = send(
        &app,
        bearer(TestRequest::post().uri("/api/v1/locations"), &staff)
            .set_json(json!({"name": "Depot", "address": "Dock 4"})),
    )
    .await;
    assert_eq!(location.status, 201, "{}", location.body);
    let location_id = location.body["id"].as_str().unwrap().to_owned();

    let mut product_ids = Vec::new();
    for (sku, price) in [("DRL-1", 1500), ("SAW-1", 900), ("SND-1", 2500)] {
        let created = send(
            &app,
            bearer(TestRequest::post().uri("/api/v1/products"), &staff).set_json(product_body(
                &category_id,
                sku,
                price,
            )),
        )
        .await;
        assert_eq!(created.status, 201, "{}", created.body);
        assert_eq!(created.body["price_per_week_minor"], price * 5);
        assert_eq!(created.body["late_fee_per_day_minor"], 0);
        product_ids.push(created.body["id"].as_str().unwrap().to_owned());
    }
    let drill = &product_ids[0];

    let units = send(
        &app,
        bearer(TestRequest::post().uri(&format!("/api/v1/products/{drill}/units")), &staff).set_json(json!({"units": [
            {"serial_number": "D-001", "condition": "good", "location_id": location_id},
            {"serial_number": "D-002", "location_id": location_id},
        ]})),
    )
    .await;
    assert_eq!(units.status, 201, "{}", units.body);
    assert_eq!(units.body["units"][1]["condition"], "new");
    let stock = send(
        &app,
        bearer(TestRequest::put().uri(&format!("/api/v1/products/{drill}/stock/{location_id}")), &staff)
            .set_json(json!({"quantity": 25})),
    )
    .await;
    assert_eq!((stock.status.as_u16(), &stock.body["quantity"]), (200, &json!(25)), "{}", stock.body);

    // Anonymous browsing: list, filters, sort, detail.
    let list = send(&app, TestRequest::get().uri("/api/v1/products?sort=price_per_day")).await;
    assert_eq!(list.status, 200, "{}", list.body);
    assert_eq!(list.body["total"], 3);
    let skus: Vec<_> = list.body["items"].as_array().unwrap().iter().map(|i| i["sku"].as_str().unwrap()).collect();
    assert_eq!(skus, ["SAW-1", "DRL-1", "SND-1"]);
    assert_eq!(list.body["items"][1]["stock"], json!({"units": 2, "bulk_quantity": 25}));
    assert_eq!(list.body["items"][1]["category"]["name"], "Power Tools");
    let at_depot =
        send(&app, TestRequest::get().uri(&format!("/api/v1/products?location={location_id}&limit=10"))).await;
    assert_eq!(at_depot.body["items"].as_array().unwrap().len(), 1, "{}", at_depot.body);
    assert!(at_depot.body["next_cursor"].is_null());
    let cheap = send(&app, TestRequest::get().uri("/api/v1/products?max_price=1500&q=product")).await;
    assert_eq!(cheap.body["total"], 2, "{}", cheap.body);
    // Only the drill has stock, and nothing is booked.
    let free = send(
        &app,
        TestRequest::get().uri("/api/v1/products?available_from=2030-01-01&available_to=2030-01-08T12:00:00Z"),
    )
    .await;
    assert_eq!(free.status, 200, "{}", free.body);
    assert_eq!(free.headers.get("content-type").unwrap(), "application/json");
    let skus: Vec<_> = free.body["items"].as_array().unwrap().iter().map(|i| i["sku"].as_str().unwrap()).collect();
    assert_eq!((skus, &free.body["total"]), (vec!["DRL-1"], &json!(1)));

    let detail = send(&app, TestRequest::get().uri(&format!("/api/v1/products/{drill}"))).await;
    assert_eq!(detail.status, 200, "{}", detail.body);
    assert_eq!(detail.body["currency"], "EUR");
    assert_eq!(detail.body["locations"][0]["location"]["name"], "Depot");
    assert_eq!(detail.body["locations"][0]["stock"], json!({"units": 2, "bulk_quantity": 25}));
    assert_eq!(send(&app, TestRequest::get().uri("/api/v1/categories")).await.body["items"][0]["slug"], "power-tools");
    assert_eq!(send(&app, TestRequest::get().uri("/api/v1/locations")).await.body["items"][0]["address"], "Dock 4");
    let one = send(&app, TestRequest::get().uri(&format!("/api/v1/categories/{category_id}"))).await;
    assert_eq!(one.body["description"], "Drills and saws");

    // Deactivated products disappear for the public, not for staff.
    let patched = send(
        &app,
        bearer(TestRequest::patch().uri(&format!("/api/v1/products/{drill}")), &staff)
            .set_json(json!({"is_active": false, "price_per_week_minor": null, "description": "Cordless"})),
    )
    .await;
    assert_eq!(patched.status, 200, "{}", patched.body);
    assert!(patched.body["price_per_week_minor"].is_null());
    assert_eq!(patched.body["description"], "Cordless");
    send(&app, TestRequest::get().uri(&format!("/api/v1/products/{drill}"))).await.assert_error(404, "not_found");
    assert_eq!(send(&app, TestRequest::get().uri("/api/v1/products")).await.body["total"], 2);
    let staff_view = send(&app, bearer(TestRequest::get().uri("/api/v1/products?is_active=false"), &staff)).await;
    assert_eq!(staff_view.body["total"], 1, "{}", staff_view.body);

    // Category rename, then deletion is refused while products remain.
    let renamed = send(
        &app,
        bearer(TestRequest::patch().uri(&format!("/api/v1/categories/{category_id}")), &staff)
            .set_json(json!({"name": "Tools", "description": null})),
    )
    .await;
    assert_eq!((renamed.body["slug"].as_str(), renamed.body["description"].is_null()), (Some("tools"), true));
    send(&app, bearer(TestRequest::delete().uri(&format!("/api/v1/categories/{category_id}")), &staff))
        .await
        .assert_error(409, "conflict");
    for id in &product_ids {
        let gone = send(&app, bearer(TestRequest::delete().uri(&format!("/api/v1/products/{id}")), &staff)).await;
        assert_eq!(gone.status, 204);
    }
    let gone =
        send(&app, bearer(TestRequest::delete().uri(&format!("/api/v1/categories/{category_id}")), &staff)).await;
    assert_eq!(gone.status, 204, "{}", gone.body);
}

#[actix_web::test]
async fn bad_input_gets_the_envelope() {
    let ctx = context().await;
    let app = app(&ctx).await;
    let staff = staff_token(&ctx, &app).await;

    for uri in ["/api/v1/products/42", "/api/v1/categories/nope"] {
        send(&app, TestRequest::get().uri(uri)).await.assert_error(400, "invalid_id");
    }
    let id = uuid::Uuid::now_v7();
    send(
        &app,
        bearer(TestRequest::put().uri(&format!("/api/v1/products/{id}/stock/x")), &staff)
            .set_json(json!({"quantity": 1})),
    )
    .await
    .assert_error(400, "invalid_id");
    send(&app, TestRequest::get().uri(&format!("/api/v1/products/{id}"))).await.assert_error(404, "not_found");

    // A year and a day is too long a window (2028 is a leap year: 2027-03-10 + 366 days is 2028-03-10).
    for (query, field) in [
        ("colour=red", "colour"),
        ("category=abc", "category"),
        ("min_price=-1", "min_price"),
        ("sort=sku", "sort"),
        ("available_from=2027-03-10", "available_to"),
        ("available_to=2027-03-10T00:00:00Z", "available_from"),
        ("available_from=2027-03-10&available_to=2027-03-09", "available_to"),
        ("available_from=2027-03-10&available_to=2027-03-10", "available_to"),
        ("available_from=2027-03-10&available_to=2028-03-11", "available_to"),
        ("available_from=soon&available_to=2027-03-11", "available_from"),
    ] {
        let reply = send(&app, TestRequest::get().uri(&format!("/api/v1/products?{query}"))).await;
        reply.assert_error(400, "invalid_query");
        assert_eq!(reply.body["error"]["details"][0]["field"], field, "{}", reply.body);
    }

    let category =
        send(&app, bearer(TestRequest::post().uri("/api/v1/categories"), &staff).set_json(json!({"name": "Tools"})))
            .await;
    let category_id = category.body["id"].as_str().unwrap().to_owned();
    send(&app, bearer(TestRequest::post().uri("/api/v1/categories"), &staff).set_json(json!({"name": "TOOLS"})))
        .await
        .assert_error(409, "conflict");

    let bad = json!({
        "category_id": category_id, "sku": "bad sku", "name": "", "currency": "EU",
        "price_per_day_minor": -1, "buffer_minutes": 20_000,
    });
    let reply = send(&app, bearer(TestRequest::post().uri("/api/v1/products"), &staff).set_json(bad)).await;
    reply.assert_error(422, "validation_failed");
    let fields: Vec<_> =
        reply.body["error"]["details"].as_array().unwrap().iter().map(|d| d["field"].as_str().unwrap()).collect();
    assert_eq!(fields, ["sku", "name", "currency", "price_per_day_minor", "buffer_minutes"]);

    let created = send(
        &app,
        bearer(TestRequest::post().uri("/api/v1/products"), &staff).set_json(product_body(&category_id, "A-1", 100)),
    )
    .await;
    let product_id = created.body["id"].as_str().unwrap().to_owned();
    send(
        &app,
        bearer(TestRequest::post().uri("/api/v1/products"), &staff).set_json(product_body(&category_id, "A-1", 100)),
    )
    .await
    .assert_error(409, "conflict");
    send(
        &app,
        bearer(TestRequest::put().uri(&format!("/api/v1/products/{product_id}/stock/{id}")), &staff)
            .set_json(json!({"quantity": 3})),
    )
    .await
    .assert_error(404, "not_found");
    let reply = send(
        &app,
        bearer(TestRequest::put().uri(&format!("/api/v1/products/{product_id}/stock/{id}")), &staff)
            .set_json(json!({"quantity": -3})),
    )
    .await;
    reply.assert_error(422, "validation_failed");
    assert_eq!(reply.body["error"]["details"][0]["field"], "quantity");
    send(
        &app,
        bearer(TestRequest::post().uri(&format!("/api/v1/products/{product_id}/units")), &staff)
            .set_json(json!({"units": []})),
    )
    .await
    .assert_error(422, "validation_failed");
    send(&app, bearer(TestRequest::post().uri("/api/v1/products"), &staff).set_json(json!({"sku": "A-2", "price": 1})))
        .await
        .assert_error(422, "invalid_body");
}

#[actix_web::test]
async fn integer_fields_take_integral_floats() {
    let ctx = context().await;
    let app = app(&ctx).await;
    let staff = staff_token(&ctx, &app).await;
    let category =
        send(&app, bearer(TestRequest::post().uri("/api/v1/categories"), &staff).set_json(json!({"name": "Tools"})))
            .await;
    let mut body = product_body(category.body["id"].as_str().unwrap(), "A-1", 100);
    // JSON Schema counts `1500.0` and `1.5e3` as integers; Python's json.dumps writes floats so.
    body["price_per_day_minor"] = json!(1500.0);
    body["deposit_minor"] = json!(1.5e3);
    let created = send(&app, bearer(TestRequest::post().uri("/api/v1/products"), &staff).set_json(body)).await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(
        (created.body["price_per_day_minor"].as_i64(), created.body["deposit_minor"].as_i64()),
        (Some(1500), Some(1500))
    );
    let product = || {
        bearer(TestRequest::patch().uri(&format!("/api/v1/products/{}", created.body["id"].as_str().unwrap())), &staff)
    };
    let patched = send(&app, product().set_json(json!({"buffer_minutes": 42.0, "price_per_week_minor": 7e3}))).await;
    assert_eq!(patched.status, 200, "{}", patched.body);
    assert_eq!(
        (patched.body["buffer_minutes"].as_i64(), patched.body["price_per_week_minor"].as_i64()),
        (Some(42), Some(7000))
    );
    // A fraction is still not an integer.
    send(&app, product().set_json(json!({"buffer_minutes": 42.5}))).await.assert_error(422, "invalid_body");
}

#[actix_web::test]
async fn the_catalogue_is_in_the_openapi_document() {
    let ctx = context().await;
    let app = app(&ctx).await;
    let doc = send(&app, TestRequest::get().uri("/api/v1/openapi.json")).await;
    let paths = doc.body["paths"].as_object().unwrap();
    for (path, methods) in [
        ("/api/v1/categories", &["get", "post"][..]),
        ("/api/v1/categories/{id}", &["get", "patch", "delete"]),
        ("/api/v1/locations", &["get", "post"]),
        ("/api/v1/products", &["get", "post"]),
        ("/api/v1/products/{id}", &["get", "patch", "delete"]),
        ("/api/v1/products/{id}/units", &["post"]),
        ("/api/v1/products/{id}/stock/{location_id}", &["put"]),
    ] {
        for method in methods {
            assert!(paths[path][method].is_object(), "{method} {path} missing");
        }
    }
    let params: Vec<_> = paths["/api/v1/products"]["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    for param in ["available_from", "available_to", "category", "location"] {
        assert!(params.contains(&param), "{param} missing from {params:?}");
    }
    let schemas = doc.body["components"]["schemas"].as_object().unwrap();
    for schema in ["ProductDetailView", "PageOf_ProductListView", "CreateProductRequest", "StockRequest"] {
        assert!(schemas.contains_key(schema), "{schema} missing");
    }
}
