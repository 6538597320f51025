//! Rate limits: per client address for anonymous requests, per user for authenticated ones, and a stricter
//! limit per address on login, password recovery and password reset.
//!
//! In process, each class is a keyed GCRA limiter of `governor` (a burst of the per-minute quota, refilled
//! evenly over the minute); idle clients are swept out every `sweep_interval_secs` by the request that finds
//! the sweep due, so memory stays bounded by the clients of the last minute without a background task. With
//! `[redis]` configured the counters live in Redis instead, shared by every instance: a fixed one-minute
//! window per key (`INCR` + `EXPIRE` in one transaction, one round trip). When Redis fails, the request is
//! decided in process and Redis is tried again after a pause; the change is logged once each way.
//!
//! Answers carry `RateLimit-Limit`, `RateLimit-Remaining` and `RateLimit-Reset` (IETF draft); a refused request
//! gets 429 `rate_limited` with `Retry-After`.

use std::fmt;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use actix_web::dev::ServiceRequest;
use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::{HttpMessage, HttpResponse, ResponseError, web};
use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter as Gcra};
use rental_domain::UserId;

use super::HttpLayers;
use super::config::RateLimitConfig;
use crate::error::ApiError;
use crate::redis::SharedRedis;
use crate::state::AppState;

/// `RateLimit-Limit`: the quota of the window.
pub const RATELIMIT_LIMIT: HeaderName = HeaderName::from_static("ratelimit-limit");
/// `RateLimit-Remaining`: requests left in it.
pub const RATELIMIT_REMAINING: HeaderName = HeaderName::from_static("ratelimit-remaining");
/// `RateLimit-Reset`: seconds until the quota is whole again (after a refusal: until the next request may
/// pass).
pub const RATELIMIT_RESET: HeaderName = HeaderName::from_static("ratelimit-reset");

/// How long Redis is left alone after it failed.
const REDIS_PAUSE: Duration = Duration::from_secs(5);
/// The routes under the stricter limit.
const AUTH_ROUTES: [&str; 3] = ["/api/v1/auth/login", "/api/v1/auth/password-recovery", "/api/v1/auth/reset-password"];

type Keyed<K> = Gcra<K, DefaultKeyedStateStore<K>, DefaultClock, StateInformationMiddleware>;

/// Which limit a request falls under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// No valid access token: per client address.
    Anonymous,
    /// A valid access token: per user.
    User,
    /// Login, password recovery and reset: per client address, stricter.
    Auth,
}

impl Class {
    fn name(self) -> &'static str {
        match self {
            Self::Anonymous => "anon",
            Self::User => "user",
            Self::Auth => "auth",
        }
    }
}

/// Who is counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Key {
    /// A client address.
    Ip(IpAddr),
    /// A user.
    User(UserId),
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ip(ip) => write!(f, "{ip}"),
            Self::User(user) => write!(f, "{user}"),
        }
    }
}

/// The outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// The quota per minute.
    pub limit: u32,
    /// Requests left.
    pub remaining: u32,
    /// Seconds until the quota is whole again, or after a refusal until the next request may pass.
    pub reset: Duration,
    /// `Some(wait)` when the request is refused.
    pub retry_after: Option<Duration>,
}

impl Decision {
    /// Adds `RateLimit-Limit`, `RateLimit-Remaining` and `RateLimit-Reset`.
    pub fn write_headers(&self, headers: &mut HeaderMap) {
        let secs = self.reset.as_secs() + u64::from(self.reset.subsec_nanos() > 0);
        headers.insert(RATELIMIT_LIMIT, HeaderValue::from(self.limit));
        headers.insert(RATELIMIT_REMAINING, HeaderValue::from(self.remaining));
        headers.insert(RATELIMIT_RESET, HeaderValue::from(secs));
    }
}

/// One class's in-process limiter and quota.
struct Local<K: std::hash::Hash + Eq + Clone> {
    limiter: Keyed<K>,
    limit: u32,
    /// Time to refill one request.
    per_request: Duration,
}

impl<K: std::hash::Hash + Eq + Clone> Local<K> {
    fn new(per_minute: u32) -> Self {
        let limit = NonZeroU32::new(per_minute).unwrap_or(NonZeroU32::MIN);
        Self {
            limiter: Gcra::dashmap(Quota::per_minute(limit)).with_middleware::<StateInformationMiddleware>(),
            limit: limit.get(),
            per_request: Duration::from_secs(60) / limit.get(),
        }
    }

    fn check(&self, key: &K) -> Decision {
        match self.limiter.check_key(key) {
            Ok(state) => {
                let remaining = state.remaining_burst_capacity();
                let reset = self.per_request * self.limit.saturating_sub(remaining);
                Decision { limit: self.limit, remaining, reset, retry_after: None }
            }
            Err(not_until) => {
                let wait = not_until.wait_time_from(self.limiter.clock().now());
                Decision { limit: self.limit, remaining: 0, reset: wait, retry_after: Some(wait) }
            }
        }
    }

    fn sweep(&self) -> usize {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
        self.limiter.len()
    }
}

/// The limiter of every class, in process or shared through Redis.
pub struct RateLimiter {
    enabled: bool,
    anonymous: Local<IpAddr>,
    users: Local<UserId>,
    auth: Local<IpAddr>,
    redis: Option<SharedRedis>,
    /// Whether Redis failed last time (for logging the change once).
    redis_down: AtomicBool,
    /// Milliseconds after `started` before which Redis is not tried again.
    redis_retry_at: AtomicU64,
    /// Milliseconds after `started` when the next sweep is due.
    next_sweep: AtomicU64,
    sweep_every: Duration,
    started: Instant,
}

impl fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimiter")
            .field("enabled", &self.enabled)
            .field("limits", &(self.anonymous.limit, self.users.limit, self.auth.limit))
            .field("redis", &self.redis.is_some())
            .finish_non_exhaustive()
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

impl RateLimiter {
    /// The limiter of `config`, sharing its counters through `redis` when given.
    pub fn new(config: &RateLimitConfig, redis: Option<SharedRedis>) -> Self {
        let sweep_every = Duration::from_secs(config.sweep_interval_secs.max(1));
        Self {
            enabled: config.enabled,
            anonymous: Local::new(config.anonymous_per_minute),
            users: Local::new(config.user_per_minute),
            auth: Local::new(config.auth_per_minute),
            redis,
            redis_down: AtomicBool::new(false),
            redis_retry_at: AtomicU64::new(0),
            next_sweep: AtomicU64::new(millis(sweep_every)),
            sweep_every,
            started: Instant::now(),
        }
    }

    /// Whether requests are limited.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Whether counters are shared through Redis (when it answers).
    pub fn shared(&self) -> bool {
        self.redis.is_some()
    }

    /// Counts a request of `class` by `key` and decides.
    pub async fn check(&self, class: Class, key: Key) -> Decision {
        let now = millis(self.started.elapsed());
        if let Some(redis) = &self.redis
            && now >= self.redis_retry_at.load(Ordering::Relaxed)
        {
            match self.check_redis(redis, class, key).await {
                Ok(decision) => {
                    if self.redis_down.swap(false, Ordering::Relaxed) {
                        tracing::info!("Redis answers again: rate limits are shared across instances again");
                    }
                    return decision;
                }
                Err(err) => {
                    self.redis_retry_at.store(now + millis(REDIS_PAUSE), Ordering::Relaxed);
                    if !self.redis_down.swap(true, Ordering::Relaxed) {
                        tracing::warn!(error = %err, "Redis failed: rate limits are counted in this process until it answers");
                    }
                }
            }
        }
        self.check_local(class, key, now)
    }

    fn check_local(&self, class: Class, key: Key, now_ms: u64) -> Decision {
        let due = self.next_sweep.load(Ordering::Relaxed);
        if now_ms >= due
            && self
                .next_sweep
                .compare_exchange(due, now_ms + millis(self.sweep_every), Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            let kept = self.anonymous.sweep() + self.users.sweep() + self.auth.sweep();
            tracing::debug!(kept, "swept idle rate-limit counters");
        }
        match (class, key) {
            (Class::User, Key::User(user)) => self.users.check(&user),
            (Class::Auth, Key::Ip(ip)) => self.auth.check(&ip),
            (_, Key::Ip(ip)) => self.anonymous.check(&ip),
            // A user key only comes with the user class; count it as a user all the same.
            (_, Key::User(user)) => self.users.check(&user),
        }
    }

    async fn check_redis(&self, redis: &SharedRedis, class: Class, key: Key) -> ::redis::RedisResult<Decision> {
        let limit = match class {
            Class::Anonymous => self.anonymous.limit,
            Class::User => self.users.limit,
            Class::Auth => self.auth.limit,
        };
        let since_epoch = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        let window = since_epoch.as_secs() / 60;
        let reset = Duration::from_secs((window + 1) * 60).saturating_sub(since_epoch);
        let counter = format!("{}:rl:{}:{key}:{window}", redis.prefix(), class.name());
        let mut connection = redis.connection();
        let (count,): (u64,) = ::redis::pipe()
            .atomic()
            .incr(&counter, 1)
            .expire(&counter, 120)
            .ignore()
            .query_async(&mut connection)
            .await?;
        let used = u32::try_from(count).unwrap_or(u32::MAX);
        Ok(if used <= limit {
            Decision { limit, remaining: limit - used, reset, retry_after: None }
        } else {
            Decision { limit, remaining: 0, reset, retry_after: Some(reset) }
        })
    }

    /// Counters held in process (after the last sweep), for tests and diagnostics.
    pub fn tracked_keys(&self) -> usize {
        self.anonymous.limiter.len() + self.users.limiter.len() + self.auth.limiter.len()
    }
}

/// Whether `method path` is under the stricter login/recovery limit.
pub fn is_auth_route(method: &Method, path: &str) -> bool {
    method == Method::POST && AUTH_ROUTES.iter().any(|route| path.trim_end_matches('/') == *route)
}

/// The principal the rate limiter authenticated, so that the `Auth` extractor does not check the token again.
#[derive(Debug, Clone)]
pub struct Authenticated(pub rental_service::Principal);

/// Checks the bearer token of `req`, if any, keeping the principal in the request for the extractor. A
/// missing or invalid token gives `None`: the request is then counted by address, and the extractor reports
/// the problem if the route needs a caller.
async fn authenticate(req: &ServiceRequest) -> Option<UserId> {
    let state = req.app_data::<web::Data<AppState>>()?.clone();
    req.headers().get(actix_web::http::header::AUTHORIZATION)?;
    let token = crate::extract::bearer(req.request()).ok()?;
    let principal = state.services.auth.authenticate(&token).await.ok()?;
    let user = principal.user_id;
    req.extensions_mut().insert(Authenticated(principal));
    Some(user)
}

/// Counts `req` under its class. `None` when limits are off; a decision with `retry_after` means 429: answer
/// with [`refusal`]. Either way the decision's headers go on the answer ([`Decision::write_headers`]).
pub async fn decide(layers: &HttpLayers, req: &ServiceRequest) -> Option<Decision> {
    let limiter = layers.limiter();
    if !limiter.enabled() {
        return None;
    }
    let ip = layers.proxies().client_ip(req);
    let (class, key) = if is_auth_route(req.method(), req.path()) {
        (Class::Auth, Key::Ip(ip))
    } else if let Some(user) = authenticate(req).await {
        (Class::User, Key::User(user))
    } else {
        (Class::Anonymous, Key::Ip(ip))
    };
    let decision = limiter.check(class, key).await;
    if decision.retry_after.is_some() {
        tracing::debug!(class = class.name(), key = %key, "rate limited");
    }
    Some(decision)
}

/// The 429 `rate_limited` answer of a refused `decision`, with `Retry-After`.
pub fn refusal(decision: &Decision) -> HttpResponse {
    ApiError::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", "too many requests; try again later")
        .with_retry_after(decision.retry_after.unwrap_or_default())
        .error_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(per_minute: u32) -> RateLimitConfig {
        RateLimitConfig {
            anonymous_per_minute: per_minute,
            user_per_minute: per_minute * 2,
            auth_per_minute: 2,
            ..RateLimitConfig::default()
        }
    }

    #[actix_web::test]
    async fn each_key_has_its_own_quota() {
        let limiter = RateLimiter::new(&config(3), None);
        let a = Key::Ip("192.0.2.1".parse().unwrap());
        let b = Key::Ip("192.0.2.2".parse().unwrap());
        for expected in [2, 1, 0] {
            let decision = limiter.check(Class::Anonymous, a).await;
            assert_eq!((decision.limit, decision.remaining, decision.retry_after), (3, expected, None));
        }
        let refused = limiter.check(Class::Anonymous, a).await;
        assert!(refused.retry_after.is_some_and(|wait| wait > Duration::ZERO && wait <= Duration::from_secs(20)));
        assert_eq!(limiter.check(Class::Anonymous, b).await.retry_after, None, "another address is not affected");
        // The stricter class counts apart from the general one.
        assert_eq!(limiter.check(Class::Auth, a).await.limit, 2);
    }
}
