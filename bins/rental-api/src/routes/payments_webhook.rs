//! `POST /api/v1/payments/webhook`: Stripe's events. The `Stripe-Signature` header is checked over the raw body
//! before anything is read; every refusal is a 400 with its own code and applies nothing. A verified event is
//! applied once (deduplicated by its id in the transaction of its effect) and answered 200, also when it is a
//! duplicate, of a type we do not act on, or names no payment of ours, so that Stripe stops redelivering it.
//!
//! An event of another API version than this build's is refused (400 `webhook_api_version`) and logged at
//! warn: its objects may have other fields, and reading them as ours could misapply money. Stripe redelivers it
//! for three days, which is the operator's time to set the endpoint's version right.

use actix_web::{HttpRequest, HttpResponse, post, web};
use rental_payments::WebhookError;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::{ApiError, ApiResult, ErrorEnvelope};
use crate::state::AppState;

/// What the document says of the body: a Stripe event object (the handler reads the raw bytes, which the
/// signature covers, and refuses anything that is not such an event with 400).
#[derive(Debug, Deserialize, ToSchema)]
#[allow(dead_code)]
pub struct StripeEventBody {
    /// The event's id (`evt_…`).
    pub id: String,
    /// `event`.
    pub object: String,
    /// The API version the event was rendered in: this build's (`rental_payments::API_VERSION`), else 400.
    pub api_version: String,
    /// Unix seconds.
    pub created: i64,
    /// E.g. `payment_intent.succeeded`; types not acted on are recorded and ignored.
    #[serde(rename = "type")]
    pub kind: String,
    /// `{"object": …}`: the object the event is about.
    pub data: serde_json::Value,
}

/// The answer to a delivered event.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookAck {
    /// Always true.
    pub received: bool,
    /// Stripe's event id.
    pub event_id: String,
    /// `applied`, `duplicate`, `ignored`, `deferred` (waits for its payment intent to be known) or `unmatched`.
    pub outcome: &'static str,
}

fn refusal(err: &WebhookError) -> ApiError {
    let code = match err {
        WebhookError::MissingSignature => "webhook_signature_missing",
        WebhookError::MalformedSignature => "webhook_signature_malformed",
        WebhookError::BadSignature => "webhook_signature_invalid",
        WebhookError::Expired(_) => "webhook_signature_expired",
        WebhookError::ApiVersion { .. } => "webhook_api_version",
        _ => "webhook_malformed",
    };
    ApiError::bad_request(code, err.to_string())
}

/// Stripe's webhook endpoint. The body must be exactly as Stripe sent it (the signature covers its bytes).
#[utoipa::path(tag = "payments",
    request_body(content = StripeEventBody, content_type = "application/json", description = "A Stripe event, signed in the `Stripe-Signature` header"),
    params(("Stripe-Signature" = Option<String>, Header, description = "`t=<unix seconds>,v1=<hex HMAC-SHA256 of \"t.body\">`")),
    responses((status = 200, body = WebhookAck, description = "Received (applied, duplicate, ignored, deferred or unmatched)"),
        (status = 400, body = ErrorEnvelope, description = "Signature missing, malformed, wrong or older than 300 s; body not a readable event; another API version"),
        (status = 503, body = ErrorEnvelope, description = "`payments_not_configured`")))]
#[post("/payments/webhook")]
pub async fn webhook(state: web::Data<AppState>, request: HttpRequest, body: web::Bytes) -> ApiResult<HttpResponse> {
    let service = state.payments.service(&state.services)?;
    let signature = request.headers().get("Stripe-Signature").and_then(|value| value.to_str().ok());
    let payload =
        std::str::from_utf8(&body).map_err(|_| ApiError::bad_request("webhook_malformed", "the body is not UTF-8"))?;
    let event = match state.payments.verify(payload, signature)? {
        Ok(event) => event,
        Err(err) => {
            if let WebhookError::ApiVersion { found } = &err {
                tracing::warn!(found = %found, expected = rental_payments::API_VERSION, "webhook event of another API version refused");
            }
            return Err(refusal(&err));
        }
    };
    let event = event.into_service_event();
    let event_id = event.id.clone();
    let outcome = service.handle_webhook(event).await?;
    tracing::info!(event = %event_id, outcome = outcome.as_str(), "stripe webhook");
    Ok(HttpResponse::Ok().json(WebhookAck { received: true, event_id, outcome: outcome.as_str() }))
}
