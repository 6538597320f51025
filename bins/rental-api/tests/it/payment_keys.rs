//! The `Idempotency-Key` header on the payment endpoints over HTTP, Stripe being the stand-in: a replay answers
//! the stored response without calling Stripe, another body with the key is 422, a duplicate while the first
//! waits for Stripe is 409, and the operations document the header with their 409 and 422.

use std::time::Duration;

use actix_web::test::TestRequest;
use rental_testkit::{StripeFault, StripeStandIn};
use serde_json::{Value, json};

use crate::idempotency::{keyed, raw};
use crate::payment_flows::{order, paying_context};
use crate::support::{app, context, customer_token, send, staff_token};

#[actix_web::test]
async fn a_keyed_payment_intent_is_replayed_without_calling_stripe_and_another_body_is_422() {
    let stripe = StripeStandIn::start().await;
    let ctx = paying_context(&stripe).await;
    let app = app(&ctx).await;
    let staff = staff_token(&ctx, &app).await;
    let customer = customer_token(&app, "payer@example.com").await;
    let order = order(&app, &staff, &customer).await;
    let uri = "/api/v1/payments/payment-intent";
    let body = json!({"order_id": order, "amount_minor": 1_000});

    let first = raw(&app, keyed(TestRequest::post().uri(uri), &customer, "pi-1").set_json(&body)).await;
    assert_eq!(first.0, 201, "{}", String::from_utf8_lossy(&first.2));
    assert_eq!(first.1, None);
    let again = raw(&app, keyed(TestRequest::post().uri(uri), &customer, "pi-1").set_json(&body)).await;
    assert_eq!((again.0.as_u16(), again.1.as_deref()), (201, Some("true")));
    assert_eq!(again.2, first.2, "the stored body, byte for byte");
    assert_eq!(stripe.requests_to("POST", "/v1/payment_intents").len(), 1, "the replay did not call Stripe");
    assert_eq!(stripe.intent_count(), 1);

    let other = json!({"order_id": order, "amount_minor": 2_000});
    let mismatch = send(&app, keyed(TestRequest::post().uri(uri), &customer, "pi-1").set_json(other)).await;
    mismatch.assert_error(422, "idempotency_mismatch");
    assert_eq!(stripe.requests_to("POST", "/v1/payment_intents").len(), 1);
    // Another key is another payment.
    let second = send(&app, keyed(TestRequest::post().uri(uri), &customer, "pi-2").set_json(&body)).await;
    assert_eq!(second.status, 201, "{}", second.body);
    let first: Value = serde_json::from_slice(&first.2).unwrap();
    assert_ne!(second.body["payment"]["id"], first["payment"]["id"]);
}

#[actix_web::test]
async fn a_duplicate_while_the_first_waits_for_stripe_is_409_and_then_replays() {
    let stripe = StripeStandIn::start().await;
    let ctx = paying_context(&stripe).await;
    let app = app(&ctx).await;
    let staff = staff_token(&ctx, &app).await;
    let customer = customer_token(&app, "payer@example.com").await;
    let order = order(&app, &staff, &customer).await;
    let uri = "/api/v1/payments/checkout-session";
    let body = json!({"order_id": order, "success_url": "https://shop.test/ok", "cancel_url": "https://shop.test/c"});
    stripe.fail_next("POST", "/v1/checkout/sessions", StripeFault::StallAfterEffect(Duration::from_secs(3)));
    let request = || keyed(TestRequest::post().uri(uri), &customer, "checkout-1").set_json(&body);
    let first = send(&app, request());
    let duplicate = async {
        while stripe.requests_to("POST", "/v1/checkout/sessions").is_empty() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        send(&app, request()).await
    };
    let (first, duplicate) = tokio::join!(first, duplicate);
    assert_eq!(first.status, 201, "{}", first.body);
    duplicate.assert_error(409, "idempotency_conflict");
    let replayed = send(&app, request()).await;
    assert_eq!((replayed.status.as_u16(), &replayed.body), (201, &first.body));
    assert_eq!(stripe.requests_to("POST", "/v1/checkout/sessions").len(), 1);
    assert_eq!(stripe.session_count(), 1);
}

#[actix_web::test]
async fn keyed_refunds_and_customers_replay_their_first_answer() {
    let stripe = StripeStandIn::start().await;
    let ctx = paying_context(&stripe).await;
    let app = app(&ctx).await;
    let customer = customer_token(&app, "payer@example.com").await;
    let uri = "/api/v1/payments/customer";
    let first = send(&app, keyed(TestRequest::post().uri(uri), &customer, "cus-1")).await;
    assert_eq!((first.status.as_u16(), &first.body["created"]), (200, &json!(true)), "{}", first.body);
    let again = raw(&app, keyed(TestRequest::post().uri(uri), &customer, "cus-1")).await;
    assert_eq!((again.0.as_u16(), again.1.as_deref()), (200, Some("true")));
    assert_eq!(serde_json::from_slice::<Value>(&again.2).unwrap(), first.body);
    assert_eq!(stripe.requests_to("POST", "/v1/customers").len(), 1);
    assert_eq!(stripe.customer_count(), 1);

    // A refund with a key, of an unknown payment: the failure is answered and the key stays free.
    let staff = staff_token(&ctx, &app).await;
    let refund = format!("/api/v1/payments/{}/refund", uuid::Uuid::now_v7());
    let missing = send(&app, keyed(TestRequest::post().uri(&refund), &staff, "refund-1")).await;
    missing.assert_error(404, "not_found");
    let missing = send(&app, keyed(TestRequest::post().uri(&refund), &staff, "refund-1")).await;
    missing.assert_error(404, "not_found");
    assert!(stripe.requests_to("POST", "/v1/refunds").is_empty());
}

#[actix_web::test]
async fn the_keyed_payment_operations_document_the_header_and_its_409_and_422() {
    let ctx = context().await;
    let app = app(&ctx).await;
    let document = send(&app, TestRequest::get().uri("/api/v1/openapi.json")).await.body;
    for path in [
        "/api/v1/payments/checkout-session",
        "/api/v1/payments/payment-intent",
        "/api/v1/payments/{id}/refund",
        "/api/v1/payments/customer",
    ] {
        let operation = &document["paths"][path]["post"];
        let parameters = operation["parameters"].as_array().unwrap();
        let header = parameters.iter().find(|p| p["name"] == "Idempotency-Key").unwrap();
        assert_eq!(header["in"], "header", "{path}");
        for status in ["409", "422"] {
            assert!(operation["responses"][status].is_object(), "{path} lacks {status}");
        }
    }
}
