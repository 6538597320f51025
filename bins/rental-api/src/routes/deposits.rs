//! `/api/v1/rentals/{id}/deposit*`: a rental order's deposit held on the customer's card (a Stripe payment
//! intent with manual capture), captured in full or in part, or released. Every mutating operation accepts
//! `Idempotency-Key`. Without Stripe keys every deposit endpoint answers 503 `payments_not_configured`.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, get, post, web};
use rental_service::{DepositHoldView, DepositView};
use serde::Deserialize;
use utoipa::ToSchema;

use crate::error::{ApiResult, ErrorEnvelope};
use crate::extract::Auth;
use crate::idempotency::{IdempotencyKeyHeader, Idempotent, respond};
use crate::json::OptionalJson;
use crate::routes::parse_id;
use crate::state::AppState;

/// A capture of a held deposit.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DepositCaptureRequest {
    /// Minor units, above 0 and at most what is held; all that is held when absent.
    #[schema(minimum = 1)]
    pub amount_minor: Option<i64>,
}

/// The deposit of a rental order: staff, or the order's customer.
#[utoipa::path(tag = "payments", security(("bearer" = [])), params(("id" = uuid::Uuid, Path, description = "Order id")),
    responses((status = 200, body = DepositView, description = "The deposit"),
        (status = 404, body = ErrorEnvelope, description = "No such order of the caller's, or no deposit asked for"),
        (status = 503, body = ErrorEnvelope, description = "`payments_not_configured`")))]
#[get("/rentals/{id}/deposit")]
pub async fn get_deposit(
    state: web::Data<AppState>,
    auth: Auth,
    id: web::Path<String>,
) -> ApiResult<web::Json<DepositView>> {
    let service = state.payments.service(&state.services)?;
    let id = parse_id(&id, "rental")?;
    Ok(web::Json(service.deposit(&auth.0, id).await?))
}

/// Hold a reserved or picked-up order's deposit (the sum of its lines' deposits, in the order's currency) on
/// the customer's card: a Stripe payment intent with manual capture, which the customer confirms with
/// Stripe.js (`client_secret`). Staff, or the order's customer.
///
/// **Expiry rule:** Stripe keeps a card hold for about 7 days, so a hold is placed no earlier than
/// `deposits.lead_days` (default 1) days before the rental starts. Asked for earlier, the deposit is recorded as
/// `scheduled` with `place_from` (no client secret yet), and the deposit job places it from then on; asking
/// again from `place_from` places it at once. When the hold must outlast a card hold (from its placing to the
/// rental's end plus `deposits.return_margin_days`, longer than `deposits.hold_life_days`), the card is saved to
/// the customer's Stripe customer (`setup_future_usage=off_session`) and the deposit job re-authorises the hold
/// off-session after `deposits.expiry_warning_days` (default 6): a new hold (next `hold_seq`), then the old one
/// released. Any other hold in place that long, or one whose re-authorisation Stripe refuses, is flagged in
/// `attention` for staff to capture or release before it lapses.
///
/// After a failed hold the deposit may be placed again. Stripe failing or slow: 502/504 and nothing marked
/// (a card refusal marks the deposit `failed`).
#[utoipa::path(tag = "payments", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Order id"), IdempotencyKeyHeader),
    responses((status = 201, body = DepositHoldView, description = "The hold asked of Stripe (`pending` until the customer confirms it, then `requires_capture`), or the deposit `scheduled`"),
        (status = 404, body = ErrorEnvelope, description = "No such order of the caller's"),
        (status = 409, body = ErrorEnvelope, description = "The order is not reserved or picked up, has no deposit, or its deposit is already scheduled, pending, held or settled"),
        (status = 502, body = ErrorEnvelope, description = "Stripe failed"),
        (status = 503, body = ErrorEnvelope, description = "`payments_not_configured`"),
        (status = 504, body = ErrorEnvelope, description = "Stripe did not answer in time")))]
#[post("/rentals/{id}/deposit")]
pub async fn place_deposit(
    state: web::Data<AppState>,
    auth: Auth,
    id: web::Path<String>,
    req: Idempotent<()>,
) -> ApiResult<HttpResponse> {
    let service = state.payments.service(&state.services)?;
    let id = parse_id(&id, "rental")?;
    let claim = req.claim(&auth.0, StatusCode::CREATED);
    respond(&state, claim, StatusCode::CREATED, async |claim| {
        service.idempotent(claim).place_deposit(&auth.0, id).await
    })
    .await
}

/// Capture a held deposit in full or in part, for damage or late fees (staff); Stripe releases the rest. More
/// than is held is refused before Stripe is called. A deposit still `pending` whose hold was asked of Stripe is
/// first looked up at Stripe (a hold whose webhook was missed is recorded, then captured); one Stripe does not
/// hold either is 409.
#[utoipa::path(tag = "payments", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Order id"), IdempotencyKeyHeader),
    request_body(content = Option<DepositCaptureRequest>, description = "Optional: the amount; all that is held by default"),
    responses((status = 200, body = DepositView, description = "The deposit, `succeeded` with the amount captured"),
        (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope, description = "No such order or no deposit"),
        (status = 409, body = ErrorEnvelope, description = "No hold in place (also after asking Stripe about a `pending` one), or a capture of another amount awaits Stripe's answer"),
        (status = 422, body = ErrorEnvelope, description = "Amount not above 0 or above what is held"),
        (status = 502, body = ErrorEnvelope, description = "Stripe failed"),
        (status = 503, body = ErrorEnvelope, description = "`payments_not_configured`"),
        (status = 504, body = ErrorEnvelope, description = "Stripe did not answer in time")))]
#[post("/rentals/{id}/deposit/capture")]
pub async fn capture_deposit(
    state: web::Data<AppState>,
    auth: Auth,
    id: web::Path<String>,
    req: Idempotent<OptionalJson<DepositCaptureRequest>>,
) -> ApiResult<HttpResponse> {
    let service = state.payments.service(&state.services)?;
    let id = parse_id(&id, "rental")?;
    let claim = req.claim(&auth.0, StatusCode::OK);
    let amount = req.body.unwrap_or_default().amount_minor;
    respond(&state, claim, StatusCode::OK, async |claim| {
        service.idempotent(claim).capture_deposit(&auth.0, id, amount).await
    })
    .await
}

/// Release a deposit (staff): cancels its hold at Stripe, or drops a deposit not placed yet.
#[utoipa::path(tag = "payments", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Order id"), IdempotencyKeyHeader),
    responses((status = 200, body = DepositView, description = "The deposit, `canceled`"),
        (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope, description = "No such order or no deposit"),
        (status = 409, body = ErrorEnvelope, description = "Already captured or released, or a call to Stripe awaits its answer"),
        (status = 502, body = ErrorEnvelope, description = "Stripe failed"),
        (status = 503, body = ErrorEnvelope, description = "`payments_not_configured`"),
        (status = 504, body = ErrorEnvelope, description = "Stripe did not answer in time")))]
#[post("/rentals/{id}/deposit/release")]
pub async fn release_deposit(
    state: web::Data<AppState>,
    auth: Auth,
    id: web::Path<String>,
    req: Idempotent<()>,
) -> ApiResult<HttpResponse> {
    let service = state.payments.service(&state.services)?;
    let id = parse_id(&id, "rental")?;
    let claim = req.claim(&auth.0, StatusCode::OK);
    respond(&state, claim, StatusCode::OK, async |claim| service.idempotent(claim).release_deposit(&auth.0, id).await)
        .await
}
