//! The payment endpoints over HTTP with Stripe keys pointed at the stand-in: a checkout session for an order's
//! invoice paid by a signed webhook event (replayed: one effect), refunds, bad input as 4xx, the webhook's
//! refusals as 400 with nothing applied, and the endpoints in the OpenAPI document.

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

const WEBHOOK_SECRET: &str = "whsec_api_flows";

fn keys(stripe: &StripeStandIn) -> StripeConfig {
    StripeConfig {
        secret_key: Some(Secret::new("sk_test_api_flows")),
        publishable_key: Some("pk_test_api_flows".into()),
        webhook_secret: Some(Secret::new(WEBHOOK_SECRET)),
        currency: "eur".into(),
        api_base: stripe.base_url(),
        ..StripeConfig::default()
    }
}

pub(crate) async fn paying_context(stripe: &StripeStandIn) -> Ctx {
    let mut ctx = context().await;
    let payments = Payments::from_config(&keys(stripe)).unwrap();
    ctx.state.monitoring.monitor.components.register(Arc::new(payments.component()));
    ctx.state = web::Data::new(AppState { payments, ..AppState::clone(&ctx.state) });
    ctx
}

/// `t=<now>,v1=<hex HMAC-SHA256 of "t.payload">`, as Stripe signs, written here by hand.
fn sign(payload: &str, secret: &str, at: i64) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{at}.{payload}").as_bytes());
    let digest: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
    format!("t={at},v1={digest}")
}

fn webhook(payload: &str, signature: Option<String>) -> TestRequest {
    let req = TestRequest::post()
        .uri("/api/v1/payments/webhook")
        .insert_header(("content-type", "application/json"))
        .set_payload(payload.to_owned());
    match signature {
        Some(signature) => req.insert_header(("Stripe-Signature", signature)),
        None => req,
    }
}

fn event(id: &str, kind: &str, version: &str, object: Value) -> String {
    json!({
        "id": id, "object": "event", "api_version": version, "created": Utc::now().timestamp(), "livemode": false,
        "pending_webhooks": 1, "request": { "id": null, "idempotency_key": null }, "type": kind,
        "data": { "object": object },
    })
    .to_string()
}

/// A reserved order of the customer (`cus_token`): 4 days at 10.00, no tax by default.
pub(crate) async fn order<S, B>(app: &S, staff: &str, customer: &str) -> String
where
    S: actix_web::dev::Service<
            actix_http::Request,
            Response = actix_web::dev::ServiceResponse<B>,
            Error = actix_web::Error,
        >,
    B: actix_web::body::MessageBody,
{
    let category =
        send(app, bearer(TestRequest::post().uri("/api/v1/categories"), staff).set_json(json!({"name": "Cams"}))).await;
    let location =
        send(app, bearer(TestRequest::post().uri("/api/v1/locations"), staff).set_json(json!({"name": "Depot"}))).await;
    let product = send(
        app,
        bearer(TestRequest::post().uri("/api/v1/products"), staff).set_json(json!({
            "category_id": category.body["id"], "sku": "PAY-1", "name": "Camera", "currency": "EUR",
            "price_per_day_minor": 1_000,
        })),
    )
    .await;
    assert_eq!(product.status, 201, "{}", product.body);
    let id = product.body["id"].as_str().unwrap();
    let units = json!({"units": [{"serial_number": "PAY-1-A", "location_id": location.body["id"]}]});
    let added =
        send(app, bearer(TestRequest::post().uri(&format!("/api/v1/products/{id}/units")), staff).set_json(units))
            .await;
    assert_eq!(added.status, 201, "{}", added.body);
    let start = Utc::now().duration_trunc(Duration::days(1)).unwrap() + Duration::days(3);
    let rental = json!({"lines": [{"product_id": id, "quantity": 1, "start": start.to_rfc3339(),
        "end": (start + Duration::days(4)).to_rfc3339()}]});
    let created = send(app, bearer(TestRequest::post().uri("/api/v1/rentals"), customer).set_json(rental)).await;
    assert_eq!(created.status, 201, "{}", created.body);
    created.body["id"].as_str().unwrap().to_owned()
}

#[actix_web::test]
async fn a_checkout_paid_by_a_signed_replayed_webhook_pays_the_invoice_once_and_refunds_reopen_it() {
    let stripe = StripeStandIn::start().await;
    let ctx = paying_context(&stripe).await;
    let app = app(&ctx).await;
    let staff = staff_token(&ctx, &app).await;
    let customer = customer_token(&app, "payer@example.com").await;
    let stranger = customer_token(&app, "stranger@example.com").await;
    let order = order(&app, &staff, &customer).await;

    let body = json!({"order_id": order, "success_url": "https://shop.test/ok", "cancel_url": "https://shop.test/no"});
    let foreign =
        send(&app, bearer(TestRequest::post().uri("/api/v1/payments/checkout-session"), &stranger).set_json(&body))
            .await;
    foreign.assert_error(404, "not_found");
    let created =
        send(&app, bearer(TestRequest::post().uri("/api/v1/payments/checkout-session"), &customer).set_json(&body))
            .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let payment = created.body["payment"].clone();
    let total = payment["amount_minor"].as_i64().unwrap();
    assert!(created.body["url"].as_str().unwrap().starts_with("https://"), "{}", created.body);
    let payment_id = payment["id"].as_str().unwrap().to_owned();
    let sent = stripe.requests_to("POST", "/v1/checkout/sessions");
    assert_eq!(sent[0].idempotency_key.as_deref(), Some(format!("payment:{payment_id}:checkout").as_str()));

    let session = json!({
        "id": payment["checkout_session_id"], "object": "checkout.session", "mode": "payment",
        "automatic_tax": { "enabled": false }, "created": 1_700_000_000, "expires_at": 1_800_000_000,
        "custom_fields": [], "custom_text": {}, "livemode": false, "payment_intent": payment["payment_intent_id"],
        "payment_method_types": ["card"], "payment_status": "paid", "shipping_options": [], "status": "complete",
        "client_reference_id": format!("payment:{payment_id}"), "metadata": {},
    });
    let payload = event("evt_api_paid", "checkout.session.completed", API_VERSION, session);
    for round in 0..10 {
        let signature = sign(&payload, WEBHOOK_SECRET, Utc::now().timestamp());
        let reply = send(&app, webhook(&payload, Some(signature))).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert_eq!(reply.body["outcome"], if round == 0 { "applied" } else { "duplicate" }, "{}", reply.body);
    }
    let invoices = send(&app, bearer(TestRequest::get().uri("/api/v1/invoices"), &customer)).await;
    let invoice = &invoices.body["items"][0];
    assert_eq!((invoice["status"].as_str(), invoice["amount_paid_minor"].as_i64()), (Some("paid"), Some(total)));
    let again =
        send(&app, bearer(TestRequest::post().uri("/api/v1/payments/checkout-session"), &customer).set_json(&body))
            .await;
    again.assert_error(409, "conflict");

    // Refunds: staff only, never more than is left, the rest reopens the invoice.
    stripe.pay(payment["payment_intent_id"].as_str().unwrap()).unwrap();
    let uri = format!("/api/v1/payments/{payment_id}/refund");
    let denied =
        send(&app, bearer(TestRequest::post().uri(&uri), &customer).set_json(json!({"amount_minor": 100}))).await;
    denied.assert_error(403, "forbidden");
    let too_much =
        send(&app, bearer(TestRequest::post().uri(&uri), &staff).set_json(json!({"amount_minor": total + 1}))).await;
    assert_eq!(too_much.status, 422, "{}", too_much.body);
    assert!(stripe.requests_to("POST", "/v1/refunds").is_empty());
    let refunded =
        send(&app, bearer(TestRequest::post().uri(&uri), &staff).set_json(json!({"amount_minor": 1_000}))).await;
    assert_eq!(refunded.status, 200, "{}", refunded.body);
    assert_eq!(refunded.body["amount_refunded_minor"], 1_000);
    assert_eq!(refunded.body["refunds"][0]["status"], "succeeded");
    let invoices = send(&app, bearer(TestRequest::get().uri("/api/v1/invoices"), &customer)).await;
    assert_eq!(invoices.body["items"][0]["status"], "open", "{}", invoices.body);

    let listed = send(&app, bearer(TestRequest::get().uri("/api/v1/payments"), &customer)).await;
    assert_eq!(listed.status, 200, "{}", listed.body);
    assert_eq!(listed.body["items"].as_array().unwrap().len(), 1);
    let hidden = send(&app, bearer(TestRequest::get().uri(&format!("/api/v1/payments/{payment_id}")), &stranger)).await;
    hidden.assert_error(404, "not_found");
}

#[actix_web::test]
async fn bad_payment_input_answers_4xx_before_stripe_is_called() {
    let stripe = StripeStandIn::start().await;
    let ctx = paying_context(&stripe).await;
    let app = app(&ctx).await;
    let staff = staff_token(&ctx, &app).await;
    let customer = customer_token(&app, "payer@example.com").await;
    let order = order(&app, &staff, &customer).await;
    let intent =
        |body: Value| bearer(TestRequest::post().uri("/api/v1/payments/payment-intent"), &customer).set_json(body);

    assert_eq!(send(&app, intent(json!({"order_id": order, "amount_minor": 0}))).await.status, 422);
    assert_eq!(send(&app, intent(json!({"order_id": order, "amount_minor": 999_999}))).await.status, 422);
    assert_eq!(send(&app, intent(json!({"order_id": order, "currency": "USD"}))).await.status, 422);
    send(&app, intent(json!({"order_id": uuid::Uuid::now_v7()}))).await.assert_error(404, "not_found");
    assert!(stripe.requests().is_empty());
    let ok = send(&app, intent(json!({"order_id": order, "amount_minor": 500, "currency": "EUR"}))).await;
    assert_eq!(ok.status, 201, "{}", ok.body);
    assert!(ok.body["client_secret"].as_str().unwrap().contains("_secret_"), "{}", ok.body);
}

#[actix_web::test]
async fn stripe_unreachable_answers_502_and_nothing_is_paid() {
    let stripe = StripeStandIn::start().await;
    // Nothing listens on port 9.
    let config = StripeConfig { api_base: "http://127.0.0.1:9/".into(), max_attempts: 1, ..keys(&stripe) };
    let mut ctx = context().await;
    ctx.state =
        web::Data::new(AppState { payments: Payments::from_config(&config).unwrap(), ..AppState::clone(&ctx.state) });
    let app = app(&ctx).await;
    let staff = staff_token(&ctx, &app).await;
    let customer = customer_token(&app, "payer@example.com").await;
    let order = order(&app, &staff, &customer).await;
    let body = json!({"order_id": order});
    let failed =
        send(&app, bearer(TestRequest::post().uri("/api/v1/payments/payment-intent"), &customer).set_json(body)).await;
    assert!(failed.status == 502 || failed.status == 504, "{} {}", failed.status, failed.body);
    let invoices = send(&app, bearer(TestRequest::get().uri("/api/v1/invoices"), &customer)).await;
    assert_eq!(invoices.body["items"][0]["amount_paid_minor"], 0, "{}", invoices.body);
    assert_eq!(invoices.body["items"][0]["status"], "open", "{}", invoices.body);
    let listed = send(&app, bearer(TestRequest::get().uri("/api/v1/payments"), &customer)).await;
    assert_eq!(listed.body["items"][0]["status"], "failed", "{}", listed.body);
}

#[actix_web::test]
async fn the_webhook_refuses_bad_signatures_and_foreign_versions_and_acknowledges_unknown_types() {
    let stripe = StripeStandIn::start().await;
    let ctx = paying_context(&stripe).await;
    let app = app(&ctx).await;
    let now = Utc::now().timestamp();
    let unknown = event("evt_unknown", "rental.not_a_stripe_event", API_VERSION, json!({"id": "x", "object": "x"}));

    send(&app, webhook(&unknown, None)).await.assert_error(400, "webhook_signature_missing");
    send(&app, webhook(&unknown, Some("t=abc,v1=00".into()))).await.assert_error(400, "webhook_signature_malformed");
    send(&app, webhook(&unknown, Some(sign(&unknown, "whsec_wrong", now))))
        .await
        .assert_error(400, "webhook_signature_invalid");
    send(&app, webhook(&unknown, Some(sign(&unknown, WEBHOOK_SECRET, now - 3_600))))
        .await
        .assert_error(400, "webhook_signature_expired");
    let broken = "{\"id\": \"evt_broken\", \"type\": ";
    send(&app, webhook(broken, Some(sign(broken, WEBHOOK_SECRET, now)))).await.assert_error(400, "webhook_malformed");
    let old =
        event("evt_old", "payment_intent.succeeded", "2020-08-27", json!({"id": "pi_1", "object": "payment_intent"}));
    send(&app, webhook(&old, Some(sign(&old, WEBHOOK_SECRET, now)))).await.assert_error(400, "webhook_api_version");
    assert!(ctx.state.services.payments.webhook_event("evt_unknown").await.unwrap().is_none());
    assert!(ctx.state.services.payments.webhook_event("evt_old").await.unwrap().is_none());

    let reply = send(&app, webhook(&unknown, Some(sign(&unknown, WEBHOOK_SECRET, now)))).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.body["outcome"], "ignored");
    assert_eq!(ctx.state.services.payments.webhook_event("evt_unknown").await.unwrap().unwrap().outcome, "ignored");
}

#[actix_web::test]
async fn the_payment_endpoints_are_in_the_document_with_their_errors() {
    let ctx = context().await;
    let app = app(&ctx).await;
    let document = send(&app, TestRequest::get().uri("/api/v1/openapi.json")).await.body;
    for (path, method, statuses) in [
        ("/api/v1/payments/checkout-session", "post", &["201", "404", "409", "422", "502", "503", "504"][..]),
        ("/api/v1/payments/payment-intent", "post", &["201", "404", "409", "422", "502", "503", "504"]),
        ("/api/v1/payments", "get", &["200", "400", "401", "503"]),
        ("/api/v1/payments/{id}", "get", &["200", "404", "503"]),
        ("/api/v1/payments/{id}/refund", "post", &["200", "403", "404", "409", "422", "502", "503", "504"]),
        ("/api/v1/payments/customer", "post", &["200", "502", "503", "504"]),
        ("/api/v1/payments/webhook", "post", &["200", "400", "503"]),
    ] {
        let responses = &document["paths"][path][method]["responses"];
        for status in statuses {
            assert!(responses[*status].is_object(), "{method} {path} lacks {status}: {responses}");
        }
    }
    // Without keys every payment endpoint answers 503 payments_not_configured.
    let customer = customer_token(&app, "c@example.com").await;
    send(&app, bearer(TestRequest::get().uri("/api/v1/payments"), &customer))
        .await
        .assert_error(503, "payments_not_configured");
    send(&app, webhook("{}", None)).await.assert_error(503, "payments_not_configured");
}
