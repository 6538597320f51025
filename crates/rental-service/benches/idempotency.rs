//! What the `Idempotency-Key` layer adds to a mutating request (target: under 1 ms): the same rental order
//! (a quote of one line: an order, its line and a draft invoice in one unit of work) created without a key,
//! and with a fresh key each time, which adds what the HTTP layer does for a keyed request: the claim's digest
//! of the body and, in the unit of work, the claim's INSERT and the answer's UPDATE (the HTTP layer looks the
//! key up only when the operation fails). `create_quote_with_new_key_lookup_first` is the earlier flow, which
//! looked the key up before every keyed request: one more round trip, kept to measure what dropping it saved.
//!
//! SQLite by default (a fresh file in the temp directory), PostgreSQL when TEST_DATABASE_URL is set:
//!
//! `cargo bench -p rental-service --bench idempotency`
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::Utc;
use criterion::{Criterion, criterion_group, criterion_main};
use rental_repo::{Database, DatabaseConfig};
use rental_service::{
    AuthConfig, IdempotencyClaim, IdempotencyKey, NewCategory, NewProduct, NewRental, NewRentalLine, Secret,
    ServiceConfig, Services, SystemClock,
};
use rental_testkit::TestDb;

fn overhead(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let (_test_db, services, admin, product_id) = runtime.block_on(async {
        let test_db = TestDb::new().await;
        let config = DatabaseConfig { max_connections: Some(5), ..DatabaseConfig::with_url(test_db.url()) };
        let db = Database::connect(&config).await.unwrap();
        let service_config = ServiceConfig {
            auth: AuthConfig {
                jwt_secret: Secret::new("bench-secret-bench-secret-bench-secret"),
                argon2_memory_kib: 1024,
                argon2_iterations: 1,
                ..AuthConfig::default()
            },
            ..ServiceConfig::default()
        };
        let services = Services::with_clock(db, &service_config, Arc::new(SystemClock)).unwrap();
        services.users.create_admin("root@example.com", "root-password").await.unwrap();
        let tokens = services.auth.login("root@example.com", "root-password").await.unwrap();
        let admin = services.auth.authenticate(&tokens.access_token).await.unwrap();
        let category =
            services.catalogue.create_category(&admin, NewCategory { name: "Tents".into(), description: None }).await;
        let product = NewProduct {
            category_id: category.unwrap().id,
            sku: "TNT-1".into(),
            name: "Tent".into(),
            currency: "EUR".into(),
            price_per_day_minor: 1_000,
            ..NewProduct::default()
        };
        let product = services.catalogue.create_product(&admin, product).await.unwrap();
        (test_db, services, admin, product.id)
    });
    let start = Utc::now() + chrono::Duration::days(2);
    let quote = || NewRental {
        customer_id: None,
        status: Some("quote".into()),
        lines: vec![NewRentalLine { product_id, quantity: 1, start, end: start + chrono::Duration::days(3) }],
        notes: None,
    };
    // What a client sends for such an order, for the digest.
    let body = serde_json::to_vec(&serde_json::json!({
        "status": "quote",
        "lines": [{"product_id": product_id, "quantity": 1, "start": start, "end": start + chrono::Duration::days(3)}],
    }))
    .unwrap();
    let keys = AtomicU64::new(0);

    let mut group = c.benchmark_group("idempotency_overhead");
    group.sample_size(30).measurement_time(Duration::from_secs(10));
    group.bench_function("create_quote_without_key", |b| {
        b.iter_custom(|iterations| {
            runtime.block_on(async {
                let begun = Instant::now();
                for _ in 0..iterations {
                    std::hint::black_box(services.rentals.create(&admin, quote()).await.unwrap());
                }
                begun.elapsed()
            })
        });
    });
    for (name, lookup_first) in [("create_quote_with_new_key", false), ("create_quote_with_new_key_lookup_first", true)]
    {
        group.bench_function(name, |b| {
            b.iter_custom(|iterations| {
                runtime.block_on(async {
                    let begun = Instant::now();
                    for _ in 0..iterations {
                        let n = keys.fetch_add(1, Ordering::Relaxed);
                        let key = IdempotencyKey::parse(&format!("bench-{n}")).unwrap();
                        let claim = IdempotencyClaim::new(
                            Some(&admin),
                            key,
                            "POST",
                            "/api/v1/rentals",
                            "/api/v1/rentals",
                            &body,
                            201,
                        );
                        if lookup_first {
                            assert!(services.idempotency.lookup(&claim).await.unwrap().is_none());
                        }
                        let order = services.rentals.idempotent(Some(claim)).create(&admin, quote()).await.unwrap();
                        std::hint::black_box(order);
                    }
                    begun.elapsed()
                })
            });
        });
    }
    // Criterion calls a bench's closure more than once (warm-up, then samples): the replayed key is made once.
    let key = IdempotencyKey::parse("bench-replay").unwrap();
    let claim = IdempotencyClaim::new(Some(&admin), key, "POST", "/api/v1/rentals", "/api/v1/rentals", &body, 201);
    runtime.block_on(services.rentals.idempotent(Some(claim.clone())).create(&admin, quote())).unwrap();
    group.bench_function("replay", |b| {
        b.iter_custom(|iterations| {
            runtime.block_on(async {
                let begun = Instant::now();
                for _ in 0..iterations {
                    std::hint::black_box(services.idempotency.lookup(&claim).await.unwrap().unwrap());
                }
                begun.elapsed()
            })
        });
    });
    group.finish();
}

criterion_group!(benches, overhead);
criterion_main!(benches);
