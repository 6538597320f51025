//! Cross-origin resource sharing for an explicit list of origins.
//!
//! Written here rather than taken from `actix-cors` so that a refused preflight answers with the JSON error
//! envelope like every other refusal, and so that the rules are exactly these:
//! - no `Origin` header, or CORS off (no origins configured): nothing is added;
//! - an allowed origin: a preflight (`OPTIONS` with `Access-Control-Request-Method`) is answered 204 with the
//!   allowed methods and headers, cached `max_age_secs`; other requests go on and get
//!   `Access-Control-Allow-Origin` (the origin itself, or `*` when any origin is allowed without credentials)
//!   and the headers a script may read (`X-Request-Id`, `Retry-After`, `RateLimit-*`, `Content-Disposition`);
//! - another origin: a preflight is refused 403 `cors_denied`; other requests go on without CORS headers, so
//!   the browser keeps the answer from the page.
//!
//! Credentials are allowed only with an explicit list: `*` with `allow_credentials` is refused at start-up.

use actix_web::dev::ServiceRequest;
use actix_web::http::header::{
    ACCESS_CONTROL_ALLOW_CREDENTIALS, ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS,
    ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE, ACCESS_CONTROL_REQUEST_HEADERS,
    ACCESS_CONTROL_REQUEST_METHOD, HeaderMap, HeaderValue, VARY,
};
use actix_web::http::{Method, StatusCode, Uri};
use actix_web::{HttpResponse, ResponseError};

use super::config::CorsConfig;
use crate::error::ApiError;

const METHODS: &str = "GET, POST, PUT, PATCH, DELETE";
const ALLOWED_METHODS: [Method; 5] = [Method::GET, Method::POST, Method::PUT, Method::PATCH, Method::DELETE];
/// Request headers a cross-origin script may send, lower case.
const ALLOWED_HEADERS: [&str; 5] = ["authorization", "content-type", "accept", "accept-language", "x-request-id"];
const EXPOSED: &str = "X-Request-Id, Retry-After, RateLimit-Limit, RateLimit-Remaining, RateLimit-Reset, \
     Content-Disposition";

/// Checks the origins, naming the key of the first bad one.
///
/// # Errors
/// The message naming `http.cors.allowed_origins[i]` or the `*` + credentials conflict.
pub fn validate(config: &CorsConfig) -> Result<(), String> {
    let any = config.allowed_origins.iter().any(|o| o.trim() == "*");
    if any && config.allowed_origins.len() > 1 {
        return Err("http.cors.allowed_origins: `*` allows every origin; list it alone".into());
    }
    if any && config.allow_credentials {
        return Err(
            "http.cors.allow_credentials cannot be true with http.cors.allowed_origins = [\"*\"]: list the origins"
                .into(),
        );
    }
    for (i, origin) in config.allowed_origins.iter().enumerate() {
        let origin = origin.trim();
        if origin == "*" {
            continue;
        }
        let uri: Option<Uri> = origin.parse().ok();
        let valid = uri.as_ref().is_some_and(|uri| {
            matches!(uri.scheme_str(), Some("http" | "https"))
                && uri.authority().is_some_and(|a| !a.host().is_empty() && !a.as_str().contains('@'))
                && uri.path_and_query().is_none_or(|p| p.as_str().is_empty() || p.as_str() == "/")
                && !origin.ends_with('/')
        });
        if !valid {
            return Err(format!(
                "http.cors.allowed_origins[{i}]: `{origin}` is not an origin like `https://app.example.com` \
                 (scheme and host, optional port, no path)"
            ));
        }
    }
    Ok(())
}

/// Which origins may call.
#[derive(Debug, Clone)]
pub struct CorsPolicy {
    any: bool,
    origins: Vec<HeaderValue>,
    credentials: bool,
    max_age: HeaderValue,
}

impl CorsPolicy {
    /// The policy of a validated `config`; `None` when no origin is allowed (CORS off).
    pub fn new(config: &CorsConfig) -> Option<Self> {
        if config.allowed_origins.is_empty() {
            return None;
        }
        Some(Self {
            any: config.allowed_origins.iter().any(|o| o.trim() == "*"),
            origins: config.allowed_origins.iter().filter_map(|o| HeaderValue::from_str(o.trim()).ok()).collect(),
            credentials: config.allow_credentials,
            max_age: HeaderValue::from(config.max_age_secs),
        })
    }

    fn allows(&self, origin: &HeaderValue) -> bool {
        self.any || self.origins.iter().any(|allowed| allowed.as_bytes().eq_ignore_ascii_case(origin.as_bytes()))
    }

    /// Marks an answer to a request from `origin` as readable by it, when the origin is allowed. Answers made
    /// outside this layer (the timeout's 504) are marked by their maker.
    pub fn mark(&self, origin: &HeaderValue, headers: &mut HeaderMap) {
        if self.allows(origin) {
            self.allow_origin(origin, headers);
            headers.insert(ACCESS_CONTROL_EXPOSE_HEADERS, HeaderValue::from_static(EXPOSED));
        }
    }

    fn allow_origin(&self, origin: &HeaderValue, headers: &mut HeaderMap) {
        if self.any {
            headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
        } else {
            headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
            headers.append(VARY, HeaderValue::from_static("Origin"));
        }
        if self.credentials {
            headers.insert(ACCESS_CONTROL_ALLOW_CREDENTIALS, HeaderValue::from_static("true"));
        }
    }
}

fn preflight_refusal(message: String) -> HttpResponse {
    ApiError::new(StatusCode::FORBIDDEN, "cors_denied", message).error_response()
}

fn headers_allowed(requested: Option<&HeaderValue>) -> Result<(), String> {
    let Some(requested) = requested else { return Ok(()) };
    let text = requested.to_str().map_err(|_| "malformed Access-Control-Request-Headers".to_owned())?;
    for name in text.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        if !ALLOWED_HEADERS.iter().any(|allowed| allowed.eq_ignore_ascii_case(name)) {
            return Err(format!("the header `{name}` may not be sent cross-origin"));
        }
    }
    Ok(())
}

impl CorsPolicy {
    /// The answer to `req` from `origin` when it is a preflight (`OPTIONS` with
    /// `Access-Control-Request-Method`): 204 with the allowed methods and headers, or 403 `cors_denied`.
    /// `None` for any other request, which goes on (and is marked with [`CorsPolicy::mark`] on its way out).
    pub fn preflight(&self, req: &ServiceRequest, origin: &HeaderValue) -> Option<HttpResponse> {
        let requested = req.headers().get(ACCESS_CONTROL_REQUEST_METHOD);
        if req.method() != Method::OPTIONS || requested.is_none() {
            return None;
        }
        let method = requested.and_then(|m| Method::from_bytes(m.as_bytes()).ok());
        let verdict = if !self.allows(origin) {
            Err(format!("the origin {} may not call this API", origin.to_str().unwrap_or("<malformed>")))
        } else if !method.as_ref().is_some_and(|m| ALLOWED_METHODS.contains(m)) {
            Err(format!("cross-origin requests may use {METHODS} only"))
        } else {
            headers_allowed(req.headers().get(ACCESS_CONTROL_REQUEST_HEADERS))
        };
        Some(match verdict {
            Err(message) => preflight_refusal(message),
            Ok(()) => {
                let mut response = HttpResponse::NoContent().finish();
                let headers = response.headers_mut();
                self.allow_origin(origin, headers);
                headers.insert(ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static(METHODS));
                headers.insert(
                    ACCESS_CONTROL_ALLOW_HEADERS,
                    HeaderValue::from_static("Authorization, Content-Type, Accept, Accept-Language, X-Request-Id"),
                );
                headers.insert(ACCESS_CONTROL_MAX_AGE, self.max_age.clone());
                response
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origins(list: &[&str], credentials: bool) -> CorsConfig {
        CorsConfig {
            allowed_origins: list.iter().map(|o| (*o).to_owned()).collect(),
            allow_credentials: credentials,
            ..CorsConfig::default()
        }
    }

    #[test]
    fn origins_are_checked_at_start_up() {
        assert!(validate(&origins(&["https://app.example.com", "http://localhost:3000"], true)).is_ok());
        assert!(validate(&origins(&["*"], false)).is_ok());
        let err = validate(&origins(&["*"], true)).unwrap_err();
        assert!(err.contains("http.cors.allow_credentials"), "{err}");
        for bad in [
            "app.example.com",
            "https://app.example.com/",
            "https://app.example.com/path",
            "ftp://x.org",
            "*.example.com",
        ] {
            let err = validate(&origins(&["https://ok.example.com", bad], false)).unwrap_err();
            assert!(err.contains("http.cors.allowed_origins[1]"), "{bad}: {err}");
        }
    }
}
