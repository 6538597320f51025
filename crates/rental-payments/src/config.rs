//! The Stripe configuration: keys, the API's base URL and the bounds on every call.

use std::time::Duration;

use rental_service::Secret;
use serde::{Deserialize, Serialize};

/// Stripe's API, where the client goes unless told otherwise.
pub const STRIPE_API_BASE: &str = "https://api.stripe.com/";

/// How the payment flows reach Stripe. Payments are switched on by `secret_key`; without it the gateway is
/// not built and the payment endpoints answer 503 `payments_not_configured`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StripeConfig {
    /// The secret API key (`sk_live_…`, `sk_test_…`); never printed.
    pub secret_key: Option<Secret>,
    /// The publishable key (`pk_…`) handed to browsers by `GET /api/v1/payments/config`.
    pub publishable_key: Option<String>,
    /// The signing secret of the webhook endpoint (`whsec_…`); never printed.
    pub webhook_secret: Option<Secret>,
    /// The currency payments are taken in (ISO 4217), shown to browsers by `GET /api/v1/payments/config`.
    pub currency: String,
    /// Stripe's API base URL, ending in `/`; tests point it at a stand-in on loopback.
    pub api_base: String,
    /// Bound on one HTTP attempt, in milliseconds.
    pub attempt_timeout_ms: u64,
    /// Bound on a whole call, retries and waits included, in milliseconds.
    pub call_timeout_ms: u64,
    /// Attempts per call (1 = no retry). Only failures that may pass are retried (connection errors, timeouts,
    /// 409 lock conflicts, 429, 5xx), always with the same idempotency key.
    pub max_attempts: u32,
    /// Wait before the second attempt, in milliseconds; doubled for each further attempt.
    pub retry_backoff_ms: u64,
}

impl Default for StripeConfig {
    fn default() -> Self {
        Self {
            secret_key: None,
            publishable_key: None,
            webhook_secret: None,
            currency: "EUR".into(),
            api_base: STRIPE_API_BASE.into(),
            attempt_timeout_ms: 10_000,
            call_timeout_ms: 30_000,
            max_attempts: 3,
            retry_backoff_ms: 500,
        }
    }
}

impl StripeConfig {
    /// Whether payments are switched on (a non-empty secret key).
    pub fn is_configured(&self) -> bool {
        self.secret_key.as_ref().is_some_and(|key| !key.is_empty())
    }

    /// Checks the values that must make sense together; the message names the key (under `section`).
    ///
    /// # Errors
    /// A message naming the first key that is wrong.
    pub fn validate(&self, section: &str) -> Result<(), String> {
        if rental_domain::Currency::parse(&self.currency).is_err() {
            return Err(format!("{section}.currency must be a three-letter ISO 4217 code, not {:?}", self.currency));
        }
        if !(self.api_base.starts_with("https://") || self.api_base.starts_with("http://"))
            || !self.api_base.ends_with('/')
        {
            return Err(format!("{section}.api_base must be an http(s) URL ending in '/', not {:?}", self.api_base));
        }
        if self.max_attempts == 0 || self.attempt_timeout_ms == 0 || self.call_timeout_ms == 0 {
            return Err(format!("{section}.max_attempts, attempt_timeout_ms and call_timeout_ms must be positive"));
        }
        if self.is_configured() {
            if self.publishable_key.as_deref().is_none_or(str::is_empty) {
                return Err(format!("{section}.publishable_key is required with {section}.secret_key"));
            }
            if self.webhook_secret.as_ref().is_none_or(Secret::is_empty) {
                return Err(format!("{section}.webhook_secret is required with {section}.secret_key"));
            }
        }
        Ok(())
    }

    /// The bound on one attempt.
    pub fn attempt_timeout(&self) -> Duration {
        Duration::from_millis(self.attempt_timeout_ms.max(1))
    }

    /// The bound on a whole call.
    pub fn call_timeout(&self) -> Duration {
        Duration::from_millis(self.call_timeout_ms.max(1))
    }

    /// The wait before attempt `attempt` (2, 3, …): the backoff doubled per attempt after the second.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let doublings = attempt.saturating_sub(2).min(16);
        Duration::from_millis(self.retry_backoff_ms.saturating_mul(1 << doublings))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print_and_payments_need_a_secret_key() {
        let mut config = StripeConfig::default();
        assert!(!config.is_configured());
        config.secret_key = Some(Secret::new("sk_test_123"));
        config.webhook_secret = Some(Secret::new("whsec_456"));
        assert!(config.is_configured());
        let shown = format!("{config:?} {}", serde_json::to_string(&config).unwrap());
        assert!(!shown.contains("sk_test_123") && !shown.contains("whsec_456"), "{shown}");
    }

    #[test]
    fn validation_names_the_key_that_is_wrong() {
        assert_eq!(StripeConfig::default().validate("stripe"), Ok(()));
        let keys = StripeConfig {
            secret_key: Some(Secret::new("sk_test_1")),
            publishable_key: Some("pk_test_1".into()),
            webhook_secret: Some(Secret::new("whsec_1")),
            ..StripeConfig::default()
        };
        assert_eq!(keys.validate("stripe"), Ok(()));
        let no_pk = StripeConfig { publishable_key: None, ..keys.clone() };
        assert!(no_pk.validate("stripe").unwrap_err().contains("stripe.publishable_key"));
        let no_whsec = StripeConfig { webhook_secret: None, ..keys.clone() };
        assert!(no_whsec.validate("stripe").unwrap_err().contains("stripe.webhook_secret"));
        let currency = StripeConfig { currency: "euro".into(), ..keys.clone() };
        assert!(currency.validate("stripe").unwrap_err().contains("stripe.currency"));
        let base = StripeConfig { api_base: "http://127.0.0.1:1".into(), ..keys };
        assert!(base.validate("stripe").unwrap_err().contains("stripe.api_base"));
    }

    #[test]
    fn the_backoff_doubles_from_the_second_attempt() {
        let config = StripeConfig { retry_backoff_ms: 100, ..StripeConfig::default() };
        assert_eq!(config.backoff(2), Duration::from_millis(100));
        assert_eq!(config.backoff(3), Duration::from_millis(200));
        assert_eq!(config.backoff(4), Duration::from_millis(400));
    }
}
