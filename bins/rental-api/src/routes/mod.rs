//! HTTP handlers. Each parses its input, calls one service method and renders the answer.

pub mod analytics;
pub mod auth;
pub mod catalogue;
pub mod health;
pub mod rentals;
pub mod users;

use chrono::{DateTime, Utc};
use rental_domain::Role;
use rental_service::UserView;
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::error::{ApiError, ApiResult};

/// A path id, or 400 `invalid_id` naming what it should have been.
pub(crate) fn parse_id(raw: &str, what: &str) -> ApiResult<Uuid> {
    raw.parse().map_err(|_| ApiError::bad_request("invalid_id", format!("`{raw}` is not a valid {what} id (UUID)")))
}

/// A user as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct UserResponse {
    /// Id (UUIDv7).
    pub id: Uuid,
    /// Lower-cased e-mail address.
    pub email: String,
    /// Display name.
    pub full_name: String,
    /// Whether the user may log in.
    pub is_active: bool,
    /// Whether the user has every permission.
    pub is_superuser: bool,
    /// Whether a password is set.
    pub has_password: bool,
    /// Roles.
    #[schema(value_type = Vec<String>, example = json!(["customer"]))]
    pub roles: Vec<Role>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

impl From<UserView> for UserResponse {
    fn from(u: UserView) -> Self {
        Self {
            id: u.id.as_uuid(),
            email: u.email,
            full_name: u.full_name,
            is_active: u.is_active,
            is_superuser: u.is_superuser,
            has_password: u.has_password,
            roles: u.roles,
            created_at: u.created_at,
            updated_at: u.updated_at,
        }
    }
}

/// A page of a list, as documented: `{items,total,page,per_page,pages}` for offset pagination,
/// `{items,next_cursor[,total]}` for keyset pagination. Handlers serialise the repository's `Listing`, which has
/// exactly this shape; this type only describes it in the OpenAPI document.
#[derive(Debug, Serialize, ToSchema)]
pub struct PageOf<T: ToSchema> {
    /// The rows.
    pub items: Vec<T>,
    /// All matches (offset pagination, or keyset with `include_total`).
    pub total: Option<u64>,
    /// Offset pagination: this page.
    pub page: Option<u64>,
    /// Offset pagination: page size.
    pub per_page: Option<u64>,
    /// Offset pagination: number of pages.
    pub pages: Option<u64>,
    /// Keyset pagination: cursor of the next page, `null` on the last.
    pub next_cursor: Option<String>,
}
