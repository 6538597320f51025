//! The HTTP middleware stack beyond request ids and 405s: request timeouts, rate limits, CORS, compression,
//! security headers and body limits, configured by the `[http]` section and validated at start-up.
//!
//! [`HttpLayers`] is built once per process (in `serve`) and shared by every actix worker, so that the rate
//! limiter's counters are per process, not per worker. Order, outermost first (see `app::build_with`):
//! request context → timeout → security headers → CORS → compression → rate limit → body limit → 405 →
//! routes, all but the request context in one layer ([`stack`]). The timeout is outermost so that it bounds
//! everything the request waits for, the token check of the rate limiter included; CORS is outside the rate
//! limiter so that preflights are never counted and 429s carry the CORS headers a browser needs to read them.

pub mod body_limit;
pub mod client_ip;
pub mod compress;
pub mod config;
pub mod cors;
pub mod headers;
pub mod rate_limit;
pub mod routes;
pub mod stack;
pub mod timeout;

use std::sync::Arc;

pub use config::HttpConfig;

use self::client_ip::TrustedProxies;
use self::cors::CorsPolicy;
use self::headers::SecurityHeaders;
use self::rate_limit::RateLimiter;
use self::routes::RoutePattern;
use self::timeout::Timeouts;

/// The runtime state of the middleware, built from a validated [`HttpConfig`]. Cheap to clone.
#[derive(Debug, Clone)]
pub struct HttpLayers(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    config: HttpConfig,
    proxies: TrustedProxies,
    timeouts: Timeouts,
    limiter: RateLimiter,
    headers: SecurityHeaders,
    cors: Option<CorsPolicy>,
    body_routes: Vec<(RoutePattern, usize)>,
}

impl Default for HttpLayers {
    /// The layers of the built-in defaults, with the limiter in process. The defaults are valid (a test checks
    /// it); were a part not, it would be left out rather than fail here.
    fn default() -> Self {
        let config = HttpConfig::default();
        Self(Arc::new(Inner {
            proxies: TrustedProxies::default(),
            timeouts: Timeouts::new(&config.timeout).unwrap_or_default(),
            limiter: RateLimiter::new(&config.rate_limit, None),
            headers: SecurityHeaders::new(&config.headers).unwrap_or_default(),
            cors: CorsPolicy::new(&config.cors),
            body_routes: Vec::new(),
            config,
        }))
    }
}

impl HttpLayers {
    /// The layers of `config`, with the rate limiter shared through `redis` when given.
    ///
    /// # Errors
    /// A message naming the key of the first invalid setting (the same check as [`HttpConfig::validate`]).
    pub fn new(config: &HttpConfig, redis: Option<crate::redis::SharedRedis>) -> Result<Self, String> {
        config.validate()?;
        Ok(Self(Arc::new(Inner {
            proxies: TrustedProxies::parse(&config.trusted_proxies)?,
            timeouts: Timeouts::new(&config.timeout)?,
            limiter: RateLimiter::new(&config.rate_limit, redis),
            headers: SecurityHeaders::new(&config.headers)?,
            cors: CorsPolicy::new(&config.cors),
            body_routes: config
                .body_limit
                .routes
                .iter()
                .filter_map(|route| RoutePattern::parse(&route.route).ok().map(|pattern| (pattern, route.bytes)))
                .collect(),
            config: config.clone(),
        })))
    }

    /// The configuration the layers were built from.
    pub fn config(&self) -> &HttpConfig {
        &self.0.config
    }

    /// The trusted proxies, for finding the client's address.
    pub fn proxies(&self) -> &TrustedProxies {
        &self.0.proxies
    }

    /// The request timeouts.
    pub fn timeouts(&self) -> &Timeouts {
        &self.0.timeouts
    }

    /// The rate limiter.
    pub fn limiter(&self) -> &RateLimiter {
        &self.0.limiter
    }

    /// The security headers.
    pub fn headers(&self) -> &SecurityHeaders {
        &self.0.headers
    }

    /// The configured body limits per route (`http.body_limit.routes`), parsed.
    pub fn body_routes(&self) -> &[(RoutePattern, usize)] {
        &self.0.body_routes
    }

    /// The CORS policy; `None` when no origin may call.
    pub fn cors(&self) -> Option<&CorsPolicy> {
        self.0.cors.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_valid() {
        let config = HttpConfig::default();
        assert_eq!(config.validate(), Ok(()));
        let layers = HttpLayers::new(&config, None).unwrap();
        let default = HttpLayers::default();
        assert_eq!(format!("{:?}", layers.timeouts()), format!("{:?}", default.timeouts()));
        assert_eq!(format!("{:?}", layers.headers()), format!("{:?}", default.headers()));
    }
}
