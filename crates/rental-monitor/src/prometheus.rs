//! Prometheus text exposition format (version 0.0.4): [`render_prometheus`].

use std::fmt::Write;

use crate::alerts::PoolGauge;
use crate::requests::RequestSnapshot;
use crate::system::SystemSnapshot;

/// Content type to send with the output of [`render_prometheus`].
pub const PROMETHEUS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Renders the snapshots in the Prometheus text format, every metric preceded by its `# HELP`
/// and `# TYPE` lines. Durations are in seconds, as Prometheus expects.
///
/// Metrics:
/// - counters `rental_http_requests_total`, `rental_http_client_errors_total`,
///   `rental_http_server_errors_total`, each labelled `route` (with `route="other"` for routes
///   past the limit);
/// - summary `rental_http_request_duration_seconds` with `quantile="0.5"|"0.95"|"0.99"` plus
///   `_sum` and `_count` (over the process lifetime; quantiles estimated, see
///   [`LatencySummary`](crate::LatencySummary)), and gauge
///   `rental_http_request_duration_max_seconds`;
/// - gauges `rental_system_cpu_usage_percent`, `rental_system_cpu_count`,
///   `rental_system_memory_used_bytes`, `rental_system_memory_total_bytes`,
///   `rental_system_load_average{window="1m"|"5m"|"15m"}` (when known),
///   `rental_process_resident_memory_bytes`, `rental_process_cpu_usage_percent` (when known),
///   `rental_process_uptime_seconds`;
/// - with a pool: gauges `rental_db_pool_connections`, `rental_db_pool_connections_in_use`,
///   `rental_db_pool_min_connections`, `rental_db_pool_max_connections`.
pub fn render_prometheus(requests: &RequestSnapshot, system: &SystemSnapshot, pool: Option<PoolGauge>) -> String {
    let mut out = Exposition::default();

    out.header("rental_http_requests_total", "counter", "HTTP requests handled, by matched route pattern.");
    for route in &requests.routes {
        out.int("rental_http_requests_total", &[("route", &route.route)], route.requests);
    }
    out.header(
        "rental_http_client_errors_total",
        "counter",
        "HTTP requests answered with a 4xx status, by matched route pattern.",
    );
    for route in &requests.routes {
        out.int("rental_http_client_errors_total", &[("route", &route.route)], route.client_errors);
    }
    out.header(
        "rental_http_server_errors_total",
        "counter",
        "HTTP requests answered with a 5xx status, by matched route pattern.",
    );
    for route in &requests.routes {
        out.int("rental_http_server_errors_total", &[("route", &route.route)], route.server_errors);
    }

    let latency = &requests.latency;
    let duration = "rental_http_request_duration_seconds";
    out.header(
        duration,
        "summary",
        "HTTP request latency since start; quantiles estimated from a histogram (within 9.1 %).",
    );
    for (quantile, ms) in [("0.5", latency.p50_ms), ("0.95", latency.p95_ms), ("0.99", latency.p99_ms)] {
        out.float(duration, &[("quantile", quantile)], ms / 1_000.0);
    }
    out.float("rental_http_request_duration_seconds_sum", &[], latency.sum_ms / 1_000.0);
    out.int("rental_http_request_duration_seconds_count", &[], latency.count);
    out.gauge(
        "rental_http_request_duration_max_seconds",
        "Slowest HTTP request since start.",
        latency.max_ms / 1_000.0,
    );

    out.gauge(
        "rental_system_cpu_usage_percent",
        "Host CPU usage averaged over all CPUs, 0 to 100.",
        system.cpu_usage_percent,
    );
    out.gauge("rental_system_cpu_count", "Logical CPUs of the host.", system.cpu_count as f64);
    out.gauge(
        "rental_system_memory_used_bytes",
        "Host RAM in use (total minus available).",
        system.memory_used_bytes as f64,
    );
    out.gauge("rental_system_memory_total_bytes", "Host RAM.", system.memory_total_bytes as f64);
    if let Some(load) = system.load_average {
        let name = "rental_system_load_average";
        out.header(name, "gauge", "Host load average.");
        out.float(name, &[("window", "1m")], load.one);
        out.float(name, &[("window", "5m")], load.five);
        out.float(name, &[("window", "15m")], load.fifteen);
    }
    if let Some(rss) = system.process_rss_bytes {
        out.gauge("rental_process_resident_memory_bytes", "Resident memory of this process.", rss as f64);
    }
    if let Some(cpu) = system.process_cpu_percent {
        out.gauge("rental_process_cpu_usage_percent", "CPU usage of this process; 100 is one full CPU.", cpu);
    }
    out.gauge("rental_process_uptime_seconds", "Seconds since the system monitor started.", system.uptime_secs);

    if let Some(pool) = pool {
        out.gauge("rental_db_pool_connections", "Open database connections (idle and in use).", f64::from(pool.size));
        out.gauge("rental_db_pool_connections_in_use", "Database connections checked out.", f64::from(pool.in_use));
        out.gauge(
            "rental_db_pool_min_connections",
            "Minimum database connections of the pool.",
            f64::from(pool.min_connections),
        );
        out.gauge(
            "rental_db_pool_max_connections",
            "Maximum database connections of the pool.",
            f64::from(pool.max_connections),
        );
    }
    out.text
}

#[derive(Default)]
struct Exposition {
    text: String,
}

// Writing to a `String` cannot fail, so the `fmt::Result`s below are ignored.
impl Exposition {
    fn header(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.text, "# HELP {name} {help}");
        let _ = writeln!(self.text, "# TYPE {name} {kind}");
    }

    fn gauge(&mut self, name: &str, help: &str, value: f64) {
        self.header(name, "gauge", help);
        self.float(name, &[], value);
    }

    fn int(&mut self, name: &str, labels: &[(&str, &str)], value: u64) {
        self.name_and_labels(name, labels);
        let _ = writeln!(self.text, " {value}");
    }

    fn float(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.name_and_labels(name, labels);
        let _ = if value.is_nan() {
            writeln!(self.text, " NaN")
        } else if value.is_infinite() {
            writeln!(self.text, " {}Inf", if value > 0.0 { '+' } else { '-' })
        } else {
            writeln!(self.text, " {value}")
        };
    }

    fn name_and_labels(&mut self, name: &str, labels: &[(&str, &str)]) {
        self.text.push_str(name);
        if labels.is_empty() {
            return;
        }
        self.text.push('{');
        for (i, (label, value)) in labels.iter().enumerate() {
            if i > 0 {
                self.text.push(',');
            }
            self.text.push_str(label);
            self.text.push_str("=\"");
            escape_label_value(&mut self.text, value);
            self.text.push('"');
        }
        self.text.push('}');
    }
}

/// Escapes a label value as the text format requires: backslash, double quote and line feed.
fn escape_label_value(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::requests::{LatencySummary, RouteCount};
    use crate::system::LoadAverage;
    use std::collections::HashSet;

    fn requests() -> RequestSnapshot {
        RequestSnapshot {
            total_requests: 7,
            latency: LatencySummary {
                count: 7,
                sum_ms: 70.0,
                mean_ms: 10.0,
                p50_ms: 8.0,
                p95_ms: 30.0,
                p99_ms: 31.0,
                max_ms: 32.0,
            },
            routes: vec![
                RouteCount { route: "/api/v1/users/{id}".into(), requests: 5, client_errors: 1, server_errors: 2 },
                RouteCount { route: "/weird\"\\\nroute".into(), requests: 2, client_errors: 0, server_errors: 0 },
            ],
            ..RequestSnapshot::default()
        }
    }

    fn system() -> SystemSnapshot {
        SystemSnapshot {
            cpu_usage_percent: 12.5,
            cpu_count: 2,
            memory_used_bytes: 1_000,
            memory_total_bytes: 4_000,
            memory_usage_percent: 25.0,
            process_rss_bytes: Some(300),
            process_cpu_percent: Some(f64::NAN),
            load_average: Some(LoadAverage { one: 0.5, five: 0.25, fifteen: 0.125 }),
            uptime_secs: 60.0,
        }
    }

    /// Splits a sample line into name, label block and value, checking the grammar on the way.
    fn parse_sample(line: &str) -> (&str, &str, &str) {
        let (series, value) = line.rsplit_once(' ').unwrap();
        assert!(
            value == "NaN" || value == "+Inf" || value == "-Inf" || value.parse::<f64>().is_ok(),
            "bad value in {line:?}"
        );
        let (name, labels) = match series.find('{') {
            Some(i) => {
                assert!(series.ends_with('}'), "unclosed labels in {line:?}");
                (&series[..i], &series[i..])
            }
            None => (series, ""),
        };
        assert!(name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'), "bad name in {line:?}");
        (name, labels, value)
    }

    #[test]
    fn every_sample_follows_its_help_and_type() {
        let text = render_prometheus(&requests(), &system(), Some(PoolGauge::default()));
        assert!(text.ends_with('\n'));
        let mut typed: Vec<&str> = Vec::new();
        let mut helped = HashSet::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# HELP ") {
                assert!(helped.insert(rest.split(' ').next().unwrap()), "{line}");
            } else if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').unwrap();
                assert!(["counter", "gauge", "summary"].contains(&kind), "{line}");
                assert!(helped.contains(name), "TYPE before HELP: {line}");
                assert!(!typed.contains(&name), "duplicate TYPE: {line}");
                typed.push(name);
            } else {
                let (name, _, _) = parse_sample(line);
                // A sample belongs to the last declared metric (summaries add _sum and _count).
                let family = typed.last().unwrap();
                assert!(
                    name == *family || name == format!("{family}_sum") || name == format!("{family}_count"),
                    "{name} appears under {family}"
                );
            }
        }
        for expected in [
            "rental_http_requests_total",
            "rental_http_request_duration_seconds",
            "rental_system_memory_used_bytes",
            "rental_system_cpu_usage_percent",
            "rental_db_pool_connections_in_use",
        ] {
            assert!(typed.contains(&expected), "{expected} missing");
        }
    }

    #[test]
    fn values_and_labels_are_rendered_exactly() {
        let text = render_prometheus(&requests(), &system(), None);
        let lines: Vec<&str> = text.lines().collect();
        for expected in [
            "# TYPE rental_http_requests_total counter",
            r#"rental_http_requests_total{route="/api/v1/users/{id}"} 5"#,
            r#"rental_http_requests_total{route="/weird\"\\\nroute"} 2"#,
            r#"rental_http_client_errors_total{route="/api/v1/users/{id}"} 1"#,
            r#"rental_http_server_errors_total{route="/api/v1/users/{id}"} 2"#,
            "# TYPE rental_http_request_duration_seconds summary",
            r#"rental_http_request_duration_seconds{quantile="0.5"} 0.008"#,
            r#"rental_http_request_duration_seconds{quantile="0.99"} 0.031"#,
            "rental_http_request_duration_seconds_sum 0.07",
            "rental_http_request_duration_seconds_count 7",
            "rental_http_request_duration_max_seconds 0.032",
            "rental_system_memory_total_bytes 4000",
            r#"rental_system_load_average{window="15m"} 0.125"#,
            "rental_process_resident_memory_bytes 300",
            "rental_process_cpu_usage_percent NaN",
            "rental_process_uptime_seconds 60",
        ] {
            assert!(lines.contains(&expected), "missing {expected:?} in\n{text}");
        }
        assert!(!text.contains("rental_db_pool"), "no pool was given");
    }

    #[test]
    fn absent_readings_are_left_out() {
        let system = SystemSnapshot::default();
        let text = render_prometheus(&RequestSnapshot::default(), &system, None);
        assert!(!text.contains("rental_system_load_average"));
        assert!(!text.contains("rental_process_resident_memory_bytes"));
        assert!(text.contains("rental_http_request_duration_seconds_count 0\n"));
    }

    #[test]
    fn label_escaping() {
        let mut out = String::new();
        escape_label_value(&mut out, "a\\b\"c\nd/{e}");
        assert_eq!(out, r#"a\\b\"c\nd/{e}"#);
    }
}
