//! `/api/v1/admin/cache/*`: the services' caches for admins.

use actix_web::{post, web};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::error::{ApiError, ApiResult, ErrorEnvelope};
use crate::extract::Auth;
use crate::state::AppState;

/// Which namespace to clear.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ClearParams {
    /// A namespace (`users`, `user_lists`, `product_pages`, `dashboard`, ...); every namespace when absent.
    pub namespace: Option<String>,
}

/// The namespaces cleared.
#[derive(Debug, Serialize, ToSchema)]
pub struct Cleared {
    /// Their names.
    pub cleared: Vec<&'static str>,
}

/// Clear the caches (admin): one namespace by name, or all of them, on this instance and, through Redis, on
/// every other.
#[utoipa::path(tag = "monitoring", security(("bearer" = [])), params(ClearParams),
    responses((status = 200, body = Cleared), (status = 403, body = ErrorEnvelope),
        (status = 404, description = "No cache namespace of that name", body = ErrorEnvelope)))]
#[post("/admin/cache/clear")]
pub async fn clear(
    state: web::Data<AppState>,
    auth: Auth,
    query: web::Query<ClearParams>,
) -> ApiResult<web::Json<Cleared>> {
    auth.0.require_admin()?;
    let cleared = state.services.caches.clear(query.namespace.as_deref()).await.map_err(|err| {
        ApiError::new(actix_web::http::StatusCode::NOT_FOUND, "unknown_cache_namespace", err.to_string())
    })?;
    Ok(web::Json(Cleared { cleared }))
}
