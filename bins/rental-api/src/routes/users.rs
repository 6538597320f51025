//! `/api/v1/users/*`: one's own profile, and user administration for admins.

use actix_web::http::header::ContentType;
use actix_web::web::Bytes;
use actix_web::{HttpResponse, delete, get, patch, post, put, web};
use rental_domain::{Role, UserId};

use rental_service::{NewUser, ProfileUpdate, UserUpdate, UserView};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::error::{ApiError, ApiResult, ErrorEnvelope};
use crate::extract::{Auth, QueryPairs};
use crate::json::Json;
use crate::routes::PageOf;
use crate::state::AppState;

/// Changes to one's own profile.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProfileUpdateRequest {
    /// New e-mail address.
    #[schema(
        min_length = 3,
        max_length = 254,
        pattern = r"^[^\s@\u0000-\u001f\u007f-\u009f]+@[^\s@.\u0000-\u001f\u007f-\u009f]+(\.[^\s@.\u0000-\u001f\u007f-\u009f]+)+$"
    )]
    pub email: Option<String>,
    /// New display name.
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$"
    )]
    pub full_name: Option<String>,
}

/// A password change.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordChangeRequest {
    /// The password in use now.
    pub current_password: String,
    /// The new password (8–128 characters).
    #[schema(min_length = 8, max_length = 128)]
    pub new_password: String,
}

/// A user created by an admin.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUserRequest {
    /// E-mail address.
    #[schema(
        min_length = 3,
        max_length = 254,
        pattern = r"^[^\s@\u0000-\u001f\u007f-\u009f]+@[^\s@.\u0000-\u001f\u007f-\u009f]+(\.[^\s@.\u0000-\u001f\u007f-\u009f]+)+$"
    )]
    pub email: String,
    /// Display name.
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$"
    )]
    pub full_name: String,
    /// Password; without one the account cannot log in until an admin sets one.
    #[schema(min_length = 8, max_length = 128)]
    pub password: Option<String>,
    /// Defaults to true.
    pub is_active: Option<bool>,
    /// Defaults to false.
    pub is_superuser: Option<bool>,
    /// Defaults to `["customer"]`.
    #[schema(value_type = Option<Vec<rental_service::openapi::RoleSchema>>)]
    pub roles: Option<Vec<Role>>,
}

impl From<CreateUserRequest> for NewUser {
    fn from(r: CreateUserRequest) -> Self {
        Self {
            email: r.email,
            full_name: r.full_name,
            password: r.password,
            is_active: r.is_active,
            is_superuser: r.is_superuser,
            roles: r.roles,
        }
    }
}

/// Up to 10,000 users created together, all or nothing.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkCreateRequest {
    /// The users.
    #[schema(min_items = 1, max_items = 10000)]
    pub users: Vec<CreateUserRequest>,
}

/// Result of a bulk creation.
#[derive(Debug, Serialize, ToSchema)]
pub struct BulkCreateResponse {
    /// Users created.
    pub created: usize,
}

/// Changes an admin makes to a user.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateUserRequest {
    /// New e-mail address.
    #[schema(
        min_length = 3,
        max_length = 254,
        pattern = r"^[^\s@\u0000-\u001f\u007f-\u009f]+@[^\s@.\u0000-\u001f\u007f-\u009f]+(\.[^\s@.\u0000-\u001f\u007f-\u009f]+)+$"
    )]
    pub email: Option<String>,
    /// New display name.
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$"
    )]
    pub full_name: Option<String>,
    /// New password.
    #[schema(min_length = 8, max_length = 128)]
    pub password: Option<String>,
    /// Activate or deactivate; deactivation also stops the user's existing tokens.
    pub is_active: Option<bool>,
    /// Grant or revoke superuser.
    pub is_superuser: Option<bool>,
}

/// The full set of roles of a user.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RolesRequest {
    /// `admin`, `staff`, `customer`.
    #[schema(value_type = Vec<rental_service::openapi::RoleSchema>, example = json!(["staff"]))]
    pub roles: Vec<Role>,
}

/// Query parameters of the user list. Keyset parameters win over `page`/`per_page`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UserListParams {
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
    /// `created_at` (default `-created_at`), `email`, `full_name`; prefix `-` for descending.
    #[param(pattern = r"^-?(created_at|email|full_name)$")]
    pub sort: Option<String>,
    /// Search in e-mail and name, up to 200 characters.
    #[param(max_length = 200)]
    pub q: Option<String>,
    /// Filter.
    pub is_active: Option<bool>,
    /// Filter.
    pub is_superuser: Option<bool>,
    /// Filter: `admin`, `staff` or `customer`.
    #[param(value_type = Option<rental_service::openapi::RoleSchema>)]
    pub role: Option<String>,
    /// Created at or after (RFC 3339 or YYYY-MM-DD).
    #[param(format = Date)]
    pub created_after: Option<String>,
    /// Created before (RFC 3339 or YYYY-MM-DD).
    #[param(format = Date)]
    pub created_before: Option<String>,
}

fn parse_id(raw: &str) -> ApiResult<UserId> {
    raw.parse().map_err(|_| ApiError::bad_request("invalid_id", format!("`{raw}` is not a valid user id (UUID)")))
}

/// The caller's profile.
#[utoipa::path(tag = "users", security(("bearer" = [])), responses((status = 200, body = UserView), (status = 401, body = ErrorEnvelope)))]
#[get("/users/me")]
pub async fn me(state: web::Data<AppState>, auth: Auth) -> ApiResult<web::Json<UserView>> {
    Ok(web::Json(state.services.users.me(&auth.0).await?))
}

/// Change one's own name or e-mail address.
#[utoipa::path(tag = "users", security(("bearer" = [])), request_body = ProfileUpdateRequest,
    responses((status = 200, body = UserView), (status = 409, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope)))]
#[patch("/users/me")]
pub async fn update_me(
    state: web::Data<AppState>,
    auth: Auth,
    body: Json<ProfileUpdateRequest>,
) -> ApiResult<web::Json<UserView>> {
    let body = body.into_inner();
    let changes = ProfileUpdate { email: body.email, full_name: body.full_name };
    Ok(web::Json(state.services.users.update_me(&auth.0, changes).await?))
}

/// Change one's own password; ends every session of the account. A wrong `current_password` is a 403: the
/// request is valid, the caller is not allowed to make it (a 401 would say that the access token is bad).
#[utoipa::path(tag = "users", security(("bearer" = [])), request_body = PasswordChangeRequest,
    responses((status = 204, description = "Changed"),
        (status = 403, body = ErrorEnvelope, description = "`current_password` is wrong"),
        (status = 422, body = ErrorEnvelope, description = "The new password breaks the rules")))]
#[post("/users/me/password")]
pub async fn change_password(
    state: web::Data<AppState>,
    auth: Auth,
    body: Json<PasswordChangeRequest>,
) -> ApiResult<HttpResponse> {
    state.services.auth.change_password(&auth.0, &body.current_password, &body.new_password).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// List users (admin). Filters, sort and search are checked against a whitelist; an unknown one is a 400
/// naming it.
/// Pagination: `page`/`per_page` (offset) or `cursor`/`limit` (keyset); keyset parameters take precedence, and
/// `page`/`per_page` are then ignored. A cursor continues the listing it came from in that listing's order (`sort`
/// is then ignored); an empty cursor starts at the first page.
#[utoipa::path(tag = "users", security(("bearer" = [])), params(UserListParams),
    responses((status = 200, body = PageOf<UserView>), (status = 400, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope)))]
#[get("/users")]
pub async fn list(state: web::Data<AppState>, auth: Auth, query: QueryPairs) -> ApiResult<HttpResponse> {
    let page = state.services.users.list(&auth.0, &query.0).await?;
    // The cached page's JSON, encoded once and shared by every answer that serves it.
    Ok(HttpResponse::Ok().content_type(ContentType::json()).body(Bytes::from_owner(super::PageJson(page))))
}

/// Create a user (admin).
#[utoipa::path(tag = "users", security(("bearer" = [])), request_body = CreateUserRequest,
    responses((status = 201, body = UserView), (status = 409, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope)))]
#[post("/users")]
pub async fn create(state: web::Data<AppState>, auth: Auth, body: Json<CreateUserRequest>) -> ApiResult<HttpResponse> {
    let user = state.services.users.create(&auth.0, body.into_inner().into()).await?;
    Ok(HttpResponse::Created().json(user))
}

/// Create up to 10,000 users in one transaction (admin). Nothing is written if any row fails; the error
/// names the row's index.
#[utoipa::path(tag = "users", security(("bearer" = [])), request_body = BulkCreateRequest,
    responses((status = 201, body = BulkCreateResponse), (status = 409, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope)))]
#[post("")]
pub async fn bulk_create(
    state: web::Data<AppState>,
    auth: Auth,
    body: Json<BulkCreateRequest>,
) -> ApiResult<HttpResponse> {
    let rows = body.into_inner().users.into_iter().map(NewUser::from).collect();
    let created = state.services.users.bulk_create(&auth.0, rows).await?;
    Ok(HttpResponse::Created().json(BulkCreateResponse { created }))
}

/// One user (admin).
#[utoipa::path(tag = "users", security(("bearer" = [])), params(("id" = uuid::Uuid, Path, description = "User id")),
    responses((status = 200, body = UserView), (status = 404, body = ErrorEnvelope)))]
#[get("/users/{id}")]
pub async fn get(state: web::Data<AppState>, auth: Auth, id: web::Path<String>) -> ApiResult<web::Json<UserView>> {
    let id = parse_id(&id)?;
    Ok(web::Json(state.services.users.get(&auth.0, id).await?))
}

/// Change a user (admin).
#[utoipa::path(tag = "users", security(("bearer" = [])), params(("id" = uuid::Uuid, Path, description = "User id")),
    request_body = UpdateUserRequest,
    responses((status = 200, body = UserView), (status = 404, body = ErrorEnvelope), (status = 409, body = ErrorEnvelope)))]
#[patch("/users/{id}")]
pub async fn update(
    state: web::Data<AppState>,
    auth: Auth,
    id: web::Path<String>,
    body: Json<UpdateUserRequest>,
) -> ApiResult<web::Json<UserView>> {
    let id = parse_id(&id)?;
    let b = body.into_inner();
    let changes = UserUpdate {
        email: b.email,
        full_name: b.full_name,
        password: b.password,
        is_active: b.is_active,
        is_superuser: b.is_superuser,
    };
    Ok(web::Json(state.services.users.update(&auth.0, id, changes).await?))
}

/// Delete a user (admin).
#[utoipa::path(tag = "users", security(("bearer" = [])), params(("id" = uuid::Uuid, Path, description = "User id")),
    responses((status = 204, description = "Deleted"), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope),
        (status = 409, body = ErrorEnvelope, description = "An admin cannot delete their own account")))]
#[delete("/users/{id}")]
pub async fn remove(state: web::Data<AppState>, auth: Auth, id: web::Path<String>) -> ApiResult<HttpResponse> {
    let id = parse_id(&id)?;
    state.services.users.delete(&auth.0, id).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Replace a user's roles (admin).
#[utoipa::path(tag = "users", security(("bearer" = [])), params(("id" = uuid::Uuid, Path, description = "User id")),
    request_body = RolesRequest,
    responses((status = 200, body = UserView), (status = 404, body = ErrorEnvelope)))]
#[put("/users/{id}/roles")]
pub async fn set_roles(
    state: web::Data<AppState>,
    auth: Auth,
    id: web::Path<String>,
    body: Json<RolesRequest>,
) -> ApiResult<web::Json<UserView>> {
    let id = parse_id(&id)?;
    Ok(web::Json(state.services.users.set_roles(&auth.0, id, body.into_inner().roles).await?))
}
