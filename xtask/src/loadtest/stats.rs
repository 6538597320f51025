//! Merging the clients' latencies into one line of results, and printing the results as Markdown.

use std::fmt::Write as _;
use std::time::Duration;

use super::http::ClientStats;

/// The result of one scenario at one number of clients.
#[derive(Debug, Clone)]
pub struct Summary {
    /// Scenario name, as in `--scenarios`.
    pub label: String,
    /// Virtual clients, one connection each.
    pub clients: usize,
    /// Completed requests.
    pub requests: u64,
    /// Completed requests per second of the run.
    pub per_second: f64,
    /// Median latency, in milliseconds.
    pub p50_ms: f64,
    /// 99th-percentile latency, in milliseconds.
    pub p99_ms: f64,
    /// Slowest request, in milliseconds.
    pub max_ms: f64,
    /// Completed requests whose status was not 2xx.
    pub non_2xx: u64,
    /// Failed connections and requests without a response.
    pub errors: u64,
}

impl Summary {
    /// Merges what `clients` saw during a run of `duration`.
    pub fn merge(label: impl Into<String>, duration: Duration, clients: Vec<ClientStats>) -> Self {
        let count = clients.len();
        let mut latencies: Vec<u64> = Vec::with_capacity(clients.iter().map(|c| c.latencies_us.len()).sum());
        let (mut non_2xx, mut errors) = (0, 0);
        for client in clients {
            latencies.extend(client.latencies_us);
            non_2xx += client.non_2xx;
            errors += client.errors;
        }
        latencies.sort_unstable();
        let requests = latencies.len() as u64;
        Self {
            label: label.into(),
            clients: count,
            requests,
            per_second: requests as f64 / duration.as_secs_f64().max(f64::EPSILON),
            p50_ms: percentile_ms(&latencies, 0.50),
            p99_ms: percentile_ms(&latencies, 0.99),
            max_ms: percentile_ms(&latencies, 1.0),
            non_2xx,
            errors,
        }
    }

    /// One line for the terminal while the runs go on.
    pub fn line(&self) -> String {
        format!(
            "{:<22} {:>4} clients: {:>9.0} req/s  p50 {:>8.2} ms  p99 {:>8.2} ms  max {:>8.2} ms  non-2xx {}  errors {}",
            self.label, self.clients, self.per_second, self.p50_ms, self.p99_ms, self.max_ms, self.non_2xx, self.errors
        )
    }
}

/// The nearest-rank percentile `q` (0 to 1) of sorted microsecond latencies, in milliseconds; 0 when empty.
fn percentile_ms(sorted_us: &[u64], q: f64) -> f64 {
    if sorted_us.is_empty() {
        return 0.0;
    }
    let rank = (q * sorted_us.len() as f64).ceil() as usize;
    let index = rank.clamp(1, sorted_us.len()) - 1;
    sorted_us[index] as f64 / 1000.0
}

/// The results as a Markdown table, ready for `docs/PERFORMANCE.md`.
pub fn markdown_table(rows: &[Summary]) -> String {
    let mut table = String::from(
        "| scenario | clients | requests | req/s | p50 (ms) | p99 (ms) | max (ms) | non-2xx | errors |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for r in rows {
        // Writing to a String cannot fail.
        let _ = writeln!(
            table,
            "| {} | {} | {} | {:.0} | {:.2} | {:.2} | {:.2} | {} | {} |",
            r.label, r.clients, r.requests, r.per_second, r.p50_ms, r.p99_ms, r.max_ms, r.non_2xx, r.errors
        );
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let sorted: Vec<u64> = (1..=100).map(|ms| ms * 1000).collect();
        assert_eq!(percentile_ms(&sorted, 0.50), 50.0);
        assert_eq!(percentile_ms(&sorted, 0.99), 99.0);
        assert_eq!(percentile_ms(&sorted, 1.0), 100.0);
        assert_eq!(percentile_ms(&[], 0.99), 0.0);
    }

    #[test]
    fn clients_are_merged() {
        let a = ClientStats { latencies_us: vec![3000, 1000], non_2xx: 1, errors: 0 };
        let b = ClientStats { latencies_us: vec![2000], non_2xx: 0, errors: 2 };
        let summary = Summary::merge("health", Duration::from_secs(1), vec![a, b]);
        assert_eq!((summary.clients, summary.requests, summary.non_2xx, summary.errors), (2, 3, 1, 2));
        assert_eq!((summary.p50_ms, summary.max_ms), (2.0, 3.0));
        assert!(markdown_table(&[summary]).contains("| health | 2 | 3 | 3 |"));
    }
}
