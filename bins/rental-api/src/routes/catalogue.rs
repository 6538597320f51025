//! `/api/v1/categories`, `/locations`, `/products`: the catalogue. Reads are public (a token, when sent, lets
//! staff see inactive products); writes need the staff or admin role.
//!
//! Money travels as flat fields in minor units next to one `currency` per product: `price_per_day_minor`,
//! `price_per_week_minor`, `price_per_month_minor`, `deposit_minor`, `late_fee_per_day_minor`.

use actix_web::web::Bytes;
use actix_web::{HttpRequest, HttpResponse, delete, get, patch, post, put, web};
use chrono::{DateTime, Utc};
use rental_service::{
    CategoryUpdate, CategoryView, LocationView, NewCategory, NewLocation, NewProduct, NewUnit, ProductDetailView,
    ProductListView, ProductUpdate, ProductView, StockLevelView, UnitView,
};
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::error::{ApiResult, ErrorEnvelope};
use crate::extract::{Auth, MaybeAuth, QueryPairs};
use crate::json::Json;
use crate::routes::{PageOf, parse_id};
use crate::state::AppState;

/// Distinguishes a field that is absent (`None`) from one that is `null` (`Some(None)`) in a PATCH body.
fn double_option<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

// ---- responses ----------------------------------------------------------------------------------------------
//
// Handlers answer with the service's views (`CategoryView`, `ProductView`, ...), whose schemas the service
// derives behind its `openapi` feature; only the envelopes of lists are defined here.

/// Units added to a product.
#[derive(Debug, Serialize, ToSchema)]
pub struct UnitsResponse {
    /// The new units, in request order.
    pub units: Vec<UnitView>,
}

/// Every category, by name.
#[derive(Debug, Serialize, ToSchema)]
pub struct CategoryList {
    /// The categories.
    pub items: Vec<CategoryView>,
}

/// Every location, by name.
#[derive(Debug, Serialize, ToSchema)]
pub struct LocationList {
    /// The locations.
    pub items: Vec<LocationView>,
}

// ---- requests -----------------------------------------------------------------------------------------------

/// A new category.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateCategoryRequest {
    /// Name (1–100 characters) with a letter or a digit; unique regardless of case, spaces and punctuation (its
    /// slug is made of its letters and digits).
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[\p{L}\p{N}][^\u0000-\u001f\u007f-\u009f]*$"
    )]
    pub name: String,
    /// Description (up to 2000 characters).
    #[schema(max_length = 2000)]
    pub description: Option<String>,
}

/// Changes to a category.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateCategoryRequest {
    /// New name, with a letter or a digit.
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[\p{L}\p{N}][^\u0000-\u001f\u007f-\u009f]*$"
    )]
    pub name: Option<String>,
    /// New description; `null` clears it.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub description: Option<Option<String>>,
}

/// A new location.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateLocationRequest {
    /// Unique name (1–100 characters).
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$"
    )]
    pub name: String,
    /// Postal address.
    pub address: Option<String>,
}

/// A new product. Amounts are minor units (cents) of `currency`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateProductRequest {
    /// Its category.
    pub category_id: Uuid,
    /// Unique stock-keeping unit: 1–64 letters, digits, `-`, `_`, `.`, `/`.
    #[schema(example = "DRL-18V")]
    #[schema(pattern = r"^[A-Za-z0-9._/-]{1,64}$")]
    pub sku: String,
    /// Name (1–200 characters).
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$"
    )]
    pub name: String,
    /// Description.
    pub description: Option<String>,
    /// ISO 4217 code of every amount.
    #[schema(example = "EUR")]
    #[schema(pattern = r"^[A-Z]{3}$")]
    pub currency: String,
    /// Price of one day.
    #[schema(example = 1500)]
    #[schema(minimum = 0)]
    pub price_per_day_minor: i64,
    /// Price of seven days.
    #[schema(minimum = 0)]
    pub price_per_week_minor: Option<i64>,
    /// Price of thirty days.
    #[schema(minimum = 0)]
    pub price_per_month_minor: Option<i64>,
    /// Deposit per item; default 0.
    #[schema(minimum = 0)]
    pub deposit_minor: Option<i64>,
    /// Late fee per day; default 0.
    #[schema(minimum = 0)]
    pub late_fee_per_day_minor: Option<i64>,
    /// Minutes kept free after each rental, 0–10080; default 0.
    #[schema(minimum = 0, maximum = 10080)]
    pub buffer_minutes: Option<i64>,
    /// Default true.
    pub is_active: Option<bool>,
}

/// Changes to a product; absent fields are kept, `null` clears an optional one.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateProductRequest {
    /// New category.
    pub category_id: Option<Uuid>,
    /// New SKU.
    #[schema(pattern = r"^[A-Za-z0-9._/-]{1,64}$")]
    pub sku: Option<String>,
    /// New name.
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$"
    )]
    pub name: Option<String>,
    /// New description; `null` clears it.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub description: Option<Option<String>>,
    /// New currency of every amount.
    #[schema(pattern = r"^[A-Z]{3}$")]
    pub currency: Option<String>,
    /// New day price.
    #[schema(minimum = 0)]
    pub price_per_day_minor: Option<i64>,
    /// New week price; `null` removes it.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<i64>, minimum = 0)]
    pub price_per_week_minor: Option<Option<i64>>,
    /// New month price; `null` removes it.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<i64>, minimum = 0)]
    pub price_per_month_minor: Option<Option<i64>>,
    /// New deposit.
    #[schema(minimum = 0)]
    pub deposit_minor: Option<i64>,
    /// New late fee.
    #[schema(minimum = 0)]
    pub late_fee_per_day_minor: Option<i64>,
    /// New buffer.
    #[schema(minimum = 0, maximum = 10080)]
    pub buffer_minutes: Option<i64>,
    /// Activate or deactivate.
    pub is_active: Option<bool>,
}

/// One unit to add.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UnitRequest {
    /// Unique serial number: 1–64 letters, digits, `-`, `_`, `.`, `/`.
    #[schema(pattern = r"^[A-Za-z0-9._/-]{1,64}$")]
    pub serial_number: String,
    /// `new` (default), `good`, `fair` or `damaged`.
    #[schema(value_type = Option<rental_service::openapi::UnitConditionSchema>)]
    pub condition: Option<String>,
    /// Where it is kept.
    pub location_id: Uuid,
}

/// 1–1000 units added together, all or nothing.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddUnitsRequest {
    /// The units.
    #[schema(min_items = 1, max_items = 1000)]
    pub units: Vec<UnitRequest>,
}

/// A bulk quantity.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StockRequest {
    /// Items at the location, 0 or more.
    #[schema(minimum = 0, maximum = 2147483647)]
    pub quantity: i64,
}

/// Query parameters of the product list. Keyset parameters win over `page`/`per_page`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ProductListParams {
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
    /// `created_at` (default `-created_at`), `name`, `price_per_day`; prefix `-` for descending.
    #[param(pattern = r"^-?(created_at|name|price_per_day)$")]
    pub sort: Option<String>,
    /// Search in name, SKU and description, up to 200 characters.
    #[param(max_length = 200)]
    pub q: Option<String>,
    /// Category id.
    pub category: Option<Uuid>,
    /// Staff only; everyone else sees active products only.
    pub is_active: Option<bool>,
    /// Location id: products with a unit or a positive bulk quantity there.
    pub location: Option<Uuid>,
    /// Lowest day price, minor units.
    #[param(minimum = 0)]
    pub min_price: Option<i64>,
    /// Highest day price, minor units.
    #[param(minimum = 0)]
    pub max_price: Option<i64>,
    /// Start of an availability window (RFC 3339, or a date meaning its midnight UTC); needs `available_to`.
    /// Lists only products with at least one item free at every instant of `[available_from, available_to)`:
    /// units plus bulk quantity, minus the quantities of order lines holding stock then (their buffer
    /// included) and one per maintenance block. Pages are cached for a few seconds, so a booking made
    /// meanwhile may not show yet: the reservation itself is authoritative.
    pub available_from: Option<DateTime<Utc>>,
    /// End (excluded) of the availability window; needs `available_from`, must be later and at most 366 days
    /// after it.
    pub available_to: Option<DateTime<Utc>>,
}

// ---- handlers -----------------------------------------------------------------------------------------------

/// Every category, by name. Public.
/// Answers carry an `ETag`; a matching `If-None-Match` gets a 304.
#[utoipa::path(tag = "catalogue", responses((status = 200, body = CategoryList),
    (status = 304, description = "Not modified: the `If-None-Match` tag is current")))]
#[get("/categories")]
pub async fn list_categories(state: web::Data<AppState>, req: HttpRequest) -> ApiResult<HttpResponse> {
    let items = state.services.catalogue.list_categories().await?;
    crate::http_cache::json_of(&req, &CategoryList { items }, crate::http_cache::Visibility::Public)
}

/// Create a category (staff).
#[utoipa::path(tag = "catalogue", security(("bearer" = [])), request_body = CreateCategoryRequest,
    responses((status = 201, body = CategoryView), (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope),
        (status = 409, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope)))]
#[post("/categories")]
pub async fn create_category(
    state: web::Data<AppState>,
    auth: Auth,
    body: Json<CreateCategoryRequest>,
) -> ApiResult<HttpResponse> {
    let b = body.into_inner();
    let new = NewCategory { name: b.name, description: b.description };
    let category = state.services.catalogue.create_category(&auth.0, new).await?;
    Ok(HttpResponse::Created().json(category))
}

/// One category. Public.
#[utoipa::path(tag = "catalogue", params(("id" = uuid::Uuid, Path, description = "Category id")),
    responses((status = 200, body = CategoryView), (status = 400, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
#[get("/categories/{id}")]
pub async fn get_category(state: web::Data<AppState>, id: web::Path<String>) -> ApiResult<web::Json<CategoryView>> {
    let id = parse_id(&id, "category")?;
    Ok(web::Json(state.services.catalogue.get_category(id).await?))
}

/// Change a category (staff).
#[utoipa::path(tag = "catalogue", security(("bearer" = [])), params(("id" = uuid::Uuid, Path, description = "Category id")),
    request_body = UpdateCategoryRequest,
    responses((status = 200, body = CategoryView), (status = 404, body = ErrorEnvelope), (status = 409, body = ErrorEnvelope),
        (status = 422, body = ErrorEnvelope)))]
#[patch("/categories/{id}")]
pub async fn update_category(
    state: web::Data<AppState>,
    auth: Auth,
    id: web::Path<String>,
    body: Json<UpdateCategoryRequest>,
) -> ApiResult<web::Json<CategoryView>> {
    let id = parse_id(&id, "category")?;
    let b = body.into_inner();
    let update = CategoryUpdate { name: b.name, description: b.description };
    Ok(web::Json(state.services.catalogue.update_category(&auth.0, id, update).await?))
}

/// Delete a category that no product belongs to (staff).
#[utoipa::path(tag = "catalogue", security(("bearer" = [])), params(("id" = uuid::Uuid, Path, description = "Category id")),
    responses((status = 204, description = "Deleted"), (status = 404, body = ErrorEnvelope), (status = 409, body = ErrorEnvelope)))]
#[delete("/categories/{id}")]
pub async fn delete_category(state: web::Data<AppState>, auth: Auth, id: web::Path<String>) -> ApiResult<HttpResponse> {
    let id = parse_id(&id, "category")?;
    state.services.catalogue.delete_category(&auth.0, id).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Every location, by name. Public.
#[utoipa::path(tag = "catalogue", responses((status = 200, body = LocationList)))]
#[get("/locations")]
pub async fn list_locations(state: web::Data<AppState>) -> ApiResult<web::Json<LocationList>> {
    let items = state.services.catalogue.list_locations().await?;
    Ok(web::Json(LocationList { items }))
}

/// Create a location (staff).
#[utoipa::path(tag = "catalogue", security(("bearer" = [])), request_body = CreateLocationRequest,
    responses((status = 201, body = LocationView), (status = 403, body = ErrorEnvelope), (status = 409, body = ErrorEnvelope),
        (status = 422, body = ErrorEnvelope)))]
#[post("/locations")]
pub async fn create_location(
    state: web::Data<AppState>,
    auth: Auth,
    body: Json<CreateLocationRequest>,
) -> ApiResult<HttpResponse> {
    let b = body.into_inner();
    let location =
        state.services.catalogue.create_location(&auth.0, NewLocation { name: b.name, address: b.address }).await?;
    Ok(HttpResponse::Created().json(location))
}

/// List products with their category and stock. Public: without a staff token only active products are
/// listed. Filters, sort and search are checked against a whitelist; an unknown one is a 400 naming it.
/// `available_from` and `available_to` go together (a 400 names the missing one). Pages are cached for
/// `cache.list_ttl_secs` (5 s by default) and cleared by every catalogue write on this instance.
#[utoipa::path(tag = "catalogue", security((), ("bearer" = [])), params(ProductListParams),
    responses((status = 200, body = PageOf<ProductListView>), (status = 400, body = ErrorEnvelope),
        (status = 304, description = "Not modified: the `If-None-Match` tag is current")))]
#[get("/products")]
pub async fn list_products(
    state: web::Data<AppState>,
    auth: MaybeAuth,
    query: QueryPairs,
    req: HttpRequest,
) -> ApiResult<HttpResponse> {
    let page = state.services.catalogue.list_products(auth.principal(), &query.0).await?;
    // The cached page's JSON (`ProductListView` serialises exactly like `ProductListView`) is encoded
    // once and shared by every response that serves it.
    page.json()?;
    let visibility = crate::http_cache::Visibility::for_caller(auth.principal().is_some());
    Ok(crate::http_cache::json(&req, Bytes::from_owner(super::PageJson(page)), visibility))
}

/// Create a product (staff).
#[utoipa::path(tag = "catalogue", security(("bearer" = [])), request_body = CreateProductRequest,
    responses((status = 201, body = ProductView), (status = 403, body = ErrorEnvelope), (status = 409, body = ErrorEnvelope),
        (status = 422, body = ErrorEnvelope)))]
#[post("/products")]
pub async fn create_product(
    state: web::Data<AppState>,
    auth: Auth,
    body: Json<CreateProductRequest>,
) -> ApiResult<HttpResponse> {
    let b = body.into_inner();
    let new = NewProduct {
        category_id: b.category_id,
        sku: b.sku,
        name: b.name,
        description: b.description,
        currency: b.currency,
        price_per_day_minor: b.price_per_day_minor,
        price_per_week_minor: b.price_per_week_minor,
        price_per_month_minor: b.price_per_month_minor,
        deposit_minor: b.deposit_minor,
        late_fee_per_day_minor: b.late_fee_per_day_minor,
        buffer_minutes: b.buffer_minutes,
        is_active: b.is_active,
    };
    let product = state.services.catalogue.create_product(&auth.0, new).await?;
    Ok(HttpResponse::Created().json(product))
}

/// One product with its category and stock per location. Public; inactive products only for staff.
#[utoipa::path(tag = "catalogue", security((), ("bearer" = [])), params(("id" = uuid::Uuid, Path, description = "Product id")),
    responses((status = 200, body = ProductDetailView), (status = 400, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope),
        (status = 304, description = "Not modified: the `If-None-Match` tag is current")))]
#[get("/products/{id}")]
pub async fn get_product(
    state: web::Data<AppState>,
    auth: MaybeAuth,
    id: web::Path<String>,
    req: HttpRequest,
) -> ApiResult<HttpResponse> {
    let id = parse_id(&id, "product")?;
    let product = state.services.catalogue.get_product(auth.principal(), id).await?;
    crate::http_cache::json_of(&req, &product, crate::http_cache::Visibility::for_caller(auth.principal().is_some()))
}

/// Change a product (staff).
#[utoipa::path(tag = "catalogue", security(("bearer" = [])), params(("id" = uuid::Uuid, Path, description = "Product id")),
    request_body = UpdateProductRequest,
    responses((status = 200, body = ProductView), (status = 404, body = ErrorEnvelope), (status = 409, body = ErrorEnvelope),
        (status = 422, body = ErrorEnvelope)))]
#[patch("/products/{id}")]
pub async fn update_product(
    state: web::Data<AppState>,
    auth: Auth,
    id: web::Path<String>,
    body: Json<UpdateProductRequest>,
) -> ApiResult<web::Json<ProductView>> {
    let id = parse_id(&id, "product")?;
    let b = body.into_inner();
    let update = ProductUpdate {
        category_id: b.category_id,
        sku: b.sku,
        name: b.name,
        description: b.description,
        currency: b.currency,
        price_per_day_minor: b.price_per_day_minor,
        price_per_week_minor: b.price_per_week_minor,
        price_per_month_minor: b.price_per_month_minor,
        deposit_minor: b.deposit_minor,
        late_fee_per_day_minor: b.late_fee_per_day_minor,
        buffer_minutes: b.buffer_minutes,
        is_active: b.is_active,
    };
    Ok(web::Json(state.services.catalogue.update_product(&auth.0, id, update).await?))
}

/// Delete a product with its units and stock levels (staff). A product that a rental order names is kept for
/// the order's history: 409 `conflict` (deactivate it instead).
#[utoipa::path(tag = "catalogue", security(("bearer" = [])), params(("id" = uuid::Uuid, Path, description = "Product id")),
    responses((status = 204, description = "Deleted"), (status = 404, body = ErrorEnvelope),
        (status = 409, body = ErrorEnvelope, description = "A rental order names the product")))]
#[delete("/products/{id}")]
pub async fn delete_product(state: web::Data<AppState>, auth: Auth, id: web::Path<String>) -> ApiResult<HttpResponse> {
    let id = parse_id(&id, "product")?;
    state.services.catalogue.delete_product(&auth.0, id).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Add 1–1000 individually tracked units to a product, all or nothing (staff).
#[utoipa::path(tag = "catalogue", security(("bearer" = [])), params(("id" = uuid::Uuid, Path, description = "Product id")),
    request_body = AddUnitsRequest,
    responses((status = 201, body = UnitsResponse), (status = 404, body = ErrorEnvelope), (status = 409, body = ErrorEnvelope),
        (status = 422, body = ErrorEnvelope)))]
#[post("/products/{id}/units")]
pub async fn add_units(
    state: web::Data<AppState>,
    auth: Auth,
    id: web::Path<String>,
    body: Json<AddUnitsRequest>,
) -> ApiResult<HttpResponse> {
    let id = parse_id(&id, "product")?;
    let units = body
        .into_inner()
        .units
        .into_iter()
        .map(|u| NewUnit { serial_number: u.serial_number, condition: u.condition, location_id: u.location_id })
        .collect();
    let added = state.services.catalogue.add_units(&auth.0, id, units).await?;
    Ok(HttpResponse::Created().json(UnitsResponse { units: added }))
}

/// Set the bulk quantity of a product at a location (staff).
#[utoipa::path(tag = "catalogue", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Product id"), ("location_id" = uuid::Uuid, Path, description = "Location id")),
    request_body = StockRequest,
    responses((status = 200, body = StockLevelView), (status = 404, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope)))]
#[put("/products/{id}/stock/{location_id}")]
pub async fn set_stock(
    state: web::Data<AppState>,
    auth: Auth,
    path: web::Path<(String, String)>,
    body: Json<StockRequest>,
) -> ApiResult<web::Json<StockLevelView>> {
    let (id, location_id) = path.into_inner();
    let id = parse_id(&id, "product")?;
    let location_id = parse_id(&location_id, "location")?;
    let level = state.services.catalogue.set_stock_level(&auth.0, id, location_id, body.quantity).await?;
    Ok(web::Json(level))
}
