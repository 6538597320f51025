//! What the namespaces count: hits, misses, loads and evictions per tier, read by monitoring as [`CacheStats`].

use std::sync::atomic::{AtomicU64, Ordering};

/// What one namespace did since start, per tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheStats {
    /// The namespace: `users`, `user_lists`, `product_pages`, `dashboard`, ...
    pub name: &'static str,
    /// `local` (moka, in this process) or `shared` (the backend, Redis).
    pub tier: &'static str,
    /// Lookups answered by this tier.
    pub hits: u64,
    /// Lookups this tier could not answer.
    pub misses: u64,
    /// Values loaded from the database because no tier held them (for `local`; 0 for `shared`).
    pub loads: u64,
    /// Of those loads, the ones that replaced an entry still being served (refresh-ahead; 0 for `shared`).
    pub refreshes: u64,
    /// Entries removed because of size or age (not invalidations).
    pub evictions: u64,
    /// Entries held now (moka's estimate; 0 for `shared`, which is not counted).
    pub entries: u64,
}

impl CacheStats {
    /// `hits / (hits + misses)`, `None` before the first lookup.
    pub fn hit_rate(&self) -> Option<f64> {
        let lookups = self.hits + self.misses;
        (lookups > 0).then(|| self.hits as f64 / lookups as f64)
    }
}

/// The counters of one namespace, bumped on its paths and read into [`CacheStats`].
#[derive(Debug, Default)]
pub(super) struct Counters {
    pub(super) hits: AtomicU64,
    pub(super) misses: AtomicU64,
    pub(super) loads: AtomicU64,
    pub(super) refreshes: AtomicU64,
    pub(super) evictions: AtomicU64,
    pub(super) shared_hits: AtomicU64,
    pub(super) shared_misses: AtomicU64,
}

pub(super) fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

pub(super) fn read(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}
