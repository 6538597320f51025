//! Request counters and latency histograms per route pattern: [`RequestMetrics`] and its
//! [`RequestSnapshot`].
//!
//! Every request is recorded twice, on purpose: into the Prometheus registry of the [`Exporter`]
//! (a counter per route and status class, a bucketed histogram per route), which is what `/metrics`
//! serves, and into a lean histogram of our own per route (83 relaxed atomic buckets), which is what
//! the JSON views read their quantiles and error rates from. The exporter offers no way to read a
//! histogram back except rendering and parsing the whole text, which would cost a full render per
//! JSON view and give only the coarse Prometheus buckets; the own histogram costs a few relaxed
//! atomic adds per request (see `docs/PERFORMANCE.md`, "Monitoring (issue 10)").

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, PoisonError, RwLock};
use std::time::{Duration, Instant};

use metrics::{Counter, Gauge, Histogram};
use serde::Serialize;

use crate::exporter::{Exporter, REQUEST_DURATION};

mod window;

pub use window::{LatencyMark, LatencyWindow};

/// Route label under which requests are counted once [`RequestMetrics`] already tracks its maximum
/// number of distinct routes. Real route patterns start with `/`, so this cannot collide with one.
pub const OTHER_ROUTE: &str = "other";

/// Default maximum number of distinct routes tracked.
pub const DEFAULT_MAX_ROUTES: usize = 256;

const REQUESTS_TOTAL: &str = "rental_http_requests_total";
const IN_FLIGHT: &str = "rental_http_requests_in_flight";
const STATUS_CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// Upper bound of the first latency bucket, in nanoseconds (50 µs).
const FIRST_BOUND_NANOS: f64 = 50_000.0;
/// Buckets per doubling of latency: each bucket is `2^(1/4)` ≈ 1.19 times wider than the previous.
const BUCKETS_PER_DOUBLING: f64 = 4.0;
/// Number of finite bucket upper bounds: `50 µs * 2^(81/4)` ≈ 62.4 s, the first bound above 60 s.
const FINITE_BOUNDS: usize = 82;
/// Finite buckets plus one overflow bucket for anything slower than the last bound.
const BUCKETS: usize = FINITE_BOUNDS + 1;
/// Length of the ring of per-second counters behind the last-minute request rate.
const RING_SECONDS: u64 = 60;
const COUNT_MASK: u64 = 0xFFFF_FFFF;

/// Request statistics shared by every worker of the HTTP server.
///
/// Cloning is cheap (an [`Arc`]) and every clone feeds the same counters. Recording takes a read
/// lock on the table of routes already seen (no allocation) and then only relaxed atomics; the
/// first request of a new route takes the write lock and registers its Prometheus series.
///
/// The own latency histogram has 83 fixed buckets: `[0, 50 µs]`, then buckets whose upper bounds
/// grow by a factor of `2^(1/4)` up to about 62.4 s, then one overflow bucket. See
/// [`LatencySummary`] for the resulting error bound on quantiles.
#[derive(Clone)]
pub struct RequestMetrics {
    inner: Arc<Inner>,
}

struct Inner {
    started: Instant,
    exporter: Exporter,
    /// Upper bounds of the finite buckets, in nanoseconds, strictly increasing.
    bounds: [u64; FINITE_BOUNDS],
    in_flight: AtomicI64,
    in_flight_gauge: Gauge,
    /// Per-second request counts: the high 32 bits hold the second (since `started`) that the slot
    /// currently counts, the low 32 bits the count.
    ring: [AtomicU64; RING_SECONDS as usize],
    max_routes: usize,
    routes: RwLock<HashMap<Box<str>, Arc<Route>>>,
    other: Arc<Route>,
}

/// Everything recorded for one route pattern.
struct Route {
    name: Box<str>,
    requests: AtomicU64,
    client_errors: AtomicU64,
    server_errors: AtomicU64,
    buckets: [AtomicU64; BUCKETS],
    /// Sum of all latencies in whole microseconds (nanoseconds would wrap after ~584 years of
    /// cumulative latency, which a busy server can reach in months).
    sum_micros: AtomicU64,
    max_nanos: AtomicU64,
    /// The Prometheus counter per status class, registered when the class is first seen so that
    /// classes a route never answers do not fill the exposition with zeros.
    by_class: [OnceLock<Counter>; 5],
    duration: Histogram,
}

impl Route {
    fn new(exporter: &Exporter, name: &str) -> Self {
        Self {
            name: name.into(),
            requests: AtomicU64::new(0),
            client_errors: AtomicU64::new(0),
            server_errors: AtomicU64::new(0),
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            sum_micros: AtomicU64::new(0),
            max_nanos: AtomicU64::new(0),
            by_class: std::array::from_fn(|_| OnceLock::new()),
            duration: exporter.histogram(
                REQUEST_DURATION,
                "HTTP request latency by matched route pattern, in seconds.",
                &[("route", name.to_owned())],
            ),
        }
    }

    fn record(&self, exporter: &Exporter, bounds: &[u64; FINITE_BOUNDS], status: u16, nanos: u64) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        match status {
            400..=499 => {
                self.client_errors.fetch_add(1, Ordering::Relaxed);
            }
            500.. => {
                self.server_errors.fetch_add(1, Ordering::Relaxed);
            }
            _ => {}
        }
        let bucket = bounds.partition_point(|&bound| bound < nanos);
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add(nanos / 1_000, Ordering::Relaxed);
        self.max_nanos.fetch_max(nanos, Ordering::Relaxed);

        let class = usize::from((status / 100).clamp(1, 5)) - 1;
        self.by_class[class]
            .get_or_init(|| {
                exporter.counter(
                    REQUESTS_TOTAL,
                    "HTTP requests handled, by matched route pattern and status class.",
                    &[("route", self.name.to_string()), ("status", STATUS_CLASSES[class].to_owned())],
                )
            })
            .increment(1);
        self.duration.record(nanos as f64 / 1e9);
    }

    fn stats(&self, bounds: &[u64; FINITE_BOUNDS]) -> RouteStats {
        let buckets: [u64; BUCKETS] = std::array::from_fn(|i| self.buckets[i].load(Ordering::Relaxed));
        let requests = self.requests.load(Ordering::Relaxed);
        let server_errors = self.server_errors.load(Ordering::Relaxed);
        RouteStats {
            route: self.name.to_string(),
            requests,
            client_errors: self.client_errors.load(Ordering::Relaxed),
            server_errors,
            error_rate: ratio(server_errors, requests),
            latency: latency(
                bounds,
                &buckets,
                self.sum_micros.load(Ordering::Relaxed),
                self.max_nanos.load(Ordering::Relaxed),
            ),
            buckets,
            sum_micros: self.sum_micros.load(Ordering::Relaxed),
            max_nanos: self.max_nanos.load(Ordering::Relaxed),
        }
    }
}

/// A point-in-time copy of the counters of a [`RequestMetrics`].
///
/// The counters are read one after another without stopping writers, so under load the fields can
/// disagree by the few requests recorded while the snapshot was taken.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RequestSnapshot {
    /// Seconds since the [`RequestMetrics`] was created.
    pub uptime_secs: f64,
    /// Requests recorded since creation.
    pub total_requests: u64,
    /// Requests answered with a status of 500 or more.
    pub server_errors: u64,
    /// Requests answered with a status from 400 to 499.
    pub client_errors: u64,
    /// `server_errors / total_requests` (0 without requests).
    pub error_rate: f64,
    /// Requests being handled now.
    pub in_flight: u64,
    /// Mean request rate since creation, per second (uptime counted as at least one second).
    pub requests_per_sec: f64,
    /// Request rate over roughly the last 60 seconds (the current partial second plus the 59
    /// before it), per second.
    pub requests_per_sec_last_minute: f64,
    /// Latency statistics of all routes together, since creation.
    pub latency: LatencySummary,
    /// Statistics per route pattern, most requested first; requests for routes beyond the limit
    /// are summed under [`OTHER_ROUTE`].
    pub routes: Vec<RouteStats>,
}

/// Latency statistics in milliseconds, estimated from the own histogram of [`RequestMetrics`].
///
/// `count`, `sum_ms`, `mean_ms` and `max_ms` are exact (the sum is kept in whole microseconds, so
/// the mean may be low by less than 1 µs). Quantiles use the nearest-rank definition and report the
/// geometric middle of the bucket that holds the sample of that rank, capped at `max_ms`. For
/// latencies between 50 µs and about 62.4 s the estimate is therefore within a factor `2^(1/8)`
/// (about ±9.1 %) of the true quantile; at or below 50 µs it reports 0.05 ms (or the maximum, if
/// lower); above 62.4 s it reports the maximum. With no requests every field is zero.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct LatencySummary {
    /// Number of latencies recorded.
    pub count: u64,
    /// Sum of all latencies.
    pub sum_ms: f64,
    /// Mean latency.
    pub mean_ms: f64,
    /// Median latency (estimated).
    pub p50_ms: f64,
    /// 95th percentile latency (estimated).
    pub p95_ms: f64,
    /// 99th percentile latency (estimated).
    pub p99_ms: f64,
    /// Largest latency recorded.
    pub max_ms: f64,
}

/// Statistics of one route pattern.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RouteStats {
    /// Matched route pattern, such as `/api/v1/users/{id}`, or [`OTHER_ROUTE`].
    pub route: String,
    /// Requests recorded for the route.
    pub requests: u64,
    /// Of which answered with a status from 400 to 499.
    pub client_errors: u64,
    /// Of which answered with a status of 500 or more.
    pub server_errors: u64,
    /// `server_errors / requests`.
    pub error_rate: f64,
    /// The route's latency.
    pub latency: LatencySummary,
    #[serde(skip)]
    buckets: [u64; BUCKETS],
    #[serde(skip)]
    sum_micros: u64,
    #[serde(skip)]
    max_nanos: u64,
}

impl fmt::Debug for RequestMetrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let routes = self.inner.routes.read().unwrap_or_else(PoisonError::into_inner).len();
        f.debug_struct("RequestMetrics")
            .field("routes", &routes)
            .field("max_routes", &self.inner.max_routes)
            .finish_non_exhaustive()
    }
}

/// Counts a request as in flight until dropped: see [`RequestMetrics::in_flight`].
#[derive(Debug)]
#[must_use = "the request counts as in flight only while the guard lives"]
pub struct InFlight {
    metrics: RequestMetrics,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.metrics.inner.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.metrics.inner.in_flight_gauge.decrement(1.0);
    }
}

impl RequestMetrics {
    /// Creates empty metrics registered on `exporter`, tracking at most `max_routes` distinct
    /// routes; requests for further routes are counted under [`OTHER_ROUTE`].
    pub fn new(exporter: &Exporter, max_routes: usize) -> Self {
        Self::with_start(exporter, Instant::now(), max_routes)
    }

    fn with_start(exporter: &Exporter, started: Instant, max_routes: usize) -> Self {
        let bounds = std::array::from_fn(|i| {
            // Rounded to whole nanoseconds; the bounds stay strictly increasing because each
            // bucket is thousands of nanoseconds wide.
            (FIRST_BOUND_NANOS * (i as f64 / BUCKETS_PER_DOUBLING).exp2()).round() as u64
        });
        Self {
            inner: Arc::new(Inner {
                started,
                exporter: exporter.clone(),
                bounds,
                in_flight: AtomicI64::new(0),
                in_flight_gauge: exporter.gauge(IN_FLIGHT, "HTTP requests being handled now.", &[]),
                ring: std::array::from_fn(|_| AtomicU64::new(0)),
                max_routes,
                routes: RwLock::new(HashMap::new()),
                other: Arc::new(Route::new(exporter, OTHER_ROUTE)),
            }),
        }
    }

    /// Counts a request as in flight until the returned guard is dropped. Take it when the request
    /// arrives, before [`RequestMetrics::record`].
    pub fn in_flight(&self) -> InFlight {
        self.inner.in_flight.fetch_add(1, Ordering::Relaxed);
        self.inner.in_flight_gauge.increment(1.0);
        InFlight { metrics: self.clone() }
    }

    /// Records one finished request.
    ///
    /// `route` should be the matched route pattern (for example `/api/v1/users/{id}`), never the
    /// raw path, or the route table fills with one entry per id; use a fixed name such as
    /// `"<unmatched>"` for requests that matched no route. Statuses of 500 and above count as server
    /// errors, 400 to 499 as client errors.
    pub fn record(&self, route: &str, status: u16, duration: Duration) {
        self.record_at(Instant::now(), route, status, duration);
    }

    fn record_at(&self, now: Instant, route: &str, status: u16, duration: Duration) {
        let inner = &*self.inner;
        let nanos = u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX);
        inner.count_second(now.saturating_duration_since(inner.started).as_secs());
        inner.with_route(route, |entry| entry.record(&inner.exporter, &inner.bounds, status, nanos));
    }

    /// The all-routes latency histogram now, for [`LatencyWindow`].
    pub fn mark(&self) -> LatencyMark {
        self.mark_at(Instant::now())
    }

    fn mark_at(&self, at: Instant) -> LatencyMark {
        let inner = &*self.inner;
        let routes = inner.routes.read().unwrap_or_else(PoisonError::into_inner);
        let mut mark = LatencyMark { at, buckets: [0; BUCKETS], sum_micros: 0, max_nanos: 0 };
        for route in routes.values().map(|r| &**r).chain([&*inner.other]) {
            for (sum, n) in mark.buckets.iter_mut().zip(&route.buckets) {
                *sum += n.load(Ordering::Relaxed);
            }
            mark.sum_micros = mark.sum_micros.saturating_add(route.sum_micros.load(Ordering::Relaxed));
            mark.max_nanos = mark.max_nanos.max(route.max_nanos.load(Ordering::Relaxed));
        }
        mark
    }

    /// Takes a snapshot of all counters and computes rates and latency statistics.
    ///
    /// This walks 83 buckets per route, so call it from metrics and health endpoints, not per
    /// request.
    pub fn snapshot(&self) -> RequestSnapshot {
        self.snapshot_at(Instant::now())
    }

    fn snapshot_at(&self, now: Instant) -> RequestSnapshot {
        let inner = &*self.inner;
        let elapsed = now.saturating_duration_since(inner.started);
        let uptime_secs = elapsed.as_secs_f64();
        let mut routes: Vec<RouteStats> = inner
            .routes
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .map(|route| route.stats(&inner.bounds))
            .collect();
        let other = inner.other.stats(&inner.bounds);
        if other.requests > 0 {
            routes.push(other);
        }
        routes.sort_by(|a, b| b.requests.cmp(&a.requests).then_with(|| a.route.cmp(&b.route)));

        let mut all = [0u64; BUCKETS];
        let (mut sum_micros, mut max_nanos) = (0u64, 0u64);
        let (mut total, mut client, mut server) = (0u64, 0u64, 0u64);
        for route in &routes {
            for (sum, n) in all.iter_mut().zip(route.buckets) {
                *sum += n;
            }
            sum_micros = sum_micros.saturating_add(route.sum_micros);
            max_nanos = max_nanos.max(route.max_nanos);
            total += route.requests;
            client += route.client_errors;
            server += route.server_errors;
        }
        RequestSnapshot {
            uptime_secs,
            total_requests: total,
            server_errors: server,
            client_errors: client,
            error_rate: ratio(server, total),
            in_flight: u64::try_from(inner.in_flight.load(Ordering::Relaxed)).unwrap_or(0),
            requests_per_sec: total as f64 / uptime_secs.max(1.0),
            requests_per_sec_last_minute: inner.last_minute_rate(elapsed),
            latency: latency(&inner.bounds, &all, sum_micros, max_nanos),
            routes,
        }
    }
}

impl Inner {
    /// Runs `f` on the entry of `route`, created on first sight while the table has room, or on
    /// [`OTHER_ROUTE`]'s. A known route is recorded under the read lock, without touching the
    /// entry's reference count (a contended atomic when many workers record at once).
    fn with_route(&self, route: &str, f: impl FnOnce(&Route)) {
        {
            let routes = self.routes.read().unwrap_or_else(PoisonError::into_inner);
            if let Some(entry) = routes.get(route) {
                return f(entry);
            }
            if routes.len() >= self.max_routes {
                return f(&self.other);
            }
        }
        let entry = {
            let mut routes = self.routes.write().unwrap_or_else(PoisonError::into_inner);
            if let Some(entry) = routes.get(route) {
                entry.clone()
            } else if routes.len() >= self.max_routes {
                self.other.clone()
            } else {
                let entry = Arc::new(Route::new(&self.exporter, route));
                routes.insert(route.into(), entry.clone());
                entry
            }
        };
        f(&entry);
    }

    fn count_second(&self, second: u64) {
        let Ok(tag) = u32::try_from(second) else {
            return; // 136 years of uptime.
        };
        let tag = u64::from(tag);
        let slot = &self.ring[(second % RING_SECONDS) as usize];
        let mut current = slot.load(Ordering::Relaxed);
        loop {
            let slot_second = current >> 32;
            let next = if slot_second == tag {
                current.saturating_add(1)
            } else if slot_second < tag {
                (tag << 32) | 1
            } else {
                // A thread stalled for a minute recorded late: its second already left the window.
                return;
            };
            match slot.compare_exchange_weak(current, next, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return,
                Err(actual) => current = actual,
            }
        }
    }

    fn last_minute_rate(&self, elapsed: Duration) -> f64 {
        let now_second = elapsed.as_secs();
        let first_second = now_second.saturating_sub(RING_SECONDS - 1);
        let count: u64 = self
            .ring
            .iter()
            .map(|slot| slot.load(Ordering::Relaxed))
            .filter(|value| {
                let second = value >> 32;
                (first_second..=now_second).contains(&second)
            })
            .map(|value| value & COUNT_MASK)
            .sum();
        // The window runs from the start of `first_second` to now.
        let window = (elapsed.as_secs_f64() - first_second as f64).max(1.0);
        count as f64 / window
    }
}

fn ratio(part: u64, whole: u64) -> f64 {
    if whole == 0 { 0.0 } else { part as f64 / whole as f64 }
}

fn latency(bounds: &[u64; FINITE_BOUNDS], buckets: &[u64; BUCKETS], sum_micros: u64, max_nanos: u64) -> LatencySummary {
    let count: u64 = buckets.iter().sum();
    if count == 0 {
        return LatencySummary::default();
    }
    let sum_ms = sum_micros as f64 / 1_000.0;
    let quantile = |q: f64| nanos_to_ms(quantile_nanos(bounds, buckets, count, q, max_nanos));
    LatencySummary {
        count,
        sum_ms,
        mean_ms: sum_ms / count as f64,
        p50_ms: quantile(0.50),
        p95_ms: quantile(0.95),
        p99_ms: quantile(0.99),
        max_ms: nanos_to_ms(max_nanos as f64),
    }
}

/// Nearest-rank quantile `q` of `count > 0` samples, estimated as described on [`LatencySummary`].
fn quantile_nanos(bounds: &[u64; FINITE_BOUNDS], buckets: &[u64; BUCKETS], count: u64, q: f64, max: u64) -> f64 {
    let rank = ((q * count as f64).ceil() as u64).clamp(1, count);
    let mut seen = 0;
    let index = buckets
        .iter()
        .position(|&n| {
            seen += n;
            seen >= rank
        })
        .unwrap_or(BUCKETS - 1);
    let estimate = match index {
        0 => bounds[0] as f64,
        i if i < FINITE_BOUNDS => (bounds[i - 1] as f64 * bounds[i] as f64).sqrt(),
        _ => max as f64,
    };
    estimate.min(max as f64)
}

fn nanos_to_ms(nanos: f64) -> f64 {
    nanos / 1_000_000.0
}
#[cfg(test)]
mod tests {
    use super::*;

    const RATIO: f64 = 1.090_507_732_665_257_7; // 2^(1/8)

    pub(super) fn exporter() -> Exporter {
        Exporter::new(&crate::DEFAULT_LATENCY_BUCKETS_SECS).unwrap()
    }

    pub(super) fn metrics() -> RequestMetrics {
        RequestMetrics::new(&exporter(), DEFAULT_MAX_ROUTES)
    }

    pub(super) fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// Asserts that `estimate` is within the documented error bound of `truth` (both in ms).
    pub(super) fn assert_close(estimate: f64, truth: f64) {
        assert!(
            estimate >= truth / RATIO - 1e-9 && estimate <= truth * RATIO + 1e-9,
            "estimate {estimate} ms is not within 2^(1/8) of {truth} ms"
        );
    }

    #[test]
    fn buckets_span_50_micros_to_past_60_seconds() {
        let metrics = metrics();
        let bounds = &metrics.inner.bounds;
        assert_eq!(bounds[0], 50_000);
        assert!(bounds[FINITE_BOUNDS - 1] >= 60_000_000_000);
        assert!(bounds[FINITE_BOUNDS - 2] < 60_000_000_000);
        assert!(bounds.windows(2).all(|w| {
            let ratio = w[1] as f64 / w[0] as f64;
            (ratio - 2f64.powf(0.25)).abs() < 1e-4 // Rounded to whole nanoseconds.
        }));
    }

    #[test]
    fn empty_snapshot_is_all_zero() {
        let snapshot = metrics().snapshot();
        assert_eq!(snapshot.total_requests, 0);
        assert_eq!(snapshot.latency, LatencySummary::default());
        assert!(snapshot.routes.is_empty());
        assert_eq!(snapshot.requests_per_sec_last_minute, 0.0);
    }

    #[test]
    fn quantiles_of_one_to_hundred_ms_fall_in_the_right_buckets() {
        let metrics = metrics();
        for n in 1..=100 {
            metrics.record("/api/v1/items", 200, ms(n));
        }
        let latency = metrics.snapshot().latency;
        assert_eq!(latency.count, 100);
        assert!((latency.sum_ms - 5_050.0).abs() < 1e-9);
        assert!((latency.mean_ms - 50.5).abs() < 1e-9);
        assert!((latency.max_ms - 100.0).abs() < 1e-9);
        assert_close(latency.p50_ms, 50.0);
        assert_close(latency.p95_ms, 95.0);
        assert_close(latency.p99_ms, 99.0);
        assert!(latency.p99_ms <= latency.max_ms);

        // The median is exactly the geometric middle of the bucket holding 50 ms.
        let bounds = &metrics.inner.bounds;
        let i = bounds.partition_point(|&b| b < 50_000_000);
        assert!(bounds[i - 1] < 50_000_000 && 50_000_000 <= bounds[i]);
        let middle = (bounds[i - 1] as f64 * bounds[i] as f64).sqrt() / 1e6;
        assert!((latency.p50_ms - middle).abs() < 1e-9);
    }

    #[test]
    fn skewed_distribution_separates_median_and_tail() {
        let metrics = metrics();
        for _ in 0..90 {
            metrics.record("/a", 200, ms(10));
        }
        for _ in 0..10 {
            metrics.record("/a", 200, ms(1_000));
        }
        let latency = metrics.snapshot().latency;
        assert_close(latency.p50_ms, 10.0);
        assert_close(latency.p95_ms, 1_000.0);
        assert_close(latency.p99_ms, 1_000.0);
        assert!((latency.mean_ms - 109.0).abs() < 1e-9);
    }

    #[test]
    fn tiny_and_huge_latencies_are_capped_by_the_maximum() {
        let metrics = metrics();
        metrics.record("/a", 200, Duration::from_micros(10));
        let latency = metrics.snapshot().latency;
        assert!((latency.p50_ms - 0.01).abs() < 1e-12, "{latency:?}");

        let metrics = super::tests::metrics();
        metrics.record("/a", 200, Duration::from_secs(100));
        metrics.record("/a", 200, Duration::MAX);
        let latency = metrics.snapshot().latency;
        assert_eq!(latency.count, 2);
        assert_eq!(latency.p50_ms, nanos_to_ms(u64::MAX as f64));
        assert_eq!(latency.max_ms, latency.p50_ms);
    }

    #[test]
    fn statuses_are_classified() {
        let metrics = metrics();
        for status in [200, 201, 304, 399, 400, 404, 499, 500, 503, 599] {
            metrics.record("/a", status, ms(1));
        }
        let snapshot = metrics.snapshot();
        assert_eq!(snapshot.total_requests, 10);
        assert_eq!(snapshot.client_errors, 3);
        assert_eq!(snapshot.server_errors, 3);
        assert_eq!(snapshot.routes.len(), 1);
        let route = &snapshot.routes[0];
        assert_eq!((route.route.as_str(), route.requests, route.client_errors, route.server_errors), ("/a", 10, 3, 3));
        assert!((route.error_rate - 0.3).abs() < 1e-12);
        assert!((snapshot.error_rate - 0.3).abs() < 1e-12);
    }

    #[test]
    fn routes_beyond_the_limit_go_to_other() {
        let metrics = RequestMetrics::new(&exporter(), 2);
        metrics.record("/a", 200, ms(1));
        metrics.record("/a", 200, ms(1));
        metrics.record("/b", 500, ms(1));
        metrics.record("/c", 404, ms(1));
        metrics.record("/d", 200, ms(1));
        metrics.record("/a", 200, ms(1)); // Known routes still count after the table is full.
        let routes = metrics.snapshot().routes;
        let names: Vec<_> = routes.iter().map(|r| r.route.as_str()).collect();
        assert_eq!(names, ["/a", "other", "/b"]);
        assert_eq!(routes[0].requests, 3);
        assert_eq!(routes[1].requests, 2);
        assert_eq!(routes[1].client_errors, 1);
        assert_eq!(routes[2].server_errors, 1);
    }

    #[test]
    fn rates_over_lifetime_and_last_minute() {
        let start = Instant::now();
        let metrics = RequestMetrics::with_start(&exporter(), start, DEFAULT_MAX_ROUTES);
        // Two requests per second for 120 seconds.
        for second in 0..120 {
            for _ in 0..2 {
                metrics.record_at(start + Duration::from_secs(second), "/a", 200, ms(1));
            }
        }
        let snapshot = metrics.snapshot_at(start + Duration::from_millis(119_500));
        assert_eq!(snapshot.total_requests, 240);
        assert!((snapshot.requests_per_sec - 240.0 / 119.5).abs() < 1e-9);
        // Seconds 60..=119 are in the window, which spans 59.5 s.
        assert!((snapshot.requests_per_sec_last_minute - 120.0 / 59.5).abs() < 1e-9);

        // Ten quiet minutes later the last-minute rate drops to zero.
        let later = metrics.snapshot_at(start + Duration::from_secs(720));
        assert_eq!(later.requests_per_sec_last_minute, 0.0);
        assert!((later.requests_per_sec - 240.0 / 720.0).abs() < 1e-9);
    }

    #[test]
    fn a_late_writer_does_not_reset_a_newer_second() {
        let start = Instant::now();
        let metrics = RequestMetrics::with_start(&exporter(), start, DEFAULT_MAX_ROUTES);
        metrics.record_at(start + Duration::from_secs(65), "/a", 200, ms(1));
        metrics.record_at(start + Duration::from_secs(5), "/a", 200, ms(1)); // Same slot, stale.
        let snapshot = metrics.snapshot_at(start + Duration::from_secs(65));
        assert_eq!(snapshot.total_requests, 2);
        assert!((snapshot.requests_per_sec_last_minute - 1.0 / 59.0).abs() < 1e-9);
    }

    #[test]
    fn first_second_rate_is_not_inflated() {
        let start = Instant::now();
        let metrics = RequestMetrics::with_start(&exporter(), start, DEFAULT_MAX_ROUTES);
        metrics.record_at(start, "/a", 200, ms(1));
        let snapshot = metrics.snapshot_at(start + Duration::from_millis(10));
        assert_eq!(snapshot.requests_per_sec, 1.0);
        assert_eq!(snapshot.requests_per_sec_last_minute, 1.0);
    }

    #[test]
    fn clones_share_counters_across_threads() {
        let metrics = metrics();
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let metrics = metrics.clone();
                std::thread::spawn(move || {
                    for i in 0..1_000 {
                        let route = if i % 2 == 0 { "/even" } else { "/odd" };
                        metrics.record(route, if t == 0 { 500 } else { 200 }, ms(2));
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        let snapshot = metrics.snapshot();
        assert_eq!(snapshot.total_requests, 4_000);
        assert_eq!(snapshot.latency.count, 4_000);
        assert_eq!(snapshot.server_errors, 1_000);
        assert_eq!(snapshot.routes.iter().map(|r| r.requests).sum::<u64>(), 4_000);
        assert_close(snapshot.latency.p99_ms, 2.0);
    }

    #[test]
    fn metrics_are_send_and_sync() {
        fn check<T: Send + Sync + Clone + 'static>() {}
        check::<RequestMetrics>();
    }

    #[test]
    fn each_route_pattern_has_its_own_histogram() {
        let metrics = metrics();
        for _ in 0..99 {
            metrics.record("/api/v1/users/{id}", 200, ms(2));
        }
        metrics.record("/api/v1/users/{id}", 500, ms(2));
        for _ in 0..10 {
            metrics.record("/api/v1/reports", 200, ms(800));
        }
        let snapshot = metrics.snapshot();
        let users = snapshot.routes.iter().find(|r| r.route == "/api/v1/users/{id}").unwrap();
        let reports = snapshot.routes.iter().find(|r| r.route == "/api/v1/reports").unwrap();
        assert_eq!(users.latency.count, 100);
        assert_close(users.latency.p95_ms, 2.0);
        assert!((users.error_rate - 0.01).abs() < 1e-12);
        assert_eq!(reports.latency.count, 10);
        assert_close(reports.latency.p50_ms, 800.0);
        assert_eq!(reports.error_rate, 0.0);
        // All routes together: 100 fast and 10 slow requests.
        assert_eq!(snapshot.latency.count, 110);
        assert_close(snapshot.latency.p50_ms, 2.0);
        assert_close(snapshot.latency.p95_ms, 800.0);
    }

    #[test]
    fn exposition_has_a_histogram_and_status_counters_per_route() {
        let exporter = exporter();
        let metrics = RequestMetrics::new(&exporter, DEFAULT_MAX_ROUTES);
        metrics.record("/api/v1/users/{id}", 200, ms(3));
        metrics.record("/api/v1/users/{id}", 404, ms(30));
        metrics.record("/api/v1/users/{id}", 503, ms(300));
        let text = exporter.render();
        let lines: Vec<&str> = text.lines().collect();
        for expected in [
            "# TYPE rental_http_requests_total counter",
            r#"rental_http_requests_total{route="/api/v1/users/{id}",status="2xx"} 1"#,
            r#"rental_http_requests_total{route="/api/v1/users/{id}",status="4xx"} 1"#,
            r#"rental_http_requests_total{route="/api/v1/users/{id}",status="5xx"} 1"#,
            "# TYPE rental_http_request_duration_seconds histogram",
            r#"rental_http_request_duration_seconds_bucket{route="/api/v1/users/{id}",le="0.005"} 1"#,
            r#"rental_http_request_duration_seconds_bucket{route="/api/v1/users/{id}",le="0.05"} 2"#,
            r#"rental_http_request_duration_seconds_bucket{route="/api/v1/users/{id}",le="+Inf"} 3"#,
            r#"rental_http_request_duration_seconds_count{route="/api/v1/users/{id}"} 3"#,
            "# TYPE rental_http_requests_in_flight gauge",
        ] {
            assert!(lines.contains(&expected), "missing {expected:?} in\n{text}");
        }
        // Classes a route never answered are not rendered as zeros.
        assert!(!text.contains("status=\"3xx\""), "{text}");
    }

    #[test]
    fn in_flight_counts_live_guards() {
        let metrics = metrics();
        let first = metrics.in_flight();
        let second = metrics.in_flight();
        assert_eq!(metrics.snapshot().in_flight, 2);
        drop(first);
        assert_eq!(metrics.snapshot().in_flight, 1);
        drop(second);
        assert_eq!(metrics.snapshot().in_flight, 0);
    }
}
