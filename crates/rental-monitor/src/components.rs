//! Named components whose health is fed in by other crates: [`Components`], [`ComponentSource`],
//! [`ComponentHandle`].
//!
//! The monitor knows no component by type. A crate that talks to an outside service (mail, Redis,
//! a payment provider) either keeps a [`ComponentHandle`] and reports each success and failure to
//! it, or implements [`ComponentSource`] over counters it already keeps; the embedder registers
//! either with [`Components::register`]. A service that is not set up is registered with
//! [`ComponentHandle::not_configured`], so that the health view says so instead of leaving it out.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::SystemTime;

use metrics::Gauge;
use serde::Serialize;

use crate::exporter::Exporter;
use crate::system::unix_ms;

/// What a component's last operations say about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ComponentState {
    /// Its last operation succeeded, or it has not been used yet.
    Up,
    /// Its last operation failed: the service works without it, but something is wrong.
    Degraded,
    /// Not set up in this process.
    NotConfigured,
}

/// The state of one component, as the health view shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ComponentStatus {
    /// Stable name, such as `smtp`.
    pub name: String,
    /// Whether the component is set up.
    pub configured: bool,
    /// Its state.
    pub state: ComponentState,
    /// What it is (for example `smtp` or `file outbox`), or why it is not configured.
    pub detail: Option<String>,
    /// Successful operations since start.
    pub successes: u64,
    /// Failed operations since start.
    pub failures: u64,
    /// Last success, in milliseconds since the Unix epoch.
    pub last_success_unix_ms: Option<u64>,
    /// Last failure, in milliseconds since the Unix epoch.
    pub last_failure_unix_ms: Option<u64>,
    /// The last failure's message.
    pub last_error: Option<String>,
}

impl ComponentStatus {
    /// The status of a component that is not set up; `detail` says why or what would set it up.
    pub fn not_configured(name: &str, detail: &str) -> Self {
        Self {
            name: name.to_owned(),
            configured: false,
            state: ComponentState::NotConfigured,
            detail: Some(detail.to_owned()),
            successes: 0,
            failures: 0,
            last_success_unix_ms: None,
            last_failure_unix_ms: None,
            last_error: None,
        }
    }

    /// The status of a configured component from its counters: degraded when its last failure is
    /// newer than its last success, up otherwise.
    pub fn from_counters(
        name: &str,
        detail: Option<String>,
        successes: u64,
        failures: u64,
        last_success_unix_ms: Option<u64>,
        last_failure_unix_ms: Option<u64>,
        last_error: Option<String>,
    ) -> Self {
        let failing = match (last_success_unix_ms, last_failure_unix_ms) {
            (_, None) => false,
            (None, Some(_)) => true,
            (Some(success), Some(failure)) => failure > success,
        };
        Self {
            name: name.to_owned(),
            configured: true,
            state: if failing { ComponentState::Degraded } else { ComponentState::Up },
            detail,
            successes,
            failures,
            last_success_unix_ms,
            last_failure_unix_ms,
            last_error,
        }
    }
}

/// Something that can tell its [`ComponentStatus`] cheaply (no I/O: it is read on every health
/// probe).
pub trait ComponentSource: fmt::Debug + Send + Sync {
    /// The current status.
    fn status(&self) -> ComponentStatus;
}

/// A component whose successes and failures are reported to it. Cloning shares the state.
#[derive(Debug, Clone)]
pub struct ComponentHandle {
    inner: Arc<HandleState>,
}

#[derive(Debug)]
struct HandleState {
    name: String,
    detail: Option<String>,
    configured: AtomicBool,
    successes: AtomicU64,
    failures: AtomicU64,
    /// 0 = never.
    last_success_ms: AtomicU64,
    last_failure_ms: AtomicU64,
    last_error: Mutex<Option<String>>,
}

impl ComponentHandle {
    /// A configured component named `name`, described by `detail`.
    pub fn new(name: &str, detail: Option<String>) -> Self {
        Self::make(name, detail, true)
    }

    /// A component that is not set up; `detail` says why.
    pub fn not_configured(name: &str, detail: &str) -> Self {
        Self::make(name, Some(detail.to_owned()), false)
    }

    fn make(name: &str, detail: Option<String>, configured: bool) -> Self {
        Self {
            inner: Arc::new(HandleState {
                name: name.to_owned(),
                detail,
                configured: AtomicBool::new(configured),
                successes: AtomicU64::new(0),
                failures: AtomicU64::new(0),
                last_success_ms: AtomicU64::new(0),
                last_failure_ms: AtomicU64::new(0),
                last_error: Mutex::new(None),
            }),
        }
    }

    /// Records a successful operation now.
    pub fn success(&self) {
        self.success_at(SystemTime::now());
    }

    /// Records a successful operation at `at`.
    pub fn success_at(&self, at: SystemTime) {
        self.inner.successes.fetch_add(1, Ordering::Relaxed);
        self.inner.last_success_ms.fetch_max(unix_ms(at).max(1), Ordering::Relaxed);
    }

    /// Records a failed operation now, with its message.
    pub fn failure(&self, error: &str) {
        self.failure_at(SystemTime::now(), error);
    }

    /// Records a failed operation at `at`, with its message.
    pub fn failure_at(&self, at: SystemTime, error: &str) {
        self.inner.failures.fetch_add(1, Ordering::Relaxed);
        self.inner.last_failure_ms.fetch_max(unix_ms(at).max(1), Ordering::Relaxed);
        *self.inner.last_error.lock().unwrap_or_else(PoisonError::into_inner) = Some(error.to_owned());
    }
}

impl ComponentSource for ComponentHandle {
    fn status(&self) -> ComponentStatus {
        let s = &*self.inner;
        if !s.configured.load(Ordering::Relaxed) {
            return ComponentStatus::not_configured(&s.name, s.detail.as_deref().unwrap_or("not configured"));
        }
        let when = |ms: u64| (ms > 0).then_some(ms);
        ComponentStatus::from_counters(
            &s.name,
            s.detail.clone(),
            s.successes.load(Ordering::Relaxed),
            s.failures.load(Ordering::Relaxed),
            when(s.last_success_ms.load(Ordering::Relaxed)),
            when(s.last_failure_ms.load(Ordering::Relaxed)),
            s.last_error.lock().unwrap_or_else(PoisonError::into_inner).clone(),
        )
    }
}

/// The registry of components. Cloning shares it.
#[derive(Clone)]
pub struct Components {
    exporter: Exporter,
    entries: Arc<RwLock<Vec<Entry>>>,
}

struct Entry {
    source: Arc<dyn ComponentSource>,
    up: Gauge,
    configured: Gauge,
}

impl fmt::Debug for Components {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<String> = self
            .entries
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|e| e.source.status().name)
            .collect();
        f.debug_struct("Components").field("names", &names).finish()
    }
}

impl Components {
    /// An empty registry whose gauges live in `exporter`.
    pub fn new(exporter: &Exporter) -> Self {
        Self { exporter: exporter.clone(), entries: Arc::new(RwLock::new(Vec::new())) }
    }

    /// Adds a component; its name is read once, now, for the gauges' label. A component registered
    /// again under a name already present replaces the earlier one (so a later issue can replace a
    /// `not_configured` placeholder).
    pub fn register(&self, source: Arc<dyn ComponentSource>) {
        let name = source.status().name;
        let labels = [("component", name.clone())];
        let entry = Entry {
            source,
            up: self.exporter.gauge(
                "rental_component_up",
                "1 when the component's last operation succeeded (or none ran yet), 0 when it failed.",
                &labels,
            ),
            configured: self.exporter.gauge("rental_component_configured", "1 when the component is set up.", &labels),
        };
        let mut entries = self.entries.write().unwrap_or_else(PoisonError::into_inner);
        entries.retain(|e| e.source.status().name != name);
        entries.push(entry);
    }

    /// Every component's status, in registration order, with their gauges updated.
    pub fn statuses(&self) -> Vec<ComponentStatus> {
        self.entries
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|entry| {
                let status = entry.source.status();
                entry.configured.set(if status.configured { 1.0 } else { 0.0 });
                entry.up.set(if status.state == ComponentState::Up { 1.0 } else { 0.0 });
                status
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::DEFAULT_LATENCY_BUCKETS_SECS;

    #[test]
    fn a_handle_is_degraded_while_its_last_operation_failed() {
        let handle = ComponentHandle::new("smtp", Some("smtp.example.com".into()));
        let status = handle.status();
        assert_eq!(status.state, ComponentState::Up, "nothing sent yet");
        assert!(status.configured);
        assert_eq!(status.last_success_unix_ms, None);

        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        handle.success_at(t0);
        handle.failure_at(t0 + Duration::from_secs(1), "connection refused");
        let status = handle.status();
        assert_eq!(status.state, ComponentState::Degraded);
        assert_eq!(status.last_success_unix_ms, Some(1_000_000));
        assert_eq!(status.last_failure_unix_ms, Some(1_001_000));
        assert_eq!(status.last_error.as_deref(), Some("connection refused"));

        handle.success_at(t0 + Duration::from_secs(2));
        let status = handle.status();
        assert_eq!(status.state, ComponentState::Up);
        assert_eq!((status.successes, status.failures), (2, 1));
        assert_eq!(status.last_error.as_deref(), Some("connection refused"), "the last error is kept");
    }

    #[test]
    fn registry_lists_components_and_replaces_by_name() {
        let exporter = crate::Exporter::new(&DEFAULT_LATENCY_BUCKETS_SECS).unwrap();
        let components = Components::new(&exporter);
        components.register(Arc::new(ComponentHandle::not_configured("redis", "set redis.url")));
        components.register(Arc::new(ComponentHandle::not_configured("stripe", "set stripe.secret_key")));
        let statuses = components.statuses();
        assert_eq!(statuses.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(), ["redis", "stripe"]);
        assert!(statuses.iter().all(|s| s.state == ComponentState::NotConfigured && !s.configured));
        let text = exporter.render();
        assert!(text.contains("rental_component_configured{component=\"redis\"} 0"), "{text}");

        // A later issue fills Redis in.
        let redis = ComponentHandle::new("redis", None);
        components.register(Arc::new(redis.clone()));
        redis.failure("timeout");
        let statuses = components.statuses();
        assert_eq!(statuses.len(), 2);
        let redis = statuses.iter().find(|s| s.name == "redis").unwrap();
        assert_eq!(redis.state, ComponentState::Degraded);
        let text = exporter.render();
        assert!(text.contains("rental_component_configured{component=\"redis\"} 1"), "{text}");
        assert!(text.contains("rental_component_up{component=\"redis\"} 0"), "{text}");
    }
}
