//! Cost of an in-process cache hit through the cache abstraction (target: under 1 µs): a user for
//! authentication (`users`, typed key, `Arc` value) and a JSON body (`dashboard`, one key), both hits in moka;
//! and the JSON body in a namespace with refresh-ahead (each hit also reads the clock against the entry's
//! refresh point).
//! The hits run in batches inside one `block_on`, so the runtime's own cost is spread over the batch.
//!
//! `cargo bench -p rental-service --bench cache`
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use criterion::{Criterion, criterion_group, criterion_main};
use rental_domain::{Role, UserId};
use rental_service::AuthUser;
use rental_service::cache::{Caches, JsonBytes, Namespace, NamespaceSpec, Singleton};

/// Hits per `block_on`.
const BATCH: u64 = 1_000;

fn spec(name: &'static str) -> NamespaceSpec {
    NamespaceSpec::new(name, Duration::from_secs(3600), 100_000)
}

fn hits(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let caches = Caches::local_only();
    let users: Namespace<UserId, Arc<Option<AuthUser>>> = caches.namespace(spec("users"));
    let dashboard: Namespace<Singleton, JsonBytes> = caches.namespace(spec("dashboard"));
    let refreshed: Namespace<Singleton, JsonBytes> =
        caches.namespace(spec("refreshed").refreshed_after(Duration::from_secs(2700)));
    let ids: Vec<UserId> = (0..1_000).map(|_| UserId::new()).collect();
    runtime.block_on(async {
        for id in &ids {
            let user = AuthUser {
                id: *id,
                email: format!("{id}@example.com"),
                full_name: "Jane Doe".into(),
                is_active: true,
                is_superuser: false,
                has_password: true,
                roles: vec![Role::Customer],
                created_at: Utc::now(),
                updated_at: Utc::now(),
            };
            users.get_or_load(*id, async { Ok::<_, ()>(Arc::new(Some(user))) }).await.unwrap();
        }
        dashboard.get_or_load(Singleton, async { Ok::<_, ()>(JsonBytes(Arc::from(&b"{}"[..]))) }).await.unwrap();
        refreshed.get_or_load(Singleton, async { Ok::<_, ()>(JsonBytes(Arc::from(&b"{}"[..]))) }).await.unwrap();
    });

    let mut group = c.benchmark_group("cache_hit_in_process");
    group.bench_function("users_by_id", |b| {
        b.iter_custom(|iterations| {
            let batches = iterations.div_ceil(BATCH);
            let start = Instant::now();
            runtime.block_on(async {
                for batch in 0..batches {
                    for i in 0..BATCH {
                        let id = ids[((batch * BATCH + i) % 1_000) as usize];
                        let user = users.get_or_load(id, async { Err::<Arc<Option<AuthUser>>, ()>(()) }).await;
                        std::hint::black_box(user.unwrap());
                    }
                }
            });
            start.elapsed().mul_f64(iterations as f64 / (batches * BATCH) as f64)
        })
    });
    for (name, namespace) in [("dashboard_json", &dashboard), ("dashboard_json_refresh_ahead", &refreshed)] {
        group.bench_function(name, |b| {
            b.iter_custom(|iterations| {
                let batches = iterations.div_ceil(BATCH);
                let start = Instant::now();
                runtime.block_on(async {
                    for _ in 0..batches * BATCH {
                        let json = namespace.get_or_load(Singleton, async { Err::<JsonBytes, ()>(()) }).await;
                        std::hint::black_box(json.unwrap());
                    }
                });
                start.elapsed().mul_f64(iterations as f64 / (batches * BATCH) as f64)
            })
        });
    }
    group.finish();
}

criterion_group!(benches, hits);
criterion_main!(benches);
