//! Latency over a recent window: marks of the all-routes histogram and the difference between two of them.

use std::collections::VecDeque;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::{BUCKETS, LatencySummary, RequestMetrics, latency};

/// The all-routes latency histogram at one moment, for [`LatencyWindow`].
#[derive(Debug, Clone, PartialEq)]
pub struct LatencyMark {
    pub(super) at: Instant,
    pub(super) buckets: [u64; BUCKETS],
    pub(super) sum_micros: u64,
    pub(super) max_nanos: u64,
}

/// Latency over a recent window rather than since start: keeps marks of the all-routes histogram
/// taken at each [`LatencyWindow::observe`] and reports the difference between now and the newest
/// mark at least `window` old (or the oldest kept, early on). Alert rules use it, so that a slow
/// hour long ago neither keeps an alert firing nor hides a slow minute now.
#[derive(Debug)]
pub struct LatencyWindow {
    window: Duration,
    marks: Mutex<VecDeque<LatencyMark>>,
}

impl LatencyWindow {
    /// A window of `window`.
    pub fn new(window: Duration) -> Self {
        Self { window, marks: Mutex::new(VecDeque::new()) }
    }

    /// Records a mark of `metrics` now and returns the latency of the requests since the baseline
    /// mark (all zero on the first call, or when nothing was recorded since).
    pub fn observe(&self, metrics: &RequestMetrics) -> LatencySummary {
        self.observe_mark(metrics, metrics.mark())
    }

    fn observe_mark(&self, metrics: &RequestMetrics, now: LatencyMark) -> LatencySummary {
        let mut marks = self.marks.lock().unwrap_or_else(PoisonError::into_inner);
        // Keep one mark at least `window` old as the baseline; drop the older ones.
        while marks.len() >= 2 && marks[1].at + self.window <= now.at {
            marks.pop_front();
        }
        let summary = match marks.front() {
            Some(base) => {
                let buckets: [u64; BUCKETS] = std::array::from_fn(|i| now.buckets[i].saturating_sub(base.buckets[i]));
                latency(&metrics.inner.bounds, &buckets, now.sum_micros.saturating_sub(base.sum_micros), now.max_nanos)
            }
            None => LatencySummary::default(),
        };
        marks.push_back(now);
        summary
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::requests::tests::{assert_close, metrics, ms};

    #[test]
    fn the_latency_window_forgets_requests_older_than_the_window() {
        let metrics = metrics();
        let window = LatencyWindow::new(Duration::from_secs(300));
        let start = Instant::now();
        let at = |secs| start + Duration::from_secs(secs);
        assert_eq!(window.observe_mark(&metrics, metrics.mark_at(at(0))), LatencySummary::default());

        for _ in 0..100 {
            metrics.record("/slow", 200, ms(3_000));
        }
        let slow = window.observe_mark(&metrics, metrics.mark_at(at(60)));
        assert_eq!(slow.count, 100);
        assert_close(slow.p95_ms, 3_000.0);

        for _ in 0..100 {
            metrics.record("/fast", 200, ms(5));
        }
        // Ten minutes on, the baseline is the mark taken after the slow requests.
        let recent = window.observe_mark(&metrics, metrics.mark_at(at(600)));
        assert_eq!(recent.count, 100, "{recent:?}");
        assert_close(recent.p95_ms, 5.0);
        // Since start, the slow requests still dominate the tail.
        assert_close(metrics.snapshot().latency.p95_ms, 3_000.0);
    }
}
