//! The Prometheus registry behind every metric of this crate: [`Exporter`].

use std::fmt;
use std::sync::Arc;

use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder};

/// Content type of [`Exporter::render`]'s output (the Prometheus text format, version 0.0.4).
pub const PROMETHEUS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Name of the per-route request latency histogram.
pub const REQUEST_DURATION: &str = "rental_http_request_duration_seconds";

/// Default buckets of [`REQUEST_DURATION`], in seconds: 1 ms to 10 s.
pub const DEFAULT_LATENCY_BUCKETS_SECS: [f64; 14] =
    [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 2.5, 5.0, 10.0];

/// A `metrics` recorder writing into a Prometheus registry (`metrics-exporter-prometheus`), and the handle
/// that renders it.
///
/// Every metric of this crate is registered on this recorder explicitly, whatever recorder is global, so an
/// exporter made in a test sees exactly the metrics of that test. [`Exporter::install_global`] makes the same
/// registry the process-wide `metrics` recorder, so that the embedding service's own `metrics::counter!`
/// and friends appear in [`Exporter::render`] beside ours. Cloning is cheap (two `Arc`s).
///
/// Histograms named [`REQUEST_DURATION`] use the configured buckets; other histograms of the embedder are
/// rendered as the exporter's default summaries.
#[derive(Clone)]
pub struct Exporter {
    recorder: Arc<PrometheusRecorder>,
    handle: PrometheusHandle,
}

impl fmt::Debug for Exporter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Exporter").finish_non_exhaustive()
    }
}

/// [`Exporter::new`] was given unusable histogram buckets.
#[derive(Debug)]
pub struct ExporterError(metrics_exporter_prometheus::BuildError);

impl fmt::Display for ExporterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot build the Prometheus recorder: {}", self.0)
    }
}

impl std::error::Error for ExporterError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

/// Another exporter is already the global `metrics` recorder.
#[derive(Debug)]
pub struct AlreadyInstalled;

impl fmt::Display for AlreadyInstalled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a global metrics recorder is already installed")
    }
}

impl std::error::Error for AlreadyInstalled {}

impl Exporter {
    /// A fresh registry whose request latency histogram has the upper bounds `latency_buckets_secs`.
    ///
    /// # Errors
    /// [`ExporterError`] when the buckets are empty.
    pub fn new(latency_buckets_secs: &[f64]) -> Result<Self, ExporterError> {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Full(REQUEST_DURATION.to_owned()), latency_buckets_secs)
            .map_err(ExporterError)?
            .build_recorder();
        let handle = recorder.handle();
        Ok(Self { recorder: Arc::new(recorder), handle })
    }

    /// Makes this registry the process-wide `metrics` recorder. Call it once, at start-up.
    ///
    /// # Errors
    /// [`AlreadyInstalled`] when a global recorder is already set.
    pub fn install_global(&self) -> Result<(), AlreadyInstalled> {
        metrics::set_global_recorder(Forward(self.recorder.clone())).map_err(|_| AlreadyInstalled)
    }

    /// Renders every metric in the Prometheus text format (see [`PROMETHEUS_CONTENT_TYPE`]).
    pub fn render(&self) -> String {
        self.handle.render()
    }

    /// Folds recorded histogram samples into their buckets, so they do not pile up between scrapes. The
    /// system refresher calls it on every tick.
    pub fn run_upkeep(&self) {
        self.handle.run_upkeep();
    }

    /// Runs `register` with this registry as the current `metrics` recorder: handles made by the `metrics`
    /// macros inside stay bound to it.
    pub fn with<T>(&self, register: impl FnOnce() -> T) -> T {
        metrics::with_local_recorder(&*self.recorder, register)
    }

    /// A counter of this registry, described once.
    pub fn counter(&self, name: &'static str, help: &'static str, labels: &[(&'static str, String)]) -> Counter {
        self.with(|| {
            metrics::describe_counter!(name, help);
            metrics::counter!(name, labels)
        })
    }

    /// A gauge of this registry, described once.
    pub fn gauge(&self, name: &'static str, help: &'static str, labels: &[(&'static str, String)]) -> Gauge {
        self.with(|| {
            metrics::describe_gauge!(name, help);
            metrics::gauge!(name, labels)
        })
    }

    /// A histogram of this registry, described once.
    pub fn histogram(&self, name: &'static str, help: &'static str, labels: &[(&'static str, String)]) -> Histogram {
        self.with(|| {
            metrics::describe_histogram!(name, help);
            metrics::histogram!(name, labels)
        })
    }
}

/// The registry as the global recorder while the [`Exporter`] keeps its own reference.
struct Forward(Arc<PrometheusRecorder>);

impl Recorder for Forward {
    fn describe_counter(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.0.describe_counter(key, unit, description);
    }

    fn describe_gauge(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.0.describe_gauge(key, unit, description);
    }

    fn describe_histogram(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.0.describe_histogram(key, unit, description);
    }

    fn register_counter(&self, key: &Key, metadata: &Metadata<'_>) -> Counter {
        self.0.register_counter(key, metadata)
    }

    fn register_gauge(&self, key: &Key, metadata: &Metadata<'_>) -> Gauge {
        self.0.register_gauge(key, metadata)
    }

    fn register_histogram(&self, key: &Key, metadata: &Metadata<'_>) -> Histogram {
        self.0.register_histogram(key, metadata)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_registered_through_the_exporter_are_rendered_with_help() {
        let exporter = Exporter::new(&DEFAULT_LATENCY_BUCKETS_SECS).unwrap();
        exporter.counter("rental_test_things_total", "Things.", &[("kind", "a".into())]).increment(3);
        exporter.gauge("rental_test_level", "Level.", &[]).set(1.5);
        let text = exporter.render();
        assert!(text.contains("# HELP rental_test_things_total Things."), "{text}");
        assert!(text.contains("# TYPE rental_test_things_total counter"), "{text}");
        assert!(text.contains("rental_test_things_total{kind=\"a\"} 3"), "{text}");
        assert!(text.contains("rental_test_level 1.5"), "{text}");
    }

    #[test]
    fn exporters_do_not_share_metrics() {
        let one = Exporter::new(&DEFAULT_LATENCY_BUCKETS_SECS).unwrap();
        let two = Exporter::new(&DEFAULT_LATENCY_BUCKETS_SECS).unwrap();
        one.counter("rental_test_only_here_total", "x", &[]).increment(1);
        assert!(one.render().contains("rental_test_only_here_total 1"));
        assert!(!two.render().contains("rental_test_only_here_total"));
    }

    #[test]
    fn an_embedders_own_metrics_land_in_the_same_registry() {
        let exporter = Exporter::new(&DEFAULT_LATENCY_BUCKETS_SECS).unwrap();
        // What an embedding service does with the plain macros once the exporter is its recorder (here
        // locally, so that tests need no global state).
        exporter.with(|| metrics::counter!("embedder_orders_total").increment(2));
        assert!(exporter.render().contains("embedder_orders_total 2"));
    }

    #[test]
    fn empty_buckets_are_refused() {
        assert!(Exporter::new(&[]).is_err());
    }
}
