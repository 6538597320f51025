//! The Stripe gateway through async-stripe's real HTTP client against the Stripe stand-in on loopback: the
//! paths, form bodies and headers it sends, Stripe's error answers, the retries with one idempotency key, and
//! the bounds in time.

#![expect(clippy::unwrap_used, reason = "tests")]

use std::time::Duration;

use rental_domain::{Currency, Money};
use rental_payments::{API_VERSION, StripeConfig, StripeGateway};
use rental_service::{
    CheckoutRequest, CustomerRequest, GatewayPaymentStatus, PaymentGateway, PaymentRequest, PortError, Secret,
};
use rental_testkit::{StripeFault, StripeStandIn};

fn eur(minor: i64) -> Money {
    Money::new(minor, Currency::parse("EUR").unwrap())
}

fn config(stand_in: &StripeStandIn) -> StripeConfig {
    StripeConfig {
        secret_key: Some(Secret::new("sk_test_standin")),
        api_base: stand_in.base_url(),
        attempt_timeout_ms: 2_000,
        call_timeout_ms: 20_000,
        max_attempts: 3,
        retry_backoff_ms: 10,
        ..StripeConfig::default()
    }
}

fn payment(key: &str, capture_later: bool) -> PaymentRequest {
    PaymentRequest {
        amount: eur(12_500),
        customer: Some("cus_known".into()),
        capture_later,
        save_card: false,
        off_session_payment_method: None,
        description: Some("Invoice 2026-000001".into()),
        reference: "payment:0191".into(),
        idempotency_key: key.into(),
    }
}

#[tokio::test]
async fn a_payment_intent_is_created_with_stripes_form_body_and_our_idempotency_key() {
    let stripe = StripeStandIn::start().await;
    let gateway = StripeGateway::new(config(&stripe)).unwrap();

    let created = gateway.create_payment(&payment("payment:0191:create", false)).await.unwrap();

    assert_eq!(created.status, GatewayPaymentStatus::RequiresPaymentMethod);
    assert_eq!(created.amount, eur(12_500));
    assert_eq!(created.reference.as_deref(), Some("payment:0191"));
    assert!(created.client_secret.as_deref().unwrap().starts_with(&created.id));
    let sent = stripe.requests_to("POST", "/v1/payment_intents");
    assert_eq!(sent.len(), 1);
    let sent = &sent[0];
    assert_eq!(sent.idempotency_key.as_deref(), Some("payment:0191:create"));
    assert_eq!(sent.authorization.as_deref(), Some("Bearer sk_test_standin"));
    assert_eq!(sent.stripe_version.as_deref(), Some(API_VERSION));
    assert_eq!(sent.param("amount"), Some("12500"));
    assert_eq!(sent.param("currency"), Some("eur"));
    assert_eq!(sent.param("capture_method"), Some("automatic"));
    assert_eq!(sent.param("customer"), Some("cus_known"));
    assert_eq!(sent.param("description"), Some("Invoice 2026-000001"));
    assert_eq!(sent.param("metadata[reference]"), Some("payment:0191"));
}

#[tokio::test]
async fn a_hold_is_a_manual_capture_intent_captured_in_part_or_released() {
    let stripe = StripeStandIn::start().await;
    let gateway = StripeGateway::new(config(&stripe)).unwrap();

    let held = gateway.create_payment(&payment("deposit:1:hold", true)).await.unwrap();
    assert_eq!(stripe.requests_to("POST", "/v1/payment_intents")[0].param("capture_method"), Some("manual"));
    stripe.pay(&held.id).unwrap();
    let captured = gateway.capture(&held.id, Some(4_000), "deposit:1:capture").await.unwrap();
    assert_eq!(captured.status, GatewayPaymentStatus::Succeeded);
    assert_eq!(captured.amount_received_minor, 4_000);
    let sent = stripe.requests_to("POST", &format!("/v1/payment_intents/{}/capture", held.id));
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].param("amount_to_capture"), Some("4000"));
    assert_eq!(sent[0].idempotency_key.as_deref(), Some("deposit:1:capture"));

    let other = gateway.create_payment(&payment("deposit:2:hold", true)).await.unwrap();
    stripe.pay(&other.id).unwrap();
    let released = gateway.release(&other.id, "deposit:2:release").await.unwrap();
    assert_eq!(released.status, GatewayPaymentStatus::Canceled);
    assert_eq!(released.amount_capturable_minor, 0);
    let sent = stripe.requests_to("POST", &format!("/v1/payment_intents/{}/cancel", other.id));
    assert_eq!(sent[0].idempotency_key.as_deref(), Some("deposit:2:release"));
}

#[tokio::test]
async fn refunds_checkout_sessions_customers_and_retrieval_send_what_stripe_expects() {
    let stripe = StripeStandIn::start().await;
    let gateway = StripeGateway::new(config(&stripe)).unwrap();
    let paid = gateway.create_payment(&payment("payment:7:create", false)).await.unwrap();
    stripe.pay(&paid.id).unwrap();

    let refund = gateway.refund(&paid.id, Some(2_500), "refund:3").await.unwrap();
    assert!(refund.starts_with("re_"), "{refund}");
    let sent = &stripe.requests_to("POST", "/v1/refunds")[0];
    assert_eq!(sent.param("payment_intent"), Some(paid.id.as_str()));
    assert_eq!(sent.param("amount"), Some("2500"));
    assert_eq!(sent.idempotency_key.as_deref(), Some("refund:3"));
    // More than is left to refund: Stripe refuses, for good.
    let err = gateway.refund(&paid.id, Some(10_001), "refund:4").await.unwrap_err();
    assert!(matches!(err, PortError::Rejected(ref reason) if reason.contains("400")), "{err:?}");

    let checkout = gateway
        .create_checkout(&CheckoutRequest {
            amount: eur(9_900),
            description: "Invoice 2026-000002".into(),
            customer: None,
            success_url: "https://shop.example/paid".into(),
            cancel_url: "https://shop.example/cancelled".into(),
            reference: "payment:0192".into(),
            idempotency_key: "payment:0192:checkout".into(),
        })
        .await
        .unwrap();
    assert!(checkout.url.as_deref().unwrap().contains(&checkout.id));
    let intent = stripe.intent(checkout.payment_intent.as_deref().unwrap()).unwrap();
    assert_eq!(intent["metadata"]["reference"], "payment:0192");
    let sent = &stripe.requests_to("POST", "/v1/checkout/sessions")[0];
    assert_eq!(sent.idempotency_key.as_deref(), Some("payment:0192:checkout"));
    assert_eq!(sent.param("mode"), Some("payment"));
    assert_eq!(sent.param("line_items[0][price_data][unit_amount]"), Some("9900"));
    assert_eq!(sent.param("line_items[0][price_data][currency]"), Some("eur"));
    assert_eq!(sent.param("line_items[0][price_data][product_data][name]"), Some("Invoice 2026-000002"));
    assert_eq!(sent.param("line_items[0][quantity]"), Some("1"));
    assert_eq!(sent.param("success_url"), Some("https://shop.example/paid"));
    assert_eq!(sent.param("cancel_url"), Some("https://shop.example/cancelled"));
    assert_eq!(sent.param("payment_intent_data[metadata][reference]"), Some("payment:0192"));

    let customer = gateway
        .create_customer(&CustomerRequest {
            email: "jane@example.com".into(),
            name: "Jane Doe".into(),
            reference: "user:42".into(),
            idempotency_key: "customer:user:42".into(),
        })
        .await
        .unwrap();
    assert!(customer.starts_with("cus_"));
    let sent = &stripe.requests_to("POST", "/v1/customers")[0];
    assert_eq!(sent.param("email"), Some("jane@example.com"));
    assert_eq!(sent.param("metadata[reference]"), Some("user:42"));
    assert_eq!(sent.idempotency_key.as_deref(), Some("customer:user:42"));

    let seen = gateway.retrieve_payment(&paid.id).await.unwrap();
    assert_eq!(seen.status, GatewayPaymentStatus::Succeeded);
    assert_eq!(seen.amount_received_minor, 12_500);
    let sent = stripe.requests_to("GET", &format!("/v1/payment_intents/{}", paid.id));
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].idempotency_key, None, "a read carries no idempotency key");
    let missing = gateway.retrieve_payment("pi_unknown").await.unwrap_err();
    assert!(matches!(missing, PortError::Rejected(ref reason) if reason.contains("404")), "{missing:?}");
}

#[tokio::test]
async fn server_errors_and_rate_limits_are_retried_with_the_same_key_and_charge_once() {
    let stripe = StripeStandIn::start().await;
    let gateway = StripeGateway::new(config(&stripe)).unwrap();
    stripe.fail_next("POST", "/v1/payment_intents", StripeFault::ServerError);
    stripe.fail_next("POST", "/v1/payment_intents", StripeFault::RateLimited);

    let created = gateway.create_payment(&payment("payment:9:create", false)).await.unwrap();

    let sent = stripe.requests_to("POST", "/v1/payment_intents");
    assert_eq!(sent.len(), 3);
    assert!(sent.iter().all(|r| r.idempotency_key.as_deref() == Some("payment:9:create")));
    assert_eq!(stripe.intent_count(), 1);
    assert_eq!(stripe.intent(&created.id).unwrap()["amount"], 12_500);
}

#[tokio::test]
async fn a_declined_card_is_final_and_not_retried() {
    let stripe = StripeStandIn::start().await;
    let gateway = StripeGateway::new(config(&stripe)).unwrap();
    stripe.fail_next("POST", "/v1/payment_intents", StripeFault::CardDeclined);

    let err = gateway.create_payment(&payment("payment:10:create", false)).await.unwrap_err();

    assert!(
        matches!(err, PortError::Rejected(ref reason) if reason.contains("402") && reason.contains("generic_decline")),
        "{err:?}"
    );
    assert_eq!(stripe.requests_to("POST", "/v1/payment_intents").len(), 1);
    assert_eq!(stripe.intent_count(), 0);
}

#[tokio::test]
async fn persistent_failures_end_after_the_last_attempt_as_unavailable() {
    let stripe = StripeStandIn::start().await;
    let gateway = StripeGateway::new(config(&stripe)).unwrap();
    for _ in 0..3 {
        stripe.fail_next("POST", "/v1/refunds", StripeFault::ServerError);
    }

    let err = gateway.refund("pi_whatever", None, "refund:5").await.unwrap_err();

    assert!(matches!(err, PortError::Unavailable(ref reason) if reason.contains("500")), "{err:?}");
    assert_eq!(stripe.requests_to("POST", "/v1/refunds").len(), 3);
    assert_eq!(stripe.refund_count(), 0);
}

#[tokio::test]
async fn an_answer_lost_to_the_timeout_is_fetched_again_by_the_retry_without_a_second_charge() {
    let stripe = StripeStandIn::start().await;
    let gateway = StripeGateway::new(StripeConfig { attempt_timeout_ms: 300, ..config(&stripe) }).unwrap();
    // Stripe creates the intent, but the answer comes too late for the first attempt.
    stripe.fail_next("POST", "/v1/payment_intents", StripeFault::StallAfterEffect(Duration::from_secs(30)));

    let created = gateway.create_payment(&payment("payment:11:create", false)).await.unwrap();

    let sent = stripe.requests_to("POST", "/v1/payment_intents");
    assert_eq!(sent.len(), 2);
    assert!(sent.iter().all(|r| r.idempotency_key.as_deref() == Some("payment:11:create")));
    assert_eq!(stripe.intent_count(), 1, "the retry got the first result, not a second intent");
    assert!(stripe.intent(&created.id).is_some());
}

#[tokio::test]
async fn a_stripe_that_never_answers_is_a_timeout_within_the_bound() {
    let stripe = StripeStandIn::start().await;
    let gateway =
        StripeGateway::new(StripeConfig { attempt_timeout_ms: 200, max_attempts: 2, ..config(&stripe) }).unwrap();
    for _ in 0..2 {
        stripe.fail_next("POST", "/v1/payment_intents", StripeFault::StallAfterEffect(Duration::from_secs(30)));
    }

    let err = gateway.create_payment(&payment("payment:12:create", false)).await.unwrap_err();

    assert!(matches!(err, PortError::Timeout(_)), "{err:?}");
    assert_eq!(stripe.requests_to("POST", "/v1/payment_intents").len(), 2);
}

#[tokio::test]
async fn the_whole_call_is_bounded_even_when_attempts_would_go_on() {
    let stripe = StripeStandIn::start().await;
    let gateway = StripeGateway::new(StripeConfig {
        attempt_timeout_ms: 10_000,
        call_timeout_ms: 300,
        max_attempts: 5,
        ..config(&stripe)
    })
    .unwrap();
    stripe.fail_next("GET", "/v1/payment_intents/pi_slow", StripeFault::StallAfterEffect(Duration::from_secs(30)));

    let err = gateway.retrieve_payment("pi_slow").await.unwrap_err();

    assert!(matches!(err, PortError::Timeout(bound) if bound == Duration::from_millis(300)), "{err:?}");
}

#[tokio::test]
async fn an_unreachable_stripe_is_unavailable() {
    // A port that was free a moment ago: nothing listens there.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed = format!("http://{}/", listener.local_addr().unwrap());
    drop(listener);
    let gateway = StripeGateway::new(StripeConfig {
        secret_key: Some(Secret::new("sk_test_standin")),
        api_base: closed,
        max_attempts: 2,
        retry_backoff_ms: 10,
        ..StripeConfig::default()
    })
    .unwrap();

    let err = gateway.create_payment(&payment("payment:13:create", false)).await.unwrap_err();

    assert!(matches!(err, PortError::Unavailable(ref reason) if reason.contains("cannot reach stripe")), "{err:?}");
}

#[tokio::test]
async fn a_key_reused_with_other_parameters_is_refused_by_stripe() {
    let stripe = StripeStandIn::start().await;
    let gateway = StripeGateway::new(config(&stripe)).unwrap();
    gateway.create_payment(&payment("payment:14:create", false)).await.unwrap();
    let mut other = payment("payment:14:create", false);
    other.amount = eur(1);

    let err = gateway.create_payment(&other).await.unwrap_err();

    assert!(matches!(err, PortError::Rejected(ref reason) if reason.contains("idempotency")), "{err:?}");
    assert_eq!(stripe.intent_count(), 1);
}

#[test]
fn without_a_secret_key_there_is_no_gateway() {
    assert!(matches!(StripeGateway::new(StripeConfig::default()), Err(rental_payments::PaymentError::NotConfigured)));
    let bad = StripeConfig {
        secret_key: Some(Secret::new("sk_test")),
        api_base: "http://127.0.0.1:1".into(),
        ..StripeConfig::default()
    };
    assert!(matches!(StripeGateway::new(bad), Err(rental_payments::PaymentError::Config(_))));
}
