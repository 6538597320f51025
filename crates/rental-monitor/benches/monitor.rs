//! The cost of recording a request and of a `/metrics` scrape with 60 routes' histograms filled.
//!
//! `cargo bench -p rental-monitor`; figures in `docs/PERFORMANCE.md`, "Monitoring (issue 10)".
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use rental_monitor::{DEFAULT_LATENCY_BUCKETS_SECS, Exporter, REQUEST_DURATION, RequestMetrics};

const ROUTES: usize = 60;

fn routes() -> Vec<String> {
    (0..ROUTES).map(|i| format!("/api/v1/resource{i}/{{id}}")).collect()
}

/// 60 routes with 2xx, 4xx and 5xx answers and 1,000 latencies each, spread over the buckets.
fn filled() -> (Exporter, RequestMetrics, Vec<String>) {
    let exporter = Exporter::new(&DEFAULT_LATENCY_BUCKETS_SECS).unwrap();
    let metrics = RequestMetrics::new(&exporter, 256);
    let routes = routes();
    for route in &routes {
        for i in 0..1_000u64 {
            let status = match i % 50 {
                0 => 500,
                1..=3 => 404,
                _ => 200,
            };
            metrics.record(route, status, Duration::from_micros(200 + (i * 7_919) % 3_000_000));
        }
    }
    exporter.render(); // Folds the samples into the buckets, as the refresher's upkeep does.
    (exporter, metrics, routes)
}

fn record(c: &mut Criterion) {
    let (exporter, metrics, routes) = filled();
    let mut group = c.benchmark_group("record");
    let mut i = 0usize;
    group.bench_function("request_metrics_record", |b| {
        b.iter(|| {
            i = (i + 1) % ROUTES;
            metrics.record(black_box(&routes[i]), 200, black_box(Duration::from_micros(1_234)));
        });
    });
    group.bench_function("in_flight_guard", |b| b.iter(|| drop(black_box(metrics.in_flight()))));
    // The facade's share alone: the counter and histogram handles of one route, already registered.
    let counter = exporter.counter("rental_bench_total", "bench", &[("route", routes[0].clone())]);
    let histogram = exporter.histogram(REQUEST_DURATION, "bench", &[("route", "bench".to_owned())]);
    group.bench_function("facade_counter_and_histogram", |b| {
        b.iter(|| {
            counter.increment(1);
            histogram.record(black_box(0.001_234));
        });
    });
    group.finish();
    // Keeps the recorded samples from growing without bound across iterations.
    exporter.run_upkeep();
}

fn scrape(c: &mut Criterion) {
    let (exporter, metrics, routes) = filled();
    let mut group = c.benchmark_group("scrape_60_routes");
    let size = exporter.render().len();
    println!("exposition: {size} bytes, {} lines", exporter.render().lines().count());
    group.bench_function("render_idle", |b| b.iter(|| black_box(exporter.render())));
    group.bench_function("render_after_6000_new_requests", |b| {
        b.iter_batched(
            || {
                for route in &routes {
                    for i in 0..100u64 {
                        metrics.record(route, 200, Duration::from_micros(300 + i * 97));
                    }
                }
            },
            |()| black_box(exporter.render()),
            BatchSize::PerIteration,
        );
    });
    group.bench_function("json_snapshot", |b| b.iter(|| black_box(metrics.snapshot())));
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = record, scrape
}
criterion_main!(benches);
