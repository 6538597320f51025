//! The cache of availability answers: one entry per product and window, and per product a group key that
//! evicts every window of it at once (on every instance) after each write that changes what the product
//! holds.

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::AvailabilityView;
use crate::cache::{CacheKey, CacheValue, Namespace};

/// The namespace of availability answers.
/// `None` caches "no such active product" (catalogue writes clear it).
pub type AvailabilityCache = Namespace<AvailabilityKey, Arc<Option<AvailabilityView>>>;

/// Availability answers stay in the process that computed them (evictions reach every instance).
impl CacheValue for Arc<Option<AvailabilityView>> {}

/// One product's availability over `[from, to)` for `quantity`, or (without a window) every window of the
/// product, for eviction.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AvailabilityKey {
    product_id: Uuid,
    window: Option<(DateTime<Utc>, DateTime<Utc>, i64)>,
}

impl AvailabilityKey {
    /// The answer for one window.
    pub fn window(product_id: Uuid, from: DateTime<Utc>, to: DateTime<Utc>, quantity: i64) -> Self {
        Self { product_id, window: Some((from, to, quantity)) }
    }

    /// Every window of `product_id`.
    pub fn product(product_id: Uuid) -> Self {
        Self { product_id, window: None }
    }
}

impl CacheKey for AvailabilityKey {
    /// `{product}` for the group, `{product}|{from µs}|{to µs}|{quantity}` for one window.
    fn canonical(&self) -> Cow<'_, str> {
        match self.window {
            None => Cow::Owned(self.product_id.to_string()),
            Some((from, to, quantity)) => Cow::Owned(format!(
                "{}|{}|{}|{quantity}",
                self.product_id,
                from.timestamp_micros(),
                to.timestamp_micros()
            )),
        }
    }

    fn from_canonical(text: &str) -> Option<Self> {
        let mut parts = text.split('|');
        let product_id = parts.next()?.parse().ok()?;
        let Some(from) = parts.next() else { return Some(Self::product(product_id)) };
        let from = DateTime::from_timestamp_micros(from.parse().ok()?)?;
        let to = DateTime::from_timestamp_micros(parts.next()?.parse().ok()?)?;
        let quantity = parts.next()?.parse().ok()?;
        parts.next().is_none().then_some(Self::window(product_id, from, to, quantity))
    }

    fn covers(&self, other: &Self) -> bool {
        self == other || (self.window.is_none() && self.product_id == other.product_id)
    }

    fn is_group(&self) -> bool {
        self.window.is_none()
    }
}

/// Evicts every cached window of `products`, here and on every instance.
pub async fn evict(cache: Option<&AvailabilityCache>, products: &BTreeSet<Uuid>) {
    let Some(cache) = cache else { return };
    for product_id in products {
        cache.invalidate(&AvailabilityKey::product(*product_id)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_a_product_covers_its_windows_only() {
        let (p, q) = (Uuid::now_v7(), Uuid::now_v7());
        let from = DateTime::from_timestamp_micros(1_800_000_000_000_001).unwrap();
        let to = DateTime::from_timestamp_micros(1_800_086_400_000_000).unwrap();
        let window = AvailabilityKey::window(p, from, to, 2);
        assert_eq!(AvailabilityKey::from_canonical(&window.canonical()), Some(window.clone()));
        let group = AvailabilityKey::product(p);
        assert_eq!(AvailabilityKey::from_canonical(&group.canonical()), Some(group.clone()));
        assert!(group.is_group() && !window.is_group());
        assert!(group.covers(&window));
        assert!(!AvailabilityKey::product(q).covers(&window));
        assert!(!window.covers(&AvailabilityKey::window(p, from, to, 3)));
        assert_eq!(AvailabilityKey::from_canonical("not-a-uuid"), None);
        assert_eq!(AvailabilityKey::from_canonical(&format!("{}|1|2|3|4", p)), None);
    }
}
