//! Webhook handling throughput (target: at least 1,000 verified, deduplicated events/s into PostgreSQL): each
//! event is a signed `payment_intent.succeeded` body checked by the [`WebhookVerifier`] (HMAC-SHA256 over the
//! raw body, parsed by async-stripe) and handled by the payment service in one transaction that records it in
//! `webhook_events` (deduplicated by its id) and looks up its payment. Every event of a batch is distinct and
//! names no payment of ours (recorded as `unmatched`), so the figure is the cost of verification, lookup and
//! the deduplicating insert and commit, without contention on one payment's row; a second group sends a batch
//! again and again (every event a duplicate). 16 deliveries run at once, as Stripe's do.
//!
//! A third group, `applied_events`, sends events that each name one of [`PAYMENTS`] existing payments (each of
//! its own order's draft invoice, with its payment intent attached): every event is applied, so it also pays
//! for the payment's row lock, the merge of Stripe's facts and the update of the invoice's paid amount (each
//! event carries a larger `amount_received` than the last, so the facts change every time).
//!
//! `TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test cargo bench -p rental-payments --bench webhook`
//! (without the variable: SQLite).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::Utc;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rental_domain::Money;
use rental_payments::{API_VERSION, WebhookVerifier};
use rental_repo::{Database, DatabaseConfig, NewStripePayment, PaymentRepo};
use rental_service::{
    AuthConfig, ManualClock, NewCategory, NewProduct, NewRental, NewRentalLine, Secret, ServiceConfig, Services,
};
use rental_testkit::TestDb;
use serde_json::json;
use stripe_webhook::Webhook;

const SECRET: &str = "whsec_bench";
const BATCH: u64 = 1_000;
const CONCURRENCY: u64 = 16;
/// Payments the applied events are spread over.
const PAYMENTS: usize = 256;

fn payload(n: u64) -> String {
    json!({
        "id": format!("evt_bench_{n}"), "object": "event", "api_version": API_VERSION,
        "created": Utc::now().timestamp(), "livemode": false, "pending_webhooks": 1,
        "request": { "id": null, "idempotency_key": null }, "type": "payment_intent.succeeded",
        "data": { "object": {
            "id": format!("pi_bench_{n}"), "object": "payment_intent", "amount": 8_800, "amount_capturable": 0,
            "amount_received": 8_800, "capture_method": "automatic", "confirmation_method": "automatic",
            "created": 1_700_000_000, "currency": "eur", "livemode": false,
            "metadata": { "reference": "payment:00000000-0000-7000-8000-000000000000" },
            "payment_method_types": ["card"], "status": "succeeded",
        } },
    })
    .to_string()
}

/// A `payment_intent.succeeded` event for the existing payment `payment` (its intent `intent`), `received` paid.
fn applied_payload(n: u64, payment: uuid::Uuid, intent: &str, received: u64) -> String {
    json!({
        "id": format!("evt_applied_{n}"), "object": "event", "api_version": API_VERSION,
        "created": Utc::now().timestamp(), "livemode": false, "pending_webhooks": 1,
        "request": { "id": null, "idempotency_key": null }, "type": "payment_intent.succeeded",
        "data": { "object": {
            "id": intent, "object": "payment_intent", "amount": 1_000_000_000, "amount_capturable": 0,
            "amount_received": received, "capture_method": "automatic", "confirmation_method": "automatic",
            "created": 1_700_000_000, "currency": "eur", "livemode": false,
            "metadata": { "reference": format!("payment:{payment}") },
            "payment_method_types": ["card"], "status": "succeeded",
        } },
    })
    .to_string()
}

/// [`PAYMENTS`] payments, each of its own quote's draft invoice, with a payment intent attached.
async fn payments(services: &Services, db: &Database) -> Vec<(uuid::Uuid, String)> {
    services.users.create_admin("root@example.com", "root-password").await.unwrap();
    let tokens = services.auth.login("root@example.com", "root-password").await.unwrap();
    let admin = services.auth.authenticate(&tokens.access_token).await.unwrap();
    let category = NewCategory { name: "Tents".into(), description: None };
    let category = services.catalogue.create_category(&admin, category).await.unwrap();
    let product = NewProduct {
        category_id: category.id,
        sku: "TNT-1".into(),
        name: "Tent".into(),
        currency: "EUR".into(),
        price_per_day_minor: 1_000,
        ..NewProduct::default()
    };
    let product = services.catalogue.create_product(&admin, product).await.unwrap();
    let repo = PaymentRepo::new(db.clone());
    let start = Utc::now() + chrono::Duration::days(2);
    let mut made = Vec::with_capacity(PAYMENTS);
    for n in 0..PAYMENTS {
        let quote = NewRental {
            customer_id: None,
            status: Some("quote".into()),
            lines: vec![NewRentalLine {
                product_id: product.id,
                quantity: 1,
                start,
                end: start + chrono::Duration::days(3),
            }],
            notes: None,
        };
        let order = services.rentals.create(&admin, quote).await.unwrap();
        let invoice = repo.invoice_of_order(order.id).await.unwrap().unwrap();
        let intent = format!("pi_applied_{n}");
        let id = db
            .write(async |uow| {
                let new = NewStripePayment {
                    invoice_id: invoice.id,
                    order_id: invoice.order_id,
                    customer_id: invoice.customer_id,
                    kind: "intent",
                    amount: Money::new(1_000_000_000, invoice.total.currency),
                    stripe_customer_id: None,
                };
                let payment = repo.create(uow, new, Utc::now()).await?;
                repo.attach(uow, payment.id, None, Some(&intent), Utc::now()).await?;
                Ok::<_, rental_repo::RepoError>(payment.id)
            })
            .await
            .unwrap();
        made.push((id, intent));
    }
    made
}

fn throughput(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let (services, db, _test_db) = runtime.block_on(async {
        let test_db = TestDb::new().await;
        let config = DatabaseConfig { max_connections: Some(16), ..DatabaseConfig::with_url(test_db.url()) };
        let db = Database::connect(&config).await.unwrap();
        let config = ServiceConfig {
            auth: AuthConfig {
                jwt_secret: Secret::new("bench-secret-bench-secret-bench-secret"),
                ..AuthConfig::default()
            },
            ..ServiceConfig::default()
        };
        let services = Services::with_clock(db.clone(), &config, Arc::new(ManualClock::new(Utc::now())));
        (services.unwrap(), db, test_db)
    });
    let targets = Arc::new(runtime.block_on(payments(&services, &db)));
    let verifier = WebhookVerifier::new(Secret::new(SECRET));
    let next = AtomicU64::new(0);

    let run = |first: u64, count: u64, applied: bool| {
        let payments = services.payments.clone();
        let verifier = verifier.clone();
        let targets = targets.clone();
        runtime.block_on(async move {
            let started = Instant::now();
            let mut tasks = tokio::task::JoinSet::new();
            for lane in 0..CONCURRENCY {
                let payments = payments.clone();
                let verifier = verifier.clone();
                let targets = targets.clone();
                tasks.spawn(async move {
                    let mut n = first + lane;
                    while n < first + count {
                        let body = if applied {
                            let (payment, intent) = &targets[usize::try_from(n).unwrap() % PAYMENTS];
                            applied_payload(n, *payment, intent, n + 1)
                        } else {
                            payload(n)
                        };
                        let header = Webhook::generate_test_header(&body, SECRET, Some(Utc::now().timestamp()));
                        let event = verifier.verify(&body, Some(&header)).unwrap().into_service_event();
                        let outcome = payments.handle_webhook(event).await.unwrap();
                        if applied {
                            assert_eq!(outcome.as_str(), "applied");
                        }
                        n += CONCURRENCY;
                    }
                });
            }
            tasks.join_all().await;
            started.elapsed()
        })
    };

    let mut group = c.benchmark_group("webhook");
    group.throughput(Throughput::Elements(BATCH)).sample_size(10).measurement_time(Duration::from_secs(20));
    group.bench_function("distinct_events", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| run(next.fetch_add(BATCH, Ordering::Relaxed), BATCH, false)).sum());
    });
    group.bench_function("duplicate_events", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| run(0, BATCH, false)).sum());
    });
    let applied = AtomicU64::new(0);
    group.bench_function("applied_events", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| run(applied.fetch_add(BATCH, Ordering::Relaxed), BATCH, true)).sum());
    });
    group.finish();
}

criterion_group!(benches, throughput);
criterion_main!(benches);
