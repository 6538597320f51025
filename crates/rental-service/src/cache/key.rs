//! What a namespace is keyed by ([`CacheKey`]: a typed key with a canonical text form) and what it holds
//! ([`CacheValue`]: a value, with a byte encoding when it may be shared with other instances).

use std::borrow::Cow;
use std::hash::Hash;
use std::sync::Arc;

use rental_domain::UserId;
use uuid::Uuid;

/// A typed cache key with a canonical text form, used for the shared tier and for invalidations sent to
/// other instances.
pub trait CacheKey: Clone + Eq + Hash + Send + Sync + 'static {
    /// The canonical form: equal keys give equal text, different keys different text.
    fn canonical(&self) -> Cow<'_, str>;
    /// The key back from its canonical form (for invalidations received from other instances).
    fn from_canonical(text: &str) -> Option<Self>;
    /// Whether invalidating `self` drops `other` too: a key may stand for a group of keys (every window of
    /// one product's availability). Equality unless the key type has groups.
    fn covers(&self, other: &Self) -> bool {
        self == other
    }
    /// Whether this key stands for a group of keys (see [`CacheKey::covers`]).
    fn is_group(&self) -> bool {
        false
    }
}

impl CacheKey for UserId {
    fn canonical(&self) -> Cow<'_, str> {
        Cow::Owned(self.to_string())
    }
    fn from_canonical(text: &str) -> Option<Self> {
        text.parse().ok()
    }
}

impl CacheKey for Uuid {
    fn canonical(&self) -> Cow<'_, str> {
        Cow::Owned(self.to_string())
    }
    fn from_canonical(text: &str) -> Option<Self> {
        text.parse().ok()
    }
}

/// A key built by the service from validated input (a list query in canonical form, a date range).
impl CacheKey for String {
    fn canonical(&self) -> Cow<'_, str> {
        Cow::Borrowed(self)
    }
    fn from_canonical(text: &str) -> Option<Self> {
        Some(text.to_owned())
    }
}

/// The only entry of a namespace that holds one value (the dashboard).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Singleton;

impl CacheKey for Singleton {
    fn canonical(&self) -> Cow<'_, str> {
        Cow::Borrowed("-")
    }
    fn from_canonical(text: &str) -> Option<Self> {
        (text == "-").then_some(Self)
    }
}

/// A cached value, and whether (and how) it can be shared with other instances through the backend.
pub trait CacheValue: Clone + Send + Sync + 'static {
    /// Whether values go to the shared tier (then `encode` and `decode` must be implemented).
    const SHARED: bool = false;
    /// The bytes stored in the shared tier; `None` keeps the value in this process only.
    fn encode(&self) -> Option<Vec<u8>> {
        None
    }
    /// The value back from the shared tier's bytes; `None` when they cannot be read (then the value is loaded).
    fn decode(bytes: &[u8]) -> Option<Self> {
        let _ = bytes;
        None
    }
}

/// JSON bytes served as they are: cached encoded, shared as they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonBytes(pub Arc<[u8]>);

impl AsRef<[u8]> for JsonBytes {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl CacheValue for JsonBytes {
    const SHARED: bool = true;
    fn encode(&self) -> Option<Vec<u8>> {
        Some(self.0.to_vec())
    }
    fn decode(bytes: &[u8]) -> Option<Self> {
        Some(Self(Arc::from(bytes)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_through_their_canonical_form() {
        let id = UserId::new();
        assert_eq!(UserId::from_canonical(&id.canonical()), Some(id));
        assert_eq!(Singleton::from_canonical(&Singleton.canonical()), Some(Singleton));
        assert_eq!(String::from_canonical("o:1:20|s:name:asc").as_deref(), Some("o:1:20|s:name:asc"));
    }
}
