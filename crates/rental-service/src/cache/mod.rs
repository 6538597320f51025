//! The one cache abstraction every cached read of the services goes through.
//!
//! [`Caches`] is built once with the services and hands out typed [`Namespace`]s, one per kind of data, each
//! with its own TTL and capacity. A namespace is keyed by a [`CacheKey`] (a typed key with a canonical text
//! form, never a `Debug` string) and offers:
//!
//! - get-or-load with stampede protection: concurrent misses of one key run the loader once (moka's
//!   `try_get_with`), and everyone waiting gets its result;
//! - refresh-ahead (optional, [`NamespaceSpec::refreshed_after`]): the first lookup of an entry older than the
//!   refresh point reloads it while every other lookup is still served the current entry, so an entry in
//!   steady use is replaced before it expires and its readers never queue behind a load;
//! - invalidation by key, and of the whole namespace by bumping its generation (entries of older generations
//!   can no longer be reached and age out), instead of `invalidate_all` loops;
//! - counters per namespace and tier (hits, misses, loads, evictions, entries) for monitoring.
//!
//! With a [`CacheBackend`] (Redis), the namespaces whose values have a byte encoding ([`CacheValue`]) use it
//! as a second tier: a local miss asks the backend before loading, and loads are stored there for other
//! instances. Invalidations are published through the backend so that every instance drops its copy. While
//! the backend is unhealthy, local entries live at most `degraded_ttl`, which bounds how long an instance can
//! miss another's invalidation.

mod key;
#[cfg(feature = "redis")]
pub mod redis;
mod stats;

use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};

use moka::Expiry;
use moka::notification::RemovalCause;

pub use self::key::{CacheKey, CacheValue, JsonBytes, Singleton};
pub use self::stats::CacheStats;
use self::stats::{Counters, bump, read};
use crate::ports::{CacheBackend, CacheEvent};

/// How a namespace is sized and how long its entries live.
#[derive(Debug, Clone, Copy)]
pub struct NamespaceSpec {
    /// The name shown in metrics and accepted by [`Caches::clear`].
    pub name: &'static str,
    /// How long an entry lives (in this process and in the shared tier).
    pub ttl: Duration,
    /// Most entries kept, or most weight when the namespace is weighed.
    pub capacity: u64,
    /// Refresh-ahead: an entry at least this old (and not expired) is reloaded by the first lookup that finds
    /// it, while the other lookups are served the entry as it is. `None` (the default): entries only expire.
    pub refresh_after: Option<Duration>,
}

impl NamespaceSpec {
    /// A namespace of `capacity` entries living `ttl`, without refresh-ahead.
    pub const fn new(name: &'static str, ttl: Duration, capacity: u64) -> Self {
        Self { name, ttl, capacity, refresh_after: None }
    }

    /// The same namespace with refresh-ahead from an entry's age `after` (kept only when shorter than the
    /// TTL; a refresh point at or past the TTL would never be reached).
    #[must_use]
    pub const fn refreshed_after(mut self, after: Duration) -> Self {
        self.refresh_after = if after.as_nanos() < self.ttl.as_nanos() { Some(after) } else { None };
        self
    }
}

/// No namespace of that name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no cache namespace named `{0}`")]
pub struct UnknownNamespace(pub String);

/// Health of the shared tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SharedTier {
    /// No backend: this process's caches only.
    None,
    /// The backend answers; invalidations reach every instance.
    Up,
    /// The backend is configured but unreachable or slow: local caches alone, with shortened TTLs.
    Degraded,
}

/// The shared tier as the namespaces see it.
#[derive(Debug)]
struct Shared {
    backend: Arc<dyn CacheBackend>,
    /// Whether the backend answered its last call and the invalidations subscription is live; false
    /// shortens the local TTLs.
    healthy: Arc<AtomicBool>,
    /// Whether the backend answered its last call.
    answering: AtomicBool,
    /// Whether the subscription to other instances' invalidations is live.
    subscribed: AtomicBool,
    /// Whether the outage was already logged (log once per outage).
    logged: AtomicBool,
    /// Bound on every read and write of a value.
    timeout: Duration,
    /// Bound on publishing an invalidation (it matters more than a read, so it may take longer).
    publish_timeout: Duration,
}

impl Shared {
    fn mark(&self, ok: bool, what: &str, err: Option<&dyn fmt::Display>) {
        self.answering.store(ok, Ordering::Relaxed);
        self.update(what, err);
    }

    fn mark_subscribed(&self, ok: bool) {
        self.subscribed.store(ok, Ordering::Relaxed);
        self.update("keep its invalidations subscription", None);
    }

    fn update(&self, what: &str, err: Option<&dyn fmt::Display>) {
        let ok = self.answering.load(Ordering::Relaxed) && self.subscribed.load(Ordering::Relaxed);
        let was = self.healthy.swap(ok, Ordering::Relaxed);
        if ok {
            if !was {
                self.logged.store(false, Ordering::Relaxed);
                tracing::info!("the shared cache answers again: back to two tiers");
            }
        } else if !self.logged.swap(true, Ordering::Relaxed) {
            match err {
                Some(err) => {
                    tracing::warn!(error = %err, "the shared cache failed to {what}: running on the local caches alone with short TTLs until it answers again")
                }
                None => tracing::warn!(
                    "the shared cache failed to {what}: running on the local caches alone with short TTLs until it answers again"
                ),
            }
        }
    }

    async fn bounded<T>(
        &self,
        what: &str,
        bound: Duration,
        call: impl Future<Output = Result<T, crate::PortError>>,
    ) -> Option<T> {
        match tokio::time::timeout(bound, call).await {
            Ok(Ok(value)) => {
                self.mark(true, what, None);
                Some(value)
            }
            Ok(Err(err)) => {
                self.mark(false, what, Some(&err));
                None
            }
            Err(_) => {
                self.mark(false, what, Some(&format!("timed out after {bound:?}")));
                None
            }
        }
    }
}

/// Per-entry lifetime: the namespace's TTL, or the degraded bound while the shared tier is down. Cheap to clone:
/// the local tier has one copy, the namespace another (it stamps refresh points with it).
#[derive(Clone)]
struct Lifetime {
    ttl: Duration,
    degraded_ttl: Duration,
    healthy: Option<Arc<AtomicBool>>,
}

impl Lifetime {
    fn current(&self) -> Duration {
        match &self.healthy {
            Some(healthy) if !healthy.load(Ordering::Relaxed) => self.ttl.min(self.degraded_ttl),
            _ => self.ttl,
        }
    }
}

impl<K, V> Expiry<K, V> for Lifetime {
    fn expire_after_create(&self, _key: &K, _value: &V, _created_at: Instant) -> Option<Duration> {
        Some(self.current())
    }

    /// A replaced entry (a refresh) lives a whole lifetime again; moka's default would keep the old expiry.
    fn expire_after_update(
        &self,
        _key: &K,
        _value: &V,
        _updated_at: Instant,
        _duration_until_expiry: Option<Duration>,
    ) -> Option<Duration> {
        Some(self.current())
    }
}

/// A value as the local tier holds it: with the moment it should be refreshed (refresh-ahead namespaces) and
/// whether a lookup is refreshing it already.
struct Entry<V> {
    value: V,
    refresh_at: Option<Instant>,
    refreshing: AtomicBool,
}

impl<V> Entry<V> {
    /// Whether this lookup should refresh the entry: past its refresh point, and no other lookup took it.
    fn take_refresh(&self) -> bool {
        self.refresh_at.is_some_and(|at| Instant::now() >= at) && !self.refreshing.swap(true, Ordering::AcqRel)
    }
}

/// What [`Caches`] needs of every namespace, whatever its key and value types.
trait Control: Send + Sync {
    fn name(&self) -> &'static str;
    fn stats(&self) -> Vec<CacheStats>;
    /// Drops everything held in this process (a new generation).
    fn clear_local(&self);
    /// Drops one key held in this process, from its canonical text.
    fn drop_local(&self, canonical: &str);
    /// Adopts the shared generation of the namespace (from the backend).
    fn set_shared_generation(&self, generation: u64);
    /// Takes the backend's generation as it is, even when lower (after a resync: a Redis restarted with its
    /// data gone counts from 0 again, and a higher local generation would point at keys no clear reaches).
    fn reset_shared_generation(&self, generation: u64);
}

/// One kind of cached data: typed keys, typed values. Cheap to clone.
pub struct Namespace<K: CacheKey, V: CacheValue> {
    inner: Arc<NamespaceInner<K, V>>,
}

impl<K: CacheKey, V: CacheValue> Clone for Namespace<K, V> {
    fn clone(&self) -> Self {
        Self { inner: self.inner.clone() }
    }
}

impl<K: CacheKey, V: CacheValue> fmt::Debug for Namespace<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Namespace").field("name", &self.inner.spec.name).finish_non_exhaustive()
    }
}

struct NamespaceInner<K: CacheKey, V: CacheValue> {
    spec: NamespaceSpec,
    /// Entries of this process, keyed by (local generation, key).
    local: moka::future::Cache<(u64, K), Arc<Entry<V>>>,
    /// How long entries live (the namespace's TTL, or the degraded bound while the shared tier is down).
    lifetime: Lifetime,
    /// Bumped to drop every local entry at once.
    generation: AtomicU64,
    /// The namespace's generation in the shared tier (part of every shared key), bumped by a clear anywhere.
    shared_generation: AtomicU64,
    /// Bumped by every invalidation: a load that overlapped one does not keep its (possibly older) value.
    invalidations: AtomicU64,
    counters: Arc<Counters>,
    shared: Option<Arc<Shared>>,
}

impl<K: CacheKey, V: CacheValue> NamespaceInner<K, V> {
    fn shared_key(&self, key: &K) -> String {
        format!("{}:{}:{}", self.spec.name, self.shared_generation.load(Ordering::Acquire), key.canonical())
    }

    /// A value as the local tier holds it, stamped with its refresh point (half-way into a shortened,
    /// degraded lifetime at the latest).
    fn entry(&self, value: V) -> Arc<Entry<V>> {
        let refresh_at = self.spec.refresh_after.map(|after| {
            let lifetime = self.lifetime.current();
            Instant::now() + if after < lifetime { after } else { lifetime / 2 }
        });
        Arc::new(Entry { value, refresh_at, refreshing: AtomicBool::new(false) })
    }
}

impl<K: CacheKey, V: CacheValue> Namespace<K, V> {
    /// The namespace's name.
    pub fn name(&self) -> &'static str {
        self.inner.spec.name
    }

    /// The value of `key`, from this process, else from the shared tier, else from `load` (which is stored
    /// in both). Concurrent misses of one key run `load` once and share its result, error included. In a
    /// refresh-ahead namespace, the first lookup of an entry past its refresh point runs `load` and stores its
    /// value (an error keeps the entry as it is, to be tried again by a later lookup), while the others are
    /// served the entry.
    ///
    /// # Errors
    /// `load`'s error, shared by every caller that waited for it.
    pub async fn get_or_load<E, F>(&self, key: K, load: F) -> Result<V, Arc<E>>
    where
        E: Send + Sync + 'static,
        F: Future<Output = Result<V, E>>,
    {
        let inner = &self.inner;
        let generation = inner.generation.load(Ordering::Acquire);
        let invalidations = inner.invalidations.load(Ordering::Acquire);
        let local_key = (generation, key);
        if let Some(entry) = inner.local.get(&local_key).await {
            bump(&inner.counters.hits);
            if entry.take_refresh() {
                return Ok(self.refresh(local_key, entry, invalidations, load).await);
            }
            return Ok(entry.value.clone());
        }
        let loaded = AtomicBool::new(false);
        let result = inner
            .local
            .try_get_with_by_ref(&local_key, async {
                loaded.store(true, Ordering::Relaxed);
                if let Some(value) = self.shared_get(&local_key.1).await {
                    return Ok(inner.entry(value));
                }
                bump(&inner.counters.loads);
                let value = load.await?;
                self.shared_set(&local_key.1, &value).await;
                Ok(inner.entry(value))
            })
            .await;
        if loaded.load(Ordering::Relaxed) {
            bump(&inner.counters.misses);
            // An invalidation that ran while this value was loaded may have been for a change the load did
            // not see: the caller gets the value (it raced with the write), the cache does not keep it.
            if inner.invalidations.load(Ordering::Acquire) != invalidations {
                inner.local.invalidate(&local_key).await;
            }
        } else {
            // Another lookup loaded it meanwhile.
            bump(&inner.counters.hits);
        }
        result.map(|entry| entry.value.clone())
    }

    /// Reloads `entry` (past its refresh point, taken by this lookup) from the source, not the shared tier,
    /// whose copy is likely as old. A failed load keeps the entry as it is for a later lookup to try again.
    async fn refresh<E, F>(&self, local_key: (u64, K), entry: Arc<Entry<V>>, invalidations: u64, load: F) -> V
    where
        F: Future<Output = Result<V, E>>,
    {
        let inner = &self.inner;
        bump(&inner.counters.loads);
        bump(&inner.counters.refreshes);
        match load.await {
            Ok(value) => {
                self.shared_set(&local_key.1, &value).await;
                inner.local.insert(local_key.clone(), inner.entry(value.clone())).await;
                // As for a miss: a refresh that overlapped an invalidation is not kept.
                if inner.invalidations.load(Ordering::Acquire) != invalidations {
                    inner.local.invalidate(&local_key).await;
                }
                value
            }
            Err(_) => {
                tracing::debug!(namespace = inner.spec.name, "refreshing a cache entry failed: serving it as it is");
                entry.refreshing.store(false, Ordering::Release);
                entry.value.clone()
            }
        }
    }

    async fn shared_get(&self, key: &K) -> Option<V> {
        let shared = self.inner.shared.as_ref()?;
        if !V::SHARED {
            return None;
        }
        let shared_key = self.inner.shared_key(key);
        let found = shared.bounded("read", shared.timeout, shared.backend.get(&shared_key)).await.flatten();
        match found.as_deref().and_then(V::decode) {
            Some(value) => {
                bump(&self.inner.counters.shared_hits);
                Some(value)
            }
            None => {
                bump(&self.inner.counters.shared_misses);
                None
            }
        }
    }

    async fn shared_set(&self, key: &K, value: &V) {
        let Some(shared) = &self.inner.shared else { return };
        let Some(bytes) = value.encode() else { return };
        let shared_key = self.inner.shared_key(key);
        let ttl = self.inner.spec.ttl;
        shared.bounded("write", shared.timeout, shared.backend.set(&shared_key, &bytes, ttl)).await;
    }

    /// Drops `key` here, in the shared tier, and on every other instance.
    pub async fn invalidate(&self, key: &K) {
        let inner = &self.inner;
        inner.invalidations.fetch_add(1, Ordering::AcqRel);
        let generation = inner.generation.load(Ordering::Acquire);
        if key.is_group() {
            self.drop_group(key.clone());
        } else {
            inner.local.invalidate(&(generation, key.clone())).await;
        }
        if let Some(shared) = &inner.shared {
            let event = CacheEvent::Invalidate { namespace: inner.spec.name.into(), key: key.canonical().into_owned() };
            let shared_key = inner.shared_key(key);
            let work = async {
                // A group's members are not in the shared tier one by one: namespaces with group keys keep
                // their values local (`CacheValue::SHARED` is false for them).
                if V::SHARED && !key.is_group() {
                    shared.backend.delete(&shared_key).await?;
                }
                shared.backend.publish(&event).await
            };
            shared.bounded("publish an invalidation", shared.publish_timeout, work).await;
        }
    }

    /// Drops every entry of the namespace here, in the shared tier, and on every other instance.
    pub async fn clear(&self) {
        let inner = &self.inner;
        inner.invalidations.fetch_add(1, Ordering::AcqRel);
        inner.generation.fetch_add(1, Ordering::AcqRel);
        if let Some(shared) = &inner.shared {
            let name = inner.spec.name;
            let work = async {
                let generation = shared.backend.bump_generation(name).await?;
                self.adopt_shared_generation(generation);
                shared.backend.publish(&CacheEvent::Clear { namespace: name.into(), generation }).await
            };
            shared.bounded("publish a clear", shared.publish_timeout, work).await;
        }
    }

    /// Drops every local entry `group` covers (moka applies the predicate lazily; no lookup sees them after
    /// this returns). Without invalidation closures (a namespace not built by
    /// [`Caches::grouped_namespace`]) the whole namespace is dropped, which is never stale either.
    fn drop_group(&self, group: K) {
        let dropped = self.inner.local.invalidate_entries_if(move |(_, key), _| group.covers(key));
        if dropped.is_err() {
            self.inner.generation.fetch_add(1, Ordering::AcqRel);
        }
    }

    fn adopt_shared_generation(&self, generation: u64) {
        self.inner.shared_generation.fetch_max(generation, Ordering::AcqRel);
    }

    /// Entries held in this process (moka's estimate, which may still count entries of old generations).
    pub fn entry_count(&self) -> u64 {
        self.inner.local.entry_count()
    }
}

impl<K: CacheKey, V: CacheValue> Control for Namespace<K, V> {
    fn name(&self) -> &'static str {
        self.inner.spec.name
    }

    fn stats(&self) -> Vec<CacheStats> {
        let c = &self.inner.counters;
        let mut stats = vec![CacheStats {
            name: self.inner.spec.name,
            tier: "local",
            hits: read(&c.hits),
            misses: read(&c.misses),
            loads: read(&c.loads),
            refreshes: read(&c.refreshes),
            evictions: read(&c.evictions),
            entries: self.inner.local.entry_count(),
        }];
        if self.inner.shared.is_some() && V::SHARED {
            stats.push(CacheStats {
                name: self.inner.spec.name,
                tier: "shared",
                hits: read(&c.shared_hits),
                misses: read(&c.shared_misses),
                loads: 0,
                refreshes: 0,
                evictions: 0,
                entries: 0,
            });
        }
        stats
    }

    fn clear_local(&self) {
        self.inner.invalidations.fetch_add(1, Ordering::AcqRel);
        self.inner.generation.fetch_add(1, Ordering::AcqRel);
    }

    fn drop_local(&self, canonical: &str) {
        let Some(key) = K::from_canonical(canonical) else { return };
        self.inner.invalidations.fetch_add(1, Ordering::AcqRel);
        if key.is_group() {
            self.drop_group(key);
            return;
        }
        let generation = self.inner.generation.load(Ordering::Acquire);
        // `invalidate` of moka's sync-style API is enough here: the entry is gone for every later lookup.
        let local = self.inner.local.clone();
        let handle = tokio::runtime::Handle::try_current();
        match handle {
            Ok(handle) => {
                handle.spawn(async move { local.invalidate(&(generation, key)).await });
            }
            Err(_) => self.clear_local(),
        }
    }

    fn set_shared_generation(&self, generation: u64) {
        self.adopt_shared_generation(generation);
    }

    fn reset_shared_generation(&self, generation: u64) {
        self.inner.shared_generation.store(generation, Ordering::Release);
    }
}

/// Every namespace of the services, and the shared tier they use. Built once with the services; cheap to
/// clone.
#[derive(Clone)]
pub struct Caches {
    inner: Arc<CachesInner>,
}

struct CachesInner {
    namespaces: Mutex<Vec<Arc<dyn Control>>>,
    shared: Option<Arc<Shared>>,
    degraded_ttl: Duration,
}

impl fmt::Debug for Caches {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Caches").field("names", &self.names()).field("shared", &self.shared_tier()).finish()
    }
}

impl Default for Caches {
    fn default() -> Self {
        Self::local_only()
    }
}

impl Caches {
    /// Caches of this process only.
    pub fn local_only() -> Self {
        Self {
            inner: Arc::new(CachesInner {
                namespaces: Mutex::default(),
                shared: None,
                degraded_ttl: Duration::from_secs(1),
            }),
        }
    }

    /// The caches `config` asks for: with the Redis tier when `redis_url` is set (and the `redis` feature is
    /// on; without it the URL is refused), else local only. Must run on a tokio runtime when Redis is used.
    ///
    /// # Errors
    /// [`crate::ServiceError::Config`] for an unusable URL or a zero bound.
    pub fn from_config(config: &crate::CacheConfig) -> crate::ServiceResult<Self> {
        if config.redis_url.is_empty() {
            return Ok(Self::local_only());
        }
        if config.redis_timeout_ms == 0
            || config.redis_connect_timeout_ms == 0
            || config.degraded_ttl_ms == 0
            || config.redis_heartbeat_ms == 0
        {
            return Err(crate::ServiceError::Config(
                "cache.redis_timeout_ms, cache.redis_connect_timeout_ms, cache.redis_heartbeat_ms and \
                 cache.degraded_ttl_ms must be positive"
                    .into(),
            ));
        }
        #[cfg(feature = "redis")]
        {
            let backend = redis::RedisCacheBackend::new(
                config.redis_url.expose(),
                &config.redis_key_prefix,
                Duration::from_millis(config.redis_connect_timeout_ms),
                Duration::from_millis(config.redis_heartbeat_ms),
            )
            .map_err(|err| crate::ServiceError::Config(format!("cache.redis_url: {err}")))?;
            Ok(Self::with_backend(
                Arc::new(backend),
                Duration::from_millis(config.redis_timeout_ms),
                Duration::from_millis(config.degraded_ttl_ms),
            ))
        }
        #[cfg(not(feature = "redis"))]
        Err(crate::ServiceError::Config("cache.redis_url is set but this build has no Redis support".into()))
    }

    /// Caches with `backend` as their shared tier: reads and writes of values bounded by `timeout`,
    /// invalidations by ten times that; while the backend fails, local entries live at most `degraded_ttl`.
    /// Starts a task (on the current tokio runtime) that applies the invalidations other instances publish;
    /// it ends when these caches are dropped.
    pub fn with_backend(backend: Arc<dyn CacheBackend>, timeout: Duration, degraded_ttl: Duration) -> Self {
        // Degraded until the subscription is known to be live.
        let healthy = Arc::new(AtomicBool::new(false));
        let shared = Arc::new(Shared {
            backend: backend.clone(),
            healthy,
            answering: AtomicBool::new(true),
            subscribed: AtomicBool::new(false),
            logged: AtomicBool::new(false),
            timeout,
            publish_timeout: timeout.saturating_mul(10),
        });
        let caches =
            Self { inner: Arc::new(CachesInner { namespaces: Mutex::default(), shared: Some(shared), degraded_ttl }) };
        let mut events = backend.subscribe();
        let weak: Weak<CachesInner> = Arc::downgrade(&caches.inner);
        tokio::spawn(async move {
            loop {
                let event = match events.recv().await {
                    Ok(event) => event,
                    // Missed events: drop everything rather than keep what may be stale.
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => CacheEvent::Resync,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                };
                let Some(inner) = weak.upgrade() else { return };
                Caches { inner }.apply(event).await;
            }
        });
        caches
    }

    /// Applies an event from the backend to this process's namespaces.
    async fn apply(&self, event: CacheEvent) {
        match event {
            CacheEvent::Invalidate { namespace, key } => {
                for ns in self.controls().iter().filter(|ns| ns.name() == namespace) {
                    ns.drop_local(&key);
                }
            }
            CacheEvent::Clear { namespace, generation } => {
                for ns in self.controls().iter().filter(|ns| ns.name() == namespace) {
                    ns.set_shared_generation(generation);
                    ns.clear_local();
                }
            }
            CacheEvent::Resync => self.resync().await,
            CacheEvent::Down => {
                let Some(shared) = &self.inner.shared else { return };
                if shared.subscribed.load(Ordering::Relaxed) {
                    // From now on invalidations of other instances may be missed: drop what is held, so that
                    // everything is reloaded with the short TTL of the degraded mode.
                    shared.mark_subscribed(false);
                    for ns in self.controls() {
                        ns.clear_local();
                    }
                }
            }
        }
    }

    /// After a reconnect (invalidations may have been missed, Redis may have restarted without its data):
    /// drops every local entry and takes the shared generations as Redis has them now.
    async fn resync(&self) {
        let Some(shared) = &self.inner.shared else { return };
        shared.mark_subscribed(true);
        for ns in self.controls() {
            ns.clear_local();
            if let Some(generation) =
                shared.bounded("read a generation", shared.publish_timeout, shared.backend.generation(ns.name())).await
            {
                ns.reset_shared_generation(generation);
            }
        }
    }

    fn controls(&self) -> Vec<Arc<dyn Control>> {
        self.inner.namespaces.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// A new namespace, registered for stats and clears.
    pub fn namespace<K: CacheKey, V: CacheValue>(&self, spec: NamespaceSpec) -> Namespace<K, V> {
        self.build(spec, None)
    }

    /// A new namespace whose keys may stand for groups ([`CacheKey::is_group`]): invalidating a group drops
    /// every entry it covers, here and on every instance. Its values stay in this process.
    pub fn grouped_namespace<K: CacheKey, V: CacheValue>(&self, spec: NamespaceSpec) -> Namespace<K, V> {
        self.build_with(spec, None, true)
    }

    /// A new namespace whose capacity is a total weight, each value weighing `weigher(value)`.
    pub fn weighed_namespace<K: CacheKey, V: CacheValue>(
        &self,
        spec: NamespaceSpec,
        weigher: fn(&V) -> u32,
    ) -> Namespace<K, V> {
        self.build(spec, Some(weigher))
    }

    fn build<K: CacheKey, V: CacheValue>(
        &self,
        spec: NamespaceSpec,
        weigher: Option<fn(&V) -> u32>,
    ) -> Namespace<K, V> {
        self.build_with(spec, weigher, false)
    }

    fn build_with<K: CacheKey, V: CacheValue>(
        &self,
        spec: NamespaceSpec,
        weigher: Option<fn(&V) -> u32>,
        groups: bool,
    ) -> Namespace<K, V> {
        let counters = Arc::new(Counters::default());
        let evictions = counters.clone();
        let lifetime = Lifetime {
            ttl: spec.ttl,
            degraded_ttl: self.inner.degraded_ttl,
            healthy: self.inner.shared.as_ref().map(|s| s.healthy.clone()),
        };
        let mut builder = moka::future::Cache::builder()
            .name(spec.name)
            .max_capacity(spec.capacity)
            .expire_after(lifetime.clone())
            .eviction_listener(move |_key, _value, cause| {
                if matches!(cause, RemovalCause::Expired | RemovalCause::Size) {
                    bump(&evictions.evictions);
                }
            });
        if groups {
            builder = builder.support_invalidation_closures();
        }
        if let Some(weigher) = weigher {
            builder = builder.weigher(move |_key: &(u64, K), entry: &Arc<Entry<V>>| weigher(&entry.value));
        }
        let namespace = Namespace {
            inner: Arc::new(NamespaceInner {
                spec,
                local: builder.build(),
                lifetime,
                generation: AtomicU64::new(0),
                shared_generation: AtomicU64::new(0),
                invalidations: AtomicU64::new(0),
                counters,
                shared: self.inner.shared.clone(),
            }),
        };
        self.inner.namespaces.lock().unwrap_or_else(PoisonError::into_inner).push(Arc::new(namespace.clone()));
        namespace
    }

    /// The names of every namespace.
    pub fn names(&self) -> Vec<&'static str> {
        self.controls().iter().map(|ns| ns.name()).collect()
    }

    /// What every namespace did since start, per tier.
    pub fn stats(&self) -> Vec<CacheStats> {
        self.controls().iter().flat_map(|ns| ns.stats()).collect()
    }

    /// Whether there is a shared tier and whether it answers.
    pub fn shared_tier(&self) -> SharedTier {
        match &self.inner.shared {
            None => SharedTier::None,
            Some(shared) if shared.healthy.load(Ordering::Relaxed) => SharedTier::Up,
            Some(_) => SharedTier::Degraded,
        }
    }

    /// Clears one namespace by name, or all of them, here and on every instance; returns the names cleared.
    ///
    /// # Errors
    /// [`UnknownNamespace`] when `name` names none.
    pub async fn clear(&self, name: Option<&str>) -> Result<Vec<&'static str>, UnknownNamespace> {
        let controls = self.controls();
        let chosen: Vec<_> = controls.iter().filter(|ns| name.is_none_or(|n| n == ns.name())).collect();
        if chosen.is_empty() {
            return Err(UnknownNamespace(name.unwrap_or_default().to_owned()));
        }
        let mut cleared = Vec::with_capacity(chosen.len());
        for ns in chosen {
            ns.clear_local();
            if let Some(shared) = &self.inner.shared {
                let ns_name = ns.name();
                let work = async {
                    let generation = shared.backend.bump_generation(ns_name).await?;
                    ns.set_shared_generation(generation);
                    shared.backend.publish(&CacheEvent::Clear { namespace: ns_name.into(), generation }).await
                };
                shared.bounded("publish a clear", shared.publish_timeout, work).await;
            }
            cleared.push(ns.name());
        }
        Ok(cleared)
    }
}

#[cfg(test)]
mod tests;
