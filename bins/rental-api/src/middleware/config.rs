//! The `[http]` settings: timeouts, rate limits, CORS, compression, security headers and trusted proxies.

use serde::{Deserialize, Serialize};

use super::routes::RoutePattern;

/// The HTTP middleware settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// Proxies (addresses or CIDR blocks) whose `X-Forwarded-For` is believed; empty: the peer address is the
    /// client.
    pub trusted_proxies: Vec<String>,
    /// Request timeouts.
    pub timeout: TimeoutConfig,
    /// Rate limits.
    pub rate_limit: RateLimitConfig,
    /// Cross-origin requests.
    pub cors: CorsConfig,
    /// Response compression.
    pub compression: CompressionConfig,
    /// Security headers.
    pub headers: HeadersConfig,
    /// Body limits per route.
    pub body_limit: BodyLimitConfig,
}

/// A route with a body limit of its own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteBodyLimit {
    /// `[METHOD ]/path`, with `{param}` segments and a final `*` for any rest.
    pub route: String,
    /// Largest body, in bytes.
    pub bytes: usize,
}

/// Body limits beyond `server.json_limit_bytes` (every route) and `server.bulk_json_limit_bytes` (the bulk
/// import).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BodyLimitConfig {
    /// Overrides, the first matching route wins.
    pub routes: Vec<RouteBodyLimit>,
}

/// A route with a timeout of its own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteTimeout {
    /// `[METHOD ]/path`, with `{param}` segments and a final `*` for any rest.
    pub route: String,
    /// Milliseconds.
    pub ms: u64,
}

/// How long a request may take until its response starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TimeoutConfig {
    /// Milliseconds; 0 turns the timeout off.
    pub default_ms: u64,
    /// Overrides, the first matching route wins.
    pub routes: Vec<RouteTimeout>,
}

impl Default for TimeoutConfig {
    fn default() -> Self {
        Self {
            default_ms: 30_000,
            routes: vec![
                RouteTimeout { route: "POST /api/v1/users/bulk".into(), ms: 300_000 },
                RouteTimeout { route: "GET /api/v1/exports/*".into(), ms: 300_000 },
            ],
        }
    }
}

/// Requests per minute, per client address or per user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Whether requests are limited at all.
    pub enabled: bool,
    /// Requests without a valid access token, per client address.
    pub anonymous_per_minute: u32,
    /// Requests with a valid access token, per user.
    pub user_per_minute: u32,
    /// Login, password recovery and password reset, per client address (guessing passwords and flooding
    /// mailboxes).
    pub auth_per_minute: u32,
    /// Seconds between sweeps of the in-process counters of idle clients.
    pub sweep_interval_secs: u64,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            anonymous_per_minute: 100,
            user_per_minute: 600,
            auth_per_minute: 10,
            sweep_interval_secs: 60,
        }
    }
}

/// Cross-origin resource sharing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CorsConfig {
    /// Origins allowed to call the API from a browser (`https://app.example.com`), or `["*"]` for any;
    /// empty: no cross-origin access.
    pub allowed_origins: Vec<String>,
    /// Whether browsers may send cookies and `Authorization` credentials; not with `*`.
    pub allow_credentials: bool,
    /// Seconds a browser may cache a preflight answer.
    pub max_age_secs: u32,
}

impl Default for CorsConfig {
    fn default() -> Self {
        Self { allowed_origins: Vec::new(), allow_credentials: false, max_age_secs: 3600 }
    }
}

/// Response compression (gzip and brotli, as the client accepts).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CompressionConfig {
    /// Whether responses are compressed at all.
    pub enabled: bool,
    /// Smaller bodies are sent as they are.
    pub min_bytes: usize,
    /// Whether streamed bodies (the CSV exports) are compressed.
    pub streams: bool,
}

impl Default for CompressionConfig {
    fn default() -> Self {
        Self { enabled: true, min_bytes: 1024, streams: true }
    }
}

/// Security headers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HeadersConfig {
    /// Whether clients reach the server over TLS (directly or through a TLS-terminating proxy): sends
    /// `Strict-Transport-Security`.
    pub behind_tls: bool,
    /// `max-age` of `Strict-Transport-Security`.
    pub hsts_max_age_secs: u64,
    /// `Content-Security-Policy`; empty: none sent.
    pub content_security_policy: String,
}

/// Same-origin scripts, styles, images and fetches only: enough for the Swagger UI at `/docs`, which is served
/// from the binary and has no inline script (its styles are set inline, its icons are `data:` images).
pub const DEFAULT_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
     img-src 'self' data:; connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'self'; \
     frame-ancestors 'none'";

impl Default for HeadersConfig {
    fn default() -> Self {
        Self { behind_tls: false, hsts_max_age_secs: 31_536_000, content_security_policy: DEFAULT_CSP.into() }
    }
}

impl HttpConfig {
    /// Checks the values, naming the key at fault.
    ///
    /// # Errors
    /// The message of the first invalid setting.
    pub fn validate(&self) -> Result<(), String> {
        super::client_ip::TrustedProxies::parse(&self.trusted_proxies)?;
        for (i, route) in self.timeout.routes.iter().enumerate() {
            RoutePattern::parse(&route.route).map_err(|e| format!("http.timeout.routes[{i}].route: {e}"))?;
            if route.ms == 0 {
                return Err(format!("http.timeout.routes[{i}].ms must be positive"));
            }
        }
        for (i, route) in self.body_limit.routes.iter().enumerate() {
            RoutePattern::parse(&route.route).map_err(|e| format!("http.body_limit.routes[{i}].route: {e}"))?;
            if route.bytes == 0 {
                return Err(format!("http.body_limit.routes[{i}].bytes must be positive"));
            }
        }
        let limits = &self.rate_limit;
        for (key, value) in [
            ("anonymous_per_minute", limits.anonymous_per_minute),
            ("user_per_minute", limits.user_per_minute),
            ("auth_per_minute", limits.auth_per_minute),
        ] {
            if limits.enabled && value == 0 {
                return Err(format!(
                    "http.rate_limit.{key} must be positive (turn the limits off with http.rate_limit.enabled = false)"
                ));
            }
        }
        if limits.sweep_interval_secs == 0 {
            return Err("http.rate_limit.sweep_interval_secs must be positive".into());
        }
        super::cors::validate(&self.cors)?;
        super::headers::SecurityHeaders::new(&self.headers)?;
        Ok(())
    }
}
