//! Deposits over HTTP with Stripe keys pointed at the stand-in: a hold placed twice with one `Idempotency-Key`
//! answers the first hold again and Stripe sees one call; a signed webhook event puts the hold in place; a
//! capture above what is held is 422 before Stripe is called, a partial capture replays under its key; the
//! errors of unknown, foreign and deposit-less orders; Stripe unreachable answers 502 with nothing held; the
//! endpoints in the OpenAPI document.

use std::sync::Arc;

use actix_web::test::TestRequest;
use actix_web::web;
use chrono::{Duration, DurationRound, Utc};
use hmac::{Hmac, Mac};
use rental_api::routes::payments::Payments;
use rental_api::state::AppState;
use rental_payments::{API_VERSION, StripeConfig};
use rental_service::Secret;
use rental_testkit::StripeStandIn;
use serde_json::{Value, json};
use sha2::Sha256;

use crate::support::{Ctx, app, bearer, context, customer_token, send, staff_token};

const WEBHOOK_SECRET: &str = "whsec_api_deposits";

fn keys(stripe: &StripeStandIn) -> StripeConfig {
    StripeConfig {
        secret_key: Some(Secret::new("sk_test_api_deposits")),
        publishable_key: Some("pk_test_api_deposits".into()),
        webhook_secret: Some(Secret::new(WEBHOOK_SECRET)),
        currency: "eur".into(),
        api_base: stripe.base_url(),
        ..StripeConfig::default()
    }
}

fn with_keys(mut ctx: Ctx, config: &StripeConfig) -> Ctx {
    let payments = Payments::from_config(config).unwrap();
    ctx.state.monitoring.monitor.components.register(Arc::new(payments.component()));
    ctx.state = web::Data::new(AppState { payments, ..AppState::clone(&ctx.state) });
    ctx
}

/// `t=<now>,v1=<hex HMAC-SHA256 of "t.payload">`, as Stripe signs.
fn sign(payload: &str) -> String {
    let at = Utc::now().timestamp();
    let mut mac = Hmac::<Sha256>::new_from_slice(WEBHOOK_SECRET.as_bytes()).unwrap();
    mac.update(format!("{at}.{payload}").as_bytes());
    let digest: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
    format!("t={at},v1={digest}")
}

fn webhook_event(id: &str, kind: &str, object: Value) -> TestRequest {
    let payload = json!({
        "id": id, "object": "event", "api_version": API_VERSION, "created": Utc::now().timestamp(), "livemode": false,
        "pending_webhooks": 1, "request": { "id": null, "idempotency_key": null }, "type": kind,
        "data": { "object": object },
    })
    .to_string();
    TestRequest::post()
        .uri("/api/v1/payments/webhook")
        .insert_header(("content-type", "application/json"))
        .insert_header(("Stripe-Signature", sign(&payload)))
        .set_payload(payload)
}

/// A reserved order of `customer` for one item of a product with `deposit_minor`, starting in 12 hours.
async fn order<S, B>(app: &S, staff: &str, customer: &str, sku: &str, deposit_minor: i64) -> String
where
    S: actix_web::dev::Service<
            actix_http::Request,
            Response = actix_web::dev::ServiceResponse<B>,
            Error = actix_web::Error,
        >,
    B: actix_web::body::MessageBody,
{
    let category =
        send(app, bearer(TestRequest::post().uri("/api/v1/categories"), staff).set_json(json!({"name": sku}))).await;
    let location =
        send(app, bearer(TestRequest::post().uri("/api/v1/locations"), staff).set_json(json!({"name": sku}))).await;
    let product = send(
        app,
        bearer(TestRequest::post().uri("/api/v1/products"), staff).set_json(json!({
            "category_id": category.body["id"], "sku": sku, "name": "Camera", "currency": "EUR",
            "price_per_day_minor": 1_000, "deposit_minor": deposit_minor,
        })),
    )
    .await;
    assert_eq!(product.status, 201, "{}", product.body);
    let id = product.body["id"].as_str().unwrap();
    let units = json!({"units": [{"serial_number": format!("{sku}-A"), "location_id": location.body["id"]}]});
    let added =
        send(app, bearer(TestRequest::post().uri(&format!("/api/v1/products/{id}/units")), staff).set_json(units))
            .await;
    assert_eq!(added.status, 201, "{}", added.body);
    let start = Utc::now().duration_trunc(Duration::hours(1)).unwrap() + Duration::hours(12);
    let rental = json!({"lines": [{"product_id": id, "quantity": 1, "start": start.to_rfc3339(),
        "end": (start + Duration::days(4)).to_rfc3339()}]});
    let created = send(app, bearer(TestRequest::post().uri("/api/v1/rentals"), customer).set_json(rental)).await;
    assert_eq!(created.status, 201, "{}", created.body);
    created.body["id"].as_str().unwrap().to_owned()
}

#[actix_web::test]
async fn one_idempotency_key_places_one_hold_and_a_capture_above_the_hold_is_refused_before_stripe() {
    let stripe = StripeStandIn::start().await;
    let ctx = with_keys(context().await, &keys(&stripe));
    let app = app(&ctx).await;
    let staff = staff_token(&ctx, &app).await;
    let customer = customer_token(&app, "holder@example.com").await;
    let order = order(&app, &staff, &customer, "DEP-1", 3_000).await;
    let uri = format!("/api/v1/rentals/{order}/deposit");

    let place = || bearer(TestRequest::post().uri(&uri), &customer).insert_header(("Idempotency-Key", "dep-1"));
    let first = send(&app, place()).await;
    assert_eq!(first.status, 201, "{}", first.body);
    assert_eq!(first.body["deposit"]["status"], "pending");
    assert_eq!(first.body["deposit"]["amount_minor"], 3_000);
    assert!(first.body["client_secret"].is_string(), "{}", first.body);
    let second = send(&app, place()).await;
    assert_eq!(second.status, 201, "{}", second.body);
    assert_eq!(second.headers.get("Idempotent-Replayed").unwrap(), "true");
    assert_eq!(second.body, first.body);
    assert_eq!(stripe.requests_to("POST", "/v1/payment_intents").len(), 1);
    // Without the key, a second hold is a conflict.
    send(&app, bearer(TestRequest::post().uri(&uri), &customer)).await.assert_error(409, "conflict");

    let intent = first.body["deposit"]["payment_intent_id"].as_str().unwrap().to_owned();
    let mut object = stripe.pay(&intent).unwrap();
    object["capture_method"] = json!("manual");
    let applied = send(&app, webhook_event("evt_dep_hold", "payment_intent.amount_capturable_updated", object)).await;
    assert_eq!((applied.status.as_u16(), &applied.body["outcome"]), (200, &json!("applied")), "{}", applied.body);
    let shown = send(&app, bearer(TestRequest::get().uri(&uri), &customer)).await;
    assert_eq!(shown.body["status"], "requires_capture", "{}", shown.body);
    assert_eq!(shown.body["amount_capturable_minor"], 3_000, "{}", shown.body);

    let capture = format!("{uri}/capture");
    let over =
        send(&app, bearer(TestRequest::post().uri(&capture), &staff).set_json(json!({"amount_minor": 3_001}))).await;
    over.assert_error(422, "validation_failed");
    let zero = send(&app, bearer(TestRequest::post().uri(&capture), &staff).set_json(json!({"amount_minor": 0}))).await;
    zero.assert_error(422, "validation_failed");
    let denied =
        send(&app, bearer(TestRequest::post().uri(&capture), &customer).set_json(json!({"amount_minor": 10}))).await;
    denied.assert_error(403, "forbidden");
    let capture_path = format!("/v1/payment_intents/{intent}/capture");
    assert!(stripe.requests_to("POST", &capture_path).is_empty());

    let take = || {
        bearer(TestRequest::post().uri(&capture), &staff)
            .insert_header(("Idempotency-Key", "cap-1"))
            .set_json(json!({"amount_minor": 1_200}))
    };
    let taken = send(&app, take()).await;
    assert_eq!(taken.status, 200, "{}", taken.body);
    assert_eq!((&taken.body["status"], &taken.body["amount_captured_minor"]), (&json!("succeeded"), &json!(1_200)));
    let replayed = send(&app, take()).await;
    assert_eq!(replayed.headers.get("Idempotent-Replayed").unwrap(), "true");
    assert_eq!(replayed.body, taken.body);
    assert_eq!(stripe.requests_to("POST", &capture_path).len(), 1);
    send(&app, bearer(TestRequest::post().uri(&format!("{uri}/release")), &staff)).await.assert_error(409, "conflict");
}

#[actix_web::test]
async fn unknown_foreign_and_deposit_less_orders_are_refused_with_nothing_sent_to_stripe() {
    let stripe = StripeStandIn::start().await;
    let ctx = with_keys(context().await, &keys(&stripe));
    let app = app(&ctx).await;
    let staff = staff_token(&ctx, &app).await;
    let customer = customer_token(&app, "owner@example.com").await;
    let stranger = customer_token(&app, "stranger@example.com").await;
    let with_deposit = order(&app, &staff, &customer, "DEP-2", 2_000).await;
    let without = order(&app, &staff, &customer, "DEP-3", 0).await;

    let post = |uri: String, token: &str| bearer(TestRequest::post().uri(&uri), token);
    let unknown = format!("/api/v1/rentals/{}/deposit", uuid::Uuid::now_v7());
    send(&app, post(unknown.clone(), &staff)).await.assert_error(404, "not_found");
    send(&app, post(format!("{unknown}/capture"), &staff)).await.assert_error(404, "not_found");
    send(&app, post(format!("{unknown}/release"), &staff)).await.assert_error(404, "not_found");
    let foreign = format!("/api/v1/rentals/{with_deposit}/deposit");
    send(&app, post(foreign.clone(), &stranger)).await.assert_error(404, "not_found");
    send(&app, bearer(TestRequest::get().uri(&foreign), &stranger)).await.assert_error(404, "not_found");
    send(&app, post(format!("{foreign}/release"), &stranger)).await.assert_error(403, "forbidden");
    send(&app, post(format!("/api/v1/rentals/{without}/deposit"), &customer)).await.assert_error(409, "conflict");
    let unknown_field = post(format!("{foreign}/capture"), &staff).set_json(json!({"amount": 5}));
    assert_eq!(send(&app, unknown_field).await.status.as_u16() / 100, 4);
    assert!(stripe.requests().is_empty(), "{:?}", stripe.requests());
}

#[actix_web::test]
async fn stripe_unreachable_answers_502_and_nothing_is_held() {
    let stripe = StripeStandIn::start().await;
    // Nothing listens on port 9.
    let config = StripeConfig { api_base: "http://127.0.0.1:9/".into(), max_attempts: 1, ..keys(&stripe) };
    let ctx = with_keys(context().await, &config);
    let app = app(&ctx).await;
    let staff = staff_token(&ctx, &app).await;
    let customer = customer_token(&app, "down@example.com").await;
    let order = order(&app, &staff, &customer, "DEP-4", 2_000).await;
    let uri = format!("/api/v1/rentals/{order}/deposit");
    let failed =
        send(&app, bearer(TestRequest::post().uri(&uri), &customer).insert_header(("Idempotency-Key", "k"))).await;
    assert!(failed.status == 502 || failed.status == 504, "{} {}", failed.status, failed.body);
    let shown = send(&app, bearer(TestRequest::get().uri(&uri), &customer)).await;
    assert_eq!(shown.body["status"], "pending", "{}", shown.body);
    assert_eq!(shown.body["payment_intent_id"], Value::Null, "{}", shown.body);
    assert_eq!(shown.body["amount_held_minor"], 0, "{}", shown.body);
    // The key has no answer stored: the same request runs again (and fails again) rather than replaying.
    let again =
        send(&app, bearer(TestRequest::post().uri(&uri), &customer).insert_header(("Idempotency-Key", "k"))).await;
    assert!(again.status == 502 || again.status == 504, "{} {}", again.status, again.body);
    assert!(again.headers.get("Idempotent-Replayed").is_none());
}

#[actix_web::test]
async fn the_deposit_endpoints_are_in_the_document_with_their_answers() {
    let ctx = context().await;
    let app = app(&ctx).await;
    let document = send(&app, TestRequest::get().uri("/api/v1/openapi.json")).await.body;
    let paths = &document["paths"];
    let place = &paths["/api/v1/rentals/{id}/deposit"]["post"];
    for status in ["201", "404", "409", "422", "502", "503", "504"] {
        assert!(place["responses"][status].is_object(), "place {status}: {place}");
    }
    assert!(place["description"].as_str().unwrap().contains("7 days"), "{place}");
    assert!(place["parameters"].as_array().unwrap().iter().any(|p| p["name"] == "Idempotency-Key"), "{place}");
    let capture = &paths["/api/v1/rentals/{id}/deposit/capture"]["post"];
    for status in ["200", "403", "404", "409", "422", "502", "503", "504"] {
        assert!(capture["responses"][status].is_object(), "capture {status}: {capture}");
    }
    let release = &paths["/api/v1/rentals/{id}/deposit/release"]["post"];
    for status in ["200", "403", "404", "409", "502", "503", "504"] {
        assert!(release["responses"][status].is_object(), "release {status}: {release}");
    }
    assert!(paths["/api/v1/rentals/{id}/deposit"]["get"]["responses"]["200"].is_object());
    assert!(document["components"]["schemas"]["DepositView"].is_object());
}
