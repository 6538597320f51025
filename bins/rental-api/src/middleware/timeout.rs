//! Request timeouts: 504 `request_timeout` when the response has not started in time.
//!
//! On expiry the future of the request is dropped, and with it the handler's work: an open database
//! transaction is rolled back when dropped, a pending query is abandoned. Work already handed to another task
//! (a password hash on the blocking pool, an enqueued job) is not undone, and a streamed body (the CSV
//! exports) is not bounded once its first bytes are out: the timeout is on the time to the response head.
//!
//! The request cannot be kept to build the answer (actix must own it alone until it has routed it), so the
//! 504 travels as an error carrying its finished response: the envelope and `X-Request-Id` are filled in here,
//! inside the request's scope, and the security headers and CORS marks are added here too since the outer
//! layers only see an error.

use std::time::Duration;

use actix_web::error::InternalError;
use actix_web::http::header::HeaderValue;
use actix_web::http::{Method, StatusCode, Uri};
use actix_web::{Error, ResponseError};

use super::HttpLayers;
use super::config::TimeoutConfig;
use super::routes::RoutePattern;
use crate::error::ApiError;
use crate::request_id::{self, X_REQUEST_ID};

/// The default timeout and the per-route ones.
#[derive(Debug, Clone, Default)]
pub struct Timeouts {
    default: Option<Duration>,
    routes: Vec<(RoutePattern, Duration)>,
}

impl Timeouts {
    /// The timeouts of `config`.
    ///
    /// # Errors
    /// A message naming the route pattern that cannot be parsed.
    pub fn new(config: &TimeoutConfig) -> Result<Self, String> {
        let routes = config
            .routes
            .iter()
            .enumerate()
            .map(|(i, route)| {
                RoutePattern::parse(&route.route)
                    .map(|pattern| (pattern, Duration::from_millis(route.ms)))
                    .map_err(|e| format!("http.timeout.routes[{i}].route: {e}"))
            })
            .collect::<Result<_, _>>()?;
        let default = (config.default_ms > 0).then(|| Duration::from_millis(config.default_ms));
        Ok(Self { default, routes })
    }

    /// The timeout of a request, `None` for none.
    pub fn of(&self, method: &Method, path: &str) -> Option<Duration> {
        self.routes.iter().find(|(pattern, _)| pattern.matches(method, path)).map(|(_, limit)| *limit).or(self.default)
    }
}

/// The 504 of a request that ran out of time: the envelope, `X-Request-Id` (from the request's scope), the
/// security headers and, for an allowed `origin`, the CORS marks, carried as an error since the request itself
/// is gone with the dropped future.
pub fn expired(layers: &HttpLayers, method: &Method, uri: &Uri, limit: Duration, origin: Option<HeaderValue>) -> Error {
    let message = format!("{method} {} took longer than {} ms", uri.path(), limit.as_millis());
    let mut response = ApiError::new(StatusCode::GATEWAY_TIMEOUT, "request_timeout", message.clone()).error_response();
    if let Some(id) = request_id::current().and_then(|id| HeaderValue::from_str(&id).ok()) {
        response.headers_mut().insert(X_REQUEST_ID, id);
    }
    layers.headers().apply(response.headers_mut());
    if let (Some(policy), Some(origin)) = (layers.cors(), origin) {
        policy.mark(&origin, response.headers_mut());
    }
    InternalError::from_response(message, response).into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::middleware::config::RouteTimeout;

    #[test]
    fn the_first_matching_route_wins_over_the_default() {
        let config = TimeoutConfig {
            default_ms: 1000,
            routes: vec![
                RouteTimeout { route: "POST /api/v1/users/bulk".into(), ms: 5000 },
                RouteTimeout { route: "/api/v1/users/*".into(), ms: 2000 },
            ],
        };
        let timeouts = Timeouts::new(&config).unwrap();
        assert_eq!(timeouts.of(&Method::POST, "/api/v1/users/bulk"), Some(Duration::from_secs(5)));
        assert_eq!(timeouts.of(&Method::GET, "/api/v1/users/bulk"), Some(Duration::from_secs(2)));
        assert_eq!(timeouts.of(&Method::GET, "/health/live"), Some(Duration::from_secs(1)));
        let off = Timeouts::new(&TimeoutConfig { default_ms: 0, routes: Vec::new() }).unwrap();
        assert_eq!(off.of(&Method::GET, "/health/live"), None);
    }
}
