use std::fmt;

use serde::{Deserialize, Serialize, Serializer};

/// A secret string whose `Debug` and `Serialize` never show it.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself, for the code that must use it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether no secret was given.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() { "<unset>" } else { "<redacted>" })
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(if self.0.is_empty() { "" } else { "<redacted>" })
    }
}

/// Authentication settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// HMAC key of the access tokens (HS256), at least 32 bytes.
    pub jwt_secret: Secret,
    /// `iss` claim of the tokens.
    pub issuer: String,
    /// Lifetime of an access token.
    pub access_token_ttl_secs: u64,
    /// Lifetime of a refresh token.
    pub refresh_token_ttl_secs: u64,
    /// Argon2id memory cost in KiB (OWASP: 19,456).
    pub argon2_memory_kib: u32,
    /// Argon2id passes (OWASP: 2).
    pub argon2_iterations: u32,
    /// Argon2id lanes.
    pub argon2_parallelism: u32,
    /// Hashes computed at once; unset means half the CPU cores (at least one), which leaves the other half
    /// to serve requests while a burst of logins queues.
    pub max_concurrent_hashes: Option<usize>,
    /// Requests that may wait for a hashing permit; past it a login (or password change) is refused at once with
    /// 503 and `Retry-After` instead of queueing. Unset means 64 per permit, about two seconds of argon2 work at
    /// the default cost: a storm of logins cannot pile up thousands of pending requests that go on hashing long
    /// after their clients gave up.
    pub max_waiting_hashes: Option<usize>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            jwt_secret: Secret::default(),
            issuer: "rental-api".into(),
            access_token_ttl_secs: 15 * 60,
            refresh_token_ttl_secs: 30 * 24 * 3600,
            argon2_memory_kib: 19 * 1024,
            argon2_iterations: 2,
            argon2_parallelism: 1,
            max_concurrent_hashes: None,
            max_waiting_hashes: None,
        }
    }
}

/// Cache settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CacheConfig {
    /// How long an authenticated user stays cached; every write to the user evicts it at once.
    pub user_ttl_secs: u64,
    /// Most users kept.
    pub user_capacity: u64,
    /// How long a page of the user list or of the product list stays cached; 0 turns both caches off. Every
    /// write to any user (to the catalogue) clears the user (product) pages at once on this instance; other
    /// instances see the change within this time. Product pages filtered by availability are not cleared by
    /// orders: they may be this old, and the reservation itself is what decides.
    pub list_ttl_secs: u64,
    /// Most list pages kept.
    pub list_capacity: u64,
    /// Most memory for cached product-list pages, reckoned at 2 KiB per product of a page (its decoded rows
    /// and their JSON). The product list uses `list_ttl_secs` too.
    pub product_list_max_bytes: u64,
    /// How long the category list stays cached, in seconds (at least 1); every catalogue write clears it on
    /// every instance.
    pub catalogue_ttl_secs: u64,
    /// How long the staff dashboard (`GET /api/v1/dashboard/stats`) is served from the cache, in seconds
    /// (at least 1).
    pub dashboard_ttl_secs: u64,
    /// Redis as the shared second tier and for cross-instance invalidation (`redis://` or `rediss://`);
    /// empty: this process's caches only. Used by the binary when built with the `redis` feature of this
    /// crate. May be the same server as the rate limits' `redis.url`. Redacted when printed.
    pub redis_url: Secret,
    /// Prefix of every key and channel the shared tier uses.
    pub redis_key_prefix: String,
    /// Bound on each read or write of a cached value in Redis, in milliseconds (publishing an invalidation
    /// may take ten times this): a slow Redis must not slow the requests down.
    pub redis_timeout_ms: u64,
    /// Bound on each attempt to connect to Redis, in milliseconds.
    pub redis_connect_timeout_ms: u64,
    /// How often each instance publishes a heartbeat on the invalidation channel, in milliseconds; a
    /// subscription that hears nothing for three heartbeats (a silent hang) is dropped and renewed, and the
    /// tier is `degraded` meanwhile.
    pub redis_heartbeat_ms: u64,
    /// How long one product's availability over a window is cached, in seconds (at least 1); every
    /// reservation, confirmation, cancellation, pickup, return or maintenance block of the product evicts it
    /// at once on every instance, and so does every catalogue write. The TTL only bounds how far "now" (the
    /// earliest suggested start) may lag.
    pub availability_ttl_secs: u64,
    /// Most availability answers kept.
    pub availability_capacity: u64,
    /// How long a product's detail is cached, in seconds (at least 1); every catalogue write clears it on
    /// every instance.
    pub product_ttl_secs: u64,
    /// Most product details kept.
    pub product_capacity: u64,
    /// How long an analytics report (revenue, popular products, status distribution, utilization) for one
    /// range is served from the cache, in seconds (at least 1); reports are not evicted by writes.
    pub analytics_ttl_secs: u64,
    /// Longest life of a local entry while Redis is unreachable (invalidations of other instances may be
    /// missed then), in milliseconds.
    pub degraded_ttl_ms: u64,
    /// Refresh-ahead of the caches that only expire (user and product list pages, dashboard, analytics): the
    /// first lookup of an entry past this share of its TTL reloads it while the other lookups are still served
    /// the entry, so a page in steady use never expires under its readers. Percent, 1 to 99; 0 turns it off.
    /// Entries are never kept past their TTL either way.
    pub refresh_ahead_percent: u64,
}

impl CacheConfig {
    /// `spec` with this configuration's refresh-ahead point.
    pub fn refresh_ahead(&self, spec: crate::cache::NamespaceSpec) -> crate::cache::NamespaceSpec {
        match self.refresh_ahead_percent {
            1..=99 => spec.refreshed_after(spec.ttl.mul_f64(self.refresh_ahead_percent as f64 / 100.0)),
            _ => spec,
        }
    }
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            user_ttl_secs: 60,
            user_capacity: 100_000,
            list_ttl_secs: 5,
            list_capacity: 10_000,
            product_list_max_bytes: 64 * 1024 * 1024,
            catalogue_ttl_secs: 300,
            dashboard_ttl_secs: 60,
            redis_url: Secret::default(),
            redis_key_prefix: "rental".into(),
            redis_timeout_ms: 10,
            redis_connect_timeout_ms: 500,
            degraded_ttl_ms: 1_000,
            redis_heartbeat_ms: 1_000,
            availability_ttl_secs: 30,
            availability_capacity: 10_000,
            product_ttl_secs: 300,
            product_capacity: 10_000,
            analytics_ttl_secs: 60,
            refresh_ahead_percent: 75,
        }
    }
}

/// Everything the services are configured with.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServiceConfig {
    /// Authentication.
    pub auth: AuthConfig,
    /// Caches.
    pub cache: CacheConfig,
    /// Rentals: tax.
    pub rentals: crate::RentalConfig,
    /// The jobs the services enqueue: attempts, the settlement's delay.
    pub jobs: crate::JobsConfig,
    /// `Idempotency-Key` records: how long they answer replays.
    pub idempotency: crate::IdempotencyConfig,
    /// Deposits held on cards: how early a hold is placed, when a held one is flagged before it lapses.
    pub deposits: crate::DepositConfig,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let config = AuthConfig { jwt_secret: Secret::new("super-secret-value"), ..AuthConfig::default() };
        assert!(!format!("{config:?}").contains("super-secret-value"));
        let json = serde_json::to_string(&config).unwrap_or_default();
        assert!(!json.contains("super-secret-value"), "{json}");
        assert!(json.contains("<redacted>"));
    }
}
