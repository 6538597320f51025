use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Connection settings of the database pool. Unset pool sizes take the backend's defaults: PostgreSQL keeps
/// 20 connections and opens up to 50; SQLite, which serialises writers anyway, keeps 1 and opens up to 8.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `sqlite://path/to/file.db?mode=rwc` or `postgres://user@host/db`.
    pub url: String,
    /// Most connections the pool opens.
    pub max_connections: Option<u32>,
    /// Connections the pool keeps open when idle.
    pub min_connections: Option<u32>,
    /// How long a request waits for a free connection before failing.
    pub acquire_timeout_secs: u64,
    /// How long a connection beyond the minimum may stay idle.
    pub idle_timeout_secs: u64,
    /// Connections are recycled after this long.
    pub max_lifetime_secs: u64,
    /// A pooled connection idle for this long is pinged before it is handed out (the old app's "pre-ping",
    /// without its round trip on every checkout).
    pub ping_after_idle_secs: u64,
    /// Statements slower than this are logged as warnings and counted.
    pub slow_statement_ms: u64,
    /// How long SQLite waits on a locked database before giving up.
    pub sqlite_busy_timeout_ms: u64,
    /// PostgreSQL's JIT compilation of queries (the server's `jit` setting, for this pool's sessions). Off by
    /// default: the planner turns it on for any query it estimates above `jit_above_cost`, and compiling took
    /// 50–60 ms for report queries that run in 100 ms, with nothing gained on this workload of short queries.
    pub postgres_jit: bool,
    /// PostgreSQL: how often a connection of its own checks that the server answers (0 turns the probe off).
    /// While it does not, requests fail at once with 503 instead of waiting for the acquire timeout.
    pub probe_interval_ms: u64,
    /// PostgreSQL: how long one probe, connecting included, may take before the server counts as down.
    pub probe_timeout_ms: u64,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            url: "sqlite://data/rental.db?mode=rwc".into(),
            max_connections: None,
            min_connections: None,
            acquire_timeout_secs: 30,
            idle_timeout_secs: 600,
            max_lifetime_secs: 1800,
            ping_after_idle_secs: 30,
            slow_statement_ms: 100,
            sqlite_busy_timeout_ms: 5000,
            postgres_jit: false,
            probe_interval_ms: 1000,
            probe_timeout_ms: 1000,
        }
    }
}

impl DatabaseConfig {
    /// A configuration for `url` with every other setting at its default.
    pub fn with_url(url: impl Into<String>) -> Self {
        Self { url: url.into(), ..Self::default() }
    }

    /// How the availability probe runs, or `None` when it is turned off.
    pub fn probe_settings(&self) -> Option<crate::ProbeSettings> {
        (self.probe_interval_ms > 0).then(|| crate::ProbeSettings {
            interval: Duration::from_millis(self.probe_interval_ms),
            timeout: Duration::from_millis(self.probe_timeout_ms.max(1)),
        })
    }

    /// The URL with any password replaced, for logs and `print-config`.
    pub fn redacted_url(&self) -> String {
        match url_password_span(&self.url) {
            Some((start, end)) => format!("{}***{}", &self.url[..start], &self.url[end..]),
            None => self.url.clone(),
        }
    }
}

/// Byte range of the password in `scheme://user:password@host`, if there is one.
fn url_password_span(url: &str) -> Option<(usize, usize)> {
    let authority_start = url.find("://")? + 3;
    let rest = &url[authority_start..];
    let at = rest.find('@')?;
    let colon = rest[..at].find(':')?;
    Some((authority_start + colon + 1, authority_start + at))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted_from_urls() {
        let config = DatabaseConfig::with_url("postgres://app:s3cret@db:5432/rental");
        assert_eq!(config.redacted_url(), "postgres://app:***@db:5432/rental");
        let config = DatabaseConfig::with_url("postgres://app@db/rental");
        assert_eq!(config.redacted_url(), "postgres://app@db/rental");
    }
}
