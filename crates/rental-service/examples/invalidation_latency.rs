//! Cross-instance invalidation latency: two `Caches` on one Redis (two instances, in one process), `--n`
//! invalidations published by A, each timed from the start of A's `invalidate` until B's next read of the key
//! misses (B polls every 100 µs). Prints min, p50, p99 and max.
//!
//! ```text
//! REDIS_URL=redis://127.0.0.1:6379 cargo run -p rental-service --features redis --example invalidation_latency -- 1000
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rental_service::cache::redis::RedisCacheBackend;
use rental_service::cache::{JsonBytes, NamespaceSpec};
use rental_service::{Caches, SharedTier};

fn caches(url: &str, prefix: &str) -> Caches {
    let backend =
        RedisCacheBackend::new(url, prefix, Duration::from_millis(500), Duration::from_millis(1_000)).unwrap();
    Caches::with_backend(Arc::new(backend), Duration::from_millis(100), Duration::from_millis(1_000))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let n: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(1_000);
    let prefix = format!("rental-latency-{}", std::process::id());
    let spec = NamespaceSpec::new("latency", Duration::from_secs(3_600), 100);
    let (a, b) = (caches(&url, &prefix), caches(&url, &prefix));
    let (on_a, on_b) = (a.namespace::<String, JsonBytes>(spec), b.namespace::<String, JsonBytes>(spec));
    while a.shared_tier() != SharedTier::Up || b.shared_tier() != SharedTier::Up {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let loads = AtomicU64::new(0);
    let read = |key: String| {
        let loads = &loads;
        let on_b = &on_b;
        async move {
            on_b.get_or_load(key, async {
                loads.fetch_add(1, Ordering::Relaxed);
                Ok::<_, ()>(JsonBytes(Arc::from(&b"x"[..])))
            })
            .await
            .unwrap();
        }
    };
    let mut samples = Vec::with_capacity(n);
    for i in 0..n {
        let key = format!("k{i}");
        read(key.clone()).await;
        let before = loads.load(Ordering::Relaxed);
        read(key.clone()).await;
        assert_eq!(loads.load(Ordering::Relaxed), before, "a hit before the invalidation");
        let started = Instant::now();
        on_a.invalidate(&key).await;
        loop {
            read(key.clone()).await;
            if loads.load(Ordering::Relaxed) > before {
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(5), "invalidation {i} never arrived");
            tokio::time::sleep(Duration::from_micros(100)).await;
        }
        samples.push(started.elapsed());
    }
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)];
    println!(
        "{n} invalidations: min {:?}, p50 {:?}, p99 {:?}, max {:?}",
        samples[0],
        at(0.50),
        at(0.99),
        samples[samples.len() - 1]
    );
}
