//! Webhook handling throughput (target: at least 1,000 verified, deduplicated events/s into PostgreSQL): each
//! event is a signed `payment_intent.succeeded` body checked by the [`WebhookVerifier`] (HMAC-SHA256 over the
//! raw body, parsed by async-stripe) and handled by the payment service in one transaction that records it in
//! `webhook_events` (deduplicated by its id) and looks up its payment. Every event of a batch is distinct and
//! names no payment of ours (recorded as `unmatched`), so the figure is the cost of verification, lookup and
//! the deduplicating insert and commit, without contention on one payment's row; a second group sends a batch
//! again and again (every event a duplicate). 16 deliveries run at once, as Stripe's do.
//!
//! `TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test cargo bench -p rental-payments --bench webhook`
//! (without the variable: SQLite).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::Utc;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rental_payments::{API_VERSION, WebhookVerifier};
use rental_repo::{Database, DatabaseConfig};
use rental_service::{AuthConfig, ManualClock, Secret, ServiceConfig, Services};
use rental_testkit::TestDb;
use serde_json::json;
use stripe_webhook::Webhook;

const SECRET: &str = "whsec_bench";
const BATCH: u64 = 1_000;
const CONCURRENCY: u64 = 16;

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

fn throughput(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let (services, _db) = runtime.block_on(async {
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
        let services = Services::with_clock(db, &config, Arc::new(ManualClock::new(Utc::now())));
        (services.unwrap(), test_db)
    });
    let verifier = WebhookVerifier::new(Secret::new(SECRET));
    let next = AtomicU64::new(0);

    let run = |first: u64, count: u64| {
        let payments = services.payments.clone();
        let verifier = verifier.clone();
        runtime.block_on(async move {
            let started = Instant::now();
            let mut tasks = tokio::task::JoinSet::new();
            for lane in 0..CONCURRENCY {
                let payments = payments.clone();
                let verifier = verifier.clone();
                tasks.spawn(async move {
                    let mut n = first + lane;
                    while n < first + count {
                        let body = payload(n);
                        let header = Webhook::generate_test_header(&body, SECRET, Some(Utc::now().timestamp()));
                        let event = verifier.verify(&body, Some(&header)).unwrap().into_service_event();
                        payments.handle_webhook(event).await.unwrap();
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
        b.iter_custom(|iters| (0..iters).map(|_| run(next.fetch_add(BATCH, Ordering::Relaxed), BATCH)).sum());
    });
    group.bench_function("duplicate_events", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| run(0, BATCH)).sum());
    });
    group.finish();
}

criterion_group!(benches, throughput);
criterion_main!(benches);
