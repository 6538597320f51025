//! `/api/v1/rentals`, `/products/{id}/availability`, `/units/{id}/maintenance`, `/invoices`: rental orders
//! and their lifecycle, availability, maintenance blocks, invoices and payments.
//!
//! Answers are the service's views serialised as they are; the OpenAPI document describes their fields in
//! the schemas below.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, get, post, web};
use chrono::{DateTime, Utc};
use rental_service::{
    AvailabilityView, InvoiceView, Listing, MaintenanceView, NewPayment, NewRental, NewRentalLine, OrderDetailView,
    OrderEventView, OrderView, PaymentView, PickupLine, ReturnedUnit,
};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::error::{ApiResult, ErrorEnvelope};
use crate::extract::{Auth, QueryPairs};
use crate::idempotency::{IdempotencyKeyHeader, Idempotent, respond};
use crate::json::{Json, OptionalJson};
use crate::routes::{PageOf, parse_id};
use crate::state::AppState;

// ---- requests -----------------------------------------------------------------------------------------------

/// A line of a new rental: a product, a quantity and a half-open period `[start, end)`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RentalLineRequest {
    /// The product.
    pub product_id: Uuid,
    /// Items, 1–10,000.
    #[schema(minimum = 1, maximum = 10000)]
    pub quantity: i64,
    /// Start (RFC 3339), not in the past.
    pub start: DateTime<Utc>,
    /// End (RFC 3339, exclusive), after the start, at most 366 days later.
    pub end: DateTime<Utc>,
}

/// A new rental order.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateRentalRequest {
    /// Staff only: the customer rented for. Customers rent for themselves.
    pub customer_id: Option<Uuid>,
    /// `reserved` (default: check and hold the stock now, issue the invoice) or `quote` (price only).
    #[schema(example = "reserved")]
    #[schema(pattern = r"^(reserved|quote)$")]
    pub status: Option<String>,
    /// 1–50 lines in one currency.
    #[schema(min_items = 1, max_items = 50)]
    pub lines: Vec<RentalLineRequest>,
    /// Free text.
    pub notes: Option<String>,
}

/// A note for a lifecycle step.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TransitionRequest {
    /// Recorded in the event log.
    pub note: Option<String>,
}

/// Units handed out for one line.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PickupLineRequest {
    /// The order line.
    pub line_id: Uuid,
    /// Tracked units of the line's product, at most its quantity.
    pub unit_ids: Vec<Uuid>,
}

/// Pickup: optionally the units to hand out; lines not named get free units picked automatically.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PickupRequest {
    /// Units per line.
    #[serde(default)]
    pub units: Vec<PickupLineRequest>,
    /// Recorded in the event log.
    pub note: Option<String>,
}

/// How one unit came back.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReturnedUnitRequest {
    /// A unit handed out with this order.
    pub unit_id: Uuid,
    /// `new`, `good`, `fair` or `damaged`.
    #[schema(value_type = rental_service::openapi::UnitConditionSchema)]
    pub condition: String,
    /// What is damaged.
    pub damage_note: Option<String>,
    /// Charged to the customer (minor units of the order's currency), added to the invoice.
    #[schema(minimum = 0)]
    pub damage_charge_minor: Option<i64>,
}

/// Return: conditions and damage of the units; a late return adds a late fee per item and started day.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReturnRequest {
    /// Units and their condition.
    #[serde(default)]
    pub units: Vec<ReturnedUnitRequest>,
    /// Recorded in the event log.
    pub note: Option<String>,
}

/// A maintenance block: the unit is out of service over `[start, end)`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MaintenanceRequest {
    /// Start, not in the past.
    pub start: DateTime<Utc>,
    /// End (exclusive).
    pub end: DateTime<Utc>,
    /// Why.
    pub reason: Option<String>,
}

/// A payment received at the desk.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PaymentRequest {
    /// Positive, at most the amount due.
    #[schema(minimum = 1)]
    pub amount_minor: i64,
    /// The invoice's currency.
    #[schema(pattern = r"^[A-Z]{3}$")]
    pub currency: String,
    /// `cash`, `card` or `bank_transfer`.
    #[schema(pattern = r"^(cash|card|bank_transfer)$")]
    pub method: String,
    /// Receipt or transfer reference.
    pub reference: Option<String>,
}

/// Query of the availability endpoint.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AvailabilityParams {
    /// Start of the period (RFC 3339).
    pub from: DateTime<Utc>,
    /// End of the period (exclusive), at most 366 days after `from`.
    pub to: DateTime<Utc>,
    /// Quantity wanted (default 1): nearest free periods are given when less is free.
    #[param(minimum = 1, maximum = 10000)]
    pub quantity: Option<i64>,
}

/// Query parameters of the rental list. Keyset parameters win over `page`/`per_page`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RentalListParams {
    /// Offset pagination: page number, 1 to 1,000,000,000.
    #[param(minimum = 1, maximum = 1000000000)]
    pub page: Option<u64>,
    /// Offset pagination: 1–100, default 20.
    #[param(minimum = 1, maximum = 100)]
    pub per_page: Option<u64>,
    /// Keyset pagination: `next_cursor` of the previous page; it continues in that page's order (`sort` is then
    /// ignored). Empty: the first page.
    pub cursor: Option<String>,
    /// Keyset pagination: 1–100, default 50.
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u64>,
    /// Keyset pagination: `false` skips counting all matches.
    pub include_total: Option<bool>,
    /// `created_at` (default `-created_at`) or `starts_at`; prefix `-` for descending.
    #[param(pattern = r"^-?(created_at|starts_at)$")]
    pub sort: Option<String>,
    /// `quote`, `reserved`, `picked_up`, `returned`, `closed`, `cancelled`.
    #[param(value_type = Option<rental_service::openapi::OrderStatusSchema>)]
    pub status: Option<String>,
    /// Customer id (staff; customers always see their own).
    pub customer: Option<Uuid>,
    /// Orders with a line of this product.
    pub product: Option<Uuid>,
    /// Orders whose period ends after this time.
    pub from: Option<DateTime<Utc>>,
    /// Orders whose period starts before this time (a condition of its own: with `from`, the orders that
    /// overlap `[from, to)`, or span both instants when `to` is not after `from`).
    pub to: Option<DateTime<Utc>>,
    /// Orders whose period ends before this time (with `status=picked_up` and `overdue=false`: the returns due
    /// before it and not late yet).
    pub ends_before: Option<DateTime<Utc>>,
    /// `true`: picked up and past their end.
    pub overdue: Option<bool>,
}

/// Query parameters of the invoice list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct InvoiceListParams {
    /// Offset pagination: page number, 1 to 1,000,000,000.
    #[param(minimum = 1, maximum = 1000000000)]
    pub page: Option<u64>,
    /// Offset pagination: 1–100, default 20.
    #[param(minimum = 1, maximum = 100)]
    pub per_page: Option<u64>,
    /// Keyset pagination: `next_cursor` of the previous page; it continues in that page's order (`sort` is then
    /// ignored). Empty: the first page.
    pub cursor: Option<String>,
    /// Keyset pagination: 1–100, default 50.
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u64>,
    /// `draft`, `open`, `paid`, `void`.
    #[param(pattern = r"^(draft|open|paid|void)$")]
    pub status: Option<String>,
    /// Customer id (staff; customers always see their own).
    pub customer: Option<Uuid>,
}

// ---- handlers -----------------------------------------------------------------------------------------------

/// Create a rental order: a quote, or a reservation that checks and holds the stock atomically and issues
/// the invoice. When stock is short: 409 `unavailable` listing the failed lines with their nearest free
/// periods. Prices are the cheapest month/week/day cover of each line's started days, snapshotted.
#[utoipa::path(tag = "rentals", security(("bearer" = [])), params(IdempotencyKeyHeader), request_body = CreateRentalRequest,
    responses((status = 201, body = OrderView, description = "The order"), (status = 401, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope), (status = 409, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope)))]
#[post("/rentals")]
pub async fn create(
    state: web::Data<AppState>,
    auth: Auth,
    body: Idempotent<Json<CreateRentalRequest>>,
) -> ApiResult<HttpResponse> {
    let claim = body.claim(&auth.0, StatusCode::CREATED);
    let b = body.body.into_inner();
    let new = NewRental {
        customer_id: b.customer_id,
        status: b.status,
        notes: b.notes,
        lines: b
            .lines
            .into_iter()
            .map(|l| NewRentalLine { product_id: l.product_id, quantity: l.quantity, start: l.start, end: l.end })
            .collect(),
    };
    respond(&state, claim, StatusCode::CREATED, async |claim| {
        state.services.rentals.idempotent(claim).create(&auth.0, new).await
    })
    .await
}

/// List rental orders: customers see their own, staff all. Filters, sort and both pagination styles.
/// Pagination: `page`/`per_page` (offset) or `cursor`/`limit` (keyset); keyset parameters take precedence, and
/// `page`/`per_page` are then ignored. A cursor continues the listing it came from in that listing's order (`sort`
/// is then ignored); an empty cursor starts at the first page.
#[utoipa::path(tag = "rentals", security(("bearer" = [])), params(RentalListParams),
    responses((status = 200, body = PageOf<OrderView>, description = "A page of orders"), (status = 400, body = ErrorEnvelope)))]
#[get("/rentals")]
pub async fn list(
    state: web::Data<AppState>,
    auth: Auth,
    query: QueryPairs,
) -> ApiResult<web::Json<Listing<OrderView>>> {
    Ok(web::Json(state.services.rentals.list(&auth.0, &query.0).await?))
}

/// One rental order with its lines, products, customer, invoice and payments (a constant number of
/// statements).
#[utoipa::path(tag = "rentals", security(("bearer" = [])), params(("id" = uuid::Uuid, Path, description = "Order id")),
    responses((status = 200, body = OrderDetailView, description = "The order"), (status = 404, body = ErrorEnvelope)))]
#[get("/rentals/{id}")]
pub async fn get(
    state: web::Data<AppState>,
    auth: Auth,
    id: web::Path<String>,
) -> ApiResult<web::Json<OrderDetailView>> {
    let id = parse_id(&id, "rental")?;
    Ok(web::Json(state.services.rentals.get(&auth.0, id).await?))
}

/// The order's event log: who moved it from which status to which, when, with what note.
#[utoipa::path(tag = "rentals", security(("bearer" = [])), params(("id" = uuid::Uuid, Path, description = "Order id")),
    responses((status = 200, body = Vec<OrderEventView>, description = "Events, oldest first"), (status = 404, body = ErrorEnvelope)))]
#[get("/rentals/{id}/events")]
pub async fn events(
    state: web::Data<AppState>,
    auth: Auth,
    id: web::Path<String>,
) -> ApiResult<web::Json<Vec<OrderEventView>>> {
    let id = parse_id(&id, "rental")?;
    Ok(web::Json(state.services.rentals.events(&auth.0, id).await?))
}

/// `quote → reserved`: check and hold the stock at the quoted prices and issue the invoice.
#[utoipa::path(tag = "rentals", security(("bearer" = [])), params(("id" = uuid::Uuid, Path, description = "Order id"), IdempotencyKeyHeader),
    request_body = Option<TransitionRequest>,
    responses((status = 200, body = OrderView, description = "The order"), (status = 404, body = ErrorEnvelope),
        (status = 409, body = ErrorEnvelope)))]
#[post("/rentals/{id}/confirm")]
pub async fn confirm(
    state: web::Data<AppState>,
    auth: Auth,
    id: web::Path<String>,
    req: Idempotent<OptionalJson<TransitionRequest>>,
) -> ApiResult<HttpResponse> {
    let id = parse_id(&id, "rental")?;
    let claim = req.claim(&auth.0, StatusCode::OK);
    let note = req.body.unwrap_or_default().note;
    respond(&state, claim, StatusCode::OK, async |claim| {
        state.services.rentals.idempotent(claim).confirm(&auth.0, id, note).await
    })
    .await
}

/// `quote|reserved → cancelled`: release the stock, void the invoice.
#[utoipa::path(tag = "rentals", security(("bearer" = [])), params(("id" = uuid::Uuid, Path, description = "Order id"), IdempotencyKeyHeader),
    request_body = Option<TransitionRequest>,
    responses((status = 200, body = OrderView, description = "The order"), (status = 404, body = ErrorEnvelope),
        (status = 409, body = ErrorEnvelope)))]
#[post("/rentals/{id}/cancel")]
pub async fn cancel(
    state: web::Data<AppState>,
    auth: Auth,
    id: web::Path<String>,
    req: Idempotent<OptionalJson<TransitionRequest>>,
) -> ApiResult<HttpResponse> {
    let id = parse_id(&id, "rental")?;
    let claim = req.claim(&auth.0, StatusCode::OK);
    let note = req.body.unwrap_or_default().note;
    respond(&state, claim, StatusCode::OK, async |claim| {
        state.services.rentals.idempotent(claim).cancel(&auth.0, id, note).await
    })
    .await
}

/// `reserved → picked_up` (staff): hand out tracked units.
#[utoipa::path(tag = "rentals", security(("bearer" = [])), params(("id" = uuid::Uuid, Path, description = "Order id"), IdempotencyKeyHeader),
    request_body = Option<PickupRequest>,
    responses((status = 200, body = OrderView, description = "The order"), (status = 403, body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope), (status = 409, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope)))]
#[post("/rentals/{id}/pickup")]
pub async fn pickup(
    state: web::Data<AppState>,
    auth: Auth,
    id: web::Path<String>,
    req: Idempotent<OptionalJson<PickupRequest>>,
) -> ApiResult<HttpResponse> {
    let id = parse_id(&id, "rental")?;
    let claim = req.claim(&auth.0, StatusCode::OK);
    let b = req.body.unwrap_or_default();
    let units = b.units.into_iter().map(|u| PickupLine { line_id: u.line_id, unit_ids: u.unit_ids }).collect();
    respond(&state, claim, StatusCode::OK, async |claim| {
        state.services.rentals.idempotent(claim).pickup(&auth.0, id, units, b.note).await
    })
    .await
}

/// `picked_up → returned` (staff): record conditions and damage; late fees and damage charges go on the
/// invoice.
#[utoipa::path(tag = "rentals", security(("bearer" = [])), params(("id" = uuid::Uuid, Path, description = "Order id"), IdempotencyKeyHeader),
    request_body = Option<ReturnRequest>,
    responses((status = 200, body = OrderView, description = "The order"), (status = 403, body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope), (status = 409, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope)))]
#[post("/rentals/{id}/return")]
pub async fn return_items(
    state: web::Data<AppState>,
    auth: Auth,
    id: web::Path<String>,
    req: Idempotent<OptionalJson<ReturnRequest>>,
) -> ApiResult<HttpResponse> {
    let id = parse_id(&id, "rental")?;
    let claim = req.claim(&auth.0, StatusCode::OK);
    let b = req.body.unwrap_or_default();
    let units = b
        .units
        .into_iter()
        .map(|u| ReturnedUnit {
            unit_id: u.unit_id,
            condition: u.condition,
            damage_note: u.damage_note,
            damage_charge_minor: u.damage_charge_minor,
        })
        .collect();
    respond(&state, claim, StatusCode::OK, async |claim| {
        state.services.rentals.idempotent(claim).return_items(&auth.0, id, units, b.note).await
    })
    .await
}

/// `returned → closed` (staff).
#[utoipa::path(tag = "rentals", security(("bearer" = [])), params(("id" = uuid::Uuid, Path, description = "Order id"), IdempotencyKeyHeader),
    request_body = Option<TransitionRequest>,
    responses((status = 200, body = OrderView, description = "The order"), (status = 403, body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope), (status = 409, body = ErrorEnvelope)))]
#[post("/rentals/{id}/close")]
pub async fn close(
    state: web::Data<AppState>,
    auth: Auth,
    id: web::Path<String>,
    req: Idempotent<OptionalJson<TransitionRequest>>,
) -> ApiResult<HttpResponse> {
    let id = parse_id(&id, "rental")?;
    let claim = req.claim(&auth.0, StatusCode::OK);
    let note = req.body.unwrap_or_default().note;
    respond(&state, claim, StatusCode::OK, async |claim| {
        state.services.rentals.idempotent(claim).close(&auth.0, id, note).await
    })
    .await
}

/// Free quantity of a product over `[from, to)`, per day; when less than `quantity` is free, the nearest
/// free periods of the same length. Buffer time and maintenance blocks count as booked. Public.
#[utoipa::path(tag = "rentals", params(("id" = uuid::Uuid, Path, description = "Product id"), AvailabilityParams),
    responses((status = 200, body = AvailabilityView, description = "Availability"), (status = 400, body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope),
        (status = 304, description = "Not modified: the `If-None-Match` tag is current")))]
#[get("/products/{id}/availability")]
pub async fn availability(
    state: web::Data<AppState>,
    id: web::Path<String>,
    query: web::Query<AvailabilityParams>,
    req: HttpRequest,
) -> ApiResult<HttpResponse> {
    let id = parse_id(&id, "product")?;
    let q = query.into_inner();
    let view = state.services.rentals.availability(id, q.from, q.to, q.quantity).await?;
    crate::http_cache::json_of(&req, &view, crate::http_cache::Visibility::Public)
}

/// Take a unit out of service for a period (staff). 409 `unavailable` when reservations need it then.
#[utoipa::path(tag = "rentals", security(("bearer" = [])), params(("id" = uuid::Uuid, Path, description = "Unit id")),
    request_body = MaintenanceRequest,
    responses((status = 201, body = MaintenanceView, description = "The block"), (status = 403, body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope), (status = 409, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope)))]
#[post("/units/{id}/maintenance")]
pub async fn add_maintenance(
    state: web::Data<AppState>,
    auth: Auth,
    id: web::Path<String>,
    req: Json<MaintenanceRequest>,
) -> ApiResult<HttpResponse> {
    let id = parse_id(&id, "unit")?;
    let b = req.into_inner();
    let block: MaintenanceView = state.services.rentals.add_maintenance(&auth.0, id, b.start, b.end, b.reason).await?;
    Ok(HttpResponse::Created().json(block))
}

/// List invoices: customers see their own, staff all.
/// Pagination: `page`/`per_page` (offset) or `cursor`/`limit` (keyset); keyset parameters take precedence, and
/// `page`/`per_page` are then ignored. A cursor continues the listing it came from in that listing's order (`sort`
/// is then ignored); an empty cursor starts at the first page.
#[utoipa::path(tag = "rentals", security(("bearer" = [])), params(InvoiceListParams),
    responses((status = 200, body = PageOf<InvoiceView>, description = "A page of invoices"), (status = 400, body = ErrorEnvelope)))]
#[get("/invoices")]
pub async fn list_invoices(
    state: web::Data<AppState>,
    auth: Auth,
    query: QueryPairs,
) -> ApiResult<web::Json<Listing<InvoiceView>>> {
    Ok(web::Json(state.services.billing.list_invoices(&auth.0, &query.0).await?))
}

/// One invoice with its lines and payments.
#[utoipa::path(tag = "rentals", security(("bearer" = [])), params(("id" = uuid::Uuid, Path, description = "Invoice id")),
    responses((status = 200, body = InvoiceView, description = "The invoice"), (status = 404, body = ErrorEnvelope)))]
#[get("/invoices/{id}")]
pub async fn get_invoice(
    state: web::Data<AppState>,
    auth: Auth,
    id: web::Path<String>,
) -> ApiResult<web::Json<InvoiceView>> {
    let id = parse_id(&id, "invoice")?;
    Ok(web::Json(state.services.billing.get_invoice(&auth.0, id).await?))
}

/// Record a payment of an open invoice (staff); fully paid invoices become `paid`.
#[utoipa::path(tag = "rentals", security(("bearer" = [])), params(("id" = uuid::Uuid, Path, description = "Invoice id"), IdempotencyKeyHeader),
    request_body = PaymentRequest,
    responses((status = 201, body = PaymentView, description = "The payment"), (status = 403, body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope)))]
#[post("/invoices/{id}/payments")]
pub async fn record_payment(
    state: web::Data<AppState>,
    auth: Auth,
    id: web::Path<String>,
    req: Idempotent<Json<PaymentRequest>>,
) -> ApiResult<HttpResponse> {
    let id = parse_id(&id, "invoice")?;
    let claim = req.claim(&auth.0, StatusCode::CREATED);
    let b = req.body.into_inner();
    let new =
        NewPayment { amount_minor: b.amount_minor, currency: b.currency, method: b.method, reference: b.reference };
    respond(&state, claim, StatusCode::CREATED, async |claim| {
        state.services.billing.idempotent(claim).record_payment(&auth.0, id, new).await
    })
    .await
}
