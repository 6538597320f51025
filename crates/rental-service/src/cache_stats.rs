//! Hit and miss counters of the services' caches, for monitoring.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Lookups of one cache, counted with relaxed atomics.
#[derive(Debug, Default)]
pub(crate) struct CacheCounters {
    hits: AtomicU64,
    misses: AtomicU64,
}

impl CacheCounters {
    /// Counts one lookup: a miss when `loaded` was set by the loader (moka runs it only on a miss, and
    /// only for one of several concurrent callers, so the others count as hits: they were answered
    /// without a database read of their own).
    pub(crate) fn count(&self, loaded: &AtomicBool) {
        if loaded.load(Ordering::Relaxed) {
            self.misses.fetch_add(1, Ordering::Relaxed);
        } else {
            self.hits.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub(crate) fn stats(&self, name: &'static str, entries: u64) -> CacheStats {
        CacheStats {
            name,
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            entries,
        }
    }
}

/// What one of the services' caches did since start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheStats {
    /// `users` (users by id, for authentication), `user_lists` or `product_pages`.
    pub name: &'static str,
    /// Lookups answered from the cache.
    pub hits: u64,
    /// Lookups that read the database.
    pub misses: u64,
    /// Entries held now (moka's estimate).
    pub entries: u64,
}
