//! Deposits held on cards end to end: the payment service over a real database (SQLite, or PostgreSQL with
//! TEST_DATABASE_URL), the Stripe gateway over real HTTP to the stand-in, and webhook events signed as Stripe
//! signs them. A hold is placed with keys derived from the deposit and its hold, captured in part, released;
//! bad amounts are refused before Stripe is called; Stripe failing or slow marks nothing and a retry sends the
//! same key; the expiry rule's branches run on a manual clock: a rental longer than a card hold saves the card,
//! and the deposit job re-authorises its hold off-session before it lapses (a refusal keeps the old hold and
//! flags it; a crash at any point is finished by the next run without a second hold).

#![expect(clippy::unwrap_used, reason = "tests")]

mod common;

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use rental_payments::{StripeConfig, StripeGateway};
use rental_service::{
    Clock, DepositRunReport, DepositView, ManualClock, NewProduct, NewRental, NewRentalLine, NewUnit, PaymentService,
    Principal, ServiceError, Services, WebhookOutcome,
};
use rental_testkit::{StripeFault, StripeStandIn, TestDb};
use serde_json::json;
use uuid::Uuid;

use common::event;

const SECRET: &str = "whsec_deposits";
/// 2 items at 25.00 deposit each.
const DEPOSIT: i64 = 5_000;

struct World {
    services: Services,
    payments: PaymentService,
    stand_in: StripeStandIn,
    clock: ManualClock,
    staff: Principal,
    customer: Principal,
    other: Principal,
    order: Uuid,
    start: DateTime<Utc>,
    _db: TestDb,
}

fn gateway_config(api_base: String) -> StripeConfig {
    common::gateway_config("sk_test_deposits", api_base)
}

/// Services on a manual clock over a fresh database; staff, two customers, and a reserved order of the first
/// customer for 2 cameras with a 25.00 deposit each, starting `start_in` from now and lasting 10 days.
async fn world(start_in: Duration) -> World {
    world_for(start_in, Duration::days(10)).await
}

/// [`world`] with a rental lasting `length`.
async fn world_for(start_in: Duration, length: Duration) -> World {
    let common::Base { services, payments, stand_in, clock, staff, customer, other, category, depot, db: test_db } =
        common::base("sk_test_deposits", |_| {}).await;
    let c = &services.catalogue;
    let product = NewProduct {
        category_id: category.id,
        sku: "CAM-D".into(),
        name: "Camera".into(),
        currency: "EUR".into(),
        price_per_day_minor: 2_000,
        deposit_minor: Some(DEPOSIT / 2),
        ..NewProduct::default()
    };
    let product = c.create_product(&staff, product).await.unwrap();
    let units = ["CAM-D-A", "CAM-D-B"]
        .map(|serial| NewUnit { serial_number: serial.into(), condition: None, location_id: depot.id })
        .to_vec();
    c.add_units(&staff, product.id, units).await.unwrap();
    let start = clock.now() + start_in;
    let rental = NewRental {
        customer_id: None,
        status: None,
        lines: vec![NewRentalLine { product_id: product.id, quantity: 2, start, end: start + length }],
        notes: None,
    };
    let order = services.rentals.create(&customer, rental).await.unwrap().id;
    World { services, payments, stand_in, clock, staff, customer, other, order, start, _db: test_db }
}

/// Signs `payload` as Stripe does and reads it with the verifier.
fn verified(payload: &str) -> rental_service::WebhookEvent {
    common::verified(SECRET, payload)
}

/// An event about the stand-in's payment intent `intent` as it stands now.
fn intent_event(w: &World, id: &str, kind: &str, intent: &str) -> String {
    let mut object = w.stand_in.intent(intent).unwrap();
    object["capture_method"] = json!("manual");
    event(id, kind, object)
}

async fn deposit(w: &World) -> DepositView {
    w.payments.deposit(&w.staff, w.order).await.unwrap()
}

/// Places the order's deposit, has the customer confirm the hold at the stand-in and delivers Stripe's
/// `amount_capturable_updated`; answers the intent.
async fn held(w: &World) -> String {
    let placed = w.payments.place_deposit(&w.customer, w.order).await.unwrap();
    let intent = placed.deposit.payment_intent_id.clone().unwrap();
    w.stand_in.pay(&intent).unwrap();
    let payload = intent_event(w, "evt_held", "payment_intent.amount_capturable_updated", &intent);
    assert_eq!(w.payments.handle_webhook(verified(&payload)).await.unwrap(), WebhookOutcome::Applied);
    intent
}

#[tokio::test]
async fn a_hold_is_placed_with_keys_of_its_own_record_and_captured_in_part() {
    let w = world(Duration::hours(12)).await;
    let placed = w.payments.place_deposit(&w.customer, w.order).await.unwrap();
    let d = &placed.deposit;
    assert_eq!((d.status.as_str(), d.amount_minor, d.currency.as_str(), d.hold_seq), ("pending", DEPOSIT, "EUR", 1));
    assert!(placed.client_secret.is_some());
    let sent = w.stand_in.requests_to("POST", "/v1/payment_intents");
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].idempotency_key.as_deref(), Some(format!("deposit:{}:1:hold", d.id).as_str()));
    assert_eq!(sent[0].param("capture_method"), Some("manual"));
    assert_eq!(sent[0].param("amount"), Some("5000"));
    assert_eq!(sent[0].param("metadata[reference]"), Some(format!("deposit:{}:1", d.id).as_str()));
    // Asked for: a second hold is refused while the first waits for the card.
    let again = w.payments.place_deposit(&w.customer, w.order).await;
    assert!(matches!(again, Err(ServiceError::Conflict { .. })), "{again:?}");

    let intent = d.payment_intent_id.clone().unwrap();
    w.stand_in.pay(&intent).unwrap();
    let payload = intent_event(&w, "evt_hold", "payment_intent.amount_capturable_updated", &intent);
    assert_eq!(w.payments.handle_webhook(verified(&payload)).await.unwrap(), WebhookOutcome::Applied);
    assert_eq!(w.payments.handle_webhook(verified(&payload)).await.unwrap(), WebhookOutcome::Duplicate);
    let now = deposit(&w).await;
    assert_eq!(
        (now.status.as_str(), now.amount_held_minor, now.amount_capturable_minor),
        ("requires_capture", DEPOSIT, DEPOSIT)
    );
    assert_eq!(now.hold_expires_at, now.authorised_at.map(|at| at + Duration::days(7)));
    let active = w.payments.place_deposit(&w.staff, w.order).await;
    assert!(matches!(active, Err(ServiceError::Conflict { .. })), "{active:?}");

    // Customers cannot capture; 0 and more than is held are refused before Stripe is called.
    let by_customer = w.payments.capture_deposit(&w.customer, w.order, Some(100)).await;
    assert!(matches!(by_customer, Err(ServiceError::Forbidden(_))), "{by_customer:?}");
    for amount in [0, -5, DEPOSIT + 1] {
        let refused = w.payments.capture_deposit(&w.staff, w.order, Some(amount)).await;
        assert!(matches!(refused, Err(ServiceError::Invalid(_))), "{amount}: {refused:?}");
    }
    let capture_path = format!("/v1/payment_intents/{intent}/capture");
    assert!(w.stand_in.requests_to("POST", &capture_path).is_empty());

    let captured = w.payments.capture_deposit(&w.staff, w.order, Some(2_000)).await.unwrap();
    assert_eq!((captured.status.as_str(), captured.amount_captured_minor), ("succeeded", 2_000));
    assert_eq!(captured.amount_capturable_minor, 0);
    let sent = w.stand_in.requests_to("POST", &capture_path);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].idempotency_key.as_deref(), Some(format!("deposit:{}:1:capture", d.id).as_str()));
    assert_eq!(sent[0].param("amount_to_capture"), Some("2000"));
    assert_eq!(w.stand_in.intent(&intent).unwrap()["amount_received"], 2_000);

    // Stripe's events of the capture, late and in any order, change nothing more; nor do the released rest.
    let succeeded = intent_event(&w, "evt_captured", "payment_intent.succeeded", &intent);
    assert_eq!(w.payments.handle_webhook(verified(&succeeded)).await.unwrap(), WebhookOutcome::Applied);
    let late_hold = payload.replace("evt_hold", "evt_hold_late");
    assert_eq!(w.payments.handle_webhook(verified(&late_hold)).await.unwrap(), WebhookOutcome::Applied);
    let end = deposit(&w).await;
    assert_eq!((end.status.as_str(), end.amount_captured_minor, end.amount_held_minor), ("succeeded", 2_000, DEPOSIT));
    let release = w.payments.release_deposit(&w.staff, w.order).await;
    assert!(matches!(release, Err(ServiceError::Conflict { .. })), "{release:?}");
    // The invoice is not touched by a deposit.
    let invoices = w.services.billing.list_invoices(&w.staff, &[]).await.unwrap();
    assert!(invoices.items().iter().all(|i| i.amount_paid_minor == 0));
}

#[tokio::test]
async fn a_release_cancels_the_hold_and_other_customers_see_nothing() {
    let w = world(Duration::hours(2)).await;
    let refused = w.payments.place_deposit(&w.other, w.order).await;
    assert!(matches!(refused, Err(ServiceError::NotFound(_))), "{refused:?}");
    let unknown = w.payments.place_deposit(&w.staff, Uuid::now_v7()).await;
    assert!(matches!(unknown, Err(ServiceError::NotFound(_))), "{unknown:?}");
    assert!(w.stand_in.requests_to("POST", "/v1/payment_intents").is_empty());

    let intent = held(&w).await;
    assert!(matches!(w.payments.deposit(&w.other, w.order).await, Err(ServiceError::NotFound(_))));
    assert_eq!(w.payments.deposit(&w.customer, w.order).await.unwrap().status, "requires_capture");
    let by_customer = w.payments.release_deposit(&w.customer, w.order).await;
    assert!(matches!(by_customer, Err(ServiceError::Forbidden(_))), "{by_customer:?}");

    let released = w.payments.release_deposit(&w.staff, w.order).await.unwrap();
    assert_eq!((released.status.as_str(), released.amount_captured_minor), ("canceled", 0));
    let sent = w.stand_in.requests_to("POST", &format!("/v1/payment_intents/{intent}/cancel"));
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].idempotency_key.as_deref(), Some(format!("deposit:{}:1:release", released.id).as_str()));
    assert_eq!(w.stand_in.intent(&intent).unwrap()["status"], "canceled");
    let canceled = intent_event(&w, "evt_canceled", "payment_intent.canceled", &intent);
    assert_eq!(w.payments.handle_webhook(verified(&canceled)).await.unwrap(), WebhookOutcome::Applied);
    let capture = w.payments.capture_deposit(&w.staff, w.order, None).await;
    assert!(matches!(capture, Err(ServiceError::Conflict { .. })), "{capture:?}");
    assert_eq!(deposit(&w).await.status, "canceled");
}

#[tokio::test]
async fn stripe_failing_or_slow_marks_nothing_and_a_retry_sends_the_same_key() {
    let w = world(Duration::hours(12)).await;
    // Stripe answers 500 to every attempt: nothing held, nothing at Stripe.
    for _ in 0..2 {
        w.stand_in.fail_next("POST", "/v1/payment_intents", StripeFault::ServerError);
    }
    let failed = w.payments.place_deposit(&w.customer, w.order).await;
    assert!(matches!(failed, Err(ServiceError::Upstream { .. })), "{failed:?}");
    let d = deposit(&w).await;
    assert_eq!((d.status.as_str(), d.payment_intent_id.as_deref(), d.amount_held_minor), ("pending", None, 0));
    assert_eq!(w.stand_in.intent_count(), 0);

    // Stripe does the work but answers after our bound: the hold exists at Stripe, our record is unchanged.
    let slow = StripeConfig {
        attempt_timeout_ms: 200,
        call_timeout_ms: 400,
        max_attempts: 1,
        ..gateway_config(w.stand_in.base_url())
    };
    let impatient = w.services.payments.clone().with_gateway(Arc::new(StripeGateway::new(slow).unwrap()));
    w.stand_in.fail_next(
        "POST",
        "/v1/payment_intents",
        StripeFault::StallAfterEffect(std::time::Duration::from_secs(2)),
    );
    let late = impatient.place_deposit(&w.customer, w.order).await;
    assert!(matches!(late, Err(ServiceError::Timeout(_))), "{late:?}");
    assert_eq!(w.stand_in.intent_count(), 1);
    assert_eq!(deposit(&w).await.payment_intent_id, None);
    // The retry sends the same key: Stripe answers with the hold it made, no second one.
    let placed = w.payments.place_deposit(&w.customer, w.order).await.unwrap();
    assert_eq!(w.stand_in.intent_count(), 1);
    let keys: Vec<_> =
        w.stand_in.requests_to("POST", "/v1/payment_intents").into_iter().map(|r| r.idempotency_key.unwrap()).collect();
    assert!(keys.iter().all(|k| *k == format!("deposit:{}:1:hold", d.id)), "{keys:?}");
    let intent = placed.deposit.payment_intent_id.clone().unwrap();

    // A capture Stripe fails leaves the hold as it was; its retry sends the same key and amount.
    w.stand_in.pay(&intent).unwrap();
    let payload = intent_event(&w, "evt_hold_f", "payment_intent.amount_capturable_updated", &intent);
    w.payments.handle_webhook(verified(&payload)).await.unwrap();
    let capture_path = format!("/v1/payment_intents/{intent}/capture");
    for _ in 0..2 {
        w.stand_in.fail_next("POST", &capture_path, StripeFault::ServerError);
    }
    let failed = w.payments.capture_deposit(&w.staff, w.order, Some(1_500)).await;
    assert!(matches!(failed, Err(ServiceError::Upstream { .. })), "{failed:?}");
    let d = deposit(&w).await;
    assert_eq!((d.status.as_str(), d.amount_captured_minor), ("requires_capture", 0));
    // Another amount while the first is unanswered is refused; the same amount goes through once.
    let other = w.payments.capture_deposit(&w.staff, w.order, Some(1_000)).await;
    assert!(matches!(other, Err(ServiceError::Conflict { .. })), "{other:?}");
    let captured = w.payments.capture_deposit(&w.staff, w.order, Some(1_500)).await.unwrap();
    assert_eq!(captured.amount_captured_minor, 1_500);
    let sent = w.stand_in.requests_to("POST", &capture_path);
    assert!(sent.iter().all(|r| r.idempotency_key.as_deref() == Some(&*format!("deposit:{}:1:capture", d.id))));
    assert!(sent.iter().all(|r| r.param("amount_to_capture") == Some("1500")));
}

#[tokio::test]
async fn a_refused_hold_fails_and_the_next_hold_has_the_next_number() {
    let w = world(Duration::hours(12)).await;
    w.stand_in.fail_next("POST", "/v1/payment_intents", StripeFault::CardDeclined);
    let refused = w.payments.place_deposit(&w.customer, w.order).await;
    assert!(matches!(refused, Err(ServiceError::Upstream { .. })), "{refused:?}");
    let d = deposit(&w).await;
    assert_eq!(d.status, "failed");
    assert!(d.failure_reason.unwrap().contains("generic_decline"));

    let placed = w.payments.place_deposit(&w.customer, w.order).await.unwrap();
    assert_eq!((placed.deposit.status.as_str(), placed.deposit.hold_seq), ("pending", 2));
    let sent = w.stand_in.requests_to("POST", "/v1/payment_intents");
    assert_eq!(sent.last().unwrap().idempotency_key.as_deref(), Some(format!("deposit:{}:2:hold", d.id).as_str()));
    // An event of the first hold's reference changes nothing of the second.
    let intent = placed.deposit.payment_intent_id.clone().unwrap();
    let mut object = w.stand_in.intent(&intent).unwrap();
    object["id"] = json!("pi_old_hold");
    object["status"] = json!("canceled");
    object["metadata"]["reference"] = json!(format!("deposit:{}:1", d.id));
    let stale = event("evt_stale", "payment_intent.canceled", object);
    assert_eq!(w.payments.handle_webhook(verified(&stale)).await.unwrap(), WebhookOutcome::Unmatched);
    assert_eq!(deposit(&w).await.status, "pending");
}

#[tokio::test]
async fn an_early_deposit_is_scheduled_and_placed_by_the_job_from_its_day() {
    let w = world(Duration::days(3)).await;
    let scheduled = w.payments.place_deposit(&w.customer, w.order).await.unwrap();
    let d = &scheduled.deposit;
    assert_eq!((d.status.as_str(), d.place_from), ("scheduled", w.start - Duration::days(1)));
    assert_eq!(scheduled.client_secret, None);
    assert!(w.stand_in.requests_to("POST", "/v1/payment_intents").is_empty());
    let twice = w.payments.place_deposit(&w.customer, w.order).await;
    assert!(matches!(twice, Err(ServiceError::Conflict { .. })), "{twice:?}");

    // Before its day the job leaves it; from its day the job places it.
    let report = w.payments.run_deposits().await.unwrap();
    assert_eq!((report.placed, report.dropped, report.flagged, report.failed), (0, 0, 0, 0));
    w.clock.set(w.start - Duration::days(1));
    let report = w.payments.run_deposits().await.unwrap();
    assert_eq!((report.placed, report.failed), (1, 0));
    let placed = deposit(&w).await;
    assert_eq!(placed.status, "pending");
    let sent = w.stand_in.requests_to("POST", "/v1/payment_intents");
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].idempotency_key.as_deref(), Some(format!("deposit:{}:1:hold", d.id).as_str()));
    assert_eq!(w.payments.run_deposits().await.unwrap().placed, 0);

    // The 10-day rental outlasts a 7-day hold: the job's hold saves the card.
    assert_eq!(sent[0].param("setup_future_usage"), Some("off_session"));

    // Held from the day before the start: re-authorised on day 6, not before, once.
    let intent = placed.payment_intent_id.unwrap();
    w.stand_in.pay(&intent).unwrap();
    let payload = intent_event(&w, "evt_job_hold", "payment_intent.amount_capturable_updated", &intent);
    w.payments.handle_webhook(verified(&payload)).await.unwrap();
    let authorised = deposit(&w).await.authorised_at.unwrap();
    assert_eq!(authorised, w.start - Duration::days(1));
    w.clock.set(authorised + Duration::days(6) - Duration::minutes(1));
    let report = w.payments.run_deposits().await.unwrap();
    assert_eq!((report.flagged, report.reauthorised), (0, 0));
    assert_eq!(deposit(&w).await.attention, None);
    w.clock.set(authorised + Duration::days(6));
    let report = w.payments.run_deposits().await.unwrap();
    assert_eq!((report.flagged, report.reauthorised, report.released), (0, 1, 1));
    let renewed = deposit(&w).await;
    assert_eq!((renewed.status.as_str(), renewed.hold_seq, renewed.attention), ("requires_capture", 2, None));
    let report = w.payments.run_deposits().await.unwrap();
    assert_eq!((report.flagged, report.reauthorised, report.released), (0, 0, 0));
}

#[tokio::test]
async fn a_scheduled_deposit_of_a_cancelled_order_is_dropped_and_a_hold_of_an_ended_one_is_flagged_plainly() {
    let w = world(Duration::days(4)).await;
    w.payments.place_deposit(&w.customer, w.order).await.unwrap();
    w.services.rentals.cancel(&w.staff, w.order, None).await.unwrap();
    w.clock.set(w.start);
    let report = w.payments.run_deposits().await.unwrap();
    assert_eq!((report.placed, report.dropped), (0, 1));
    assert_eq!(deposit(&w).await.status, "canceled");
    assert!(w.stand_in.requests_to("POST", "/v1/payment_intents").is_empty());
    // A cancelled order takes no new deposit.
    let refused = w.payments.place_deposit(&w.staff, w.order).await;
    assert!(matches!(refused, Err(ServiceError::Conflict { .. })), "{refused:?}");

    let w = world(Duration::hours(1)).await;
    held(&w).await;
    w.services.rentals.cancel(&w.staff, w.order, None).await.unwrap();
    w.clock.advance(Duration::days(6));
    assert_eq!(w.payments.run_deposits().await.unwrap().flagged, 1);
    let flagged = deposit(&w).await.attention.unwrap();
    assert!(flagged.contains("capture what is owed or release it") && !flagged.contains("runs"), "{flagged}");
}

#[tokio::test]
async fn a_release_drops_a_scheduled_deposit_without_calling_stripe() {
    let w = world(Duration::days(5)).await;
    w.payments.place_deposit(&w.customer, w.order).await.unwrap();
    let released = w.payments.release_deposit(&w.staff, w.order).await.unwrap();
    assert_eq!(released.status, "canceled");
    assert!(w.stand_in.requests().is_empty());
    let missing = w.payments.capture_deposit(&w.staff, Uuid::now_v7(), None).await;
    assert!(matches!(missing, Err(ServiceError::NotFound(_))), "{missing:?}");
}

/// The hold's form body and the customer's Stripe customer of a long and of a short rental.
#[tokio::test]
async fn a_long_rental_saves_the_card_to_the_customer_and_a_short_one_does_not() {
    let w = world(Duration::hours(12)).await;
    let placed = w.payments.place_deposit(&w.customer, w.order).await.unwrap();
    let sent = w.stand_in.requests_to("POST", "/v1/payment_intents");
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].param("setup_future_usage"), Some("off_session"));
    assert_eq!((sent[0].param("off_session"), sent[0].param("confirm")), (None, None));
    // The card is saved to the customer's Stripe customer, made for the purpose with the user's own key.
    let customers = w.stand_in.requests_to("POST", "/v1/customers");
    assert_eq!(customers.len(), 1);
    let user = w.customer.user_id.as_uuid();
    assert_eq!(customers[0].idempotency_key.as_deref(), Some(format!("user:{user}:customer").as_str()));
    let customer = w.payments.customer(&w.customer).await.unwrap();
    assert!(!customer.created);
    assert_eq!(sent[0].param("customer"), Some(customer.customer_id.as_str()));
    let intent = placed.deposit.payment_intent_id.unwrap();
    let paid = w.stand_in.pay(&intent).unwrap();
    assert_eq!(w.stand_in.saved_to(paid["payment_method"].as_str().unwrap()), Some(customer.customer_id));

    // Five days: placed 12 hours before, held until a day after the end, 6.5 days in all: within a hold's life.
    let w = world_for(Duration::hours(12), Duration::days(5)).await;
    w.payments.place_deposit(&w.customer, w.order).await.unwrap();
    let sent = w.stand_in.requests_to("POST", "/v1/payment_intents");
    assert_eq!(sent.len(), 1);
    assert_eq!((sent[0].param("setup_future_usage"), sent[0].param("customer")), (None, None));
    assert!(w.stand_in.requests_to("POST", "/v1/customers").is_empty());
}

#[tokio::test]
async fn a_short_rentals_hold_is_flagged_as_before_and_never_reauthorised() {
    let w = world_for(Duration::hours(12), Duration::days(5)).await;
    held(&w).await;
    // The rental is not returned in time: on day 6 the hold is flagged, with no second hold.
    w.clock.advance(Duration::days(6));
    let report = w.payments.run_deposits().await.unwrap();
    assert_eq!((report.flagged, report.reauthorised, report.released), (1, 0, 0));
    assert_eq!(w.stand_in.requests_to("POST", "/v1/payment_intents").len(), 1);
    let d = deposit(&w).await;
    assert_eq!((d.status.as_str(), d.hold_seq), ("requires_capture", 1));
    assert!(d.attention.unwrap().contains("while the rental runs"));
}

#[tokio::test]
async fn the_job_reauthorises_a_long_rentals_hold_off_session_and_releases_the_old_one() {
    let w = world(Duration::hours(12)).await;
    let old = held(&w).await;
    let first = deposit(&w).await;
    let authorised = first.authorised_at.unwrap();
    let method = w.stand_in.intent(&old).unwrap()["payment_method"].as_str().unwrap().to_owned();
    let customer = w.payments.customer(&w.customer).await.unwrap().customer_id;

    w.clock.set(authorised + Duration::days(6) - Duration::seconds(1));
    assert_eq!(w.payments.run_deposits().await.unwrap(), DepositRunReport::default());
    assert_eq!(w.stand_in.intent_count(), 1);
    w.clock.set(authorised + Duration::days(6));
    let report = w.payments.run_deposits().await.unwrap();
    assert_eq!((report.reauthorised, report.released, report.flagged, report.failed), (1, 1, 0, 0));

    // The new hold: off-session on the saved card, manual capture, the next hold's number and key.
    let sent = w.stand_in.requests_to("POST", "/v1/payment_intents");
    assert_eq!(sent.len(), 2);
    let hold = &sent[1];
    assert_eq!(hold.idempotency_key.as_deref(), Some(format!("deposit:{}:2:hold", first.id).as_str()));
    assert_eq!(hold.param("metadata[reference]"), Some(format!("deposit:{}:2", first.id).as_str()));
    assert_eq!(hold.param("customer"), Some(customer.as_str()));
    assert_eq!(hold.param("payment_method"), Some(method.as_str()));
    assert_eq!((hold.param("off_session"), hold.param("confirm")), (Some("true"), Some("true")));
    assert_eq!((hold.param("capture_method"), hold.param("amount")), (Some("manual"), Some("5000")));
    assert_eq!(hold.param("setup_future_usage"), None);
    // The old hold is released with its own key, after the new one was held.
    let cancels = w.stand_in.requests_to("POST", &format!("/v1/payment_intents/{old}/cancel"));
    assert_eq!(cancels.len(), 1);
    assert_eq!(cancels[0].idempotency_key.as_deref(), Some(format!("deposit:{}:1:release", first.id).as_str()));
    assert_eq!(w.stand_in.intent(&old).unwrap()["status"], "canceled");

    let now = deposit(&w).await;
    let new = now.payment_intent_id.clone().unwrap();
    assert_ne!(new, old);
    assert_eq!(w.stand_in.intent(&new).unwrap()["status"], "requires_capture");
    assert_eq!((now.status.as_str(), now.hold_seq, now.amount_held_minor), ("requires_capture", 2, DEPOSIT));
    assert_eq!(now.authorised_at, Some(authorised + Duration::days(6)));
    assert_eq!(now.hold_expires_at, Some(authorised + Duration::days(13)));
    assert_eq!(now.attention, None);

    // Stripe's events of the old hold change nothing; the new hold's own event applies.
    let stale = intent_event(&w, "evt_old_canceled", "payment_intent.canceled", &old);
    assert_eq!(w.payments.handle_webhook(verified(&stale)).await.unwrap(), WebhookOutcome::Unmatched);
    let fresh = intent_event(&w, "evt_new_held", "payment_intent.amount_capturable_updated", &new);
    assert_eq!(w.payments.handle_webhook(verified(&fresh)).await.unwrap(), WebhookOutcome::Applied);
    assert_eq!(deposit(&w).await, now);
    // Nothing more to do until the next hold nears its end; the rental (to day 10.5, a day's margin) then ends
    // before that hold lapses (day 13): flagged, not held again.
    assert_eq!(w.payments.run_deposits().await.unwrap(), DepositRunReport::default());
    w.clock.set(authorised + Duration::days(12));
    let report = w.payments.run_deposits().await.unwrap();
    assert_eq!((report.reauthorised, report.flagged), (0, 1));
    assert_eq!(w.stand_in.intent_count(), 2);

    // Capture acts on the current hold, with its key.
    let captured = w.payments.capture_deposit(&w.staff, w.order, Some(2_000)).await.unwrap();
    assert_eq!((captured.status.as_str(), captured.amount_captured_minor), ("succeeded", 2_000));
    let capture = w.stand_in.requests_to("POST", &format!("/v1/payment_intents/{new}/capture"));
    assert_eq!(capture.len(), 1);
    assert_eq!(capture[0].idempotency_key.as_deref(), Some(format!("deposit:{}:2:capture", first.id).as_str()));
}

#[tokio::test]
async fn a_refused_reauthorisation_keeps_the_old_hold_and_flags_it_for_staff() {
    for (fault, reason) in [
        (StripeFault::AuthenticationRequired, "authentication_required"),
        (StripeFault::CardDeclined, "generic_decline"),
    ] {
        let w = world(Duration::hours(12)).await;
        let old = held(&w).await;
        w.clock.advance(Duration::days(6));
        w.stand_in.fail_next("POST", "/v1/payment_intents", fault);
        let report = w.payments.run_deposits().await.unwrap();
        assert_eq!((report.reauthorised, report.flagged, report.released, report.failed), (0, 1, 0, 0), "{reason}");
        let d = deposit(&w).await;
        assert_eq!(
            (d.status.as_str(), d.hold_seq, d.payment_intent_id.as_deref()),
            ("requires_capture", 1, Some(&*old))
        );
        assert!(d.attention.as_deref().unwrap().contains(reason), "{:?}", d.attention);
        assert_eq!(w.stand_in.intent(&old).unwrap()["status"], "requires_capture", "the old hold stays");
        assert!(w.stand_in.requests_to("POST", &format!("/v1/payment_intents/{old}/cancel")).is_empty());
        // Flagged once: the next runs leave it to staff.
        assert_eq!(w.payments.run_deposits().await.unwrap(), DepositRunReport::default());
        assert_eq!(w.stand_in.requests_to("POST", "/v1/payment_intents").len(), 2);
        // Staff can still capture the old hold.
        let captured = w.payments.capture_deposit(&w.staff, w.order, None).await.unwrap();
        assert_eq!(captured.amount_captured_minor, DEPOSIT);
    }
}

#[tokio::test]
async fn a_card_no_longer_saved_is_refused_by_stripe_and_flagged() {
    let w = world(Duration::hours(12)).await;
    held(&w).await;
    w.stand_in.forget_saved_cards();
    w.clock.advance(Duration::days(6));
    let report = w.payments.run_deposits().await.unwrap();
    assert_eq!((report.reauthorised, report.flagged), (0, 1));
    assert!(deposit(&w).await.attention.unwrap().contains("resource_missing"));
}

/// Runs the deposit job in a task that dies (is aborted) while Stripe, having done the work, has not answered
/// the request to `path` yet.
async fn crash_during(w: &World, path: &str) {
    w.stand_in.fail_next("POST", path, StripeFault::StallAfterEffect(std::time::Duration::from_secs(30)));
    let before = w.stand_in.requests_to("POST", path).len();
    let payments = w.payments.clone();
    let run = tokio::spawn(async move { payments.run_deposits().await });
    kill_when_asked(w, path, before, run).await;
}

#[tokio::test]
async fn a_crash_after_stripe_made_the_new_hold_is_finished_by_the_next_run_without_a_second_hold() {
    let w = world(Duration::hours(12)).await;
    let old = held(&w).await;
    let id = deposit(&w).await.id;
    w.clock.advance(Duration::days(6));
    crash_during(&w, "/v1/payment_intents").await;
    // Stripe holds twice now; our row still names the old hold.
    assert_eq!(w.stand_in.intent_count(), 2);
    let d = deposit(&w).await;
    assert_eq!((d.hold_seq, d.payment_intent_id.as_deref()), (1, Some(&*old)));
    // An event of the new hold before our record of it changes nothing (its hold number is not the row's).
    let new = w.stand_in.intents_with_reference(&format!("deposit:{id}:2"));
    assert_eq!(new.len(), 1);
    assert_eq!(new[0]["status"], "requires_capture");
    let early =
        intent_event(&w, "evt_new_early", "payment_intent.amount_capturable_updated", new[0]["id"].as_str().unwrap());
    assert_eq!(w.payments.handle_webhook(verified(&early)).await.unwrap(), WebhookOutcome::Unmatched);
    assert_eq!(deposit(&w).await, d);

    let report = w.payments.run_deposits().await.unwrap();
    assert_eq!((report.reauthorised, report.released, report.failed), (1, 1, 0));
    assert_eq!(w.stand_in.intent_count(), 2, "Stripe answered the same key with the hold it made");
    let keys: Vec<_> = w.stand_in.requests_to("POST", "/v1/payment_intents")[1..]
        .iter()
        .map(|r| r.idempotency_key.clone().unwrap())
        .collect();
    assert_eq!(keys, vec![format!("deposit:{id}:2:hold"); 2]);
    let d = deposit(&w).await;
    assert_eq!((d.hold_seq, d.status.as_str()), (2, "requires_capture"));
    assert_eq!(w.stand_in.intent(&old).unwrap()["status"], "canceled");
    assert_eq!(w.payments.run_deposits().await.unwrap(), DepositRunReport::default());
}

#[tokio::test]
async fn a_crash_before_the_old_hold_was_released_is_finished_by_the_next_run() {
    let w = world(Duration::hours(12)).await;
    let old = held(&w).await;
    let id = deposit(&w).await.id;
    w.clock.advance(Duration::days(6));
    let cancel = format!("/v1/payment_intents/{old}/cancel");
    crash_during(&w, &cancel).await;
    // The new hold is recorded; Stripe released the old one, but we did not hear it.
    let d = deposit(&w).await;
    assert_eq!(d.hold_seq, 2);
    assert_eq!(w.stand_in.intent(&old).unwrap()["status"], "canceled");

    let report = w.payments.run_deposits().await.unwrap();
    assert_eq!((report.reauthorised, report.released, report.failed), (0, 1, 0));
    let sent = w.stand_in.requests_to("POST", &cancel);
    assert_eq!(sent.len(), 2);
    assert!(sent.iter().all(|r| r.idempotency_key.as_deref() == Some(&*format!("deposit:{id}:1:release"))));
    assert_eq!(w.stand_in.intent_count(), 2);
    assert_eq!(w.payments.run_deposits().await.unwrap(), DepositRunReport::default());
    assert_eq!(w.stand_in.requests_to("POST", &cancel).len(), 2);
}

#[tokio::test]
async fn a_hold_captured_while_its_reauthorisation_was_unfinished_has_the_new_hold_released() {
    let w = world(Duration::hours(12)).await;
    let old = held(&w).await;
    let id = deposit(&w).await.id;
    w.clock.advance(Duration::days(6));
    crash_during(&w, "/v1/payment_intents").await;
    // Staff capture the current (old) hold before the next run.
    let captured = w.payments.capture_deposit(&w.staff, w.order, Some(1_000)).await.unwrap();
    assert_eq!((captured.hold_seq, captured.status.as_str()), (1, "succeeded"));
    let report = w.payments.run_deposits().await.unwrap();
    assert_eq!((report.reauthorised, report.released, report.failed), (0, 1, 0));
    let new = w.stand_in.requests_to("POST", "/v1/payment_intents");
    assert_eq!(new.len(), 3);
    let d = deposit(&w).await;
    assert_eq!((d.hold_seq, d.payment_intent_id.as_deref(), d.amount_captured_minor), (1, Some(&*old), 1_000));
    // The unwanted new hold is released with its own key.
    let released: Vec<_> = w
        .stand_in
        .requests()
        .into_iter()
        .filter(|r| r.path.ends_with("/cancel"))
        .map(|r| (r.path, r.idempotency_key.unwrap()))
        .collect();
    assert_eq!(released.len(), 1);
    assert_eq!(released[0].1, format!("deposit:{id}:2:release"));
    assert!(!released[0].0.contains(&old));
}

/// Waits until the stand-in got a request to `path` beyond the `before` it had, then kills `task` (the process
/// dies while Stripe, having done the work, has not answered).
async fn kill_when_asked<T: std::fmt::Debug>(w: &World, path: &str, before: usize, task: tokio::task::JoinHandle<T>) {
    while w.stand_in.requests_to("POST", path).len() == before {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    task.abort();
    assert!(task.await.unwrap_err().is_cancelled());
}

#[tokio::test]
async fn reconciliation_repairs_a_deposit_whose_hold_stripe_made_while_we_crashed() {
    let w = world(Duration::hours(12)).await;
    let stall = StripeFault::StallAfterEffect(std::time::Duration::from_secs(30));
    w.stand_in.fail_next("POST", "/v1/payment_intents", stall);
    let (payments, customer, order) = (w.payments.clone(), w.customer.clone(), w.order);
    let place = tokio::spawn(async move { payments.place_deposit(&customer, order).await });
    kill_when_asked(&w, "/v1/payment_intents", 0, place).await;
    assert_eq!(w.stand_in.intent_count(), 1);
    let d = deposit(&w).await;
    assert_eq!((d.status.as_str(), d.payment_intent_id.as_deref()), ("pending", None));

    // Within the idempotency hold the request may still be waiting for Stripe: left alone.
    let since = w.clock.now() - Duration::days(1);
    let report = w.payments.reconcile(since, 100).await.unwrap();
    assert_eq!((report.deposits_checked, report.deposits_changed.len()), (0, 0));
    assert_eq!(w.stand_in.requests_to("POST", "/v1/payment_intents").len(), 1);
    // After it, the hold is asked again with the same key and parameters: Stripe answers the intent it made.
    w.clock.advance(Duration::seconds(121));
    let report = w.payments.reconcile(since, 100).await.unwrap();
    assert_eq!((report.deposits_checked, report.deposits_failed), (1, 0));
    let sent = w.stand_in.requests_to("POST", "/v1/payment_intents");
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[0].params, sent[1].params);
    assert!(sent.iter().all(|r| r.idempotency_key.as_deref() == Some(&*format!("deposit:{}:1:hold", d.id))));
    assert_eq!(w.stand_in.intent_count(), 1);
    let intent = deposit(&w).await.payment_intent_id.unwrap();
    assert_eq!(report.deposits_changed.len(), 1);
    assert_eq!(report.deposits_changed[0].payment_intent_id.as_deref(), Some(intent.as_str()));

    // The customer confirms the hold and its webhook is lost: the next run reads the intent and records it.
    w.stand_in.pay(&intent).unwrap();
    let report = w.payments.reconcile(since, 100).await.unwrap();
    assert_eq!(report.deposits_changed.len(), 1);
    let changed = &report.deposits_changed[0];
    assert_eq!((changed.from.as_str(), changed.to.as_str()), ("pending", "requires_capture"));
    let held = deposit(&w).await;
    assert_eq!((held.status.as_str(), held.amount_held_minor), ("requires_capture", DEPOSIT));
    // Once: the next run has nothing to do, and the late webhook adds nothing.
    let again = w.payments.reconcile(since, 100).await.unwrap();
    assert_eq!((again.deposits_checked, again.deposits_changed.len()), (0, 0));
    let late = intent_event(&w, "evt_late_hold", "payment_intent.amount_capturable_updated", &intent);
    assert_eq!(w.payments.handle_webhook(verified(&late)).await.unwrap(), WebhookOutcome::Applied);
    assert_eq!(deposit(&w).await, held);
}

#[tokio::test]
async fn reconciliation_records_a_capture_stripe_made_while_we_crashed() {
    let w = world(Duration::hours(12)).await;
    let intent = held(&w).await;
    let path = format!("/v1/payment_intents/{intent}/capture");
    w.stand_in.fail_next("POST", &path, StripeFault::StallAfterEffect(std::time::Duration::from_secs(30)));
    let (payments, staff, order) = (w.payments.clone(), w.staff.clone(), w.order);
    let capture = tokio::spawn(async move { payments.capture_deposit(&staff, order, Some(2_000)).await });
    kill_when_asked(&w, &path, 0, capture).await;
    assert_eq!(w.stand_in.intent(&intent).unwrap()["amount_received"], 2_000);
    let d = deposit(&w).await;
    assert_eq!((d.status.as_str(), d.amount_captured_minor), ("requires_capture", 0));

    let since = w.clock.now() - Duration::days(1);
    let report = w.payments.reconcile(since, 100).await.unwrap();
    assert_eq!((report.deposits_checked, report.deposits_failed), (1, 0));
    assert_eq!(report.deposits_changed.len(), 1);
    let changed = &report.deposits_changed[0];
    assert_eq!((changed.from.as_str(), changed.to.as_str()), ("requires_capture", "succeeded"));
    let d = deposit(&w).await;
    assert_eq!((d.status.as_str(), d.amount_captured_minor), ("succeeded", 2_000));
    // No second capture was asked of Stripe, and the next run finds nothing.
    assert_eq!(w.stand_in.requests_to("POST", &path).len(), 1);
    let again = w.payments.reconcile(since, 100).await.unwrap();
    assert_eq!((again.deposits_checked, again.deposits_changed.len()), (0, 0));
}

#[tokio::test]
async fn reconciliation_leaves_a_capture_stripe_never_made_for_staff_to_repeat() {
    let w = world(Duration::hours(12)).await;
    let intent = held(&w).await;
    let path = format!("/v1/payment_intents/{intent}/capture");
    for _ in 0..2 {
        w.stand_in.fail_next("POST", &path, StripeFault::ServerError);
    }
    assert!(w.payments.capture_deposit(&w.staff, w.order, Some(1_500)).await.is_err());
    let since = w.clock.now() - Duration::days(1);
    let report = w.payments.reconcile(since, 100).await.unwrap();
    assert_eq!((report.deposits_checked, report.deposits_changed.len()), (1, 0));
    assert_eq!(deposit(&w).await.status, "requires_capture");
    let captured = w.payments.capture_deposit(&w.staff, w.order, Some(1_500)).await.unwrap();
    assert_eq!(captured.amount_captured_minor, 1_500);
}

#[tokio::test]
async fn capturing_a_pending_deposit_asks_stripe_first_and_captures_a_hold_whose_webhook_was_missed() {
    let w = world(Duration::hours(12)).await;
    let placed = w.payments.place_deposit(&w.customer, w.order).await.unwrap();
    let intent = placed.deposit.payment_intent_id.unwrap();
    let read = format!("/v1/payment_intents/{intent}");
    let capture = format!("{read}/capture");

    // Not confirmed by the customer: Stripe holds nothing, so there is nothing to capture (409), and no
    // capture is asked of Stripe. A bad amount is refused before Stripe is asked anything.
    let bad = w.payments.capture_deposit(&w.staff, w.order, Some(0)).await;
    assert!(matches!(bad, Err(ServiceError::Invalid(_))), "{bad:?}");
    assert!(w.stand_in.requests_to("GET", &read).is_empty());
    let early = w.payments.capture_deposit(&w.staff, w.order, Some(2_000)).await;
    assert!(matches!(early, Err(ServiceError::Conflict { .. })), "{early:?}");
    assert_eq!(w.stand_in.requests_to("GET", &read).len(), 1);
    assert!(w.stand_in.requests_to("POST", &capture).is_empty());
    assert_eq!(deposit(&w).await.status, "pending");

    // Confirmed, and its webhook lost: the capture records the hold from Stripe's answer, then captures it.
    w.stand_in.pay(&intent).unwrap();
    let captured = w.payments.capture_deposit(&w.staff, w.order, Some(2_000)).await.unwrap();
    assert_eq!((captured.status.as_str(), captured.amount_captured_minor), ("succeeded", 2_000));
    assert_eq!((captured.amount_held_minor, captured.authorised_at.is_some()), (DEPOSIT, true));
    let sent = w.stand_in.requests_to("POST", &capture);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].idempotency_key.as_deref(), Some(format!("deposit:{}:1:capture", captured.id).as_str()));
    assert_eq!(sent[0].param("amount_to_capture"), Some("2000"));
}
