//! `/api/v1/payments*`: Stripe payments. Without Stripe keys every payment endpoint answers 503
//! `payments_not_configured`.

use std::sync::Arc;

use actix_web::{get, web};
use rental_monitor::ComponentHandle;
use rental_payments::{API_VERSION, StripeConfig, StripeGateway, WebhookVerifier};
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::{ApiError, ApiResult, ErrorEnvelope};
use crate::state::AppState;

/// The payment side of the process: the Stripe gateway and the webhook verifier when keys are configured.
#[derive(Debug, Clone, Default)]
pub struct Payments {
    stripe: Option<Arc<Stripe>>,
}

#[derive(Debug)]
struct Stripe {
    config: StripeConfig,
    // Used by the payment flows and the webhook endpoint of the next slices.
    #[expect(dead_code, reason = "the payment flows of the next slices call it")]
    gateway: StripeGateway,
    #[expect(dead_code, reason = "the webhook endpoint of the next slice uses it")]
    verifier: WebhookVerifier,
}

impl Payments {
    /// Payments switched off: every payment endpoint answers 503 `payments_not_configured`.
    pub fn disabled() -> Self {
        Self::default()
    }

    /// Payments as `config` says: switched on when it has a secret key (validated with the settings).
    ///
    /// # Errors
    /// When the client cannot be built from the keys and URL.
    pub fn from_config(config: &StripeConfig) -> Result<Self, rental_payments::PaymentError> {
        if !config.is_configured() {
            return Ok(Self::disabled());
        }
        let gateway = StripeGateway::new(config.clone())?;
        let secret = config.webhook_secret.clone().unwrap_or_default();
        Ok(Self {
            stripe: Some(Arc::new(Stripe { config: config.clone(), gateway, verifier: WebhookVerifier::new(secret) })),
        })
    }

    /// The `stripe` component of `/monitoring/health`: configured or not (no call to Stripe: a probe per
    /// health check would spend the account's rate limit).
    pub fn component(&self) -> ComponentHandle {
        match &self.stripe {
            Some(stripe) => {
                ComponentHandle::new("stripe", Some(format!("keys configured, api {}", stripe.config.api_base)))
            }
            None => {
                ComponentHandle::not_configured("stripe", "set stripe.secret_key, publishable_key and webhook_secret")
            }
        }
    }

    fn stripe(&self) -> ApiResult<&Stripe> {
        self.stripe.as_deref().ok_or_else(ApiError::payments_not_configured)
    }
}

/// What a browser needs to take a payment with Stripe.js.
#[derive(Debug, Serialize, ToSchema)]
pub struct PaymentsConfigView {
    /// Stripe's publishable key.
    pub publishable_key: String,
    /// The currency payments are taken in (ISO 4217, upper case).
    pub currency: String,
    /// The Stripe API version this server speaks.
    pub api_version: &'static str,
}

/// The publishable key and currency for Stripe.js. Public: the publishable key is meant for browsers.
#[utoipa::path(tag = "payments",
    responses((status = 200, body = PaymentsConfigView),
        (status = 503, description = "`payments_not_configured`: this server has no Stripe keys", body = ErrorEnvelope)))]
#[get("/payments/config")]
pub async fn payments_config(state: web::Data<AppState>) -> ApiResult<web::Json<PaymentsConfigView>> {
    let stripe = state.payments.stripe()?;
    Ok(web::Json(PaymentsConfigView {
        publishable_key: stripe.config.publishable_key.clone().unwrap_or_default(),
        currency: stripe.config.currency.to_ascii_uppercase(),
        api_version: API_VERSION,
    }))
}
