//! Security headers on every answer: `nosniff`, no framing, no referrer, a content security policy, and
//! `Strict-Transport-Security` when clients come over TLS. A header the handler set itself is kept.

use super::config::HeadersConfig;
use actix_web::http::header::{
    CONTENT_SECURITY_POLICY, HeaderMap, HeaderName, HeaderValue, REFERRER_POLICY, STRICT_TRANSPORT_SECURITY,
    X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};

/// The headers, rendered once.
#[derive(Debug, Clone, Default)]
pub struct SecurityHeaders(Vec<(HeaderName, HeaderValue)>);

impl SecurityHeaders {
    /// The headers of `config`.
    ///
    /// # Errors
    /// A message naming `http.headers.content_security_policy` when it cannot be a header value.
    pub fn new(config: &HeadersConfig) -> Result<Self, String> {
        let mut headers = vec![
            (X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
            (X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
            (REFERRER_POLICY, HeaderValue::from_static("no-referrer")),
        ];
        let csp = config.content_security_policy.trim();
        if !csp.is_empty() {
            let value = HeaderValue::from_str(csp)
                .map_err(|_| "http.headers.content_security_policy must be printable ASCII on one line".to_owned())?;
            headers.push((CONTENT_SECURITY_POLICY, value));
        }
        if config.behind_tls {
            let value = HeaderValue::from_str(&format!("max-age={}; includeSubDomains", config.hsts_max_age_secs))
                .map_err(|_| "http.headers.hsts_max_age_secs cannot be rendered".to_owned())?;
            headers.push((STRICT_TRANSPORT_SECURITY, value));
        }
        Ok(Self(headers))
    }

    /// Adds the headers `headers` does not have yet.
    pub fn apply(&self, headers: &mut HeaderMap) {
        for (name, value) in &self.0 {
            if !headers.contains_key(name) {
                headers.insert(name.clone(), value.clone());
            }
        }
    }
}
