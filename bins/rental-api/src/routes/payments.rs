//! `/api/v1/payments*`: Stripe payments. Without Stripe keys every payment endpoint answers 503
//! `payments_not_configured`.

use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, get, post, web};
use rental_monitor::ComponentHandle;
use rental_payments::{API_VERSION, StripeConfig, StripeEvent, StripeGateway, WebhookError, WebhookVerifier};
use rental_service::{
    CheckoutView, Listing, PaymentIntentView, PaymentService, Services, StripeCustomerView, StripePaymentView,
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::error::{ApiError, ApiResult, ErrorEnvelope};
use crate::extract::{Auth, QueryPairs};
use crate::idempotency::{IdempotencyKeyHeader, Idempotent, respond};
use crate::json::{Json, OptionalJson};
use crate::routes::{PageOf, parse_id};
use crate::state::AppState;

/// The payment side of the process: the Stripe gateway and the webhook verifier when keys are configured.
#[derive(Debug, Clone, Default)]
pub struct Payments {
    stripe: Option<Arc<Stripe>>,
}

#[derive(Debug)]
struct Stripe {
    config: StripeConfig,
    gateway: Arc<StripeGateway>,
    verifier: WebhookVerifier,
}

impl Stripe {
    /// `service` calling Stripe through this gateway, holding an `Idempotency-Key` across a call for twice the
    /// call's bound (two minutes at least).
    fn over(&self, service: PaymentService) -> PaymentService {
        let hold = rental_service::payments::DEFAULT_HOLD.max(self.config.call_timeout() * 2);
        service.with_gateway(self.gateway.clone()).with_hold(hold)
    }
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
            stripe: Some(Arc::new(Stripe {
                config: config.clone(),
                gateway: Arc::new(gateway),
                verifier: WebhookVerifier::new(secret),
            })),
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

    /// Gives `services` (and so the background jobs built over them: the reconciliation) this gateway.
    pub fn attach(&self, services: &mut Services) {
        if let Some(stripe) = &self.stripe {
            services.payments = stripe.over(services.payments.clone());
        }
    }

    /// The payment service of `services` calling Stripe through this gateway.
    pub(crate) fn service(&self, services: &Services) -> ApiResult<PaymentService> {
        Ok(self.stripe()?.over(services.payments.clone()))
    }

    /// Verifies and reads a webhook delivery.
    pub(crate) fn verify(
        &self,
        payload: &str,
        signature: Option<&str>,
    ) -> ApiResult<Result<StripeEvent, WebhookError>> {
        Ok(self.stripe()?.verifier.verify(payload, signature))
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

/// A checkout session for what is due on an order's open invoice.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckoutSessionRequest {
    /// The order whose open invoice is paid.
    pub order_id: Uuid,
    /// Where Stripe sends the customer after paying (http or https URL).
    #[schema(max_length = 2048, pattern = r"^https?://")]
    pub success_url: String,
    /// Where Stripe sends the customer who gives up (http or https URL).
    #[schema(max_length = 2048, pattern = r"^https?://")]
    pub cancel_url: String,
}

/// A payment intent for a custom payment form.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PaymentIntentRequest {
    /// The order whose open invoice is paid.
    pub order_id: Uuid,
    /// Amount in minor units, at most what is due; all that is due when absent.
    pub amount_minor: Option<i64>,
    /// Must be the invoice's currency when given.
    pub currency: Option<String>,
}

/// A refund of a payment.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefundRequest {
    /// Minor units; all that is left to refund when absent.
    pub amount_minor: Option<i64>,
}

/// Query parameters of the payment list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PaymentListParams {
    /// Offset pagination: page number, 1 to 1,000,000,000.
    #[param(minimum = 1, maximum = 1000000000)]
    pub page: Option<u64>,
    /// Offset pagination: 1–100, default 20.
    #[param(minimum = 1, maximum = 100)]
    pub per_page: Option<u64>,
    /// Keyset pagination: `next_cursor` of the previous page. Empty: the first page.
    pub cursor: Option<String>,
    /// Keyset pagination: 1–100, default 50.
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u64>,
    /// `pending`, `failed`, `canceled`, `succeeded`.
    #[param(pattern = r"^(pending|failed|canceled|succeeded)$")]
    pub status: Option<String>,
    /// Customer id (staff; customers always see their own).
    pub customer: Option<Uuid>,
    /// Invoice id.
    pub invoice: Option<Uuid>,
}

/// Pay an order's open invoice with Stripe Checkout: a session for all that is due. The payment is `pending`
/// until Stripe's webhook says it is paid. Stripe failing: 502/504 and the payment `failed`, nothing paid.
#[utoipa::path(tag = "payments", security(("bearer" = [])), params(IdempotencyKeyHeader), request_body = CheckoutSessionRequest,
    responses((status = 201, body = CheckoutView, description = "The session and its payment"),
        (status = 404, body = ErrorEnvelope, description = "No such order of the caller's"),
        (status = 409, body = ErrorEnvelope, description = "The invoice is not open or nothing is due"),
        (status = 422, body = ErrorEnvelope), (status = 502, body = ErrorEnvelope, description = "Stripe failed"),
        (status = 503, body = ErrorEnvelope, description = "`payments_not_configured`"),
        (status = 504, body = ErrorEnvelope, description = "Stripe did not answer in time")))]
#[post("/payments/checkout-session")]
pub async fn checkout_session(
    state: web::Data<AppState>,
    auth: Auth,
    req: Idempotent<Json<CheckoutSessionRequest>>,
) -> ApiResult<HttpResponse> {
    let service = state.payments.service(&state.services)?;
    let claim = req.claim(&auth.0, StatusCode::CREATED);
    let b = req.body.into_inner();
    respond(&state, claim, StatusCode::CREATED, async |claim| {
        service.idempotent(claim).checkout_session(&auth.0, b.order_id, &b.success_url, &b.cancel_url).await
    })
    .await
}

/// A payment intent for an amount of an order's open invoice (a custom form confirms it with Stripe.js).
#[utoipa::path(tag = "payments", security(("bearer" = [])), params(IdempotencyKeyHeader), request_body = PaymentIntentRequest,
    responses((status = 201, body = PaymentIntentView, description = "The intent's client secret and its payment"),
        (status = 404, body = ErrorEnvelope, description = "No such order of the caller's"),
        (status = 409, body = ErrorEnvelope, description = "The invoice is not open or nothing is due"),
        (status = 422, body = ErrorEnvelope, description = "Amount not above 0 or above what is due; another currency"),
        (status = 502, body = ErrorEnvelope, description = "Stripe failed"),
        (status = 503, body = ErrorEnvelope, description = "`payments_not_configured`"),
        (status = 504, body = ErrorEnvelope, description = "Stripe did not answer in time")))]
#[post("/payments/payment-intent")]
pub async fn payment_intent(
    state: web::Data<AppState>,
    auth: Auth,
    req: Idempotent<Json<PaymentIntentRequest>>,
) -> ApiResult<HttpResponse> {
    let service = state.payments.service(&state.services)?;
    let claim = req.claim(&auth.0, StatusCode::CREATED);
    let b = req.body.into_inner();
    respond(&state, claim, StatusCode::CREATED, async |claim| {
        service.idempotent(claim).payment_intent(&auth.0, b.order_id, b.amount_minor, b.currency.as_deref()).await
    })
    .await
}

/// List Stripe payments: customers see their own, staff all.
#[utoipa::path(tag = "payments", security(("bearer" = [])), params(PaymentListParams),
    responses((status = 200, body = PageOf<StripePaymentView>, description = "A page of payments"),
        (status = 503, body = ErrorEnvelope, description = "`payments_not_configured`")))]
#[get("/payments")]
pub async fn list(
    state: web::Data<AppState>,
    auth: Auth,
    query: QueryPairs,
) -> ApiResult<web::Json<Listing<StripePaymentView>>> {
    let service = state.payments.service(&state.services)?;
    Ok(web::Json(service.list(&auth.0, &query.0).await?))
}

/// One Stripe payment with its refunds.
#[utoipa::path(tag = "payments", security(("bearer" = [])), params(("id" = uuid::Uuid, Path, description = "Payment id")),
    responses((status = 200, body = StripePaymentView, description = "The payment"), (status = 404, body = ErrorEnvelope),
        (status = 503, body = ErrorEnvelope, description = "`payments_not_configured`")))]
#[get("/payments/{id}")]
pub async fn get_payment(
    state: web::Data<AppState>,
    auth: Auth,
    id: web::Path<String>,
) -> ApiResult<web::Json<StripePaymentView>> {
    let service = state.payments.service(&state.services)?;
    let id = parse_id(&id, "payment")?;
    Ok(web::Json(service.get(&auth.0, id).await?))
}

/// Refund a succeeded payment, in full or in part (staff). More than is left to refund is refused before Stripe
/// is called.
#[utoipa::path(tag = "payments", security(("bearer" = [])), params(("id" = uuid::Uuid, Path, description = "Payment id"), IdempotencyKeyHeader),
    request_body(content = Option<RefundRequest>, description = "Optional: the amount; all that is left by default"),
    responses((status = 200, body = StripePaymentView, description = "The payment with its refunds"),
        (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope),
        (status = 409, body = ErrorEnvelope, description = "Not succeeded, or nothing left to refund"),
        (status = 422, body = ErrorEnvelope, description = "Amount not above 0 or above what is left"),
        (status = 502, body = ErrorEnvelope, description = "Stripe failed"),
        (status = 503, body = ErrorEnvelope, description = "`payments_not_configured`"),
        (status = 504, body = ErrorEnvelope, description = "Stripe did not answer in time")))]
#[post("/payments/{id}/refund")]
pub async fn refund(
    state: web::Data<AppState>,
    auth: Auth,
    id: web::Path<String>,
    req: Idempotent<OptionalJson<RefundRequest>>,
) -> ApiResult<HttpResponse> {
    let service = state.payments.service(&state.services)?;
    let id = parse_id(&id, "payment")?;
    let claim = req.claim(&auth.0, StatusCode::OK);
    let amount = req.body.unwrap_or_default().amount_minor;
    respond(&state, claim, StatusCode::OK, async |claim| service.idempotent(claim).refund(&auth.0, id, amount).await)
        .await
}

/// The caller's Stripe customer, created at Stripe on first use.
#[utoipa::path(tag = "payments", security(("bearer" = [])), params(IdempotencyKeyHeader),
    responses((status = 200, body = StripeCustomerView, description = "The customer"),
        (status = 502, body = ErrorEnvelope, description = "Stripe failed"),
        (status = 503, body = ErrorEnvelope, description = "`payments_not_configured`"),
        (status = 504, body = ErrorEnvelope, description = "Stripe did not answer in time")))]
#[post("/payments/customer")]
pub async fn customer(state: web::Data<AppState>, auth: Auth, req: Idempotent<()>) -> ApiResult<HttpResponse> {
    let service = state.payments.service(&state.services)?;
    let claim = req.claim(&auth.0, StatusCode::OK);
    respond(&state, claim, StatusCode::OK, async |claim| service.idempotent(claim).customer(&auth.0).await).await
}
